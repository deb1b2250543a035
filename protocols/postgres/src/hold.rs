//! Holding a statement for human review. The client direction stops before
//! the statement's frame, opens a review, tells the client (a NoticeResponse
//! with the review id and URL, written by the upstream direction between
//! messages) and waits — while still watching the client, so a disconnect or
//! a cancel request withdraws the review. Then the frame is scanned again:
//! an approval lets exactly that statement (same text, same parameters,
//! same session) through once; anything else turns it into an error.

use crate::client_error::PgClientError;
use crate::client_stream::ReadHalfAny;
use crate::errors::notice;
use bytes::BytesMut;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::AsyncReadExt;
use warden_core::Decision;
use warden_core::grant::StatementGrant;
use warden_core::hold::{Interruption, Submitted, Verdict, short_duration};

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
    /// Let the statement with this hash through once, with this grant.
    Approved(StatementGrant, String),
    /// Answer it with this error instead.
    Refused(PgClientError),
}

/// Why the hold ended the session.
pub enum HoldStop {
    ClientClosed,
}

/// Opens the review (core's one hold) and waits for its verdict, reading
/// the client meanwhile: a disconnect or a cancel request withdraws it.
pub async fn hold(
    context: &crate::relay::RelayContext,
    notices: &(dyn Fn(BytesMut) + Sync),
    client: &mut ReadHalfAny,
    buf: &mut BytesMut,
    from_client: &AtomicU64,
    request: HoldRequest,
) -> Result<Release, HoldStop> {
    let held = warden_core::hold::HoldRequest {
        session_id: &context.session_id,
        target: &context.target,
        identity: &context.identity,
        recording: context.recording.as_ref(),
        text: &request.text,
        hash: request.hash.clone(),
        decision: &request.decision,
    };
    let submitted = |submitted: &Submitted<'_>| {
        let url = submitted
            .ticket
            .url
            .as_deref()
            .map(|url| format!(" at {url}"))
            .unwrap_or_default();
        notices(notice(
            &format!(
                "statement held for review {}: a reviewer must approve it{url}; waiting up to {}",
                submitted.ticket.id,
                short_duration(submitted.timeout)
            ),
            Some(&format!(
                "policy rule: {}; operation: {}",
                submitted.decision.rule_name(),
                submitted.decision.operation()
            )),
        ));
    };
    let interruption = async {
        loop {
            tokio::select! {
                _ = context.cancel_hold.notified() => {
                    return Interruption::Cancelled("cancelled by the client".into());
                }
                read = client.read_buf(buf), if buf.len() < HOLD_BUFFER_LIMIT => match read {
                    Ok(0) | Err(_) => return Interruption::Disconnected,
                    Ok(n) => {
                        from_client.fetch_add(n as u64, Ordering::Relaxed);
                    }
                },
            }
        }
    };
    let verdict = warden_core::hold::hold(&context.gateway, held, submitted, interruption).await;
    release(verdict, request.hash)
}

/// The Postgres reply to a verdict: the hash to let through once, or the error.
fn release(verdict: Verdict, hash: String) -> Result<Release, HoldStop> {
    Ok(match verdict {
        Verdict::Approved(grant) => Release::Approved(grant, hash),
        Verdict::Denied {
            review_id,
            reviewer,
            comment,
        } => Release::Refused(PgClientError::ReviewDenied {
            review_id,
            reviewer,
            comment,
        }),
        Verdict::TimedOut { review_id, waited } => {
            Release::Refused(PgClientError::ReviewTimedOut { review_id, waited })
        }
        Verdict::Withdrawn {
            client_gone: true, ..
        } => return Err(HoldStop::ClientClosed),
        Verdict::Withdrawn { reason, .. } => {
            Release::Refused(PgClientError::ReviewWithdrawn(reason))
        }
        Verdict::Unavailable => Release::Refused(PgClientError::ReviewUnavailable),
    })
}
