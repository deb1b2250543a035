//! The ErrorResponse and NoticeResponse wire forms, and the SQLSTATEs Warden
//! uses; which errors Warden sends is [`crate::client_error::PgClientError`].

use bytes::BytesMut;
use pgwire::messages::Message;
use pgwire::messages::response::ErrorResponse;

/// SQLSTATE codes Warden uses.
pub mod sqlstate {
    pub const INVALID_PASSWORD: &str = "28P01";
    pub const INVALID_AUTHORIZATION: &str = "28000";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const CANNOT_CONNECT: &str = "08001";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const CANNOT_CONNECT_NOW: &str = "57P03";
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const SYSTEM_ERROR: &str = "58000";
    pub const QUERY_CANCELED: &str = "57014";
    pub const WARNING: &str = "01000";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

/// An error Warden answers a client with.
#[derive(Clone, Debug)]
pub struct PgError {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl PgError {
    pub fn fatal(code: &'static str, message: impl Into<String>) -> Self {
        PgError {
            severity: Severity::Fatal,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        PgError {
            severity: Severity::Error,
            ..PgError::fatal(code, message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Unknown and forbidden targets look the same to the client.
    pub fn target_refused(target: &str) -> Self {
        PgError::fatal(
            sqlstate::INVALID_AUTHORIZATION,
            format!("access to target \"{target}\" is not permitted"),
        )
        .with_hint("The database name selects a Warden target; ask an administrator which targets your identity may use.")
    }

    fn fields(&self) -> Vec<(u8, String)> {
        let mut fields = vec![
            (b'S', self.severity.as_str().to_string()),
            (b'V', self.severity.as_str().to_string()),
            (b'C', self.code.to_string()),
            (b'M', self.message.clone()),
        ];
        if let Some(detail) = &self.detail {
            fields.push((b'D', detail.clone()));
        }
        if let Some(hint) = &self.hint {
            fields.push((b'H', hint.clone()));
        }
        fields
    }

    /// Appends the ErrorResponse to `out`.
    pub fn encode_into(&self, out: &mut BytesMut) {
        // Encoding into a BytesMut cannot fail for these field types.
        let _ = ErrorResponse::new(sanitize(self.fields())).encode(out);
    }

    pub fn encode(&self) -> BytesMut {
        let mut out = BytesMut::new();
        self.encode_into(&mut out);
        out
    }
}

/// A NoticeResponse (severity NOTICE) Warden sends on its own.
pub fn notice(message: &str, detail: Option<&str>) -> BytesMut {
    let mut body = Vec::new();
    let mut field = |kind: u8, value: &str| {
        body.push(kind);
        body.extend_from_slice(value.replace('\0', "").as_bytes());
        body.push(0);
    };
    field(b'S', "NOTICE");
    field(b'V', "NOTICE");
    field(b'C', sqlstate::WARNING);
    field(b'M', message);
    if let Some(detail) = detail {
        field(b'D', detail);
    }
    body.push(0);
    let mut out = BytesMut::new();
    crate::frame::put_message(&mut out, crate::frame::backend::NOTICE_RESPONSE, &body);
    out
}

/// NUL bytes would cut a field short on the wire; drop them.
fn sanitize(fields: Vec<(u8, String)>) -> Vec<(u8, String)> {
    fields
        .into_iter()
        .map(|(k, v)| (k, v.replace('\0', "")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{parse_error_fields, peek_header};

    #[test]
    fn error_roundtrips_through_our_parser() {
        let bytes = PgError::error(sqlstate::INSUFFICIENT_PRIVILEGE, "nope\0x")
            .with_hint("h")
            .encode();
        let (tag, len) = peek_header(&bytes).unwrap().unwrap();
        assert_eq!(tag, b'E');
        assert_eq!(len, bytes.len());
        let fields = parse_error_fields(&bytes[5..]);
        assert_eq!(fields.code, "42501");
        assert_eq!(fields.message, "nopex");
        assert_eq!(fields.severity, "ERROR");
    }
}
