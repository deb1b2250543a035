//! The few generic packets Warden reads or writes itself: OK, ERR, EOF, and
//! length-encoded integers. Everything else is relayed untouched.
//! Every reader checks lengths first and returns `None` on short input.

/// Packet headers the relay looks at.
pub const OK: u8 = 0x00;
pub const EOF: u8 = 0xFE;
pub const ERR: u8 = 0xFF;
pub const LOCAL_INFILE: u8 = 0xFB;

/// Server status flags the relay needs.
pub const STATUS_AUTOCOMMIT: u16 = 0x0002;
pub const STATUS_CURSOR_EXISTS: u16 = 0x0040;
pub const STATUS_MORE_RESULTS: u16 = 0x0008;
/// The session's sql_mode has NO_BACKSLASH_ESCAPES: Warden's lexer no longer
/// matches the server's (see `warden_core::lexing`).
pub const STATUS_NO_BACKSLASH_ESCAPES: u16 = 0x0200;

/// Reads a length-encoded integer; returns it and the bytes consumed.
pub fn read_lenenc(buf: &[u8]) -> Option<(u64, usize)> {
    let (&first, rest) = buf.split_first()?;
    let width = match first {
        0..=0xFA => return Some((u64::from(first), 1)),
        0xFC => 2,
        0xFD => 3,
        0xFE => 8,
        _ => return None,
    };
    let bytes = rest.get(..width)?;
    let value = bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    Some((value, 1 + width))
}

/// Appends a length-encoded integer.
pub fn put_lenenc(out: &mut Vec<u8>, value: u64) {
    match value {
        0..=0xFA => out.push(value as u8),
        0xFB..=0xFFFF => {
            out.push(0xFC);
            out.extend_from_slice(&(value as u16).to_le_bytes());
        }
        0x1_0000..=0xFF_FFFF => {
            out.push(0xFD);
            out.extend_from_slice(&(value as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xFE);
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
}

/// The parts of an OK packet (header 0x00, or 0xFE as a result-set terminator) the relay uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OkInfo {
    pub affected_rows: u64,
    pub status: u16,
    pub warnings: u16,
}

pub fn parse_ok(payload: &[u8]) -> Option<OkInfo> {
    let body = payload.get(1..)?;
    let (affected_rows, a) = read_lenenc(body)?;
    let (_last_insert_id, b) = read_lenenc(body.get(a..)?)?;
    let rest = body.get(a + b..)?;
    let status = u16::from_le_bytes([*rest.first()?, *rest.get(1)?]);
    let warnings = match (rest.get(2), rest.get(3)) {
        (Some(&lo), Some(&hi)) => u16::from_le_bytes([lo, hi]),
        _ => 0,
    };
    Some(OkInfo {
        affected_rows,
        status,
        warnings,
    })
}

/// An old-style EOF packet: 0xFE, warnings, status (5 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EofInfo {
    pub warnings: u16,
    pub status: u16,
}

pub fn parse_eof(payload: &[u8]) -> Option<EofInfo> {
    if payload.first() != Some(&EOF) || payload.len() < 5 {
        return None;
    }
    Some(EofInfo {
        warnings: u16::from_le_bytes([payload[1], payload[2]]),
        status: u16::from_le_bytes([payload[3], payload[4]]),
    })
}

/// True for a result-set terminator: 0xFE in a packet too short to be a row.
pub fn is_terminator(payload: &[u8]) -> bool {
    payload.first() == Some(&EOF) && payload.len() < crate::codec::MAX_CHUNK
}

/// Status flags of a terminator in either form.
pub fn terminator_status(payload: &[u8], deprecate_eof: bool) -> Option<u16> {
    if deprecate_eof {
        parse_ok(payload).map(|ok| ok.status)
    } else {
        parse_eof(payload).map(|eof| eof.status)
    }
}

/// The OK packet with header 0xFE that replaces an EOF for CLIENT_DEPRECATE_EOF clients.
pub fn eof_as_ok(eof: EofInfo) -> Vec<u8> {
    let mut out = vec![EOF, 0, 0];
    out.extend_from_slice(&eof.status.to_le_bytes());
    out.extend_from_slice(&eof.warnings.to_le_bytes());
    out
}

/// An OK packet as a command response.
pub fn ok_packet(affected_rows: u64, status: u16) -> Vec<u8> {
    let mut out = vec![OK];
    put_lenenc(&mut out, affected_rows);
    put_lenenc(&mut out, 0);
    out.extend_from_slice(&status.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// An ERR packet (protocol 4.1 form with SQLSTATE).
pub fn err_packet(code: u16, sql_state: &str, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + message.len());
    out.push(ERR);
    out.extend_from_slice(&code.to_le_bytes());
    out.push(b'#');
    let state = sql_state.as_bytes();
    for i in 0..5 {
        out.push(state.get(i).copied().unwrap_or(b'0'));
    }
    out.extend_from_slice(message.as_bytes());
    out
}

/// Code and message of an ERR packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrInfo {
    pub code: u16,
    pub message: String,
}

pub fn parse_err(payload: &[u8]) -> Option<ErrInfo> {
    if payload.first() != Some(&ERR) || payload.len() < 3 {
        return None;
    }
    let code = u16::from_le_bytes([payload[1], payload[2]]);
    let rest = &payload[3..];
    let message = match rest.first() {
        Some(b'#') if rest.len() >= 6 => &rest[6..],
        _ => rest,
    };
    Some(ErrInfo {
        code,
        message: String::from_utf8_lossy(message).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_round_trips_and_rejects_short_input() {
        for value in [
            0,
            250,
            251,
            0xFFFF,
            0x1_0000,
            0xFF_FFFF,
            0x100_0000,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_lenenc(&mut out, value);
            assert_eq!(read_lenenc(&out), Some((value, out.len())));
            assert_eq!(read_lenenc(&out[..out.len() - 1]), None);
        }
        assert_eq!(read_lenenc(&[0xFF]), None);
        assert_eq!(read_lenenc(&[]), None);
    }

    #[test]
    fn ok_err_eof_parse_and_reject_garbage() {
        let ok = ok_packet(3, STATUS_AUTOCOMMIT | STATUS_MORE_RESULTS);
        assert_eq!(
            parse_ok(&ok),
            Some(OkInfo {
                affected_rows: 3,
                status: STATUS_AUTOCOMMIT | STATUS_MORE_RESULTS,
                warnings: 0
            })
        );
        assert_eq!(parse_ok(&[0x00, 0x01]), None);
        let err = err_packet(1142, "42000", "denied");
        assert_eq!(
            parse_err(&err),
            Some(ErrInfo {
                code: 1142,
                message: "denied".into()
            })
        );
        assert_eq!(parse_err(&[0xFF, 1]), None);
        let eof = [0xFE, 1, 0, 0x0A, 0];
        let info = parse_eof(&eof).unwrap();
        assert_eq!(info.status, 0x0A);
        assert_eq!(info.warnings, 1);
        let converted = eof_as_ok(info);
        assert!(is_terminator(&converted));
        assert_eq!(terminator_status(&converted, true), Some(0x0A));
        assert_eq!(parse_ok(&converted).unwrap().warnings, 1);
        assert_eq!(parse_eof(&[0xFE, 0]), None);
    }
}
