//! The sessions index on SQLite: one row per session, written at start and
//! at end. The queries are shared with PostgreSQL (`portable.rs`).

use crate::chain::AuditChainReport;
use crate::portable::sqlite as q;
use crate::rows::{SessionFilter, SessionRow};
use crate::sqlite::SqliteStore;
use crate::timefmt::to_db;
use crate::{Store, StoreError, audit, db_err};
use async_trait::async_trait;
use time::OffsetDateTime;
use warden_core::engines::SessionLog;
use warden_core::events::{AuditEvent, SessionInfo, SessionSummary};

#[async_trait]
impl SessionLog for SqliteStore {
    async fn session_started(&self, session: &SessionInfo) -> Result<(), StoreError> {
        q::session_started(&self.pool, &self.node, session).await
    }

    async fn session_ended(
        &self,
        session_id: &str,
        summary: &SessionSummary,
    ) -> Result<(), StoreError> {
        q::session_ended(&self.pool, session_id, summary).await
    }

    async fn audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        audit::insert(&self.pool, event).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionRow>, StoreError> {
        q::list_sessions(&self.pool, filter).await
    }

    async fn get_session(&self, id_or_prefix: &str) -> Result<Option<SessionRow>, StoreError> {
        q::get_session(&self.pool, id_or_prefix).await
    }

    async fn list_audit(
        &self,
        limit: u32,
        session_id: Option<&str>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        q::list_audit(&self.pool, limit, session_id).await
    }

    /// One node per SQLite file: every open session was cut when this
    /// node last stopped.
    async fn mark_interrupted_sessions(&self, reason: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE ended_at IS NULL",
        )
        .bind(to_db(OffsetDateTime::now_utc())?)
        .bind(reason)
        .execute(&self.pool)
        .await
        .map_err(|e| db_err("cannot close interrupted sessions", e))?;
        Ok(done.rows_affected())
    }

    async fn verify_audit_chain(&self) -> Result<AuditChainReport, StoreError> {
        q::verify_audit_chain(&self.pool).await
    }
    async fn set_session_hold(&self, id: &str, held: bool) -> Result<bool, StoreError> {
        q::set_session_hold(&self.pool, id, held).await
    }

    async fn held_sessions(&self) -> Result<Vec<String>, StoreError> {
        q::held_sessions(&self.pool).await
    }

    async fn forget_session(&self, id: &str) -> Result<bool, StoreError> {
        q::forget_session(&self.pool, id).await
    }
}
