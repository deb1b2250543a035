//! What the store hands back: rows of the sessions index and query filters.

use crate::cols::{Cols, Reader};
use crate::timefmt::{from_db, from_db_opt};
use crate::{StoreError, to_u64};
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
    /// The Warden node that served the session (`None` for sessions
    /// written before nodes were recorded).
    #[serde(default)]
    pub node: Option<String>,
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

/// Decodes one row selected with `select_sessions!`, from either backend.
pub(crate) fn session_row(row: &impl Cols) -> Result<SessionRow, StoreError> {
    let r = Reader::new(row, "a session row");
    let id = r.text("id")?;
    let bad = |what: &str, e: serde_json::Error| StoreError::Corrupt {
        what: format!("session {id} has a bad {what}"),
        source: Some(Box::new(e)),
    };
    let identity = serde_json::from_str(&r.text("identity")?).map_err(|e| bad("identity", e))?;
    let protocol: Protocol = serde_json::from_value(serde_json::Value::String(r.text("protocol")?))
        .map_err(|e| bad("protocol", e))?;
    Ok(SessionRow {
        subject: r.text("subject")?,
        identity,
        target: r.text("target")?,
        protocol,
        client_addr: r.text("client_addr")?,
        client_tls: r.flag("client_tls")?,
        started_at: from_db(&r.text("started_at")?)?,
        ended_at: from_db_opt(r.opt_text("ended_at")?)?,
        bytes_from_client: to_u64(r.int("bytes_from_client")?),
        bytes_to_client: to_u64(r.int("bytes_to_client")?),
        statements: to_u64(r.int("statements")?),
        end_reason: r.opt_text("end_reason")?,
        node: r.opt_text("node")?,
        id,
    })
}
