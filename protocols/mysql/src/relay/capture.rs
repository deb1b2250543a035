//! Keeping a result's first rows for the recording (`capture_results`).

use super::{CAPTURED_ROWS, Outcome, Relay};
use crate::packets;

impl Relay<'_> {
    /// Keeps a text-protocol row for the recording (the first rows of each result).
    pub(super) fn capture_row(&mut self, row: &[u8], partial: bool) {
        let binary = self.masking.as_ref().is_some_and(|m| m.binary);
        if !self.capture || binary || partial {
            return;
        }
        if self.captured_rows.len() >= CAPTURED_ROWS {
            self.captured_truncated = true;
            return;
        }
        let mut values = Vec::with_capacity(self.captured_columns.len());
        let mut pos = 0;
        while pos < row.len() {
            if row[pos] == 0xFB {
                values.push(None);
                pos += 1;
                continue;
            }
            let Some((len, used)) = packets::read_lenenc(&row[pos..]) else {
                return;
            };
            let start = pos + used;
            let Some(end) = usize::try_from(len).ok().and_then(|l| start.checked_add(l)) else {
                return;
            };
            let Some(value) = row.get(start..end) else {
                return;
            };
            let shown = &value[..value.len().min(1024)];
            values.push(Some(String::from_utf8_lossy(shown).into_owned()));
            pos = end;
        }
        self.captured_rows.push(values);
    }

    /// Moves the current result's capture into the outcome.
    pub(super) fn finish_capture(&mut self, outcome: &mut Outcome) {
        if self.capture && (!self.captured_rows.is_empty() || self.captured_truncated) {
            outcome.captured.push((
                std::mem::take(&mut self.captured_columns),
                std::mem::take(&mut self.captured_rows),
                self.captured_truncated,
            ));
        }
        self.captured_truncated = false;
    }
}
