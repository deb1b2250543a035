//! The engine traits and [`Store`] on PostgreSQL: the portable queries plus
//! the chain lock and the node-aware start-up sweep.

use super::PostgresStore;
use crate::chain::AuditChainReport;
use crate::portable::postgres as q;
use crate::rows::{SessionFilter, SessionRow};
use crate::{Store, StoreError, db_err};
use async_trait::async_trait;
use warden_core::engines::{AccessKeyRecord, AccessKeyStore, SessionLog};
use warden_core::events::{AuditEvent, SessionInfo, SessionSummary};

/// The advisory lock key every node takes to append to the audit chain
/// ("WARDENAU" in ASCII): appends are serialized across nodes, so the chain
/// stays one line and ids follow chain order.
const AUDIT_CHAIN_LOCK: i64 = 0x5741_5244_454e_4155;

#[async_trait]
impl SessionLog for PostgresStore {
    async fn session_started(&self, session: &SessionInfo) -> Result<(), StoreError> {
        self.ensure_serving().await?;
        q::session_started(&self.inner.pool, &self.inner.node, session).await
    }

    async fn session_ended(
        &self,
        session_id: &str,
        summary: &SessionSummary,
    ) -> Result<(), StoreError> {
        q::session_ended(&self.inner.pool, session_id, summary).await
    }

    async fn audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self
            .inner
            .pool
            .begin()
            .await
            .map_err(|e| db_err("cannot write to the audit trail", e))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_CHAIN_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("cannot lock the audit chain", e))?;
        q::append_audit(&mut tx, event).await?;
        tx.commit()
            .await
            .map_err(|e| db_err(&format!("cannot write audit event {}", event.kind), e))
    }
}

#[async_trait]
impl AccessKeyStore for PostgresStore {
    async fn insert_key(&self, key: &AccessKeyRecord) -> Result<(), StoreError> {
        q::insert_key(&self.inner.pool, key).await
    }

    async fn find_key(&self, id: &str) -> Result<Option<AccessKeyRecord>, StoreError> {
        q::find_key(&self.inner.pool, id).await
    }

    async fn list_keys(&self) -> Result<Vec<AccessKeyRecord>, StoreError> {
        q::list_keys(&self.inner.pool).await
    }

    async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        q::revoke_key(&self.inner.pool, id).await
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionRow>, StoreError> {
        q::list_sessions(&self.inner.pool, filter).await
    }

    async fn get_session(&self, id_or_prefix: &str) -> Result<Option<SessionRow>, StoreError> {
        q::get_session(&self.inner.pool, id_or_prefix).await
    }

    async fn list_audit(
        &self,
        limit: u32,
        session_id: Option<&str>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        q::list_audit(&self.inner.pool, limit, session_id).await
    }

    /// Several nodes share the database: only the sessions of dead nodes
    /// (and of this node's previous run) are ended. Also registers this
    /// node and starts its heartbeat. See `postgres/nodes.rs`.
    async fn mark_interrupted_sessions(&self, reason: &str) -> Result<u64, StoreError> {
        self.sweep_at_start(reason).await
    }

    async fn verify_audit_chain(&self) -> Result<AuditChainReport, StoreError> {
        q::verify_audit_chain(&self.inner.pool).await
    }
    async fn set_session_hold(&self, id: &str, held: bool) -> Result<bool, StoreError> {
        q::set_session_hold(&self.inner.pool, id, held).await
    }

    async fn held_sessions(&self) -> Result<Vec<String>, StoreError> {
        q::held_sessions(&self.inner.pool).await
    }

    async fn forget_session(&self, id: &str) -> Result<bool, StoreError> {
        q::forget_session(&self.inner.pool, id).await
    }
}
