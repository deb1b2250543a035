//! `[reviews]`: human approval, and the webhooks told about it.

use crate::secret::SecretRef;
use serde::Deserialize;
use std::time::Duration;

/// `[reviews]`: human approval of held statements and access requests.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewsConfig {
    /// `[[reviews.webhook]]`: told when a review is requested and decided.
    #[serde(default, rename = "webhook")]
    pub webhooks: Vec<WebhookConfig>,
    /// Longest access a `warden access request` may ask for.
    #[serde(default = "default_max_access", with = "humantime_serde")]
    pub max_access_duration: Duration,
    /// How often a held statement re-reads its review. Unset: 250ms, or
    /// 1s while the PostgreSQL store pushes changes (then polling is only a
    /// safety net). See docs/reviews.md.
    #[serde(default, with = "humantime_serde")]
    pub poll_interval: Option<Duration>,
}

impl Default for ReviewsConfig {
    fn default() -> Self {
        ReviewsConfig {
            webhooks: Vec::new(),
            max_access_duration: default_max_access(),
            poll_interval: None,
        }
    }
}

fn default_max_access() -> Duration {
    Duration::from_secs(24 * 3600)
}

/// `[[reviews.webhook]]`: an HTTP endpoint reviews are POSTed to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Signs each body: `X-Warden-Signature: sha256=<hex HMAC-SHA256>`.
    pub secret: Option<SecretRef>,
    /// `cloudevents` (the default, JSON in structured mode) or `slack`
    /// (an incoming-webhook `{"text", "blocks"}` message).
    #[serde(default)]
    pub format: WebhookFormat,
}

/// The body a webhook receives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Cloudevents,
    Slack,
}
