//! The human timeline `warden replay ID` prints, at once or paced.
//!
//! Statement texts and messages come from clients and servers: control
//! characters are escaped so a recording cannot drive the reader's terminal.

use crate::line::{Note, Recorded, RecordedEvent};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;
use warden_core::IdentityKind;
use warden_core::events::EventKind;

use warden_core::request::StatementProtocol;
/// Writes one line per event, then a note when the `end` event is missing.
pub fn render_timeline(events: &[RecordedEvent], out: &mut impl Write) -> io::Result<()> {
    for event in events {
        render_event(event, out)?;
    }
    render_footer(events, out)
}

/// Like [`render_timeline`], sleeping between events as long as they were
/// apart in the session, divided by `speed` (2.0 = twice as fast). A
/// `speed` of 0, below 0, not finite or above 1e6 means no pacing.
pub async fn replay_paced(
    events: &[RecordedEvent],
    speed: f64,
    out: &mut (impl Write + Send),
) -> io::Result<()> {
    let paced = speed.is_finite() && speed > 0.0 && speed <= 1e6;
    let mut previous: Option<f64> = None;
    for event in events {
        if paced && let Some(previous) = previous {
            let gap_ms = (event.offset_ms - previous) / speed;
            if gap_ms.is_finite() && gap_ms > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(gap_ms / 1000.0)).await;
            }
        }
        previous = Some(event.offset_ms);
        render_event(event, out)?;
        out.flush()?;
    }
    render_footer(events, out)?;
    out.flush()
}

fn render_footer(events: &[RecordedEvent], out: &mut impl Write) -> io::Result<()> {
    if !events
        .iter()
        .any(|e| matches!(e.event, Recorded::Event(EventKind::End { .. })))
    {
        writeln!(
            out,
            "(no end event: the session is still open, or Warden stopped before it ended)"
        )?;
    }
    Ok(())
}

/// Writes one event as one line: `+SECONDS  TYPE  details`.
pub fn render_event(event: &RecordedEvent, out: &mut impl Write) -> io::Result<()> {
    let mut line = format!("+{:>10.3}s  ", event.offset_ms / 1000.0);
    match &event.event {
        Recorded::Event(kind) => describe(kind, event, &mut line),
        Recorded::Note(Note::Dropped { count }) => {
            let _ = write!(
                line,
                "dropped    {count} event(s) lost: the recorder could not keep up"
            );
        }
        Recorded::Unknown(_) => {
            let _ = write!(
                line,
                "{:<10} (event type unknown to this Warden)",
                clean(event.event.type_name())
            );
        }
    }
    writeln!(out, "{line}")
}

fn describe(kind: &EventKind, event: &RecordedEvent, line: &mut String) {
    match kind {
        EventKind::Start {
            identity,
            target,
            protocol,
            client_addr,
            client_tls,
            upstream_user,
        } => {
            let how = match &identity.kind {
                IdentityKind::Oidc { issuer } => format!("oidc {}", clean(issuer)),
                IdentityKind::AccessKey { key_id, .. } => format!("access key {}", clean(key_id)),
            };
            let _ = write!(
                line,
                "start      {at}  {who} ({how}; groups: {groups})  target {target} ({protocol})  \
                 client {client_addr} tls={tls}  upstream user {user}",
                at = crate::line::At(event.at).text(),
                who = clean(&identity.display_name()),
                groups = if identity.groups.is_empty() {
                    "-".to_string()
                } else {
                    clean(&identity.groups.join(","))
                },
                target = clean(target),
                tls = if *client_tls { "yes" } else { "no" },
                user = clean(upstream_user),
            );
        }
        EventKind::Statement {
            text,
            protocol,
            duration_ms,
            tags,
            rows,
            error_code,
            error_message,
        } => {
            let protocol = match protocol {
                StatementProtocol::Simple => "simple",
                StatementProtocol::Extended => "extended",
                StatementProtocol::FunctionCall => "function-call",
            };
            let _ = write!(
                line,
                "statement  {duration_ms:>8.3} ms  {protocol:<8}  {}  => ",
                clean(text)
            );
            if error_code.is_some() || error_message.is_some() {
                let _ = write!(
                    line,
                    "ERROR {}: {}",
                    clean(error_code.as_deref().unwrap_or("?")),
                    clean(error_message.as_deref().unwrap_or(""))
                );
            } else {
                let mut parts: Vec<String> = tags.iter().map(|t| clean(t)).collect();
                if let Some(rows) = rows {
                    parts.push(format!("{rows} row(s)"));
                }
                if parts.is_empty() {
                    parts.push("ok".into());
                }
                line.push_str(&parts.join(", "));
            }
        }
        EventKind::Decision {
            text,
            operation,
            action,
            rule,
            tables,
            reason,
        } => {
            let _ = write!(
                line,
                "decision   {action} {operation} by {rule}",
                rule = rule
                    .as_deref()
                    .map(|r| format!("rule {:?}", clean(r)))
                    .unwrap_or_else(|| "(no matching rule)".into())
            );
            if !tables.is_empty() {
                let _ = write!(line, "  tables {}", clean(&tables.join(",")));
            }
            let _ = write!(line, "  {}", clean(text));
            if !reason.is_empty() {
                let _ = write!(line, "  ({})", clean(reason));
            }
        }
        EventKind::Result {
            columns,
            rows,
            truncated,
        } => {
            let _ = write!(
                line,
                "result     {} column(s), {} row(s) captured{}",
                columns.len(),
                rows.len(),
                if *truncated {
                    " (more rows were returned than captured)"
                } else {
                    ""
                }
            );
            for table_line in psql_table(columns, rows) {
                let _ = write!(line, "\n{TABLE_INDENT}{table_line}");
            }
        }
        EventKind::Masked {
            column,
            detector,
            count,
        } => {
            let _ = write!(
                line,
                "masked     column {} by {}: {count} value(s)",
                clean(column),
                clean(detector)
            );
        }
        EventKind::Lease {
            lease_id,
            action,
            upstream_user,
            detail,
        } => {
            let _ = write!(
                line,
                "lease      {} {} (upstream user {}) {}",
                clean(action),
                clean(lease_id),
                clean(upstream_user),
                clean(detail)
            );
        }
        EventKind::Review {
            review_id,
            action,
            actor,
            comment,
        } => {
            let _ = write!(
                line,
                "review     {} {} by {}{}",
                clean(review_id),
                clean(action),
                clean(actor),
                comment
                    .as_deref()
                    .map(|c| format!(": {}", clean(c)))
                    .unwrap_or_default()
            );
        }
        EventKind::End {
            bytes_from_client,
            bytes_to_client,
            statements,
            reason,
        } => {
            let _ = write!(
                line,
                "end        {reason}: {statements} statement(s), {bytes_from_client} bytes from \
                 client, {bytes_to_client} bytes to client",
                reason = clean(reason),
            );
        }
    }
}

/// Result tables start under the event text.
const TABLE_INDENT: &str = "              ";
/// Longer cells are cut (with `…`) to keep tables readable.
const MAX_CELL: usize = 200;

/// A result as `psql` prints it: centred headers, `-+-` rule, numbers
/// right-aligned, text left-aligned, `(N rows)`. NULL is shown as `NULL`.
fn psql_table(columns: &[String], rows: &[Vec<Option<String>>]) -> Vec<String> {
    let cell = |text: &str| {
        let cleaned = clean(text);
        if cleaned.chars().count() > MAX_CELL {
            let mut cut: String = cleaned.chars().take(MAX_CELL - 1).collect();
            cut.push('…');
            cut
        } else {
            cleaned
        }
    };
    let width_of = |s: &str| s.chars().count();
    let ncols = columns
        .len()
        .max(rows.iter().map(Vec::len).max().unwrap_or(0));
    let headers: Vec<String> = (0..ncols)
        .map(|i| columns.get(i).map_or_else(String::new, |c| cell(c)))
        .collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            (0..ncols)
                .map(|i| match row.get(i) {
                    Some(Some(value)) => cell(value),
                    Some(None) => "NULL".to_string(),
                    None => String::new(),
                })
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| width_of(h)).collect();
    for row in &body {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(width_of(c));
        }
    }
    let numeric: Vec<bool> = (0..ncols)
        .map(|i| {
            body.iter().all(|row| {
                let c = &row[i];
                c == "NULL" || c.is_empty() || c.parse::<f64>().is_ok()
            }) && body.iter().any(|row| row[i].parse::<f64>().is_ok())
        })
        .collect();
    let mut out = Vec::with_capacity(rows.len() + 3);
    if ncols > 0 {
        let header: Vec<String> = headers
            .iter()
            .zip(&widths)
            .map(|(h, w)| {
                let pad = w - width_of(h);
                format!("{}{h}{}", " ".repeat(pad / 2), " ".repeat(pad - pad / 2))
            })
            .collect();
        out.push(format!(" {} ", header.join(" | ")).trim_end().to_string());
        out.push(
            widths
                .iter()
                .map(|w| "-".repeat(w + 2))
                .collect::<Vec<_>>()
                .join("+"),
        );
        for row in &body {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .zip(&numeric)
                .map(|((c, w), num)| {
                    let pad = " ".repeat(w - width_of(c));
                    if *num {
                        format!("{pad}{c}")
                    } else {
                        format!("{c}{pad}")
                    }
                })
                .collect();
            out.push(format!(" {} ", cells.join(" | ")).trim_end().to_string());
        }
    }
    out.push(match rows.len() {
        1 => "(1 row)".to_string(),
        n => format!("({n} rows)"),
    });
    out
}

/// Escapes control characters (newlines, tabs, ESC …) so the text stays on
/// one line and cannot send terminal escape sequences.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{clean, psql_table};

    #[test]
    fn results_render_like_psql() {
        let columns = vec!["id".to_string(), "name".to_string()];
        let rows = vec![
            vec![Some("1".to_string()), Some("alice".to_string())],
            vec![Some("10".to_string()), None],
        ];
        assert_eq!(
            psql_table(&columns, &rows),
            [
                " id | name",
                "----+-------",
                "  1 | alice",
                " 10 | NULL",
                "(2 rows)"
            ]
        );
        assert_eq!(
            psql_table(&columns, &[]),
            [" id | name", "----+------", "(0 rows)"]
        );
        let evil = vec![vec![Some("a\nb\u{1b}[2J".to_string())]];
        let table = psql_table(&["x".to_string()], &evil);
        assert!(
            table
                .iter()
                .all(|l| !l.contains('\n') && !l.contains('\u{1b}'))
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("SELECT 1;\nSELECT\t2"), "SELECT 1;\\nSELECT\\t2");
        assert_eq!(clean("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(clean("naïve – ok"), "naïve – ok");
    }
}
