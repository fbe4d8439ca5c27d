//! `/v1/schedules`: schedules managed at run time. Handlers parse and validate at the edge
//! (a bad cron, zone or template is a 422 naming the field) and call
//! [`drover_queue::schedule`], which every process's evaluator then follows.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use drover_queue::schedule::{self, Save, Schedule, ScheduleError, ScheduleSpec, ScheduleView};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::error::ErrorBody;
use crate::routes::parse_body;
use crate::{ApiError, AppState};

impl From<ScheduleError> for ApiError {
    fn from(err: ScheduleError) -> Self {
        match err {
            ScheduleError::NotFound(_) => ApiError::not_found(err.to_string()),
            ScheduleError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", err.to_string())
            }
            ScheduleError::Invalid(invalid) => ApiError::invalid(&invalid.field, invalid.message),
            ScheduleError::Store(store) => store.into(),
        }
    }
}

/// A declaration from a request body; `path_id` fills or must match `id`.
fn parse_spec(
    state: &AppState,
    mut value: Value,
    path_id: Option<&str>,
) -> Result<ScheduleSpec, ApiError> {
    if let (Some(id), Value::Object(map)) = (path_id, &mut value) {
        match map.get("id") {
            None => {
                map.insert("id".into(), Value::String(id.into()));
            }
            Some(Value::String(given)) if given == id => {}
            Some(_) => {
                return Err(ApiError::invalid(
                    "id",
                    format!("must be `{id}`, the id in the path"),
                ))
            }
        }
    }
    let spec: ScheduleSpec = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        ApiError::invalid(&field, e.into_inner())
    })?;
    spec.validate().map_err(ScheduleError::from)?;
    // The template's kind must be one this deployment runs.
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    state
        .registry
        .prepare(spec.job_for(epoch, epoch))
        .map_err(|e| ApiError::invalid(&format!("job.{}", e.field), e.message))?;
    Ok(spec)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ScheduleList {
    pub schedules: Vec<ScheduleView>,
}

/// What `trigger` did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Triggered {
    /// The job it enqueued; empty when the overlap policy held the run back.
    pub fired: Vec<Fired>,
    /// Runs skipped by the overlap policy.
    pub skipped: u64,
    /// Another evaluator advanced the schedule first; nothing was counted.
    pub lost_race: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Fired {
    pub tick: DateTime<Utc>,
    pub job_id: Uuid,
}

/// Times to the second, as the shape shows them.
fn secs(t: DateTime<Utc>) -> DateTime<Utc> {
    schedule::view::to_second(t)
}

async fn view(state: &AppState, schedule: &Schedule) -> Result<ScheduleView, ApiError> {
    Ok(schedule::view(state.store.as_ref(), schedule).await?)
}

async fn stored(state: &AppState, id: &str) -> Result<Schedule, ApiError> {
    state
        .store
        .schedule(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("schedule `{id}` not found")))
}

/// Create a schedule.
#[utoipa::path(post, path = "/v1/schedules", tag = "schedules", request_body = ScheduleSpec,
    responses(
        (status = 201, description = "Stored; `next_runs` shows when it ticks", body = ScheduleView),
        (status = 409, description = "A schedule with this id exists", body = ErrorBody),
        (status = 422, description = "A field is invalid: cron, timezone, job.kind, … (named in the message)", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let spec = parse_spec(&state, parse_body(&headers, &body)?, None)?;
    let schedule = schedule::save(state.store.as_ref(), spec, Save::Create, Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &schedule).await?)).into_response())
}

/// Every schedule, by id.
#[utoipa::path(get, path = "/v1/schedules", tag = "schedules",
    responses((status = 200, description = "Every schedule, by id", body = ScheduleList)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<ScheduleList>, ApiError> {
    let mut schedules = Vec::new();
    for schedule in state.store.schedules().await? {
        schedules.push(view(&state, &schedule).await?);
    }
    Ok(Json(ScheduleList { schedules }))
}

/// A schedule with its next and last 10 runs.
#[utoipa::path(get, path = "/v1/schedules/{id}", tag = "schedules", params(("id" = String, Path, description = "The schedule's id")),
    responses(
        (status = 200, description = "The schedule", body = ScheduleView),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let schedule = stored(&state, &id).await?;
    Ok(Json(view(&state, &schedule).await?))
}

/// Replace a schedule's declaration (counters and last runs stay). `id` may be left out of
/// the body; when given it must be the path's.
#[utoipa::path(put, path = "/v1/schedules/{id}", tag = "schedules", params(("id" = String, Path, description = "The schedule's id")),
    request_body = ScheduleSpec,
    responses(
        (status = 200, description = "Replaced", body = ScheduleView),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 422, description = "A field is invalid (named in the message), or `id` is not the path's", body = ErrorBody),
    ))]
pub async fn replace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ScheduleView>, ApiError> {
    let spec = parse_spec(&state, parse_body(&headers, &body)?, Some(&id))?;
    let schedule = schedule::save(state.store.as_ref(), spec, Save::Replace, Utc::now()).await?;
    Ok(Json(view(&state, &schedule).await?))
}

/// Delete a schedule; the jobs it enqueued stay.
#[utoipa::path(delete, path = "/v1/schedules/{id}", tag = "schedules", params(("id" = String, Path, description = "The schedule's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_schedule(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("schedule `{id}` not found")))
    }
}

/// Pause a schedule: no tick fires until it is resumed.
#[utoipa::path(post, path = "/v1/schedules/{id}/pause", tag = "schedules", params(("id" = String, Path, description = "The schedule's id")),
    responses(
        (status = 200, description = "Paused (or already paused)", body = ScheduleView),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ))]
pub async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let schedule = schedule::pause(state.store.as_ref(), &id, Utc::now()).await?;
    Ok(Json(view(&state, &schedule).await?))
}

/// Resume a schedule; ticks that fell while it was paused do not run.
#[utoipa::path(post, path = "/v1/schedules/{id}/resume", tag = "schedules", params(("id" = String, Path, description = "The schedule's id")),
    responses(
        (status = 200, description = "Running (or already running)", body = ScheduleView),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ))]
pub async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let schedule = schedule::resume(state.store.as_ref(), &id, Utc::now()).await?;
    Ok(Json(view(&state, &schedule).await?))
}

/// One run now, through the schedule's overlap policy (`fired` is empty when the policy
/// held it back).
#[utoipa::path(post, path = "/v1/schedules/{id}/trigger", tag = "schedules", params(("id" = String, Path, description = "The schedule's id")),
    responses(
        (status = 202, description = "Handled: the job it enqueued, if any", body = Triggered),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ))]
pub async fn trigger(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let done = schedule::trigger(state.store.as_ref(), &id, Utc::now()).await?;
    let body = Triggered {
        fired: done
            .fired
            .iter()
            .map(|&(tick, job_id)| Fired {
                tick: secs(tick),
                job_id,
            })
            .collect(),
        skipped: done.skipped,
        lost_race: done.lost_race,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}
