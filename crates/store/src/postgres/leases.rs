//! Leases on PostgreSQL: the same statements as on SQLite (`crate::leases`).

use super::PostgresStore;

crate::leases::impl_lease_store!(PostgresStore, inner.pool);
