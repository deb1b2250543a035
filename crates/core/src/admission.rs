//! Admission: the one path from an authenticated identity to a running
//! session, for every protocol.
//!
//! A protocol crate authenticates the client in its own wire format, then
//! calls [`admit`] with the identity, the target the client named and the
//! transport facts, plus a [`Dialer`] that logs in upstream in its wire
//! format. Admission looks the target up, asks connect policy (and, for a
//! reviewed connect, the access grants), takes a session slot, acquires the
//! credential, dials, indexes the session, opens its recording and writes
//! the audit trail — always in that order, so every protocol leaves the same
//! events behind. The protocol renders a [`Refusal`] as its own wire error
//! and, at the end, hands the summary back to [`AdmittedSession::end`].

use crate::config::{Protocol, TargetConfig};
use crate::engines::{LeaseGuard, SessionRecording, StoreError, UpstreamCredential};
use crate::events::{AuditEvent, EventKind, SessionInfo, SessionSummary};
use crate::{Action, Gateway, Identity};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// What a protocol knows once the client has proved who it is.
#[derive(Clone, Debug)]
pub struct AdmissionRequest {
    pub identity: Identity,
    /// The target the client named (it may not exist).
    pub target: String,
    pub protocol: Protocol,
    pub peer: SocketAddr,
    /// Whether the client connection is TLS.
    pub client_tls: bool,
}

/// Proof that connect policy let this identity onto this target. Only
/// [`admit`] builds one; dialling upstream and acquiring a credential take
/// it, so no code path reaches an upstream the policy did not open.
/// Neither `Clone` nor constructible outside this module.
#[derive(Debug)]
pub struct ConnectGrant {
    target: TargetConfig,
    identity: Identity,
    protocol: Protocol,
    rule: String,
    read_only: bool,
}

impl ConnectGrant {
    /// The target the session may reach.
    pub fn target(&self) -> &TargetConfig {
        &self.target
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The policy rule that admitted the session.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// True when every policy allows this identity only reads here, so the
    /// upstream session is made read-only as a second wall.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// A grant for unit tests of dialling code against fake upstreams.
    /// Exists only with the `test-grants` feature, which only
    /// dev-dependencies turn on.
    #[cfg(feature = "test-grants")]
    pub fn for_tests(target: TargetConfig, identity: Identity) -> ConnectGrant {
        ConnectGrant {
            protocol: target.protocol,
            target,
            identity,
            rule: "test".into(),
            read_only: false,
        }
    }
}

/// Why the upstream login failed, in the words a client may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialCause {
    /// The address did not accept a connection.
    Unreachable,
    /// No answer within the target's `connect_timeout`.
    Timeout,
    /// The TLS handshake to the upstream failed.
    Tls,
    /// The upstream refused Warden's login.
    LoginRefused,
    /// The upstream session starts in a state Warden cannot judge
    /// statements under (a lexing setting, a character set).
    UnsupportedSession,
    /// Anything else on the way (a protocol error, a lost connection).
    Failed,
}

/// A failed upstream login, as the dialer reports it.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{detail}")]
pub struct DialFailure {
    pub cause: DialCause,
    /// For the log, the audit trail and the client: names the target and
    /// what went wrong, never a credential.
    pub detail: String,
    /// The upstream's own error code (SQLSTATE or MySQL number), if it sent one.
    pub upstream_code: Option<String>,
}

impl DialFailure {
    pub fn new(cause: DialCause, detail: impl Into<String>) -> Self {
        DialFailure {
            cause,
            detail: detail.into(),
            upstream_code: None,
        }
    }
}

/// Logs in to the granted target in one protocol's wire format.
pub trait Dialer {
    /// The open upstream connection the protocol relays over.
    type Upstream: Send;

    fn dial(
        self,
        grant: &ConnectGrant,
        credential: &UpstreamCredential,
    ) -> impl Future<Output = Result<Self::Upstream, DialFailure>> + Send;
}

/// Why a session was not admitted. Protocols render every variant as their
/// own wire error with an exhaustive `match`.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No such target for this protocol, or policy denies it. One variant
    /// for both, so a client cannot probe which targets exist.
    #[error("target \"{target}\" does not exist or is not allowed")]
    UnknownOrForbiddenTarget { target: String },
    /// Policy reviews connects to this target and no approved, unexpired
    /// access request covers this identity.
    #[error("access to target \"{target}\" needs an approved access request")]
    NeedsAccessApproval { target: String },
    /// The target's `max_sessions` are all open.
    #[error("target \"{target}\" already has its {limit} sessions open")]
    LimitReached { target: String, limit: usize },
    /// The credential source could not produce a credential.
    #[error("target \"{target}\" is unavailable: Warden could not obtain its credentials")]
    CredentialFailure { target: String },
    /// The upstream login failed.
    #[error("target \"{target}\" is unavailable: {failure}")]
    Unavailable {
        target: String,
        failure: DialFailure,
    },
    /// The session index could not be written, so the session would go
    /// unaudited: fail closed.
    #[error("Warden cannot record this session right now")]
    StoreFailure,
    /// The recording could not be opened: fail closed.
    #[error("Warden cannot record this session right now")]
    RecordingUnavailable,
}

/// Sessions open per target on this node, for `max_sessions`.
#[derive(Debug, Default)]
pub struct SessionCounts {
    open: Mutex<HashMap<String, usize>>,
}

impl SessionCounts {
    /// A slot on `target`, or `None` when `limit` are already open.
    fn take(self: &Arc<Self>, target: &str, limit: Option<usize>) -> Option<SessionSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(target.to_string()).or_default();
        if limit.is_some_and(|limit| *count >= limit) {
            return None;
        }
        *count += 1;
        Some(SessionSlot {
            counts: self.clone(),
            target: target.to_string(),
        })
    }

    /// Sessions open on `target` now.
    pub fn open(&self, target: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(target).copied().unwrap_or(0)
    }
}

/// One open session's place in [`SessionCounts`]; given back on drop.
#[derive(Debug)]
struct SessionSlot {
    counts: Arc<SessionCounts>,
    target: String,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut open = self
            .counts
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.target) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.target);
            }
        }
    }
}

/// A session that passed admission: its grant, index entry, credential,
/// lease and recording. The protocol relays, then calls [`Self::end`].
pub struct AdmittedSession {
    grant: ConnectGrant,
    info: SessionInfo,
    credential: UpstreamCredential,
    lease: LeaseGuard,
    recording: Arc<dyn SessionRecording>,
    _slot: SessionSlot,
}

impl AdmittedSession {
    pub fn grant(&self) -> &ConnectGrant {
        &self.grant
    }

    /// The session as the index knows it (its id, identity, target …).
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// The credential Warden logged in upstream with (its lease is held
    /// here, see [`Self::lease`]). Never shown to the client.
    pub fn credential(&self) -> &UpstreamCredential {
        &self.credential
    }

    /// The credential's lease, for ending the session when it ends.
    pub fn lease(&self) -> &LeaseGuard {
        &self.lease
    }

    pub fn recording(&self) -> &Arc<dyn SessionRecording> {
        &self.recording
    }

    /// The end bookkeeping every protocol shares: the lease is released
    /// (and that recorded), the recording closed, the index updated.
    pub async fn end(self, gateway: &Gateway, summary: SessionSummary) {
        let user = self.credential.user.clone();
        self.lease
            .release_recorded(self.recording.as_ref(), &user)
            .await;
        self.recording.finish(&summary);
        if let Err(error) = gateway
            .sessions
            .session_ended(&self.info.id, &summary)
            .await
        {
            tracing::error!(%error, session = %self.info.id, "cannot record the session's end");
        }
        tracing::info!(
            session = %self.info.id,
            protocol = %self.info.protocol,
            statements = summary.statements,
            bytes_from_client = summary.bytes_from_client,
            bytes_to_client = summary.bytes_to_client,
            reason = %summary.reason,
            "session ended"
        );
    }
}

/// Admits one authenticated client, or says why not. Every audit event of
/// the connect is written here, in this order: `connect.denied` (unknown,
/// forbidden, unapproved, over the limit) or `upstream.failure` (credential,
/// login) or `session.start`.
pub async fn admit<D: Dialer>(
    gateway: &Gateway,
    request: AdmissionRequest,
    dialer: D,
) -> Result<(AdmittedSession, D::Upstream), Refusal> {
    let audit = Audit {
        gateway,
        request: &request,
    };
    let grant = authorize(gateway, &request, &audit).await?;
    let target = grant.target.name.clone();
    let Some(slot) = gateway
        .session_counts
        .take(&target, grant.target.max_sessions)
    else {
        let limit = grant.target.max_sessions.unwrap_or_default();
        audit
            .denied(format!(
                "target \"{target}\" already has its {limit} sessions open"
            ))
            .await;
        return Err(Refusal::LimitReached { target, limit });
    };

    let info = SessionInfo::new(
        request.identity.clone(),
        &target,
        request.protocol,
        request.peer,
        request.client_tls,
    );
    let mut credential = match gateway.credentials.acquire(&grant, &info).await {
        Ok(credential) => credential,
        Err(error) => {
            crate::metrics::Metrics::add(&gateway.metrics.upstream_failures, 1);
            tracing::error!(%target, %error, "cannot obtain upstream credentials");
            audit
                .upstream_failure(&info.id, format!("cannot obtain credentials: {error}"))
                .await;
            return Err(Refusal::CredentialFailure { target });
        }
    };
    // Released on every path out, a failed login included.
    let lease = LeaseGuard::new(credential.lease.take());
    let upstream = match dialer.dial(&grant, &credential).await {
        Ok(upstream) => upstream,
        Err(failure) => {
            crate::metrics::Metrics::add(&gateway.metrics.upstream_failures, 1);
            tracing::warn!(%target, %failure, "upstream login failed");
            audit
                .upstream_failure(&info.id, failure.detail.clone())
                .await;
            return Err(Refusal::Unavailable { target, failure });
        }
    };

    if let Err(error) = gateway.sessions.session_started(&info).await {
        tracing::error!(%error, session = %info.id, "cannot index the session; refusing it");
        return Err(Refusal::StoreFailure);
    }
    let recording: Arc<dyn SessionRecording> = match gateway.recorder.open(&info) {
        Ok(recording) => Arc::from(recording),
        Err(error) => {
            tracing::error!(%error, session = %info.id, "cannot open the session recording; refusing it");
            end_unrecorded(gateway, &info.id, &error).await;
            return Err(Refusal::RecordingUnavailable);
        }
    };
    audit
        .write(
            "session.start",
            Some(&info.id),
            format!("{} session started", request.protocol),
        )
        .await;
    recording.record(EventKind::Start {
        identity: request.identity.clone(),
        target: target.clone(),
        protocol: request.protocol,
        client_addr: request.peer,
        client_tls: request.client_tls,
        upstream_user: credential.user.clone(),
    });
    lease.record_issued(recording.as_ref(), &credential.user);
    tracing::info!(
        session = %info.id,
        subject = %request.identity.subject,
        %target,
        protocol = %request.protocol,
        peer = %request.peer,
        tls = request.client_tls,
        "session started"
    );
    Ok((
        AdmittedSession {
            grant,
            info,
            credential,
            lease,
            recording,
            _slot: slot,
        },
        upstream,
    ))
}

/// Target lookup and connect policy: the grant, or the refusal (audited).
async fn authorize(
    gateway: &Gateway,
    request: &AdmissionRequest,
    audit: &Audit<'_>,
) -> Result<ConnectGrant, Refusal> {
    let refused = || Refusal::UnknownOrForbiddenTarget {
        target: request.target.clone(),
    };
    let Some(target) = gateway
        .config
        .target(&request.target)
        .filter(|target| target.protocol == request.protocol)
    else {
        tracing::warn!(peer = %request.peer, subject = %request.identity.subject, target = %request.target, "unknown target");
        audit
            .denied(format!(
                "no {} target named \"{}\"",
                request.protocol, request.target
            ))
            .await;
        return Err(refused());
    };
    let decision = gateway
        .policy
        .check_connect(&request.identity, &target.name);
    let detail = format!("policy \"{}\": {}", decision.rule_name(), decision.reason());
    match decision.action() {
        Action::Allow => {}
        Action::Review => {
            // A reviewed connect needs an approved, unexpired access request.
            if !gateway
                .reviews
                .has_access_grant(&request.identity, &target.name)
                .await
            {
                tracing::warn!(peer = %request.peer, subject = %request.identity.subject, target = %target.name, "connect needs an access grant");
                audit
                    .denied(format!("{detail}; no approved access request"))
                    .await;
                return Err(Refusal::NeedsAccessApproval {
                    target: target.name.clone(),
                });
            }
        }
        Action::Deny => {
            tracing::warn!(peer = %request.peer, subject = %request.identity.subject, target = %target.name, "connect denied");
            audit.denied(detail).await;
            return Err(refused());
        }
    }
    Ok(ConnectGrant {
        target: target.clone(),
        identity: request.identity.clone(),
        protocol: request.protocol,
        rule: decision.rule_name().to_string(),
        read_only: gateway.policy.is_read_only(&request.identity, &target.name),
    })
}

/// Closes the index entry of a session whose recording could not open.
async fn end_unrecorded(gateway: &Gateway, session_id: &str, error: &StoreError) {
    let summary = SessionSummary {
        reason: format!("recording unavailable: {error}"),
        ..SessionSummary::default()
    };
    if let Err(error) = gateway.sessions.session_ended(session_id, &summary).await {
        tracing::error!(%error, session = %session_id, "cannot record the session's end");
    }
}

/// Writes one connect's audit events, all with the same actor and addresses.
struct Audit<'a> {
    gateway: &'a Gateway,
    request: &'a AdmissionRequest,
}

impl Audit<'_> {
    async fn denied(&self, detail: String) {
        self.write("connect.denied", None, detail).await;
    }

    async fn upstream_failure(&self, session_id: &str, detail: String) {
        self.write("upstream.failure", Some(session_id), detail)
            .await;
    }

    /// A failed audit write is logged: the connect it describes is refused
    /// anyway, or (for `session.start`) already in the index.
    async fn write(&self, kind: &str, session_id: Option<&str>, detail: String) {
        let mut event = AuditEvent::new(kind, &self.request.identity.display_name(), detail);
        event.target = Some(self.request.target.clone());
        event.client_addr = Some(self.request.peer.to_string());
        event.session_id = session_id.map(str::to_string);
        if let Err(error) = self.gateway.sessions.audit(&event).await {
            tracing::warn!(%error, kind, "cannot write the audit event");
        }
    }
}
