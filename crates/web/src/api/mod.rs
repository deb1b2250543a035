//! The REST API under `/api/v1` and its OpenAPI document at
//! `/api/openapi.json` (generated from these handlers with `utoipa`).
//!
//! Every `/api/v1` route needs `Authorization: Bearer <OIDC JWT or Warden
//! access key>`, checked by the gateway's [`Authenticator`]; a missing or
//! bad credential is 401.

pub mod auth;
pub mod error;
pub mod reviews;
pub mod sessions;

use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use warden_core::engines::Authenticator;
use warden_reviews::ReviewService;
use warden_store::Store;

/// What the API handlers need.
#[derive(Clone)]
pub struct ApiState {
    pub reviews: ReviewService,
    /// Sessions index and audit trail.
    pub store: Arc<dyn Store>,
    pub authenticator: Arc<dyn Authenticator>,
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Warden API",
        description = "Reviews of held statements, access requests and the sessions index."
    ),
    paths(
        reviews::list_reviews,
        reviews::get_review,
        reviews::approve_review,
        reviews::deny_review,
        reviews::request_access,
        sessions::list_sessions,
    ),
    components(schemas(
        reviews::ReviewView,
        reviews::VoteView,
        reviews::LinksView,
        reviews::DecisionBody,
        reviews::AccessRequestBody,
        reviews::TicketView,
        sessions::SessionView,
        error::ErrorBody,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "reviews", description = "Human approval"),
        (name = "sessions", description = "The sessions index"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An OIDC access token (JWT) or a Warden access key (wdn_…)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document as JSON text.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|error| {
        tracing::error!(%error, "cannot render the OpenAPI document");
        "{}".into()
    })
}

/// `/api/v1/…` and `/api/openapi.json`; merge it into the admin router.
pub fn api_router(state: ApiState) -> Router {
    let document = Arc::new(openapi_json());
    Router::new()
        .route("/api/v1/reviews", get(reviews::list_reviews))
        .route("/api/v1/reviews/{id}", get(reviews::get_review))
        .route(
            "/api/v1/reviews/{id}/approve",
            post(reviews::approve_review),
        )
        .route("/api/v1/reviews/{id}/deny", post(reviews::deny_review))
        .route("/api/v1/access-requests", post(reviews::request_access))
        .route("/api/v1/sessions", get(sessions::list_sessions))
        .with_state(state)
        .route(
            "/api/openapi.json",
            get(move || {
                let document = document.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        document.as_str().to_owned(),
                    )
                }
            }),
        )
}
