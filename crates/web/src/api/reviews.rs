//! `/api/v1/reviews` and `/api/v1/access-requests`: list, show and decide
//! reviews; ask for time-boxed access.
//!
//! A caller sees the reviews it requested and those it may decide; any
//! other review is "not found" to it, so ids do not leak what others asked.

use super::ApiState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use warden_core::review_store::{ReviewRecord, ReviewState, ReviewVote};
use warden_reviews::ReviewService;

/// Most reviews one list returns.
const MAX_LIMIT: u32 = 500;

/// One reviewer's vote.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct VoteView {
    /// Who voted (`sub <email>` or `key:NAME`).
    pub reviewer: String,
    pub approve: bool,
    pub comment: Option<String>,
    /// RFC 3339.
    pub at: String,
}

/// Where people act on a review.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct LinksView {
    pub review: Option<String>,
    pub api: Option<String>,
    pub approve: Option<String>,
    pub deny: Option<String>,
}

/// A review as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ReviewView {
    pub id: String,
    /// `statement` or `access`.
    pub kind: String,
    /// `pending`, `approved`, `denied`, `timed_out` or `cancelled`.
    pub state: String,
    pub target: String,
    /// The requester, for people.
    pub requester: String,
    pub requester_subject: String,
    pub session_id: Option<String>,
    pub statement: Option<String>,
    pub statement_hash: Option<String>,
    /// `connect`, `read`, `write`, `ddl`, `admin` or `unknown`.
    pub operation: String,
    pub tables: Vec<String>,
    /// The `[[policy]]` that asked for the review.
    pub rule: Option<String>,
    pub reason: Option<String>,
    /// Access requests: how long the grant lasts once approved.
    pub duration_secs: Option<u64>,
    /// Subject patterns of who may decide.
    pub approvers: Vec<String>,
    pub min_approvals: u32,
    /// `statement` or `session`.
    pub approval_scope: String,
    pub created_at: String,
    pub expires_at: String,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
    pub decision_comment: Option<String>,
    pub votes: Vec<VoteView>,
    /// Whether the caller may approve or deny it now.
    pub can_decide: bool,
    pub links: LinksView,
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

fn enum_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => String::new(),
    }
}

impl ReviewView {
    pub(crate) fn of(
        review: &ReviewRecord,
        votes: &[ReviewVote],
        caller: &warden_core::Identity,
        service: &ReviewService,
    ) -> ReviewView {
        let links = service.links(&review.id);
        let already_voted = votes
            .iter()
            .any(|v| v.reviewer == warden_core::review_store::principal(caller));
        ReviewView {
            id: review.id.clone(),
            kind: enum_text(&review.kind),
            state: review.state.to_string(),
            target: review.target.clone(),
            requester: review.requester.display_name(),
            requester_subject: review.requester.subject.clone(),
            session_id: review.session_id.clone(),
            statement: review.statement.clone(),
            statement_hash: review.statement_hash.clone(),
            operation: review.operation.to_string(),
            tables: review.tables.clone(),
            rule: review.rule.clone(),
            reason: review.reason.clone(),
            duration_secs: review.duration_secs,
            approvers: review.approvers.clone(),
            min_approvals: review.min_approvals,
            approval_scope: review.approval_scope.as_str().to_string(),
            created_at: rfc3339(review.created_at),
            expires_at: rfc3339(review.expires_at),
            decided_at: review.decided_at.map(rfc3339),
            decided_by: review.decided_by.clone(),
            decision_comment: review.decision_comment.clone(),
            votes: votes
                .iter()
                .map(|v| VoteView {
                    reviewer: v.reviewer_name.clone(),
                    approve: v.approve,
                    comment: v.comment.clone(),
                    at: rfc3339(v.at),
                })
                .collect(),
            can_decide: review.state == ReviewState::Pending
                && !already_voted
                && ReviewService::may_decide(review, caller),
            links: LinksView {
                review: links.review,
                api: links.api,
                approve: links.approve,
                deny: links.deny,
            },
        }
    }
}

/// Filters of `GET /api/v1/reviews`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only reviews in this state: `pending`, `approved`, `denied`,
    /// `timed_out`, `cancelled`.
    pub state: Option<String>,
    /// At most this many (default 100, at most 500).
    pub limit: Option<u32>,
}

/// `POST …/approve` and `…/deny`: an optional comment.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct DecisionBody {
    pub comment: Option<String>,
}

/// `POST /api/v1/access-requests`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessRequestBody {
    /// The target to reach.
    pub target: String,
    /// How long, e.g. `1h`, `30m` (at least `1m`, at most `[reviews] max_access_duration`).
    pub duration: String,
    /// Why, for the approvers.
    pub reason: Option<String>,
}

/// A submitted review.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TicketView {
    pub id: String,
    /// Where approvers decide it, when `[server] public_url` is set.
    pub url: Option<String>,
    pub state: String,
}

/// List reviews the caller requested or may decide, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/reviews",
    tag = "reviews",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Reviews, newest first", body = [ReviewView]),
        (status = 400, description = "Bad filter", body = ErrorBody),
        (status = 401, description = "No or bad credential", body = ErrorBody),
    )
)]
pub async fn list_reviews(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<ReviewView>>, ApiError> {
    let filter = match query.state.as_deref() {
        None | Some("") | Some("all") => None,
        Some(text) => Some(ReviewState::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "state {text:?} is not one of pending, approved, denied, timed_out, cancelled"
            ))
        })?),
    };
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    Ok(Json(
        visible_reviews(&state.reviews, &caller, filter, limit).await?,
    ))
}

/// Reviews (newest first, optionally in one state) that `caller` requested
/// or may decide, with their votes: what the API lists and the web UI shows.
pub(crate) async fn visible_reviews(
    reviews: &ReviewService,
    caller: &warden_core::Identity,
    state: Option<ReviewState>,
    limit: u32,
) -> Result<Vec<ReviewView>, warden_reviews::ReviewError> {
    let mut views = Vec::new();
    for review in reviews
        .list(state, limit)
        .await?
        .iter()
        .filter(|r| ReviewService::may_see(r, caller))
    {
        let votes = reviews.votes(&review.id).await?;
        views.push(ReviewView::of(review, &votes, caller, reviews));
    }
    Ok(views)
}

/// One review with its votes.
#[utoipa::path(
    get,
    path = "/api/v1/reviews/{id}",
    tag = "reviews",
    params(("id" = String, Path, description = "The review id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The review", body = ReviewView),
        (status = 401, description = "No or bad credential", body = ErrorBody),
        (status = 404, description = "No such review (or not yours to see)", body = ErrorBody),
    )
)]
pub async fn get_review(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<ReviewView>, ApiError> {
    let detail = visible(&state, &caller, &id).await?;
    Ok(Json(ReviewView::of(
        &detail.review,
        &detail.votes,
        &caller,
        &state.reviews,
    )))
}

async fn visible(
    state: &ApiState,
    caller: &warden_core::Identity,
    id: &str,
) -> Result<warden_reviews::ReviewDetail, ApiError> {
    let hidden = || ApiError::not_found(format!("no review {id}"));
    match state.reviews.get(id).await {
        Ok(detail) if ReviewService::may_see(&detail.review, caller) => Ok(detail),
        Ok(_) | Err(warden_reviews::ReviewError::NotFound { .. }) => Err(hidden()),
        Err(error) => Err(error.into()),
    }
}

fn decision_body(body: &Bytes) -> Result<DecisionBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecisionBody::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("the body must be JSON {{\"comment\": \"…\"}}: {e}"))
    })
}

async fn decide(
    state: ApiState,
    caller: warden_core::Identity,
    id: String,
    approve: bool,
    body: Bytes,
) -> Result<Json<ReviewView>, ApiError> {
    let body = decision_body(&body)?;
    // 403 not an approver / own request, 404 unknown, 409 decided.
    state
        .reviews
        .decide(&id, &caller, approve, body.comment)
        .await?;
    let detail = state.reviews.get(&id).await?;
    Ok(Json(ReviewView::of(
        &detail.review,
        &detail.votes,
        &caller,
        &state.reviews,
    )))
}

/// Approve a review (one vote; `min_approvals` distinct approvers release it).
#[utoipa::path(
    post,
    path = "/api/v1/reviews/{id}/approve",
    tag = "reviews",
    params(("id" = String, Path, description = "The review id")),
    request_body(content = DecisionBody, description = "Optional comment", content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The review after the vote", body = ReviewView),
        (status = 401, description = "No or bad credential", body = ErrorBody),
        (status = 403, description = "Not an approver, or the caller's own request", body = ErrorBody),
        (status = 404, description = "No such review", body = ErrorBody),
        (status = 409, description = "Already decided, or already voted", body = ErrorBody),
    )
)]
pub async fn approve_review(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<ReviewView>, ApiError> {
    decide(state, caller, id, true, body).await
}

/// Deny a review (final).
#[utoipa::path(
    post,
    path = "/api/v1/reviews/{id}/deny",
    tag = "reviews",
    params(("id" = String, Path, description = "The review id")),
    request_body(content = DecisionBody, description = "Optional comment", content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The denied review", body = ReviewView),
        (status = 401, description = "No or bad credential", body = ErrorBody),
        (status = 403, description = "Not an approver, or the caller's own request", body = ErrorBody),
        (status = 404, description = "No such review", body = ErrorBody),
        (status = 409, description = "Already decided", body = ErrorBody),
    )
)]
pub async fn deny_review(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<ReviewView>, ApiError> {
    decide(state, caller, id, false, body).await
}

/// Ask for time-boxed access to a target; approvers are those of the first
/// policy that matches the caller and the target with `review = ["connect"]`.
#[utoipa::path(
    post,
    path = "/api/v1/access-requests",
    tag = "reviews",
    request_body(content = AccessRequestBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The pending review", body = TicketView),
        (status = 400, description = "Bad duration or target", body = ErrorBody),
        (status = 401, description = "No or bad credential", body = ErrorBody),
        (status = 403, description = "No policy lets the caller ask for this target", body = ErrorBody),
    )
)]
pub async fn request_access(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<TicketView>), ApiError> {
    let body: AccessRequestBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON {{\"target\": \"…\", \"duration\": \"1h\", \"reason\": \"…\"}}: {e}"
        ))
    })?;
    let duration = humantime::parse_duration(body.duration.trim()).map_err(|e| {
        ApiError::bad_request(format!(
            "duration {:?}: {e}; write e.g. \"30m\" or \"2h\"",
            body.duration
        ))
    })?;
    let ticket = state
        .reviews
        .request_access(&caller, body.target.trim(), duration, body.reason)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TicketView {
            id: ticket.id,
            url: ticket.url,
            state: ReviewState::Pending.to_string(),
        }),
    ))
}
