//! The upstream direction's inspector: masking first, then statement
//! bookkeeping, with result capture for the recording and the lexing check
//! on ParameterStatus.

use super::RelayContext;
use super::lexing::lexing_refusal;
use super::mask_rows::{MaskState, Observed, Withholding, mask_upstream_frame};
use super::pending::{Pending, Shared, track_upstream_frame};
use super::scan::{HeaderError, Inspector, Verdict};
use crate::capture::Capture;
use crate::catalog;
use crate::frame::{self, FrameError, backend};
use crate::masking as wire_masking;
use bytes::BytesMut;
use std::sync::Arc;

/// An upstream frame the relay cannot pass on ends the session.
#[derive(Debug, thiserror::Error)]
pub(super) enum UpstreamFrameError {
    #[error("upstream sent an {0}")]
    Header(FrameError),
    #[error("upstream sent a message of {len} bytes, over the limit of {max} bytes")]
    TooLong { len: usize, max: usize },
    /// Some statement Warden allowed (a function, a procedure) changed how
    /// the server lexes: later statements would be judged under the wrong rules.
    #[error("the session entered a state Warden cannot judge statements in: {0}")]
    UnsupportedLexing(String),
}

impl From<HeaderError> for UpstreamFrameError {
    fn from(error: HeaderError) -> Self {
        match error {
            HeaderError::Invalid(error) => UpstreamFrameError::Header(error),
            HeaderError::TooLong { len, max } => UpstreamFrameError::TooLong { len, max },
        }
    }
}

pub(super) struct UpstreamInspector<'r> {
    context: &'r RelayContext,
    shared: &'r Shared,
    mask: MaskState,
    /// Result rows for the recording (`capture_results`).
    capture: Option<Capture>,
    /// Which tags this session inspects, fixed at its start: one lookup
    /// per frame on the hot path (every DataRow of a large result).
    wanted: [bool; 256],
}

impl<'r> UpstreamInspector<'r> {
    pub fn new(context: &'r RelayContext, shared: &'r Shared) -> Self {
        let capture = context.capture_results.then(Capture::default);
        let masking = context.masker.is_some();
        let wanted = std::array::from_fn(|tag| {
            let tag = tag as u8;
            (capture.is_some() && matches!(tag, backend::ROW_DESCRIPTION | backend::DATA_ROW))
                || inspected(tag, masking)
        });
        UpstreamInspector {
            context,
            shared,
            mask: MaskState::default(),
            capture,
            wanted,
        }
    }

    /// Looks up the column names the frame the scan stopped before waits for.
    pub async fn load_catalog(&mut self, need: catalog::Need) {
        self.mask.load_catalog(self.context, need).await;
    }

    /// Masking first, then statement bookkeeping.
    fn observe(&mut self, tag: u8, body: &[u8]) -> Observed {
        let (context, shared) = (self.context, self.shared);
        let Some(masker) = context.masker.as_deref() else {
            return match track_upstream_frame(context, shared, tag, body) {
                Some(replacement) => Verdict::Replace(replacement),
                None => Verdict::Forward,
            };
        };
        let state = &mut self.mask;
        if let Some(observed) = mask_upstream_frame(context, shared, masker, state, tag, body) {
            return observed;
        }
        if tag == backend::ERROR_RESPONSE
            && matches!(shared.pending().front(), Some(Pending::WardenDescribe))
        {
            // The Bind before our Describe failed: the error belongs to the Execute.
            shared.pending().pop_front();
        }
        let swallow = match tag {
            backend::COMMAND_COMPLETE | backend::PORTAL_SUSPENDED | backend::EMPTY_QUERY => {
                state.flush_counts(context);
                let swallow = state.withholding != Withholding::Nothing;
                if state.withholding == Withholding::CopyOut {
                    state.withholding = Withholding::Nothing;
                }
                swallow
            }
            backend::ERROR_RESPONSE => {
                state.flush_counts(context);
                if state.withholding == Withholding::CopyOut {
                    state.withholding = Withholding::Nothing;
                }
                state.withholds_response()
            }
            backend::READY_FOR_QUERY => {
                state.flush_counts(context);
                state.withholding = Withholding::Nothing;
                false
            }
            _ => false,
        };
        // The statement an error answers, read before bookkeeping pops it.
        let statement = (tag == backend::ERROR_RESPONSE)
            .then(|| match shared.pending().front() {
                Some(Pending::Simple { text, .. } | Pending::Execute { text, .. }) => {
                    Some(Arc::clone(text))
                }
                _ => None,
            })
            .flatten();
        let replacement = track_upstream_frame(context, shared, tag, body);
        if swallow {
            return Verdict::Replace(BytesMut::new());
        }
        if let Some(replacement) = replacement {
            return Verdict::Replace(replacement);
        }
        if tag == backend::ERROR_RESPONSE
            && let Some(masked) =
                wire_masking::mask_error_fields(masker, tag, body, statement.as_deref())
        {
            return Verdict::Replace(masked);
        }
        Verdict::Forward
    }
}

impl Inspector for UpstreamInspector<'_> {
    type Stop = catalog::Need;
    type Error = UpstreamFrameError;

    fn wants(&self, tag: u8) -> bool {
        self.wanted[usize::from(tag)]
    }

    fn inspect(&mut self, tag: u8, body: &[u8]) -> Result<Observed, UpstreamFrameError> {
        let context = self.context;
        if tag == backend::PARAMETER_STATUS
            && let Some(refusal) = lexing_refusal(body)
        {
            tracing::warn!(target = %context.target, %refusal, "upstream entered an unsupported lexing state; ending the session");
            return Err(UpstreamFrameError::UnsupportedLexing(refusal));
        }
        let result_frame = matches!(tag, backend::ROW_DESCRIPTION | backend::DATA_ROW);
        if let Some(capture) = self.capture.as_mut()
            && !result_frame
        {
            // A result ends: its rows are recorded before the statement's outcome.
            capture.observe(context.recording.as_ref(), tag, body, true);
        }
        let observed = self.observe(tag, body);
        if let Some(capture) = self.capture.as_mut().filter(|_| result_frame) {
            match &observed {
                Verdict::Forward => capture.observe(context.recording.as_ref(), tag, body, true),
                Verdict::Replace(frame) => {
                    let sent = frame.first() == Some(&tag);
                    let sent_body = frame.get(frame::HEADER_LEN..).unwrap_or_default();
                    // Column names come from the upstream's description even
                    // when Warden keeps it from the client (its own Describe).
                    let seen = if tag == backend::ROW_DESCRIPTION || context.capture_raw {
                        body
                    } else {
                        sent_body
                    };
                    capture.observe(context.recording.as_ref(), tag, seen, sent);
                }
                Verdict::StopBefore(_) | Verdict::StopAfter(_) => {}
            }
        }
        Ok(observed)
    }
}

/// The upstream frames Warden looks inside: those that end a statement or
/// change how the server lexes, and with masking whatever may carry a value.
fn inspected(tag: u8, masking: bool) -> bool {
    matches!(
        tag,
        backend::COMMAND_COMPLETE
            | backend::PARAMETER_STATUS
            | backend::ERROR_RESPONSE
            | backend::READY_FOR_QUERY
            | backend::EMPTY_QUERY
            | backend::PORTAL_SUSPENDED
    ) || (masking
        && matches!(
            tag,
            backend::ROW_DESCRIPTION
                | backend::NO_DATA
                | backend::DATA_ROW
                | backend::NOTICE_RESPONSE
                | backend::NOTIFICATION_RESPONSE
                | backend::COPY_OUT_RESPONSE
                | backend::COPY_BOTH_RESPONSE
                | backend::COPY_DATA
                | backend::COPY_DONE
        ))
}
