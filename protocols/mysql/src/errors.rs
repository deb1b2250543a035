//! Every error Warden itself sends a MySQL client, as one enum mapped to
//! code, SQLSTATE and text in a match with no catch-all arm.

use crate::codec::CodecError;
use crate::packets::err_packet;

/// The one message every authentication or target-access failure gets, so a
/// client cannot probe which users, keys or targets exist.
pub const ACCESS_DENIED: &str =
    "Access denied: Warden could not authenticate this connection for the requested target";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{ACCESS_DENIED}")]
    AccessDenied,
    #[error("Too many connections")]
    TooManyConnections,
    /// Connect policy reviews this target and no access request is approved.
    #[error("{0}")]
    NeedsAccessRequest(String),
    /// The target's `max_sessions` are all open.
    #[error("{0}")]
    TargetBusy(String),
    #[error("Bad handshake: {0}")]
    BadHandshake(String),
    #[error("Got a packet bigger than the limit of {0} bytes")]
    PacketTooLarge(usize),
    #[error("Got packets out of order")]
    OutOfOrder,
    #[error("Got timeout reading communication packets")]
    Timeout,
    #[error("Malformed packet: {0}")]
    Malformed(String),
    #[error(
        "Connections using insecure transport are prohibited: connect with TLS (e.g. --ssl) or from loopback"
    )]
    TlsRequired,
    #[error("{0}")]
    UpstreamUnavailable(String),
    #[error("{0}")]
    StatementDenied(String),
    #[error("{0}")]
    AdminDenied(String),
    #[error("{0}")]
    DatabaseDenied(String),
    #[error("Unknown command {0:#04x}: not supported through Warden")]
    UnknownCommand(u8),
    #[error("Unknown prepared statement handler ({0}) given to {1}")]
    UnknownStatement(u32, &'static str),
    #[error(
        "LOAD DATA LOCAL INFILE is refused by Warden (the server could read the client's files)"
    )]
    LocalInfileRefused,
    #[error("Warden is shutting down: this session is closed")]
    Shutdown,
    #[error("{0}")]
    ReviewRefused(String),
    #[error("{0}")]
    ReviewInterrupted(String),
}

impl ClientError {
    /// MySQL error code and SQLSTATE.
    pub fn code(&self) -> (u16, &'static str) {
        match self {
            ClientError::AccessDenied => (1045, "28000"),
            ClientError::TooManyConnections => (1040, "08004"),
            ClientError::NeedsAccessRequest(_) => (1045, "28000"),
            ClientError::TargetBusy(_) => (1203, "42000"),
            ClientError::BadHandshake(_) => (1043, "08S01"),
            ClientError::PacketTooLarge(_) => (1153, "08S01"),
            ClientError::OutOfOrder => (1156, "08S01"),
            ClientError::Timeout => (1159, "08S01"),
            ClientError::Malformed(_) => (1835, "HY000"),
            ClientError::TlsRequired => (3159, "HY000"),
            ClientError::UpstreamUnavailable(_) => (1429, "HY000"),
            ClientError::StatementDenied(_) => (1142, "42000"),
            ClientError::AdminDenied(_) => (1227, "42000"),
            ClientError::DatabaseDenied(_) => (1044, "42000"),
            ClientError::UnknownCommand(_) => (1047, "08S01"),
            ClientError::UnknownStatement(..) => (1243, "HY000"),
            ClientError::LocalInfileRefused => (1148, "42000"),
            ClientError::Shutdown => (1053, "08S01"),
            ClientError::ReviewRefused(_) => (1142, "42000"),
            ClientError::ReviewInterrupted(_) => (1317, "70100"),
        }
    }

    /// The ERR packet payload.
    pub fn packet(&self) -> Vec<u8> {
        let (code, state) = self.code();
        err_packet(code, state, &self.to_string())
    }

    /// The client error for a framing failure, if the client can still be told.
    pub fn from_codec(error: &CodecError) -> Option<ClientError> {
        match error {
            CodecError::Closed | CodecError::Truncated | CodecError::Io(_) => None,
            CodecError::TooLarge { limit, .. } => Some(ClientError::PacketTooLarge(*limit)),
            CodecError::OutOfOrder { .. } => Some(ClientError::OutOfOrder),
            CodecError::BadFrame => Some(ClientError::Malformed(error.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::parse_err;

    #[test]
    fn access_denied_is_generic() {
        let packet = parse_err(&ClientError::AccessDenied.packet()).unwrap();
        assert_eq!(packet.code, 1045);
        assert_eq!(packet.message, ACCESS_DENIED);
    }
}
