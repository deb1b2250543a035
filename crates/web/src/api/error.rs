//! API errors: a status and a JSON body `{"error": CODE, "message": TEXT}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use warden_reviews::ReviewError;

/// The body of every error response.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code: `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `bad_request`, `internal`.
    pub error: String,
    /// What went wrong and what to do, for people.
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "send `Authorization: Bearer <OIDC token or Warden access key>`",
        )
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

fn code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::CONFLICT => "conflict",
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "bad_request",
        _ => "internal",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: code(self.status).to_string(),
                message: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"warden\""),
            );
        }
        response
    }
}

impl From<ReviewError> for ApiError {
    fn from(error: ReviewError) -> ApiError {
        let status = match &error {
            ReviewError::NotFound { .. } => StatusCode::NOT_FOUND,
            ReviewError::SelfReview { .. }
            | ReviewError::NotApprover { .. }
            | ReviewError::NoAccessRule { .. } => StatusCode::FORBIDDEN,
            ReviewError::AlreadyDecided { .. } | ReviewError::AlreadyVoted { .. } => {
                StatusCode::CONFLICT
            }
            ReviewError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ReviewError::Store(store) => {
                tracing::error!(error = %store, "review store failure");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the state database failed; see the Warden log",
                );
            }
        };
        ApiError::new(status, error.to_string())
    }
}

impl From<warden_core::engines::StoreError> for ApiError {
    fn from(error: warden_core::engines::StoreError) -> ApiError {
        ApiError::from(ReviewError::Store(error))
    }
}
