//! One issuer's signing keys: fetched lazily over HTTP, cached for
//! `jwks_cache_ttl`, re-fetched on an unknown `kid` at most once per
//! `jwks_min_refetch`.
//!
//! All fetches happen under one async mutex, so concurrent requests that need
//! keys share a single fetch (single-flight) and a flood of tokens with bogus
//! `kid`s costs the IdP at most one request per interval.

use jsonwebtoken::jwk::Jwk;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use warden_core::engines::{AuthError, AuthReason};

/// Largest discovery document or JWKS accepted.
const MAX_BODY: usize = 1 << 20;

/// Why discovery or a JWKS download failed. Every message names the URL
/// (except a bad key set, which the caller wraps with it).
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// Sending or reading failed; `reason` is a short cause (timed out,
    /// cannot connect, or reqwest's chain).
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{url}: HTTP {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("{url}: response larger than {MAX_BODY} bytes", MAX_BODY = MAX_BODY)]
    TooLarge { url: String },
    #[error("{url}: not JSON: {source}")]
    NotJson {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    /// The discovery document speaks for another issuer.
    #[error("{url}: discovery names issuer {found:?}, expected {expected:?}")]
    WrongIssuer {
        url: String,
        found: String,
        expected: String,
    },
    #[error("{url}: discovery document has no issuer")]
    NoIssuer { url: String },
    #[error("{url}: discovery document has no jwks_uri")]
    NoJwksUri { url: String },
    #[error("JWKS has no \"keys\" array")]
    NoKeys,
    /// The key set at `url` is unusable.
    #[error("{url}: {source}")]
    KeySet {
        url: String,
        #[source]
        source: Box<JwksError>,
    },
}

/// The keys of one JWKS download. Compared by pointer to see whether
/// another request has fetched since.
pub type KeySet = Arc<Vec<Jwk>>;

/// Fetches and caches the JWKS of one issuer.
pub struct JwksSource {
    issuer: String,
    jwks_url: Option<String>,
    http: reqwest::Client,
    ttl: Duration,
    min_refetch: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: Option<KeySet>,
    /// When `keys` were fetched.
    fetched_at: Option<Instant>,
    /// When the last re-fetch for an unknown `kid` was attempted.
    last_kid_refetch: Option<Instant>,
    /// When and why the last fetch failed (cleared by a success).
    last_failure: Option<(Instant, String)>,
}

/// The outcome of asking for a `kid` that the cached keys did not have.
pub enum KidLookup {
    /// Keys that were (re-)fetched after the caller's set; they may or may not hold the kid.
    Refreshed(KeySet),
    /// A re-fetch happened too recently to try again.
    RateLimited,
}

impl JwksSource {
    pub fn new(
        issuer: String,
        jwks_url: Option<String>,
        http: reqwest::Client,
        ttl: Duration,
        min_refetch: Duration,
    ) -> JwksSource {
        JwksSource {
            issuer,
            jwks_url,
            http,
            ttl,
            min_refetch,
            state: Mutex::new(State::default()),
        }
    }

    /// The cached keys, fetched first when missing or older than the TTL.
    /// When a refresh fails but older keys exist, those keep being used (the
    /// failure is logged): an IdP outage should not lock everyone out.
    pub async fn keys(&self) -> Result<KeySet, AuthError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let (Some(keys), Some(at)) = (&state.keys, state.fetched_at)
            && now.duration_since(at) < self.ttl
        {
            return Ok(keys.clone());
        }
        if let Some((at, reason)) = &state.last_failure
            && now.duration_since(*at) < self.min_refetch
        {
            // Do not hammer (or wait on) an IdP that just failed.
            return match &state.keys {
                Some(keys) => Ok(keys.clone()),
                None => Err(AuthReason::JwksUnavailable {
                    issuer: self.issuer.clone(),
                    reason: reason.clone(),
                }
                .into()),
            };
        }
        self.fetch_locked(&mut state).await
    }

    /// Called when `seen` has no key named `kid`. Re-fetches unless another
    /// request already did so since `seen` was taken, or a re-fetch for an
    /// unknown kid happened less than `jwks_min_refetch` ago.
    pub async fn refresh_for_unknown_kid(
        &self,
        kid: &str,
        seen: &KeySet,
    ) -> Result<KidLookup, AuthError> {
        let mut state = self.state.lock().await;
        if let Some(keys) = &state.keys
            && !Arc::ptr_eq(keys, seen)
            && keys
                .iter()
                .any(|key| key.common.key_id.as_deref() == Some(kid))
        {
            return Ok(KidLookup::Refreshed(keys.clone()));
        }
        let now = Instant::now();
        if let Some(at) = state.last_kid_refetch
            && now.duration_since(at) < self.min_refetch
        {
            return Ok(KidLookup::RateLimited);
        }
        state.last_kid_refetch = Some(now);
        self.fetch_locked(&mut state)
            .await
            .map(KidLookup::Refreshed)
    }

    async fn fetch_locked(&self, state: &mut State) -> Result<KeySet, AuthError> {
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(issuer = %self.issuer, keys = keys.len(), "fetched JWKS");
                let keys = Arc::new(keys);
                state.keys = Some(keys.clone());
                state.fetched_at = Some(Instant::now());
                state.last_failure = None;
                Ok(keys)
            }
            Err(error) => {
                let reason = error.to_string();
                state.last_failure = Some((Instant::now(), reason.clone()));
                match &state.keys {
                    Some(keys) => {
                        tracing::warn!(issuer = %self.issuer, %reason, "JWKS refresh failed; keeping the keys fetched earlier");
                        Ok(keys.clone())
                    }
                    None => {
                        tracing::warn!(issuer = %self.issuer, %reason, "JWKS fetch failed");
                        Err(AuthReason::JwksUnavailable {
                            issuer: self.issuer.clone(),
                            reason,
                        }
                        .into())
                    }
                }
            }
        }
    }

    /// Downloads the key set, discovering its URL first when not configured.
    async fn fetch(&self) -> Result<Vec<Jwk>, JwksError> {
        let url = match &self.jwks_url {
            Some(url) => url.clone(),
            None => self.discover().await?,
        };
        let document = get_json(&self.http, &url).await?;
        parse_key_set(&document).map_err(|source| JwksError::KeySet {
            url,
            source: Box::new(source),
        })
    }

    /// `jwks_uri` from `{issuer}/.well-known/openid-configuration`, after
    /// checking that the document speaks for this issuer.
    async fn discover(&self) -> Result<String, JwksError> {
        let url = discovery_url(&self.issuer);
        let document = get_json(&self.http, &url).await?;
        match document.get("issuer") {
            Some(Value::String(issuer)) if issuer == &self.issuer => {}
            Some(Value::String(issuer)) => {
                return Err(JwksError::WrongIssuer {
                    url,
                    found: issuer.clone(),
                    expected: self.issuer.clone(),
                });
            }
            _ => return Err(JwksError::NoIssuer { url }),
        }
        match document.get("jwks_uri") {
            Some(Value::String(jwks_uri)) if !jwks_uri.is_empty() => Ok(jwks_uri.clone()),
            _ => Err(JwksError::NoJwksUri { url }),
        }
    }
}

/// Where OIDC discovery lives for an issuer.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// GETs a JSON document of bounded size. Errors name the URL and cause.
async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, JwksError> {
    let http_error = |error: reqwest::Error| JwksError::Http {
        url: url.to_string(),
        reason: describe(&error),
    };
    let too_large = || JwksError::TooLarge {
        url: url.to_string(),
    };
    let mut response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(http_error)?;
    let status = response.status();
    if !status.is_success() {
        return Err(JwksError::Status {
            url: url.to_string(),
            status,
        });
    }
    if response
        .content_length()
        .is_some_and(|length| length > MAX_BODY as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(http_error)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|source| JwksError::NotJson {
        url: url.to_string(),
        source,
    })
}

/// A short cause for an HTTP failure.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "cannot connect".into()
    } else {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// Reads `{"keys": [...]}`, skipping (with a debug log) keys this crate
/// cannot represent instead of failing the whole set.
pub fn parse_key_set(document: &Value) -> Result<Vec<Jwk>, JwksError> {
    let Some(Value::Array(entries)) = document.get("keys") else {
        return Err(JwksError::NoKeys);
    };
    let keys: Vec<Jwk> = entries
        .iter()
        .filter_map(|entry| match serde_json::from_value::<Jwk>(entry.clone()) {
            Ok(key) => Some(key),
            Err(error) => {
                tracing::debug!(%error, "skipping a JWKS entry that cannot be used");
                None
            }
        })
        .collect();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn discovery_url_ignores_trailing_slash() {
        assert_eq!(
            discovery_url("https://idp.example/realms/x/"),
            "https://idp.example/realms/x/.well-known/openid-configuration"
        );
    }

    #[test]
    fn key_set_skips_unusable_entries() {
        let document = json!({"keys": [
            {"kty": "RSA", "kid": "a", "n": "AQAB", "e": "AQAB"},
            {"kty": "weird"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "b", "x": "AAAA"}
        ]});
        let keys = parse_key_set(&document).unwrap();
        let kids: Vec<_> = keys
            .iter()
            .map(|k| k.common.key_id.clone().unwrap_or_default())
            .collect();
        assert!(kids.contains(&"a".to_string()));
        assert!(kids.contains(&"b".to_string()));
        assert!(parse_key_set(&json!({"nokeys": 1})).is_err());
        assert!(parse_key_set(&json!({"keys": {}})).is_err());
    }

    #[test]
    fn messages_name_the_url() {
        let url = "https://idp.example/jwks".to_string();
        assert_eq!(
            JwksError::TooLarge { url: url.clone() }.to_string(),
            "https://idp.example/jwks: response larger than 1048576 bytes"
        );
        let bad_set = JwksError::KeySet {
            url,
            source: Box::new(parse_key_set(&json!({})).unwrap_err()),
        };
        assert_eq!(
            bad_set.to_string(),
            "https://idp.example/jwks: JWKS has no \"keys\" array"
        );
    }
}
