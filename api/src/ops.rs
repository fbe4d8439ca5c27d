//! Operations routes: the dashboard page, the OpenAPI document, Prometheus metrics,
//! liveness and readiness.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use utoipa::OpenApi;

use crate::{routes, ApiError, AppState};

#[derive(OpenApi)]
#[openapi(
    info(title = "drover", description = "Durable job queue workers for long-running agent work"),
    paths(
        routes::submit, routes::submit_batch, routes::list, routes::show, routes::pause,
        routes::resume, routes::cancel, routes::events, routes::checkpoints, routes::artifacts,
        routes::artifact, routes::queues, routes::pause_queue, routes::resume_queue,
        routes::workers,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags((name = "jobs"), (name = "queues"), (name = "workers"))
)]
pub struct ApiDoc;

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

pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The dashboard page, with a CSP that lets only its own inline script and style run.
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

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the store answers. The route is open, so the store's error (which can name
/// hosts and users) goes to the log, not into the answer.
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
pub async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = install_metrics() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable",
        )
            .into_response();
    };
    if let Ok(queues) = state.store.queues().await {
        for queue in queues {
            for (status, n) in &queue.by_status {
                metrics::gauge!("drover_queue_depth", "queue" => queue.name.clone(), "status" => status.clone())
                    .set(*n as f64);
            }
            metrics::gauge!("drover_queue_oldest_waiting_seconds", "queue" => queue.name.clone())
                .set(queue.oldest_waiting_secs.unwrap_or(0.0));
        }
    }
    metrics::gauge!("drover_sse_feeds").set(state.hub.feeds() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
