//! The admin HTTP server on `admin_listen`: `/healthz` for load balancers,
//! `/metrics` in Prometheus' text format, the REST API ([`api`]) and the
//! reviewer web UI ([`ui`]).

pub mod api;
pub mod ui;

pub use api::{ApiState, api_router};
pub use ui::{UiState, ui_router};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use warden_core::metrics::Metrics;

/// Builds the admin router.
pub fn admin_router(
    metrics: Arc<Metrics>,
    draining: tokio_util::sync::CancellationToken,
) -> Router {
    let health_draining = draining.clone();
    Router::new()
        .route(
            "/healthz",
            get(move || {
                let draining = health_draining.clone();
                async move {
                    if draining.is_cancelled() {
                        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
                    } else {
                        (StatusCode::OK, "ok\n")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                        .into_response()
                }
            }),
        )
}

/// Serves the admin router until `stop` fires.
pub async fn serve_admin(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let address: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(address = ?address, "admin HTTP listening (/healthz, /metrics, /api, web UI)");
    // The peer address reaches the API's audit events (failed logins).
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stop.cancelled().await })
    .await
}
