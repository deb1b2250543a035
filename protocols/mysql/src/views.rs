//! Views of the target's database that read ruled tables, read once at
//! session start from `information_schema.VIEWS`: deny and review rules and
//! column masking follow a read of such a view to the tables it reads.
//! MariaDB and MySQL store each definition with every table written as
//! `` `db`.`table` ``, which is what is read here.

use crate::upstream::{Upstream, UpstreamError};
use std::collections::{HashMap, HashSet};
use warden_core::request::DerivedRelation;

/// `(schema, table)`, as a view definition names it.
type Name = (String, String);

/// One view: its schema, its name and the names its definition reads.
type View = (String, String, Vec<Name>);

/// Most views looked at; a database with more fails the session rather than
/// judging with a partial list.
const MAX_VIEWS: usize = 10_000;

/// The views of the session's database that read (directly or through other
/// views) a table named by `patterns` (lowercase, `*` and `?` wildcards).
pub async fn derived_views(
    upstream: &mut Upstream,
    patterns: &[String],
) -> Result<Vec<DerivedRelation>, UpstreamError> {
    if patterns.is_empty() {
        return Ok(Vec::new());
    }
    let rows = upstream
        .text_rows(
            "SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS \
             WHERE TABLE_SCHEMA = DATABASE()",
            3,
        )
        .await?;
    if rows.len() > MAX_VIEWS {
        return Err(UpstreamError::Protocol(format!(
            "more than {MAX_VIEWS} views in the target's database"
        )));
    }
    let views: Vec<View> = rows
        .into_iter()
        .filter_map(|row| match <[String; 3]>::try_from(row) {
            Ok([schema, name, definition]) => Some((schema, name, tables_in(&definition))),
            Err(_) => None,
        })
        .collect();
    Ok(reading_ruled(&views, patterns))
}

/// Each view's transitive sources that match a pattern.
fn reading_ruled(views: &[View], patterns: &[String]) -> Vec<DerivedRelation> {
    let key = |schema: &str, name: &str| (schema.to_lowercase(), name.to_lowercase());
    let by_name: HashMap<(String, String), &Vec<(String, String)>> = views
        .iter()
        .map(|(schema, name, tables)| (key(schema, name), tables))
        .collect();
    let mut out = Vec::new();
    for (schema, name, tables) in views {
        let mut seen = HashSet::new();
        let mut stack: Vec<(String, String)> = tables.clone();
        while let Some((source_schema, source)) = stack.pop() {
            if !seen.insert(key(&source_schema, &source)) {
                continue;
            }
            if let Some(inner) = by_name.get(&key(&source_schema, &source)) {
                stack.extend(inner.iter().cloned());
            }
            if patterns
                .iter()
                .any(|p| glob_match(p, &source.to_lowercase()))
            {
                out.push(DerivedRelation {
                    schema: schema.clone(),
                    name: name.clone(),
                    source_schema,
                    source,
                });
            }
        }
    }
    out
}

/// The `` `db`.`table` `` pairs of a stored view definition: the first two
/// parts of every backquoted dotted name (`` `db`.`t`.`col` `` names a
/// column of `db`.`t`). Quoted strings are skipped.
fn tables_in(definition: &str) -> Vec<(String, String)> {
    let bytes = definition.as_bytes();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => i = skip_string(bytes, i),
            b'`' => {
                let mut parts = Vec::new();
                let mut at = i;
                while let Some((part, next)) = backquoted(bytes, at) {
                    parts.push(part);
                    at = next;
                    if bytes.get(at) == Some(&b'.') && bytes.get(at + 1) == Some(&b'`') {
                        at += 1;
                    } else {
                        break;
                    }
                }
                if let [db, table, ..] = parts.as_slice() {
                    let pair = (db.clone(), table.clone());
                    if !out.contains(&pair) {
                        out.push(pair);
                    }
                }
                i = at.max(i + 1);
            }
            _ => i += 1,
        }
    }
    out
}

/// A backquoted name at `at` (`` `` `` doubles a backquote) and the index
/// after it.
fn backquoted(bytes: &[u8], at: usize) -> Option<(String, usize)> {
    if bytes.get(at) != Some(&b'`') {
        return None;
    }
    let mut name = Vec::new();
    let mut i = at + 1;
    loop {
        match bytes.get(i)? {
            b'`' if bytes.get(i + 1) == Some(&b'`') => {
                name.push(b'`');
                i += 2;
            }
            b'`' => return Some((String::from_utf8_lossy(&name).into_owned(), i + 1)),
            &b => {
                name.push(b);
                i += 1;
            }
        }
    }
}

/// The index after the quoted string starting at `at`.
fn skip_string(bytes: &[u8], at: usize) -> usize {
    let quote = bytes[at];
    let mut i = at + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// `*` and `?` wildcards over a lowercase name.
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stored_definitions() {
        let definition = "select `orders`.`secrets`.`code` AS `code`,'`x`.`y`' AS `s` \
                          from (`orders`.`secrets` join `orders`.`v_mid` `m`)";
        assert_eq!(
            tables_in(definition),
            vec![
                ("orders".to_string(), "secrets".to_string()),
                ("orders".to_string(), "v_mid".to_string())
            ]
        );
        let views = vec![
            (
                "orders".into(),
                "v_mid".into(),
                vec![("orders".into(), "hidden".into())],
            ),
            (
                "orders".into(),
                "v_top".into(),
                vec![("orders".into(), "v_mid".into())],
            ),
            (
                "orders".into(),
                "v_other".into(),
                vec![("orders".into(), "items".into())],
            ),
        ];
        let found = reading_ruled(&views, &["hid*".to_string()]);
        let names: Vec<&str> = found.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, vec!["v_mid", "v_top"]);
        assert!(found.iter().all(|d| d.source == "hidden"));
        assert!(glob_match("a?c*", "abcdef") && !glob_match("abc", "abcd"));
    }
}
