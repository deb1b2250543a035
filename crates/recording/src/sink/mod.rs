//! Where sealed recordings are kept: a local directory or an S3 bucket.
//! Both store one object per chunk plus `manifest.json` under
//! `{session_id}/`; the manifest is written last, so its presence means the
//! recording is complete.

mod local;
mod s3;

pub use local::LocalSink;
pub use s3::{S3Sink, S3SinkConfig};

use async_trait::async_trait;

/// A sink operation failed. The message names the object and the cause,
/// never a credential.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    pub message: String,
}

impl SinkError {
    pub fn new(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
        }
    }
}

/// A store of sealed recordings. Implementations must make `put` atomic
/// (an object is either absent or complete) and idempotent.
#[async_trait]
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// For messages: `local /var/lib/warden/recordings`, `s3://bucket/prefix`.
    fn describe(&self) -> String;
    /// Stores `bytes` as `{session_id}/{name}`, replacing it.
    async fn put(&self, session_id: &str, name: &str, bytes: Vec<u8>) -> Result<(), SinkError>;
    /// `None` when the object does not exist.
    async fn get(&self, session_id: &str, name: &str) -> Result<Option<Vec<u8>>, SinkError>;
    /// The object names stored for a session (empty when none).
    async fn list(&self, session_id: &str) -> Result<Vec<String>, SinkError>;
    /// Every session id with at least one object.
    async fn sessions(&self) -> Result<Vec<String>, SinkError>;
    /// Removes every object of a session.
    async fn delete_session(&self, session_id: &str) -> Result<(), SinkError>;
}
