//! Leases on PostgreSQL: the same statements as the SQLite store's
//! (`crate::leases`), which are portable as written.

use super::PostgresStore;
use crate::cols::{Cols, Reader};
use crate::timefmt::{from_db, from_db_opt, to_db};
use crate::{StoreError, db_err};
use async_trait::async_trait;
use time::OffsetDateTime;
use warden_core::config::Protocol;
use warden_core::leases::{LeaseRecord, LeaseStore};

/// `SELECT <every column> FROM leases <tail>` as one static string.
macro_rules! select_leases {
    ($tail:literal) => {
        concat!(
            "SELECT id, session_id, target, protocol, upstream_user, created_at, expires_at, ",
            "max_expires_at, revoked_at, revoke_reason FROM leases ",
            $tail
        )
    };
}

#[async_trait]
impl LeaseStore for PostgresStore {
    async fn insert_lease(&self, lease: &LeaseRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO leases (id, session_id, target, protocol, upstream_user, created_at, \
             expires_at, max_expires_at, revoked_at, revoke_reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&lease.id)
        .bind(&lease.session_id)
        .bind(&lease.target)
        .bind(lease.protocol.to_string())
        .bind(&lease.upstream_user)
        .bind(to_db(lease.created_at)?)
        .bind(to_db(lease.expires_at)?)
        .bind(to_db(lease.max_expires_at)?)
        .bind(lease.revoked_at.map(to_db).transpose()?)
        .bind(&lease.revoke_reason)
        .execute(&self.inner.pool)
        .await
        .map_err(|e| db_err(&format!("cannot store lease {}", lease.id), e))?;
        Ok(())
    }

    async fn renew_lease(&self, id: &str, expires_at: OffsetDateTime) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE leases SET expires_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(to_db(expires_at)?)
                .bind(id)
                .execute(&self.inner.pool)
                .await
                .map_err(|e| db_err(&format!("cannot renew lease {id}"), e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn mark_lease_revoked(&self, id: &str, reason: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE leases SET revoked_at = $1, revoke_reason = $2 \
             WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(to_db(OffsetDateTime::now_utc())?)
        .bind(reason)
        .bind(id)
        .execute(&self.inner.pool)
        .await
        .map_err(|e| db_err(&format!("cannot revoke lease {id}"), e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn get_lease(&self, id: &str) -> Result<Option<LeaseRecord>, StoreError> {
        let row = sqlx::query(select_leases!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|e| db_err("cannot look up the lease", e))?;
        row.as_ref().map(lease_row).transpose()
    }

    async fn list_leases(&self, include_revoked: bool) -> Result<Vec<LeaseRecord>, StoreError> {
        let query = if include_revoked {
            sqlx::query(select_leases!("ORDER BY created_at DESC, id DESC"))
        } else {
            sqlx::query(select_leases!(
                "WHERE revoked_at IS NULL ORDER BY created_at DESC, id DESC"
            ))
        };
        let rows = query
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| db_err("cannot list leases", e))?;
        rows.iter().map(lease_row).collect()
    }
}

fn lease_row(row: &impl Cols) -> Result<LeaseRecord, StoreError> {
    let r = Reader::new(row, "a lease row");
    let id = r.text("id")?;
    let protocol: Protocol = serde_json::from_value(serde_json::Value::String(r.text("protocol")?))
        .map_err(|e| StoreError::new(format!("lease {id} has a bad protocol in the store: {e}")))?;
    Ok(LeaseRecord {
        session_id: r.text("session_id")?,
        target: r.text("target")?,
        protocol,
        upstream_user: r.text("upstream_user")?,
        created_at: from_db(&r.text("created_at")?)?,
        expires_at: from_db(&r.text("expires_at")?)?,
        max_expires_at: from_db(&r.text("max_expires_at")?)?,
        revoked_at: from_db_opt(r.opt_text("revoked_at")?)?,
        revoke_reason: r.opt_text("revoke_reason")?,
        id,
    })
}
