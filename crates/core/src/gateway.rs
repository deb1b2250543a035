//! The context every session runs in: config, engines, metrics, shutdown.

use crate::config::Config;
use crate::engines::{Authenticator, CredentialSource, PolicyEngine, Recorder, SessionLog};
use crate::masking::MaskingEngine;
use crate::metrics::Metrics;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Shutdown happens in two steps: `draining` stops new connections, then
/// after the grace period `terminate` tells live sessions to close with an error.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    pub draining: CancellationToken,
    pub terminate: CancellationToken,
}

/// Everything a protocol crate needs to run a session. Built by the binary.
pub struct Gateway {
    pub config: Arc<Config>,
    pub authenticator: Arc<dyn Authenticator>,
    pub policy: Arc<dyn PolicyEngine>,
    pub credentials: Arc<dyn CredentialSource>,
    pub sessions: Arc<dyn SessionLog>,
    pub recorder: Arc<dyn Recorder>,
    pub masking: Arc<dyn MaskingEngine>,
    pub reviews: Arc<dyn crate::reviews::ReviewEngine>,
    pub metrics: Arc<Metrics>,
    /// Sessions open per target, for `max_sessions` (see [`crate::admission`]).
    pub session_counts: Arc<crate::admission::SessionCounts>,
    /// Client-facing TLS, when `[tls]` is configured.
    pub tls: Option<TlsAcceptor>,
    pub shutdown: Shutdown,
}
