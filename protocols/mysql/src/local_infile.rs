//! `LOAD DATA LOCAL INFILE 'file' INTO TABLE t`: the server asks the client
//! for `file` and the client streams it. Policy judges the statement (a write
//! to `t`); the relay then carries the request to the client and the file's
//! packets to the server. A request for any other file than the one the
//! statement names is refused: a hostile server must not read the agent's
//! files (the classic LOCAL INFILE attack on clients).

use crate::codec::Chunk;
use crate::errors::ClientError;
use crate::relay::{Relay, RelayError};

/// Largest file packet accepted from the client.
const MAX_FILE_PACKET: usize = 16 << 20;

/// The file named by a statement that is exactly one `LOAD DATA|XML LOCAL
/// INFILE '…'` (the literal unescaped as the server reads it); `None` for
/// anything else, so a server's request for a file is refused.
pub fn requested_file(sql: &str) -> Option<String> {
    // Every COM_QUERY asks: answer the common case without allocating.
    let head = sql.trim_start().get(..4);
    if !head.is_some_and(|head| head.eq_ignore_ascii_case("load")) {
        return None;
    }
    let upper = sql.to_ascii_uppercase();
    let words: Vec<&str> = upper.split_ascii_whitespace().take(4).collect();
    if !matches!(
        words.as_slice(),
        ["LOAD", "DATA" | "XML", "LOCAL", "INFILE"]
    ) {
        return None;
    }
    if upper.matches("INFILE").count() != 1 {
        return None;
    }
    let at = upper.find("INFILE")? + "INFILE".len();
    let rest = sql.get(at..)?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let mut name = String::new();
    let mut chars = rest[1..].chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => name.push(unescape(chars.next()?)),
            c if c == quote && chars.peek() == Some(&quote) => {
                chars.next();
                name.push(quote);
            }
            c if c == quote => return Some(name),
            c => name.push(c),
        }
    }
    None
}

/// MySQL's backslash escapes in a string literal.
fn unescape(c: char) -> char {
    match c {
        '0' => '\0',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'b' => '\u{8}',
        'Z' => '\u{1a}',
        other => other,
    }
}

impl Relay<'_> {
    /// Handles the server's request `request` (0xFB + file name): relays the
    /// exchange when it asks for `expected`, refuses it otherwise.
    pub async fn local_infile(
        &mut self,
        request: Chunk,
        expected: Option<&str>,
    ) -> Result<Option<crate::packets::ErrInfo>, RelayError> {
        let asked = request.payload.get(1..).unwrap_or_default();
        if expected.map(str::as_bytes) != Some(asked) {
            self.refuse_local_infile(request.seq).await?;
            return Ok(Some(crate::packets::ErrInfo {
                code: ClientError::LocalInfileRefused.code().0,
                message: ClientError::LocalInfileRefused.to_string(),
            }));
        }
        self.queue_own(&request.payload);
        self.flush().await?;
        let mut upstream_seq = request.seq.wrapping_add(1);
        loop {
            let packet = self
                .client
                .read_packet(Some(self.seq), MAX_FILE_PACKET)
                .await
                .map_err(RelayError::Client)?;
            self.seq = packet.last_seq.wrapping_add(1);
            upstream_seq = self.upstream.queue_packet(upstream_seq, &packet.payload);
            self.upstream
                .flush_if_full()
                .await
                .map_err(RelayError::Upstream)?;
            if packet.payload.is_empty() {
                break;
            }
        }
        self.upstream.flush().await.map_err(RelayError::Upstream)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_file_name_of_one_load_data_local() {
        assert_eq!(
            requested_file("LOAD DATA LOCAL INFILE '/tmp/a.csv' INTO TABLE t").as_deref(),
            Some("/tmp/a.csv")
        );
        assert_eq!(
            requested_file("load xml local infile \"it''s\\\\x\" into table t").as_deref(),
            Some("it''s\\x")
        );
        assert_eq!(
            requested_file("LOAD DATA LOCAL INFILE 'it''s' INTO TABLE t").as_deref(),
            Some("it's")
        );
        assert_eq!(
            requested_file("  LOAD DATA LOCAL INFILE 'x' INTO TABLE t").as_deref(),
            Some("x")
        );
        for other in [
            "LOAD DATA INFILE '/etc/passwd' INTO TABLE t",
            "SELECT 'LOAD DATA LOCAL INFILE'",
            "LOAD DATA LOCAL INFILE @x INTO TABLE t",
            "LOAD DATA LOCAL INFILE 'a' INTO TABLE t; LOAD DATA LOCAL INFILE 'b' INTO TABLE t",
            "LOAD DATA LOCAL INFILE 'unterminated",
        ] {
            assert_eq!(requested_file(other), None, "{other}");
        }
    }
}
