//! Human approval: the interface the protocol crates hold a statement (or a
//! connect) through. The review service (crate `warden-reviews`) keeps
//! reviews in the store, applies approver rules, notifies reviewers and wakes
//! the waiting session — on any node sharing the store.

use crate::engines::StoreError;
use crate::{Identity, Operation};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What is being asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewKind {
    /// One statement held inside a live session.
    Statement,
    /// Time-boxed access to a target (`warden access request`, or a connect the policy reviews).
    Access,
}

/// A new review.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReviewRequest {
    pub kind: ReviewKind,
    /// The session a statement is held in (`None` for access requests made outside one).
    pub session_id: Option<String>,
    pub target: String,
    pub requester: Identity,
    /// The exact statement text (statement reviews).
    pub statement: Option<String>,
    /// SHA-256 (hex) of the statement text and its bound parameters: an
    /// approval is bound to this hash and the session id.
    pub statement_hash: Option<String>,
    pub operation: Operation,
    pub tables: Vec<String>,
    /// The `[[policy]]` whose `review` list matched; its `approvers`,
    /// `min_approvals` and `approval_scope` apply.
    pub rule: Option<String>,
    /// The requester's reason (access requests).
    pub reason: Option<String>,
    /// How long the access grant lasts once approved (access requests).
    pub duration: Option<Duration>,
}

impl ReviewRequest {
    /// A review of one statement held in a session, as a relay opens it.
    pub fn statement(
        session_id: &str,
        target: &str,
        requester: &Identity,
        text: &str,
        statement_hash: String,
        decision: &crate::Decision,
    ) -> Self {
        ReviewRequest {
            kind: ReviewKind::Statement,
            session_id: Some(session_id.to_string()),
            target: target.to_string(),
            requester: requester.clone(),
            statement: Some(text.to_string()),
            statement_hash: Some(statement_hash),
            operation: decision.operation(),
            tables: decision.tables().to_vec(),
            rule: decision.rule().map(str::to_string),
            reason: None,
            duration: None,
        }
    }
}

/// How long a statement held by `decision` waits: its rule's `review_timeout`.
pub fn review_timeout(config: &crate::config::Config, decision: &crate::Decision) -> Duration {
    decision
        .rule()
        .and_then(|name| config.policies.iter().find(|p| p.name == name))
        .map_or(Duration::from_secs(600), |rule| rule.review_timeout)
}

/// A submitted review, for the waiting client.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReviewTicket {
    pub id: String,
    /// Where a reviewer decides it (`{public_url}/reviews/{id}`), when known.
    pub url: Option<String>,
}

/// How a review ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReviewOutcome {
    Approved {
        approvers: Vec<String>,
        comment: Option<String>,
    },
    Denied {
        reviewer: String,
        comment: Option<String>,
    },
    TimedOut,
    Cancelled {
        reason: String,
    },
}

/// Holds and releases reviewed work.
#[async_trait]
pub trait ReviewEngine: Send + Sync {
    /// Records a pending review, notifies reviewers (webhooks, live UI).
    async fn submit(&self, request: ReviewRequest) -> Result<ReviewTicket, StoreError>;

    /// Waits until the review is decided, or `timeout` passes (then the review
    /// is marked timed out). Wakes within a second of a decision made on any node.
    async fn wait(&self, id: &str, timeout: Duration) -> ReviewOutcome;

    /// Withdraws a pending review (the client disconnected or cancelled).
    async fn cancel(&self, id: &str, reason: &str);

    /// True when an approval with scope "session" already covers this
    /// statement hash in this session (approve once for the session).
    async fn session_approved(&self, session_id: &str, statement_hash: &str) -> bool;

    /// True when `identity` holds a live access grant on `target`.
    async fn has_access_grant(&self, identity: &Identity, target: &str) -> bool;
}

/// For gateways without reviews (tests, tools): every review is refused at once.
#[derive(Debug, Default)]
pub struct NoReviews;

#[async_trait]
impl ReviewEngine for NoReviews {
    async fn submit(&self, _request: ReviewRequest) -> Result<ReviewTicket, StoreError> {
        Err(StoreError::ReviewsUnavailable)
    }
    async fn wait(&self, _id: &str, _timeout: Duration) -> ReviewOutcome {
        ReviewOutcome::Cancelled {
            reason: "reviews are not available".into(),
        }
    }
    async fn cancel(&self, _id: &str, _reason: &str) {}
    async fn session_approved(&self, _session_id: &str, _statement_hash: &str) -> bool {
        false
    }
    async fn has_access_grant(&self, _identity: &Identity, _target: &str) -> bool {
        false
    }
}

/// The hash an approval is bound to: the statement text and its parameters.
pub fn statement_hash(text: &str, parameters: &[Option<Vec<u8>>]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update((text.len() as u64).to_be_bytes());
    hasher.update(text.as_bytes());
    for parameter in parameters {
        match parameter {
            Some(bytes) => {
                hasher.update([1]);
                hasher.update((bytes.len() as u64).to_be_bytes());
                hasher.update(bytes);
            }
            None => hasher.update([0]),
        }
    }
    hex::encode(hasher.finalize())
}
