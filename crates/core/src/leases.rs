//! Leases of per-session credentials (ephemeral database roles), as the store
//! keeps them. The row is written before the role exists and marked revoked
//! after it is gone, so a crash can never leave a role Warden does not know of.

use crate::config::Protocol;
use crate::engines::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One issued credential.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// A UUIDv7 (as `warden leases list` shows it).
    pub id: String,
    pub session_id: String,
    pub target: String,
    pub protocol: Protocol,
    /// The role / user created upstream.
    pub upstream_user: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Until when the role is valid; moved forward by each renewal.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The furthest `expires_at` may be moved (`created_at + max_ttl`).
    #[serde(with = "time::serde::rfc3339")]
    pub max_expires_at: OffsetDateTime,
    /// Set once the lease is over: released at session end, revoked by an
    /// operator, expired or swept.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoke_reason: Option<String>,
}

impl LeaseRecord {
    /// Not revoked and not past its expiry.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// Where leases are kept. Every Warden node of a deployment shares it, and
/// `warden leases revoke` (another process) writes to it: the serving process
/// notices a revocation by reading the lease back.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    async fn insert_lease(&self, lease: &LeaseRecord) -> Result<(), StoreError>;

    /// Moves a lease's expiry; false when there is no such unrevoked lease.
    async fn renew_lease(&self, id: &str, expires_at: OffsetDateTime) -> Result<bool, StoreError>;

    /// Marks a lease revoked with a reason; false when there is no such lease
    /// or it was already revoked (the first revocation is kept).
    async fn mark_lease_revoked(&self, id: &str, reason: &str) -> Result<bool, StoreError>;

    async fn get_lease(&self, id: &str) -> Result<Option<LeaseRecord>, StoreError>;

    /// Leases newest first; only unrevoked ones unless `include_revoked`.
    async fn list_leases(&self, include_revoked: bool) -> Result<Vec<LeaseRecord>, StoreError>;
}
