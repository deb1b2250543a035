//! One client connection from accept to close: handshake, authentication,
//! target and connect policy, upstream login, recording, command loop, end.

use crate::admit::MyDialer;
use crate::auth::{self, AuthFailure, NativePasswordVerifier};
use crate::codec::PacketStream;
use crate::command::{CommandLoop, Flow};
use crate::errors::ClientError;
use crate::handshake;
use crate::packets::{STATUS_AUTOCOMMIT, ok_packet};
use crate::stream::BoxStream;
use crate::upstream::Upstream;
use mysql_common::constants::CapabilityFlags as Caps;
use std::net::SocketAddr;
use tokio::net::TcpStream;
use tokio::time::Instant;
use warden_core::Gateway;
use warden_core::admission::{AdmissionRequest, AdmittedSession, admit};
use warden_core::config::{ListenerConfig, Protocol};
use warden_core::engines::{AuthContext, SessionEnd};
use warden_core::events::{AuditEvent, SessionSummary};
use warden_core::metrics::{Metrics, OpenSessionGuard};

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
                &reason.to_string(),
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
    let request = AdmissionRequest {
        identity,
        target: target_name,
        protocol: Protocol::Mysql,
        peer,
        client_tls: hello.tls,
    };
    let dialer = MyDialer {
        caps: hello.caps,
        collation: hello.collation,
    };
    let (admitted, mut upstream) = match admit(gateway, request, dialer).await {
        Ok(admitted) => admitted,
        Err(refusal) => {
            let error = crate::admit::refusal_error(&refusal);
            refuse(&mut client, hello.next_seq, error).await;
            return;
        }
    };
    let session = admitted.info();
    let target = admitted.grant().target();
    // Views that read ruled tables or call stored functions, before the
    // client's first statement.
    let patterns = gateway.policy.ruled_tables(&session.identity, &target.name);
    let views = tokio::time::timeout(
        target.connect_timeout,
        crate::views::read(&mut upstream, &patterns, admitted.grant().read_only()),
    )
    .await;
    let (derived, view_functions) = match views {
        Ok(Ok((derived, functions))) => (derived.into(), functions.into()),
        failed => {
            let error = match failed {
                Ok(Err(error)) => error.to_string(),
                _ => "no answer in time".to_string(),
            };
            tracing::warn!(session = %session.id, %error, "cannot read which views read ruled tables");
            let message = format!(
                "Warden cannot read the views of target \"{}\" ({error}); try again later",
                target.name
            );
            refuse(
                &mut client,
                hello.next_seq,
                ClientError::UpstreamUnavailable(message),
            )
            .await;
            admitted
                .end(
                    gateway,
                    SessionSummary {
                        reason: format!("views: {error}"),
                        ..SessionSummary::default()
                    },
                )
                .await;
            return;
        }
    };
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
        let watcher = session_end.watch(admitted.lease());

        let summary = serve_commands(
            gateway,
            &admitted,
            client,
            upstream,
            hello.caps,
            &session_end,
            crate::command::Connection {
                threads,
                native,
                scramble: hello.scramble,
                collation: hello.collation,
                derived,
                view_functions,
            },
        )
        .await;
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        summary
    };
    admitted.end(gateway, summary).await;
}

async fn serve_commands(
    gateway: &Gateway,
    admitted: &AdmittedSession,
    client: PacketStream<BoxStream>,
    upstream: Upstream,
    client_caps: Caps,
    session_end: &SessionEnd,
    connection: crate::command::Connection<'_>,
) -> SessionSummary {
    let mut commands =
        CommandLoop::new(gateway, admitted, connection, client, upstream, client_caps);
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
