//! Reviews, votes and access grants as the store keeps them. Every Warden
//! node of a deployment shares the store, so a review submitted on one node
//! can be decided on another (or through `warden reviews approve`); the
//! review service reads the row back to learn the decision.

use crate::engines::StoreError;
use crate::reviews::ReviewKind;
use crate::{Identity, Operation};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;
use tokio::sync::mpsc;

/// Where a review is in its life. Only `Pending` may change, and only once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    Pending,
    Approved,
    Denied,
    TimedOut,
    Cancelled,
}

impl ReviewState {
    pub const ALL: [ReviewState; 5] = [
        ReviewState::Pending,
        ReviewState::Approved,
        ReviewState::Denied,
        ReviewState::TimedOut,
        ReviewState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewState::Pending => "pending",
            ReviewState::Approved => "approved",
            ReviewState::Denied => "denied",
            ReviewState::TimedOut => "timed_out",
            ReviewState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<ReviewState> {
        ReviewState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// True once the review can no longer change.
    pub fn is_final(self) -> bool {
        self != ReviewState::Pending
    }
}

impl fmt::Display for ReviewState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far an approval reaches (`approval_scope` of the rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalScope {
    /// Releases exactly the held statement, once.
    Statement,
    /// The same statement (same hash) may run again in the same session.
    Session,
}

impl ApprovalScope {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalScope::Statement => "statement",
            ApprovalScope::Session => "session",
        }
    }

    pub fn parse(text: &str) -> Option<ApprovalScope> {
        match text {
            "statement" => Some(ApprovalScope::Statement),
            "session" => Some(ApprovalScope::Session),
            _ => None,
        }
    }
}

/// One review as stored. The approver rules are copied from the policy when
/// the review is created, so every node judges votes the same way even if
/// its config was reloaded in between.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewRecord {
    /// A UUIDv7.
    pub id: String,
    pub kind: ReviewKind,
    pub state: ReviewState,
    pub session_id: Option<String>,
    pub target: String,
    pub requester: Identity,
    /// The requester's [`principal`], for lookups (grants, self-approval).
    pub requester_principal: String,
    pub statement: Option<String>,
    pub statement_hash: Option<String>,
    pub operation: Operation,
    pub tables: Vec<String>,
    pub rule: Option<String>,
    pub reason: Option<String>,
    /// Access requests: how long the grant lasts once approved, in seconds.
    pub duration_secs: Option<u64>,
    /// Subject patterns of who may decide (`group:dba`, `sub:alice`, `*` …).
    pub approvers: Vec<String>,
    pub min_approvals: u32,
    pub approval_scope: ApprovalScope,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the review times out if nobody decides.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    /// Who decided: the approvers (comma-separated), the denier, or `-`.
    pub decided_by: Option<String>,
    /// The deciding reviewer's comment, or why it was cancelled.
    pub decision_comment: Option<String>,
}

/// One reviewer's vote. A reviewer votes at most once per review.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewVote {
    pub review_id: String,
    /// The reviewer's [`principal`] (unique per review).
    pub reviewer: String,
    /// For people: [`Identity::display_name`].
    pub reviewer_name: String,
    pub approve: bool,
    pub comment: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Time-boxed access to a target, created by an approved access request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccessGrant {
    /// The review that created it (one grant per review).
    pub id: String,
    /// The grantee's [`principal`].
    pub principal: String,
    /// For people: the grantee's display name.
    pub subject: String,
    pub target: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Set once the expiry was noticed and audited (`access.expired`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
}

/// A stable key for "the same caller": the issuer and `sub` of an OIDC
/// token, or the id of an access key.
pub fn principal(identity: &Identity) -> String {
    match &identity.kind {
        crate::IdentityKind::Oidc { issuer } => format!("oidc:{issuer}#{}", identity.subject),
        crate::IdentityKind::AccessKey { key_id, .. } => format!("key-id:{key_id}"),
    }
}

/// One item of a [`ReviewFeed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReviewChange {
    /// A review was created or changed state. Sent once the change is
    /// committed, so reading the review back shows it.
    Changed {
        id: String,
        /// The state it changed to, when the store says.
        state: Option<ReviewState>,
    },
    /// The feed lost its connection: changes made from now on may be missed
    /// until the next [`ReviewChange::Resync`] (waiters should poll faster).
    Lost,
    /// The feed is connected again (or skipped items when its reader fell
    /// behind): changes made in the gap were not sent, so re-read every
    /// review of interest.
    Resync,
}

/// Review changes pushed by the store as they commit, so a waiter on one
/// node learns of a decision made on another without polling. Ends (`None`)
/// when the store is closed.
#[derive(Debug)]
pub struct ReviewFeed {
    rx: mpsc::Receiver<ReviewChange>,
}

impl ReviewFeed {
    /// A feed and the sender a store's listener task fills. The listener
    /// stops once the feed is dropped (see [`mpsc::Sender::closed`]).
    pub fn channel(capacity: usize) -> (mpsc::Sender<ReviewChange>, ReviewFeed) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (tx, ReviewFeed { rx })
    }

    /// The next change; `None` once the store stopped feeding.
    pub async fn next(&mut self) -> Option<ReviewChange> {
        self.rx.recv().await
    }
}

/// Where reviews live. Every state change is a conditional write (`WHERE
/// state = 'pending'`), so two nodes deciding at once cannot both win.
#[async_trait]
pub trait ReviewStore: Send + Sync {
    async fn insert_review(&self, review: &ReviewRecord) -> Result<(), StoreError>;

    async fn get_review(&self, id: &str) -> Result<Option<ReviewRecord>, StoreError>;

    /// Newest first, optionally only those in `state`.
    async fn list_reviews(
        &self,
        state: Option<ReviewState>,
        limit: u32,
    ) -> Result<Vec<ReviewRecord>, StoreError>;

    /// Records a vote on a pending review. `Ok(false)` when the review is
    /// not pending (or does not exist); an error when this reviewer already
    /// voted on it.
    async fn insert_vote(&self, vote: &ReviewVote) -> Result<bool, StoreError>;

    /// Removes a vote (one that lost a race with another decision).
    async fn delete_vote(&self, review_id: &str, reviewer: &str) -> Result<(), StoreError>;

    /// Votes in the order they were cast.
    async fn list_votes(&self, review_id: &str) -> Result<Vec<ReviewVote>, StoreError>;

    /// Moves a pending review to a final state; false when it was no longer
    /// pending (another decision came first) or does not exist.
    async fn finish_review(
        &self,
        id: &str,
        state: ReviewState,
        decided_at: OffsetDateTime,
        decided_by: Option<&str>,
        comment: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// True when an approved review with scope `session` covers this
    /// statement hash in this session.
    async fn session_approval(
        &self,
        session_id: &str,
        statement_hash: &str,
    ) -> Result<bool, StoreError>;

    /// Stores a grant; false when the review already has one.
    async fn insert_grant(&self, grant: &AccessGrant) -> Result<bool, StoreError>;

    /// A live (unexpired) grant of `principal` on `target`, if any.
    async fn live_grant(
        &self,
        principal: &str,
        target: &str,
        now: OffsetDateTime,
    ) -> Result<Option<AccessGrant>, StoreError>;

    /// Grants past their expiry that were not yet marked ended.
    async fn expired_grants(&self, now: OffsetDateTime) -> Result<Vec<AccessGrant>, StoreError>;

    /// Marks a grant ended; false when it already was (another node did it).
    async fn end_grant(&self, id: &str, at: OffsetDateTime) -> Result<bool, StoreError>;

    /// Grants newest first; only unexpired ones unless `include_ended`.
    async fn list_grants(
        &self,
        include_ended: bool,
        now: OffsetDateTime,
    ) -> Result<Vec<AccessGrant>, StoreError>;

    /// A live feed of review inserts and state changes made by any node,
    /// for stores that can push them (PostgreSQL: LISTEN/NOTIFY). `Ok(None)`
    /// when the store cannot (SQLite: one node, whose own changes the review
    /// service signals itself); waiters then rely on polling.
    async fn review_changes(&self) -> Result<Option<ReviewFeed>, StoreError> {
        Ok(None)
    }
}
