//! One client connection from accept to close: handshake, authentication,
//! target and connect policy, upstream login, recording, command loop, end.

use crate::auth::{self, AuthFailure, NativePasswordVerifier};
use crate::codec::PacketStream;
use crate::command::{CommandLoop, Flow};
use crate::errors::ClientError;
use crate::handshake::{self, ClientHello};
use crate::packets::{STATUS_AUTOCOMMIT, ok_packet};
use crate::stream::BoxStream;
use crate::upstream::{self, Upstream};
use mysql_common::constants::CapabilityFlags as Caps;
use std::net::SocketAddr;
use tokio::net::TcpStream;
use tokio::time::Instant;
use warden_core::config::{ListenerConfig, Protocol, TargetConfig};
use warden_core::engines::{AuthContext, SessionRecording};
use warden_core::engines::{LeaseGuard, SessionEnd};
use warden_core::events::{AuditEvent, EventKind, SessionInfo, SessionSummary};
use warden_core::metrics::{Metrics, OpenSessionGuard};
use warden_core::{Gateway, Identity};

/// Runs one connection to its end. Never panics on client or upstream input.
pub async fn run(
    gateway: &Gateway,
    native: Option<&dyn NativePasswordVerifier>,
    tcp: TcpStream,
    peer: SocketAddr,
    listener: &ListenerConfig,
    connection_id: u32,
    threads: &std::sync::Arc<crate::threads::Threads>,
) {
    let _open = OpenSessionGuard::new(&gateway.metrics);
    let deadline = Instant::now() + gateway.config.server.handshake_timeout;
    let (mut client, mut hello) =
        match handshake::accept(tcp, gateway.tls.as_ref(), connection_id, deadline).await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::info!(%peer, %error, "mysql handshake failed");
                return;
            }
        };
    if !hello.tls && !peer.ip().is_loopback() && !listener.allow_plaintext {
        refuse(&mut client, hello.next_seq, ClientError::TlsRequired).await;
        return;
    }
    let target_name = hello.target_name().to_string();
    let context = AuthContext {
        client_addr: peer,
        protocol: Protocol::Mysql,
        target: target_name.clone(),
    };
    let identity = match auth::authenticate(
        gateway,
        native,
        &mut client,
        &mut hello,
        peer,
        deadline,
        &context,
    )
    .await
    {
        Ok(identity) => identity,
        Err(AuthFailure::Denied(reason)) => {
            Metrics::add(&gateway.metrics.auth_failures, 1);
            audit(
                gateway,
                "auth.failure",
                "-",
                &target_name,
                peer,
                None,
                &reason,
            )
            .await;
            tracing::info!(%peer, target = %target_name, %reason, "mysql authentication failed");
            refuse(&mut client, hello.next_seq, ClientError::AccessDenied).await;
            return;
        }
        Err(AuthFailure::Handshake(error)) => {
            tracing::info!(%peer, %error, "mysql authentication did not complete");
            return;
        }
    };
    let Some(target) = connectable(gateway, &identity, &target_name, peer).await else {
        refuse(&mut client, hello.next_seq, ClientError::AccessDenied).await;
        return;
    };
    let session = SessionInfo::new(identity, &target.name, Protocol::Mysql, peer, hello.tls);
    let (upstream, upstream_user, lease) = match login_upstream(gateway, target, &session, &hello)
        .await
    {
        Ok(connected) => connected,
        Err(message) => {
            Metrics::add(&gateway.metrics.upstream_failures, 1);
            tracing::warn!(session = %session.id, target = %target.name, %message, "mysql upstream unavailable");
            audit(
                gateway,
                "upstream.failure",
                &session.identity.display_name(),
                &target.name,
                peer,
                Some(&session.id),
                &message,
            )
            .await;
            refuse(
                &mut client,
                hello.next_seq,
                ClientError::UpstreamUnavailable(message),
            )
            .await;
            return;
        }
    };
    // Fail closed: a session that cannot be recorded does not start.
    let recording = match gateway.recorder.open(&session) {
        Ok(recording) => recording,
        Err(error) => {
            tracing::error!(session = %session.id, %error, "cannot open the session recording");
            let message = "Warden cannot record this session; try again later".to_string();
            refuse(
                &mut client,
                hello.next_seq,
                ClientError::UpstreamUnavailable(message),
            )
            .await;
            return;
        }
    };
    if let Err(error) = gateway.sessions.session_started(&session).await {
        tracing::warn!(session = %session.id, %error, "cannot index the session start");
    }
    audit(
        gateway,
        "session.start",
        &session.identity.display_name(),
        &target.name,
        peer,
        Some(&session.id),
        "mysql session started",
    )
    .await;
    recording.record(EventKind::Start {
        identity: session.identity.clone(),
        target: target.name.clone(),
        protocol: Protocol::Mysql,
        client_addr: peer,
        client_tls: hello.tls,
        upstream_user: upstream_user.clone(),
    });
    lease.record_issued(recording.as_ref(), &upstream_user);
    client.queue_packet(hello.next_seq, &ok_packet(0, STATUS_AUTOCOMMIT));
    let flushed = client.flush().await;
    if hello.caps.contains(Caps::CLIENT_COMPRESS) {
        client.start_compression();
    }
    let summary = if let Err(error) = flushed {
        SessionSummary {
            reason: format!("client: {error}"),
            ..SessionSummary::default()
        }
    } else {
        tracing::info!(
            session = %session.id,
            target = %target.name,
            who = %session.identity.display_name(),
            upstream_version = %upstream.server_version,
            upstream_tls = upstream.tls,
            "mysql session started"
        );
        let _thread = threads.register(
            connection_id,
            warden_core::review_store::principal(&session.identity),
            target.name.clone(),
            upstream.thread_id,
        );
        let session_end = std::sync::Arc::new(SessionEnd::default());
        let watcher = session_end.watch(&lease);

        let summary = serve_commands(
            gateway,
            &session,
            target,
            recording.as_ref(),
            client,
            upstream,
            hello.caps,
            &session_end,
            crate::command::Connection {
                threads,
                native,
                scramble: hello.scramble,
                collation: hello.collation,
            },
        )
        .await;
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        summary
    };
    lease
        .release_recorded(recording.as_ref(), &upstream_user)
        .await;
    recording.finish(&summary);
    if let Err(error) = gateway.sessions.session_ended(&session.id, &summary).await {
        tracing::warn!(session = %session.id, %error, "cannot index the session end");
    }
    tracing::info!(session = %session.id, reason = %summary.reason, statements = summary.statements, "mysql session ended");
}

#[allow(clippy::too_many_arguments)]
async fn serve_commands(
    gateway: &Gateway,
    session: &SessionInfo,
    target: &TargetConfig,
    recording: &dyn SessionRecording,
    client: PacketStream<BoxStream>,
    upstream: Upstream,
    client_caps: Caps,
    session_end: &SessionEnd,
    connection: crate::command::Connection<'_>,
) -> SessionSummary {
    let mut commands = CommandLoop::new(
        gateway,
        session,
        connection,
        target,
        recording,
        client,
        upstream,
        client_caps,
    );
    let reason = loop {
        let flow = tokio::select! {
            biased;
            _ = session_end.ended() => commands.end_with(session_end.reason()).await,
            flow = commands.next() => flow,
        };
        match flow {
            Flow::Continue => {}
            Flow::End(reason) => break reason,
        }
    };
    commands.close().await;
    SessionSummary {
        bytes_from_client: commands.bytes_from_client(),
        bytes_to_client: commands.bytes_to_client(),
        statements: commands.statements(),
        reason,
    }
}

/// The target, if it exists, speaks MySQL, and policy lets this identity in.
/// Unknown and forbidden targets look the same to the client.
async fn connectable<'g>(
    gateway: &'g Gateway,
    identity: &Identity,
    name: &str,
    peer: SocketAddr,
) -> Option<&'g TargetConfig> {
    let actor = identity.display_name();
    let Some(target) = gateway
        .config
        .target(name)
        .filter(|target| target.protocol == Protocol::Mysql)
    else {
        let detail = format!("no MySQL target named \"{name}\"");
        audit(gateway, "connect.denied", &actor, name, peer, None, &detail).await;
        return None;
    };
    let decision = gateway.policy.check_connect(identity, &target.name);
    // A reviewed connect needs an approved, unexpired access request.
    let granted = decision.action == warden_core::Action::Review
        && gateway
            .reviews
            .has_access_grant(identity, &target.name)
            .await;
    if !decision.is_allowed() && !granted {
        let detail = format!("policy \"{}\": {}", decision.rule_name(), decision.reason);
        audit(gateway, "connect.denied", &actor, name, peer, None, &detail).await;
        return None;
    }
    Some(target)
}

/// Acquires the target's credential and logs in upstream; errors name the target.
async fn login_upstream(
    gateway: &Gateway,
    target: &TargetConfig,
    session: &SessionInfo,
    hello: &ClientHello,
) -> Result<(Upstream, String, LeaseGuard), String> {
    if let Some(charset) =
        warden_core::lexing::mysql_collation_refused_charset(hello.collation.into())
    {
        return Err(format!(
            "client character set {charset} (collation {}) is refused by Warden: a backslash or \
             quote can hide inside its multibyte characters; connect with utf8mb4",
            hello.collation
        ));
    }
    let mut credential = gateway
        .credentials
        .acquire(target, session)
        .await
        .map_err(|error| {
            format!(
                "Warden has no credential for target \"{}\": {error}",
                target.name
            )
        })?;
    // Released on every path, including a failed login below.
    let lease = LeaseGuard::new(credential.lease.take());
    let connect = upstream::connect(target, &credential, hello.caps, hello.collation);
    match tokio::time::timeout(target.connect_timeout, connect).await {
        Ok(Ok(mut upstream)) => {
            check_lexing_state(target, &mut upstream).await?;
            Ok((upstream, credential.user.clone(), lease))
        }
        Ok(Err(error)) => Err(format!(
            "Warden cannot reach target \"{}\" ({}): {error}",
            target.name, target.address
        )),
        Err(_) => Err(format!(
            "Warden cannot reach target \"{}\" ({}): no answer within {:?}",
            target.name, target.address, target.connect_timeout
        )),
    }
}

/// Sends a connection-phase error and closes.
async fn refuse(client: &mut PacketStream<BoxStream>, seq: u8, error: ClientError) {
    handshake::tell_stream(client, seq, &handshake::HandshakeError::Client(error)).await;
}

#[allow(clippy::too_many_arguments)]
async fn audit(
    gateway: &Gateway,
    kind: &str,
    actor: &str,
    target: &str,
    peer: SocketAddr,
    session_id: Option<&str>,
    detail: &str,
) {
    let mut event = AuditEvent::new(kind, actor, detail);
    event.target = (!target.is_empty()).then(|| target.to_string());
    event.client_addr = Some(peer.to_string());
    event.session_id = session_id.map(str::to_string);
    if let Err(error) = gateway.sessions.audit(&event).await {
        tracing::warn!(%error, kind, "cannot write the audit event");
    }
}

/// Refuses an upstream session that starts in a lexing state Warden does not
/// model (see `warden_core::lexing`).
async fn check_lexing_state(target: &TargetConfig, upstream: &mut Upstream) -> Result<(), String> {
    let read = tokio::time::timeout(target.connect_timeout, upstream.lexing_state()).await;
    let (mode, charset) = match read {
        Ok(Ok(state)) => state,
        Ok(Err(error)) => {
            return Err(format!(
                "Warden cannot read the session's sql_mode on target \"{}\": {error}",
                target.name
            ));
        }
        Err(_) => {
            return Err(format!(
                "Warden cannot read the session's sql_mode on target \"{}\": no answer within {:?}",
                target.name, target.connect_timeout
            ));
        }
    };
    if let Some(refusal) = warden_core::lexing::mysql_sql_mode_refusal(&mode) {
        return Err(format!(
            "target \"{}\" cannot be used through Warden: its sessions start with {refusal}",
            target.name
        ));
    }
    if !warden_core::lexing::mysql_charset_is_safe(&charset) {
        return Err(format!(
            "target \"{}\" cannot be used through Warden: its sessions start with client character set {charset}",
            target.name
        ));
    }
    Ok(())
}
