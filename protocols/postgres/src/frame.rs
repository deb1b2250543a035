//! Framing of PostgreSQL protocol messages: a one-byte tag and a big-endian
//! length that counts itself. Helpers here never panic on short input.
//!
//! The messages the relay looks inside are typed (see [`Frame`]); everything
//! else is relayed as raw bytes.

mod backend_messages;
mod frontend_messages;
mod message;
#[cfg(test)]
mod message_tests;

pub use backend_messages::{CommandComplete, ParameterStatus};
pub use frontend_messages::{Bind, Close, Describe, Execute, Parse, Query, Target};
pub use message::Frame;

/// Frontend (client → server) message tags Warden looks at.
pub mod frontend {
    pub const QUERY: u8 = b'Q';
    pub const PARSE: u8 = b'P';
    pub const BIND: u8 = b'B';
    pub const EXECUTE: u8 = b'E';
    pub const SYNC: u8 = b'S';
    pub const FUNCTION_CALL: u8 = b'F';
    pub const TERMINATE: u8 = b'X';
    pub const DESCRIBE: u8 = b'D';
    pub const CLOSE: u8 = b'C';
    pub const PASSWORD: u8 = b'p';
}

/// Backend (server → client) message tags Warden looks at.
pub mod backend {
    pub const AUTHENTICATION: u8 = b'R';
    pub const PARAMETER_STATUS: u8 = b'S';
    pub const BACKEND_KEY_DATA: u8 = b'K';
    pub const READY_FOR_QUERY: u8 = b'Z';
    pub const ERROR_RESPONSE: u8 = b'E';
    pub const NOTICE_RESPONSE: u8 = b'N';
    pub const NOTIFICATION_RESPONSE: u8 = b'A';
    pub const COMMAND_COMPLETE: u8 = b'C';
    pub const EMPTY_QUERY: u8 = b'I';
    pub const PORTAL_SUSPENDED: u8 = b's';
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
    pub const ROW_DESCRIPTION: u8 = b'T';
    pub const NO_DATA: u8 = b'n';
    pub const DATA_ROW: u8 = b'D';
    pub const COPY_OUT_RESPONSE: u8 = b'H';
    pub const COPY_BOTH_RESPONSE: u8 = b'W';
    pub const COPY_DATA: u8 = b'd';
    pub const COPY_DONE: u8 = b'c';
}

/// Size of a tagged message header: tag + length.
pub const HEADER_LEN: usize = 5;

/// The header of a tagged message at the start of `buf`, if complete:
/// `(tag, total frame length including the tag byte)`.
/// Errors when the declared length is below 4 (impossible) .
pub fn peek_header(buf: &[u8]) -> Result<Option<(u8, usize)>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let tag = buf[0];
    let declared = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if declared < 4 {
        return Err(FrameError::BadLength(declared));
    }
    Ok(Some((tag, declared as usize + 1)))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("invalid message length {0}")]
    BadLength(u32),
    #[error("{message} body of {len} bytes exceeds its limit of {max} bytes")]
    TooLong {
        message: &'static str,
        len: usize,
        max: usize,
    },
    #[error("message ends inside a field")]
    Truncated,
    #[error("string field without its terminating NUL")]
    MissingNul,
    #[error("unknown target {0:#04x}: expected 'S' or 'P'")]
    UnknownTarget(u8),
}

/// Reads a NUL-terminated string starting at `*pos`, advancing past the NUL.
pub fn read_cstr<'a>(body: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let rest = body.get(*pos..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    *pos += end + 1;
    Some(&rest[..end])
}

/// Reads a big-endian i32 at `*pos`.
pub fn read_i32(body: &[u8], pos: &mut usize) -> Option<i32> {
    let bytes = body.get(*pos..*pos + 4)?;
    *pos += 4;
    Some(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Appends a tagged message with the given body.
pub fn put_message(out: &mut bytes::BytesMut, tag: u8, body: &[u8]) {
    out.reserve(HEADER_LEN + body.len());
    out.extend_from_slice(&[tag]);
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
}

/// The fields of an ErrorResponse or NoticeResponse body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorFields {
    pub severity: String,
    pub code: String,
    pub message: String,
    /// The error points into the client's statement text (field `P`).
    pub has_position: bool,
}

/// Parses an ErrorResponse/NoticeResponse body leniently (never panics).
pub fn parse_error_fields(body: &[u8]) -> ErrorFields {
    let mut fields = ErrorFields::default();
    let mut pos = 0;
    while let Some(&kind) = body.get(pos) {
        if kind == 0 {
            break;
        }
        pos += 1;
        let Some(value) = read_cstr(body, &mut pos) else {
            break;
        };
        let value = String::from_utf8_lossy(value).into_owned();
        match kind {
            b'S' if fields.severity.is_empty() => fields.severity = value,
            b'V' => fields.severity = value,
            b'C' => fields.code = value,
            b'M' => fields.message = value,
            b'P' => fields.has_position = true,
            _ => {}
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rules() {
        assert_eq!(peek_header(b"Q\0\0"), Ok(None));
        assert_eq!(peek_header(b"Q\0\0\0\x03"), Err(FrameError::BadLength(3)));
        assert_eq!(peek_header(b"Q\0\0\0\x04"), Ok(Some((b'Q', 5))));
        assert_eq!(
            peek_header(b"Q\x7f\xff\xff\xff"),
            Ok(Some((b'Q', 0x7fff_ffff + 1)))
        );
    }

    #[test]
    fn cstr_and_ints_are_bounds_checked() {
        let mut pos = 0;
        assert_eq!(read_cstr(b"ab\0cd", &mut pos), Some(&b"ab"[..]));
        assert_eq!(read_cstr(b"ab\0cd", &mut pos), None);
        let mut pos = 0;
        assert_eq!(read_i32(b"\0\0\0", &mut pos), None);
        assert_eq!(read_i32(b"\0\0\0\x07", &mut pos), Some(7));
    }

    #[test]
    fn error_fields_parse_leniently() {
        let body = b"SERROR\0VERROR\0C42501\0Mdenied\0\0";
        let fields = parse_error_fields(body);
        assert_eq!(fields.code, "42501");
        assert_eq!(fields.message, "denied");
        let truncated = parse_error_fields(b"SERR");
        assert_eq!(truncated.severity, "");
    }
}
