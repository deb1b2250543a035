//! Statements as the session's recording keeps them.

use super::RelayContext;
use crate::frame;
use crate::masking as wire_masking;
use std::time::Instant;
use warden_core::events::EventKind;

use warden_core::request::StatementProtocol;
/// Records one statement's outcome; its text and error message are masked
/// the way the client's copy is.
pub(super) fn record_statement(
    context: &RelayContext,
    text: &str,
    protocol: StatementProtocol,
    started: Instant,
    tags: Vec<String>,
    error: Option<frame::ErrorFields>,
) {
    let rows = tags
        .iter()
        .filter_map(|tag| rows_from_tag(tag))
        .reduce(|a, b| a + b);
    let (error_code, error_message) = match error {
        Some(fields) => {
            let message = match context.masker.as_deref() {
                Some(masker) => wire_masking::recorded_error_message(masker, &fields, text),
                None => fields.message,
            };
            (Some(fields.code), Some(message))
        }
        None => (None, None),
    };
    context.recording.record(EventKind::Statement {
        text: warden_core::masking::recorded_statement(
            context.gateway.config.recording.capture_statements,
            context.masker.as_deref(),
            text,
        ),
        protocol,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        tags,
        rows,
        error_code,
        error_message,
    });
}

/// Rows from a CommandComplete tag: `SELECT 5`, `INSERT 0 5`, `UPDATE 5`, `COPY 5` …
pub(super) fn rows_from_tag(tag: &str) -> Option<u64> {
    let mut words = tag.split_ascii_whitespace();
    let command = words.next()?;
    match command {
        "SELECT" | "UPDATE" | "DELETE" | "COPY" | "FETCH" | "MOVE" | "MERGE" | "INSERT" => {
            words.last()?.parse().ok()
        }
        _ => None,
    }
}
