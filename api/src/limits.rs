//! What bounds one request: a deadline for the handler's answer (`api.request_timeout`).
//! The body size limit is axum's `DefaultBodyLimit`, the header-read timeout is set on
//! each connection (`server.rs`), and the cap on open event streams is taken in
//! `routes::events`.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use crate::{ApiError, AppState};

/// Answers 503 `timeout` when the handler has not produced a response head within
/// `api.request_timeout`. An event stream's body is not bounded: its response starts at
/// once and it then runs until the job ends or the client leaves.
pub async fn deadline(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let limit = state.config.request_timeout;
    tokio::time::timeout(limit, next.run(request))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "no answer within {} ms (api.request_timeout); the store may be slow",
                    limit.as_millis()
                ),
            )
        })
}
