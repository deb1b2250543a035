//! Warden's state: the sessions index, access keys and the audit trail.
//!
//! [`SqliteStore`] is the embedded default (one Warden node). The SQL is kept
//! portable so that a `PostgresStore` for several nodes can share the queries;
//! see [`Store`] for what such an implementation must do.

mod audit;
mod keys;
mod leases;
mod rows;
mod sessions;
mod sqlite;
mod timefmt;

pub use rows::{SessionFilter, SessionRow};
pub use sqlite::{SqliteStore, StoreOpenError};
pub use warden_core::engines::StoreError;
pub use warden_core::leases::{LeaseRecord, LeaseStore};

use async_trait::async_trait;
use warden_core::engines::{AccessKeyStore, SessionLog};
use warden_core::events::AuditEvent;

/// Everything Warden keeps in its state database: the engine traits the
/// gateway calls ([`SessionLog`], [`AccessKeyStore`], [`LeaseStore`]) plus the queries the CLI
/// and the web API need.
///
/// # Writing a PostgreSQL implementation
///
/// The queries in this crate use `$1`-style parameters, TEXT for JSON and
/// timestamps, BOOLEAN and BIGINT: all valid in PostgreSQL as written. A
/// `PostgresStore` must:
/// - keep its own migrations directory (`migrations/postgres/`) with the same
///   tables, columns, indexes and versions as `migrations/sqlite/`; the only
///   difference is `audit_events.id`, which is
///   `BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY` there;
/// - store timestamps as the same fixed-width RFC 3339 UTC text with six
///   fractional digits (so text order is time order, and rows move between
///   the two databases unchanged);
/// - index `sessions.id` with `text_pattern_ops` (or compare with `>=`/`<`)
///   so the prefix lookup of [`Store::get_session`] uses the index, because
///   PostgreSQL's `LIKE` does not use a default-collation b-tree;
/// - treat `LIKE` as case-sensitive (it is in PostgreSQL, not in SQLite):
///   prefixes are lowercased before the lookup and ids are lowercase UUIDs;
/// - run migrations under `pg_advisory_lock` (sqlx's migrator does) so that
///   several Warden nodes starting at once do not race;
/// - make [`Store::mark_interrupted_sessions`] node-aware before several
///   nodes share one database: with one node, any open session at start-up
///   was cut by a crash; with several, only this node's sessions were (add a
///   `node` column in a new migration and filter on it).
#[async_trait]
pub trait Store: SessionLog + AccessKeyStore + LeaseStore + Send + Sync {
    /// Sessions matching the filter, newest first.
    async fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionRow>, StoreError>;

    /// The session with this id, or with this unique id prefix (`0192a3`).
    /// `Ok(None)` when none matches; an error when the prefix is ambiguous.
    async fn get_session(&self, id_or_prefix: &str) -> Result<Option<SessionRow>, StoreError>;

    /// Audit events, newest first, optionally only those of one session.
    async fn list_audit(
        &self,
        limit: u32,
        session_id: Option<&str>,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// Ends every session that has no `ended_at`, with `reason`, and returns
    /// how many. Call once at start-up: such sessions were cut when Warden
    /// was killed.
    async fn mark_interrupted_sessions(&self, reason: &str) -> Result<u64, StoreError>;
}

/// Wraps a database error with what Warden was doing.
pub(crate) fn db_err(doing: &str, error: sqlx::Error) -> StoreError {
    StoreError::new(format!("{doing}: {error}"))
}

/// Counters are u64 in Warden and BIGINT in the database.
pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Reads a BIGINT counter back; a negative value (never written) reads as 0.
pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
