//! Building the recorder, sink and reader from `[recording]`.

use crate::error::RecordingError;
use crate::keys::RecordingKeys;
use crate::reader::RecordingReader;
use crate::recorder::{RecorderOptions, SpoolRecorder};
use crate::sink::{LocalSink, S3Sink, S3SinkConfig, Sink};
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use warden_core::config::RecordingConfig;

/// `[recording] dir`, by default `{data_dir}/recordings`.
pub fn local_dir(config: &RecordingConfig, data_dir: &Path) -> PathBuf {
    config
        .dir
        .clone()
        .unwrap_or_else(|| data_dir.join("recordings"))
}

/// `[recording] spool_dir`, by default `{data_dir}/spool`.
pub fn spool_dir(config: &RecordingConfig, data_dir: &Path) -> PathBuf {
    config
        .spool_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("spool"))
}

/// The configured sink. `s3` takes its credentials from
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`. Makes no request.
pub fn sink_from_config(
    config: &RecordingConfig,
    data_dir: &Path,
) -> Result<Arc<dyn Sink>, RecordingError> {
    match config.sink.as_str() {
        "local" => Ok(Arc::new(LocalSink::new(local_dir(config, data_dir)))),
        "s3" => {
            let bucket = config
                .bucket
                .clone()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| RecordingError::Config("sink = \"s3\" needs `bucket`".into()))?;
            let (access_key_id, secret_access_key) = S3SinkConfig::credentials_from_env()
                .map_err(|e| RecordingError::Config(e.to_string()))?;
            Ok(Arc::new(S3Sink::new(&S3SinkConfig {
                bucket,
                endpoint: config.endpoint.clone(),
                region: config.region.clone(),
                prefix: config.prefix.clone(),
                path_style: config.path_style,
                access_key_id,
                secret_access_key,
            })))
        }
        other => Err(RecordingError::Config(format!(
            "sink {other:?} is not known; use \"local\" or \"s3\""
        ))),
    }
}

fn options(
    config: &RecordingConfig,
    data_dir: &Path,
    keys: RecordingKeys,
) -> Result<RecorderOptions, RecordingError> {
    if config.on_spool_full != "refuse" {
        return Err(RecordingError::Config(format!(
            "on_spool_full {:?} is not supported; the only policy is \"refuse\"",
            config.on_spool_full
        )));
    }
    if config.capture_raw && !keys.has_encryption() {
        return Err(RecordingError::Config(
            "capture_raw records unmasked values and needs encryption_key".into(),
        ));
    }
    let mut options = RecorderOptions::new(spool_dir(config, data_dir));
    options.chunk_size = config.chunk_size.0.max(1);
    options.chunk_interval = config.chunk_interval;
    options.fsync_interval = config.fsync_interval;
    // Room for a few chunks of a session before it is refused.
    options.min_free_bytes = options.chunk_size.saturating_mul(2).max(16 << 20);
    options.keys = keys;
    Ok(options)
}

/// The recorder `warden serve` uses. Seals what an earlier process left in
/// the spool and starts uploading. `signing_key` / `encryption_key` are the
/// resolved `[recording]` secrets.
pub fn recorder_from_config(
    config: &RecordingConfig,
    data_dir: &Path,
    signing_key: Option<SecretString>,
    encryption_key: Option<SecretString>,
) -> Result<Arc<SpoolRecorder>, RecordingError> {
    let keys = RecordingKeys::new(signing_key.as_ref(), encryption_key.as_ref())?;
    let sink = sink_from_config(config, data_dir)?;
    let options = options(config, data_dir, keys)?;
    SpoolRecorder::start(options, sink).map(Arc::new)
}

/// A reader of the configured sink, the spool (live sessions) and v0
/// files in the local `dir`.
pub fn reader_from_config(
    config: &RecordingConfig,
    data_dir: &Path,
    signing_key: Option<SecretString>,
    encryption_key: Option<SecretString>,
) -> Result<RecordingReader, RecordingError> {
    let keys = RecordingKeys::new(signing_key.as_ref(), encryption_key.as_ref())?;
    let sink = sink_from_config(config, data_dir)?;
    Ok(RecordingReader::new(sink, keys)
        .with_spool(spool_dir(config, data_dir))
        .with_legacy_dir(local_dir(config, data_dir)))
}
