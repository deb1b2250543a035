//! Session and audit events, shared by protocol crates (which produce them),
//! the recorder and the store (which keep them).

use crate::config::Protocol;
use crate::request::StatementProtocol;
use crate::{Action, Identity, Operation};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use time::OffsetDateTime;

/// A session as the index knows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionInfo {
    /// A UUIDv7: sortable by start time.
    pub id: String,
    pub identity: Identity,
    pub target: String,
    pub protocol: Protocol,
    pub client_addr: SocketAddr,
    /// Whether the client used TLS.
    pub client_tls: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
}

impl SessionInfo {
    pub fn new(
        identity: Identity,
        target: &str,
        protocol: Protocol,
        client_addr: SocketAddr,
        client_tls: bool,
    ) -> Self {
        SessionInfo {
            id: uuid::Uuid::now_v7().to_string(),
            identity,
            target: target.to_string(),
            protocol,
            client_addr,
            client_tls,
            started_at: OffsetDateTime::now_utc(),
        }
    }
}

/// How a session ended, for the index and the `end` event.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SessionSummary {
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
    pub statements: u64,
    /// `client closed`, `upstream closed`, `shutdown`, an error text …
    pub reason: String,
}

/// One recorded event of a session. The recorder adds sequence and time.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Start {
        identity: Identity,
        target: String,
        protocol: Protocol,
        client_addr: SocketAddr,
        client_tls: bool,
        upstream_user: String,
    },
    /// A statement and its outcome.
    Statement {
        text: String,
        protocol: StatementProtocol,
        duration_ms: f64,
        /// CommandComplete tags (several for a multi-statement query).
        tags: Vec<String>,
        rows: Option<u64>,
        /// SQLSTATE / MySQL error code on failure.
        error_code: Option<String>,
        error_message: Option<String>,
    },
    /// A policy decision on a statement.
    Decision {
        text: String,
        operation: Operation,
        action: Action,
        rule: Option<String>,
        tables: Vec<String>,
        reason: String,
    },
    /// Rows of a statement's result as captured (already masked unless
    /// `capture_raw`), when `capture_results` is on.
    Result {
        columns: Vec<String>,
        rows: Vec<Vec<Option<String>>>,
        /// True when more rows were returned than were captured.
        truncated: bool,
    },
    /// Values of one column that masking rewrote in one statement's result
    /// (never the values themselves).
    Masked {
        column: String,
        detector: String,
        count: u64,
    },
    /// A per-session credential's lifecycle: `issued`, `renewed`, `revoked`, `swept`, `expired`.
    Lease {
        lease_id: String,
        action: String,
        upstream_user: String,
        detail: String,
    },
    /// A human review of a held statement or access request: `requested`,
    /// `approved`, `denied`, `timed_out`, `cancelled`.
    Review {
        review_id: String,
        action: String,
        actor: String,
        comment: Option<String>,
    },
    End {
        bytes_from_client: u64,
        bytes_to_client: u64,
        statements: u64,
        reason: String,
    },
}

impl EventKind {
    /// The `decision` event for `decision` on the statement recorded as `text`.
    pub fn decision(text: String, decision: &crate::Decision) -> EventKind {
        EventKind::Decision {
            text,
            operation: decision.operation(),
            action: decision.action(),
            rule: decision.rule().map(str::to_string),
            tables: decision.tables().to_vec(),
            reason: decision.reason().to_string(),
        }
    }
}

/// An audit trail entry (kept in the store, not only in a recording).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditEvent {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `auth.failure`, `auth.success`, `connect.denied`, `key.created`, …
    pub kind: String,
    /// Who (subject or `-` when unknown).
    pub actor: String,
    pub target: Option<String>,
    pub session_id: Option<String>,
    pub client_addr: Option<String>,
    /// Details for people; never a secret.
    pub detail: String,
}

impl AuditEvent {
    pub fn new(kind: &str, actor: &str, detail: impl Into<String>) -> Self {
        AuditEvent {
            at: OffsetDateTime::now_utc(),
            kind: kind.to_string(),
            actor: actor.to_string(),
            target: None,
            session_id: None,
            client_addr: None,
            detail: detail.into(),
        }
    }
}
