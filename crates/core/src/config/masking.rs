//! `[masking]`: how masked values are rewritten, and custom detectors.

use crate::secret::SecretRef;
use serde::Deserialize;

/// `[masking]`: how masked values are rewritten (rules live in `[[policy]]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingConfig {
    /// `redact` (default), `partial`, `hash` or `null`.
    #[serde(default = "default_mask_strategy")]
    pub strategy: String,
    /// Characters kept at the end by `partial`.
    #[serde(default = "default_keep_last")]
    pub keep_last: usize,
    /// Key for `hash` (a secret reference); required by that strategy.
    pub hash_key: Option<SecretRef>,
    /// A covered value that cannot be rewritten in place (binary format of a
    /// non-text type): `null` sends NULL, `refuse` fails the statement.
    #[serde(default = "default_unmaskable")]
    pub unmaskable: String,
    /// User-defined detectors: `[[masking.detector]] name = "order_id", regex = "ORD-[0-9]{8}"`.
    #[serde(default, rename = "detector")]
    pub detectors: Vec<CustomDetector>,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        MaskingConfig {
            strategy: default_mask_strategy(),
            keep_last: default_keep_last(),
            hash_key: None,
            unmaskable: default_unmaskable(),
            detectors: Vec::new(),
        }
    }
}

fn default_mask_strategy() -> String {
    "redact".into()
}

fn default_keep_last() -> usize {
    4
}

fn default_unmaskable() -> String {
    "null".into()
}

/// A named regex detector.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDetector {
    pub name: String,
    pub regex: String,
}
