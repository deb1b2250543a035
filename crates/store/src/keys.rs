//! Access keys: only hashes are stored, never a key.

use crate::StoreError;
use crate::cols::{Cols, Reader};
use crate::portable::sqlite as q;
use crate::sqlite::SqliteStore;
use crate::timefmt::{from_db, from_db_opt};
use async_trait::async_trait;
use warden_core::engines::{AccessKeyRecord, AccessKeyStore};

#[async_trait]
impl AccessKeyStore for SqliteStore {
    async fn insert_key(&self, key: &AccessKeyRecord) -> Result<(), StoreError> {
        q::insert_key(&self.pool, key).await
    }

    async fn find_key(&self, id: &str) -> Result<Option<AccessKeyRecord>, StoreError> {
        q::find_key(&self.pool, id).await
    }

    async fn list_keys(&self) -> Result<Vec<AccessKeyRecord>, StoreError> {
        q::list_keys(&self.pool).await
    }

    /// Keeps the first revocation time when a key is revoked twice.
    async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        q::revoke_key(&self.pool, id).await
    }
}

/// Decodes one row selected with `select_keys!`, from either backend.
pub(crate) fn key_row(row: &impl Cols) -> Result<AccessKeyRecord, StoreError> {
    let r = Reader::new(row, "an access key row");
    let id = r.text("id")?;
    let groups = serde_json::from_str(&r.text("groups")?).map_err(|e| StoreError::Corrupt {
        what: format!("access key {id} has bad groups"),
        source: Some(Box::new(e)),
    })?;
    Ok(AccessKeyRecord {
        name: r.text("name")?,
        groups,
        key_sha256: r.text("key_sha256")?,
        exchange_verifiers: exchange_verifiers(r.text("mysql_native_hash")?),
        created_at: from_db(&r.text("created_at")?)?,
        expires_at: from_db(&r.text("expires_at")?)?,
        revoked_at: from_db_opt(r.opt_text("revoked_at")?)?,
        id,
    })
}

/// The mechanism whose verifier the `mysql_native_hash` column keeps.
pub(crate) const MYSQL_NATIVE: &str = "mysql_native_password";

/// A key's exchange verifiers from its row (an empty column: none).
fn exchange_verifiers(mysql_native: String) -> std::collections::BTreeMap<String, String> {
    let mut verifiers = std::collections::BTreeMap::new();
    if !mysql_native.is_empty() {
        verifiers.insert(MYSQL_NATIVE.to_string(), mysql_native);
    }
    verifiers
}
