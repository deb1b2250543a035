-- Runs once in the compose PostgreSQL: the role Warden logs in as and its database.
\set pw `cat /run/secrets/orders_password 2>/dev/null || echo change-me`
CREATE ROLE orders_app LOGIN PASSWORD :'pw';
CREATE DATABASE orders OWNER orders_app;
