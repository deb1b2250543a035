//! `[web]`: the reviewer web UI and its OIDC client.

use super::default_true;
use crate::secret::SecretRef;
use serde::Deserialize;
use std::time::Duration;

/// `[web]`: the reviewer web UI on `admin_listen` (see docs/web-ui.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Serve the UI (`/`, `/reviews`, `/sessions`, `/login`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long a web login lasts (for OIDC too: the IdP vouched for the
    /// reviewer at login; sign in again after this).
    #[serde(default = "default_web_session_ttl", with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Signs the session cookie. Every node behind one URL needs the same
    /// key; without one each process makes its own (logins end on restart).
    pub session_key: Option<SecretRef>,
    /// Offer signing in with a Warden access key (small set-ups).
    #[serde(default = "default_true")]
    pub access_key_login: bool,
    /// `[web.oidc]`: sign reviewers in with the IdP (authorization code + PKCE).
    pub oidc: Option<WebOidcConfig>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            session_ttl: default_web_session_ttl(),
            session_key: None,
            access_key_login: true,
            oidc: None,
        }
    }
}

fn default_web_session_ttl() -> Duration {
    Duration::from_secs(8 * 3600)
}

/// `[web.oidc]`: the UI's OIDC client. Its `issuer` must also be an
/// `[[identity.oidc]]` issuer (keys, algorithms and groups claim come from there).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebOidcConfig {
    pub issuer: String,
    pub client_id: String,
    /// Confidential clients only; PKCE is used either way.
    pub client_secret: Option<SecretRef>,
    #[serde(default = "default_web_scopes")]
    pub scopes: Vec<String>,
    /// The button's label on the login page.
    #[serde(default = "default_web_oidc_label")]
    pub label: String,
}

fn default_web_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into(), "email".into()]
}

fn default_web_oidc_label() -> String {
    "Sign in with single sign-on".into()
}
