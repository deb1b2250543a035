//! `/sessions` and `/sessions/{id}`: the index and a session's replay
//! timeline, read from its recording (live sessions from the spool).
//! Approvers see every session, anyone else their own, as in the API.

use super::UiState;
use super::session::Reviewer;
use super::views::{self, ResultTable, TimelineEntry};
use crate::api::sessions::{SessionView, SessionVisibility};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use warden_core::events::EventKind;
use warden_recording::{Note, Recorded, RecordedEvent};
use warden_store::SessionFilter;

/// Sessions the list shows.
const LIST_LIMIT: u32 = 200;
/// Rows of a captured result the timeline shows.
const ROWS_SHOWN: usize = 50;

/// `GET /sessions`.
pub async fn list_page(State(state): State<UiState>, Reviewer(session): Reviewer) -> Response {
    let filter = SessionFilter {
        limit: LIST_LIMIT,
        target: None,
        open_only: false,
    };
    let rows = match state.store.list_sessions(&filter).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::error!(%error, "web UI: cannot list sessions");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the state database failed\n",
            )
                .into_response();
        }
    };
    let visible = SessionVisibility::of(&state.reviews, &session.identity);
    let views: Vec<SessionView> = rows
        .iter()
        .filter(|row| visible.allows(row))
        .map(SessionView::from)
        .collect();
    views::session_list(&session, &views).into_response()
}

/// `GET /sessions/{id}`.
pub async fn timeline_page(
    State(state): State<UiState>,
    Reviewer(session): Reviewer,
    Path(id): Path<String>,
) -> Response {
    let row = match state.store.get_session(&id).await {
        Ok(row) => row,
        Err(error) => {
            tracing::error!(%error, "web UI: cannot read a session");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the state database failed\n",
            )
                .into_response();
        }
    };
    let visible = SessionVisibility::of(&state.reviews, &session.identity);
    let Some(row) = row.filter(|row| visible.allows(row)) else {
        return (
            StatusCode::NOT_FOUND,
            views::not_found(&session, &format!("There is no session {id} you may see.")),
        )
            .into_response();
    };
    let view = SessionView::from(&row);
    let (entries, note) = match &state.recordings {
        None => (
            Vec::new(),
            Some("Recording is turned off on this node.".to_string()),
        ),
        Some(reader) => match reader.read(&row.id).await {
            Ok(recording) => {
                let note = (!recording.is_complete())
                    .then(|| "The recording has no end yet (the session is live, or Warden stopped during it).".to_string());
                (recording.events.iter().map(entry).collect(), note)
            }
            Err(error) => {
                tracing::warn!(session = %row.id, %error, "web UI: cannot read a recording");
                (
                    Vec::new(),
                    Some(format!("The recording cannot be read: {error}")),
                )
            }
        },
    };
    views::timeline(&session, Some(&view), &row.id, &entries, note.as_deref()).into_response()
}

/// One recorded event as a timeline entry.
fn entry(event: &RecordedEvent) -> TimelineEntry {
    let mut entry = TimelineEntry {
        offset_ms: event.offset_ms,
        kind: event.event.type_name().to_string(),
        title: String::new(),
        statement: None,
        details: Vec::new(),
        table: None,
    };
    match &event.event {
        Recorded::Event(kind) => match kind {
            EventKind::Start {
                identity,
                target,
                protocol,
                client_addr,
                upstream_user,
                ..
            } => {
                entry.title = format!(
                    "{} connected to {target} ({protocol}) from {client_addr} as {upstream_user}",
                    identity.display_name()
                );
            }
            EventKind::Statement {
                text,
                duration_ms,
                tags,
                rows,
                error_code,
                error_message,
                ..
            } => {
                entry.title = match (error_code, tags.is_empty()) {
                    (Some(code), _) => format!(
                        "failed with {code}: {}",
                        error_message.as_deref().unwrap_or("")
                    ),
                    (None, false) => tags.join(", "),
                    (None, true) => "done".into(),
                };
                entry.statement = Some(text.clone());
                let mut detail = format!("{duration_ms:.1} ms");
                if let Some(rows) = rows {
                    detail.push_str(&format!(", {rows} rows"));
                }
                entry.details.push(detail);
            }
            EventKind::Decision {
                text,
                operation,
                action,
                rule,
                tables,
                reason,
            } => {
                entry.title = format!(
                    "{action} {operation}{}",
                    rule.as_deref()
                        .map(|r| format!(" by policy \"{r}\""))
                        .unwrap_or_default()
                );
                entry.statement = Some(text.clone());
                if !tables.is_empty() {
                    entry.details.push(format!("tables: {}", tables.join(", ")));
                }
                entry.details.push(reason.clone());
            }
            EventKind::Result {
                columns,
                rows,
                truncated,
            } => {
                entry.title = format!("{} rows captured", rows.len());
                entry.table = Some(ResultTable {
                    columns: columns.clone(),
                    rows: rows.iter().take(ROWS_SHOWN).cloned().collect(),
                    truncated: *truncated || rows.len() > ROWS_SHOWN,
                });
            }
            EventKind::Masked {
                column,
                detector,
                count,
            } => {
                entry.title = format!("{count} values of {column} masked ({detector})");
            }
            EventKind::Lease {
                action,
                upstream_user,
                detail,
                ..
            } => {
                entry.title = format!("credential {action}: {upstream_user}");
                entry.details.push(detail.clone());
            }
            EventKind::Review {
                review_id,
                action,
                actor,
                comment,
            } => {
                // The actor of a timeout or cancel is "-": nobody.
                entry.title = match actor.as_str() {
                    "-" | "" => format!("review {}", action.replace('_', " ")),
                    _ => format!("review {} by {actor}", action.replace('_', " ")),
                };
                entry.details.push(format!("review {review_id}"));
                if let Some(comment) = comment {
                    entry.details.push(format!("comment: {comment}"));
                }
            }
            EventKind::End {
                bytes_from_client,
                bytes_to_client,
                statements,
                reason,
            } => {
                entry.title = format!("ended: {reason}");
                entry.details.push(format!(
                    "{statements} statements, {bytes_from_client} bytes in, {bytes_to_client} bytes out"
                ));
            }
        },
        Recorded::Note(Note::Dropped { count }) => {
            entry.title = format!("{count} events were dropped (the recorder fell behind)");
        }
        Recorded::Unknown(_) => {
            entry.title = "an event this version does not know".into();
        }
    }
    entry
}
