//! Warden's MySQL/MariaDB protocol crate: a MySQL server towards clients
//! (HandshakeV10, TLS, token or access-key authentication), a MySQL client
//! towards the upstream (native, caching_sha2, ed25519, cleartext over TLS),
//! and a command relay that judges every statement with policy, records it,
//! and forwards result rows untouched.
//!
//! It knows only the wire protocol; identity, policy, credentials, the store
//! and recordings are reached through `warden_core`'s engine traits.

mod admit;
mod auth;
mod codec;
mod command;
mod compress;
mod errors;
mod handshake;
mod local_infile;
mod masking;
mod packets;
pub mod probe;
mod relay;
mod session;
mod statements;
mod stream;
mod threads;
mod tls;
mod upstream;
mod views;

pub use auth::NativePasswordVerifier;
pub use errors::ACCESS_DENIED;

use async_trait::async_trait;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::net::TcpStream;
use warden_core::Gateway;
use warden_core::broker::{ConnectionHandler, Refusal};
use warden_core::config::ListenerConfig;

/// Serves `protocol = "mysql"` listeners.
pub struct MysqlHandler {
    gateway: Arc<Gateway>,
    native: Option<Arc<dyn NativePasswordVerifier>>,
    next_connection_id: AtomicU32,
    threads: Arc<threads::Threads>,
}

impl MysqlHandler {
    /// A handler that authenticates every client through `gateway.authenticator`
    /// (tokens and keys arrive with `mysql_clear_password`).
    pub fn new(gateway: Arc<Gateway>) -> Self {
        MysqlHandler {
            gateway,
            native: None,
            next_connection_id: AtomicU32::new(1),
            threads: Arc::default(),
        }
    }

    /// Also accepts access keys sent with `mysql_native_password`, checked by `verifier`.
    pub fn with_native_password(mut self, verifier: Arc<dyn NativePasswordVerifier>) -> Self {
        self.native = Some(verifier);
        self
    }
}

#[async_trait]
impl ConnectionHandler for MysqlHandler {
    async fn serve(&self, stream: TcpStream, peer: SocketAddr, listener: Arc<ListenerConfig>) {
        let id = self.next_connection_id.fetch_add(1, Ordering::Relaxed);
        session::run(
            &self.gateway,
            self.native.as_deref(),
            stream,
            peer,
            &listener,
            id,
            &self.threads,
        )
        .await;
    }

    async fn refuse(&self, stream: TcpStream, peer: SocketAddr, refusal: Refusal) {
        let error = match refusal {
            Refusal::TooManyConnections => errors::ClientError::TooManyConnections,
            Refusal::ShuttingDown => errors::ClientError::Shutdown,
        };
        tracing::debug!(%peer, ?refusal, "refusing mysql connection");
        // A server may answer with an ERR instead of the greeting (sequence 0).
        let mut stream = stream;
        handshake::tell(&mut stream, 0, &handshake::HandshakeError::Client(error)).await;
    }
}
