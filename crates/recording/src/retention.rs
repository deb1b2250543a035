//! Retention: deleting recordings older than their target's retention from
//! the sink, except those on legal hold.

use crate::error::RecordingError;
use crate::manifest::{MANIFEST_NAME, parse_manifest};
use crate::sink::Sink;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use time::OffsetDateTime;
use warden_core::config::Config;

/// How long recordings are kept: per target, else the default; a recording
/// whose target has neither is kept forever.
#[derive(Clone, Debug, Default)]
pub struct RetentionPolicy {
    pub default: Option<Duration>,
    pub per_target: HashMap<String, Duration>,
}

impl RetentionPolicy {
    /// `[recording] retention` and each `[[target]] retention`.
    pub fn from_config(config: &Config) -> RetentionPolicy {
        RetentionPolicy {
            default: config.recording.retention,
            per_target: config
                .targets
                .iter()
                .filter_map(|t| t.retention.map(|r| (t.name.clone(), r)))
                .collect(),
        }
    }

    pub fn for_target(&self, target: &str) -> Option<Duration> {
        self.per_target.get(target).copied().or(self.default)
    }
}

/// What [`apply_retention`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RetentionReport {
    /// Deleted: expired and not held.
    pub deleted: Vec<String>,
    /// Expired but on hold: kept.
    pub held: Vec<String>,
    /// Could not be deleted (or their manifest read); tried again next run.
    pub failed: Vec<(String, String)>,
}

/// Deletes every sealed recording in `sink` whose session ended longer ago
/// than its target's retention, unless its id is in `holds`. Sessions
/// without a manifest (live, or still uploading) are never deleted.
pub async fn apply_retention(
    sink: &dyn Sink,
    now: OffsetDateTime,
    policy: &RetentionPolicy,
    holds: &HashSet<String>,
) -> Result<RetentionReport, RecordingError> {
    let mut report = RetentionReport::default();
    for session_id in sink.sessions().await? {
        let manifest = match sink.get(&session_id, MANIFEST_NAME).await {
            Ok(Some(bytes)) => match parse_manifest(&bytes) {
                Ok(signed) => signed.manifest,
                Err(e) => {
                    report.failed.push((session_id, e.to_string()));
                    continue;
                }
            },
            Ok(None) => continue,
            Err(e) => {
                report.failed.push((session_id, e.to_string()));
                continue;
            }
        };
        let Some(keep) = policy.for_target(&manifest.target) else {
            continue;
        };
        let expired = (now - manifest.ended_at).unsigned_abs() >= keep && now > manifest.ended_at;
        if !expired {
            continue;
        }
        if holds.contains(&session_id) {
            report.held.push(session_id);
            continue;
        }
        match sink.delete_session(&session_id).await {
            Ok(()) => {
                tracing::info!(%session_id, target = %manifest.target, "recording deleted by retention");
                report.deleted.push(session_id);
            }
            Err(e) => report.failed.push((session_id, e.to_string())),
        }
    }
    Ok(report)
}
