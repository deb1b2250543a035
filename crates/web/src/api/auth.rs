//! The caller of an API request: `Authorization: Bearer <OIDC JWT or
//! Warden access key>`, checked by the gateway's own [`Authenticator`].

use super::ApiState;
use super::error::ApiError;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use secrecy::SecretString;
use std::net::SocketAddr;
use warden_core::Identity;
use warden_core::config::Protocol;
use warden_core::engines::AuthContext;
use warden_core::events::AuditEvent;

/// What the audit trail names as the target of API authentications.
const API_TARGET: &str = "api";

/// An authenticated caller.
pub struct Caller(pub Identity);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(ApiError::unauthorized)?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let client_addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let context = AuthContext {
            client_addr,
            protocol: Protocol::Http,
            target: API_TARGET.to_string(),
        };
        let credential = SecretString::from(token.to_string());
        match state
            .authenticator
            .authenticate(&credential, &context)
            .await
        {
            Ok(identity) => Ok(Caller(identity)),
            Err(error) => {
                let mut event = AuditEvent::new("auth.failure", "-", error.to_string());
                event.client_addr = Some(client_addr.to_string());
                event.target = Some(API_TARGET.to_string());
                if let Err(error) = state.store.audit(&event).await {
                    tracing::warn!(%error, "cannot write the audit event");
                }
                tracing::info!(reason = %error, client = %client_addr, "API authentication failed");
                Err(ApiError::unauthorized())
            }
        }
    }
}
