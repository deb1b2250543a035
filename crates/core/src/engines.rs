//! The small interfaces protocol crates call engines through. Engines live in
//! their own crates (identity, policy, credentials, store, recording) and the
//! `warden` binary wires concrete ones into a [`crate::Gateway`].

use crate::admission::ConnectGrant;
use crate::config::Protocol;
use crate::events::{AuditEvent, EventKind, SessionInfo, SessionSummary};
use crate::request::{Dialect, Request};
use crate::{Decision, Identity};
use async_trait::async_trait;
use secrecy::SecretString;
use std::net::SocketAddr;

/// Where a credential was presented, for the audit trail.
#[derive(Clone, Debug)]
pub struct AuthContext {
    pub client_addr: SocketAddr,
    pub protocol: Protocol,
    /// The target the client named (may not exist).
    pub target: String,
}

pub use crate::auth_error::{AuthError, AuthReason, BoxError};

/// Turns a presented credential (OIDC JWT or access key) into an [`Identity`].
#[async_trait]
pub trait Authenticator: Send + Sync {
    async fn authenticate(
        &self,
        credential: &SecretString,
        context: &AuthContext,
    ) -> Result<Identity, AuthError>;
}

/// Decides connects and statements. Implementations must be cheap to call on
/// every statement (cache classifications) and must fail closed.
pub trait PolicyEngine: Send + Sync {
    /// May this identity open a session on this target?
    fn check_connect(&self, identity: &Identity, target: &str) -> Decision;

    /// Changes whenever the rules do (a reload). A decision kept from a
    /// Parse or PREPARE is re-made at Execute when this moved since.
    fn generation(&self) -> u64 {
        0
    }

    /// May this identity do what `request` asks on this target?
    fn check_statement(&self, identity: &Identity, target: &str, request: &Request<'_>)
    -> Decision;

    /// Per-session classification state (SQL-level `PREPARE` texts, so a later
    /// `EXECUTE` is judged by what it runs). Engines without such state return `()`.
    fn new_session_state(&self, _dialect: Dialect) -> Box<dyn std::any::Any + Send> {
        Box::new(())
    }

    /// Like [`PolicyEngine::check_statement`], with the session's state.
    fn check_session_statement(
        &self,
        _state: &mut (dyn std::any::Any + Send),
        identity: &Identity,
        target: &str,
        request: &Request<'_>,
    ) -> Decision {
        self.check_statement(identity, target, request)
    }

    /// Tells the session state which server it talks to (the handshake's
    /// version string), which decides how MySQL executable comments run.
    fn set_session_server(&self, _state: &mut (dyn std::any::Any + Send), _version: &str) {}

    /// Name patterns (lowercase, `*` and `?` wildcards, no schema) of the
    /// tables that deny and review rules or column masking name for this
    /// identity on this target. The protocol asks the catalog which
    /// relations read them (partitions, inheritance children, views) and
    /// hands those to [`PolicyEngine::set_session_relations`].
    fn ruled_tables(&self, _identity: &Identity, _target: &str) -> Vec<String> {
        Vec::new()
    }

    /// The relations that read ruled tables, from the upstream's catalog at
    /// session start: a statement naming one is judged by deny and review
    /// rules as also reading its source.
    fn set_session_relations(
        &self,
        _state: &mut (dyn std::any::Any + Send),
        _relations: &[crate::request::DerivedRelation],
    ) {
    }

    /// The views that call volatile functions, from the upstream's catalog
    /// at session start: a statement reading one is judged as calling them.
    fn set_session_view_functions(
        &self,
        _state: &mut (dyn std::any::Any + Send),
        _views: &[crate::request::ViewFunction],
    ) {
    }

    /// A statement the protocol prepared under `name` (PostgreSQL Parse, or
    /// `None` for its Close): it shares the namespace of SQL `PREPARE`, so a
    /// later SQL `EXECUTE name` must be judged as this text.
    fn session_prepared(
        &self,
        _state: &mut (dyn std::any::Any + Send),
        _name: &str,
        _sql: Option<&str>,
    ) {
    }

    /// The decision for running the statement prepared under `name` (by SQL
    /// `PREPARE` or a protocol Parse), or `None` when the session state knows
    /// no such statement (engines without state know none).
    fn check_prepared(
        &self,
        _state: &mut (dyn std::any::Any + Send),
        _identity: &Identity,
        _target: &str,
        _name: &str,
    ) -> Option<Decision> {
        None
    }

    /// True when this identity may only read on this target, so the upstream
    /// session can be made read-only as a second wall.
    fn is_read_only(&self, _identity: &Identity, _target: &str) -> bool {
        false
    }

    /// The masking rules of every policy that matches this identity and target.
    fn mask_rules(&self, _identity: &Identity, _target: &str) -> crate::masking::MaskRules {
        crate::masking::MaskRules::default()
    }
}

/// Holds a session's lease and releases it when dropped, whatever path the
/// session ends by (the release runs on the runtime, in the background).
#[derive(Default)]
pub struct LeaseGuard {
    lease: Option<std::sync::Arc<dyn CredentialLease>>,
}

impl LeaseGuard {
    pub fn new(lease: Option<Box<dyn CredentialLease>>) -> Self {
        LeaseGuard {
            lease: lease.map(std::sync::Arc::from),
        }
    }

    /// The lease, for watching [`CredentialLease::ended`].
    pub fn lease(&self) -> Option<std::sync::Arc<dyn CredentialLease>> {
        self.lease.clone()
    }

    /// Records the lease's issue in the session's recording.
    pub fn record_issued(&self, recording: &dyn SessionRecording, upstream_user: &str) {
        if let Some(lease) = &self.lease {
            recording.record(crate::events::EventKind::Lease {
                lease_id: lease.id().to_string(),
                action: "issued".into(),
                upstream_user: upstream_user.to_string(),
                detail: "a database role created for this session".into(),
            });
        }
    }

    /// Records the release and releases now, waiting for it.
    pub async fn release_recorded(self, recording: &dyn SessionRecording, upstream_user: &str) {
        if let Some(lease) = &self.lease {
            recording.record(crate::events::EventKind::Lease {
                lease_id: lease.id().to_string(),
                action: "revoked".into(),
                upstream_user: upstream_user.to_string(),
                detail: "session ended: role dropped and its connections ended".into(),
            });
        }
        self.release().await;
    }

    /// Releases now and waits for it.
    pub async fn release(mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release().await;
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move { lease.release().await });
        }
    }
}

/// A request to end a live session from outside its relay (its credential's
/// lease ended), with the message the client gets.
#[derive(Default)]
pub struct SessionEnd {
    token: tokio_util::sync::CancellationToken,
    reason: std::sync::Mutex<String>,
}

impl SessionEnd {
    pub fn end(&self, reason: String) {
        *self
            .reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = reason;
        self.token.cancel();
    }

    /// Resolves once [`SessionEnd::end`] was called.
    pub async fn ended(&self) {
        self.token.cancelled().await;
    }

    pub fn reason(&self) -> String {
        self.reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Ends the session when the guarded lease ends. Abort the returned task
    /// when the session finishes first.
    pub fn watch(
        self: &std::sync::Arc<Self>,
        lease: &LeaseGuard,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let lease = lease.lease()?;
        let this = self.clone();
        Some(tokio::spawn(async move {
            let reason = lease.ended().await;
            this.end(reason);
        }))
    }
}

/// The user name and password Warden logs in upstream with. The agent never sees it.
pub struct UpstreamCredential {
    pub user: String,
    pub password: SecretString,
    /// Set for credentials that exist only for this session (ephemeral roles):
    /// the session watches it and releases it when it ends.
    pub lease: Option<Box<dyn CredentialLease>>,
}

impl UpstreamCredential {
    /// A long-lived credential with no lease.
    pub fn fixed(user: impl Into<String>, password: SecretString) -> Self {
        UpstreamCredential {
            user: user.into(),
            password,
            lease: None,
        }
    }
}

/// A per-session credential's lifetime. The session selects on
/// [`CredentialLease::ended`] beside its relay and calls
/// [`CredentialLease::release`] exactly once when it finishes.
#[async_trait]
pub trait CredentialLease: Send + Sync {
    /// The lease id (as `warden leases list` shows it).
    fn id(&self) -> &str;
    /// Resolves when the credential may no longer be used: `max_ttl` reached,
    /// renewal failed, or an operator revoked it. The text is for the client.
    async fn ended(&self) -> String;
    /// Ends the credential's upstream connections and removes it. Never fails
    /// loudly: a failure is logged and left for the sweeper.
    async fn release(&self);
}

impl std::fmt::Debug for UpstreamCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamCredential")
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .field(
                "lease",
                &self.lease.as_ref().map(|lease| lease.id().to_string()),
            )
            .finish()
    }
}

/// A credential could not be produced. Names the target and the reference,
/// never a value; the source (the resolver's or the ephemeral engine's
/// error) says what went wrong, and its text is shown after the target as
/// it always was.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The password's secret reference could not be resolved.
    #[error("target \"{target}\": {source}")]
    Secret {
        target: String,
        #[source]
        source: BoxError,
    },
    /// The session's ephemeral role could not be created or recorded.
    #[error("target \"{target}\": {source}")]
    Ephemeral {
        target: String,
        #[source]
        source: BoxError,
    },
    /// An ephemeral target reached the static-only credential source.
    #[error("target \"{target}\": ephemeral credentials need TargetCredentials")]
    NeedsTargetCredentials { target: String },
}

/// Produces the upstream credential for a session on a target. It takes the
/// session's [`ConnectGrant`], so only an admitted session gets one.
#[async_trait]
pub trait CredentialSource: Send + Sync {
    async fn acquire(
        &self,
        grant: &ConnectGrant,
        session: &SessionInfo,
    ) -> Result<UpstreamCredential, CredentialError>;
}

/// A store or recording operation failed. Core does not depend on sqlx, so
/// the database's error is kept boxed as the `source`; the texts are the
/// ones the CLI and the log have always shown.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed; `doing` says at what ("cannot read a session row").
    #[error("{doing}: {source}")]
    Database {
        doing: String,
        #[source]
        source: BoxError,
    },
    /// A value could not be encoded for a column; `what` is e.g. "the identity".
    #[error("cannot encode {what}{}", colon(source))]
    Encode {
        what: String,
        #[source]
        source: Option<BoxError>,
    },
    /// A time outside what the store can hold (years 0000..=9999).
    #[error("cannot store time {at}: {source}")]
    Time {
        at: String,
        #[source]
        source: BoxError,
    },
    /// A stored value cannot be decoded; `what` names row and column, e.g.
    /// "session 1f… has a bad identity".
    #[error("{what} in the store{}", colon(source))]
    Corrupt {
        what: String,
        #[source]
        source: Option<BoxError>,
    },
    #[error("cannot end session {session_id}: it is not in the sessions index")]
    SessionNotIndexed { session_id: String },
    #[error("session id prefix {prefix:?} matches several sessions; give more characters")]
    AmbiguousSessionPrefix { prefix: String },
    /// The store was closed before `doing` (e.g. "cannot LISTEN for review changes").
    #[error("{doing}: the store is closed")]
    Closed { doing: &'static str },
    /// A caller tried to move a review to a non-final state.
    #[error("a review can only be moved to a final state")]
    ReviewNotFinal,
    /// This node has no review engine.
    #[error("reviews are not available on this node")]
    ReviewsUnavailable,
    /// A session's recording could not be opened; the recorder's own error says why.
    #[error("{0}")]
    Recording(#[source] BoxError),
}

impl StoreError {
    /// The database failed while `doing` something.
    pub fn database(doing: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Database {
            doing: doing.into(),
            source: source.into(),
        }
    }
}

/// ": {source}" when there is a source, for texts that end with it.
fn colon(source: &Option<BoxError>) -> String {
    source
        .as_ref()
        .map(|source| format!(": {source}"))
        .unwrap_or_default()
}

/// The sessions index and the audit trail.
#[async_trait]
pub trait SessionLog: Send + Sync {
    async fn session_started(&self, session: &SessionInfo) -> Result<(), StoreError>;
    async fn session_ended(
        &self,
        session_id: &str,
        summary: &SessionSummary,
    ) -> Result<(), StoreError>;
    async fn audit(&self, event: &AuditEvent) -> Result<(), StoreError>;
}

/// Opens a recording for each session.
pub trait Recorder: Send + Sync {
    fn open(&self, session: &SessionInfo) -> Result<Box<dyn SessionRecording>, StoreError>;
}

/// One session's recording. `record` must never block the relay.
pub trait SessionRecording: Send + Sync {
    fn record(&self, event: EventKind);
    /// Writes the `end` event and closes the recording.
    fn finish(&self, summary: &SessionSummary);
}

/// A stored Warden access key. The key itself is never stored: only the
/// SHA-256 of the whole key text (to authenticate it) and what a wire
/// protocol's own password exchange needs to check a scramble of it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AccessKeyRecord {
    /// The public id embedded in the key (`wdn_{id}_{secret}`).
    pub id: String,
    pub name: String,
    pub groups: Vec<String>,
    /// Lowercase hex SHA-256 of the whole key text.
    pub key_sha256: String,
    /// Verifiers for wire protocols' own password exchanges, by mechanism
    /// name, each computed from the whole key text when it was made (for
    /// `mysql_native_password`: lowercase hex SHA1(SHA1(key))). Core reads
    /// none of them; the protocol's verifier reads its own.
    pub exchange_verifiers: std::collections::BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<time::OffsetDateTime>,
}

impl AccessKeyRecord {
    /// The verifier stored for `mechanism`, if the key has one.
    pub fn exchange_verifier(&self, mechanism: &str) -> Option<&str> {
        self.exchange_verifiers.get(mechanism).map(String::as_str)
    }
}

/// Where access keys are kept.
#[async_trait]
pub trait AccessKeyStore: Send + Sync {
    async fn insert_key(&self, key: &AccessKeyRecord) -> Result<(), StoreError>;
    async fn find_key(&self, id: &str) -> Result<Option<AccessKeyRecord>, StoreError>;
    async fn list_keys(&self) -> Result<Vec<AccessKeyRecord>, StoreError>;
    /// Marks a key revoked; false when no such key.
    async fn revoke_key(&self, id: &str) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_with_optional_parts() {
        let encode = StoreError::Encode {
            what: "the review kind".into(),
            source: None,
        };
        assert_eq!(encode.to_string(), "cannot encode the review kind");
        let corrupt = StoreError::Corrupt {
            what: "lease l1 has a bad protocol".into(),
            source: Some("unknown variant `db2`".into()),
        };
        assert_eq!(
            corrupt.to_string(),
            "lease l1 has a bad protocol in the store: unknown variant `db2`"
        );
        assert_eq!(
            StoreError::database("cannot read a session row", "database is locked").to_string(),
            "cannot read a session row: database is locked"
        );
        assert_eq!(
            AuthError::from(AuthReason::malformed("header has no alg")).to_string(),
            "malformed token: header has no alg"
        );
        assert_eq!(
            AuthReason::MalformedToken { detail: None }.to_string(),
            "malformed token"
        );
        assert_eq!(
            AuthReason::AudienceMismatch {
                expected: Some("warden".into())
            }
            .to_string(),
            "audience mismatch (expected warden)"
        );
        assert_eq!(
            AuthReason::AudienceMismatch { expected: None }.to_string(),
            "audience mismatch"
        );
    }
}
