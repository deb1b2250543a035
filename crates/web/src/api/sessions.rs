//! `GET /api/v1/sessions`: the sessions index. Approvers (of any policy)
//! operate Warden and see every session; anyone else sees their own.

use super::ApiState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use warden_store::{SessionFilter, SessionRow};

/// Most sessions one list returns.
const MAX_LIMIT: u32 = 1000;

/// One session of the index.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    /// The caller's subject (`sub`, or `key:NAME`).
    pub subject: String,
    /// The caller, for people.
    pub identity: String,
    pub target: String,
    pub protocol: String,
    pub client_addr: String,
    pub client_tls: bool,
    pub started_at: String,
    /// Absent while the session is open.
    pub ended_at: Option<String>,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
    pub statements: u64,
    pub end_reason: Option<String>,
    pub node: Option<String>,
}

impl From<&SessionRow> for SessionView {
    fn from(row: &SessionRow) -> SessionView {
        SessionView {
            id: row.id.clone(),
            subject: row.subject.clone(),
            identity: row.identity.display_name(),
            target: row.target.clone(),
            protocol: row.protocol.to_string(),
            client_addr: row.client_addr.clone(),
            client_tls: row.client_tls,
            started_at: row.started_at.format(&Rfc3339).unwrap_or_default(),
            ended_at: row.ended_at.and_then(|at| at.format(&Rfc3339).ok()),
            bytes_from_client: row.bytes_from_client,
            bytes_to_client: row.bytes_to_client,
            statements: row.statements,
            end_reason: row.end_reason.clone(),
            node: row.node.clone(),
        }
    }
}

/// Filters of `GET /api/v1/sessions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    /// At most this many (default 50, at most 1000).
    pub limit: Option<u32>,
    /// Only sessions on this target.
    pub target: Option<String>,
    /// Only sessions still open.
    pub open: Option<bool>,
}

/// List sessions, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    tag = "sessions",
    params(SessionQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Sessions, newest first", body = [SessionView]),
        (status = 401, description = "No or bad credential", body = ErrorBody),
    )
)]
pub async fn list_sessions(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Query(query): Query<SessionQuery>,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let filter = SessionFilter {
        limit: query.limit.unwrap_or(50).clamp(1, MAX_LIMIT),
        target: query.target.filter(|t| !t.is_empty()),
        open_only: query.open.unwrap_or(false),
    };
    let rows = state.store.list_sessions(&filter).await?;
    let visible = SessionVisibility::of(&state.reviews, &caller);
    Ok(Json(
        rows.iter()
            .filter(|row| visible.allows(row))
            .map(SessionView::from)
            .collect(),
    ))
}

/// Which sessions a caller may see: approvers (of any policy) operate
/// Warden and see all; anyone else their own.
pub(crate) struct SessionVisibility<'c> {
    everyone: bool,
    caller: &'c warden_core::Identity,
}

impl<'c> SessionVisibility<'c> {
    pub(crate) fn of(
        reviews: &warden_reviews::ReviewService,
        caller: &'c warden_core::Identity,
    ) -> Self {
        SessionVisibility {
            everyone: reviews.is_any_approver(caller),
            caller,
        }
    }

    pub(crate) fn allows(&self, row: &SessionRow) -> bool {
        // By principal (issuer and sub, or key id): the same `sub` from
        // another issuer, or an OIDC `sub` spelled like `key:NAME`, is
        // someone else.
        self.everyone
            || warden_core::review_store::principal(&row.identity)
                == warden_core::review_store::principal(self.caller)
    }
}
