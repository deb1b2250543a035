//! The reviewer web UI, server-rendered on `admin_listen`:
//!
//! - `/login`: sign in with the IdP (OIDC authorization code + PKCE) or a
//!   Warden access key;
//! - `/reviews`: pending reviews, kept current over SSE (`/reviews/events`);
//! - `/reviews/{id}`: the held statement highlighted, its classification,
//!   tables, requester, target and policy; approve or deny with a comment;
//! - `/sessions` and `/sessions/{id}`: the sessions index and a session's
//!   replay timeline from its recording.
//!
//! Every response carries a strict CSP (no inline script or style, nothing
//! from other origins), and every state change needs a same-origin request
//! and the login's CSRF token.

pub mod cookie;
pub mod highlight;
mod login;
pub mod oidc;
mod reviews;
pub mod session;
mod sessions;
mod views;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Duration;
use warden_core::engines::Authenticator;
use warden_recording::RecordingReader;
use warden_reviews::ReviewService;
use warden_store::Store;

pub use cookie::CookieKey;
pub use oidc::OidcLogin;
pub use session::CookiePolicy;

/// The Content-Security-Policy of every UI response: scripts, styles and
/// fetches from this origin only, no inline code, no framing, forms post
/// only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Settings of the UI, from `[web]` and `[server] public_url`.
#[derive(Clone, Debug)]
pub struct UiSettings {
    pub session_ttl: Duration,
    pub access_key_login: bool,
    /// `scheme://host[:port]` of `public_url`, for the origin check.
    pub public_origin: Option<String>,
}

impl UiSettings {
    pub fn new(config: &warden_core::config::Config) -> UiSettings {
        UiSettings {
            session_ttl: config.web.session_ttl,
            access_key_login: config.web.access_key_login,
            public_origin: config.server.public_url.as_deref().and_then(origin_of),
        }
    }
}

/// `scheme://authority` of a URL.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// What the UI handlers need. Cheap to clone.
#[derive(Clone)]
pub struct UiState {
    pub reviews: ReviewService,
    pub store: Arc<dyn Store>,
    /// Checks access keys typed into the login form.
    pub authenticator: Arc<dyn Authenticator>,
    /// The IdP login, when `[web.oidc]` is set.
    pub oidc: Option<Arc<OidcLogin>>,
    /// Recordings for the replay timeline (absent when recording is off).
    pub recordings: Option<Arc<RecordingReader>>,
    pub key: CookieKey,
    pub cookies: CookiePolicy,
    pub settings: Arc<UiSettings>,
}

/// The UI's routes; merge them into the admin router.
pub fn ui_router(state: UiState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/reviews") }))
        .route("/login", get(login::login_page).post(login::login_with_key))
        .route("/logout", post(login::logout))
        .route("/auth/login", get(login::oidc_start))
        .route("/auth/callback", get(login::oidc_callback))
        .route("/reviews", get(reviews::list_page))
        .route("/reviews/events", get(reviews::events))
        .route("/reviews/{id}", get(reviews::review_page))
        .route("/reviews/{id}/decide", post(reviews::decide))
        .route("/sessions", get(sessions::list_page))
        .route("/sessions/{id}", get(sessions::timeline_page))
        .route("/ui/app.js", get(script))
        .route("/ui/style.css", get(stylesheet))
        .with_state(state)
        .layer(axum::middleware::map_response(protective_headers))
}

/// Headers every UI response carries.
async fn protective_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: with it, browsers send `Origin: null` on our own
    // form posts and the origin check could not tell them from forgeries.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        APP_JS,
    )
        .into_response()
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLE_CSS,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_and_authority() {
        assert_eq!(
            origin_of("https://warden.example/base/"),
            Some("https://warden.example".into())
        );
        assert_eq!(
            origin_of("http://127.0.0.1:9000"),
            Some("http://127.0.0.1:9000".into())
        );
        assert_eq!(origin_of("warden.example"), None);
    }
}
