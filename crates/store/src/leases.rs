//! Leases of per-session credentials: written before a role is created,
//! renewed while the session lives, marked revoked once the role is gone.
//! The statements are portable: [`impl_lease_store!`] implements
//! `LeaseStore` once for each backend.

use crate::StoreError;
use crate::cols::{Cols, Reader};
use crate::sqlite::SqliteStore;
use crate::timefmt::{from_db, from_db_opt};
use warden_core::config::Protocol;
use warden_core::leases::LeaseRecord;

/// `SELECT <every column> FROM leases <tail>` as one static string.
#[macro_export]
#[doc(hidden)]
macro_rules! select_leases {
    ($tail:literal) => {
        concat!(
            "SELECT id, session_id, target, protocol, upstream_user, created_at, expires_at, ",
            "max_expires_at, revoked_at, revoke_reason FROM leases ",
            $tail
        )
    };
}

/// `impl LeaseStore for $store`, with the pool at `self.$pool`.
macro_rules! impl_lease_store {
    ($store:ty, $($pool:ident).+) => {
        use $crate::timefmt::to_db;
        use $crate::{StoreError, db_err};
        use async_trait::async_trait;
        use time::OffsetDateTime;
        use warden_core::leases::{LeaseRecord, LeaseStore};

#[async_trait]
impl LeaseStore for $store {
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
        .execute(&self.$($pool).+)
        .await
        .map_err(|e| db_err(&format!("cannot store lease {}", lease.id), e))?;
        Ok(())
    }

    async fn renew_lease(&self, id: &str, expires_at: OffsetDateTime) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE leases SET expires_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(to_db(expires_at)?)
                .bind(id)
                .execute(&self.$($pool).+)
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
        .execute(&self.$($pool).+)
        .await
        .map_err(|e| db_err(&format!("cannot revoke lease {id}"), e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn get_lease(&self, id: &str) -> Result<Option<LeaseRecord>, StoreError> {
        let row = sqlx::query($crate::select_leases!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.$($pool).+)
            .await
            .map_err(|e| db_err("cannot look up the lease", e))?;
        row.as_ref().map($crate::leases::lease_row).transpose()
    }

    async fn list_leases(&self, include_revoked: bool) -> Result<Vec<LeaseRecord>, StoreError> {
        let query = if include_revoked {
            sqlx::query($crate::select_leases!("ORDER BY created_at DESC, id DESC"))
        } else {
            sqlx::query($crate::select_leases!(
                "WHERE revoked_at IS NULL ORDER BY created_at DESC, id DESC"
            ))
        };
        let rows = query
            .fetch_all(&self.$($pool).+)
            .await
            .map_err(|e| db_err("cannot list leases", e))?;
        rows.iter().map($crate::leases::lease_row).collect()
    }
}
    };
}
pub(crate) use impl_lease_store;

mod sqlite_impl {
    use super::SqliteStore;
    super::impl_lease_store!(SqliteStore, pool);
}

pub(crate) fn lease_row(row: &impl Cols) -> Result<LeaseRecord, StoreError> {
    let r = Reader::new(row, "a lease row");
    let id = r.text("id")?;
    let protocol: Protocol = serde_json::from_value(serde_json::Value::String(r.text("protocol")?))
        .map_err(|e| StoreError::Corrupt {
            what: format!("lease {id} has a bad protocol"),
            source: Some(Box::new(e)),
        })?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::{Duration, OffsetDateTime};
    use warden_core::leases::LeaseStore;

    async fn store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open_path(&dir.path().join("warden.db"))
            .await
            .unwrap()
    }

    fn lease(id: &str, user: &str, created_at: OffsetDateTime) -> LeaseRecord {
        LeaseRecord {
            id: id.into(),
            session_id: format!("session-{id}"),
            target: "orders".into(),
            protocol: Protocol::Postgres,
            upstream_user: user.into(),
            created_at,
            expires_at: created_at + Duration::minutes(15),
            max_expires_at: created_at + Duration::hours(8),
            revoked_at: None,
            revoke_reason: None,
        }
    }

    /// Times as the store keeps them (microseconds), for equality checks.
    fn now() -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        now.replace_nanosecond(now.microsecond() * 1000).unwrap()
    }

    #[tokio::test]
    async fn insert_get_and_list_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let t = now();
        let a = lease("a", "warden_aaaaaaaaaaaa", t);
        let b = lease("b", "warden_bbbbbbbbbbbb", t + Duration::seconds(1));
        store.insert_lease(&a).await.unwrap();
        store.insert_lease(&b).await.unwrap();
        assert_eq!(store.get_lease("a").await.unwrap(), Some(a.clone()));
        assert_eq!(store.get_lease("nope").await.unwrap(), None);
        let listed = store.list_leases(false).await.unwrap();
        assert_eq!(listed, vec![b.clone(), a.clone()], "newest first");
        assert!(store.insert_lease(&a).await.is_err(), "ids are unique");
    }

    #[tokio::test]
    async fn renew_moves_expiry_of_unrevoked_leases_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let t = now();
        store.insert_lease(&lease("a", "u", t)).await.unwrap();
        let later = t + Duration::minutes(30);
        assert!(store.renew_lease("a", later).await.unwrap());
        assert_eq!(
            store.get_lease("a").await.unwrap().unwrap().expires_at,
            later
        );
        assert!(!store.renew_lease("missing", later).await.unwrap());
        assert!(
            store
                .mark_lease_revoked("a", "session ended")
                .await
                .unwrap()
        );
        assert!(
            !store
                .renew_lease("a", later + Duration::minutes(1))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn first_revocation_is_kept_and_revoked_leases_are_listed_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let t = now();
        store.insert_lease(&lease("a", "u1", t)).await.unwrap();
        store.insert_lease(&lease("b", "u2", t)).await.unwrap();
        assert!(store.mark_lease_revoked("a", "operator").await.unwrap());
        assert!(!store.mark_lease_revoked("a", "swept").await.unwrap());
        assert!(!store.mark_lease_revoked("zzz", "swept").await.unwrap());
        let a = store.get_lease("a").await.unwrap().unwrap();
        assert_eq!(a.revoke_reason.as_deref(), Some("operator"));
        assert!(a.revoked_at.is_some());
        assert!(!a.is_live(OffsetDateTime::now_utc()));
        let live: Vec<String> = store
            .list_leases(false)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.id)
            .collect();
        assert_eq!(live, vec!["b".to_string()]);
        assert_eq!(store.list_leases(true).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_revocation_by_another_process_is_seen() {
        // `warden leases revoke` opens its own store on the same file.
        let dir = tempfile::tempdir().unwrap();
        let serving = store(&dir).await;
        let cli = store(&dir).await;
        serving.insert_lease(&lease("a", "u", now())).await.unwrap();
        assert!(cli.mark_lease_revoked("a", "operator").await.unwrap());
        let seen = serving.get_lease("a").await.unwrap().unwrap();
        assert_eq!(seen.revoke_reason.as_deref(), Some("operator"));
    }
}
