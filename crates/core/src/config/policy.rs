//! `[[policy]]`: the access rules.

use serde::Deserialize;
use std::time::Duration;

/// `[[policy]]`: who may do what on which targets.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    /// `group:G`, `sub:S`, `email:E`, `claim:NAME=VALUE`, `key:NAME`, or `*`.
    pub subjects: Vec<String>,
    /// Target names or globs (`orders-*`).
    pub targets: Vec<String>,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub review: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
    /// Limit the rule to statements touching these tables (`schema.table` globs).
    #[serde(default)]
    pub tables: Vec<String>,
    /// Limit the rule to statements touching these schemas (globs).
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Who may approve reviews this rule asks for (subject patterns as in `subjects`).
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Approvals a review needs (distinct approvers, never the requester).
    #[serde(default = "default_min_approvals")]
    pub min_approvals: u32,
    /// `statement`: an approval releases exactly that statement once;
    /// `session`: the same statement may run again in that session without a new review.
    #[serde(default = "default_approval_scope")]
    pub approval_scope: String,
    /// How long a held statement waits for a decision (then `57014`).
    #[serde(default = "default_review_timeout", with = "humantime_serde")]
    pub review_timeout: Duration,
    #[serde(default)]
    pub mask: Vec<String>,
    #[serde(default)]
    pub mask_columns: Vec<String>,
}

fn default_min_approvals() -> u32 {
    1
}

fn default_approval_scope() -> String {
    "statement".into()
}

fn default_review_timeout() -> Duration {
    Duration::from_secs(600)
}
