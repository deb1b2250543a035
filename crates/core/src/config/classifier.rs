//! `[classifier]`: tuning of SQL statement classification.

use serde::Deserialize;

/// `[classifier]`: tuning of SQL statement classification (see docs/policy.md).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Functions that may be called in a read (`name` or `schema.name`);
    /// other user-defined or volatile functions make a statement a write.
    #[serde(default)]
    pub safe_functions: Vec<String>,
    /// Extra settings whose `SET` is a read (e.g. `app.tenant`); by default
    /// only PostgreSQL's ordinary per-session settings are.
    #[serde(default)]
    pub safe_settings: Vec<String>,
}
