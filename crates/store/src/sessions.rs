//! The sessions index: one row per session, written at start and at end.

use crate::audit;
use crate::rows::{SessionFilter, SessionRow};
use crate::sqlite::SqliteStore;
use crate::timefmt::{from_db, from_db_opt, to_db};
use crate::{Store, StoreError, db_err, to_i64, to_u64};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use warden_core::config::Protocol;
use warden_core::engines::SessionLog;
use warden_core::events::{AuditEvent, SessionInfo, SessionSummary};

/// `SELECT <every column> FROM sessions <tail>` as one static string.
macro_rules! select_sessions {
    ($tail:literal) => {
        concat!(
            "SELECT id, subject, identity, target, protocol, client_addr, client_tls, ",
            "started_at, ended_at, bytes_from_client, bytes_to_client, statements, end_reason ",
            "FROM sessions ",
            $tail
        )
    };
}

#[async_trait]
impl SessionLog for SqliteStore {
    async fn session_started(&self, session: &SessionInfo) -> Result<(), StoreError> {
        let identity = serde_json::to_string(&session.identity)
            .map_err(|e| StoreError::new(format!("cannot encode the identity: {e}")))?;
        sqlx::query(
            "INSERT INTO sessions (id, subject, identity, target, protocol, client_addr, \
             client_tls, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&session.id)
        .bind(&session.identity.subject)
        .bind(identity)
        .bind(&session.target)
        .bind(session.protocol.to_string())
        .bind(session.client_addr.to_string())
        .bind(session.client_tls)
        .bind(to_db(session.started_at)?)
        .execute(&self.pool)
        .await
        .map_err(|e| db_err(&format!("cannot index session {}", session.id), e))?;
        Ok(())
    }

    async fn session_ended(
        &self,
        session_id: &str,
        summary: &SessionSummary,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET ended_at = $1, bytes_from_client = $2, bytes_to_client = $3, \
             statements = $4, end_reason = $5 WHERE id = $6",
        )
        .bind(to_db(OffsetDateTime::now_utc())?)
        .bind(to_i64(summary.bytes_from_client))
        .bind(to_i64(summary.bytes_to_client))
        .bind(to_i64(summary.statements))
        .bind(&summary.reason)
        .bind(session_id)
        .execute(&self.pool)
        .await
        .map_err(|e| db_err(&format!("cannot end session {session_id}"), e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::new(format!(
                "cannot end session {session_id}: it is not in the sessions index"
            )));
        }
        Ok(())
    }

    async fn audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        audit::insert(&self.pool, event).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionRow>, StoreError> {
        let limit = i64::from(filter.limit);
        let query = match (&filter.target, filter.open_only) {
            (None, false) => sqlx::query(select_sessions!(
                "ORDER BY started_at DESC, id DESC LIMIT $1"
            ))
            .bind(limit),
            (None, true) => sqlx::query(select_sessions!(
                "WHERE ended_at IS NULL ORDER BY started_at DESC, id DESC LIMIT $1"
            ))
            .bind(limit),
            (Some(target), false) => sqlx::query(select_sessions!(
                "WHERE target = $2 ORDER BY started_at DESC, id DESC LIMIT $1"
            ))
            .bind(limit)
            .bind(target.clone()),
            (Some(target), true) => sqlx::query(select_sessions!(
                "WHERE target = $2 AND ended_at IS NULL ORDER BY started_at DESC, id DESC LIMIT $1"
            ))
            .bind(limit)
            .bind(target.clone()),
        };
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_err("cannot list sessions", e))?;
        rows.iter().map(session_row).collect()
    }

    async fn get_session(&self, id_or_prefix: &str) -> Result<Option<SessionRow>, StoreError> {
        let exact = sqlx::query(select_sessions!("WHERE id = $1"))
            .bind(id_or_prefix)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_err("cannot look up the session", e))?;
        if let Some(row) = exact {
            return session_row(&row).map(Some);
        }
        // Only id characters may form a prefix: this also keeps LIKE's
        // wildcards out of the pattern.
        let prefix = id_or_prefix.to_ascii_lowercase();
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Ok(None);
        }
        let rows = sqlx::query(select_sessions!("WHERE id LIKE $1 ORDER BY id LIMIT 2"))
            .bind(format!("{prefix}%"))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_err("cannot look up the session", e))?;
        match rows.as_slice() {
            [] => Ok(None),
            [row] => session_row(row).map(Some),
            _ => Err(StoreError::new(format!(
                "session id prefix {id_or_prefix:?} matches several sessions; give more characters"
            ))),
        }
    }

    async fn list_audit(
        &self,
        limit: u32,
        session_id: Option<&str>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        audit::list(&self.pool, limit, session_id).await
    }

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
}

/// Decodes one row selected with `select_sessions!`.
fn session_row(row: &SqliteRow) -> Result<SessionRow, StoreError> {
    let get = |e: sqlx::Error| db_err("cannot read a session row", e);
    let id: String = row.try_get("id").map_err(get)?;
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::new(format!("session {id} has a bad {what} in the store: {e}"))
    };
    let identity: String = row.try_get("identity").map_err(get)?;
    let identity = serde_json::from_str(&identity).map_err(|e| bad("identity", &e))?;
    let protocol: String = row.try_get("protocol").map_err(get)?;
    let protocol: Protocol = serde_json::from_value(serde_json::Value::String(protocol))
        .map_err(|e| bad("protocol", &e))?;
    Ok(SessionRow {
        subject: row.try_get("subject").map_err(get)?,
        identity,
        target: row.try_get("target").map_err(get)?,
        protocol,
        client_addr: row.try_get("client_addr").map_err(get)?,
        client_tls: row.try_get("client_tls").map_err(get)?,
        started_at: from_db(&row.try_get::<String, _>("started_at").map_err(get)?)?,
        ended_at: from_db_opt(row.try_get("ended_at").map_err(get)?)?,
        bytes_from_client: to_u64(row.try_get("bytes_from_client").map_err(get)?),
        bytes_to_client: to_u64(row.try_get("bytes_to_client").map_err(get)?),
        statements: to_u64(row.try_get("statements").map_err(get)?),
        end_reason: row.try_get("end_reason").map_err(get)?,
        id,
    })
}
