//! What the store hands back: rows of the sessions index and query filters.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use warden_core::Identity;
use warden_core::config::Protocol;

/// One row of the sessions index, every column. Serializable for `--json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionRow {
    pub id: String,
    pub subject: String,
    pub identity: Identity,
    pub target: String,
    pub protocol: Protocol,
    pub client_addr: String,
    pub client_tls: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// `None` while the session is open.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
    pub statements: u64,
    pub end_reason: Option<String>,
}

impl SessionRow {
    /// Whether the session has not ended (or Warden has not noticed yet).
    pub fn is_open(&self) -> bool {
        self.ended_at.is_none()
    }
}

/// Which sessions [`crate::Store::list_sessions`] returns, newest first.
#[derive(Clone, Debug)]
pub struct SessionFilter {
    /// At most this many rows.
    pub limit: u32,
    /// Only sessions on this target.
    pub target: Option<String>,
    /// Only sessions that have not ended.
    pub open_only: bool,
}

impl Default for SessionFilter {
    fn default() -> Self {
        SessionFilter {
            limit: 50,
            target: None,
            open_only: false,
        }
    }
}
