//! `/v1/suppressions`: the global suppression list, managed by operators (SPEC §7.2).
//! Addresses are normalised at the edge ([`drover_queue::suppress::normalise_email`]); an
//! address that is not one is a 422 naming `email`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use drover_queue::suppress::normalise_email;
use drover_queue::{Suppression, SuppressionReason};
use serde::{Deserialize, Serialize};

use crate::error::ErrorBody;
use crate::routes::{page_limit, parse_body};
use crate::{ApiError, AppState};

/// The longest note, in bytes.
pub const MAX_NOTE_BYTES: usize = 10_000;

/// A page of suppressions, by address.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SuppressionList {
    pub suppressions: Vec<Suppression>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
}

/// An address to suppress.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSuppression {
    /// The address; kept trimmed and lowercased.
    pub email: String,
    /// `manual` when absent.
    #[serde(default)]
    pub reason: Option<SuppressionReason>,
    /// Why, for the record (at most 10,000 bytes).
    #[serde(default)]
    pub note: Option<String>,
}

/// `raw` as the normalised address, or a 422 naming `field`.
pub(crate) fn email_at_edge(field: &str, raw: &str) -> Result<String, ApiError> {
    normalise_email(raw).ok_or_else(|| {
        ApiError::invalid(
            field,
            format!(
                "not an e-mail address (one `@` between a local part and a domain, no spaces \
                 or control characters, at most {} bytes)",
                drover_queue::suppress::MAX_EMAIL_LEN
            ),
        )
    })
}

/// Suppressions by address, ascending.
#[utoipa::path(get, path = "/v1/suppressions", tag = "suppressions",
    params(
        ("after" = Option<String>, Query, description = "next_after of the previous page: addresses after it"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 50"),
    ),
    responses((status = 200, body = SuppressionList), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<SuppressionList>, ApiError> {
    for key in query.keys() {
        if !matches!(key.as_str(), "after" | "limit") {
            return Err(ApiError::bad_request(format!(
                "{key}: unknown query parameter (expected after, limit)"
            )));
        }
    }
    let limit = page_limit(&query)?;
    let after = query.get("after").map(String::as_str);
    if after.is_some_and(|a| a.contains('\0')) {
        return Err(ApiError::bad_request(format!(
            "after: {}",
            drover_queue::job::NUL_MESSAGE
        )));
    }
    let mut suppressions = state.store.suppressions(after, limit + 1).await?;
    let next_after = if suppressions.len() > limit {
        suppressions.truncate(limit);
        suppressions.last().map(|s| s.email.clone())
    } else {
        None
    };
    Ok(Json(SuppressionList {
        suppressions,
        next_after,
    }))
}

/// Suppress an address: no campaign writes to it again.
#[utoipa::path(post, path = "/v1/suppressions", tag = "suppressions", request_body = NewSuppression,
    responses(
        (status = 201, description = "Suppressed", body = Suppression),
        (status = 200, description = "Already suppressed: the entry as it was", body = Suppression),
        (status = 422, description = "`email` is not an address, or `reason` or `note` is invalid (named in the message)", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: NewSuppression = serde_path_to_error::deserialize(parse_body(&headers, &body)?)
        .map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "body".to_string()
            } else {
                path
            };
            ApiError::invalid(&field, e.into_inner())
        })?;
    let email = email_at_edge("email", &body.email)?;
    if let Some(note) = &body.note {
        if note.len() > MAX_NOTE_BYTES {
            return Err(ApiError::invalid(
                "note",
                format!("at most {MAX_NOTE_BYTES} bytes"),
            ));
        }
        if note.contains('\0') {
            return Err(ApiError::invalid("note", drover_queue::job::NUL_MESSAGE));
        }
    }
    let entry = Suppression {
        email,
        reason: body.reason.unwrap_or(SuppressionReason::Manual),
        note: body.note,
        // To the millisecond, as every store keeps it.
        created_at: drover_queue::job::from_millis(Utc::now().timestamp_millis()),
    };
    if state.store.suppress(&entry).await? {
        return Ok((StatusCode::CREATED, Json(entry)).into_response());
    }
    let existing = state
        .store
        .suppressed(std::slice::from_ref(&entry.email))
        .await?
        .pop()
        // Lifted between the two calls: what was asked is what holds now, near enough.
        .unwrap_or(entry);
    Ok((StatusCode::OK, Json(existing)).into_response())
}

/// Lift a suppression.
#[utoipa::path(delete, path = "/v1/suppressions/{email}", tag = "suppressions",
    params(("email" = String, Path, description = "The address (normalised before the lookup)")),
    responses(
        (status = 204, description = "Lifted"),
        (status = 404, description = "The address is not suppressed", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path(email): Path<String>,
) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::not_found("that address is not suppressed");
    let email = normalise_email(&email).ok_or_else(not_found)?;
    if state.store.unsuppress(&email).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}
