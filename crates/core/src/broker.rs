//! The connection broker: binds every `[[listener]]`, accepts connections, and
//! hands each one to its protocol's handler on its own task. It enforces the
//! connection limit and runs the two-step graceful shutdown.

use crate::config::{ListenerConfig, Protocol};
use crate::gateway::Gateway;
use async_trait::async_trait;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

/// Why a connection is turned away before its protocol handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    TooManyConnections,
    ShuttingDown,
}

/// A protocol's session entry point.
#[async_trait]
pub trait ConnectionHandler: Send + Sync + 'static {
    /// Runs one client connection to its end.
    async fn serve(&self, stream: TcpStream, peer: SocketAddr, listener: Arc<ListenerConfig>);

    /// Tells a client, in its protocol, why it cannot be served, then closes.
    async fn refuse(&self, stream: TcpStream, peer: SocketAddr, refusal: Refusal);
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("listener {address}: cannot bind: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("listener {0}: no handler for protocol {1}")]
    NoHandler(SocketAddr, Protocol),
}

/// Listeners that are bound but not yet accepting.
pub struct Broker {
    gateway: Arc<Gateway>,
    listeners: Vec<(TcpListener, Arc<ListenerConfig>, Arc<dyn ConnectionHandler>)>,
}

impl Broker {
    /// Binds every configured listener (fails if any cannot be bound).
    pub async fn bind(
        gateway: Arc<Gateway>,
        handlers: &HashMap<Protocol, Arc<dyn ConnectionHandler>>,
    ) -> Result<Broker, BrokerError> {
        let mut listeners = Vec::new();
        for config in &gateway.config.listeners {
            let handler = handlers
                .get(&config.protocol)
                .ok_or(BrokerError::NoHandler(config.listen, config.protocol))?
                .clone();
            let listener =
                TcpListener::bind(config.listen)
                    .await
                    .map_err(|source| BrokerError::Bind {
                        address: config.listen,
                        source,
                    })?;
            listeners.push((listener, Arc::new(config.clone()), handler));
        }
        Ok(Broker { gateway, listeners })
    }

    /// The addresses actually bound (useful when a config asks for port 0).
    pub fn local_addrs(&self) -> Vec<(Protocol, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|(l, c, _)| l.local_addr().ok().map(|a| (c.protocol, a)))
            .collect()
    }

    /// Accepts until `shutdown.draining` fires; then refuses new connections
    /// with a "shutting down" error while sessions finish for `shutdown_grace`,
    /// then fires `shutdown.terminate` and waits for them to close.
    pub async fn run(self) {
        let gateway = self.gateway;
        let limit = Arc::new(Semaphore::new(gateway.config.server.max_connections));
        let tracker = TaskTracker::new();
        let mut accept_loops = Vec::new();
        for (listener, config, handler) in self.listeners {
            let gateway = gateway.clone();
            let limit = limit.clone();
            let sessions = tracker.clone();
            accept_loops.push(tokio::spawn(accept_loop(
                gateway, listener, config, handler, limit, sessions,
            )));
        }
        gateway.shutdown.draining.cancelled().await;
        tracker.close();
        let grace = gateway.config.server.shutdown_grace;
        let open = gateway
            .metrics
            .sessions_open
            .load(std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            open_sessions = open,
            grace = %humantime::format_duration(grace),
            "shutting down: no new connections; waiting for sessions to finish"
        );
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!("grace period over: closing the remaining sessions");
            gateway.shutdown.terminate.cancel();
            if tokio::time::timeout(Duration::from_secs(5), tracker.wait())
                .await
                .is_err()
            {
                tracing::warn!("some sessions did not close within 5 s of being told to");
            }
        }
        for accept_loop in accept_loops {
            accept_loop.abort();
        }
        tracing::info!("all sessions closed");
    }
}

async fn accept_loop(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    config: Arc<ListenerConfig>,
    handler: Arc<dyn ConnectionHandler>,
    limit: Arc<Semaphore>,
    sessions: TaskTracker,
) {
    tracing::info!(protocol = %config.protocol, address = %config.listen, "listening");
    loop {
        let accepted = listener.accept().await;
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // EMFILE and friends: back off rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        if gateway.shutdown.draining.is_cancelled() {
            // Draining: tell new clients why instead of resetting them.
            gateway
                .metrics
                .connections_rejected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(async move {
                handler.refuse(stream, peer, Refusal::ShuttingDown).await;
            });
            continue;
        }
        match limit.clone().try_acquire_owned() {
            Ok(permit) => {
                let config = config.clone();
                sessions.spawn(async move {
                    handler.serve(stream, peer, config).await;
                    drop(permit);
                });
            }
            Err(_) => {
                gateway
                    .metrics
                    .connections_rejected
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(%peer, "connection limit reached; refusing");
                tokio::spawn(async move {
                    handler
                        .refuse(stream, peer, Refusal::TooManyConnections)
                        .await;
                });
            }
        }
    }
}
