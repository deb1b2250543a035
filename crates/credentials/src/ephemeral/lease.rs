//! One session's lease: a watcher task renews the role before it expires,
//! notices `max_ttl` and operator revocations (by reading the lease back from
//! the store), and `release` drops the role exactly once.

use super::backend::RoleBackend;
use super::{Audit, LiveUsers};
use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{OnceCell, watch};
use tokio::task::JoinHandle;
use warden_core::engines::CredentialLease;
use warden_core::leases::LeaseStore;

/// The watcher's timing.
#[derive(Clone, Copy, Debug)]
pub struct WatchTiming {
    /// How a role lives per renewal.
    pub ttl: Duration,
    /// The longest it lives, renewals included.
    pub max_ttl: Duration,
    /// How often the store is read for a revocation.
    pub poll_interval: Duration,
    /// How long the session has to call `release` after `ended` resolved
    /// before the watcher releases the role itself.
    pub release_grace: Duration,
}

/// State shared by the lease handle and its watcher.
pub(crate) struct LeaseInner {
    pub id: String,
    pub user: String,
    pub backend: Arc<dyn RoleBackend>,
    pub store: Arc<dyn LeaseStore>,
    pub audit: Audit,
    pub live: LiveUsers,
    pub max_expires_at: OffsetDateTime,
    /// `Some(text for the client)` once the credential may not be used.
    ended: watch::Sender<Option<String>>,
    /// The `lease.issued` event, written off the connect path; later events
    /// of the lease wait for it so the audit trail keeps their order.
    issued_event: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Why the lease ends, as the store records it.
    end_reason: Mutex<Option<String>>,
    released: OnceCell<()>,
}

impl LeaseInner {
    pub fn new(
        id: String,
        user: String,
        backend: Arc<dyn RoleBackend>,
        store: Arc<dyn LeaseStore>,
        audit: Audit,
        live: LiveUsers,
        max_expires_at: OffsetDateTime,
    ) -> Self {
        LeaseInner {
            id,
            user,
            backend,
            store,
            audit,
            live,
            max_expires_at,
            ended: watch::Sender::new(None),
            issued_event: tokio::sync::Mutex::new(None),
            end_reason: Mutex::new(None),
            released: OnceCell::new(),
        }
    }

    /// Later audit events of the lease wait for `issued` (being written).
    pub fn after_issued(mut self, issued: tokio::task::JoinHandle<()>) -> Self {
        self.issued_event = tokio::sync::Mutex::new(Some(issued));
        self
    }

    /// Writes `lease.{action}` once the `issued` event is written.
    pub async fn audit_lease(&self, action: &str, detail: &str) {
        let mut pending = self.issued_event.lock().await;
        if let Some(issued) = pending.take() {
            let _ = issued.await;
        }
        drop(pending);
        self.audit.lease(action, &self.id, &self.user, detail).await;
    }

    /// Marks the credential unusable (first call wins).
    fn end(&self, client_text: String, store_reason: &str) {
        if let Ok(mut reason) = self.end_reason.lock()
            && reason.is_none()
        {
            *reason = Some(store_reason.to_string());
        }
        self.ended.send_if_modified(|ended| {
            if ended.is_none() {
                *ended = Some(client_text);
                true
            } else {
                false
            }
        });
    }

    /// Drops the role and closes the lease, once. A failure is logged and
    /// left for the sweeper (the lease stays unrevoked until it expires).
    pub async fn release(&self) {
        self.released
            .get_or_init(|| async {
                self.end(
                    "the session's credential was released".into(),
                    "session ended",
                );
                let reason = self
                    .end_reason
                    .lock()
                    .ok()
                    .and_then(|reason| reason.clone())
                    .unwrap_or_else(|| "session ended".into());
                match self.backend.revoke(&self.user).await {
                    Ok(()) => {
                        if let Err(error) = self.store.mark_lease_revoked(&self.id, &reason).await {
                            tracing::warn!(lease = %self.id, %error, "role dropped but the lease could not be marked revoked");
                        }
                        self.audit_lease("revoked", &format!("role dropped: {reason}"))
                            .await;
                    }
                    Err(error) => {
                        tracing::warn!(lease = %self.id, user = %self.user, %error, "cannot drop the ephemeral role; the sweeper will");
                        self.audit_lease("release_failed", &error.to_string())
                            .await;
                    }
                }
                self.live.remove(&self.user);
            })
            .await;
    }
}

/// The lease handed to the session inside an `UpstreamCredential`.
pub struct EphemeralLease {
    inner: Arc<LeaseInner>,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

impl EphemeralLease {
    pub(crate) fn start(
        inner: Arc<LeaseInner>,
        expires_at: OffsetDateTime,
        timing: WatchTiming,
    ) -> Self {
        let watcher = tokio::spawn(watch_lease(inner.clone(), expires_at, timing));
        EphemeralLease {
            inner,
            watcher: Mutex::new(Some(watcher)),
        }
    }

    /// The upstream role / user name.
    pub fn upstream_user(&self) -> &str {
        &self.inner.user
    }

    fn stop_watcher(&self) {
        if let Ok(mut watcher) = self.watcher.lock()
            && let Some(handle) = watcher.take()
        {
            handle.abort();
        }
    }
}

#[async_trait]
impl CredentialLease for EphemeralLease {
    fn id(&self) -> &str {
        &self.inner.id
    }

    async fn ended(&self) -> String {
        let mut ended = self.inner.ended.subscribe();
        let text = match ended.wait_for(Option::is_some).await {
            Ok(text) => text.clone(),
            Err(_) => None,
        };
        match text {
            Some(text) => text,
            // The sender lives in `inner`, which we hold: never reached.
            None => std::future::pending().await,
        }
    }

    async fn release(&self) {
        self.stop_watcher();
        self.inner.release().await;
    }
}

/// A lease dropped without `release` (a session task that panicked) is
/// released in the background.
impl Drop for EphemeralLease {
    fn drop(&mut self) {
        self.stop_watcher();
        if self.inner.released.initialized() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let inner = self.inner.clone();
            runtime.spawn(async move { inner.release().await });
        }
    }
}

/// Renews at half-life up to `max_expires_at`, watches the store for a
/// revocation, ends the lease at `max_ttl`, and releases the role itself if
/// the session does not within the grace period.
async fn watch_lease(inner: Arc<LeaseInner>, mut expires_at: OffsetDateTime, timing: WatchTiming) {
    let half_life = timing.ttl / 2;
    loop {
        let now = OffsetDateTime::now_utc();
        if now >= inner.max_expires_at {
            let max_ttl = humantime::format_duration(timing.max_ttl);
            inner
                .audit_lease("expired", &format!("max_ttl of {max_ttl} reached"))
                .await;
            inner.end(
                format!("the session reached its credential's max_ttl of {max_ttl}; reconnect to get a new one"),
                "max_ttl reached",
            );
            break;
        }
        match inner.store.get_lease(&inner.id).await {
            Ok(Some(lease)) if lease.revoked_at.is_some() => {
                let reason = lease.revoke_reason.unwrap_or_default();
                tracing::info!(lease = %inner.id, %reason, "lease revoked in the store");
                inner.end("lease revoked by an operator".into(), &reason);
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                inner.end(
                    "the session's credential lease is gone from the store".into(),
                    "lease missing",
                );
                break;
            }
            Err(error) => tracing::warn!(lease = %inner.id, %error, "cannot read the lease back"),
        }
        let remaining = duration_between(now, expires_at);
        if remaining <= half_life && expires_at < inner.max_expires_at {
            let until = (now + timing.ttl).min(inner.max_expires_at);
            match inner.backend.renew(&inner.user, until).await {
                Ok(()) => {
                    if let Err(error) = inner.store.renew_lease(&inner.id, until).await {
                        tracing::warn!(lease = %inner.id, %error, "role renewed but the lease row was not");
                    }
                    expires_at = until;
                    inner
                        .audit_lease("renewed", &format!("valid until {until}"))
                        .await;
                }
                Err(error) => {
                    tracing::warn!(lease = %inner.id, %error, "cannot renew the ephemeral role");
                    if OffsetDateTime::now_utc() >= expires_at {
                        inner
                            .audit_lease("expired", &format!("renewal failed: {error}"))
                            .await;
                        inner.end(
                            "the session's credential expired and could not be renewed; reconnect to get a new one".into(),
                            "renewal failed",
                        );
                        break;
                    }
                }
            }
        }
        let until_max = duration_between(OffsetDateTime::now_utc(), inner.max_expires_at);
        tokio::time::sleep(
            timing
                .poll_interval
                .min(until_max)
                .max(Duration::from_millis(10)),
        )
        .await;
    }
    tokio::time::sleep(timing.release_grace).await;
    inner.release().await;
}

/// `later - earlier`, zero when `later` is not later.
fn duration_between(earlier: OffsetDateTime, later: OffsetDateTime) -> Duration {
    Duration::try_from(later - earlier).unwrap_or(Duration::ZERO)
}
