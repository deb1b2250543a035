//! Warden's state: the sessions index, access keys, leases and the
//! hash-chained audit trail.
//!
//! [`SqliteStore`] is the embedded default (one Warden node);
//! [`PostgresStore`] is shared by several nodes. Both run the same SQL
//! (`portable.rs`); [`open_store`] picks one by URL. See `docs/store.md`.

mod sql;

mod audit;
mod chain;
mod cols;
mod error;
mod keys;
mod leases;
pub mod node;
mod open;
mod portable;
mod postgres;
mod reviews;
mod rows;
mod sessions;
mod sqlite;
mod timefmt;

pub use chain::AuditChainReport;
pub use error::StoreOpenError;
pub use open::open_store;
pub use postgres::{LISTENER_APPLICATION_NAME, PostgresOptions, PostgresStore, REVIEW_CHANNEL};
pub use rows::{SessionFilter, SessionRow};
pub use sqlite::SqliteStore;
pub use warden_core::engines::StoreError;
pub use warden_core::leases::{LeaseRecord, LeaseStore};
pub use warden_core::review_store::ReviewStore;

use async_trait::async_trait;
use warden_core::engines::{AccessKeyStore, SessionLog};
use warden_core::events::AuditEvent;

/// Everything Warden keeps in its state database: the engine traits the
/// gateway calls ([`SessionLog`], [`AccessKeyStore`], [`LeaseStore`]) plus the queries the CLI
/// and the web API need.
///
/// # The two backends
///
/// The queries use `$1`-style parameters, TEXT for JSON and timestamps,
/// BOOLEAN and BIGINT: valid in both databases as written, so they are
/// written once (`portable.rs`). The PostgreSQL store:
/// - keeps its own migrations directory (`migrations/postgres/`) with the
///   same tables, columns, indexes and versions as `migrations/sqlite/`;
///   the differences are `audit_events.id`
///   (`BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY`) and an extra
///   `text_pattern_ops` index on `sessions.id` so the prefix lookup of
///   [`Store::get_session`] uses an index (PostgreSQL's `LIKE` does not use
///   a default-collation b-tree; it is also case-sensitive, so prefixes are
///   lowercased and ids are lowercase UUIDs);
/// - stores timestamps as the same fixed-width RFC 3339 UTC text with six
///   fractional digits (text order is time order; rows move between the two
///   databases unchanged);
/// - runs migrations under `pg_advisory_lock` (sqlx's migrator does) so
///   several Warden nodes starting at once do not race;
/// - serializes audit appends with `pg_advisory_xact_lock` (SQLite uses
///   `BEGIN IMMEDIATE`) so the hash chain stays linear;
/// - makes [`Store::mark_interrupted_sessions`] node-aware with heartbeats
///   (`postgres/nodes.rs`);
/// - announces review inserts and state changes with a trigger calling
///   `pg_notify`, which [`ReviewStore::review_changes`] LISTENs to
///   (`postgres/listen.rs`; the SQLite migration of that version is a
///   no-op, and SQLite has no feed).
#[async_trait]
pub trait Store: SessionLog + AccessKeyStore + LeaseStore + ReviewStore + Send + Sync {
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

    /// Ends the open sessions that were cut because the Warden serving them
    /// stopped, with `reason`, and returns how many. Call once at start-up,
    /// before serving.
    ///
    /// SQLite (one node): every open session. PostgreSQL (several nodes):
    /// the open sessions of nodes whose heartbeat is stale and of this
    /// node's previous run; this call also registers the node and starts
    /// its heartbeat, after which dead nodes are swept periodically.
    async fn mark_interrupted_sessions(&self, reason: &str) -> Result<u64, StoreError>;

    /// Re-computes the audit trail's hash chain from the first event and
    /// reports the first event where it breaks (an edited, deleted or
    /// re-ordered event).
    async fn verify_audit_chain(&self) -> Result<AuditChainReport, StoreError>;

    /// Puts a legal hold on a session (or lifts it): retention keeps its
    /// recording. False when there is no such session.
    async fn set_session_hold(&self, id: &str, held: bool) -> Result<bool, StoreError>;

    /// Ids of the sessions on hold.
    async fn held_sessions(&self) -> Result<Vec<String>, StoreError>;

    /// Removes an expired session from the index (never a held one).
    async fn forget_session(&self, id: &str) -> Result<bool, StoreError>;
}

/// Wraps a database error with what Warden was doing.
pub(crate) fn db_err(doing: &str, error: sqlx::Error) -> StoreError {
    StoreError::database(doing, error)
}

/// Counters are u64 in Warden and BIGINT in the database.
pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Reads a BIGINT counter back; a negative value (never written) reads as 0.
pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
