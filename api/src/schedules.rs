//! `/v1/schedules`: schedules managed at run time. Handlers parse and validate at the edge
//! (a bad cron, zone or template is a 422 naming the field) and call
//! [`drover_queue::schedule`], which every process's evaluator then follows.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use drover_queue::schedule::{self, Save, Schedule, ScheduleError, ScheduleSpec};
use drover_queue::StoreError;
use serde_json::{json, Value};

use crate::routes::parse_body;
use crate::{ApiError, AppState};

/// How many next and last runs a schedule shows.
const SHOWN_RUNS: usize = 10;

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

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
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

/// A schedule as the API shows it: its declaration, counters, next and last runs.
async fn view(state: &AppState, schedule: &Schedule) -> Result<Value, ApiError> {
    let mut out = serde_json::to_value(&schedule.spec).unwrap_or_default();
    let mut last_runs = Vec::new();
    for run in schedule.state.recent.iter().take(SHOWN_RUNS) {
        let status = match state.store.get(run.job_id).await {
            Ok(job) => Value::String(job.status.to_string()),
            Err(StoreError::NotFound(_)) => Value::Null,
            Err(err) => return Err(err.into()),
        };
        last_runs.push(json!({"tick": rfc3339(run.tick), "job_id": run.job_id, "status": status}));
    }
    let next_runs: Vec<String> = schedule::next_runs(schedule, SHOWN_RUNS)
        .into_iter()
        .map(rfc3339)
        .collect();
    if let Value::Object(map) = &mut out {
        let s = &schedule.state;
        map.insert("next_runs".into(), json!(next_runs));
        map.insert("last_runs".into(), Value::Array(last_runs));
        map.insert("runs".into(), json!(s.runs));
        map.insert("skipped".into(), json!(s.skipped));
        map.insert("missed".into(), json!(s.missed));
        map.insert("created_at".into(), json!(rfc3339(s.created_at)));
        map.insert("updated_at".into(), json!(rfc3339(s.updated_at)));
    }
    Ok(out)
}

async fn stored(state: &AppState, id: &str) -> Result<Schedule, ApiError> {
    state
        .store
        .schedule(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("schedule `{id}` not found")))
}

/// `POST /v1/schedules`: 201 with the schedule; 409 when the id is taken.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let spec = parse_spec(&state, parse_body(&headers, &body)?, None)?;
    let schedule = schedule::save(state.store.as_ref(), spec, Save::Create, Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &schedule).await?)).into_response())
}

/// `GET /v1/schedules`: every schedule, by id.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for schedule in state.store.schedules().await? {
        out.push(view(&state, &schedule).await?);
    }
    Ok(Json(json!({ "schedules": out })))
}

/// `GET /v1/schedules/{id}`.
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let schedule = stored(&state, &id).await?;
    Ok(Json(view(&state, &schedule).await?))
}

/// `PUT /v1/schedules/{id}`: replaces the declaration (counters and last runs stay).
pub async fn replace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let spec = parse_spec(&state, parse_body(&headers, &body)?, Some(&id))?;
    let schedule = schedule::save(state.store.as_ref(), spec, Save::Replace, Utc::now()).await?;
    Ok(Json(view(&state, &schedule).await?))
}

/// `DELETE /v1/schedules/{id}`: 204; the jobs it enqueued stay.
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

/// `POST /v1/schedules/{id}/pause`.
pub async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let schedule = schedule::pause(state.store.as_ref(), &id, Utc::now()).await?;
    Ok(Json(view(&state, &schedule).await?))
}

/// `POST /v1/schedules/{id}/resume`: ticks that fell while paused do not run.
pub async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let schedule = schedule::resume(state.store.as_ref(), &id, Utc::now()).await?;
    Ok(Json(view(&state, &schedule).await?))
}

/// `POST /v1/schedules/{id}/trigger`: one run now, through the overlap policy. 202 with the
/// job it enqueued (`fired` empty when the policy held it back).
pub async fn trigger(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let done = schedule::trigger(state.store.as_ref(), &id, Utc::now()).await?;
    let fired: Vec<Value> = done
        .fired
        .iter()
        .map(|(tick, job)| json!({"tick": rfc3339(*tick), "job_id": job}))
        .collect();
    let body = json!({"fired": fired, "skipped": done.skipped, "lost_race": done.lost_race});
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}
