//! Views of the target's database, read once at session start from
//! `information_schema.VIEWS`: deny and review rules and column masking
//! follow a read of a view to the ruled tables it reads, and a read of a
//! view that calls a stored function is judged as that call. MariaDB and
//! MySQL store each definition with every table and stored function
//! written as `` `db`.`name` ``, which is what is read here.

use crate::upstream::{Upstream, UpstreamError};
use std::collections::{HashMap, HashSet};
use warden_core::request::{DerivedRelation, ViewFunction};

/// `(schema, table)`, as a view definition names it.
type Name = (String, String);

/// One view: its schema, its name, the names it reads and the stored
/// functions it calls.
struct View {
    schema: String,
    name: String,
    reads: Vec<Name>,
    calls: Vec<Name>,
}

/// Most views looked at; a database with more fails the session rather than
/// judging with a partial list.
const MAX_VIEWS: usize = 10_000;

/// The views of the session's database that read (directly or through other
/// views) a table named by `patterns` (lowercase, `*` and `?` wildcards),
/// and, unless the session is read-only (the server's own wall stops their
/// writes then), those that call stored functions.
pub async fn read(
    upstream: &mut Upstream,
    patterns: &[String],
    read_only: bool,
) -> Result<(Vec<DerivedRelation>, Vec<ViewFunction>), UpstreamError> {
    if patterns.is_empty() && read_only {
        return Ok((Vec::new(), Vec::new()));
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
            Ok([schema, name, definition]) => {
                let (reads, mut calls) = tables_in(&definition);
                for call in &mut calls {
                    if call.0.is_empty() {
                        call.0.clone_from(&schema);
                    }
                }
                Some(View {
                    schema,
                    name,
                    reads,
                    calls,
                })
            }
            Err(_) => None,
        })
        .collect();
    let functions = if read_only {
        Vec::new()
    } else {
        calling_functions(&views)
    };
    Ok((reading_ruled(&views, patterns), functions))
}

fn key(schema: &str, name: &str) -> Name {
    (schema.to_lowercase(), name.to_lowercase())
}

/// Every name a view reads, through the views it reads, with each view
/// met on the way.
fn closure<'v>(views: &'v [View], view: &'v View) -> (Vec<Name>, Vec<&'v View>) {
    let by_name: HashMap<Name, &View> =
        views.iter().map(|v| (key(&v.schema, &v.name), v)).collect();
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    let mut met = vec![view];
    let mut stack: Vec<Name> = view.reads.clone();
    while let Some((schema, name)) = stack.pop() {
        if !seen.insert(key(&schema, &name)) {
            continue;
        }
        if let Some(inner) = by_name.get(&key(&schema, &name)) {
            stack.extend(inner.reads.iter().cloned());
            met.push(inner);
        }
        names.push((schema, name));
    }
    (names, met)
}

/// Each view's transitive sources that match a pattern.
fn reading_ruled(views: &[View], patterns: &[String]) -> Vec<DerivedRelation> {
    let mut out = Vec::new();
    if patterns.is_empty() {
        return out;
    }
    for view in views {
        for (source_schema, source) in closure(views, view).0 {
            if patterns
                .iter()
                .any(|p| glob_match(p, &source.to_lowercase()))
            {
                out.push(DerivedRelation {
                    schema: view.schema.clone(),
                    name: view.name.clone(),
                    source_schema,
                    source,
                });
            }
        }
    }
    out
}

/// Each view's stored function calls, its own and those of the views it reads.
fn calling_functions(views: &[View]) -> Vec<ViewFunction> {
    let mut out = Vec::new();
    for view in views {
        for inner in closure(views, view).1 {
            for (function_schema, function) in &inner.calls {
                out.push(ViewFunction {
                    schema: view.schema.clone(),
                    view: view.name.clone(),
                    function_schema: function_schema.clone(),
                    function: function.clone(),
                });
            }
        }
    }
    out
}

/// The `` `db`.`table` `` pairs of a stored view definition: the first two
/// parts of every backquoted dotted name (`` `db`.`t`.`col` `` names a
/// column of `db`.`t`). Quoted strings are skipped.
fn tables_in(definition: &str) -> (Vec<Name>, Vec<Name>) {
    let bytes = definition.as_bytes();
    let mut out: Vec<Name> = Vec::new();
    let mut calls: Vec<Name> = Vec::new();
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
                if let [function] = parts.as_slice()
                    && next_code_byte(bytes, at) == Some(b'(')
                {
                    // A function of the view's own database: `` `f`( ``.
                    let call = (String::new(), function.clone());
                    if !calls.contains(&call) {
                        calls.push(call);
                    }
                } else if let [db, table, ..] = parts.as_slice() {
                    // `` `db`.`f`( `` is a stored function call.
                    let call = parts.len() == 2 && next_code_byte(bytes, at) == Some(b'(');
                    let pair = (db.clone(), table.clone());
                    let list = if call { &mut calls } else { &mut out };
                    if !list.contains(&pair) {
                        list.push(pair);
                    }
                }
                i = at.max(i + 1);
            }
            _ => i += 1,
        }
    }
    (out, calls)
}

/// The first byte at or after `at` that is not white space.
fn next_code_byte(bytes: &[u8], at: usize) -> Option<u8> {
    bytes
        .get(at..)?
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
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
            tables_in(definition).0,
            vec![
                ("orders".to_string(), "secrets".to_string()),
                ("orders".to_string(), "v_mid".to_string())
            ]
        );
        let view = |name: &str, reads: &[&str], calls: &[&str]| View {
            schema: "orders".into(),
            name: name.into(),
            reads: reads
                .iter()
                .map(|r| ("orders".to_string(), r.to_string()))
                .collect(),
            calls: calls
                .iter()
                .map(|c| ("orders".to_string(), c.to_string()))
                .collect(),
        };
        let views = vec![
            view("v_mid", &["hidden"], &[]),
            view("v_top", &["v_mid"], &[]),
            view("v_other", &["items"], &[]),
            view("v_del", &[], &["del_items"]),
            view("v_outer", &["v_del"], &[]),
        ];
        let found = reading_ruled(&views, &["hid*".to_string()]);
        let names: Vec<&str> = found.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, vec!["v_mid", "v_top"]);
        assert!(found.iter().all(|d| d.source == "hidden"));
        let calls = calling_functions(&views);
        let names: Vec<&str> = calls.iter().map(|c| c.view.as_str()).collect();
        assert_eq!(names, vec!["v_del", "v_outer"]);
        assert_eq!(
            tables_in("select `orders`.`del_items`() AS `x`, `f` (1) from `orders`.`t`"),
            (
                vec![("orders".to_string(), "t".to_string())],
                vec![
                    ("orders".to_string(), "del_items".to_string()),
                    (String::new(), "f".to_string())
                ]
            )
        );
        assert!(glob_match("a?c*", "abcdef") && !glob_match("abc", "abcd"));
    }
}
