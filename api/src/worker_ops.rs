//! What a `drover worker` process serves on `--bind`, for probes and scrapers:
//!
//! - `/healthz`: 200 while the process runs, draining included, so that a liveness probe
//!   never kills a worker that is handing its jobs back;
//! - `/readyz`: 503 from the moment a shutdown begins, and while the store does not answer
//!   (the reason is named, the store's error text is not: it goes to the log);
//! - `/metrics`: Prometheus text, with the store-wide `drover_queue_depth{queue,status}`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use drover_queue::Store;
use serde_json::json;
use tokio::sync::watch;

use crate::ops;

/// A store that takes longer than this to answer is not ready; probes give up after a
/// second or a few, and an answer after that is worth nothing to them.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the worker endpoints read.
#[derive(Clone)]
pub struct WorkerEndpoints {
    store: Arc<dyn Store>,
    draining: watch::Receiver<bool>,
}

impl WorkerEndpoints {
    /// Endpoints for a worker on `store`; `draining` turns true when its shutdown begins.
    pub fn new(store: Arc<dyn Store>, draining: watch::Receiver<bool>) -> Self {
        WorkerEndpoints { store, draining }
    }

    /// The routes, for serving or for calling in-process.
    pub fn router(self) -> Router {
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .fallback(ops::not_found)
            .with_state(self)
    }

    /// Serves the endpoints on `listener` until `shutdown` resolves. Installs the metrics
    /// recorder first, so start this before the pool to count its first jobs.
    pub async fn serve_on(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        ops::install_metrics();
        tracing::info!(addr = ?listener.local_addr().ok(), "worker endpoints listening");
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    fn draining(&self) -> bool {
        *self.draining.borrow()
    }
}

async fn healthz(State(endpoints): State<WorkerEndpoints>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "draining": endpoints.draining() }))
}

async fn readyz(State(endpoints): State<WorkerEndpoints>) -> Response {
    let not_ready = |reason: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reason": reason })),
        )
            .into_response()
    };
    if endpoints.draining() {
        return not_ready("draining");
    }
    match tokio::time::timeout(STORE_CHECK_TIMEOUT, endpoints.store.next_run_at()).await {
        Ok(Ok(_)) => {
            Json(json!({ "status": "ready", "store": endpoints.store.backend() })).into_response()
        }
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: the store does not answer");
            not_ready("store_unavailable")
        }
        Err(_) => {
            tracing::warn!(timeout = ?STORE_CHECK_TIMEOUT, "readiness: the store did not answer in time");
            not_ready("store_unavailable")
        }
    }
}

async fn metrics(State(endpoints): State<WorkerEndpoints>) -> Response {
    ops::prometheus_text(&*endpoints.store).await
}
