//! A small MySQL lexer for what sqlparser does not do: executable comments
//! (`/*! … */`, `/*M! … */`, which the server runs), splitting a text into
//! statements, and spotting statements sqlparser cannot parse (`LOAD DATA`,
//! `… INTO OUTFILE`, `HANDLER`).
//!
//! It assumes the server's default lexing: backslash escapes in strings and
//! `"` as a string quote. Settings that change that (`sql_mode` with
//! `NO_BACKSLASH_ESCAPES` or `ANSI_QUOTES`) are classified admin.

use std::borrow::Cow;

/// Byte ranges of the text, each either code or something the lexer skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece {
    Code,
    Quoted,
    Comment,
    /// `/*!` or `/*M!` with its version: the server runs what follows.
    ExecutableOpen,
    ExecutableClose,
}

/// Lexes `sql` into pieces. Never fails: an unterminated quote or comment
/// runs to the end of the text.
fn pieces(sql: &str) -> Vec<(Piece, usize, usize)> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut code_start = 0;
    let mut in_executable = false;
    let flush = |out: &mut Vec<(Piece, usize, usize)>, from: usize, to: usize| {
        if to > from {
            out.push((Piece::Code, from, to));
        }
    };
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\'' | b'"' | b'`' => {
                flush(&mut out, code_start, i);
                let end = quoted_end(bytes, i, b);
                out.push((Piece::Quoted, i, end));
                i = end;
                code_start = i;
            }
            b'#' => {
                flush(&mut out, code_start, i);
                let end = line_end(bytes, i);
                out.push((Piece::Comment, i, end));
                i = end;
                code_start = i;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-')
                && bytes
                    .get(i + 2)
                    .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control()) =>
            {
                flush(&mut out, code_start, i);
                let end = line_end(bytes, i);
                out.push((Piece::Comment, i, end));
                i = end;
                code_start = i;
            }
            b'*' if in_executable && bytes.get(i + 1) == Some(&b'/') => {
                flush(&mut out, code_start, i);
                out.push((Piece::ExecutableClose, i, i + 2));
                in_executable = false;
                i += 2;
                code_start = i;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                flush(&mut out, code_start, i);
                let executable = match (bytes.get(i + 2), bytes.get(i + 3)) {
                    (Some(b'!'), _) => Some(i + 3),
                    (Some(b'M'), Some(b'!')) => Some(i + 4),
                    _ => None,
                };
                match executable {
                    Some(mut end) if !in_executable => {
                        // An optional version number (5 or 6 digits).
                        let digits = bytes
                            .get(end..)
                            .unwrap_or_default()
                            .iter()
                            .take_while(|c| c.is_ascii_digit())
                            .count();
                        if digits == 5 || digits == 6 {
                            end += digits;
                        }
                        out.push((Piece::ExecutableOpen, i, end));
                        in_executable = true;
                        i = end;
                    }
                    _ => {
                        let end = find(bytes, i + 2, b"*/").map_or(bytes.len(), |p| p + 2);
                        out.push((Piece::Comment, i, end));
                        i = end;
                    }
                }
                code_start = i;
            }
            _ => i += 1,
        }
    }
    flush(&mut out, code_start, bytes.len());
    out
}

fn quoted_end(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' && quote != b'`' {
            i += 2;
        } else if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

fn line_end(bytes: &[u8], start: usize) -> usize {
    find(bytes, start, b"\n").map_or(bytes.len(), |p| p + 1)
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The text as the server executes it: executable comments are opened up
/// (their markers become spaces), ordinary comments stay.
pub fn open_executable_comments(sql: &str) -> Cow<'_, str> {
    let pieces = pieces(sql);
    if !pieces
        .iter()
        .any(|(p, _, _)| matches!(p, Piece::ExecutableOpen | Piece::ExecutableClose))
    {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    for (piece, from, to) in pieces {
        match piece {
            Piece::ExecutableOpen | Piece::ExecutableClose => out.push(' '),
            _ => out.push_str(sql.get(from..to).unwrap_or_default()),
        }
    }
    Cow::Owned(out)
}

/// Splits a text (with executable comments already opened) into statements
/// at `;` outside quotes and comments. Empty statements are dropped.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (piece, from, to) in pieces(sql) {
        if piece != Piece::Code {
            continue;
        }
        let code = sql.get(from..to).unwrap_or_default();
        for (offset, _) in code.match_indices(';') {
            let end = from + offset;
            out.push(sql.get(start..end).unwrap_or_default());
            start = end + 1;
        }
    }
    out.push(sql.get(start..).unwrap_or_default());
    out.retain(|s| !words(s, 1).is_empty());
    out
}

/// The first `limit` bare words of a statement, uppercased (quoted names
/// and comments are skipped; punctuation ends a word).
pub fn words(sql: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (piece, from, to) in pieces(sql) {
        if piece != Piece::Code {
            continue;
        }
        let code = sql.get(from..to).unwrap_or_default();
        for word in code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '@' || c == '$'))
        {
            if word.is_empty() {
                continue;
            }
            if out.len() >= limit {
                return out;
            }
            out.push(word.to_ascii_uppercase());
        }
    }
    out
}

/// The text after the first bare word (comments before it are skipped).
pub fn after_first_word(sql: &str) -> &str {
    for (piece, from, to) in pieces(sql) {
        if piece != Piece::Code {
            continue;
        }
        let code = sql.get(from..to).unwrap_or_default();
        let Some(start) = code.find(|c: char| c.is_alphanumeric() || c == '_') else {
            continue;
        };
        let rest = code.get(start..).unwrap_or_default();
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        return sql.get(from + start + len..).unwrap_or_default();
    }
    ""
}

/// True when the words `first` and `second` follow each other in the code.
#[cfg(test)]
pub fn has_word_pair(sql: &str, first: &str, second: &str) -> bool {
    let all = words(sql, usize::MAX);
    all.windows(2).any(|w| w[0] == first && w[1] == second)
}

/// The name following `keyword` (possibly backquoted, possibly `db.name`).
pub fn name_after(sql: &str, keyword: &str) -> Option<String> {
    let upper = sql.to_ascii_uppercase();
    let at = upper.find(keyword)? + keyword.len();
    let rest = sql.get(at..)?.trim_start();
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '.' | '`'))
        .filter(|c| *c != '`')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// The value of the first `'…'` or `"…"` string literal, unescaped.
pub fn first_string_literal(sql: &str) -> Option<String> {
    let (_, from, to) = pieces(sql).into_iter().find(|(piece, from, _)| {
        *piece == Piece::Quoted && matches!(sql.as_bytes().get(*from), Some(b'\'' | b'"'))
    })?;
    let quoted = sql.get(from..to)?;
    let quote = quoted.chars().next()?;
    let inner = quoted.strip_prefix(quote)?.strip_suffix(quote)?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('0') => out.push('\0'),
                Some('Z') => out.push('\u{1a}'),
                Some(other) => out.push(other),
                None => {}
            },
            c if c == quote && chars.peek() == Some(&quote) => {
                chars.next();
                out.push(quote);
            }
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_executable_comments_only() {
        assert_eq!(
            open_executable_comments("SELECT 1 /*!50000 , 2 */ /* 3 */"),
            "SELECT 1   , 2   /* 3 */"
        );
        assert_eq!(
            open_executable_comments("/*M!100100 DROP TABLE t */"),
            "  DROP TABLE t  "
        );
        assert_eq!(
            open_executable_comments("SELECT '/*!DROP*/'"),
            "SELECT '/*!DROP*/'"
        );
    }

    #[test]
    fn splits_outside_quotes_and_comments() {
        let parts = split_statements("SELECT ';'; -- ;\n DELETE FROM t; # x;\n");
        assert_eq!(parts, vec!["SELECT ';'", " -- ;\n DELETE FROM t"]);
        assert_eq!(split_statements("SELECT 'a\\';b'; SELECT 2").len(), 2);
    }

    #[test]
    fn finds_words() {
        assert_eq!(
            words("/* x */ load  DATA local", 3),
            vec!["LOAD", "DATA", "LOCAL"]
        );
        assert!(has_word_pair(
            "select * from t into  outfile '/x'",
            "INTO",
            "OUTFILE"
        ));
        assert!(!has_word_pair("select 'into outfile'", "INTO", "OUTFILE"));
        assert_eq!(after_first_word("/* DO */ do sleep(1)"), " sleep(1)");
        assert_eq!(
            name_after("HANDLER `db`.t OPEN", "HANDLER").as_deref(),
            Some("db.t")
        );
    }

    #[test]
    fn string_literals_unescape() {
        assert_eq!(
            first_string_literal("PREPARE s FROM 'DELETE FROM t WHERE a = \\'x\\' OR b = ''y'''")
                .as_deref(),
            Some("DELETE FROM t WHERE a = 'x' OR b = 'y'")
        );
        assert_eq!(first_string_literal("PREPARE s FROM @q"), None);
    }

    #[test]
    fn unterminated_input_does_not_panic() {
        for text in ["'abc", "/* x", "/*!", "`x", "-- ", "\"\\", "/*!12345"] {
            let _ = split_statements(&open_executable_comments(text));
        }
    }
}
