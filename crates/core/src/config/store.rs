//! `[store]`: where state lives.

use serde::Deserialize;

/// `[store]`: where state lives. Omit for SQLite in `data_dir`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH?mode=rwc` (one node) or `postgres://USER:PASSWORD@HOST/DB`
    /// (`postgresql://` too; several nodes share it).
    pub url: Option<String>,
}
