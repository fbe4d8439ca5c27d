//! drover's HTTP API (SPEC §4): jobs, queues, workers, schedules, suppressions and the apply
//! workload's profiles under
//! `/v1`, the SSE event stream, the open unsubscribe routes (`/u/{token}`), the OpenAPI
//! document, Prometheus metrics, health, and the dashboard page; and the health
//! and metrics endpoints a worker process serves ([`WorkerEndpoints`]).
//!
//! Handlers are thin: they parse and validate at the edge, call the store, and turn every
//! failure into `{"error": {"code", "message"}}` through [`ApiError`]. What every request
//! goes through is a layer: the access log, the deadline, the Host and cross-site checks
//! ([`origin`]), `nosniff`, the body limit, and the token on `/v1`.

mod access_log;
mod auth;
mod error;
mod gates;
mod headers;
mod limits;
mod openapi;
mod ops;
mod origin;
mod process_metrics;
mod profiles;
mod routes;
mod schedules;
mod server;
pub mod sse;
mod suppressions;
mod unsubscribe;
mod worker_ops;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use drover_queue::Store;
use drover_worker::Registry;

pub use error::ApiError;
pub use openapi::document as openapi_document;
pub use origin::url_host;
pub use sse::EventHub;
pub use worker_ops::WorkerEndpoints;

/// What the API serves from. No `Debug`: it holds the token.
#[derive(Clone)]
pub struct ApiConfig {
    /// When set, every `/v1` route needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Request bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// Host names, besides the bound address (and `localhost` on loopback), that requests
    /// may carry in `Host`; others are refused with 403 (DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// The address the server listens on; [`serve_on`] sets it from its listener. `None`
    /// (a router used in-process) is treated as loopback.
    pub bound: Option<SocketAddr>,
    /// A handler that has not answered in this long gets 503 `timeout`.
    pub request_timeout: Duration,
    /// A connection that has not sent its request headers in this long is closed.
    pub header_read_timeout: Duration,
    /// Event streams open at once; past this, `GET …/events` answers 429.
    pub max_sse_streams: usize,
    /// The `secrets` key unsubscribe tokens are verified under; without it `/u/{token}`
    /// answers 404 to every token.
    pub secret_key: Option<drover_queue::secret::SecretKey>,
    /// Earlier `secrets` keys (`secrets.previous_keys`): sessions sealed under them still
    /// open; new ones are sealed under `secret_key`.
    pub previous_secret_keys: Vec<drover_queue::secret::SecretKey>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            token: None,
            max_body_bytes: 1024 * 1024,
            allowed_hosts: Vec::new(),
            bound: None,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_sse_streams: 1000,
            secret_key: None,
            previous_secret_keys: Vec::new(),
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
    /// One permit per open event stream (`config.max_sse_streams` in all).
    pub sse_streams: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// State for a router on `store`; starts the SSE hub on the current runtime.
    pub fn new(store: Arc<dyn Store>, registry: Registry, config: ApiConfig) -> Self {
        AppState {
            hub: EventHub::start(store.clone()),
            sse_streams: Arc::new(tokio::sync::Semaphore::new(config.max_sse_streams)),
            store,
            registry,
            config,
        }
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    // Hash the dashboard's inline script and style now, not on the first page view.
    headers::dashboard_csp();
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
        .route("/jobs/{id}/gates", get(gates::job_gates))
        .route("/jobs/{id}/gates/{key}", post(gates::decide))
        .route("/gates", get(gates::inbox))
        .route("/queues", get(routes::queues))
        .route("/queues/{name}/pause", post(routes::pause_queue))
        .route("/queues/{name}/resume", post(routes::resume_queue))
        .route("/workers", get(routes::workers))
        .route("/schedules", post(schedules::create).get(schedules::list))
        .route(
            "/schedules/{id}",
            get(schedules::show)
                .put(schedules::replace)
                .delete(schedules::delete),
        )
        .route("/schedules/{id}/pause", post(schedules::pause))
        .route("/schedules/{id}/resume", post(schedules::resume))
        .route("/schedules/{id}/trigger", post(schedules::trigger))
        .route(
            "/suppressions",
            get(suppressions::list).post(suppressions::create),
        )
        .route(
            "/suppressions/{email}",
            axum::routing::delete(suppressions::delete),
        )
        .route(
            "/profiles/{user_id}",
            get(profiles::show)
                .put(profiles::put)
                .delete(profiles::delete),
        )
        .route(
            "/profiles/{user_id}/resume",
            axum::routing::put(profiles::put_resume),
        )
        .route("/profiles/{user_id}/sessions", get(profiles::sessions))
        .route(
            "/profiles/{user_id}/sessions/{site}",
            axum::routing::put(profiles::put_session).delete(profiles::delete_session),
        )
        .route(
            "/profiles/{user_id}/applications",
            get(profiles::applications),
        )
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
        .route(
            "/u/{token}",
            get(unsubscribe::show).post(unsubscribe::unsubscribe),
        )
        .fallback(ops::not_found)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(axum::middleware::from_fn(headers::nosniff))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            origin::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::deadline,
        ))
        .layer(axum::middleware::from_fn(access_log::log))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves; open SSE streams are closed
/// then, and their clients reconnect elsewhere with `Last-Event-ID`.
pub async fn serve_on(
    mut state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    ops::install_metrics();
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "API listening");
    state.config.bound = Some(addr);
    let header_read_timeout = state.config.header_read_timeout;
    let hub = state.hub.clone();
    let shutdown = async move {
        shutdown.await;
        hub.close();
    };
    server::serve(listener, router(state), header_read_timeout, shutdown).await
}
