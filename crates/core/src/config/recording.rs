//! `[recording]`: session recordings, their sink, spool and keys.

use super::default_true;
use crate::secret::SecretRef;
use crate::units::ByteSize;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[recording]`: session recordings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `local` (the default): files under `dir`; `s3`: an S3-compatible bucket.
    #[serde(default = "default_sink")]
    pub sink: String,
    /// The `local` sink's directory. Defaults to `{data_dir}/recordings`.
    pub dir: Option<PathBuf>,
    /// Where chunks are written before the sink has them. Defaults to `{data_dir}/spool`.
    pub spool_dir: Option<PathBuf>,
    /// Record statement texts (the default).
    #[serde(default = "default_true")]
    pub capture_statements: bool,
    /// Record result rows (masked) as well as their summaries.
    #[serde(default)]
    pub capture_results: bool,
    /// Record result values before masking. Needs `encryption_key`.
    #[serde(default)]
    pub capture_raw: bool,
    /// A chunk is closed (and becomes uploadable) at this size of events…
    #[serde(default = "default_chunk_size")]
    pub chunk_size: ByteSize,
    /// …or after this long, whichever comes first.
    #[serde(default = "default_chunk_interval", with = "humantime_serde")]
    pub chunk_interval: Duration,
    /// How often the open chunk is fsync'd.
    #[serde(default = "default_fsync_interval", with = "humantime_serde")]
    pub fsync_interval: Duration,
    /// `refuse`: new sessions are refused while the spool disk is full.
    #[serde(default = "default_on_spool_full")]
    pub on_spool_full: String,
    /// How long recordings are kept (`90d`); per-target `retention` overrides it.
    #[serde(default, with = "humantime_serde")]
    pub retention: Option<Duration>,
    /// How often expired recordings are looked for.
    #[serde(default = "default_retention_interval", with = "humantime_serde")]
    pub retention_interval: Duration,
    /// Signs each session's manifest (ed25519 seed, 32 bytes, hex or base64 secret).
    pub signing_key: Option<SecretRef>,
    /// Encrypts chunks at rest (32-byte key, hex or base64 secret).
    pub encryption_key: Option<SecretRef>,
    /// `s3` sink: the bucket, endpoint and addressing.
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Key prefix inside the bucket.
    #[serde(default)]
    pub prefix: String,
    /// Path-style addressing (most self-hosted S3 servers need it).
    #[serde(default = "default_true")]
    pub path_style: bool,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            enabled: true,
            sink: default_sink(),
            dir: None,
            spool_dir: None,
            capture_statements: true,
            capture_results: false,
            capture_raw: false,
            chunk_size: default_chunk_size(),
            chunk_interval: default_chunk_interval(),
            fsync_interval: default_fsync_interval(),
            on_spool_full: default_on_spool_full(),
            retention: None,
            retention_interval: default_retention_interval(),
            signing_key: None,
            encryption_key: None,
            bucket: None,
            endpoint: None,
            region: None,
            prefix: String::new(),
            path_style: true,
        }
    }
}

fn default_chunk_size() -> ByteSize {
    ByteSize(8 * 1024 * 1024)
}

fn default_chunk_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_fsync_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_retention_interval() -> Duration {
    Duration::from_secs(600)
}

fn default_on_spool_full() -> String {
    "refuse".into()
}

fn default_sink() -> String {
    "local".into()
}
