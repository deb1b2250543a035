//! Reviewer login with the IdP: OpenID Connect authorization code flow with
//! PKCE (S256), `state` against login CSRF and `nonce` against ID-token
//! replay. The ID token is verified with the gateway's own JWKS handling for
//! that issuer, addressed to the UI's client id.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use warden_core::Identity;
use warden_core::engines::AuthError;
use warden_identity::IdentityService;

use super::cookie::{random_token, same_token};

/// How long a login may take at the IdP.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(600);

/// Claims the session keeps besides sub/groups/email: policy subjects may
/// name any claim, but protocol claims only waste cookie space.
const DROPPED_CLAIMS: &[&str] = &[
    "aud",
    "exp",
    "iat",
    "nbf",
    "nonce",
    "at_hash",
    "c_hash",
    "auth_time",
    "sid",
    "jti",
    "azp",
    "acr",
    "amr",
];

/// Why a reviewer's OIDC login could not start or finish. Logged and
/// audited, never shown to the browser; no variant holds the code, a token
/// or the client secret.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("cannot build the HTTP client for the IdP: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("cannot fetch {url}: {source}")]
    FetchDiscovery {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} is not a discovery document: {source}")]
    NotDiscovery {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The discovery document speaks for another issuer.
    #[error("{url} names issuer {found:?}, not {expected:?}")]
    WrongIssuer {
        url: String,
        found: String,
        expected: String,
    },
    /// `reason` is the URL parser's text (its type is not re-exported by reqwest).
    #[error("authorization_endpoint {endpoint:?}: {reason}")]
    AuthorizationEndpoint { endpoint: String, reason: String },
    #[error("the login took too long; start again")]
    Expired,
    /// Login CSRF, or a callback from another login.
    #[error("the login's state does not match; start again")]
    StateMismatch,
    #[error("cannot reach the token endpoint: {0}")]
    TokenEndpoint(#[source] reqwest::Error),
    /// The IdP's `error` code (or the HTTP status), not its whole body.
    #[error("the IdP refused the code: {0}")]
    Refused(String),
    #[error("the token response is not JSON: {0}")]
    TokenNotJson(#[source] reqwest::Error),
    #[error("the token response has no id_token (is `openid` in the scopes?)")]
    NoIdToken,
    #[error("the ID token is not valid: {0}")]
    InvalidIdToken(#[source] AuthError),
    /// A replayed ID token, or one from another login.
    #[error("the ID token's nonce does not match this login")]
    NonceMismatch,
}

/// What the browser keeps (signed) between leaving for the IdP and coming back.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginInProgress {
    pub state: String,
    pub nonce: String,
    /// The PKCE code verifier; only its S256 hash went to the IdP.
    pub verifier: String,
    /// Where to go after login (a local path).
    pub next: String,
    /// Unix seconds.
    pub expires: i64,
}

/// The IdP's endpoints, from its discovery document.
#[derive(Clone, Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

/// The UI's OIDC client (`[web.oidc]`).
pub struct OidcLogin {
    pub issuer: String,
    pub client_id: String,
    client_secret: Option<SecretString>,
    scopes: Vec<String>,
    pub label: String,
    /// `PUBLIC_URL/auth/callback`.
    redirect_uri: String,
    http: reqwest::Client,
    identity: Arc<IdentityService>,
    discovery: tokio::sync::Mutex<Option<Discovery>>,
}

impl std::fmt::Debug for OidcLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcLogin")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl OidcLogin {
    pub fn new(
        config: &warden_core::config::WebOidcConfig,
        client_secret: Option<SecretString>,
        public_url: &str,
        identity: Arc<IdentityService>,
    ) -> Result<OidcLogin, OidcError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(OidcError::HttpClient)?;
        Ok(OidcLogin {
            issuer: config.issuer.clone(),
            client_id: config.client_id.clone(),
            client_secret,
            scopes: config.scopes.clone(),
            label: config.label.clone(),
            redirect_uri: format!("{}/auth/callback", public_url.trim_end_matches('/')),
            http,
            identity,
            discovery: tokio::sync::Mutex::new(None),
        })
    }

    /// The discovery document, fetched once (again after a failure).
    async fn discovery(&self) -> Result<Discovery, OidcError> {
        let mut cached = self.discovery.lock().await;
        if let Some(found) = cached.as_ref() {
            return Ok(found.clone());
        }
        let url = warden_identity::discovery_url(&self.issuer);
        let response = match self
            .http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
        {
            Ok(response) => response,
            Err(source) => return Err(OidcError::FetchDiscovery { url, source }),
        };
        let document: Discovery = match response.json().await {
            Ok(document) => document,
            Err(source) => return Err(OidcError::NotDiscovery { url, source }),
        };
        if document.issuer != self.issuer {
            return Err(OidcError::WrongIssuer {
                url,
                found: document.issuer,
                expected: self.issuer.clone(),
            });
        }
        *cached = Some(document.clone());
        Ok(document)
    }

    /// Where to send the browser, and what it must keep until it returns.
    pub async fn start(&self, next: String) -> Result<(String, LoginInProgress), OidcError> {
        let discovery = self.discovery().await?;
        let progress = LoginInProgress {
            state: random_token(),
            nonce: random_token(),
            verifier: random_token(),
            next,
            expires: OffsetDateTime::now_utc().unix_timestamp() + LOGIN_WINDOW.as_secs() as i64,
        };
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(progress.verifier.as_bytes()));
        let mut url = reqwest::Url::parse(&discovery.authorization_endpoint).map_err(|e| {
            OidcError::AuthorizationEndpoint {
                endpoint: discovery.authorization_endpoint.clone(),
                reason: e.to_string(),
            }
        })?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scopes.join(" "))
            .append_pair("state", &progress.state)
            .append_pair("nonce", &progress.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok((url.into(), progress))
    }

    /// Redeems the code the IdP returned for a verified identity.
    pub async fn finish(
        &self,
        progress: &LoginInProgress,
        state: &str,
        code: &str,
    ) -> Result<Identity, OidcError> {
        if OffsetDateTime::now_utc().unix_timestamp() >= progress.expires {
            return Err(OidcError::Expired);
        }
        if !same_token(&progress.state, state) {
            return Err(OidcError::StateMismatch);
        }
        let discovery = self.discovery().await?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", progress.verifier.as_str()),
            ("client_id", self.client_id.as_str()),
        ];
        let mut request = self.http.post(&discovery.token_endpoint).form(&form);
        if let Some(secret) = &self.client_secret {
            // RFC 6749 §2.3.1: both parts form-encoded before Basic.
            let encode = |text: &str| -> String {
                form_urlencoded::byte_serialize(text.as_bytes()).collect()
            };
            request = request.basic_auth(
                encode(&self.client_id),
                Some(encode(secret.expose_secret())),
            );
        }
        let response = request.send().await.map_err(OidcError::TokenEndpoint)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let error = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| status.to_string());
            return Err(OidcError::Refused(error));
        }
        let tokens: TokenResponse = response.json().await.map_err(OidcError::TokenNotJson)?;
        let id_token = tokens.id_token.ok_or(OidcError::NoIdToken)?;
        let mut identity = self
            .identity
            .verify_id_token(&id_token, &self.issuer, &self.client_id)
            .await
            .map_err(OidcError::InvalidIdToken)?;
        let nonce = identity.claims.get("nonce").and_then(|v| v.as_str());
        if !nonce.is_some_and(|n| same_token(n, &progress.nonce)) {
            return Err(OidcError::NonceMismatch);
        }
        identity
            .claims
            .retain(|name, _| !DROPPED_CLAIMS.contains(&name.as_str()));
        Ok(identity)
    }
}
