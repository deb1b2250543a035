//! A reviewer's login: who they are, their CSRF token and when the login
//! ends, in a signed cookie; and the checks every state-changing request
//! passes (same-origin request, CSRF token bound to the login).

use super::UiState;
use super::cookie::{read_cookie, same_token};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use warden_core::Identity;

/// How a reviewer signed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginMethod {
    Oidc,
    AccessKey,
}

/// What the session cookie carries.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UiSession {
    pub identity: Identity,
    /// Bound to this login: a form from another login is refused.
    pub csrf: String,
    /// Unix seconds.
    pub expires: i64,
    pub method: LoginMethod,
}

impl UiSession {
    pub fn is_live(&self) -> bool {
        OffsetDateTime::now_utc().unix_timestamp() < self.expires
    }
}

/// Cookie names and flags. `__Host-` names (Secure, path `/`, no domain)
/// cannot be set or shadowed by a sibling subdomain.
#[derive(Clone, Debug)]
pub struct CookiePolicy {
    pub secure: bool,
}

impl CookiePolicy {
    /// Secure unless `public_url` is plain `http://` to a host that is not
    /// loopback (browsers drop Secure cookies there, and the login would
    /// silently fail). Browsers treat `http://127.0.0.1` and `localhost` as
    /// secure contexts.
    pub fn for_public_url(public_url: Option<&str>) -> CookiePolicy {
        CookiePolicy {
            secure: !public_url.is_some_and(warden_identity::is_plain_http_off_loopback),
        }
    }

    fn name(&self, base: &str) -> String {
        if self.secure {
            format!("__Host-{base}")
        } else {
            base.to_string()
        }
    }

    pub fn session_name(&self) -> String {
        self.name("warden_session")
    }

    pub fn login_name(&self) -> String {
        self.name("warden_login")
    }

    pub fn prelogin_name(&self) -> String {
        self.name("warden_prelogin")
    }

    /// A `Set-Cookie` value. `SameSite=Lax` (not Strict) so that the IdP's
    /// redirect back carries the login-in-progress cookie; state changes are
    /// protected by the CSRF token and the origin check instead.
    pub fn set(&self, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
        );
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    pub fn clear(&self, name: &str) -> HeaderValue {
        self.set(name, "", 0)
    }
}

/// A signed-in reviewer. Pages redirect to `/login` without one.
pub struct Reviewer(pub UiSession);

/// Why a request has no reviewer.
pub enum NotSignedIn {
    /// A page: go to the login page and come back.
    Redirect(String),
    /// An event stream or other non-page request.
    Unauthorized,
}

impl IntoResponse for NotSignedIn {
    fn into_response(self) -> Response {
        match self {
            NotSignedIn::Redirect(next) => {
                let query =
                    serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
                Redirect::to(&format!("/login?{query}")).into_response()
            }
            NotSignedIn::Unauthorized => {
                (StatusCode::UNAUTHORIZED, "sign in at /login\n").into_response()
            }
        }
    }
}

/// The reviewer of a request, if its session cookie is valid and live.
pub fn session_of(state: &UiState, headers: &HeaderMap) -> Option<UiSession> {
    let name = state.cookies.session_name();
    let sealed = read_cookie(headers, &name)?;
    let session: UiSession = state.key.open(&name, sealed)?;
    session.is_live().then_some(session)
}

impl FromRequestParts<UiState> for Reviewer {
    type Rejection = NotSignedIn;

    async fn from_request_parts(parts: &mut Parts, state: &UiState) -> Result<Self, NotSignedIn> {
        if let Some(session) = session_of(state, &parts.headers) {
            return Ok(Reviewer(session));
        }
        let path = parts.uri.path();
        if parts.method == axum::http::Method::GET && !path.ends_with("/events") {
            let next = parts
                .uri
                .path_and_query()
                .map_or(path, |pq| pq.as_str())
                .to_string();
            Err(NotSignedIn::Redirect(next))
        } else {
            Err(NotSignedIn::Unauthorized)
        }
    }
}

/// Why a state-changing request was refused as possibly forged; the text
/// is shown to the reviewer.
#[derive(Debug, thiserror::Error)]
pub enum ForgeryError {
    /// `Sec-Fetch-Site` says another site sent it.
    #[error("a {0} request cannot change anything here")]
    CrossSite(String),
    #[error("requests from {0} are not accepted")]
    ForeignOrigin(String),
    /// The form's CSRF token is not this login's.
    #[error("the form is stale or came from elsewhere; reload the page and try again")]
    StaleForm,
}

/// Refuses a state-changing request that a browser sent on behalf of
/// another site: `Sec-Fetch-Site` must be same-origin (or absent, for
/// non-browser clients) and `Origin`, when sent, must be our own.
pub fn check_same_origin(state: &UiState, headers: &HeaderMap) -> Result<(), ForgeryError> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(ForgeryError::CrossSite(site.to_string()));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let own = match &state.settings.public_origin {
            Some(public) => origin == public,
            None => headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|host| {
                    origin == format!("http://{host}") || origin == format!("https://{host}")
                }),
        };
        if !own {
            return Err(ForgeryError::ForeignOrigin(origin.to_string()));
        }
    }
    Ok(())
}

/// The form's CSRF token must be this login's.
pub fn check_csrf(session: &UiSession, token: &str) -> Result<(), ForgeryError> {
    if same_token(&session.csrf, token) {
        Ok(())
    } else {
        Err(ForgeryError::StaleForm)
    }
}

/// Only local paths are followed after login (no open redirect).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_string()
        }
        _ => "/reviews".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_secure_except_on_plain_http_off_loopback() {
        assert!(CookiePolicy::for_public_url(None).secure);
        assert!(CookiePolicy::for_public_url(Some("https://warden.example")).secure);
        assert!(CookiePolicy::for_public_url(Some("http://127.0.0.1:8080")).secure);
        assert!(CookiePolicy::for_public_url(Some("http://localhost:8080/")).secure);
        assert!(CookiePolicy::for_public_url(Some("http://[::1]:80")).secure);
        assert!(!CookiePolicy::for_public_url(Some("http://warden.internal:8080")).secure);
        assert_eq!(
            CookiePolicy { secure: true }.session_name(),
            "__Host-warden_session"
        );
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(safe_next(Some("/reviews/abc")), "/reviews/abc");
        assert_eq!(safe_next(Some("//evil.example/x")), "/reviews");
        assert_eq!(safe_next(Some("https://evil.example")), "/reviews");
        assert_eq!(safe_next(Some("/\\evil.example")), "/reviews");
        assert_eq!(safe_next(None), "/reviews");
    }

    #[test]
    fn set_cookie_has_the_protective_flags() {
        let value = CookiePolicy { secure: true }.set("__Host-warden_session", "v", 60);
        let text = value.to_str().unwrap();
        for flag in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure", "Max-Age=60"] {
            assert!(text.contains(flag), "{text} lacks {flag}");
        }
    }
}
