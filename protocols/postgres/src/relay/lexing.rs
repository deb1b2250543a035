//! The server reports lexing-relevant settings in ParameterStatus; a state
//! Warden's lexer does not model ends the session, so no later statement is
//! judged under the wrong rules.

use crate::frame::{Frame, ParameterStatus};

/// A ParameterStatus body that reports a lexing state Warden does not model:
/// why it cannot be judged. A malformed body refuses nothing, as before.
pub(super) fn lexing_refusal(body: &[u8]) -> Option<String> {
    let status = ParameterStatus::decode(body).ok()?;
    warden_core::lexing::pg_setting_refusal(
        &String::from_utf8_lossy(status.name),
        &String::from_utf8_lossy(status.value),
    )
}
