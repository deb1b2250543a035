//! Relays one command's response from the upstream to the client.
//!
//! Rows and column definitions are forwarded chunk by chunk, untouched
//! (never decoded, never joined in memory). Only the packets that carry state
//! are looked at: the first packet of a result (OK / ERR / LOCAL INFILE /
//! column count), and terminators (their status flags say whether another
//! result follows). When the client uses CLIENT_DEPRECATE_EOF and the
//! upstream does not, EOF packets are dropped or turned into OK terminators.

use crate::codec::{Chunk, CodecError, MAX_CHUNK, PacketStream};
use crate::errors::ClientError;
use crate::masking::{self, MaskCounts, RowPlan};
use crate::packets::{self, ErrInfo};
use crate::stream::BoxStream;
use warden_core::masking::{Masked, SessionMasker};

/// Which side failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("client: {0}")]
    Client(CodecError),
    #[error("upstream: {0}")]
    Upstream(CodecError),
    #[error("upstream sent a malformed response: {0}")]
    Protocol(&'static str),
    /// The session left the lexing state Warden judges statements in.
    #[error("{0}")]
    LexingState(&'static str),
    /// A statement command reached the relay without a grant (a Warden bug;
    /// refused, never forwarded).
    #[error("a statement without a policy grant was refused")]
    Ungranted,
}

/// What a response said, for the recording.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// One entry per result: `RESULT n` for a result set, `OK n` for affected rows.
    pub tags: Vec<String>,
    pub rows: u64,
    pub error: Option<ErrInfo>,
    /// Captured results (`[recording] capture_results`).
    pub captured: Vec<CapturedResult>,
}

/// One result's column names, first rows and whether rows were left out.
pub type CapturedResult = (Vec<String>, Vec<Vec<Option<String>>>, bool);

/// Rows kept per captured result.
const CAPTURED_ROWS: usize = 100;

/// A successful COM_STMT_PREPARE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prepared {
    pub statement_id: u32,
    pub columns: u16,
    pub params: u16,
}

/// The two legs of a session while one response is relayed.
pub struct Relay<'a> {
    pub client: &'a mut PacketStream<BoxStream>,
    pub upstream: &'a mut PacketStream<BoxStream>,
    /// The client expects OK terminators instead of EOF packets.
    pub client_deprecate_eof: bool,
    /// The upstream sends OK terminators instead of EOF packets.
    pub upstream_deprecate_eof: bool,
    /// Next sequence id towards the client.
    pub seq: u8,
    /// Result masking; `None` forwards rows undecoded.
    pub masking: Option<MaskingRelay<'a>>,
    /// A chunk read ahead, returned by the next read.
    pub pushback: Option<Chunk>,
    /// Capture result rows for the recording (text-protocol results).
    pub capture: bool,
    /// The current result's column names and captured rows.
    pub captured_columns: Vec<String>,
    pub captured_rows: Vec<Vec<Option<String>>>,
    pub captured_truncated: bool,
    /// The file a `LOAD DATA LOCAL INFILE` statement names; the server may
    /// ask for this one only.
    pub local_infile: Option<String>,
}

/// A relay's masking state for one command.
pub struct MaskingRelay<'a> {
    pub masker: &'a dyn SessionMasker,
    /// See `CommandLoop::covered_reads`.
    pub covered_reads: Option<&'a [String]>,
    /// Rows of this command are in the binary protocol (COM_STMT_EXECUTE/FETCH).
    pub binary: bool,
    /// Values masked, per (column, detector).
    pub counts: MaskCounts,
    /// Set when the response opened a cursor: the plan for its fetches.
    pub cursor_plan: Option<RowPlan>,
    /// For COM_STMT_FETCH: the plan of the cursor's result.
    pub fetch_plan: Option<RowPlan>,
}

impl<'a> Relay<'a> {
    async fn read(&mut self) -> Result<Chunk, RelayError> {
        if let Some(chunk) = self.pushback.take() {
            return Ok(chunk);
        }
        self.upstream
            .read_chunk(MAX_CHUNK)
            .await
            .map_err(RelayError::Upstream)
    }

    /// Queues a packet of Warden's own to the client.
    pub fn queue_own(&mut self, payload: &[u8]) {
        self.seq = self.client.queue_packet(self.seq, payload);
    }

    /// Forwards a logical packet that starts with `first`, chunk by chunk.
    async fn forward(&mut self, first: Chunk) -> Result<(), RelayError> {
        let mut more = first.continues();
        self.client.queue_chunk(self.seq, &first.payload);
        self.seq = self.seq.wrapping_add(1);
        while more {
            let next = self.read().await?;
            more = next.continues();
            self.client.queue_chunk(self.seq, &next.payload);
            self.seq = self.seq.wrapping_add(1);
            self.flush_if_full().await?;
        }
        self.flush_if_full().await
    }

    async fn flush_if_full(&mut self) -> Result<(), RelayError> {
        self.client
            .flush_if_full()
            .await
            .map_err(RelayError::Client)
    }

    pub async fn flush(&mut self) -> Result<(), RelayError> {
        self.client.flush().await.map_err(RelayError::Client)
    }

    /// Relays a terminator (EOF or OK-as-EOF) and returns its status flags.
    async fn terminator(&mut self, chunk: Chunk) -> Result<u16, RelayError> {
        let status = packets::terminator_status(&chunk.payload, self.upstream_deprecate_eof)
            .ok_or(RelayError::Protocol("bad result-set terminator"))?;
        if self.client_deprecate_eof && !self.upstream_deprecate_eof {
            let eof =
                packets::parse_eof(&chunk.payload).ok_or(RelayError::Protocol("bad EOF packet"))?;
            self.queue_own(&packets::eof_as_ok(eof));
        } else {
            self.forward(chunk).await?;
        }
        Ok(status)
    }

    /// Relays the EOF that follows column (or parameter) definitions when the
    /// upstream sends one; drops it for a CLIENT_DEPRECATE_EOF client.
    /// Returns its status flags (0 when there is none).
    async fn metadata_eof(&mut self) -> Result<u16, RelayError> {
        if self.upstream_deprecate_eof {
            return Ok(0);
        }
        let chunk = self.read().await?;
        let eof = packets::parse_eof(&chunk.payload)
            .ok_or(RelayError::Protocol("expected EOF after definitions"))?;
        if !self.client_deprecate_eof {
            self.forward(chunk).await?;
        }
        Ok(eof.status)
    }

    /// Forwards `count` definition packets.
    async fn definitions(&mut self, count: u64) -> Result<(), RelayError> {
        for _ in 0..count {
            let chunk = self.read().await?;
            if chunk.payload.first() == Some(&packets::ERR) {
                return Err(RelayError::Protocol("error in the middle of definitions"));
            }
            self.forward(chunk).await?;
        }
        Ok(())
    }

    /// Relays the response to COM_QUERY or COM_STMT_EXECUTE: any number of
    /// results (OK or result set) linked by SERVER_MORE_RESULTS_EXISTS, ended
    /// by the last result or an error. LOCAL INFILE requests are refused.
    pub async fn results(&mut self) -> Result<Outcome, RelayError> {
        let mut outcome = Outcome::default();
        loop {
            let first = self.read().await?;
            let header = first.payload.first().copied();
            match header {
                None => return Err(RelayError::Protocol("empty response packet")),
                Some(packets::ERR) => {
                    outcome.error = packets::parse_err(&first.payload);
                    self.forward_error(first).await?;
                    break;
                }
                Some(packets::OK) => {
                    let ok = packets::parse_ok(&first.payload)
                        .ok_or(RelayError::Protocol("bad OK packet"))?;
                    outcome.tags.push(format!("OK {}", ok.affected_rows));
                    outcome.rows += ok.affected_rows;
                    check_lexing_status(ok.status)?;
                    self.forward(first).await?;
                    if ok.status & packets::STATUS_MORE_RESULTS == 0 {
                        break;
                    }
                }
                Some(packets::LOCAL_INFILE) => {
                    let expected = self.local_infile.take();
                    if let Some(refused) = self.local_infile(first, expected.as_deref()).await? {
                        outcome.error = Some(refused);
                        break;
                    }
                }
                Some(_) => {
                    let (columns, _) = packets::read_lenenc(&first.payload)
                        .ok_or(RelayError::Protocol("bad column count"))?;
                    self.forward(first).await?;
                    let plan = self.definitions_planned(columns).await?;
                    let status = self.metadata_eof().await?;
                    if status & packets::STATUS_CURSOR_EXISTS != 0 {
                        // A cursor was opened: rows come with COM_STMT_FETCH.
                        if let Some(masking) = &mut self.masking {
                            masking.cursor_plan = plan;
                        }
                        outcome.tags.push("CURSOR".into());
                        if status & packets::STATUS_MORE_RESULTS == 0 {
                            break;
                        }
                        continue;
                    }
                    let (rows, status, error) = self.rows(plan.as_ref()).await?;
                    check_lexing_status(status)?;
                    self.finish_capture(&mut outcome);
                    outcome.rows += rows;
                    outcome.tags.push(format!("RESULT {rows}"));
                    if error.is_some() {
                        outcome.error = error;
                        break;
                    }
                    if status & packets::STATUS_MORE_RESULTS == 0 {
                        break;
                    }
                }
            }
        }
        self.flush().await?;
        Ok(outcome)
    }

    /// Forwards `count` definition packets; with masking on, also reads
    /// them into the result's masking plan.
    async fn definitions_planned(&mut self, count: u64) -> Result<Option<RowPlan>, RelayError> {
        let Some((masker, covered_reads)) =
            self.masking.as_ref().map(|m| (m.masker, m.covered_reads))
        else {
            if self.capture {
                let mut columns = Vec::new();
                for _ in 0..count {
                    let chunk = self.read().await?;
                    if chunk.payload.first() == Some(&packets::ERR) {
                        return Err(RelayError::Protocol("error in the middle of definitions"));
                    }
                    columns.push(
                        masking::parse_column_definition(&chunk.payload)
                            .map(|c| c.source.label)
                            .unwrap_or_default(),
                    );
                    self.forward(chunk).await?;
                }
                self.captured_columns = columns;
                return Ok(None);
            }
            self.definitions(count).await?;
            return Ok(None);
        };
        let mut columns = Vec::new();
        for _ in 0..count {
            let chunk = self.read().await?;
            if chunk.payload.first() == Some(&packets::ERR) {
                return Err(RelayError::Protocol("error in the middle of definitions"));
            }
            columns.push(
                masking::parse_column_definition(&chunk.payload)
                    .ok_or(RelayError::Protocol("bad column definition"))?,
            );
            self.forward(chunk).await?;
        }
        if self.capture {
            self.captured_columns = columns.iter().map(|c| c.source.label.clone()).collect();
        }
        Ok(RowPlan::build(masker, &columns, covered_reads))
    }

    /// Forwards an ERR packet, masking its message when content detectors apply
    /// (a duplicate-key error quotes the value).
    async fn forward_error(&mut self, chunk: Chunk) -> Result<(), RelayError> {
        if let Some(masker) = self.masking.as_ref().map(|m| m.masker)
            && masker.has_column_rules()
            && let Some(error) = packets::parse_err(&chunk.payload)
            && quotes_data(error.code)
        {
            // A covered value can be quoted where no detector finds it.
            self.queue_own(&packets::err_packet(error.code, "HY000", WITHHELD_MESSAGE));
            return self.flush_if_full().await;
        }
        if let Some(masker) = self.masking.as_ref().map(|m| m.masker)
            && masker.scans_content()
            && let Some(error) = packets::parse_err(&chunk.payload)
            && let Masked::Replaced { value, .. } = masker.mask_text(&error.message, false)
        {
            let message = value.unwrap_or_else(|| "[MASKED]".into());
            self.queue_own(&packets::err_packet(error.code, "HY000", &message));
            return self.flush_if_full().await;
        }
        self.forward(chunk).await
    }

    /// Relays rows up to and including the terminator (or an error).
    async fn rows(
        &mut self,
        plan: Option<&RowPlan>,
    ) -> Result<(u64, u16, Option<ErrInfo>), RelayError> {
        let mut rows = 0u64;
        let mut refused: Option<ErrInfo> = None;
        loop {
            let chunk = self.read().await?;
            if packets::is_terminator(&chunk.payload) {
                if let Some(error) = refused {
                    return Ok((rows, 0, Some(error)));
                }
                let status = self.terminator(chunk).await?;
                return Ok((rows, status, None));
            }
            if chunk.payload.first() == Some(&packets::ERR) {
                let error = packets::parse_err(&chunk.payload);
                if refused.is_none() {
                    self.forward_error(chunk).await?;
                }
                return Ok((rows, 0, refused.or(error)));
            }
            rows += 1;
            if refused.is_some() {
                self.drain_continuations(&chunk).await?;
                continue;
            }
            let Some(plan) = plan.filter(|_| self.masking.is_some()) else {
                self.capture_row(&chunk.payload, chunk.continues());
                self.forward(chunk).await?;
                continue;
            };
            let row = self.read_rest(chunk).await?;
            let Some(masking) = self.masking.as_mut() else {
                continue;
            };
            let masked = if masking.binary {
                masking::mask_binary_row(masking.masker, plan, &row, &mut masking.counts)
            } else {
                masking::mask_text_row(masking.masker, plan, &row, &mut masking.counts)
            };
            match masked {
                Ok(Some(new_row)) => {
                    self.capture_row(&new_row, false);
                    self.queue_own(&new_row)
                }
                Ok(None) => {
                    self.capture_row(&row, false);
                    self.queue_own(&row)
                }
                Err(unmaskable) => {
                    let message = format!(
                        "column '{}' is masked and cannot be sent in this form",
                        unmaskable.column
                    );
                    self.queue_own(&packets::err_packet(1142, "42000", &message));
                    refused = Some(ErrInfo {
                        code: 1142,
                        message,
                    });
                }
            }
            self.flush_if_full().await?;
        }
    }

    /// Reads the rest of a logical packet that starts with `first`.
    async fn read_rest(&mut self, first: Chunk) -> Result<Vec<u8>, RelayError> {
        let mut more = first.continues();
        let mut row = first.payload.to_vec();
        while more {
            let next = self.read().await?;
            more = next.continues();
            row.extend_from_slice(&next.payload);
        }
        Ok(row)
    }

    /// Skips the continuation chunks of a packet that is not forwarded.
    async fn drain_continuations(&mut self, first: &Chunk) -> Result<(), RelayError> {
        let mut more = first.continues();
        while more {
            more = self.read().await?.continues();
        }
        Ok(())
    }

    /// Relays the rows a COM_STMT_FETCH returns.
    pub async fn fetch(&mut self) -> Result<Outcome, RelayError> {
        let first = self.read().await?;
        let mut outcome = Outcome::default();
        if first.payload.first() == Some(&packets::ERR) {
            outcome.error = packets::parse_err(&first.payload);
            self.forward_error(first).await?;
        } else {
            let plan = self.masking.as_mut().and_then(|m| m.fetch_plan.take());
            let (rows, error) = if packets::is_terminator(&first.payload) {
                self.terminator(first).await?;
                (0, None)
            } else if self.masking.is_some() {
                // Put the first row back in line with the rest.
                self.pushback = Some(first);
                let (rows, _, error) = self.rows(plan.as_ref()).await?;
                (rows, error)
            } else {
                self.forward(first).await?;
                let (rows, _, error) = self.rows(None).await?;
                (rows + 1, error)
            };
            if let Some(masking) = self.masking.as_mut() {
                masking.fetch_plan = plan;
            }
            outcome.rows = rows;
            outcome.tags.push(format!("FETCH {rows}"));
            outcome.error = error;
        }
        self.flush().await?;
        Ok(outcome)
    }

    /// Relays a COM_STMT_PREPARE response; `Err` carries the server's error.
    pub async fn prepare(&mut self) -> Result<Result<Prepared, ErrInfo>, RelayError> {
        let first = self.read().await?;
        let payload = first.payload.clone();
        match payload.first() {
            Some(&packets::OK) if payload.len() >= 12 => {
                let prepared = Prepared {
                    statement_id: u32::from_le_bytes([
                        payload[1], payload[2], payload[3], payload[4],
                    ]),
                    columns: u16::from_le_bytes([payload[5], payload[6]]),
                    params: u16::from_le_bytes([payload[7], payload[8]]),
                };
                self.forward(first).await?;
                if prepared.params > 0 {
                    self.definitions(u64::from(prepared.params)).await?;
                    self.metadata_eof().await?;
                }
                if prepared.columns > 0 {
                    self.definitions(u64::from(prepared.columns)).await?;
                    self.metadata_eof().await?;
                }
                self.flush().await?;
                Ok(Ok(prepared))
            }
            Some(&packets::ERR) => {
                let error = packets::parse_err(&payload).unwrap_or(ErrInfo {
                    code: 0,
                    message: String::new(),
                });
                self.forward(first).await?;
                self.flush().await?;
                Ok(Err(error))
            }
            _ => Err(RelayError::Protocol("bad COM_STMT_PREPARE response")),
        }
    }

    /// Relays a COM_FIELD_LIST response: definitions up to a terminator or error.
    pub async fn field_list(&mut self) -> Result<Outcome, RelayError> {
        let mut outcome = Outcome::default();
        loop {
            let chunk = self.read().await?;
            if packets::is_terminator(&chunk.payload) {
                self.terminator(chunk).await?;
                break;
            }
            if chunk.payload.first() == Some(&packets::ERR) {
                outcome.error = packets::parse_err(&chunk.payload);
                self.forward(chunk).await?;
                break;
            }
            outcome.rows += 1;
            self.forward(chunk).await?;
        }
        self.flush().await?;
        Ok(outcome)
    }

    /// Relays a one-packet response (OK, ERR, EOF or COM_STATISTICS' text).
    pub async fn single(&mut self) -> Result<Option<ErrInfo>, RelayError> {
        let chunk = self.read().await?;
        let error = packets::parse_err(&chunk.payload);
        if packets::is_terminator(&chunk.payload)
            && chunk.payload.len() == 5
            && self.client_deprecate_eof
            && !self.upstream_deprecate_eof
        {
            self.terminator(chunk).await?;
        } else {
            self.forward(chunk).await?;
        }
        self.flush().await?;
        Ok(error)
    }

    /// Answers the upstream's LOCAL INFILE request with "no data", swallows
    /// its reply, and tells the client the statement was refused.
    pub(crate) async fn refuse_local_infile(&mut self, request_seq: u8) -> Result<(), RelayError> {
        self.upstream.queue_packet(request_seq.wrapping_add(1), &[]);
        self.upstream.flush().await.map_err(RelayError::Upstream)?;
        let _reply = self.read().await?;
        self.queue_own(&ClientError::LocalInfileRefused.packet());
        Ok(())
    }
}

/// The message of an error that could quote a covered value.
pub const WITHHELD_MESSAGE: &str = "the server's message is withheld: column masking rules apply to this session (the error code is the server's)";

/// Could this error's message quote a value? Under column rules only the
/// errors below keep their message: fixed templates that name at most what
/// the statement itself names (tables, columns, functions, the parser's
/// excerpt of the statement) or nothing at all. Everything else is withheld:
/// a deny-list misses the generic ones (`extractvalue(1, concat('~', code))`
/// puts the value in a 1105 "XPATH syntax error").
pub(crate) fn quotes_data(code: u16) -> bool {
    const DATA_FREE: &[u16] = &[
        1044, 1045, 1046, 1047, 1048, 1049, 1050, 1051, 1052, 1054, 1060, 1061, 1064, 1065, 1066,
        1075, 1090, 1091, 1093, 1109, 1110, 1111, 1113, 1136, 1142, 1143, 1146, 1147, 1149, 1205,
        1213, 1222, 1227, 1235, 1241, 1242, 1248, 1267, 1271, 1288, 1305, 1317, 1318, 1327, 1364,
        1370, 1449, 1451, 1452, 1582, 1630, 1792, 1969, 3024,
    ];
    !DATA_FREE.contains(&code)
}

/// Ends the session when the server reports NO_BACKSLASH_ESCAPES: something
/// Warden allowed (a stored procedure, say) changed how the server lexes, and
/// later statements would no longer run as they were judged.
fn check_lexing_status(status: u16) -> Result<(), RelayError> {
    if status & packets::STATUS_NO_BACKSLASH_ESCAPES != 0 {
        tracing::warn!("upstream entered NO_BACKSLASH_ESCAPES; ending the session");
        return Err(RelayError::LexingState(
            "the session entered sql_mode NO_BACKSLASH_ESCAPES, which Warden does not judge statements in",
        ));
    }
    Ok(())
}

mod capture;
mod send;
#[cfg(test)]
mod tests;
