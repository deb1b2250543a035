//! Which PostgreSQL settings are ordinary session settings.
//!
//! psql, drivers and pg_dump `SET` a handful of settings on every connection
//! (search_path, DateStyle, statement_timeout …); those are reads. Settings an
//! ordinary user may not change (superuser, postmaster, sighup contexts),
//! `role` and `session_authorization`, and custom `prefix.name` settings
//! (often what row-level-security policies read) are admin.

use std::collections::HashSet;
use std::sync::LazyLock;

static USER_SETTINGS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("user_settings.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        // Loads shared libraries into the backend.
        .filter(|l| *l != "local_preload_libraries")
        // Warden sets it upstream for read-only identities: turning it off
        // would take down that second wall.
        .filter(|l| {
            !matches!(
                *l,
                "default_transaction_read_only" | "transaction_read_only"
            )
        })
        .chain(EXTRA_READ.iter().copied())
        .collect()
});

/// Names `SET` accepts beyond pg_settings: `SET TIME ZONE`, `SET NAMES`,
/// `SET TRANSACTION …` / `SET SESSION CHARACTERISTICS AS TRANSACTION …`,
/// `SET XML OPTION`.
const EXTRA_READ: &[&str] = &[
    "timezone",
    "client_encoding",
    "transaction",
    "session characteristics",
    "transaction_isolation",
    "transaction_deferrable",
    "transaction snapshot",
    "xmloption",
];

/// `name` must be lowercase.
pub fn is_user_setting(name: &str) -> bool {
    USER_SETTINGS.contains(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_and_privileged_settings() {
        for name in [
            "search_path",
            "statement_timeout",
            "datestyle",
            "extra_float_digits",
        ] {
            assert!(is_user_setting(name), "{name}");
        }
        for name in [
            "role",
            "session_authorization",
            "session_replication_role",
            "app.tenant",
        ] {
            assert!(!is_user_setting(name), "{name}");
        }
    }
}
