//! HashiCorp Vault over its HTTP API: KV reads (v2, and v1 shapes) with
//! token or AppRole auth. Every call has a timeout so a dead Vault fails a
//! session instead of hanging it; errors never carry a token or a secret_id.

use super::field::vault_kv_data;
use super::{field_error, provider_error};
use crate::secrets::{SecretError, resolve};
use reqwest::header::HeaderValue;
use reqwest::{RequestBuilder, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::time::{Duration, Instant};
use warden_core::SecretRef;
use warden_core::config::VaultConfig;

/// Whole request, connect included.
const TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A KV answer is small; anything bigger is not Vault.
const MAX_BODY: usize = 1 << 20;
/// Vault error text kept in our messages.
const MAX_ERROR_TEXT: usize = 300;

enum Auth {
    /// The token is read through its reference on every request, so a
    /// rotated token file takes effect at once.
    Token(SecretRef),
    AppRole {
        role_id: String,
        secret_id: SecretRef,
        mount: String,
    },
}

/// A token from an AppRole login.
struct Login {
    token: SecretString,
    /// Log in again from here (3/4 of the lease); `None`: no expiry.
    renew_at: Option<Instant>,
}

pub(crate) struct Vault {
    http: reqwest::Client,
    base: Url,
    namespace: Option<String>,
    auth: Auth,
    login: tokio::sync::Mutex<Option<Login>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match self.auth {
            Auth::Token(_) => "token",
            Auth::AppRole { .. } => "approle",
        };
        f.debug_struct("Vault")
            .field("address", &self.base.as_str())
            .field("auth", &auth)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Checks the address and auth and builds the HTTP client (reading the CA
    /// file if any); no network I/O.
    pub(crate) fn new(config: &VaultConfig) -> Result<Vault, SecretError> {
        let base =
            base_url(&config.address).map_err(|error| SecretError::Config(error.to_string()))?;
        let auth = match (&config.token, &config.approle) {
            (Some(token), _) => Auth::Token(token.clone()),
            (None, Some(approle)) => Auth::AppRole {
                role_id: approle.role_id.clone(),
                secret_id: approle.secret_id.clone(),
                mount: approle.mount.trim_matches('/').to_string(),
            },
            (None, None) => {
                return Err(SecretError::Config(
                    "[secrets.vault] needs `token` or `approle`".into(),
                ));
            }
        };
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect would carry X-Vault-Token to wherever it points.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &config.ca {
            let pem = std::fs::read(ca).map_err(|error| {
                SecretError::Config(format!(
                    "[secrets.vault] ca {}: cannot read: {}",
                    ca.display(),
                    error.kind()
                ))
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
                SecretError::Config(format!("[secrets.vault] ca {}: {error}", ca.display()))
            })?;
            if certificates.is_empty() {
                return Err(SecretError::Config(format!(
                    "[secrets.vault] ca {}: no PEM certificate in the file",
                    ca.display()
                )));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|error| {
            SecretError::Config(format!(
                "[secrets.vault]: cannot build the HTTP client: {error}"
            ))
        })?;
        Ok(Vault {
            http,
            base,
            namespace: config.namespace.clone().filter(|n| !n.is_empty()),
            auth,
            login: tokio::sync::Mutex::new(None),
        })
    }

    pub(crate) fn address(&self) -> &str {
        self.base.as_str()
    }

    /// Reads `FIELD` of the secret at API path `PATH` (`secret/data/orders`).
    /// With AppRole, a 403 means the token may have been revoked: log in again
    /// once and retry.
    pub(crate) async fn read(
        &self,
        path: &str,
        field: &str,
        reference: &str,
    ) -> Result<SecretString, SecretError> {
        let url = api_url(&self.base, path)
            .map_err(|error| provider_error(reference, error.to_string()))?;
        let mut token = self.token(reference).await?;
        let mut answer = self.get(&url, &token, reference).await?;
        if answer.0 == StatusCode::FORBIDDEN && matches!(self.auth, Auth::AppRole { .. }) {
            self.forget_login(&token).await;
            token = self.token(reference).await?;
            answer = self.get(&url, &token, reference).await?;
        }
        let (status, body) = answer;
        if !status.is_success() {
            let reason = answered("vault", status, body.as_ref());
            return Err(provider_error(reference, redact(reason, &[&token])));
        }
        let body = body.ok_or_else(|| {
            provider_error(reference, "vault answered with a body that is not JSON")
        })?;
        let data = vault_kv_data(&body).map_err(|reason| provider_error(reference, reason))?;
        super::field::field_value(data, field).map_err(|error| field_error(reference, field, error))
    }

    async fn get(
        &self,
        url: &Url,
        token: &SecretString,
        reference: &str,
    ) -> Result<(StatusCode, Option<Value>), SecretError> {
        let mut header = HeaderValue::from_str(token.expose_secret()).map_err(|_| {
            provider_error(
                reference,
                "the Vault token is not a valid HTTP header value",
            )
        })?;
        header.set_sensitive(true);
        let request = self.http.get(url.clone()).header("X-Vault-Token", header);
        self.send(request, reference).await
    }

    /// Adds the namespace, sends, and reads a bounded body as JSON (`None`
    /// when it is not JSON).
    async fn send(
        &self,
        mut request: RequestBuilder,
        reference: &str,
    ) -> Result<(StatusCode, Option<Value>), SecretError> {
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        let unreachable = |error: reqwest::Error| {
            provider_error(
                reference,
                format!("cannot reach vault at {}: {}", self.base, describe(&error)),
            )
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len().saturating_add(chunk.len()) > MAX_BODY {
                return Err(provider_error(
                    reference,
                    format!("vault answered {status} with a body over {MAX_BODY} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, serde_json::from_slice(&body).ok()))
    }

    async fn token(&self, reference: &str) -> Result<SecretString, SecretError> {
        let (role_id, secret_id, mount) = match &self.auth {
            Auth::Token(token) => {
                return resolve(token).await.map_err(|error| {
                    provider_error(reference, format!("cannot read the Vault token: {error}"))
                });
            }
            Auth::AppRole {
                role_id,
                secret_id,
                mount,
            } => (role_id, secret_id, mount),
        };
        let mut login = self.login.lock().await;
        if let Some(current) = login.as_ref()
            && current.renew_at.is_none_or(|at| Instant::now() < at)
        {
            return Ok(current.token.clone());
        }
        let secret_id = resolve(secret_id).await.map_err(|error| {
            provider_error(
                reference,
                format!("cannot read the AppRole secret_id: {error}"),
            )
        })?;
        let url = api_url(&self.base, &format!("auth/{mount}/login"))
            .map_err(|error| provider_error(reference, error.to_string()))?;
        let payload = serde_json::json!({
            "role_id": role_id,
            "secret_id": secret_id.expose_secret(),
        });
        let started = Instant::now();
        let (status, body) = self
            .send(self.http.post(url).json(&payload), reference)
            .await?;
        if !status.is_success() {
            let reason = answered("vault AppRole login", status, body.as_ref());
            return Err(provider_error(reference, redact(reason, &[&secret_id])));
        }
        let fresh = body
            .as_ref()
            .and_then(|body| parse_login(body, started))
            .ok_or_else(|| {
                provider_error(
                    reference,
                    "vault AppRole login answered without auth.client_token",
                )
            })?;
        let token = fresh.token.clone();
        *login = Some(fresh);
        Ok(token)
    }

    /// Drops the login token if it is still the one that was refused.
    async fn forget_login(&self, refused: &SecretString) {
        let mut login = self.login.lock().await;
        if login
            .as_ref()
            .is_some_and(|current| current.token.expose_secret() == refused.expose_secret())
        {
            *login = None;
        }
    }
}

/// `.auth.client_token` and `.auth.lease_duration` of a login answer.
fn parse_login(body: &Value, started: Instant) -> Option<Login> {
    let auth = body.get("auth")?;
    let token = auth
        .get("client_token")?
        .as_str()
        .filter(|t| !t.is_empty())?;
    let lease = auth
        .get("lease_duration")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let renew_at = (lease > 0).then(|| started + Duration::from_secs(lease).saturating_mul(3) / 4);
    Some(Login {
        token: SecretString::from(token.to_string()),
        renew_at,
    })
}

/// Why the Vault address or a path under it cannot be a request URL.
#[derive(Debug, thiserror::Error)]
enum UrlError {
    /// `reason` is the URL parser's text (its error type is not re-exported
    /// by reqwest).
    #[error("[secrets.vault] address {address:?} is not a URL: {reason}")]
    NotUrl { address: String, reason: String },
    #[error("[secrets.vault] address {0:?} must be an http:// or https:// URL")]
    Scheme(String),
    #[error("[secrets.vault] address {0:?} must not have a query or fragment")]
    QueryOrFragment(String),
    #[error("the vault address cannot take a path")]
    NoPath,
    /// A reference must not leave its API path.
    #[error("the vault path {0:?} has an empty, `.` or `..` segment")]
    Segment(String),
}

/// The configured address as a base URL (`http`/`https`, no query).
fn base_url(address: &str) -> Result<Url, UrlError> {
    let url = Url::parse(address).map_err(|error| UrlError::NotUrl {
        address: address.to_string(),
        reason: error.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(UrlError::Scheme(address.to_string()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(UrlError::QueryOrFragment(address.to_string()));
    }
    Ok(url)
}

/// `{address}/v1/{path}`, each path segment percent-encoded; `.`/`..` and
/// empty segments are refused so a reference cannot leave its API path.
fn api_url(base: &Url, path: &str) -> Result<Url, UrlError> {
    let path = path.trim_matches('/');
    let mut url = base.clone();
    {
        let mut segments = url.path_segments_mut().map_err(|()| UrlError::NoPath)?;
        segments.pop_if_empty().push("v1");
        for segment in path.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(UrlError::Segment(path.to_string()));
            }
            segments.push(segment);
        }
    }
    Ok(url)
}

/// `vault answered 403 permission denied`: the status and Vault's `errors`.
fn answered(what: &str, status: StatusCode, body: Option<&Value>) -> String {
    let errors: Vec<&str> = body
        .and_then(|body| body.get("errors"))
        .and_then(Value::as_array)
        .map(|errors| errors.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut text = errors
        .join("; ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if text.is_empty() {
        text = status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase();
    }
    if text.len() > MAX_ERROR_TEXT {
        let mut cut = MAX_ERROR_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    format!("{what} answered {} {text}", status.as_u16())
}

/// Blanks out credentials a server might echo back in an error.
fn redact(mut text: String, secrets: &[&SecretString]) -> String {
    for secret in secrets {
        let secret = secret.expose_secret();
        if !secret.is_empty() {
            text = text.replace(secret, "[redacted]");
        }
    }
    text
}

/// An error and its causes, e.g. `error sending request …: tcp connect
/// error: Connection refused (os error 111)`.
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_api_urls_under_v1() {
        let base = base_url("https://vault.internal:8200").unwrap();
        assert_eq!(
            api_url(&base, "secret/data/orders").unwrap().as_str(),
            "https://vault.internal:8200/v1/secret/data/orders"
        );
        let prefixed = base_url("http://127.0.0.1:8200/proxy/").unwrap();
        assert_eq!(
            api_url(&prefixed, "/kv/app/").unwrap().as_str(),
            "http://127.0.0.1:8200/proxy/v1/kv/app"
        );
        assert_eq!(
            api_url(&base, "secret/data/a?b#c").unwrap().as_str(),
            "https://vault.internal:8200/v1/secret/data/a%3Fb%23c"
        );
        for bad in ["secret/../sys/seal", "secret//x", "./x", ""] {
            assert!(api_url(&base, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_unusable_addresses() {
        for bad in ["vault:8200", "ftp://vault", "not a url", "http://v?x=1"] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn describes_vault_errors() {
        let denied = json!({"errors": ["permission denied"]});
        assert_eq!(
            answered("vault", StatusCode::FORBIDDEN, Some(&denied)),
            "vault answered 403 permission denied"
        );
        let none = json!({"errors": []});
        assert_eq!(
            answered("vault", StatusCode::NOT_FOUND, Some(&none)),
            "vault answered 404 not found"
        );
        assert_eq!(
            answered("vault", StatusCode::BAD_GATEWAY, None),
            "vault answered 502 bad gateway"
        );
        let long = json!({"errors": ["é".repeat(400)]});
        assert!(answered("vault", StatusCode::BAD_REQUEST, Some(&long)).len() < 700);
        let echoed = redact(
            "bad secret id s3cr3t-id".into(),
            &[&SecretString::from("s3cr3t-id")],
        );
        assert_eq!(echoed, "bad secret id [redacted]");
    }

    #[test]
    fn parses_approle_logins() {
        let started = Instant::now();
        let body = json!({"auth": {"client_token": "hvs.x", "lease_duration": 1200,
            "renewable": true, "token_policies": ["default"]}});
        let login = parse_login(&body, started).unwrap();
        assert_eq!(login.token.expose_secret(), "hvs.x");
        assert_eq!(login.renew_at, Some(started + Duration::from_secs(900)));

        let forever = json!({"auth": {"client_token": "root", "lease_duration": 0}});
        assert_eq!(parse_login(&forever, started).unwrap().renew_at, None);
        assert!(parse_login(&json!({"auth": null}), started).is_none());
        assert!(parse_login(&json!({"auth": {"client_token": ""}}), started).is_none());
    }
}
