//! One client connection from first byte to last: TLS negotiation, startup,
//! token exchange, target and connect policy, credentials, upstream login,
//! then the relay, and finally the session's end in the index and recording.

use crate::cancel::{CancelRegistry, UpstreamKey};
use crate::client_stream::MaybeTls;
use crate::errors::{PgError, sqlstate};
use crate::frame::{self, peek_header};
use crate::relay::{RelayContext, relay};
use crate::startup::{self, NEWEST_MINOR, StartupError, StartupMessage, StartupPacket};
use crate::upstream::{self, Login};
use bytes::{BufMut, BytesMut};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warden_core::config::{ListenerConfig, Protocol};
use warden_core::engines::AuthContext;
use warden_core::events::{AuditEvent, EventKind, SessionInfo, SessionSummary};
use warden_core::metrics::OpenSessionGuard;
use warden_core::{Gateway, Identity};

/// Longest password message accepted: room for large JWTs, far from a DoS.
const MAX_PASSWORD_MESSAGE: usize = 16 * 1024;

/// A connection that has completed startup and authentication.
struct Authenticated {
    stream: MaybeTls,
    startup: StartupMessage,
    /// The startup parameters to forward upstream (already checked).
    parameters: Vec<(String, String)>,
    identity: Identity,
    target_name: String,
}

/// Runs one client connection.
pub async fn serve(
    gateway: Arc<Gateway>,
    cancels: Arc<CancelRegistry>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<ListenerConfig>,
) {
    let metrics = gateway.metrics.clone();
    let _open = OpenSessionGuard::new(&metrics);
    let timeout = gateway.config.server.handshake_timeout;
    let handshake = tokio::time::timeout(
        timeout,
        handshake(&gateway, &cancels, stream, peer, &listener),
    )
    .await;
    let authenticated = match handshake {
        Ok(Some(authenticated)) => authenticated,
        Ok(None) => return,
        Err(_) => {
            tracing::info!(%peer, "handshake not completed within {timeout:?}; closed");
            return;
        }
    };
    run_session(gateway, cancels, authenticated, peer).await;
}

/// Answers `error` and closes.
async fn refuse(stream: &mut MaybeTls, error: PgError) {
    let _ = stream.write_all(&error.encode()).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}

/// Startup through authentication. `None` when the connection was answered and closed.
async fn handshake(
    gateway: &Gateway,
    cancels: &CancelRegistry,
    tcp: TcpStream,
    peer: SocketAddr,
    listener: &ListenerConfig,
) -> Option<Authenticated> {
    let mut stream = MaybeTls::Plain(tcp);
    let mut startup = None;
    // At most: GSSENCRequest, SSLRequest, then the StartupMessage.
    for _ in 0..3 {
        let packet = match startup::read_startup_packet(&mut stream).await {
            Ok(packet) => packet,
            Err(StartupError::Closed) => return None,
            Err(error) => {
                tracing::info!(%peer, %error, "bad startup packet");
                let code = match error {
                    StartupError::UnsupportedVersion { .. } => sqlstate::FEATURE_NOT_SUPPORTED,
                    _ => sqlstate::PROTOCOL_VIOLATION,
                };
                refuse(&mut stream, PgError::fatal(code, error.to_string())).await;
                return None;
            }
        };
        match packet {
            StartupPacket::SslRequest => {
                if stream.is_tls() {
                    refuse(
                        &mut stream,
                        PgError::fatal(sqlstate::PROTOCOL_VIOLATION, "SSLRequest inside TLS"),
                    )
                    .await;
                    return None;
                }
                let Some(acceptor) = gateway.tls.clone() else {
                    let _ = stream.write_all(b"N").await;
                    continue;
                };
                let MaybeTls::Plain(tcp) = stream else {
                    return None;
                };
                // Bytes sent before our answer were sent in clear but would be
                // read as if inside TLS (CVE-2021-23214): refuse them.
                let mut probe = [0u8; 1];
                if matches!(tcp.try_read(&mut probe), Ok(n) if n > 0) {
                    tracing::warn!(%peer, "bytes pipelined after SSLRequest; closing");
                    let mut plain = MaybeTls::Plain(tcp);
                    refuse(
                        &mut plain,
                        PgError::fatal(
                            sqlstate::PROTOCOL_VIOLATION,
                            "received unencrypted data after SSL request",
                        ),
                    )
                    .await;
                    return None;
                }
                let mut tcp = tcp;
                if tcp.write_all(b"S").await.is_err() {
                    return None;
                }
                match acceptor.accept(tcp).await {
                    Ok(tls) => stream = MaybeTls::ServerTls(Box::new(tls)),
                    Err(error) => {
                        tracing::info!(%peer, %error, "client TLS handshake failed");
                        return None;
                    }
                }
            }
            StartupPacket::GssEncRequest => {
                if stream.is_tls() {
                    return None;
                }
                let _ = stream.write_all(b"N").await;
            }
            StartupPacket::Cancel { process_id, secret } => {
                handle_cancel(cancels, process_id, &secret, peer).await;
                return None;
            }
            StartupPacket::Startup(message) => {
                startup = Some(message);
                break;
            }
        }
    }
    let Some(startup) = startup else {
        refuse(
            &mut stream,
            PgError::fatal(sqlstate::PROTOCOL_VIOLATION, "expected a startup message"),
        )
        .await;
        return None;
    };

    if !stream.is_tls() && !peer.ip().is_loopback() && !listener.allow_plaintext {
        refuse(
            &mut stream,
            PgError::fatal(
                sqlstate::INVALID_AUTHORIZATION,
                "TLS is required for connections from outside this host",
            )
            .with_hint("Connect with sslmode=require (or verify-full)."),
        )
        .await;
        return None;
    }

    let parameters = match startup::forwardable_parameters(&startup) {
        Ok(parameters) => parameters,
        Err(name) => {
            let error = if name == "replication" {
                PgError::fatal(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    "replication connections are not allowed through Warden",
                )
            } else {
                PgError::fatal(
                    sqlstate::INSUFFICIENT_PRIVILEGE,
                    format!("startup parameter {name} is not allowed through Warden"),
                )
                .with_hint("Session identity and read-only settings are set by Warden's policy.")
            };
            refuse(&mut stream, error).await;
            return None;
        }
    };

    let protocol_options = startup::protocol_options(&startup);
    if startup.minor > NEWEST_MINOR || !protocol_options.is_empty() {
        let minor = startup.minor.min(NEWEST_MINOR);
        let mut body = BytesMut::new();
        body.put_i32((3 << 16) | i32::from(minor));
        body.put_i32(protocol_options.len() as i32);
        for option in &protocol_options {
            body.put_slice(option.as_bytes());
            body.put_u8(0);
        }
        let mut out = BytesMut::new();
        frame::put_message(&mut out, frame::backend::NEGOTIATE_PROTOCOL_VERSION, &body);
        if stream.write_all(&out).await.is_err() {
            return None;
        }
    }

    let target_name = startup
        .parameter("database")
        .or_else(|| startup.parameter("user"))
        .unwrap_or("")
        .to_string();

    // Ask for the token or access key as a cleartext password (safe: TLS or loopback).
    let mut request = BytesMut::new();
    frame::put_message(
        &mut request,
        frame::backend::AUTHENTICATION,
        &3i32.to_be_bytes(),
    );
    if stream.write_all(&request).await.is_err() {
        return None;
    }
    let password = match read_password(&mut stream).await {
        Ok(Some(password)) => password,
        Ok(None) => return None,
        Err(error) => {
            refuse(&mut stream, error).await;
            return None;
        }
    };

    let context = AuthContext {
        client_addr: peer,
        protocol: Protocol::Postgres,
        target: target_name.clone(),
    };
    let identity = match gateway
        .authenticator
        .authenticate(&password, &context)
        .await
    {
        Ok(identity) => identity,
        Err(error) => {
            gateway
                .metrics
                .auth_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(%peer, target = %target_name, reason = %error.reason, "authentication failed");
            let mut event = AuditEvent::new("auth.failure", "-", error.reason.clone());
            event.target = Some(target_name.clone());
            event.client_addr = Some(peer.to_string());
            if let Err(error) = gateway.sessions.audit(&event).await {
                tracing::error!(%error, "cannot write audit event");
            }
            refuse(&mut stream, PgError::auth_failed()).await;
            return None;
        }
    };
    Some(Authenticated {
        stream,
        startup,
        parameters,
        identity,
        target_name,
    })
}

/// Reads the PasswordMessage. `Ok(None)` when the client hung up (psql does
/// this to prompt for a password, then reconnects).
async fn read_password(stream: &mut MaybeTls) -> Result<Option<SecretString>, PgError> {
    let mut header = [0u8; frame::HEADER_LEN];
    if stream.read_exact(&mut header).await.is_err() {
        return Ok(None);
    }
    let protocol_error =
        |message: &str| PgError::fatal(sqlstate::PROTOCOL_VIOLATION, message.to_string());
    let (tag, len) = peek_header(&header)
        .map_err(|e| protocol_error(&e.to_string()))?
        .ok_or_else(|| protocol_error("short message"))?;
    if tag != frame::frontend::PASSWORD {
        return Err(protocol_error(&format!(
            "expected a password message, got message type '{}'",
            tag.escape_ascii()
        )));
    }
    if len > MAX_PASSWORD_MESSAGE {
        return Err(protocol_error(&format!(
            "password message of {len} bytes is larger than {MAX_PASSWORD_MESSAGE}"
        )));
    }
    let mut body = vec![0u8; len - frame::HEADER_LEN];
    if stream.read_exact(&mut body).await.is_err() {
        return Ok(None);
    }
    let text = match body.split_last() {
        Some((0, text)) => text,
        _ => return Err(protocol_error("password message is not NUL-terminated")),
    };
    let text = String::from_utf8(text.to_vec()).map_err(|_| PgError::auth_failed())?;
    Ok(Some(SecretString::from(text)))
}

async fn handle_cancel(cancels: &CancelRegistry, process_id: i32, secret: &[u8], peer: SocketAddr) {
    match cancels.lookup(process_id, secret) {
        Some(key) => {
            tracing::info!(%peer, target = %key.target.name, "forwarding cancel request");
            key.held.notify_waiters();
            if let Err(error) =
                upstream::send_cancel(&key.target, key.process_id, &key.secret_key).await
            {
                tracing::warn!(%error, target = %key.target.name, "cancel request failed");
            }
        }
        None => tracing::info!(%peer, "cancel request with an unknown key ignored"),
    }
}

/// From an authenticated connection to the end of the session.
async fn run_session(
    gateway: Arc<Gateway>,
    cancels: Arc<CancelRegistry>,
    authenticated: Authenticated,
    peer: SocketAddr,
) {
    let Authenticated {
        mut stream,
        startup,
        mut parameters,
        identity,
        target_name,
    } = authenticated;
    let config = gateway.config.clone();
    let audit_denied = |detail: String| {
        let mut event = AuditEvent::new("connect.denied", &identity.subject, detail);
        event.target = Some(target_name.clone());
        event.client_addr = Some(peer.to_string());
        event
    };

    let target = config
        .target(&target_name)
        .filter(|t| t.protocol == Protocol::Postgres);
    let Some(target) = target else {
        tracing::warn!(%peer, subject = %identity.subject, target = %target_name, "unknown target");
        let _ = gateway
            .sessions
            .audit(&audit_denied("unknown target".into()))
            .await;
        refuse(&mut stream, PgError::target_refused(&target_name)).await;
        return;
    };
    let decision = gateway.policy.check_connect(&identity, &target.name);
    // A reviewed connect needs an approved, unexpired access request.
    let granted = decision.action == warden_core::Action::Review
        && gateway
            .reviews
            .has_access_grant(&identity, &target.name)
            .await;
    if decision.action == warden_core::Action::Review && !granted {
        tracing::warn!(%peer, subject = %identity.subject, target = %target.name, rule = decision.rule_name(), "connect needs an access grant");
        let _ = gateway.sessions.audit(&audit_denied(decision.reason)).await;
        refuse(
            &mut stream,
            PgError::fatal(
                sqlstate::INSUFFICIENT_PRIVILEGE,
                format!("access to target \"{}\" needs an approved access request", target.name),
            )
            .with_hint(format!(
                "Run: warden access request --target {} --for 1h --reason \"…\", and connect again once it is approved.",
                target.name
            )),
        )
        .await;
        return;
    }
    if !decision.is_allowed() && !granted {
        tracing::warn!(%peer, subject = %identity.subject, target = %target.name, rule = decision.rule_name(), "connect denied");
        let _ = gateway.sessions.audit(&audit_denied(decision.reason)).await;
        refuse(&mut stream, PgError::target_refused(&target_name)).await;
        return;
    }

    let session = SessionInfo::new(
        identity.clone(),
        &target.name,
        Protocol::Postgres,
        peer,
        stream.is_tls(),
    );
    let mut credential = match gateway.credentials.acquire(target, &session).await {
        Ok(credential) => credential,
        Err(error) => {
            gateway
                .metrics
                .upstream_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(target = %target.name, %error, "cannot obtain upstream credentials");
            refuse(
                &mut stream,
                PgError::fatal(
                    sqlstate::CANNOT_CONNECT,
                    format!("target \"{}\" is unavailable: Warden could not obtain its credentials", target.name),
                )
                .with_hint("This is a Warden configuration problem; the Warden log names the secret reference."),
            )
            .await;
            return;
        }
    };
    // Released on every path out of this function.
    let lease = warden_core::engines::LeaseGuard::new(credential.lease.take());
    if gateway.policy.is_read_only(&identity, &target.name) {
        // A second wall behind statement policy: the upstream itself refuses writes.
        parameters.push(("default_transaction_read_only".into(), "on".into()));
    }
    let login = Login {
        user: &credential.user,
        password: &credential.password,
        database: target.upstream_database(),
        parameters: &parameters,
    };
    let upstream = match upstream::connect(target, login).await {
        Ok(upstream) => upstream,
        Err(error) => {
            gateway
                .metrics
                .upstream_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(target = %target.name, %error, "upstream connection failed");
            let cause = match &error {
                upstream::UpstreamError::Connect { .. } => "the database is unreachable",
                upstream::UpstreamError::Timeout(_) => "the database did not answer in time",
                upstream::UpstreamError::Tls(_) => "TLS to the database failed",
                upstream::UpstreamError::Refused { .. } => "the database refused Warden's login",
                _ => "the connection to the database failed",
            };
            let mut pg_error = PgError::fatal(
                sqlstate::CANNOT_CONNECT,
                format!("target \"{}\" is unavailable: {cause}", target.name),
            );
            if let Some(code) = error.upstream_code() {
                pg_error = pg_error.with_detail(format!("upstream SQLSTATE {code}"));
            }
            refuse(&mut stream, pg_error).await;
            return;
        }
    };

    if let Some(refusal) = upstream
        .parameters
        .iter()
        .find_map(|(name, value)| warden_core::lexing::pg_setting_refusal(name, value))
    {
        // The role's or database's own settings start the session in a
        // lexing state Warden cannot judge under.
        tracing::warn!(target = %target.name, %refusal, "upstream session starts in an unsupported lexing state; refusing it");
        refuse(
            &mut stream,
            PgError::fatal(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!(
                    "target \"{}\" cannot be used through Warden: {refusal}",
                    target.name
                ),
            ),
        )
        .await;
        return;
    }
    if let Err(error) = gateway.sessions.session_started(&session).await {
        tracing::error!(%error, "cannot index the session; refusing it");
        refuse(
            &mut stream,
            PgError::fatal(
                sqlstate::SYSTEM_ERROR,
                "Warden cannot record this session right now",
            ),
        )
        .await;
        return;
    }
    let recording: Arc<dyn warden_core::engines::SessionRecording> =
        match gateway.recorder.open(&session) {
            Ok(recording) => Arc::from(recording),
            Err(error) => {
                tracing::error!(%error, "cannot open the session recording; refusing it");
                let summary = SessionSummary {
                    reason: format!("recording unavailable: {error}"),
                    ..SessionSummary::default()
                };
                let _ = gateway.sessions.session_ended(&session.id, &summary).await;
                refuse(
                    &mut stream,
                    PgError::fatal(
                        sqlstate::SYSTEM_ERROR,
                        "Warden cannot record this session right now",
                    ),
                )
                .await;
                return;
            }
        };
    recording.record(EventKind::Start {
        identity: identity.clone(),
        target: target.name.clone(),
        protocol: Protocol::Postgres,
        client_addr: peer,
        client_tls: stream.is_tls(),
        upstream_user: credential.user.clone(),
    });
    lease.record_issued(recording.as_ref(), &credential.user);
    tracing::info!(
        session = %session.id,
        subject = %identity.subject,
        target = %target.name,
        %peer,
        tls = stream.is_tls(),
        "session started"
    );

    // Our own cancel key: 32 bytes for protocol 3.2 clients, 4 for 3.0.
    let secret_len = if startup.minor >= 2 { 32 } else { 4 };
    let cancel_hold = Arc::new(tokio::sync::Notify::new());
    let (process_id, secret, _registration) = cancels.register(
        UpstreamKey {
            target: Arc::new(target.clone()),
            process_id: upstream.process_id,
            secret_key: upstream.secret_key.clone(),
            held: cancel_hold.clone(),
        },
        secret_len,
    );
    let mut greeting = BytesMut::new();
    frame::put_message(
        &mut greeting,
        frame::backend::AUTHENTICATION,
        &0i32.to_be_bytes(),
    );
    for (name, value) in &upstream.parameters {
        let mut body = Vec::with_capacity(name.len() + value.len() + 2);
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
        frame::put_message(&mut greeting, frame::backend::PARAMETER_STATUS, &body);
    }
    let mut key_body = process_id.to_be_bytes().to_vec();
    key_body.extend_from_slice(&secret);
    frame::put_message(&mut greeting, frame::backend::BACKEND_KEY_DATA, &key_body);
    greeting.extend_from_slice(&upstream.ready_for_query);

    let outcome = if stream.write_all(&greeting).await.is_ok() {
        let (client_read, client_write) = stream.into_split();
        let (upstream_read, upstream_write) = upstream.stream.into_split();
        let masker = gateway.masking.for_session(&identity, &target.name);
        let catalog = masker
            .as_ref()
            .filter(|masker| masker.has_column_rules())
            .map(|_| {
                Arc::new(crate::catalog::Catalog::new(
                    target.clone(),
                    credential.user.clone(),
                    credential.password.clone(),
                ))
            });
        let session_end = Arc::new(warden_core::engines::SessionEnd::default());
        let watcher = session_end.watch(&lease);
        let context = RelayContext {
            gateway: gateway.clone(),
            identity: identity.clone(),
            target: target.name.clone(),
            recording: recording.clone(),
            max_message: usize::try_from(config.server.max_message_size.0).unwrap_or(usize::MAX),
            masker,
            catalog,
            session_end,
            capture_results: config.recording.capture_results,
            session_id: session.id.clone(),
            cancel_hold,
            capture_raw: config.recording.capture_raw && config.recording.encryption_key.is_some(),
        };
        let outcome = relay(
            &context,
            client_read,
            client_write,
            upstream_read,
            upstream_write,
            BytesMut::new(),
        )
        .await;
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        outcome
    } else {
        crate::relay::RelayOutcome {
            reason: "client closed the connection".into(),
            ..Default::default()
        }
    };
    let summary = SessionSummary {
        bytes_from_client: outcome.bytes_from_client,
        bytes_to_client: outcome.bytes_to_client,
        statements: outcome.statements,
        reason: outcome.reason,
    };
    lease
        .release_recorded(recording.as_ref(), &credential.user)
        .await;
    recording.finish(&summary);
    if let Err(error) = gateway.sessions.session_ended(&session.id, &summary).await {
        tracing::error!(%error, session = %session.id, "cannot record the session's end");
    }
    tracing::info!(
        session = %session.id,
        statements = summary.statements,
        bytes_from_client = summary.bytes_from_client,
        bytes_to_client = summary.bytes_to_client,
        reason = %summary.reason,
        "session ended"
    );
}
