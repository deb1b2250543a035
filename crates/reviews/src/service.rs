//! [`ReviewService`]: the [`ReviewEngine`] the gateway holds statements
//! through, and the decisions the API and CLI make.
//!
//! State lives only in the store, so any node sharing it sees every review.
//! A waiter re-reads its review whenever the service's change signal fires:
//! on this node's own inserts and decisions, and on every change the
//! store's feed pushes (PostgreSQL LISTEN/NOTIFY, see
//! [`ReviewService::spawn_change_feed`]), so a decision made on another
//! node releases it as soon as it commits. Polling every `poll_interval`
//! stays as the fallback: the only way without a feed, a safety net with
//! one.

use crate::error::ReviewError;
use crate::rules::{self, RuleSettings};
use crate::webhook::{Links, Notifier, ReviewEventType, Webhook, WebhookOptions};
use async_trait::async_trait;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use warden_core::config::{Config, PolicyConfig};
use warden_core::engines::{SessionLog, StoreError};
use warden_core::events::AuditEvent;
use warden_core::review_store::{
    AccessGrant, ReviewChange, ReviewRecord, ReviewState, ReviewStore, ReviewVote, principal,
};
use warden_core::reviews::{ReviewEngine, ReviewKind, ReviewOutcome, ReviewRequest, ReviewTicket};
use warden_core::{Identity, Operation};

/// First and longest wait before subscribing to the store's feed again.
const FEED_RETRY_FIRST: Duration = Duration::from_secs(1);
const FEED_RETRY_MAX: Duration = Duration::from_secs(30);

/// Knobs of the service.
#[derive(Clone, Debug)]
pub struct ReviewOptions {
    /// How often a waiter re-reads its review while no change feed is live
    /// (SQLite, or the feed is reconnecting): how soon it sees a decision
    /// made by another process.
    pub poll_interval: Duration,
    /// How often a waiter re-reads its review while the store's change feed
    /// is live. Decisions arrive through the feed; this only bounds the
    /// delay should a notification be lost without the feed noticing.
    pub feed_poll_interval: Duration,
    /// `[server] public_url`, for links.
    pub public_url: Option<String>,
    /// The longest access an access request may ask for.
    pub max_access_duration: Duration,
    /// Timeout of a review whose rule is unknown.
    pub default_timeout: Duration,
    /// A pending review past its expiry is timed out by the sweeper after
    /// this grace (its waiter normally does it first).
    pub sweep_grace: Duration,
    pub webhook: WebhookOptions,
}

impl Default for ReviewOptions {
    fn default() -> Self {
        ReviewOptions {
            poll_interval: Duration::from_millis(250),
            feed_poll_interval: Duration::from_secs(1),
            public_url: None,
            max_access_duration: Duration::from_secs(24 * 3600),
            default_timeout: Duration::from_secs(600),
            sweep_grace: Duration::from_secs(30),
            webhook: WebhookOptions::default(),
        }
    }
}

/// A review with its votes, as the API shows it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ReviewDetail {
    pub review: ReviewRecord,
    pub votes: Vec<ReviewVote>,
}

/// What [`ReviewService::sweep`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub timed_out: usize,
    pub grants_expired: usize,
}

/// Reviews on top of a [`ReviewStore`]. Cheap to clone.
#[derive(Clone)]
pub struct ReviewService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ReviewStore>,
    log: Arc<dyn SessionLog>,
    policies: RwLock<Arc<Vec<PolicyConfig>>>,
    options: ReviewOptions,
    notifier: Notifier,
    /// A generation counter bumped on every review change this node makes
    /// or hears of from the store's feed: waiters (and live views) re-read
    /// when it moves.
    changes: watch::Sender<u64>,
    /// True while the store's change feed is connected.
    feed_live: AtomicBool,
}

impl ReviewService {
    pub fn new(
        store: Arc<dyn ReviewStore>,
        log: Arc<dyn SessionLog>,
        policies: Vec<PolicyConfig>,
        webhooks: Vec<Webhook>,
        options: ReviewOptions,
    ) -> ReviewService {
        let source = options
            .public_url
            .clone()
            .unwrap_or_else(|| "urn:warden".to_string());
        ReviewService {
            inner: Arc::new(Inner {
                store,
                log,
                policies: RwLock::new(Arc::new(policies)),
                notifier: Notifier::new(webhooks, options.webhook.clone(), source),
                options,
                changes: watch::Sender::new(0),
                feed_live: AtomicBool::new(false),
            }),
        }
    }

    /// The service for a loaded config: its policies, `public_url` and
    /// `[reviews]`; `webhooks` are `[[reviews.webhook]]` with secrets resolved.
    pub fn from_config(
        config: &Config,
        store: Arc<dyn ReviewStore>,
        log: Arc<dyn SessionLog>,
        webhooks: Vec<Webhook>,
    ) -> ReviewService {
        let defaults = ReviewOptions::default();
        let options = ReviewOptions {
            public_url: config.server.public_url.clone(),
            max_access_duration: config.reviews.max_access_duration,
            // Set: the operator's choice either way; unset: fast without a
            // feed, a slower safety net with one.
            poll_interval: config
                .reviews
                .poll_interval
                .unwrap_or(defaults.poll_interval),
            feed_poll_interval: config
                .reviews
                .poll_interval
                .unwrap_or(defaults.feed_poll_interval),
            ..defaults
        };
        ReviewService::new(store, log, config.policies.clone(), webhooks, options)
    }

    /// Puts reloaded policies in force for reviews created from now on.
    pub fn set_policies(&self, policies: Vec<PolicyConfig>) {
        let mut current = self
            .inner
            .policies
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = Arc::new(policies);
    }

    fn policies(&self) -> Arc<Vec<PolicyConfig>> {
        self.inner
            .policies
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn options(&self) -> &ReviewOptions {
        &self.inner.options
    }

    /// A generation counter that moves whenever a review is created,
    /// voted on or decided on this node, or (with a live store feed) on any
    /// node; also after the feed reconnects, when changes may have been
    /// missed. Use it to refresh a view: wait for `changed()`, then re-read.
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Moves the change signal.
    fn signal_change(&self) {
        self.inner
            .changes
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// Is the store's change feed connected right now?
    pub fn feed_live(&self) -> bool {
        self.inner.feed_live.load(Ordering::Relaxed)
    }

    fn set_feed_live(&self, live: bool) {
        self.inner.feed_live.store(live, Ordering::Relaxed);
    }

    /// How long a waiter sleeps between re-reads without a signal.
    fn poll_interval(&self) -> Duration {
        if self.feed_live() {
            self.inner.options.feed_poll_interval
        } else {
            self.inner.options.poll_interval
        }
    }

    /// Subscribes to the store's change feed (if it has one) and moves the
    /// change signal on every item until `stop`, so waiters on this node
    /// see decisions made on other nodes as they commit. Without a feed
    /// (SQLite) the task ends at once and waiters poll. A feed that fails
    /// is subscribed again, with backoff; meanwhile waiters poll at
    /// `poll_interval`.
    pub fn spawn_change_feed(&self, stop: CancellationToken) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut backoff = FEED_RETRY_FIRST;
            loop {
                let subscribed = tokio::select! {
                    _ = stop.cancelled() => return,
                    subscribed = this.inner.store.review_changes() => subscribed,
                };
                match subscribed {
                    Ok(None) => {
                        tracing::debug!(
                            every = ?this.inner.options.poll_interval,
                            "the store pushes no review changes; waiters poll"
                        );
                        return;
                    }
                    Ok(Some(mut feed)) => {
                        backoff = FEED_RETRY_FIRST;
                        this.set_feed_live(true);
                        // Changes committed before the subscription were
                        // not pushed: everyone re-reads once.
                        this.signal_change();
                        tracing::info!(
                            safety_poll = ?this.inner.options.feed_poll_interval,
                            "review changes are pushed by the store; held statements are released as soon as a decision commits on any node"
                        );
                        loop {
                            let item = tokio::select! {
                                _ = stop.cancelled() => {
                                    this.set_feed_live(false);
                                    return;
                                }
                                item = feed.next() => item,
                            };
                            match item {
                                Some(ReviewChange::Changed { .. }) => {}
                                Some(ReviewChange::Lost) => this.set_feed_live(false),
                                Some(ReviewChange::Resync) => this.set_feed_live(true),
                                None => break,
                            }
                            this.signal_change();
                        }
                        this.set_feed_live(false);
                        this.signal_change();
                        tracing::warn!("the review change feed ended; subscribing again");
                    }
                    Err(error) => {
                        tracing::warn!(
                            %error,
                            retry_in = ?backoff,
                            "cannot subscribe to review changes; waiters poll meanwhile"
                        );
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(FEED_RETRY_MAX);
            }
        })
    }

    /// Links for a review (empty without `public_url`).
    pub fn links(&self, id: &str) -> Links {
        Links::for_review(self.inner.options.public_url.as_deref(), id)
    }

    pub async fn get(&self, id: &str) -> Result<ReviewDetail, ReviewError> {
        let review = self
            .inner
            .store
            .get_review(id)
            .await?
            .ok_or_else(|| ReviewError::NotFound { id: id.to_string() })?;
        let votes = self.inner.store.list_votes(id).await?;
        Ok(ReviewDetail { review, votes })
    }

    /// The votes on a review, in the order they were cast.
    pub async fn votes(&self, id: &str) -> Result<Vec<ReviewVote>, ReviewError> {
        Ok(self.inner.store.list_votes(id).await?)
    }

    pub async fn list(
        &self,
        state: Option<ReviewState>,
        limit: u32,
    ) -> Result<Vec<ReviewRecord>, ReviewError> {
        Ok(self.inner.store.list_reviews(state, limit).await?)
    }

    /// Live access grants (with `include_ended`, all of them).
    pub async fn grants(&self, include_ended: bool) -> Result<Vec<AccessGrant>, ReviewError> {
        Ok(self
            .inner
            .store
            .list_grants(include_ended, OffsetDateTime::now_utc())
            .await?)
    }

    /// Could `identity` vote on this review (an approver, not the requester)?
    pub fn may_decide(review: &ReviewRecord, identity: &Identity) -> bool {
        !rules::same_person(&review.requester, identity) && rules::is_approver(review, identity)
    }

    /// Is `identity` an approver in any policy? (Approvers operate Warden:
    /// the API shows them every session.)
    pub fn is_any_approver(&self, identity: &Identity) -> bool {
        self.policies().iter().any(|policy| {
            policy
                .approvers
                .iter()
                .any(|pattern| warden_policy::rules::subject_matches(pattern, identity))
        })
    }

    /// May `identity` see this review: its requester or one of its approvers.
    pub fn may_see(review: &ReviewRecord, identity: &Identity) -> bool {
        rules::same_person(&review.requester, identity) || rules::is_approver(review, identity)
    }

    /// Asks for time-boxed access to `target` (`warden access request`).
    /// The approvers are those of the first policy that lets the requester
    /// ask (see [`rules::access_rule`]).
    pub async fn request_access(
        &self,
        requester: &Identity,
        target: &str,
        duration: Duration,
        reason: Option<String>,
    ) -> Result<ReviewTicket, ReviewError> {
        if target.is_empty() || target.len() > 256 {
            return Err(ReviewError::BadRequest(
                "target must be a target name of 1 to 256 characters".into(),
            ));
        }
        if duration < Duration::from_secs(60) {
            return Err(ReviewError::BadRequest(
                "duration must be at least 1m".into(),
            ));
        }
        let max = self.inner.options.max_access_duration;
        if duration > max {
            return Err(ReviewError::BadRequest(format!(
                "duration is longer than [reviews] max_access_duration ({}s); ask for less",
                max.as_secs()
            )));
        }
        if reason.as_ref().is_some_and(|r| r.len() > 4096) {
            return Err(ReviewError::BadRequest(
                "reason is longer than 4096 bytes".into(),
            ));
        }
        let rule = {
            let policies = self.policies();
            rules::access_rule(&policies, requester, target)
                .map(|policy| policy.name.clone())
                .ok_or_else(|| ReviewError::NoAccessRule {
                    target: target.to_string(),
                })?
        };
        let request = ReviewRequest {
            kind: ReviewKind::Access,
            session_id: None,
            target: target.to_string(),
            requester: requester.clone(),
            statement: None,
            statement_hash: None,
            operation: Operation::Connect,
            tables: Vec::new(),
            rule: Some(rule),
            reason,
            duration: Some(duration),
        };
        Ok(self.submit(request).await?)
    }

    /// Records `reviewer`'s vote. Returns the review's state afterwards:
    /// `Pending` while more approvals are needed, `Approved` once there are
    /// `min_approvals` distinct approvers, `Denied` after any deny.
    pub async fn decide(
        &self,
        id: &str,
        reviewer: &Identity,
        approve: bool,
        comment: Option<String>,
    ) -> Result<ReviewState, ReviewError> {
        if comment.as_ref().is_some_and(|c| c.len() > 4096) {
            return Err(ReviewError::BadRequest(
                "comment is longer than 4096 bytes".into(),
            ));
        }
        let store = &self.inner.store;
        let review = store
            .get_review(id)
            .await?
            .ok_or_else(|| ReviewError::NotFound { id: id.to_string() })?;
        let votes = store.list_votes(id).await?;
        rules::check_vote(&review, &votes, reviewer)?;
        let now = OffsetDateTime::now_utc();
        if now >= review.expires_at {
            // Its waiter is gone or about to give up: too late to release it.
            self.finish(&review, ReviewState::TimedOut, Some("-"), None)
                .await?;
            return Err(self.already_decided(id).await);
        }
        let vote = ReviewVote {
            review_id: id.to_string(),
            reviewer: principal(reviewer),
            reviewer_name: reviewer.display_name(),
            approve,
            comment: comment.clone(),
            at: now,
        };
        match store.insert_vote(&vote).await {
            Ok(true) => {}
            Ok(false) => return Err(self.already_decided(id).await),
            Err(error) => {
                // The primary key refuses a second vote by the same reviewer
                // (two requests racing); anything else is a store failure.
                if store
                    .list_votes(id)
                    .await?
                    .iter()
                    .any(|v| v.reviewer == vote.reviewer)
                {
                    return Err(ReviewError::AlreadyVoted { id: id.to_string() });
                }
                return Err(error.into());
            }
        }
        if !approve {
            let who = reviewer.display_name();
            if self
                .finish(&review, ReviewState::Denied, Some(&who), comment.as_deref())
                .await?
            {
                return Ok(ReviewState::Denied);
            }
            store.delete_vote(id, &vote.reviewer).await?;
            return Err(self.already_decided(id).await);
        }
        let votes = store.list_votes(id).await?;
        if !rules::is_approved(&review, &votes) {
            // Still pending, with one more vote (live views show it).
            self.signal_change();
            let approvals = rules::approvals(&review, &votes).len();
            self.audit(
                &review,
                "review.vote",
                &reviewer.display_name(),
                format!(
                    "approved review {id} ({approvals} of {} approvals){}",
                    review.min_approvals.max(1),
                    comment
                        .as_deref()
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default()
                ),
            )
            .await;
            return Ok(ReviewState::Pending);
        }
        let names: Vec<&str> = rules::approvals(&review, &votes)
            .iter()
            .map(|v| v.reviewer_name.as_str())
            .collect();
        let names = names.join(", ");
        if self
            .finish(
                &review,
                ReviewState::Approved,
                Some(&names),
                comment.as_deref(),
            )
            .await?
        {
            return Ok(ReviewState::Approved);
        }
        // Another approval completed it at the same moment: ours counted.
        match store.get_review(id).await? {
            Some(current) if current.state == ReviewState::Approved => Ok(ReviewState::Approved),
            _ => {
                store.delete_vote(id, &vote.reviewer).await?;
                Err(self.already_decided(id).await)
            }
        }
    }

    async fn already_decided(&self, id: &str) -> ReviewError {
        match self.inner.store.get_review(id).await {
            Ok(Some(review)) => ReviewError::AlreadyDecided {
                id: id.to_string(),
                state: review.state,
            },
            Ok(None) => ReviewError::NotFound { id: id.to_string() },
            Err(error) => error.into(),
        }
    }

    /// Moves a review to a final state; on success audits it, creates the
    /// grant of an approved access request, moves the change signal (this
    /// node's waiters re-read) and tells the webhooks. False when another
    /// decision came first.
    async fn finish(
        &self,
        review: &ReviewRecord,
        state: ReviewState,
        decided_by: Option<&str>,
        comment: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = OffsetDateTime::now_utc();
        if !self
            .inner
            .store
            .finish_review(&review.id, state, now, decided_by, comment)
            .await?
        {
            return Ok(false);
        }
        self.signal_change();
        let mut decided = review.clone();
        decided.state = state;
        decided.decided_at = Some(now);
        decided.decided_by = decided_by.map(str::to_string);
        decided.decision_comment = comment.map(str::to_string);
        let actor = decided_by.unwrap_or("-");
        let comment_text = comment.map(|c| format!(": {c}")).unwrap_or_default();
        let (kind, detail) = match state {
            ReviewState::Approved => (
                "review.approved",
                format!("review {} approved by {actor}{comment_text}", review.id),
            ),
            ReviewState::Denied => (
                "review.denied",
                format!("review {} denied by {actor}{comment_text}", review.id),
            ),
            ReviewState::TimedOut => (
                "review.timed_out",
                format!("review {} timed out without a decision", review.id),
            ),
            ReviewState::Cancelled => (
                "review.cancelled",
                format!("review {} cancelled{comment_text}", review.id),
            ),
            ReviewState::Pending => ("review.pending", String::new()),
        };
        self.audit(&decided, kind, actor, detail).await;
        if state == ReviewState::Approved && review.kind == ReviewKind::Access {
            self.grant(&decided, now).await?;
        }
        self.inner
            .notifier
            .send(ReviewEventType::Decided, &decided, &self.links(&review.id));
        Ok(true)
    }

    async fn grant(&self, review: &ReviewRecord, now: OffsetDateTime) -> Result<(), StoreError> {
        let secs = review.duration_secs.unwrap_or(3600);
        let expires_at = time::Duration::try_from(Duration::from_secs(secs))
            .ok()
            .and_then(|d| now.checked_add(d))
            .unwrap_or(now);
        let grant = AccessGrant {
            id: review.id.clone(),
            principal: review.requester_principal.clone(),
            subject: review.requester.display_name(),
            target: review.target.clone(),
            created_at: now,
            expires_at,
            ended_at: None,
        };
        if self.inner.store.insert_grant(&grant).await? {
            let until = expires_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            self.audit(
                review,
                "access.granted",
                &grant.subject,
                format!(
                    "access to {} granted until {until} (review {})",
                    grant.target, review.id
                ),
            )
            .await;
        }
        Ok(())
    }

    /// Writes an audit event; a failure is logged, never returned (the
    /// decision it records has already been made).
    async fn audit(&self, review: &ReviewRecord, kind: &str, actor: &str, detail: String) {
        let mut event = AuditEvent::new(kind, actor, detail);
        event.target = Some(review.target.clone());
        event.session_id = review.session_id.clone();
        if let Err(error) = self.inner.log.audit(&event).await {
            tracing::error!(%error, kind, review = %review.id, "cannot write the audit event");
        }
    }

    /// What a decided review means for its waiter.
    async fn outcome(&self, review: &ReviewRecord) -> ReviewOutcome {
        match review.state {
            ReviewState::Approved => {
                let approvers = match self.inner.store.list_votes(&review.id).await {
                    Ok(votes) => rules::approvals(review, &votes)
                        .iter()
                        .map(|v| v.reviewer_name.clone())
                        .collect(),
                    Err(_) => review
                        .decided_by
                        .iter()
                        .flat_map(|d| d.split(", ").map(str::to_string))
                        .collect(),
                };
                ReviewOutcome::Approved {
                    approvers,
                    comment: review.decision_comment.clone(),
                }
            }
            ReviewState::Denied => ReviewOutcome::Denied {
                reviewer: review.decided_by.clone().unwrap_or_else(|| "-".into()),
                comment: review.decision_comment.clone(),
            },
            ReviewState::TimedOut => ReviewOutcome::TimedOut,
            ReviewState::Cancelled => ReviewOutcome::Cancelled {
                reason: review
                    .decision_comment
                    .clone()
                    .unwrap_or_else(|| "cancelled".into()),
            },
            // Not reached: callers pass decided reviews only.
            ReviewState::Pending => ReviewOutcome::TimedOut,
        }
    }

    /// Times out pending reviews whose waiter is gone (past their expiry
    /// plus a grace) and ends expired access grants, auditing each once
    /// across all nodes.
    pub async fn sweep(&self) -> Result<SweepReport, StoreError> {
        let now = OffsetDateTime::now_utc();
        let grace = time::Duration::try_from(self.inner.options.sweep_grace)
            .unwrap_or(time::Duration::ZERO);
        let mut report = SweepReport::default();
        for review in self
            .inner
            .store
            .list_reviews(Some(ReviewState::Pending), 1000)
            .await?
        {
            if review.expires_at + grace <= now
                && self
                    .finish(&review, ReviewState::TimedOut, Some("-"), None)
                    .await?
            {
                report.timed_out += 1;
            }
        }
        for grant in self.inner.store.expired_grants(now).await? {
            if self.inner.store.end_grant(&grant.id, now).await? {
                report.grants_expired += 1;
                let mut event = AuditEvent::new(
                    "access.expired",
                    &grant.subject,
                    format!("access to {} expired (review {})", grant.target, grant.id),
                );
                event.target = Some(grant.target.clone());
                if let Err(error) = self.inner.log.audit(&event).await {
                    tracing::error!(%error, "cannot write the audit event");
                }
            }
        }
        Ok(report)
    }

    /// Runs [`ReviewService::sweep`] every `every` until `stop`.
    pub fn spawn_sweeper(
        &self,
        every: Duration,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                if let Err(error) = this.sweep().await {
                    tracing::warn!(%error, "review sweep failed; retrying later");
                }
            }
        })
    }

    /// Like [`ReviewEngine::submit`], also returning the stored record.
    pub async fn submit_record(&self, request: ReviewRequest) -> Result<ReviewRecord, StoreError> {
        let settings = {
            let policies = self.policies();
            rules::settings_for(&policies, request.rule.as_deref())
        };
        let settings = settings.unwrap_or_else(|| {
            tracing::warn!(rule = ?request.rule, "review for an unknown rule: nobody can approve it, it will time out");
            RuleSettings::nobody(self.inner.options.default_timeout)
        });
        if settings.approvers.is_empty() {
            tracing::warn!(rule = ?request.rule, "the rule asking for this review lists no approvers; it will time out");
        }
        let now = OffsetDateTime::now_utc();
        let expires_at = time::Duration::try_from(settings.timeout)
            .ok()
            .and_then(|d| now.checked_add(d))
            .unwrap_or(now);
        let record = ReviewRecord {
            id: uuid::Uuid::now_v7().to_string(),
            kind: request.kind,
            state: ReviewState::Pending,
            session_id: request.session_id,
            target: request.target,
            requester_principal: principal(&request.requester),
            requester: request.requester,
            statement: request.statement,
            statement_hash: request.statement_hash,
            operation: request.operation,
            tables: request.tables,
            rule: request.rule,
            reason: request.reason,
            duration_secs: request.duration.map(|d| d.as_secs()),
            approvers: settings.approvers,
            min_approvals: settings.min_approvals,
            approval_scope: settings.scope,
            created_at: now,
            expires_at,
            decided_at: None,
            decided_by: None,
            decision_comment: None,
        };
        self.inner.store.insert_review(&record).await?;
        self.signal_change();
        let what = match record.kind {
            ReviewKind::Statement => format!(
                "{} on {}: {}",
                record.operation,
                record.target,
                record
                    .statement
                    .as_deref()
                    .map(|s| s.chars().take(200).collect::<String>())
                    .unwrap_or_default()
            ),
            ReviewKind::Access => format!(
                "access to {} for {}s{}",
                record.target,
                record.duration_secs.unwrap_or(0),
                record
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        };
        self.audit(
            &record,
            "review.requested",
            &record.requester.display_name(),
            format!("review {} requested for {what}", record.id),
        )
        .await;
        self.inner
            .notifier
            .send(ReviewEventType::Requested, &record, &self.links(&record.id));
        Ok(record)
    }

    /// [`ReviewEngine::wait`]: re-reads the review whenever the change
    /// signal moves, and every poll interval besides.
    async fn wait_decided(&self, id: &str, timeout: Duration) -> ReviewOutcome {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.inner.changes.subscribe();
        loop {
            // Seen before reading: a change from here on wakes the next nap.
            changes.borrow_and_update();
            match self.inner.store.get_review(id).await {
                Ok(Some(review)) if review.state.is_final() => {
                    return self.outcome(&review).await;
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    return ReviewOutcome::Cancelled {
                        reason: format!("review {id} does not exist"),
                    };
                }
                Err(error) => {
                    tracing::warn!(%error, review = id, "cannot read the review; retrying");
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return self.time_out(id).await;
            }
            let nap = self.poll_interval().min(deadline - now);
            tokio::select! {
                // The sender lives as long as `self`: this never errs.
                _ = changes.changed() => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    async fn time_out(&self, id: &str) -> ReviewOutcome {
        let review = match self.inner.store.get_review(id).await {
            Ok(Some(review)) => review,
            _ => return ReviewOutcome::TimedOut,
        };
        if review.state.is_final() {
            return self.outcome(&review).await;
        }
        match self
            .finish(&review, ReviewState::TimedOut, Some("-"), None)
            .await
        {
            Ok(true) | Err(_) => ReviewOutcome::TimedOut,
            // Decided at the last moment: that decision stands.
            Ok(false) => match self.inner.store.get_review(id).await {
                Ok(Some(review)) if review.state.is_final() => self.outcome(&review).await,
                _ => ReviewOutcome::TimedOut,
            },
        }
    }
}

#[async_trait]
impl ReviewEngine for ReviewService {
    async fn submit(&self, request: ReviewRequest) -> Result<ReviewTicket, StoreError> {
        let record = self.submit_record(request).await?;
        Ok(ReviewTicket {
            url: self.links(&record.id).review,
            id: record.id,
        })
    }

    async fn wait(&self, id: &str, timeout: Duration) -> ReviewOutcome {
        self.wait_decided(id, timeout).await
    }

    async fn cancel(&self, id: &str, reason: &str) {
        let review = match self.inner.store.get_review(id).await {
            Ok(Some(review)) if !review.state.is_final() => review,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, review = id, "cannot cancel the review");
                return;
            }
        };
        if let Err(error) = self
            .finish(&review, ReviewState::Cancelled, Some("-"), Some(reason))
            .await
        {
            tracing::warn!(%error, review = id, "cannot cancel the review");
        }
    }

    async fn session_approved(&self, session_id: &str, statement_hash: &str) -> bool {
        match self
            .inner
            .store
            .session_approval(session_id, statement_hash)
            .await
        {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "cannot look up session approvals; asking again");
                false
            }
        }
    }

    async fn has_access_grant(&self, identity: &Identity, target: &str) -> bool {
        match self
            .inner
            .store
            .live_grant(&principal(identity), target, OffsetDateTime::now_utc())
            .await
        {
            Ok(grant) => grant.is_some(),
            Err(error) => {
                tracing::warn!(%error, "cannot look up access grants; treating as none");
                false
            }
        }
    }
}
