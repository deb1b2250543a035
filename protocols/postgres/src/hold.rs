//! Holding a statement for human review. The client direction stops before
//! the statement's frame, opens a review, tells the client (a NoticeResponse
//! with the review id and URL, written by the upstream direction between
//! messages) and waits — while still watching the client, so a disconnect or
//! a cancel request withdraws the review. Then the frame is scanned again:
//! an approval lets exactly that statement (same text, same parameters,
//! same session) through once; anything else turns it into an error.

use crate::client_stream::ReadHalfAny;
use crate::errors::{PgError, notice, sqlstate};
use bytes::BytesMut;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use warden_core::Decision;
use warden_core::events::EventKind;
use warden_core::reviews::{ReviewOutcome, ReviewRequest};

/// The most a client may send while one of its statements is held.
const HOLD_BUFFER_LIMIT: usize = 1 << 20;

/// A statement that needs a review before it may run.
pub struct HoldRequest {
    pub text: Arc<str>,
    /// [`warden_core::reviews::statement_hash`] of the text and parameters.
    pub hash: String,
    pub decision: Decision,
}

/// What the review decided for the held frame.
pub enum Release {
    /// Let the statement with this hash through once.
    Approved(String),
    /// Answer it with this error instead.
    Refused(PgError),
}

/// Why the hold ended the session.
pub enum HoldStop {
    ClientClosed,
}

/// Opens the review and waits for its outcome.
#[allow(clippy::too_many_arguments)]
pub async fn hold(
    context: &crate::relay::RelayContext,
    notices: &(dyn Fn(BytesMut) + Sync),
    client: &mut ReadHalfAny,
    buf: &mut BytesMut,
    from_client: &AtomicU64,
    request: HoldRequest,
) -> Result<Release, HoldStop> {
    let gateway = &context.gateway;
    if gateway
        .reviews
        .session_approved(&context.session_id, &request.hash)
        .await
    {
        return Ok(Release::Approved(request.hash));
    }
    let timeout = warden_core::reviews::review_timeout(&gateway.config, &request.decision);
    let ticket = match gateway
        .reviews
        .submit(ReviewRequest::statement(
            &context.session_id,
            &context.target,
            &context.identity,
            &request.text,
            request.hash.clone(),
            &request.decision,
        ))
        .await
    {
        Ok(ticket) => ticket,
        Err(error) => {
            tracing::error!(%error, "cannot open a review");
            return Ok(Release::Refused(
                PgError::error(
                    sqlstate::INSUFFICIENT_PRIVILEGE,
                    "this statement needs a human review, and Warden cannot open one right now",
                )
                .with_hint("Try again later, or ask an administrator."),
            ));
        }
    };
    record(
        context,
        &ticket.id,
        "requested",
        &context.identity.display_name(),
        None,
    );
    let url = ticket
        .url
        .as_deref()
        .map(|url| format!(" at {url}"))
        .unwrap_or_default();
    notices(notice(
        &format!(
            "statement held for review {}: a reviewer must approve it{url}; waiting up to {}",
            ticket.id,
            humantime_short(timeout)
        ),
        Some(&format!(
            "policy rule: {}; operation: {}",
            request.decision.rule_name(),
            request.decision.operation
        )),
    ));
    let wait = gateway.reviews.wait(&ticket.id, timeout);
    tokio::pin!(wait);
    let outcome = loop {
        tokio::select! {
            outcome = &mut wait => break outcome,
            _ = context.cancel_hold.notified() => {
                let reason = "cancelled by the client";
                gateway.reviews.cancel(&ticket.id, reason).await;
                break ReviewOutcome::Cancelled { reason: reason.into() };
            }
            read = client.read_buf(buf), if buf.len() < HOLD_BUFFER_LIMIT => match read {
                Ok(0) | Err(_) => {
                    gateway.reviews.cancel(&ticket.id, "the client disconnected").await;
                    record(context, &ticket.id, "cancelled", "-", Some("the client disconnected"));
                    return Err(HoldStop::ClientClosed);
                }
                Ok(n) => {
                    from_client.fetch_add(n as u64, Ordering::Relaxed);
                }
            },
        }
    };
    Ok(match outcome {
        ReviewOutcome::Approved { approvers, comment } => {
            record(
                context,
                &ticket.id,
                "approved",
                &approvers.join(","),
                comment.as_deref(),
            );
            Release::Approved(request.hash)
        }
        ReviewOutcome::Denied { reviewer, comment } => {
            record(context, &ticket.id, "denied", &reviewer, comment.as_deref());
            let mut error = PgError::error(
                sqlstate::INSUFFICIENT_PRIVILEGE,
                format!(
                    "review {} denied this statement{}",
                    ticket.id,
                    comment
                        .as_deref()
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default()
                ),
            );
            error = error.with_detail(format!("reviewer: {reviewer}"));
            Release::Refused(error)
        }
        ReviewOutcome::TimedOut => {
            record(context, &ticket.id, "timed_out", "-", None);
            Release::Refused(PgError::error(
                sqlstate::QUERY_CANCELED,
                format!(
                    "review {} was not decided within {}; the statement did not run",
                    ticket.id,
                    humantime_short(timeout)
                ),
            ))
        }
        ReviewOutcome::Cancelled { reason } => {
            record(context, &ticket.id, "cancelled", "-", Some(&reason));
            Release::Refused(PgError::error(
                sqlstate::QUERY_CANCELED,
                format!("canceling statement held for review: {reason}"),
            ))
        }
    })
}

fn record(
    context: &crate::relay::RelayContext,
    review_id: &str,
    action: &str,
    actor: &str,
    comment: Option<&str>,
) {
    context.recording.record(EventKind::Review {
        review_id: review_id.to_string(),
        action: action.to_string(),
        actor: actor.to_string(),
        comment: comment.map(str::to_string),
    });
}

fn humantime_short(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// A Bind message's portal, statement and parameters (`None` for NULL).
pub type BindParts = (String, String, Vec<Option<Vec<u8>>>);

/// The parts of a Bind message, for the approval hash.
pub fn bind_parameters(body: &[u8]) -> Option<BindParts> {
    let mut pos = 0;
    let portal = crate::frame::read_cstr(body, &mut pos)?;
    let statement = crate::frame::read_cstr(body, &mut pos)?;
    let read_i16 = |pos: &mut usize| -> Option<i16> {
        let bytes = body.get(*pos..*pos + 2)?;
        *pos += 2;
        Some(i16::from_be_bytes([bytes[0], bytes[1]]))
    };
    let formats = usize::try_from(read_i16(&mut pos)?).ok()?;
    pos += formats * 2;
    let count = usize::try_from(read_i16(&mut pos)?).ok()?;
    let mut parameters = Vec::with_capacity(count);
    for _ in 0..count {
        let len = crate::frame::read_i32(body, &mut pos)?;
        match usize::try_from(len) {
            Ok(len) => {
                parameters.push(Some(body.get(pos..pos + len)?.to_vec()));
                pos += len;
            }
            Err(_) => parameters.push(None),
        }
    }
    Some((
        String::from_utf8_lossy(portal).into_owned(),
        String::from_utf8_lossy(statement).into_owned(),
        parameters,
    ))
}
