//! MySQL and MariaDB statements that sqlparser does not parse but real
//! clients send (mysqldump, Connector/J, the `mariadb` client): judged from
//! their leading words, with any embedded statement or expression judged by
//! the full classifier, so nothing runs unjudged.

use super::mysql::{absorb, table_ref};
use super::mysql_lex::{Piece, pieces, words};
use super::{Classifier, StatementClass};
use warden_core::Operation::{Admin, Ddl, Read, Write};

/// What a statement is, by its first words, when it is one of the forms
/// below; `None` sends it on to sqlparser.
pub(super) fn before_parse(
    classifier: &Classifier,
    text: &str,
    head: &[&str],
    depth: usize,
) -> Option<Vec<StatementClass>> {
    match head {
        // MariaDB: `SET STATEMENT var = value[, …] FOR statement`.
        ["SET", "STATEMENT", ..] => Some(vec![set_statement(classifier, text, depth)]),
        // `EXPLAIN EXTENDED|PARTITIONS stmt` plans like `EXPLAIN stmt`.
        [
            "EXPLAIN" | "DESCRIBE" | "DESC",
            "EXTENDED" | "PARTITIONS",
            ..,
        ] => {
            let (_, rest) = split_at_word(text, head[1])?;
            let mut classes = nested(classifier, &format!("EXPLAIN {rest}"), depth);
            for class in &mut classes {
                class.kind = format!("EXPLAIN {}", head[1]);
            }
            Some(classes)
        }
        _ => None,
    }
}

/// What a statement sqlparser could not parse is, when its words say so.
pub(super) fn after_parse_error(
    classifier: &Classifier,
    text: &str,
    depth: usize,
) -> Option<StatementClass> {
    let all = words(text, usize::MAX);
    let head: Vec<&str> = all.iter().map(String::as_str).collect();
    match head.as_slice() {
        ["SHOW", ..] => Some(show(classifier, text, &head, depth)),
        // `START TRANSACTION WITH CONSISTENT SNAPSHOT[, READ ONLY|WRITE]`
        // (mysqldump --single-transaction), which sqlparser does not take.
        ["START", "TRANSACTION", modes @ ..] => start_transaction(modes),
        // mysqldump's `/*!40000 ALTER TABLE t DISABLE KEYS */`.
        // (The lexer drops quoted names from the words, hence the length.)
        ["ALTER", "TABLE", .., verb @ ("DISABLE" | "ENABLE"), "KEYS"] if head.len() <= 5 => {
            let (_, rest) = split_at_word(text, "TABLE")?;
            let (name, _) = split_at_word(rest, verb)?;
            let name = name.trim().replace('`', "");
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '.'));
            if !plain {
                return None;
            }
            let mut class = StatementClass::new(Ddl, format!("ALTER TABLE {verb} KEYS"));
            class.tables.push(super::mysql::table_ref(&name));
            Some(class)
        }
        ["OPTIMIZE" | "CHECK" | "REPAIR" | "ANALYZE", ..] if head.contains(&"TABLE") => {
            Some(maintenance(text, head[0]))
        }
        [verb @ ("CREATE" | "ALTER" | "DROP"), rest @ ..] => {
            let object = stored_program(rest)?;
            let mut class = StatementClass::new(Ddl, format!("{verb} {object}"));
            if object == "EVENT" && *verb != "DROP" {
                // The scheduler runs an event's body by itself, with nobody
                // judging it then: a body that does more than read is admin.
                let body =
                    split_at_word(text, "DO").map(|(_, body)| nested(classifier, body, depth));
                let reads_only = body
                    .as_ref()
                    .is_some_and(|b| b.iter().all(|c| c.operation == Read && c.refusal.is_none()));
                if !reads_only {
                    class.raise(
                        Admin,
                        "the event's body runs on its schedule, unjudged, and does more than read",
                    );
                }
            } else {
                class.reasons.push(format!(
                    "defines a stored {} (its body runs only when it is called or fires)",
                    object.to_ascii_lowercase()
                ));
            }
            Some(class)
        }
        _ => None,
    }
}

/// `PROCEDURE`, `FUNCTION`, `TRIGGER` or `EVENT` after `CREATE`/`ALTER`/`DROP`
/// and its optional `OR REPLACE`, `DEFINER = user@host`, `AGGREGATE`,
/// `IF [NOT] EXISTS` words.
fn stored_program(rest: &[&str]) -> Option<&'static str> {
    let mut words = rest.iter().peekable();
    while let Some(word) = words.next() {
        match *word {
            "PROCEDURE" => return Some("PROCEDURE"),
            "FUNCTION" => return Some("FUNCTION"),
            "TRIGGER" => return Some("TRIGGER"),
            "EVENT" => return Some("EVENT"),
            // `DEFINER = name@host` (quotes are skipped by the lexer, so the
            // user and host may be gone or be bare words).
            "DEFINER" => {
                if words.peek().is_some_and(|w| !is_program_word(w)) {
                    words.next();
                }
            }
            "OR" | "REPLACE" | "AGGREGATE" | "IF" | "NOT" | "EXISTS" | "CURRENT_USER" => {}
            "SQL" | "SECURITY" | "INVOKER" => {}
            other if other.starts_with('@') => {}
            _ => return None,
        }
    }
    None
}

/// `OPTIMIZE|CHECK|REPAIR|ANALYZE [NO_WRITE_TO_BINLOG | LOCAL] TABLE a, b`:
/// maintenance of named tables is an owner's job (ddl), as in PostgreSQL.
/// Every name must be read, or table rules could be passed by.
fn maintenance(text: &str, verb: &str) -> StatementClass {
    let mut class = StatementClass::new(Ddl, format!("{verb} TABLE"));
    let Some((_, list)) = split_at_word(text, "TABLE") else {
        return StatementClass::unknown("table maintenance without TABLE");
    };
    for name in list.split(',') {
        let Some(name) = plain_name(name) else {
            return StatementClass::unknown(format!(
                "{verb} TABLE with options or names Warden cannot read"
            ));
        };
        class.tables.push(table_ref(&name));
    }
    class
}

/// A table name of letters, digits, `_`, `$` and `.` (backquotes dropped);
/// `None` for anything else (options, expressions, odd quoting).
fn plain_name(text: &str) -> Option<String> {
    let name = text.trim().replace('`', "");
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '.'));
    plain.then_some(name)
}

fn is_program_word(word: &str) -> bool {
    matches!(
        word,
        "PROCEDURE" | "FUNCTION" | "TRIGGER" | "EVENT" | "AGGREGATE"
    )
}

/// `SHOW …` forms sqlparser lacks (`FUNCTION STATUS`, `TRIGGERS`, `CREATE
/// TRIGGER`, `TABLE STATUS` …) only read; a `WHERE` condition is an
/// expression that may call functions, judged as in a SELECT.
fn show(classifier: &Classifier, text: &str, head: &[&str], depth: usize) -> StatementClass {
    let kind = head.iter().take(3).copied().collect::<Vec<_>>().join(" ");
    let mut class = StatementClass::new(Read, kind);
    if let Some((_, condition)) = split_at_word(text, "WHERE") {
        let judged = nested(
            classifier,
            &format!("SELECT 1 FROM DUAL WHERE {condition}"),
            depth,
        );
        let kind = class.kind.clone();
        for inner in judged {
            absorb(&mut class, inner);
        }
        class.kind = kind;
    }
    class
}

/// `SET STATEMENT assignments FOR statement`: the assignments judged as a
/// `SET` (a lexing variable among them is refused as there), the statement
/// as itself; the stricter of the two wins.
fn set_statement(classifier: &Classifier, text: &str, depth: usize) -> StatementClass {
    let Some((assignments, statement)) = split_at_word(text, "FOR") else {
        return StatementClass::unknown("SET STATEMENT without FOR");
    };
    let Some((_, assignments)) = split_at_word(assignments, "STATEMENT") else {
        return StatementClass::unknown("SET STATEMENT without assignments");
    };
    let mut classes = nested(classifier, &format!("SET {assignments}"), depth);
    classes.extend(nested(classifier, statement, depth));
    let mut class = StatementClass::new(Read, "SET STATEMENT … FOR");
    for inner in classes {
        absorb(&mut class, inner);
    }
    if class.kind != "SET STATEMENT … FOR" {
        class.kind = format!("SET STATEMENT … FOR {}", class.kind);
    }
    class
}

fn nested(classifier: &Classifier, text: &str, depth: usize) -> Vec<StatementClass> {
    if depth > 4 {
        return vec![StatementClass::unknown("statement nested too deeply")];
    }
    super::mysql::classify_text(classifier, text, depth + 1)
}

/// The text before and after the first bare (unquoted, uncommented) word
/// `word` (uppercase), without the word itself.
fn split_at_word<'a>(sql: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    for (piece, from, to) in pieces(sql) {
        if piece != Piece::Code {
            continue;
        }
        let code = sql.get(from..to).unwrap_or_default();
        let mut offset = 0;
        for part in code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '@' || c == '$'))
        {
            if part.eq_ignore_ascii_case(word) {
                let at = from + offset;
                return Some((sql.get(..at)?, sql.get(at + part.len()..)?));
            }
            offset += part.len()
                + code
                    .get(offset + part.len()..)?
                    .chars()
                    .next()
                    .map_or(0, char::len_utf8);
        }
    }
    None
}

/// `START TRANSACTION` followed by its modes as words (the word list has no
/// commas); `READ WRITE` lifts
/// the read-only wall, so it is a write. Any other word: not judged here.
fn start_transaction(modes: &[&str]) -> Option<StatementClass> {
    let mut class = StatementClass::new(Read, "transaction control");
    let mut rest = modes;
    loop {
        rest = match rest {
            [] => return Some(class),
            ["WITH", "CONSISTENT", "SNAPSHOT", tail @ ..] | ["READ", "ONLY", tail @ ..] => tail,
            ["READ", "WRITE", tail @ ..] => {
                class.raise(
                    Write,
                    "READ WRITE lifts the session's read-only transaction mode",
                );
                tail
            }
            _ => return None,
        };
    }
}
