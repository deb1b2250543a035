//! The audit trail: append-only, hash-chained events (logins, denials, key
//! changes …). See [`crate::chain`] for the chain itself.

use crate::chain::{ChainedRow, GENESIS};
use crate::cols::{Cols, Reader};
use crate::portable;
use crate::sql::select_chained_audit;
use crate::timefmt::from_db;
use crate::{StoreError, db_err};
use sqlx::sqlite::SqlitePool;
use warden_core::events::AuditEvent;

/// Decodes one row selected with `select_audit!`, from either backend.
pub(crate) fn audit_row(row: &impl Cols) -> Result<AuditEvent, StoreError> {
    let r = Reader::new(row, "an audit row");
    Ok(AuditEvent {
        at: from_db(&r.text("at")?)?,
        kind: r.text("kind")?,
        actor: r.text("actor")?,
        target: r.opt_text("target")?,
        session_id: r.opt_text("session_id")?,
        client_addr: r.opt_text("client_addr")?,
        detail: r.text("detail")?,
    })
}

/// `BEGIN IMMEDIATE` takes SQLite's write lock up front, so reading the
/// chain head and appending after it cannot interleave with another writer
/// (another pool or process on the same file included).
pub(crate) async fn insert(pool: &SqlitePool, event: &AuditEvent) -> Result<(), StoreError> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| db_err("cannot lock the audit trail", e))?;
    portable::sqlite::append_audit(&mut tx, event).await?;
    tx.commit()
        .await
        .map_err(|e| db_err(&format!("cannot write audit event {}", event.kind), e))
}

/// Chains the events written before the chain existed (the upgrade to the
/// chain migration), in id order. Runs only while no event has a hash: once
/// the chain exists, a missing hash is a break that verification reports,
/// not something to paper over.
pub(crate) async fn seal_unchained(pool: &SqlitePool) -> Result<u64, StoreError> {
    let unchained: Option<i64> =
        sqlx::query_scalar("SELECT id FROM audit_events WHERE hash IS NULL LIMIT 1")
            .fetch_optional(pool)
            .await
            .map_err(|e| db_err("cannot read the audit trail", e))?;
    if unchained.is_none() {
        return Ok(0);
    }
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| db_err("cannot lock the audit trail", e))?;
    let chained: Option<i64> =
        sqlx::query_scalar("SELECT id FROM audit_events WHERE hash IS NOT NULL LIMIT 1")
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db_err("cannot read the audit trail", e))?;
    if chained.is_some() {
        return Ok(0);
    }
    let rows = sqlx::query(select_chained_audit!("ORDER BY id"))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| db_err("cannot read the audit trail", e))?;
    let mut prev = GENESIS.to_string();
    let mut sealed = 0;
    for row in &rows {
        let row = ChainedRow::read(row)?;
        let hash = row.fields.hash(&prev)?;
        sqlx::query("UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE id = $3")
            .bind(&prev)
            .bind(&hash)
            .bind(row.id)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("cannot chain the audit trail", e))?;
        prev = hash;
        sealed += 1;
    }
    tx.commit()
        .await
        .map_err(|e| db_err("cannot chain the audit trail", e))?;
    Ok(sealed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{SqliteStore, Store};
    use warden_core::engines::SessionLog;

    #[tokio::test]
    async fn events_from_before_the_chain_are_sealed_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_path(&dir.path().join("w.db"))
            .await
            .unwrap();
        // As an older Warden wrote them: no hashes.
        for kind in ["a", "b", "c"] {
            sqlx::query(
                "INSERT INTO audit_events (at, kind, actor, detail) \
                 VALUES ('2025-01-01T00:00:00.000000Z', $1, '-', 'old')",
            )
            .bind(kind)
            .execute(&store.pool)
            .await
            .unwrap();
        }
        assert_eq!(store.verify_audit_chain().await.unwrap().first_bad, Some(1));
        assert_eq!(seal_unchained(&store.pool).await.unwrap(), 3);
        store
            .audit(&AuditEvent::new("d", "-", "new"))
            .await
            .unwrap();
        let report = store.verify_audit_chain().await.unwrap();
        assert_eq!((report.events, report.first_bad), (4, None));

        // Once chained, a stripped hash is not re-sealed but reported.
        sqlx::query("UPDATE audit_events SET hash = NULL WHERE id = 2")
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(seal_unchained(&store.pool).await.unwrap(), 0);
        assert_eq!(store.verify_audit_chain().await.unwrap().first_bad, Some(2));
    }
}
