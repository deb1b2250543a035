//! warden-identity: turns a presented credential into an [`Identity`].
//!
//! Two kinds of credential are accepted:
//! - OIDC JWTs, verified against the JWKS of a configured `[[identity.oidc]]`
//!   issuer (asymmetric algorithms only, keys only from the configured JWKS);
//! - Warden access keys (`wdn_{id}_{secret}`), checked against the hashes in
//!   an [`AccessKeyStore`].
//!
//! Every refusal is an [`AuthError`] whose reason is precise enough for the
//! log but never contains the credential itself.

pub mod access_key;
mod jwks;
pub mod jwt;
pub mod mysql_native;
pub use jwks::discovery_url;
mod oidc;

pub use access_key::{
    ACCESS_KEY_PREFIX, access_key_identity, generate_access_key, key_sha256_hex,
    mysql_native_hash_hex, parse_access_key, verify_access_key,
};
pub use mysql_native::{NATIVE_SCRAMBLE_LEN, verify_mysql_native_password};

use async_trait::async_trait;
use oidc::IssuerVerifier;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;
use warden_core::Identity;
use warden_core::config::IdentityConfig;
use warden_core::engines::{AccessKeyStore, AuthContext, AuthError, AuthReason, Authenticator};

/// Longest credential looked at; anything longer is refused unread.
pub const MAX_CREDENTIAL_LEN: usize = 16 * 1024;

/// The configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("[[identity.oidc]] issuer {issuer:?}: {message}")]
    Oidc { issuer: String, message: String },
    #[error("cannot build the HTTP client for JWKS fetches: {0}")]
    Http(String),
}

/// Knobs that are not part of `warden.toml`.
#[derive(Clone, Debug)]
pub struct IdentityOptions {
    /// Whole-request limit for discovery and JWKS downloads.
    pub http_timeout: Duration,
    /// Limit for opening the connection to the IdP.
    pub connect_timeout: Duration,
}

impl Default for IdentityOptions {
    fn default() -> Self {
        IdentityOptions {
            http_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// Warden's [`Authenticator`]: OIDC issuers plus access keys.
pub struct IdentityService {
    issuers: Vec<IssuerVerifier>,
    keys: Arc<dyn AccessKeyStore>,
    access_keys_enabled: bool,
}

impl IdentityService {
    /// Builds the service. Nothing is fetched here: JWKS are fetched on first
    /// use (or by [`IdentityService::warm_up`]), so an IdP that is briefly down
    /// does not stop Warden from starting.
    pub async fn new(
        config: &IdentityConfig,
        keys: Arc<dyn AccessKeyStore>,
    ) -> Result<IdentityService, IdentityError> {
        IdentityService::with_options(config, keys, IdentityOptions::default())
    }

    /// [`IdentityService::new`] with explicit HTTP timeouts.
    pub fn with_options(
        config: &IdentityConfig,
        keys: Arc<dyn AccessKeyStore>,
        options: IdentityOptions,
    ) -> Result<IdentityService, IdentityError> {
        let http = reqwest::Client::builder()
            .timeout(options.http_timeout)
            .connect_timeout(options.connect_timeout)
            // A JWKS URL must not bounce us somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| IdentityError::Http(error.to_string()))?;
        let mut issuers: Vec<IssuerVerifier> = Vec::with_capacity(config.oidc.len());
        for oidc in &config.oidc {
            let fail = |message: String| IdentityError::Oidc {
                issuer: oidc.issuer.clone(),
                message,
            };
            if oidc.issuer.is_empty() {
                return Err(fail("issuer is empty".into()));
            }
            if issuers.iter().any(|known| known.issuer() == oidc.issuer) {
                return Err(fail("listed twice".into()));
            }
            if oidc.audience.is_empty() {
                return Err(fail("audience is empty".into()));
            }
            if oidc.algorithms.is_empty() {
                return Err(fail("algorithms is empty".into()));
            }
            let algorithms = oidc
                .algorithms
                .iter()
                .map(|name| jwt::parse_allowed_algorithm(name))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| fail(error.to_string()))?;
            for url in std::iter::once(&oidc.issuer).chain(oidc.jwks_url.as_ref()) {
                if is_plain_http_off_loopback(url) {
                    tracing::warn!(issuer = %oidc.issuer, %url, "OIDC keys are fetched over plain HTTP; anyone on the path could substitute them");
                }
            }
            let jwks = jwks::JwksSource::new(
                oidc.issuer.clone(),
                oidc.jwks_url.clone(),
                http.clone(),
                oidc.jwks_cache_ttl,
                oidc.jwks_min_refetch,
            );
            issuers.push(IssuerVerifier::new(oidc.clone(), algorithms, jwks));
        }
        Ok(IdentityService {
            issuers,
            keys,
            access_keys_enabled: config.access_keys.enabled,
        })
    }

    /// Fetches every issuer's JWKS now, logging (not failing on) errors.
    /// Meant to be spawned at start-up.
    pub async fn warm_up(&self) {
        for issuer in &self.issuers {
            if let Err(error) = issuer.prefetch().await {
                tracing::warn!(issuer = issuer.issuer(), %error, "JWKS warm-up failed; will retry on first use");
            }
        }
    }

    /// Authenticates an access key presented through MySQL's
    /// `mysql_native_password` (where the key text never crosses the wire):
    /// `key_id` names the record, `scramble` is the 20 bytes the server sent.
    pub async fn authenticate_mysql_native(
        &self,
        key_id: &str,
        scramble: &[u8],
        client_response: &[u8],
    ) -> Result<Identity, AuthError> {
        if !self.access_keys_enabled {
            return Err(AuthReason::AccessKeysDisabled.into());
        }
        let record = access_key::find_record(self.keys.as_ref(), key_id).await?;
        if !verify_mysql_native_password(&record, scramble, client_response) {
            return Err(AuthReason::NativePasswordMismatch { id: record.id }.into());
        }
        access_key::check_usable(&record, time::OffsetDateTime::now_utc())?;
        Ok(access_key_identity(&record))
    }

    async fn authenticate_token(&self, token: &str) -> Result<Identity, AuthError> {
        let header = jwt::peek_header(token)?;
        let issuer = jwt::peek_issuer(token)?;
        let verifier = self
            .issuers
            .iter()
            .find(|verifier| verifier.issuer() == issuer)
            .ok_or_else(|| AuthReason::UnknownIssuer {
                issuer: jwt::printable(&issuer),
            })?;
        verifier.verify(token, &header).await
    }

    /// Verifies an OIDC ID token from `issuer` addressed to `client_id` (the
    /// reviewer UI's login), with that issuer's keys, algorithms and groups
    /// claim. The caller checks the `nonce` claim it sent.
    pub async fn verify_id_token(
        &self,
        token: &str,
        issuer: &str,
        client_id: &str,
    ) -> Result<Identity, AuthError> {
        if token.len() > MAX_CREDENTIAL_LEN || !jwt::looks_like_jwt(token) {
            return Err(AuthReason::IdTokenNotJwt.into());
        }
        let header = jwt::peek_header(token)?;
        let verifier = self
            .issuers
            .iter()
            .find(|verifier| verifier.issuer() == issuer)
            .ok_or_else(|| AuthReason::UnknownIssuer {
                issuer: jwt::printable(issuer),
            })?;
        verifier
            .verify_for_audience(token, &header, client_id)
            .await
    }

    async fn authenticate_key(&self, key: &str) -> Result<Identity, AuthError> {
        if !self.access_keys_enabled {
            return Err(AuthReason::AccessKeysDisabled.into());
        }
        let record = verify_access_key(self.keys.as_ref(), key).await?;
        Ok(access_key_identity(&record))
    }
}

/// `http://` to anything but a loopback host: where keys could be
/// substituted on the path, and where browsers refuse `Secure` cookies.
pub fn is_plain_http_off_loopback(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    !(host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()))
}

#[async_trait]
impl Authenticator for IdentityService {
    async fn authenticate(
        &self,
        credential: &SecretString,
        context: &AuthContext,
    ) -> Result<Identity, AuthError> {
        let text = credential.expose_secret();
        let result = if text.is_empty() {
            Err(AuthReason::EmptyCredential.into())
        } else if text.len() > MAX_CREDENTIAL_LEN {
            Err(AuthReason::CredentialTooLong {
                len: text.len(),
                limit: MAX_CREDENTIAL_LEN,
            }
            .into())
        } else if text.starts_with(ACCESS_KEY_PREFIX) {
            self.authenticate_key(text).await
        } else if jwt::looks_like_jwt(text) {
            self.authenticate_token(text).await
        } else {
            Err(AuthReason::UnrecognisedCredential.into())
        };
        if let Err(error) = &result {
            tracing::debug!(client = %context.client_addr, target = %context.target, reason = %error, "authentication failed");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_flagged_only_off_loopback() {
        assert!(is_plain_http_off_loopback("http://idp.example/realms/x"));
        assert!(is_plain_http_off_loopback("http://10.0.0.1:8080"));
        assert!(!is_plain_http_off_loopback("http://127.0.0.1:8080/jwks"));
        assert!(!is_plain_http_off_loopback("http://localhost"));
        assert!(!is_plain_http_off_loopback("http://[::1]:80/x"));
        assert!(!is_plain_http_off_loopback("https://idp.example"));
    }
}
