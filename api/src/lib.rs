//! drover's HTTP API (SPEC §4): jobs, queues and workers under `/v1`, the SSE event stream,
//! the OpenAPI document, Prometheus metrics, health, and the dashboard page; and the health
//! and metrics endpoints a worker process serves ([`WorkerEndpoints`]).
//!
//! Handlers are thin: they parse and validate at the edge, call the store, and turn every
//! failure into `{"error": {"code", "message"}}` through [`ApiError`].

mod auth;
mod error;
mod ops;
mod routes;
pub mod sse;
mod worker_ops;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use drover_queue::Store;
use drover_worker::Registry;

pub use error::ApiError;
pub use sse::EventHub;
pub use worker_ops::WorkerEndpoints;

/// What the API serves from.
#[derive(Clone)]
pub struct ApiConfig {
    /// When set, every `/v1` route needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Request bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            token: None,
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub registry: Registry,
    pub hub: Arc<EventHub>,
    pub config: ApiConfig,
}

impl AppState {
    /// State for a router on `store`; starts the SSE hub on the current runtime.
    pub fn new(store: Arc<dyn Store>, registry: Registry, config: ApiConfig) -> Self {
        AppState {
            hub: EventHub::start(store.clone()),
            store,
            registry,
            config,
        }
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/jobs", post(routes::submit).get(routes::list))
        .route("/jobs/batch", post(routes::submit_batch))
        .route("/jobs/{id}", get(routes::show))
        .route("/jobs/{id}/pause", post(routes::pause))
        .route("/jobs/{id}/resume", post(routes::resume))
        .route("/jobs/{id}/cancel", post(routes::cancel))
        .route("/jobs/{id}/events", get(routes::events))
        .route("/jobs/{id}/checkpoints", get(routes::checkpoints))
        .route("/jobs/{id}/artifacts", get(routes::artifacts))
        .route("/jobs/{id}/artifacts/{name}", get(routes::artifact))
        .route("/queues", get(routes::queues))
        .route("/queues/{name}/pause", post(routes::pause_queue))
        .route("/queues/{name}/resume", post(routes::resume_queue))
        .route("/workers", get(routes::workers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .nest("/v1", v1)
        .route("/", get(ops::dashboard))
        .route("/openapi.json", get(ops::openapi))
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .fallback(ops::not_found)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves; open SSE streams are closed
/// then, and their clients reconnect elsewhere with `Last-Event-ID`.
pub async fn serve_on(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    ops::install_metrics();
    tracing::info!(addr = ?listener.local_addr().ok(), "API listening");
    let hub = state.hub.clone();
    let shutdown = async move {
        shutdown.await;
        hub.close();
    };
    // `into_make_service`: a bare `Router` given to `axum::serve` deep-clones its whole route
    // table (every boxed handler and the `AppState` each auth layer holds) for each
    // connection, and the connection keeps that copy while it is open: about 37 KB per
    // connection here, most of what 10,000 SSE clients cost. `router` has applied its state
    // already, so sharing the one table (an `Arc` clone) per connection does the same work.
    axum::serve(listener, router(state).into_make_service())
        .with_graceful_shutdown(shutdown)
        .await
}
