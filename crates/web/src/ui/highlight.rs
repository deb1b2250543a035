//! SQL syntax highlighting for the review page: a forgiving scanner (a
//! held statement may be anything, even unterminated) that splits text into
//! keywords, strings, numbers, comments, parameters and the rest. Output is
//! maud markup, so every piece is escaped.

use maud::{Markup, html};

/// The kind of a piece of SQL text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Keyword,
    String,
    Number,
    Comment,
    Parameter,
    Identifier,
    Other,
}

impl Kind {
    fn class(self) -> Option<&'static str> {
        match self {
            Kind::Keyword => Some("kw"),
            Kind::String => Some("str"),
            Kind::Number => Some("num"),
            Kind::Comment => Some("cm"),
            Kind::Parameter => Some("par"),
            Kind::Identifier | Kind::Other => None,
        }
    }
}

/// Reserved words worth highlighting (sorted, upper case): SQL's common
/// reserved words, not every word a parser knows (`name` and `id` are
/// usually columns).
const KEYWORDS: &[&str] = &[
    "ADD",
    "ALL",
    "ALTER",
    "ANALYZE",
    "AND",
    "ANY",
    "ARRAY",
    "AS",
    "ASC",
    "BEGIN",
    "BETWEEN",
    "BY",
    "CALL",
    "CASCADE",
    "CASE",
    "CAST",
    "CHECK",
    "CLUSTER",
    "COLLATE",
    "COLUMN",
    "COMMENT",
    "COMMIT",
    "CONFLICT",
    "CONSTRAINT",
    "COPY",
    "CREATE",
    "CROSS",
    "DATABASE",
    "DEALLOCATE",
    "DEFAULT",
    "DELETE",
    "DESC",
    "DISTINCT",
    "DO",
    "DOMAIN",
    "DROP",
    "ELSE",
    "END",
    "EXCEPT",
    "EXECUTE",
    "EXISTS",
    "EXPLAIN",
    "EXTENSION",
    "FALSE",
    "FETCH",
    "FILTER",
    "FIRST",
    "FOR",
    "FOREIGN",
    "FROM",
    "FULL",
    "FUNCTION",
    "GRANT",
    "GROUP",
    "HAVING",
    "IF",
    "IGNORE",
    "ILIKE",
    "IN",
    "INDEX",
    "INNER",
    "INSERT",
    "INTERSECT",
    "INTERVAL",
    "INTO",
    "IS",
    "JOIN",
    "KEY",
    "LATERAL",
    "LEFT",
    "LIKE",
    "LIMIT",
    "LOCK",
    "LOCKED",
    "MATERIALIZED",
    "MERGE",
    "NATURAL",
    "NEXT",
    "NOT",
    "NOTHING",
    "NOWAIT",
    "NULL",
    "NULLS",
    "OFFSET",
    "ON",
    "ONLY",
    "OR",
    "ORDER",
    "OUTER",
    "OVER",
    "OWNER",
    "PARTITION",
    "POLICY",
    "PREPARE",
    "PRIMARY",
    "PROCEDURE",
    "PUBLIC",
    "RECURSIVE",
    "REFERENCES",
    "REINDEX",
    "RENAME",
    "REPLACE",
    "RESTRICT",
    "RETURNING",
    "REVOKE",
    "RIGHT",
    "ROLE",
    "ROLLBACK",
    "ROW",
    "ROWS",
    "SAVEPOINT",
    "SCHEMA",
    "SECURITY",
    "SELECT",
    "SEQUENCE",
    "SET",
    "SHARE",
    "SHOW",
    "SIMILAR",
    "SKIP",
    "SOME",
    "START",
    "TABLE",
    "TEMP",
    "TEMPORARY",
    "THEN",
    "TO",
    "TRANSACTION",
    "TRIGGER",
    "TRUE",
    "TRUNCATE",
    "TYPE",
    "UNION",
    "UNIQUE",
    "UNLOGGED",
    "UPDATE",
    "USE",
    "USER",
    "USING",
    "VACUUM",
    "VALUES",
    "VIEW",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
    "WITHIN",
];

fn is_keyword(word: &str) -> bool {
    let upper = word.to_ascii_uppercase();
    KEYWORDS.binary_search(&upper.as_str()).is_ok()
}

/// Splits `sql` into (kind, text) pieces that concatenate back to `sql`.
pub fn tokens(sql: &str) -> Vec<(Kind, &str)> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let kind = match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = find_from(bytes, i, b"\n").unwrap_or(bytes.len());
                Kind::Comment
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = find_from(bytes, i + 2, b"*/").map_or(bytes.len(), |end| end + 2);
                Kind::Comment
            }
            quote @ (b'\'' | b'"' | b'`') => {
                i = closing_quote(bytes, i + 1, quote);
                if quote == b'\'' {
                    Kind::String
                } else {
                    Kind::Identifier
                }
            }
            b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                Kind::Parameter
            }
            b'?' => {
                i += 1;
                Kind::Parameter
            }
            b'0'..=b'9' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
                Kind::Number
            }
            b if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || bytes[i] == b'_'
                        || bytes[i] == b'$'
                        || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                if is_keyword(&sql[start..i]) {
                    Kind::Keyword
                } else {
                    Kind::Identifier
                }
            }
            _ => {
                i += 1;
                // Keep multi-byte characters whole (the arms above only
                // split at ASCII bytes).
                while i < bytes.len() && !sql.is_char_boundary(i) {
                    i += 1;
                }
                Kind::Other
            }
        };
        out.push((kind, &sql[start..i]));
    }
    out
}

fn find_from(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|at| from + at)
}

/// The index after the closing quote (a doubled quote is an escape), or the
/// end of the text when the quote is never closed.
fn closing_quote(bytes: &[u8], mut i: usize, quote: u8) -> usize {
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// The statement as highlighted markup (inside a `<pre>` by the caller).
pub fn highlight(sql: &str) -> Markup {
    html! {
        @for (kind, text) in tokens(sql) {
            @match kind.class() {
                Some(class) => span class=(class) { (text) },
                None => (text),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(Kind, String)> {
        tokens(sql)
            .into_iter()
            .filter(|(k, t)| !(*k == Kind::Other && t.trim().is_empty()))
            .map(|(k, t)| (k, t.to_string()))
            .collect()
    }

    #[test]
    fn pieces_concatenate_back_to_the_statement() {
        for sql in [
            "DELETE FROM items WHERE id = 2",
            "select 'it''s', \"Weird\"\"Name\", $1, ? -- trailing\n/* c */ 1.5e3",
            "select 'unterminated",
            "/* unterminated",
            "select 'ünïcödé' from \"tâble\" where x = '€'",
            "",
        ] {
            let joined: String = tokens(sql).into_iter().map(|(_, t)| t).collect();
            assert_eq!(joined, sql);
        }
    }

    #[test]
    fn kinds_are_recognized() {
        assert_eq!(
            kinds("DELETE FROM items WHERE name = 'a''b' AND id > $1 -- x"),
            vec![
                (Kind::Keyword, "DELETE".into()),
                (Kind::Keyword, "FROM".into()),
                (Kind::Identifier, "items".into()),
                (Kind::Keyword, "WHERE".into()),
                (Kind::Identifier, "name".into()),
                (Kind::Other, "=".into()),
                (Kind::String, "'a''b'".into()),
                (Kind::Keyword, "AND".into()),
                (Kind::Identifier, "id".into()),
                (Kind::Other, ">".into()),
                (Kind::Parameter, "$1".into()),
                (Kind::Comment, "-- x".into()),
            ]
        );
    }

    #[test]
    fn the_keyword_list_is_sorted_for_binary_search() {
        assert!(KEYWORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn markup_is_escaped() {
        let html = highlight("select '<script>alert(1)</script>'").into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains(r#"<span class="kw">select</span>"#), "{html}");
    }
}
