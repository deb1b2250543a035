//! The one review hold every protocol uses: a statement policy reviews is
//! submitted, the client waits, and a reviewer's decision (or the timeout,
//! or the client going away) becomes a [`Verdict`]. Only
//! [`Verdict::Approved`] carries a [`StatementGrant`]. The hold writes the
//! review's events to the session's recording; the protocol only renders
//! the verdict as its own wire reply.

use crate::events::EventKind;
use crate::grant::StatementGrant;
use crate::reviews::{ReviewOutcome, ReviewRequest, ReviewTicket};
use crate::{Decision, Gateway, Identity};
use std::future::Future;
use std::time::Duration;

/// One statement to hold.
pub struct HoldRequest<'a> {
    pub session_id: &'a str,
    pub target: &'a str,
    pub identity: &'a Identity,
    pub recording: &'a dyn crate::engines::SessionRecording,
    /// The exact statement text the reviewer sees.
    pub text: &'a str,
    /// [`crate::reviews::statement_hash`] of the text and its parameters:
    /// the approval is bound to it.
    pub hash: String,
    /// The reviewing decision (its rule sets the timeout and approvers).
    pub decision: &'a Decision,
}

/// Why the client stopped waiting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interruption {
    /// The client asked to cancel the statement (Postgres CancelRequest).
    Cancelled(String),
    /// The client's connection closed.
    Disconnected,
}

/// How a hold ended.
#[derive(Debug)]
pub enum Verdict {
    /// Forward the statement once with this grant.
    Approved(StatementGrant),
    Denied {
        review_id: String,
        reviewer: String,
        comment: Option<String>,
    },
    /// Nobody decided within the rule's `review_timeout`.
    TimedOut { review_id: String, waited: Duration },
    /// The review was cancelled (by the client, an operator, or the
    /// client's disconnect — then `client_gone`).
    Withdrawn {
        review_id: String,
        reason: String,
        client_gone: bool,
    },
    /// No review could be opened (the store is down, or this node has no
    /// review service): the statement does not run.
    Unavailable,
}

/// Told to the client once the review is open (Postgres sends a notice).
pub struct Submitted<'a> {
    pub ticket: &'a ReviewTicket,
    pub timeout: Duration,
    pub decision: &'a Decision,
}

/// Holds `request` until its review is decided or `interruption` resolves.
pub async fn hold(
    gateway: &Gateway,
    request: HoldRequest<'_>,
    submitted: impl FnOnce(&Submitted<'_>),
    interruption: impl Future<Output = Interruption>,
) -> Verdict {
    let reviews = &gateway.reviews;
    if reviews
        .session_approved(request.session_id, &request.hash)
        .await
    {
        // Approved once for the whole session (approval_scope = "session").
        return Verdict::Approved(StatementGrant::approved(request.decision, None));
    }
    let timeout = crate::reviews::review_timeout(&gateway.config, request.decision);
    let ticket = match reviews
        .submit(ReviewRequest::statement(
            request.session_id,
            request.target,
            request.identity,
            request.text,
            request.hash,
            request.decision,
        ))
        .await
    {
        Ok(ticket) => ticket,
        Err(error) => {
            tracing::error!(%error, session = %request.session_id, "cannot open a review");
            return Verdict::Unavailable;
        }
    };
    let record = |action: &str, actor: &str, comment: Option<&str>| {
        request.recording.record(EventKind::Review {
            review_id: ticket.id.clone(),
            action: action.to_string(),
            actor: actor.to_string(),
            comment: comment.map(str::to_string),
        });
    };
    record("requested", &request.identity.display_name(), None);
    tracing::info!(session = %request.session_id, review = %ticket.id, "statement held for review");
    submitted(&Submitted {
        ticket: &ticket,
        timeout,
        decision: request.decision,
    });
    let outcome = tokio::select! {
        outcome = reviews.wait(&ticket.id, timeout) => outcome,
        why = interruption => {
            let (reason, client_gone) = match why {
                Interruption::Cancelled(reason) => (reason, false),
                Interruption::Disconnected => ("the client disconnected".to_string(), true),
            };
            reviews.cancel(&ticket.id, &reason).await;
            record("cancelled", "-", Some(&reason));
            return Verdict::Withdrawn { review_id: ticket.id.clone(), reason, client_gone };
        }
    };
    match outcome {
        ReviewOutcome::Approved { approvers, comment } => {
            record("approved", &approvers.join(","), comment.as_deref());
            Verdict::Approved(StatementGrant::approved(
                request.decision,
                Some(ticket.id.clone()),
            ))
        }
        ReviewOutcome::Denied { reviewer, comment } => {
            record("denied", &reviewer, comment.as_deref());
            Verdict::Denied {
                review_id: ticket.id.clone(),
                reviewer,
                comment,
            }
        }
        ReviewOutcome::TimedOut => {
            record("timed_out", "-", None);
            Verdict::TimedOut {
                review_id: ticket.id.clone(),
                waited: timeout,
            }
        }
        ReviewOutcome::Cancelled { reason } => {
            record("cancelled", "-", Some(&reason));
            Verdict::Withdrawn {
                review_id: ticket.id.clone(),
                reason,
                client_gone: false,
            }
        }
    }
}

/// `90 s`, `10 min`: how long a hold may last, for client messages.
pub fn short_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}
