//! Ephemeral MariaDB (written by the MySQL work).
