//! The broker's entry point for Postgres listeners.

use crate::cancel::CancelRegistry;
use crate::client_error::PgClientError;
use async_trait::async_trait;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use warden_core::Gateway;
use warden_core::broker::{ConnectionHandler, Refusal};
use warden_core::config::ListenerConfig;

/// Serves Postgres clients. One per process: all Postgres listeners share its cancel keys.
pub struct PostgresHandler {
    gateway: Arc<Gateway>,
    cancels: Arc<CancelRegistry>,
}

impl PostgresHandler {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        PostgresHandler {
            gateway,
            cancels: CancelRegistry::new(),
        }
    }
}

#[async_trait]
impl ConnectionHandler for PostgresHandler {
    async fn serve(&self, stream: TcpStream, peer: SocketAddr, listener: Arc<ListenerConfig>) {
        crate::session::serve(
            self.gateway.clone(),
            self.cancels.clone(),
            stream,
            peer,
            listener,
        )
        .await;
    }

    async fn refuse(&self, mut stream: TcpStream, _peer: SocketAddr, refusal: Refusal) {
        // libpq reads an ErrorResponse even in place of its SSLRequest answer.
        let error = match refusal {
            Refusal::TooManyConnections => PgClientError::TooManyConnections,
            Refusal::ShuttingDown => PgClientError::ShuttingDown,
        };
        let _ = stream.write_all(&error.encode()).await;
        let _ = stream.shutdown().await;
    }
}
