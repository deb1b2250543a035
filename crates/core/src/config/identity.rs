//! `[identity]`: OIDC issuers and Warden's own access keys.

use super::default_true;
use serde::Deserialize;
use std::time::Duration;

/// `[identity]`: how callers prove who they are.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    #[serde(default)]
    pub oidc: Vec<OidcConfig>,
    #[serde(default)]
    pub access_keys: AccessKeyConfig,
}

/// `[[identity.oidc]]`: one trusted OIDC issuer.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Must equal the token's `iss` exactly.
    pub issuer: String,
    /// The token's `aud` must contain this.
    pub audience: String,
    /// Claim holding the caller's groups (a list or a space-separated string).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// JWKS location; discovered from `{issuer}/.well-known/openid-configuration` when omitted.
    pub jwks_url: Option<String>,
    /// Accepted signature algorithms. HS* and `none` are never accepted.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// How long a fetched JWKS is trusted before it is fetched again.
    #[serde(default = "default_jwks_ttl", with = "humantime_serde")]
    pub jwks_cache_ttl: Duration,
    /// At most one re-fetch per this interval when a token names an unknown `kid`.
    #[serde(default = "default_jwks_refetch", with = "humantime_serde")]
    pub jwks_min_refetch: Duration,
}

fn default_groups_claim() -> String {
    "groups".into()
}
fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into(), "EdDSA".into()]
}
fn default_leeway() -> Duration {
    Duration::from_secs(30)
}
fn default_jwks_ttl() -> Duration {
    Duration::from_secs(600)
}
fn default_jwks_refetch() -> Duration {
    Duration::from_secs(10)
}

/// `[identity.access_keys]`: Warden's own keys (`warden keys create`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Lifetime of a key when `warden keys create` is given no `--ttl`.
    #[serde(default = "default_key_ttl", with = "humantime_serde")]
    pub default_ttl: Duration,
    /// Longest lifetime a key may be given.
    #[serde(default = "default_key_max_ttl", with = "humantime_serde")]
    pub max_ttl: Duration,
}

impl Default for AccessKeyConfig {
    fn default() -> Self {
        AccessKeyConfig {
            enabled: true,
            default_ttl: default_key_ttl(),
            max_ttl: default_key_max_ttl(),
        }
    }
}

fn default_key_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_key_max_ttl() -> Duration {
    Duration::from_secs(90 * 24 * 3600)
}
