//! The pages, as maud templates (every interpolated value is escaped).

use super::UiState;
use super::highlight::highlight;
use super::session::UiSession;
use crate::api::reviews::ReviewView;
use crate::api::sessions::SessionView;
use axum::response::Html;
use maud::{DOCTYPE, Markup, html};

/// A whole page: head, navigation (when signed in) and `body`.
pub fn page(title: &str, session: Option<&UiSession>, body: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Warden" }
                link rel="stylesheet" href="/ui/style.css";
                script src="/ui/app.js" defer {}
            }
            body {
                header {
                    a.brand href="/reviews" { "Warden" }
                    @if let Some(session) = session {
                        nav {
                            a href="/reviews" { "Reviews" }
                            a href="/sessions" { "Sessions" }
                        }
                        div.who {
                            span #signed-in-as { (session.identity.display_name()) }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    Html(markup.into_string())
}

pub fn login(state: &UiState, next: &str, token: &str, error: Option<&str>) -> Html<String> {
    let body = html! {
        section.login {
            h1 { "Sign in to review" }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            @if let Some(oidc) = &state.oidc {
                a.button.primary #sso href={ "/auth/login?" (serde_urlencoded::to_string([("next", next)]).unwrap_or_default()) } {
                    (oidc.label)
                }
            }
            @if state.settings.access_key_login {
                form method="post" action="/login" #key-login {
                    input type="hidden" name="csrf" value=(token);
                    input type="hidden" name="next" value=(next);
                    label for="key" { "Warden access key" }
                    input #key type="password" name="key" autocomplete="off" placeholder="wdn_…" required;
                    button type="submit" #key-submit { "Sign in with key" }
                }
            }
            @if state.oidc.is_none() && !state.settings.access_key_login {
                p { "No way to sign in is configured: set [web.oidc] or [web] access_key_login = true." }
            }
        }
    };
    page("Sign in", None, body)
}

fn state_badge(state: &str) -> Markup {
    html! { span class={ "badge " (state) } data-state=(state) { (state.replace('_', " ")) } }
}

fn excerpt(text: &str, limit: usize) -> String {
    let mut out: String = text.chars().take(limit).collect();
    if text.chars().count() > limit {
        out.push('…');
    }
    out
}

fn review_summary(review: &ReviewView) -> String {
    match (review.kind.as_str(), &review.statement) {
        ("statement", Some(statement)) => excerpt(statement, 160),
        _ => format!(
            "access to {} for {}",
            review.target,
            review
                .duration_secs
                .map(|s| humantime::format_duration(std::time::Duration::from_secs(s)).to_string())
                .unwrap_or_default()
        ),
    }
}

/// One row of the pending list; app.js builds the same shape from the SSE feed.
fn review_row(review: &ReviewView) -> Markup {
    html! {
        tr data-review-id=(review.id) {
            td { a href={ "/reviews/" (review.id) } { code { (review_summary(review)) } } }
            td { (review.operation) }
            td { (review.target) }
            td { (review.requester) }
            td { time datetime=(review.expires_at) { (review.expires_at) } }
            td { @if review.can_decide { "you can decide" } @else { "waiting" } }
        }
    }
}

pub fn review_list(
    session: &UiSession,
    pending: &[ReviewView],
    recent: &[ReviewView],
) -> Html<String> {
    let body = html! {
        h1 { "Pending reviews " span #live.live { "connecting…" } }
        table.reviews {
            thead { tr { th { "Statement / request" } th { "Operation" } th { "Target" } th { "Requester" } th { "Expires" } th {} } }
            tbody #pending data-count=(pending.len()) {
                @for review in pending { (review_row(review)) }
            }
        }
        p.empty #none-pending hidden[!pending.is_empty()] { "Nothing is waiting for a review." }
        h2 { "Recently decided" }
        table.reviews {
            thead { tr { th { "Statement / request" } th { "State" } th { "Target" } th { "Requester" } th { "Decided by" } } }
            tbody {
                @for review in recent {
                    tr {
                        td { a href={ "/reviews/" (review.id) } { code { (review_summary(review)) } } }
                        td { (state_badge(&review.state)) }
                        td { (review.target) }
                        td { (review.requester) }
                        td { (review.decided_by.as_deref().unwrap_or("-")) }
                    }
                }
            }
        }
    };
    page("Reviews", Some(session), body)
}

pub fn review_page(session: &UiSession, review: &ReviewView, error: Option<&str>) -> Html<String> {
    let body = html! {
        article.review data-review-id=(review.id) data-state=(review.state) {
            h1 {
                @if review.kind == "statement" { "Held statement " } @else { "Access request " }
                (state_badge(&review.state))
            }
            @if let Some(error) = error {
                p.error role="alert" #decision-error { (error) }
            }
            @if let Some(statement) = &review.statement {
                pre.sql #statement { code { (highlight(statement)) } }
            }
            dl.facts {
                dt { "Classification" } dd #operation { span.op { (review.operation) } }
                dt { "Tables" } dd #tables {
                    @if review.tables.is_empty() { "-" }
                    @for table in &review.tables { code.table { (table) } " " }
                }
                dt { "Requester" } dd #requester { (review.requester) }
                dt { "Target" } dd #target { (review.target) }
                dt { "Policy" } dd #policy { (review.rule.as_deref().unwrap_or("-")) }
                @if let Some(reason) = &review.reason { dt { "Reason" } dd { (reason) } }
                @if let Some(secs) = review.duration_secs {
                    dt { "Access for" } dd { (humantime::format_duration(std::time::Duration::from_secs(secs))) }
                }
                dt { "Approvers" } dd { (review.approvers.join(", ")) " (" (review.min_approvals) " needed, scope: " (review.approval_scope) ")" }
                @if let Some(session_id) = &review.session_id {
                    dt { "Session" } dd { a href={ "/sessions/" (session_id) } { code { (session_id) } } }
                }
                dt { "Requested" } dd { (review.created_at) }
                dt { "Expires" } dd { (review.expires_at) }
                @if let Some(at) = &review.decided_at {
                    dt { "Decided" } dd #decided { (at) " by " (review.decided_by.as_deref().unwrap_or("-")) }
                }
                @if let Some(comment) = &review.decision_comment {
                    dt { "Comment" } dd #decision-comment { (comment) }
                }
                dt { "Review id" } dd { code { (review.id) } }
            }
            @if !review.votes.is_empty() {
                h2 { "Votes" }
                ul.votes {
                    @for vote in &review.votes {
                        li { (vote.reviewer) ": " @if vote.approve { "approve" } @else { "deny" }
                             @if let Some(comment) = &vote.comment { " — " (comment) } " (" (vote.at) ")" }
                    }
                }
            }
            @if review.can_decide {
                form.decide method="post" action={ "/reviews/" (review.id) "/decide" } {
                    input type="hidden" name="csrf" value=(session.csrf);
                    label for="comment" { "Comment (sent to the requester)" }
                    textarea #comment name="comment" rows="3" maxlength="2000" {}
                    div.actions {
                        button.approve #approve type="submit" name="decision" value="approve" { "Approve" }
                        button.deny #deny type="submit" name="decision" value="deny" { "Deny" }
                    }
                }
            } @else if review.state == "pending" {
                p.note { "You cannot decide this review (you asked for it, are not one of its approvers, or already voted)." }
            }
        }
    };
    page("Review", Some(session), body)
}

pub fn not_found(session: &UiSession, what: &str) -> Html<String> {
    page(
        "Not found",
        Some(session),
        html! { h1 { "Not found" } p { (what) } p { a href="/reviews" { "Back to the reviews" } } },
    )
}

pub fn session_list(session: &UiSession, sessions: &[SessionView]) -> Html<String> {
    let body = html! {
        h1 { "Sessions" }
        table.sessions {
            thead { tr { th { "Session" } th { "Who" } th { "Target" } th { "Started" } th { "Ended" } th { "Statements" } th { "End" } } }
            tbody {
                @for s in sessions {
                    tr {
                        td { a href={ "/sessions/" (s.id) } { code { (excerpt(&s.id, 13)) } } }
                        td { (s.identity) }
                        td { (s.target) " (" (s.protocol) ")" }
                        td { (s.started_at) }
                        td { @if let Some(at) = &s.ended_at { (at) } @else { span.badge.pending { "open" } } }
                        td.num { (s.statements) }
                        td { (s.end_reason.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    };
    page("Sessions", Some(session), body)
}

/// Rows of a captured result as the timeline shows them.
pub struct ResultTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    /// More rows were returned than are shown.
    pub truncated: bool,
}

/// One entry of a session's replay timeline.
pub struct TimelineEntry {
    pub offset_ms: f64,
    pub kind: String,
    pub title: String,
    pub statement: Option<String>,
    pub details: Vec<String>,
    pub table: Option<ResultTable>,
}

pub fn timeline(
    session: &UiSession,
    row: Option<&SessionView>,
    id: &str,
    entries: &[TimelineEntry],
    note: Option<&str>,
) -> Html<String> {
    let body = html! {
        h1 { "Session " code { (excerpt(id, 13)) } }
        @if let Some(s) = row {
            dl.facts {
                dt { "Who" } dd { (s.identity) }
                dt { "Target" } dd { (s.target) " (" (s.protocol) ")" }
                dt { "Client" } dd { (s.client_addr) @if s.client_tls { " (TLS)" } }
                dt { "Started" } dd { (s.started_at) }
                dt { "Ended" } dd { (s.ended_at.as_deref().unwrap_or("still open")) }
                dt { "Statements" } dd { (s.statements) }
            }
        }
        @if let Some(note) = note { p.note { (note) } }
        ol.timeline #timeline {
            @for entry in entries {
                li class={ "event " (entry.kind) } {
                    span.offset { "+" (format!("{:.3}", entry.offset_ms / 1000.0)) " s" }
                    span.kind { (entry.kind) }
                    span.title { (entry.title) }
                    @if let Some(statement) = &entry.statement {
                        pre.sql { code { (highlight(statement)) } }
                    }
                    @for detail in &entry.details { div.detail { (detail) } }
                    @if let Some(result) = &entry.table {
                        table.result {
                            thead { tr { @for c in &result.columns { th { (c) } } } }
                            tbody {
                                @for r in &result.rows {
                                    tr { @for v in r { td { @match v { Some(v) => (v), None => span.null { "NULL" } } } } }
                                }
                            }
                        }
                        @if result.truncated { div.detail { "(more rows were returned than recorded)" } }
                    }
                }
            }
        }
    };
    page("Session", Some(session), body)
}
