//! Every failure becomes `{"error": {"code", "message"}}` with a 4xx status, in one place.
//! A 5xx is a bug (or the store being unreachable: 503).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use drover_queue::StoreError;
use serde::Serialize;
use serde_json::json;

/// An API error: a status, a stable machine-readable code, and a message for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// The error body, for the OpenAPI document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable code: `invalid`, `not_found`, `conflict`, `queue_full`, `unauthorized`, …
    pub code: String,
    /// What went wrong, naming the field when a field is at fault.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 422: the body parsed but a field is wrong. The message names the field.
    pub fn invalid(field: &str, message: impl std::fmt::Display) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("{field}: {message}"),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        let message = err.to_string();
        match err {
            StoreError::NotFound(_) | StoreError::NoGate { .. } => ApiError::not_found(message),
            StoreError::GateConflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "gate_conflict", message)
            }
            StoreError::IllegalTransition { .. } => {
                ApiError::new(StatusCode::CONFLICT, "illegal_transition", message)
            }
            StoreError::IdempotencyConflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "idempotency_conflict", message)
            }
            StoreError::QueueFull { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", message)
            }
            StoreError::Invalid(invalid) => ApiError::invalid(invalid.field, invalid.message),
            StoreError::Fenced { .. } => ApiError::new(StatusCode::CONFLICT, "fenced", message),
            StoreError::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                message,
            ),
            StoreError::Backend(_) => {
                tracing::error!(error = %message, "store error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}
