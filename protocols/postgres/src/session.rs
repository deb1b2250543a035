//! One client connection from first byte to last: TLS negotiation, startup,
//! token exchange, target and connect policy, credentials, upstream login,
//! then the relay, and finally the session's end in the index and recording.

use crate::admit::PgDialer;
use crate::cancel::{CancelRegistry, UpstreamKey};
use crate::client_error::PgClientError;
use crate::client_stream::MaybeTls;
use crate::frame::{self, peek_header};
use crate::relay::{RelayContext, relay};
use crate::startup::{self, NEWEST_MINOR, StartupError, StartupMessage, StartupPacket};
use crate::upstream;
use bytes::{BufMut, BytesMut};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warden_core::admission::{AdmissionRequest, admit};
use warden_core::config::{ListenerConfig, Protocol};
use warden_core::engines::AuthContext;
use warden_core::events::{AuditEvent, SessionSummary};
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
async fn refuse(stream: &mut MaybeTls, error: PgClientError) {
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
                let error = match error {
                    StartupError::UnsupportedVersion { .. } => {
                        PgClientError::UnsupportedVersion(error.to_string())
                    }
                    _ => PgClientError::StartupViolation(error.to_string()),
                };
                refuse(&mut stream, error).await;
                return None;
            }
        };
        match packet {
            StartupPacket::SslRequest => {
                if stream.is_tls() {
                    refuse(
                        &mut stream,
                        PgClientError::StartupViolation("SSLRequest inside TLS".into()),
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
                        PgClientError::StartupViolation(
                            "received unencrypted data after SSL request".into(),
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
            PgClientError::StartupViolation("expected a startup message".into()),
        )
        .await;
        return None;
    };

    if !stream.is_tls() && !peer.ip().is_loopback() && !listener.allow_plaintext {
        refuse(&mut stream, PgClientError::TlsRequired).await;
        return None;
    }

    let parameters = match startup::forwardable_parameters(&startup) {
        Ok(parameters) => parameters,
        Err(name) => {
            let error = if name == "replication" {
                PgClientError::Replication
            } else {
                PgClientError::StartupParameter(name.to_string())
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
            tracing::warn!(%peer, target = %target_name, reason = %error, "authentication failed");
            let mut event = AuditEvent::new("auth.failure", "-", error.to_string());
            event.target = Some(target_name.clone());
            event.client_addr = Some(peer.to_string());
            if let Err(error) = gateway.sessions.audit(&event).await {
                tracing::error!(%error, "cannot write audit event");
            }
            refuse(&mut stream, PgClientError::AuthFailed).await;
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
async fn read_password(stream: &mut MaybeTls) -> Result<Option<SecretString>, PgClientError> {
    let mut header = [0u8; frame::HEADER_LEN];
    if stream.read_exact(&mut header).await.is_err() {
        return Ok(None);
    }
    let protocol_error = |message: &str| PgClientError::StartupViolation(message.to_string());
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
    let text = String::from_utf8(text.to_vec()).map_err(|_| PgClientError::AuthFailed)?;
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
        parameters,
        identity,
        target_name,
    } = authenticated;
    let config = gateway.config.clone();
    let request = AdmissionRequest {
        identity,
        target: target_name,
        protocol: Protocol::Postgres,
        peer,
        client_tls: stream.is_tls(),
    };
    let dialer = PgDialer { parameters };
    let (admitted, mut upstream) = match admit(&gateway, request, dialer).await {
        Ok(admitted) => admitted,
        Err(refusal) => {
            refuse(&mut stream, PgClientError::NotAdmitted(refusal)).await;
            return;
        }
    };
    let target = admitted.grant().target();
    let identity = admitted.grant().identity();
    let recording = admitted.recording().clone();

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

    // Views and partitions of ruled tables and views with volatile calls,
    // before the client's first statement.
    let patterns = gateway.policy.ruled_tables(identity, &target.name);
    let read_only = admitted.grant().read_only();
    let (derived, view_functions) = match crate::session_catalog::read(
        &mut upstream,
        &patterns,
        read_only,
    )
    .await
    {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(session = %admitted.id(), %error, "cannot read which views and partitions read ruled tables or call volatile functions");
            refuse(
                &mut stream,
                PgClientError::CatalogUnavailable(format!(
                    "Warden cannot read the catalog of target \"{}\" ({error}); try again later",
                    target.name
                )),
            )
            .await;
            admitted
                .end(
                    &gateway,
                    SessionSummary {
                        reason: format!("catalog: {error}"),
                        ..SessionSummary::default()
                    },
                )
                .await;
            return;
        }
    };
    let outcome = if stream.write_all(&greeting).await.is_ok() {
        let (client_read, client_write) = stream.into_split();
        let (upstream_read, upstream_write) = upstream.stream.into_split();
        let masker = gateway.masking.for_session(identity, &target.name);
        let catalog = masker
            .as_ref()
            .filter(|masker| masker.has_column_rules())
            .map(|_| {
                Arc::new(crate::catalog::Catalog::new(
                    target.clone(),
                    admitted.credential().user.clone(),
                    admitted.credential().password.clone(),
                    derived.clone(),
                ))
            });
        let session_end = Arc::new(warden_core::engines::SessionEnd::default());
        let watcher = session_end.watch(admitted.lease());
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
            session_id: admitted.id().to_string(),
            cancel_hold,
            capture_raw: config.recording.capture_raw && config.recording.encryption_key.is_some(),
            derived,
            view_functions,
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
    admitted.end(&gateway, summary).await;
}
