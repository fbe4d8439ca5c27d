//! `/v1/profiles`: the apply workload's users (SPEC §7.3): a profile, a résumé (a PDF),
//! session cookies per site (sealed with the `secrets` key before they reach the store;
//! never answered: only sites and times are), and the user's applications ledger with
//! today's and this month's counts (Asia/Kolkata).
//!
//! Every field is checked at the edge ([`Profile::validate`], [`check_user_id`],
//! [`check_site`], [`Cookies::from_value`]); a fault is a 422 naming the field and never
//! repeating the value.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use drover_queue::application::ApplicationCounts;
use drover_queue::profile::{
    check_resume_filename, check_site, check_user_id, InvalidField, MAX_RESUME_BYTES,
};
use drover_queue::seal::{Cookies, Keyring, MAX_COOKIES_BYTES};
use drover_queue::{Application, Caps, Profile, Resume, ResumeInfo, SealedSession, SessionInfo};
use serde::Serialize;

use crate::error::ErrorBody;
use crate::routes::{page_limit, parse_body};
use crate::{ApiError, AppState};

/// A profile as answered: the profile, its résumé's metadata and its sessions' sites.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProfileView {
    pub user_id: String,
    pub profile: Profile,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
    /// The résumé's metadata, null when none was uploaded.
    pub resume: Option<ResumeInfo>,
    /// Sites with stored session cookies (never the cookies), by site.
    pub sessions: Vec<SessionInfo>,
}

/// A user's stored sessions: sites and times only.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionInfo>,
}

/// A page of a user's applications ledger, with the counts the caps are checked against.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApplicationList {
    pub applications: Vec<Application>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
    /// Counted applications in the current Asia/Kolkata day and month.
    pub counts: ApplicationCounts,
    /// The profile's caps; null when the user has no profile.
    pub caps: Option<Caps>,
}

fn at_edge(e: InvalidField) -> ApiError {
    ApiError::invalid(&e.field, e.message)
}

fn user(user_id: &str) -> Result<(), ApiError> {
    check_user_id(user_id).map_err(at_edge)
}

fn no_profile(user_id: &str) -> ApiError {
    ApiError::not_found(format!("no profile for user `{user_id}`"))
}

/// To the millisecond, as every store keeps it.
fn now() -> chrono::DateTime<Utc> {
    drover_queue::job::from_millis(Utc::now().timestamp_millis())
}

async fn require_profile(state: &AppState, user_id: &str) -> Result<(), ApiError> {
    match state.store.profile(user_id).await? {
        Some(_) => Ok(()),
        None => Err(no_profile(user_id)),
    }
}

/// The keys sessions are sealed with; a 409 naming the configuration when there is none.
fn keyring(state: &AppState) -> Result<Keyring, ApiError> {
    let key = state.config.secret_key.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_secrets_key",
            "sessions are stored encrypted and this server has no key: set secrets.key \
             (DROVER_SECRETS__KEY) or secrets.key_file",
        )
    })?;
    Ok(Keyring::new(key, &state.config.previous_secret_keys))
}

/// Create or replace a user's profile.
#[utoipa::path(put, path = "/v1/profiles/{user_id}", tag = "profiles", request_body = Profile,
    params(("user_id" = String, Path, description = "1 to 128 of [A-Za-z0-9._@-]")),
    responses(
        (status = 201, description = "Created", body = ProfileView),
        (status = 200, description = "Replaced", body = ProfileView),
        (status = 422, description = "A field is invalid (named in the message)", body = ErrorBody),
    ))]
pub async fn put(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    user(&user_id)?;
    let body = parse_body(&headers, &body)?;
    // serde would also read a struct from an array of its fields; JSON bodies name them.
    if !body.is_object() {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    let mut profile: Profile = serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        ApiError::invalid(&field, e.into_inner())
    })?;
    profile.validate().map_err(at_edge)?;
    let created = state.store.put_profile(&user_id, &profile, now()).await?;
    // `nightly: true` is a schedule (SPEC §7.3): created, updated or deleted with it.
    drover_queue::schedule::nightly::sync(state.store.as_ref(), &user_id, Some(&profile), now())
        .await?;
    let view = view(&state, &user_id).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)).into_response())
}

async fn view(state: &AppState, user_id: &str) -> Result<ProfileView, ApiError> {
    let stored = state
        .store
        .profile(user_id)
        .await?
        .ok_or_else(|| no_profile(user_id))?;
    Ok(ProfileView {
        user_id: stored.user_id,
        profile: stored.profile,
        created_at: stored.created_at,
        updated_at: stored.updated_at,
        resume: state.store.resume_info(user_id).await?,
        sessions: state.store.sessions(user_id).await?,
    })
}

/// A user's profile, its résumé's metadata and its sessions' sites (never a cookie).
#[utoipa::path(get, path = "/v1/profiles/{user_id}", tag = "profiles",
    params(("user_id" = String, Path, description = "1 to 128 of [A-Za-z0-9._@-]")),
    responses(
        (status = 200, body = ProfileView),
        (status = 404, description = "No such profile", body = ErrorBody),
        (status = 422, description = "`user_id` is not one", body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<Json<ProfileView>, ApiError> {
    user(&user_id)?;
    Ok(Json(view(&state, &user_id).await?))
}

/// Delete a profile with its résumé and sessions. The applications ledger stays: it
/// records what was submitted in the user's name.
#[utoipa::path(delete, path = "/v1/profiles/{user_id}", tag = "profiles",
    params(("user_id" = String, Path, description = "1 to 128 of [A-Za-z0-9._@-]")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such profile", body = ErrorBody),
        (status = 422, description = "`user_id` is not one", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    user(&user_id)?;
    if state.store.delete_profile(&user_id).await? {
        drover_queue::schedule::nightly::sync(state.store.as_ref(), &user_id, None, now()).await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_profile(&user_id))
    }
}

/// Upload (or replace) the user's résumé: the body is the PDF itself.
#[utoipa::path(put, path = "/v1/profiles/{user_id}/resume", tag = "profiles",
    request_body(content = Vec<u8>, content_type = "application/pdf", description = "The PDF, at most 5 MiB"),
    params(
        ("user_id" = String, Path, description = "1 to 128 of [A-Za-z0-9._@-]"),
        ("filename" = Option<String>, Query, description = "The name forms upload it as; default resume.pdf"),
    ),
    responses(
        (status = 200, description = "Stored", body = ResumeInfo),
        (status = 404, description = "No such profile", body = ErrorBody),
        (status = 413, description = "Larger than 5 MiB", body = ErrorBody),
        (status = 415, description = "`Content-Type` is not application/pdf or application/octet-stream", body = ErrorBody),
        (status = 422, description = "Not a PDF (no `%PDF-` at the start), or `filename` is invalid", body = ErrorBody),
    ))]
pub async fn put_resume(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ResumeInfo>, ApiError> {
    user(&user_id)?;
    for key in query.keys() {
        if key != "filename" {
            return Err(ApiError::bad_request(format!(
                "{key}: unknown query parameter (expected filename)"
            )));
        }
    }
    let filename = query
        .get("filename")
        .cloned()
        .unwrap_or_else(|| "resume.pdf".into());
    check_resume_filename(&filename).map_err(at_edge)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    // `application/octet-stream` too: what generic HTTP clients send for a file.
    if !matches!(
        content_type.as_deref(),
        Some("application/pdf" | "application/octet-stream")
    ) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type: must be application/pdf (or application/octet-stream)",
        ));
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("body: a résumé is at most {MAX_RESUME_BYTES} bytes (5 MiB)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_RESUME_BYTES as u64) {
        return Err(too_large());
    }
    let data = axum::body::to_bytes(body, MAX_RESUME_BYTES)
        .await
        .map_err(|_| too_large())?;
    if !data.starts_with(b"%PDF-") {
        return Err(ApiError::invalid(
            "body",
            "not a PDF (a PDF starts with `%PDF-`)",
        ));
    }
    require_profile(&state, &user_id).await?;
    let resume = Resume {
        info: ResumeInfo {
            filename,
            content_type: "application/pdf".into(),
            bytes: data.len() as u64,
            uploaded_at: now(),
        },
        data: data.to_vec(),
    };
    state.store.put_resume(&user_id, &resume).await?;
    Ok(Json(resume.info))
}

/// Store the user's session cookies for `site`, sealed (AES-256-GCM) with the `secrets`
/// key. The cookies are never answered again.
#[utoipa::path(put, path = "/v1/profiles/{user_id}/sessions/{site}", tag = "profiles",
    request_body(content = Vec<Object>, description = "WebDriver cookie objects: name and value (strings), optionally path, domain, secure, httpOnly, expiry, sameSite; at most 200"),
    params(
        ("user_id" = String, Path, description = "1 to 128 of [A-Za-z0-9._@-]"),
        ("site" = String, Path, description = "1 to 128 of [A-Za-z0-9._-], e.g. greenhouse, lever"),
    ),
    responses(
        (status = 200, description = "Stored: the site and time, never the cookies", body = SessionInfo),
        (status = 404, description = "No such profile", body = ErrorBody),
        (status = 409, description = "No secrets key is configured (secrets.key or secrets.key_file)", body = ErrorBody),
        (status = 422, description = "Not a cookie list (the field is named, never its value)", body = ErrorBody),
    ))]
pub async fn put_session(
    State(state): State<AppState>,
    Path((user_id, site)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SessionInfo>, ApiError> {
    user(&user_id)?;
    check_site(&site).map_err(at_edge)?;
    if body.len() > MAX_COOKIES_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("body: a cookie list is at most {MAX_COOKIES_BYTES} bytes"),
        ));
    }
    let cookies = Cookies::from_value(parse_body(&headers, &body)?).map_err(at_edge)?;
    let keyring = keyring(&state)?;
    require_profile(&state, &user_id).await?;
    let blob = keyring
        .seal_cookies(&user_id, &site, &cookies)
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "seal_failed",
                e.to_string(),
            )
        })?;
    let session = SealedSession {
        user_id,
        site,
        blob,
        updated_at: now(),
    };
    state.store.put_session(&session).await?;
    tracing::info!(
        target: "drover_api::profiles",
        user_id = %session.user_id,
        site = %session.site,
        cookies = cookies.len(),
        "session stored (sealed)"
    );
    Ok(Json(SessionInfo {
        site: session.site,
        updated_at: session.updated_at,
    }))
}

/// The sites the user has sessions for, and when each was stored.
#[utoipa::path(get, path = "/v1/profiles/{user_id}/sessions", tag = "profiles",
    params(("user_id" = String, Path, description = "1 to 128 of [A-Za-z0-9._@-]")),
    responses(
        (status = 200, body = SessionList),
        (status = 422, description = "`user_id` is not one", body = ErrorBody),
    ))]
pub async fn sessions(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<Json<SessionList>, ApiError> {
    user(&user_id)?;
    Ok(Json(SessionList {
        sessions: state.store.sessions(&user_id).await?,
    }))
}

/// Forget the user's session for `site`.
#[utoipa::path(delete, path = "/v1/profiles/{user_id}/sessions/{site}", tag = "profiles",
    params(
        ("user_id" = String, Path, description = "1 to 128 of [A-Za-z0-9._@-]"),
        ("site" = String, Path, description = "1 to 128 of [A-Za-z0-9._-]"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No session for that site", body = ErrorBody),
        (status = 422, description = "`user_id` or `site` is not one", body = ErrorBody),
    ))]
pub async fn delete_session(
    State(state): State<AppState>,
    Path((user_id, site)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    user(&user_id)?;
    check_site(&site).map_err(at_edge)?;
    if state.store.delete_session(&user_id, &site).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no session of `{user_id}` for `{site}`"
        )))
    }
}

/// The user's applications ledger by posting key, with today's and this month's counts
/// (Asia/Kolkata) and the profile's caps.
#[utoipa::path(get, path = "/v1/profiles/{user_id}/applications", tag = "profiles",
    params(
        ("user_id" = String, Path, description = "1 to 128 of [A-Za-z0-9._@-]"),
        ("after" = Option<String>, Query, description = "next_after of the previous page: posting keys after it"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 50"),
    ),
    responses(
        (status = 200, body = ApplicationList),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
        (status = 422, description = "`user_id` is not one", body = ErrorBody),
    ))]
pub async fn applications(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ApplicationList>, ApiError> {
    user(&user_id)?;
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
    let mut applications = state.store.applications(&user_id, after, limit + 1).await?;
    let next_after = if applications.len() > limit {
        applications.truncate(limit);
        applications.last().map(|a| a.posting_key.clone())
    } else {
        None
    };
    let counts = state.store.application_counts(&user_id, Utc::now()).await?;
    let caps = state.store.profile(&user_id).await?.map(|p| p.profile.caps);
    Ok(Json(ApplicationList {
        applications,
        next_after,
        counts,
        caps,
    }))
}
