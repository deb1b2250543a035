//! Access keys: only hashes are stored, never a key.

use crate::sqlite::SqliteStore;
use crate::timefmt::{from_db, from_db_opt, to_db};
use crate::{StoreError, db_err};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use warden_core::engines::{AccessKeyRecord, AccessKeyStore};

/// `SELECT <every column> FROM access_keys <tail>` as one static string.
macro_rules! select_keys {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, groups, key_sha256, mysql_native_hash, created_at, expires_at, ",
            "revoked_at FROM access_keys ",
            $tail
        )
    };
}

#[async_trait]
impl AccessKeyStore for SqliteStore {
    async fn insert_key(&self, key: &AccessKeyRecord) -> Result<(), StoreError> {
        let groups = serde_json::to_string(&key.groups)
            .map_err(|e| StoreError::new(format!("cannot encode key groups: {e}")))?;
        sqlx::query(
            "INSERT INTO access_keys (id, name, groups, key_sha256, mysql_native_hash, \
             created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(groups)
        .bind(&key.key_sha256)
        .bind(&key.mysql_native_hash)
        .bind(to_db(key.created_at)?)
        .bind(to_db(key.expires_at)?)
        .bind(key.revoked_at.map(to_db).transpose()?)
        .execute(&self.pool)
        .await
        .map_err(|e| db_err(&format!("cannot store access key {}", key.id), e))?;
        Ok(())
    }

    async fn find_key(&self, id: &str) -> Result<Option<AccessKeyRecord>, StoreError> {
        let row = sqlx::query(select_keys!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_err("cannot look up the access key", e))?;
        row.as_ref().map(key_row).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<AccessKeyRecord>, StoreError> {
        let rows = sqlx::query(select_keys!("ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_err("cannot list access keys", e))?;
        rows.iter().map(key_row).collect()
    }

    /// Keeps the first revocation time when a key is revoked twice.
    async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE access_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
        )
        .bind(to_db(OffsetDateTime::now_utc())?)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| db_err(&format!("cannot revoke access key {id}"), e))?;
        Ok(done.rows_affected() > 0)
    }
}

fn key_row(row: &SqliteRow) -> Result<AccessKeyRecord, StoreError> {
    let get = |e: sqlx::Error| db_err("cannot read an access key row", e);
    let id: String = row.try_get("id").map_err(get)?;
    let groups: String = row.try_get("groups").map_err(get)?;
    let groups = serde_json::from_str(&groups).map_err(|e| {
        StoreError::new(format!("access key {id} has bad groups in the store: {e}"))
    })?;
    Ok(AccessKeyRecord {
        name: row.try_get("name").map_err(get)?,
        groups,
        key_sha256: row.try_get("key_sha256").map_err(get)?,
        mysql_native_hash: row.try_get("mysql_native_hash").map_err(get)?,
        created_at: from_db(&row.try_get::<String, _>("created_at").map_err(get)?)?,
        expires_at: from_db(&row.try_get::<String, _>("expires_at").map_err(get)?)?,
        revoked_at: from_db_opt(row.try_get("revoked_at").map_err(get)?)?,
        id,
    })
}
