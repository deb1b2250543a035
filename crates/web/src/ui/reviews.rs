//! `/reviews`, `/reviews/events` (SSE), `/reviews/{id}` and its decision.

use super::UiState;
use super::session::{Reviewer, UiSession, check_csrf, check_same_origin};
use super::views;
use crate::api::reviews::{ReviewView, visible_reviews};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures::Stream;
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use warden_core::review_store::ReviewState;
use warden_reviews::{ReviewError, ReviewService};

/// Most reviews a list shows.
const LIST_LIMIT: u32 = 200;
/// How many decided reviews the list page shows.
const RECENT: usize = 20;
/// The event stream re-reads the list at least this often (a safety net
/// under the change signal).
const REFRESH: Duration = Duration::from_secs(5);

/// Pending reviews this reviewer may see, oldest first (who waits longest).
async fn pending_for(state: &UiState, session: &UiSession) -> Result<Vec<ReviewView>, ReviewError> {
    let mut views = visible_reviews(
        &state.reviews,
        &session.identity,
        Some(ReviewState::Pending),
        LIST_LIMIT,
    )
    .await?;
    views.reverse();
    Ok(views)
}

fn internal(error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "web UI: cannot read reviews");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "the state database failed; see the Warden log\n",
    )
        .into_response()
}

/// `GET /reviews`.
pub async fn list_page(State(state): State<UiState>, Reviewer(session): Reviewer) -> Response {
    let pending = match pending_for(&state, &session).await {
        Ok(pending) => pending,
        Err(error) => return internal(error),
    };
    let recent: Vec<ReviewView> = match state.reviews.list(None, LIST_LIMIT).await {
        Ok(all) => all
            .iter()
            .filter(|r| r.state != ReviewState::Pending)
            .filter(|r| ReviewService::may_see(r, &session.identity))
            .take(RECENT)
            .map(|r| ReviewView::of(r, &[], &session.identity, &state.reviews))
            .collect(),
        Err(error) => return internal(error),
    };
    views::review_list(&session, &pending, &recent).into_response()
}

/// `GET /reviews/events`: the reviewer's pending list as an SSE `reviews`
/// event (JSON, the API's review shape), sent at once and again whenever a
/// review is created or decided on any node.
pub async fn events(
    State(state): State<UiState>,
    Reviewer(session): Reviewer,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = state.reviews.subscribe_changes();
    let stream = futures::stream::unfold(
        (state, session, changes, None::<String>, true),
        |(state, session, mut changes, mut last, mut first)| async move {
            loop {
                if !first {
                    tokio::select! {
                        changed = changes.changed() => {
                            if changed.is_err() {
                                tokio::time::sleep(REFRESH).await;
                            }
                        }
                        _ = tokio::time::sleep(REFRESH) => {}
                    }
                }
                first = false;
                if !session.is_live() {
                    return None;
                }
                let pending = match pending_for(&state, &session).await {
                    Ok(pending) => pending,
                    Err(error) => {
                        tracing::warn!(%error, "web UI: cannot read pending reviews");
                        continue;
                    }
                };
                let json = serde_json::to_string(&pending).unwrap_or_else(|_| "[]".into());
                if last.as_deref() == Some(json.as_str()) {
                    continue;
                }
                last = Some(json.clone());
                let event = Event::default().event("reviews").data(json);
                return Some((Ok(event), (state, session, changes, last, first)));
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn show(
    state: &UiState,
    session: &UiSession,
    id: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    match state.reviews.get(id).await {
        Ok(detail) if ReviewService::may_see(&detail.review, &session.identity) => {
            let view = ReviewView::of(
                &detail.review,
                &detail.votes,
                &session.identity,
                &state.reviews,
            );
            (status, views::review_page(session, &view, error)).into_response()
        }
        Ok(_) | Err(ReviewError::NotFound { .. }) => (
            StatusCode::NOT_FOUND,
            views::not_found(session, &format!("There is no review {id} you may see.")),
        )
            .into_response(),
        Err(error) => internal(error),
    }
}

/// `GET /reviews/{id}`.
pub async fn review_page(
    State(state): State<UiState>,
    Reviewer(session): Reviewer,
    Path(id): Path<String>,
) -> Response {
    show(&state, &session, &id, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct DecisionForm {
    csrf: String,
    decision: String,
    #[serde(default)]
    comment: String,
}

/// `POST /reviews/{id}/decide`: approve or deny, then back to the review.
pub async fn decide(
    State(state): State<UiState>,
    Reviewer(session): Reviewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> Response {
    if let Err(error) =
        check_same_origin(&state, &headers).and_then(|()| check_csrf(&session, &form.csrf))
    {
        let message = error.to_string();
        return show(&state, &session, &id, Some(&message), StatusCode::FORBIDDEN).await;
    }
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            return show(
                &state,
                &session,
                &id,
                Some("Choose approve or deny."),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    let comment = Some(form.comment.trim().to_string()).filter(|c| !c.is_empty());
    match state
        .reviews
        .decide(&id, &session.identity, approve, comment)
        .await
    {
        Ok(_) => Redirect::to(&format!("/reviews/{id}")).into_response(),
        Err(error) => {
            // The API's mapping: 403 own request / not an approver, 409 decided.
            let error = crate::api::error::ApiError::from(error);
            show(&state, &session, &id, Some(&error.message), error.status).await
        }
    }
}
