//! Result capture for the recording (`[recording] capture_results`): the
//! column names and the first rows of each result, as the client received
//! them (after masking). Binary-format values are recorded as hex.

use crate::frame::backend;
use crate::masking::parse_row_description;
use warden_core::engines::SessionRecording;
use warden_core::events::EventKind;

/// Rows kept per result; more are counted as `truncated`.
pub const CAPTURED_ROWS: usize = 100;
/// Bytes of one captured value; longer values are cut.
const CAPTURED_VALUE: usize = 1024;

#[derive(Default)]
pub struct Capture {
    columns: Vec<String>,
    formats: Vec<i16>,
    rows: Vec<Vec<Option<String>>>,
    truncated: bool,
}

impl Capture {
    /// Looks at a frame as it went to the client (`sent` is false for frames
    /// Warden kept from the client, whose rows are therefore not captured).
    pub fn observe(&mut self, recording: &dyn SessionRecording, tag: u8, body: &[u8], sent: bool) {
        match tag {
            backend::ROW_DESCRIPTION => {
                self.flush(recording);
                if let Some(fields) = parse_row_description(body) {
                    self.formats = fields.iter().map(|f| f.format).collect();
                    self.columns = fields.into_iter().map(|f| f.name).collect();
                }
            }
            backend::DATA_ROW if sent => {
                if self.rows.len() >= CAPTURED_ROWS {
                    self.truncated = true;
                } else if let Some(row) = self.decode(body) {
                    self.rows.push(row);
                }
            }
            backend::COMMAND_COMPLETE
            | backend::PORTAL_SUSPENDED
            | backend::EMPTY_QUERY
            | backend::ERROR_RESPONSE
            | backend::READY_FOR_QUERY => self.flush(recording),
            _ => {}
        }
    }

    fn decode(&self, body: &[u8]) -> Option<Vec<Option<String>>> {
        let count = i16::from_be_bytes([*body.first()?, *body.get(1)?]);
        let mut pos = 2;
        let mut row = Vec::new();
        for index in 0..usize::try_from(count).ok()? {
            let len = i32::from_be_bytes(body.get(pos..pos + 4)?.try_into().ok()?);
            pos += 4;
            let Ok(len) = usize::try_from(len) else {
                row.push(None);
                continue;
            };
            let value = body.get(pos..pos + len)?;
            pos += len;
            let shown = &value[..value.len().min(CAPTURED_VALUE)];
            let binary = self.formats.get(index).copied().unwrap_or(0) == 1;
            row.push(Some(match (binary, std::str::from_utf8(shown)) {
                (false, Ok(text)) => text.to_string(),
                _ => format!("\\x{}", hex_encode(shown)),
            }));
        }
        Some(row)
    }

    /// Records the result captured so far, if any.
    pub fn flush(&mut self, recording: &dyn SessionRecording) {
        if !self.rows.is_empty() || self.truncated {
            recording.record(EventKind::Result {
                columns: self.columns.clone(),
                rows: std::mem::take(&mut self.rows),
                truncated: self.truncated,
            });
        }
        self.truncated = false;
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}
