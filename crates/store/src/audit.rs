//! The audit trail: append-only events (logins, denials, key changes …).

use crate::timefmt::{from_db, to_db};
use crate::{StoreError, db_err};
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use warden_core::events::AuditEvent;

pub(crate) async fn insert(pool: &SqlitePool, event: &AuditEvent) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_events (at, kind, actor, target, session_id, client_addr, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(to_db(event.at)?)
    .bind(&event.kind)
    .bind(&event.actor)
    .bind(&event.target)
    .bind(&event.session_id)
    .bind(&event.client_addr)
    .bind(&event.detail)
    .execute(pool)
    .await
    .map_err(|e| db_err(&format!("cannot write audit event {}", event.kind), e))?;
    Ok(())
}

/// Newest first (by insertion order, which is what `id` records).
pub(crate) async fn list(
    pool: &SqlitePool,
    limit: u32,
    session_id: Option<&str>,
) -> Result<Vec<AuditEvent>, StoreError> {
    let limit = i64::from(limit);
    let query = match session_id {
        None => sqlx::query(
            "SELECT at, kind, actor, target, session_id, client_addr, detail \
             FROM audit_events ORDER BY id DESC LIMIT $1",
        )
        .bind(limit),
        Some(id) => sqlx::query(
            "SELECT at, kind, actor, target, session_id, client_addr, detail \
             FROM audit_events WHERE session_id = $2 ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .bind(id.to_string()),
    };
    let rows = query
        .fetch_all(pool)
        .await
        .map_err(|e| db_err("cannot list audit events", e))?;
    rows.iter().map(audit_row).collect()
}

fn audit_row(row: &SqliteRow) -> Result<AuditEvent, StoreError> {
    let get = |e: sqlx::Error| db_err("cannot read an audit row", e);
    Ok(AuditEvent {
        at: from_db(&row.try_get::<String, _>("at").map_err(get)?)?,
        kind: row.try_get("kind").map_err(get)?,
        actor: row.try_get("actor").map_err(get)?,
        target: row.try_get("target").map_err(get)?,
        session_id: row.try_get("session_id").map_err(get)?,
        client_addr: row.try_get("client_addr").map_err(get)?,
        detail: row.try_get("detail").map_err(get)?,
    })
}
