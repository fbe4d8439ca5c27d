//! Operations routes: the dashboard page, the OpenAPI document, Prometheus metrics,
//! liveness and readiness.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use drover_queue::{JobStatus, Store, StoreError, WorkerInfo};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use utoipa::OpenApi;

use crate::error::ErrorBody;
use crate::process_metrics::ProcessStats;
use crate::{routes, ApiError, AppState};

#[derive(OpenApi)]
#[openapi(
    info(title = "drover", description = "Durable job queue workers for long-running agent work"),
    paths(
        routes::submit, routes::submit_batch, routes::list, routes::show, routes::pause,
        routes::resume, routes::cancel, routes::events, routes::checkpoints, routes::artifacts,
        routes::artifact, routes::queues, routes::pause_queue, routes::resume_queue,
        routes::workers, crate::gates::job_gates, crate::gates::decide, crate::gates::inbox,
        crate::schedules::create, crate::schedules::list, crate::schedules::show,
        crate::schedules::replace, crate::schedules::delete, crate::schedules::pause,
        crate::schedules::resume, crate::schedules::trigger,
        crate::suppressions::list, crate::suppressions::create, crate::suppressions::delete,
        crate::unsubscribe::show, crate::unsubscribe::unsubscribe,
        crate::profiles::put, crate::profiles::show, crate::profiles::delete,
        crate::profiles::put_resume, crate::profiles::put_session, crate::profiles::sessions,
        crate::profiles::delete_session, crate::profiles::applications,
        dashboard, openapi, metrics, healthz, readyz,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags((name = "jobs"), (name = "gates"), (name = "queues"), (name = "workers"),
        (name = "schedules"), (name = "suppressions"), (name = "profiles"), (name = "operations"))
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// This API's OpenAPI document, with this process's kinds.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn openapi(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(crate::openapi::document(&state.registry))
}

/// The dashboard page, with a CSP that lets only its own inline script and style run.
#[utoipa::path(get, path = "/", tag = "operations", security(()),
    responses((status = 200, description = "The dashboard page", content_type = "text/html")))]
pub async fn dashboard() -> Response {
    let headers = [
        (
            header::CONTENT_SECURITY_POLICY,
            crate::headers::dashboard_csp().clone(),
        ),
        (
            header::REFERRER_POLICY,
            header::HeaderValue::from_static("no-referrer"),
        ),
    ];
    (headers, Html(crate::headers::DASHBOARD_HTML)).into_response()
}

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "`{\"status\": \"ok\"}`", content_type = "application/json")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the store answers. The route is open, so the store's error (which can name
/// hosts and users) goes to the log, not into the answer.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "The store answers", content_type = "application/json"),
        (status = 503, description = "The store does not answer", body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.next_run_at().await {
        Ok(_) => Json(json!({ "status": "ready", "store": state.store.backend() })).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check: the store did not answer");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store did not answer (the reason is in the server's log)",
            )
            .into_response()
        }
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls are no-ops).
pub fn install_metrics() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => Some(handle),
            Err(err) => {
                tracing::warn!(error = %err, "metrics recorder not installed");
                None
            }
        })
        .as_ref()
}

/// Prometheus text. Queue depth and oldest age are read from the store at scrape time.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain"),
        (status = 503, description = "No metrics recorder could be installed", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    metrics::gauge!("drover_sse_feeds").set(state.hub.feeds() as f64);
    prometheus_text(&*state.store).await
}

/// The process's metrics as Prometheus text, with the store's queue depth read now; 503
/// when no recorder could be installed. Served by the API and by worker processes alike.
pub(crate) async fn prometheus_text(store: &dyn Store) -> Response {
    let Some(handle) = install_metrics() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable",
        )
            .into_response();
    };
    if let Err(err) = record_queue_depth(store).await {
        // The scrape still answers, with the last depth it read.
        tracing::warn!(error = %err, "queue depth not read for /metrics");
    }
    match store.open_gate_count().await {
        Ok(open) => metrics::gauge!("drover_gates_open").set(open as f64),
        Err(err) => tracing::warn!(error = %err, "open gates not counted for /metrics"),
    }
    let mut text = handle.render();
    match store.workers(routes::LIVE_WORKER_WINDOW).await {
        Ok(workers) => text.push_str(&slot_utilization(&workers)),
        Err(err) => tracing::warn!(error = %err, "worker slot utilisation not read for /metrics"),
    }
    match ProcessStats::read() {
        Ok(stats) => text.push_str(&stats.render()),
        Err(err) => tracing::debug!(error = %err, "process metrics not read for /metrics"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `drover_worker_slot_utilization{worker}`: busy slots / slots, as each live worker's last
/// heartbeat reports them (the registry and window of `GET /v1/workers`). Rendered from the
/// registry at each scrape rather than recorded, so that a worker gone from it is gone from
/// the scrape too: worker ids change with every start, and a recorded gauge would keep one
/// series per id for the life of the process.
fn slot_utilization(workers: &[WorkerInfo]) -> String {
    if workers.is_empty() {
        return String::new();
    }
    let mut text = String::from(
        "# HELP drover_worker_slot_utilization Busy slots over slots, per live worker.\n\
         # TYPE drover_worker_slot_utilization gauge\n",
    );
    for worker in workers {
        let ratio = if worker.slots == 0 {
            0.0
        } else {
            f64::from(worker.busy.min(worker.slots)) / f64::from(worker.slots)
        };
        text.push_str(&format!(
            "drover_worker_slot_utilization{{worker=\"{}\"}} {ratio}\n",
            label_value(&worker.id)
        ));
    }
    text.push('\n');
    text
}

/// A label value escaped as the text exposition format wants (`\\`, `\"`, `\n`).
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Queues a scrape has reported: one whose jobs all finish drops out of `Store::queues`, and
/// its gauges must then read 0, not the last count.
static REPORTED_QUEUES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Sets `drover_queue_depth{queue,status}` for every queue the store knows (or that was
/// reported before) and every unfinished status, 0 included, so that an autoscaler always
/// reads a number and a count that emptied reads 0; and `drover_queue_oldest_waiting_seconds`.
async fn record_queue_depth(store: &dyn Store) -> Result<(), StoreError> {
    let queues = store.queues().await?;
    let mut reported = REPORTED_QUEUES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let unfinished = || JobStatus::ALL.into_iter().filter(|s| !s.is_terminal());
    for gone in reported
        .iter()
        .filter(|name| !queues.iter().any(|q| &q.name == *name))
    {
        for status in unfinished() {
            metrics::gauge!("drover_queue_depth", "queue" => gone.clone(), "status" => status.as_str())
                .set(0.0);
        }
        metrics::gauge!("drover_queue_oldest_waiting_seconds", "queue" => gone.clone()).set(0.0);
    }
    for queue in queues {
        for status in unfinished() {
            let n = queue.by_status.get(status.as_str()).copied().unwrap_or(0);
            metrics::gauge!("drover_queue_depth", "queue" => queue.name.clone(), "status" => status.as_str())
                .set(n as f64);
        }
        metrics::gauge!("drover_queue_oldest_waiting_seconds", "queue" => queue.name.clone())
            .set(queue.oldest_waiting_secs.unwrap_or(0.0));
        reported.insert(queue.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_utilization_is_a_ratio_per_worker_with_escaped_ids() {
        let worker = |id: &str, slots, busy| WorkerInfo {
            id: id.into(),
            host: "box".into(),
            pid: 1,
            slots,
            busy,
            started_at: chrono::Utc::now(),
            last_heartbeat: chrono::Utc::now(),
        };
        let text = slot_utilization(&[
            worker("w-1", 4, 3),
            worker("w\"2\\", 0, 0),
            worker("w-3", 2, 5),
        ]);
        assert!(text.contains("# TYPE drover_worker_slot_utilization gauge\n"));
        assert!(
            text.contains("drover_worker_slot_utilization{worker=\"w-1\"} 0.75\n"),
            "{text}"
        );
        assert!(
            text.contains("drover_worker_slot_utilization{worker=\"w\\\"2\\\\\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("drover_worker_slot_utilization{worker=\"w-3\"} 1\n"),
            "{text}"
        );
        assert_eq!(slot_utilization(&[]), "");
    }
}
