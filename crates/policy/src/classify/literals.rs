//! A cache key that ignores numeric literals, so `… WHERE id = 17` and
//! `… WHERE id = 42` share one classification instead of parsing each.
//!
//! Sound only because a number never changes what a statement does or which
//! tables it touches. The one place PostgreSQL reads a number as a switch —
//! `EXPLAIN (ANALYZE 0)` — is excluded, and so is any text this small lexer
//! cannot follow with certainty (backslashes in strings, escape strings,
//! dollar quotes, unterminated constructs): those are keyed by their exact text.

/// The text with every numeric literal replaced by `0`, or `None` when the
/// text must be keyed as it is.
pub fn postgres_key(sql: &str) -> Option<String> {
    let bytes = sql.as_bytes();
    if contains_ignore_case(bytes, b"explain") {
        return None;
    }
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    let mut i = 0;
    let mut replaced = false;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' => {
                // E'…', U&'…' and B/X'…' have their own escapes: key exactly.
                if i > 0 && !is_separator(bytes[i - 1]) {
                    return None;
                }
                i = skip_quoted(bytes, i, b'\'')?;
            }
            b'"' => i = skip_quoted(bytes, i, b'"')?,
            b'$' => {
                // `$1` parameters are fine; `$tag$` dollar quotes are not followed.
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                if digits == 0 {
                    return None;
                }
                i += 1 + digits;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i)?,
            b'0'..=b'9' | b'.'
                if (i == 0 || is_separator(bytes[i - 1]))
                    && (b != b'.' || bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                let end = i + bytes[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'.')
                    .count();
                out.push_str(&sql[copied..i]);
                out.push('0');
                copied = end;
                i = end;
                replaced = true;
            }
            _ if b >= 0x80 => return None,
            _ => i += 1,
        }
    }
    if !replaced {
        return Some(sql.to_string());
    }
    out.push_str(&sql[copied..]);
    Some(out)
}

/// Whether a byte can end a token before a literal (so `t1` stays an identifier).
fn is_separator(b: u8) -> bool {
    !(b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80)
}

/// Index after the closing quote; doubled quotes are escapes. `None` when
/// unterminated or when a backslash makes the lexing depend on settings.
fn skip_quoted(bytes: &[u8], start: usize, quote: u8) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' && quote == b'\'' {
            return None;
        }
        if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// Index after a (possibly nested) block comment.
fn skip_block_comment(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_outside_strings_are_folded() {
        let a = postgres_key("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;");
        let b = postgres_key("SELECT abalance FROM pgbench_accounts WHERE aid = 7;");
        assert_eq!(a, b);
        assert_eq!(
            postgres_key("select t1.c2 from t1 where x > 1.5e3 limit 10").as_deref(),
            Some("select t1.c2 from t1 where x > 0 limit 0")
        );
        assert_eq!(
            postgres_key("select $1, '12', \"c3\" -- 99\n, 4").as_deref(),
            Some("select $1, '12', \"c3\" -- 99\n, 0")
        );
    }

    #[test]
    fn uncertain_texts_are_keyed_exactly() {
        for sql in [
            "EXPLAIN (ANALYZE 0) DELETE FROM t",
            "select E'\\'' , 1",
            "select 'a\\', 1",
            "select $$ 1 $$",
            "select 'unterminated 1",
            "select /* open 1",
            "select U&'d\\0061t\\+000061', 1",
            "select tä, 1",
        ] {
            assert_eq!(postgres_key(sql), None, "{sql}");
        }
    }
}

#[cfg(test)]
mod soundness {
    use super::postgres_key;
    use crate::classify::Classifier;
    use warden_core::config::ClassifierConfig;
    use warden_core::request::Dialect;

    /// Every Postgres corpus statement whose key folds numbers classifies the
    /// same as its folded form (checked with fresh, separate caches).
    #[test]
    fn folding_numbers_never_changes_a_corpus_classification() {
        #[derive(serde::Deserialize)]
        struct Corpus {
            case: Vec<toml::Value>,
        }
        let corpus: Corpus =
            toml::from_str(include_str!("../../tests/corpus.toml")).expect("corpus parses");
        let mut folded = 0;
        for case in corpus.case {
            if case.get("dialect").and_then(|d| d.as_str()) != Some("postgres") {
                continue;
            }
            let Some(sql) = case.get("sql").and_then(|s| s.as_str()) else {
                continue;
            };
            let Some(key) = postgres_key(sql) else {
                continue;
            };
            if key == sql {
                continue;
            }
            folded += 1;
            let config = ClassifierConfig::default();
            let original = Classifier::new(&config).classify(Dialect::Postgres, sql);
            let normalized = Classifier::new(&config).classify(Dialect::Postgres, &key);
            assert_eq!(original.operation, normalized.operation, "{sql} vs {key}");
            assert_eq!(original.tables, normalized.tables, "{sql} vs {key}");
        }
        assert!(
            folded >= 10,
            "only {folded} corpus statements have numbers to fold"
        );
    }
}
