//! `/v1` handlers: parse and validate at the edge, call the store, answer JSON.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use drover_queue::{
    ArtifactMeta, Checkpoint, Enqueued, Job, JobFilter, JobId, JobStatus, NewJob, QueueStats,
    WorkerInfo,
};
use futures_util::StreamExt as _;
use serde::Serialize;

use crate::error::ErrorBody;
use crate::{ApiError, AppState};

/// The most jobs one batch may hold.
pub const MAX_BATCH: usize = 10_000;

#[derive(Serialize, utoipa::ToSchema)]
pub struct JobList {
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct JobBatch {
    pub jobs: Vec<Job>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckpointList {
    pub checkpoints: Vec<Checkpoint>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ArtifactList {
    pub artifacts: Vec<ArtifactMeta>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct QueueList {
    pub queues: Vec<QueueStats>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WorkerList {
    pub workers: Vec<WorkerInfo>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct QueueState {
    pub queue: String,
    pub paused: bool,
}

fn parse_id(id: &str) -> Result<JobId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("job {id} not found (not a job id)")))
}

/// A list's `limit` query parameter: 1 to 1000, 50 when absent.
pub(crate) fn page_limit(query: &HashMap<String, String>) -> Result<usize, ApiError> {
    match query.get("limit") {
        None => Ok(50),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| ApiError::bad_request("limit: must be a number from 1 to 1000")),
    }
}

/// Parses a job body; errors name the field (`priority`, `timeouts.step_timeout`, …).
fn parse_job(mut value: serde_json::Value, at: &str) -> Result<NewJob, ApiError> {
    let field = |path: &str| match (at.is_empty(), path) {
        (true, ".") => "body".to_string(),
        (true, _) => path.to_string(),
        (false, ".") => at.to_string(),
        (false, _) => format!("{at}.{path}"),
    };
    // serde would also read a struct from an array of its fields; JSON bodies name them.
    let Some(fields) = value.as_object_mut() else {
        return Err(ApiError::invalid(&field("."), "must be a JSON object"));
    };
    if let Some(timeouts) = fields.get_mut("timeouts") {
        let Some(timeouts) = timeouts.as_object_mut() else {
            return Err(ApiError::invalid(
                &field("timeouts"),
                "must be a JSON object",
            ));
        };
        timeouts
            .values_mut()
            .for_each(drover_queue::job::whole_number);
    }
    if let Some(max_attempts) = fields.get_mut("max_attempts") {
        drover_queue::job::whole_number(max_attempts);
    }
    serde_path_to_error::deserialize::<_, NewJob>(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid(&field(&path), e.into_inner())
    })
}

/// A query parameter's text; U+0000, which no store can hold, is refused naming it.
fn query_text(query: &HashMap<String, String>, name: &str) -> Result<Option<String>, ApiError> {
    match query.get(name) {
        Some(text) if text.contains('\0') => Err(ApiError::bad_request(format!(
            "{name}: {}",
            drover_queue::job::NUL_MESSAGE
        ))),
        text => Ok(text.cloned()),
    }
}

/// A JSON request body: `Content-Type: application/json` (415 otherwise, which also keeps
/// browsers' cross-site "simple" form and `fetch` posts out), then valid JSON (400).
pub(crate) fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<serde_json::Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let essence = content_type.map(|v| v.split(';').next().unwrap_or("").trim());
    if !essence.is_some_and(|e| e.eq_ignore_ascii_case("application/json")) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type: must be application/json, got {}",
                content_type.map_or("none".to_string(), |v| format!("`{v}`"))
            ),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("body: not valid JSON: {e}")))
}

fn prepare(state: &AppState, job: NewJob, at: &str) -> Result<NewJob, ApiError> {
    state.registry.prepare(job).map_err(|e| {
        let field = if at.is_empty() {
            e.field.to_string()
        } else {
            format!("{at}.{}", e.field)
        };
        ApiError::invalid(&field, e.message)
    })
}

/// Submit a job.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = NewJob,
    responses(
        (status = 201, description = "Stored", body = Job),
        (status = 200, description = "A job with this idempotency_key and the same body exists", body = Job),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "A field is invalid (named in the message)", body = ErrorBody),
        (status = 409, description = "idempotency_key used with a different body", body = ErrorBody),
        (status = 429, description = "The queue holds max_queue_size jobs", body = ErrorBody),
    ))]
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let job = prepare(&state, parse_job(parse_body(&headers, &body)?, "")?, "")?;
    let kind = job.kind.clone();
    let outcome = state.store.enqueue(job).await?;
    Ok(match outcome {
        Enqueued::Created(job) => {
            metrics::counter!("drover_jobs_enqueued_total", "kind" => kind).increment(1);
            (StatusCode::CREATED, Json(job)).into_response()
        }
        Enqueued::Existing(job) => (StatusCode::OK, Json(job)).into_response(),
    })
}

/// Submit many jobs in one transaction (all or none).
#[utoipa::path(post, path = "/v1/jobs/batch", tag = "jobs", request_body = Vec<NewJob>,
    responses(
        (status = 201, description = "Stored (jobs that already existed by idempotency_key are returned as they are)", body = JobBatch),
        (status = 400, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
pub async fn submit_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let serde_json::Value::Array(items) = parse_body(&headers, &body)? else {
        return Err(ApiError::invalid("body", "must be an array of jobs"));
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "body",
            format!("must hold 1 to {MAX_BATCH} jobs"),
        ));
    }
    let mut jobs = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("[{i}]");
        jobs.push(prepare(&state, parse_job(item, &at)?, &at)?);
    }
    let mut created: HashMap<String, u64> = HashMap::new();
    let results = state.store.enqueue_batch(jobs).await?;
    for result in &results {
        if result.is_created() {
            *created.entry(result.job().kind.clone()).or_default() += 1;
        }
    }
    for (kind, n) in created {
        metrics::counter!("drover_jobs_enqueued_total", "kind" => kind).increment(n);
    }
    let jobs = results.into_iter().map(Enqueued::into_job).collect();
    Ok((StatusCode::CREATED, Json(JobBatch { jobs })).into_response())
}

/// List jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    params(
        ("status" = Option<String>, Query, description = "queued | running | paused | completed | failed | cancelled"),
        ("kind" = Option<String>, Query), ("created_by" = Option<String>, Query),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, body = JobList), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<JobList>, ApiError> {
    for key in query.keys() {
        if !matches!(
            key.as_str(),
            "status" | "kind" | "created_by" | "limit" | "cursor"
        ) {
            return Err(ApiError::bad_request(format!(
                "{key}: unknown query parameter (expected status, kind, created_by, limit, cursor)"
            )));
        }
    }
    let status = match query.get("status") {
        None => None,
        Some(s) => Some(
            s.parse::<JobStatus>()
                .map_err(|e| ApiError::bad_request(format!("status: {e}")))?,
        ),
    };
    let limit = page_limit(&query)?;
    let before = match query.get("cursor") {
        None => None,
        Some(c) => Some(
            c.parse::<JobId>()
                .map_err(|_| ApiError::bad_request("cursor: not a cursor this API returned"))?,
        ),
    };
    let page = state
        .store
        .list(&JobFilter {
            status,
            kind: query_text(&query, "kind")?,
            created_by: query_text(&query, "created_by")?,
            before,
            limit,
        })
        .await?;
    Ok(Json(JobList {
        jobs: page.jobs,
        next_cursor: page.next.map(|id| id.to_string()),
    }))
}

/// One job.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path)),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(state.store.get(parse_id(&id)?).await?))
}

/// Pause: a queued job at once; a running one at its next safe point.
#[utoipa::path(post, path = "/v1/jobs/{id}/pause", tag = "jobs", params(("id" = String, Path)),
    responses((status = 202, body = Job), (status = 404, body = ErrorBody),
        (status = 409, description = "Not allowed from the job's status", body = ErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(state.store.pause(parse_id(&id)?).await?),
    ))
}

/// Resume a paused job (or withdraw a running job's pending pause).
#[utoipa::path(post, path = "/v1/jobs/{id}/resume", tag = "jobs", params(("id" = String, Path)),
    responses((status = 202, body = Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(state.store.resume(parse_id(&id)?).await?),
    ))
}

/// Cancel: queued or paused at once; running at its next safe point.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path)),
    responses((status = 202, body = Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(state.store.cancel(parse_id(&id)?).await?),
    ))
}

/// The job's events as Server-Sent Events: replay after `Last-Event-ID` (or `?after=`),
/// then live; `event: end` after the terminal status.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = String, Path), ("after" = Option<i64>, Query, description = "replay after this seq"),
        ("Last-Event-ID" = Option<i64>, Header, description = "replay after this seq (wins over after)")),
    responses((status = 200, description = "text/event-stream: id = seq, event = status | progress | checkpoint | log | artifact | error | end, data = JSON"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, description = "api.max_sse_streams streams are open", body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    // Both are checked when both are sent, though the header wins.
    let after_query =
        match query.get("after") {
            Some(after) => Some(after.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(
                || ApiError::bad_request("after: must be an event seq (a whole number)"),
            )?),
            None => None,
        };
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|v| *v >= 0)
            .ok_or_else(|| {
                ApiError::bad_request("Last-Event-ID: must be an event seq (a whole number)")
            })?,
        None => after_query.unwrap_or(0),
    };
    // A feed this request starts broadcasts from the newest event; the client replays the
    // rest from the store itself.
    let job = state.store.get(id).await?;
    let permit = state.sse_streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!(
                "{} event streams are open, the most this server allows \
                 (api.max_sse_streams); retry later",
                state.config.max_sse_streams
            ),
        )
    })?;
    let response = crate::sse::stream(&state.hub, state.store.clone(), id, after, job.event_seq)
        .into_response();
    // The stream holds its permit until it ends or its client leaves.
    Ok(response.map(|body| {
        axum::body::Body::from_stream(body.into_data_stream().map(move |chunk| {
            let _held = &permit;
            chunk
        }))
    }))
}

/// The kept checkpoints' metadata.
#[utoipa::path(get, path = "/v1/jobs/{id}/checkpoints", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = CheckpointList), (status = 404, body = ErrorBody)))]
pub async fn checkpoints(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CheckpointList>, ApiError> {
    let id = parse_id(&id)?;
    state.store.get(id).await?;
    Ok(Json(CheckpointList {
        checkpoints: state.store.checkpoints(id).await?,
    }))
}

/// The job's artifacts.
#[utoipa::path(get, path = "/v1/jobs/{id}/artifacts", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = ArtifactList), (status = 404, body = ErrorBody)))]
pub async fn artifacts(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ArtifactList>, ApiError> {
    let id = parse_id(&id)?;
    state.store.get(id).await?;
    Ok(Json(ArtifactList {
        artifacts: state.store.artifacts(id).await?,
    }))
}

/// Download one artifact.
#[utoipa::path(get, path = "/v1/jobs/{id}/artifacts/{name}", tag = "jobs",
    params(("id" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "The artifact's bytes, with its content type", content_type = "*/*"),
        (status = 404, body = ErrorBody),
        (status = 422, description = "`name` is not an artifact name", body = ErrorBody)))]
pub async fn artifact(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    drover_queue::check_artifact_name(&name).map_err(|e| ApiError::invalid("name", e.message))?;
    let artifact = state
        .store
        .artifact(id, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} has no artifact `{name}`")))?;
    // The kind chose the content type; a value that is no header value is served as bytes.
    let content_type = header::HeaderValue::from_str(&artifact.meta.content_type)
        .unwrap_or(header::HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_DISPOSITION,
                crate::headers::attachment(&name),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_static(crate::headers::DOWNLOAD_CSP),
            ),
        ],
        artifact.data,
    )
        .into_response())
}

/// Per queue: depth by status and priority, oldest waiting age, paused flag.
#[utoipa::path(get, path = "/v1/queues", tag = "queues", responses((status = 200, body = QueueList)))]
pub async fn queues(State(state): State<AppState>) -> Result<Json<QueueList>, ApiError> {
    Ok(Json(QueueList {
        queues: state.store.queues().await?,
    }))
}

fn queue_name(name: &str) -> Result<(), ApiError> {
    // The API names the path parameter; the rule itself is the store's.
    drover_queue::job::check_queue_name(name).map_err(|e| ApiError::invalid("name", e.message))
}

/// Stop leasing from a queue.
#[utoipa::path(post, path = "/v1/queues/{name}/pause", tag = "queues", params(("name" = String, Path)),
    responses((status = 202, body = QueueState), (status = 422, body = ErrorBody)))]
pub async fn pause_queue(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<QueueState>), ApiError> {
    queue_name(&name)?;
    state.store.pause_queue(&name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(QueueState {
            queue: name,
            paused: true,
        }),
    ))
}

/// Restart leasing from a queue.
#[utoipa::path(post, path = "/v1/queues/{name}/resume", tag = "queues", params(("name" = String, Path)),
    responses((status = 202, body = QueueState), (status = 422, body = ErrorBody)))]
pub async fn resume_queue(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<QueueState>), ApiError> {
    queue_name(&name)?;
    state.store.resume_queue(&name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(QueueState {
            queue: name,
            paused: false,
        }),
    ))
}

/// A worker whose last heartbeat is older than this is not listed (nor scraped) as live.
pub(crate) const LIVE_WORKER_WINDOW: Duration = Duration::from_secs(60);

/// Live workers (a heartbeat within the last minute).
#[utoipa::path(get, path = "/v1/workers", tag = "workers", responses((status = 200, body = WorkerList)))]
pub async fn workers(State(state): State<AppState>) -> Result<Json<WorkerList>, ApiError> {
    Ok(Json(WorkerList {
        workers: state.store.workers(LIVE_WORKER_WINDOW).await?,
    }))
}
