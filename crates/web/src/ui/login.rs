//! `/login`, `/logout`, `/auth/login` and `/auth/callback`.

use super::UiState;
use super::cookie::{random_token, read_cookie, same_token};
use super::oidc::{LOGIN_WINDOW, LoginInProgress};
use super::session::{
    LoginMethod, UiSession, check_csrf, check_same_origin, safe_next, session_of,
};
use super::views;
use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use time::OffsetDateTime;
use warden_core::config::Protocol;
use warden_core::engines::AuthContext;
use warden_core::events::AuditEvent;
use warden_core::{Identity, IdentityKind};

/// What the audit trail names as the target of UI logins.
const UI_TARGET: &str = "web";

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    error: Option<String>,
}

/// The login page. It sets a pre-login token that the access-key form must
/// echo (login CSRF: another site cannot sign a browser in as someone else).
pub async fn login_page(
    State(state): State<UiState>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref());
    if session_of(&state, &headers).is_some() {
        return Redirect::to(&next).into_response();
    }
    let token = random_token();
    let page = views::login(&state, &next, &token, query.error.as_deref());
    let cookie = state.cookies.set(
        &state.cookies.prelogin_name(),
        &token,
        LOGIN_WINDOW.as_secs() as i64,
    );
    ([(header::SET_COOKIE, cookie)], page).into_response()
}

#[derive(Deserialize)]
pub struct KeyLogin {
    key: String,
    csrf: String,
    next: Option<String>,
}

fn back_to_login(next: &str, error: &str) -> Response {
    let query = serde_urlencoded::to_string([("next", next), ("error", error)]).unwrap_or_default();
    Redirect::to(&format!("/login?{query}")).into_response()
}

/// `POST /login`: sign in with a Warden access key.
pub async fn login_with_key(
    State(state): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<KeyLogin>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    if let Err(error) = check_same_origin(&state, &headers) {
        return (StatusCode::FORBIDDEN, error.to_string()).into_response();
    }
    let expected = read_cookie(&headers, &state.cookies.prelogin_name()).unwrap_or_default();
    if expected.is_empty() || !same_token(expected, &form.csrf) {
        return back_to_login(&next, "The login form expired; try again.");
    }
    if !state.settings.access_key_login {
        return back_to_login(&next, "Signing in with an access key is turned off here.");
    }
    let key = form.key.trim();
    if !key.starts_with(warden_identity::ACCESS_KEY_PREFIX) {
        return back_to_login(&next, "That is not a Warden access key (wdn_…).");
    }
    let context = AuthContext {
        client_addr: peer,
        protocol: Protocol::Http,
        target: UI_TARGET.into(),
    };
    let credential = SecretString::from(key.to_string());
    match state
        .authenticator
        .authenticate(&credential, &context)
        .await
    {
        Ok(identity) => sign_in(&state, identity, LoginMethod::AccessKey, &next, peer).await,
        Err(error) => {
            audit_failure(&state, peer, &error.to_string()).await;
            back_to_login(&next, "That access key is not valid.")
        }
    }
}

async fn audit_failure(state: &UiState, peer: SocketAddr, reason: &str) {
    let mut event = AuditEvent::new("auth.failure", "-", format!("web login: {reason}"));
    event.client_addr = Some(peer.to_string());
    event.target = Some(UI_TARGET.into());
    if let Err(error) = state.store.audit(&event).await {
        tracing::warn!(%error, "cannot write the audit event");
    }
    tracing::info!(%reason, client = %peer, "web login failed");
}

/// Issues the session cookie and goes on to `next`.
async fn sign_in(
    state: &UiState,
    identity: Identity,
    method: LoginMethod,
    next: &str,
    peer: SocketAddr,
) -> Response {
    let ttl = state.settings.session_ttl;
    let session = UiSession {
        identity,
        csrf: random_token(),
        expires: OffsetDateTime::now_utc().unix_timestamp() + ttl.as_secs() as i64,
        method,
    };
    let name = state.cookies.session_name();
    let Some(sealed) = state.key.seal(&name, &session) else {
        return back_to_login(
            next,
            "Your identity has too many claims to fit in a cookie; ask an administrator to trim the ID token.",
        );
    };
    let who = session.identity.display_name();
    let mut event = AuditEvent::new(
        "web.login",
        &session.identity.subject,
        format!(
            "{who} signed in to the web UI with {}",
            match method {
                LoginMethod::Oidc => "the IdP",
                LoginMethod::AccessKey => "an access key",
            }
        ),
    );
    event.client_addr = Some(peer.to_string());
    event.target = Some(UI_TARGET.into());
    if let Err(error) = state.store.audit(&event).await {
        tracing::warn!(%error, "cannot write the audit event");
    }
    tracing::info!(reviewer = %who, "web login");
    let mut response = Redirect::to(next).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        state.cookies.set(&name, &sealed, ttl.as_secs() as i64),
    );
    for stale in [state.cookies.login_name(), state.cookies.prelogin_name()] {
        headers.append(header::SET_COOKIE, state.cookies.clear(&stale));
    }
    response
}

#[derive(Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

/// `POST /logout`.
pub async fn logout(
    State(state): State<UiState>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    if let Some(session) = session_of(&state, &headers) {
        if let Err(error) =
            check_same_origin(&state, &headers).and_then(|()| check_csrf(&session, &form.csrf))
        {
            return (StatusCode::FORBIDDEN, error.to_string()).into_response();
        }
        tracing::info!(reviewer = %session.identity.display_name(), "web logout");
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        state.cookies.clear(&state.cookies.session_name()),
    );
    response
}

#[derive(Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

/// `GET /auth/login`: off to the IdP.
pub async fn oidc_start(State(state): State<UiState>, Query(query): Query<StartQuery>) -> Response {
    let next = safe_next(query.next.as_deref());
    let Some(oidc) = state.oidc.clone() else {
        return back_to_login(&next, "Single sign-on is not configured here.");
    };
    match oidc.start(next.clone()).await {
        Ok((url, progress)) => {
            let name = state.cookies.login_name();
            let Some(sealed) = state.key.seal(&name, &progress) else {
                return back_to_login(&next, "Cannot start the login.");
            };
            let mut response = Redirect::to(&url).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                state
                    .cookies
                    .set(&name, &sealed, LOGIN_WINDOW.as_secs() as i64),
            );
            response
        }
        Err(error) => {
            tracing::warn!(issuer = %oidc.issuer, %error, "cannot start an OIDC login");
            back_to_login(
                &next,
                "The identity provider cannot be reached; try again later.",
            )
        }
    }
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/callback`: the IdP sends the browser back with a code.
pub async fn oidc_callback(
    State(state): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let name = state.cookies.login_name();
    let progress: Option<LoginInProgress> =
        read_cookie(&headers, &name).and_then(|sealed| state.key.open(&name, sealed));
    let next = progress
        .as_ref()
        .map_or_else(|| safe_next(None), |p| safe_next(Some(&p.next)));
    let (Some(oidc), Some(progress)) = (state.oidc.clone(), progress) else {
        return back_to_login(
            &next,
            "The login expired or was started elsewhere; try again.",
        );
    };
    if let Some(error) = query.error {
        let detail = query.error_description.unwrap_or_default();
        audit_failure(&state, peer, &format!("IdP said {error}: {detail}")).await;
        return back_to_login(&next, &format!("The identity provider said: {error}."));
    }
    let (Some(code), Some(returned_state)) = (query.code, query.state) else {
        return back_to_login(&next, "The identity provider sent no code.");
    };
    match oidc.finish(&progress, &returned_state, &code).await {
        Ok(identity) if matches!(identity.kind, IdentityKind::Oidc { .. }) => {
            sign_in(&state, identity, LoginMethod::Oidc, &next, peer).await
        }
        Ok(_) => back_to_login(&next, "Unexpected identity."),
        Err(reason) => {
            audit_failure(&state, peer, &reason.to_string()).await;
            back_to_login(
                &next,
                "The login could not be completed; see the Warden log.",
            )
        }
    }
}
