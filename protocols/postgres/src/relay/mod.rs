//! The relay: forwards bytes between client and upstream, looking inside only
//! the messages policy and recording need.
//!
//! Both directions run as two futures in one task (no cross-thread wake-ups),
//! each reading into a buffer, scanning frame headers and writing everything
//! it read in one call — never one write per DataRow. Large frames that need
//! no inspection (DataRow, CopyData) stream through without being buffered whole.
//!
//! A denied statement is not answered by Warden directly: its text is replaced
//! by a marker that fails to parse upstream, and the upstream's syntax error is
//! swapped for Warden's `42501` on the way back. The server thus aborts the
//! transaction and skips to Sync exactly as it would for its own permission
//! error, and responses stay in order even when the client pipelines.
//!
//! Modules: [`pump`] runs the two directions over one [`scan`]ner each; the
//! client's frames go to [`client_policy`] (with [`bind`], [`function_call`]
//! and [`denial`]), the
//! upstream's to [`upstream_inspect`] (with [`mask_rows`] and [`lexing`]);
//! [`pending`] matches answers to requests and [`record`] writes statements.

mod bind;
mod client_policy;
mod denial;
mod execute;
mod function_call;
mod lexing;
mod mask_rows;
mod pending;
mod pump;
mod record;
mod scan;
#[cfg(test)]
mod tests;
mod upstream_inspect;

use crate::catalog::Catalog;
use crate::client_error::PgClientError;
use crate::client_stream::{ReadHalfAny, WriteHalfAny};
use bytes::BytesMut;
use pending::Shared;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::AsyncWriteExt;
use warden_core::engines::{SessionEnd, SessionRecording};
use warden_core::masking::SessionMasker;
use warden_core::{Gateway, Identity};

/// Per-session inputs of the relay.
pub struct RelayContext {
    pub gateway: Arc<Gateway>,
    pub identity: Identity,
    pub target: String,
    pub recording: Arc<dyn SessionRecording>,
    pub max_message: usize,
    /// The session's masking rules; `None` when none apply (results pass undecoded).
    pub masker: Option<Arc<dyn SessionMasker>>,
    /// Column names for column rules; set when the masker has column rules.
    pub catalog: Option<Arc<Catalog>>,
    /// Ends the session from outside (its credential's lease ended).
    pub session_end: Arc<SessionEnd>,
    /// Record result rows (`[recording] capture_results`).
    pub capture_results: bool,
    /// The session's id (reviews are bound to it).
    pub session_id: String,
    /// Woken by the client's cancel request: withdraws a held statement's review.
    pub cancel_hold: Arc<tokio::sync::Notify>,
    /// Record rows as the upstream sent them, before masking (`capture_raw`;
    /// allowed only with an encrypted recording).
    pub capture_raw: bool,
    /// Relations that read ruled tables (views, partitions), for policy.
    pub derived: Arc<[warden_core::request::DerivedRelation]>,
    /// Views that call volatile functions, for policy.
    pub view_functions: Arc<[warden_core::request::ViewFunction]>,
}

/// How the relay ended.
#[derive(Debug, Default)]
pub struct RelayOutcome {
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
    pub statements: u64,
    pub reason: String,
}

/// Why one direction stopped.
enum Stop {
    ClientClosed,
    ClientTerminated,
    UpstreamClosed,
    Shutdown,
    Ended(String),
    Fatal(ProtocolError),
    Io(IoFailure),
}

/// A protocol error that ends the session; the client gets it as a FATAL.
#[derive(Debug, thiserror::Error)]
enum ProtocolError {
    #[error(transparent)]
    Client(#[from] client_policy::ClientFrameError),
    #[error(transparent)]
    Upstream(#[from] upstream_inspect::UpstreamFrameError),
}

/// A read or write that failed on one side.
#[derive(Debug, thiserror::Error)]
enum IoFailure {
    #[error("reading from client: {0}")]
    ReadClient(std::io::Error),
    #[error("writing to upstream: {0}")]
    WriteUpstream(std::io::Error),
    #[error("reading from upstream: {0}")]
    ReadUpstream(std::io::Error),
    #[error("writing to client: {0}")]
    WriteClient(std::io::Error),
}

/// Runs the relay until either side closes, a fatal protocol error, or shutdown.
pub async fn relay(
    context: &RelayContext,
    mut client_read: ReadHalfAny,
    mut client_write: WriteHalfAny,
    mut upstream_read: ReadHalfAny,
    mut upstream_write: WriteHalfAny,
    leftover_from_client: BytesMut,
) -> RelayOutcome {
    let shared = Shared::new();
    let from_client = AtomicU64::new(0);
    let to_client = AtomicU64::new(0);
    let client_direction = pump::client_to_upstream(
        context,
        &shared,
        &mut client_read,
        &mut upstream_write,
        leftover_from_client,
        &from_client,
    );
    let stop = {
        let upstream_direction = pump::upstream_to_client(
            context,
            &shared,
            &mut upstream_read,
            &mut client_write,
            &to_client,
        );
        tokio::select! {
            stop = client_direction => stop,
            stop = upstream_direction => stop,
        }
    };
    let reason = match stop {
        Stop::ClientClosed => "client closed the connection".to_string(),
        Stop::ClientTerminated => "client ended the session".to_string(),
        Stop::UpstreamClosed => "upstream closed the connection".to_string(),
        Stop::Shutdown => "closed by Warden shutdown".to_string(),
        Stop::Ended(reason) => reason,
        Stop::Fatal(error) => {
            let message = error.to_string();
            let _ = client_write
                .write_all(&PgClientError::RelayViolation(message.clone()).encode())
                .await;
            format!("protocol error: {message}")
        }
        Stop::Io(error) => format!("connection error: {error}"),
    };
    let _ = client_write.shutdown().await;
    let _ = upstream_write.shutdown().await;
    RelayOutcome {
        bytes_from_client: from_client.load(Ordering::Relaxed),
        bytes_to_client: to_client.load(Ordering::Relaxed),
        statements: shared.statements.load(Ordering::Relaxed),
        reason,
    }
}
