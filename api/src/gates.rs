//! Gates: a job's questions to an operator, their decisions, and the inbox across jobs
//! (SPEC §2, waiting). A decision is validated, durable and idempotent: the same decision
//! again → 200, a different one → 409, one the gate does not accept → 422 naming
//! `decision`, an unknown gate → 404.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use drover_queue::{Decision, Gate, GateCursor, GateFilter, GateStatus, JobId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::routes::{page_limit, parse_body};
use crate::{ApiError, AppState};

/// A job's gates.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GateList {
    pub gates: Vec<Gate>,
}

/// A page of the inbox, oldest opened first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GateInbox {
    pub gates: Vec<Gate>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// An operator's answer to one gate.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// One of the gate's `decisions`, or a value its `schema` accepts.
    #[schema(value_type = Object)]
    pub decision: Value,
    /// Why, for the record (at most 10,000 bytes).
    #[serde(default)]
    pub note: Option<String>,
}

fn parse_job_id(id: &str) -> Result<JobId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("job {id} not found (not a job id)")))
}

/// A job's gates, oldest opened first.
#[utoipa::path(get, path = "/v1/jobs/{id}/gates", tag = "gates",
    params(("id" = String, Path)),
    responses((status = 200, body = GateList), (status = 404, body = crate::error::ErrorBody)))]
pub async fn job_gates(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<GateList>, ApiError> {
    let gates = state.store.gates(parse_job_id(&id)?).await?;
    Ok(Json(GateList { gates }))
}

/// Decide a gate: `{"decision": …, "note"?}`.
#[utoipa::path(post, path = "/v1/jobs/{id}/gates/{key}", tag = "gates",
    params(("id" = String, Path), ("key" = String, Path)),
    request_body = DecisionBody,
    responses((status = 200, description = "Decided (now, or with the same decision before)", body = Gate),
        (status = 404, description = "No such job or gate", body = crate::error::ErrorBody),
        (status = 409, description = "Decided otherwise, timed out, or the job finished", body = crate::error::ErrorBody),
        (status = 422, description = "A decision the gate does not accept", body = crate::error::ErrorBody)))]
pub async fn decide(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Gate>, ApiError> {
    let job = parse_job_id(&id)?;
    if drover_queue::gate::check_gate_key(&key).is_err() {
        return Err(ApiError::not_found(format!(
            "job {job} has no gate `{}`",
            key.escape_debug()
        )));
    }
    let value = parse_body(&headers, &body)?;
    let body: DecisionBody = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        ApiError::invalid(&field, e.into_inner())
    })?;
    let gate = state
        .store
        .decide(
            job,
            Decision {
                key,
                decision: body.decision,
                note: body.note,
            },
        )
        .await?;
    if let Some(decided_at) = gate.decided_at {
        let waited = (decided_at - gate.opened_at).to_std().unwrap_or_default();
        metrics::histogram!("drover_gate_decision_seconds").record(waited.as_secs_f64());
    }
    Ok(Json(gate))
}

/// The inbox: gates across jobs that are not finished, oldest opened first.
#[utoipa::path(get, path = "/v1/gates", tag = "gates",
    params(
        ("status" = Option<String>, Query, description = "open (default) | decided | timed_out"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, body = GateInbox), (status = 400, body = crate::error::ErrorBody)))]
pub async fn inbox(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<GateInbox>, ApiError> {
    for key in query.keys() {
        if !matches!(key.as_str(), "status" | "limit" | "cursor") {
            return Err(ApiError::bad_request(format!(
                "{key}: unknown query parameter (expected status, limit, cursor)"
            )));
        }
    }
    let status = match query.get("status") {
        None => None,
        Some(s) => Some(
            s.parse::<GateStatus>()
                .map_err(|e| ApiError::bad_request(format!("status: {e}")))?,
        ),
    };
    let limit = page_limit(&query)?;
    let after = match query.get("cursor") {
        None => None,
        Some(c) => Some(
            GateCursor::parse(c)
                .ok_or_else(|| ApiError::bad_request("cursor: not a cursor this API returned"))?,
        ),
    };
    let page = state
        .store
        .gate_inbox(&GateFilter {
            status,
            after,
            limit,
        })
        .await?;
    Ok(Json(GateInbox {
        gates: page.gates,
        next_cursor: page.next.map(|c| c.token()),
    }))
}
