//! drover's sandbox: servers on 127.0.0.1 that speak the real protocols of the services the
//! workloads call — GitHub REST, an OpenAI-compatible chat endpoint, a Resend-shaped mail API,
//! an SMTP sink, Greenhouse/Lever/Ashby job boards and their application forms — over worlds
//! generated from seeds, with a request log and counters that
//! tests and benchmarks read. The tests, `drover demo` and the benchmarks use it (in process,
//! or as `drover sandbox --bind 127.0.0.1:PORT`); nothing in the runtime depends on it.
//!
//! | path | what |
//! |---|---|
//! | `/search/repositories`, `/repos/{o}/{r}/contributors`, `/repos/{o}/{r}/commits`, `/users/{login}`, `/rate_limit` | GitHub REST ([`github`]) |
//! | `POST /v1/chat/completions` | OpenAI-compatible chat ([`llm`]) |
//! | `POST /emails` | Resend-shaped mail API ([`mail`]) |
//! | SMTP on its own port | the sink ([`smtp`]) |
//! | `/v1/boards/{token}/jobs[/{id}]`, `/v0/postings/{site}[/{id}]`, `/posting-api/job-board/{name}` | Greenhouse, Lever and Ashby board APIs ([`boards`]) |
//! | `/gh/{token}/jobs/{id}`, `/lever/{site}/{id}[/apply]`, `/ashby/{name}/{id}`, `/login` | the hosted application forms ([`boards::forms`]) |
//! | `GET /_sandbox/stats`, `/_sandbox/messages`, `/_sandbox/emails`, `/_sandbox/requests`, `/_sandbox/applications`, `/_sandbox/boards[/postings]` | what it saw |
//! | `POST /_sandbox/smtp/rules`, `/_sandbox/llm`, `/_sandbox/github`, `/_sandbox/boards/postings`, `/_sandbox/boards/{board}/fail` | how it behaves from now on |

pub mod boards;
pub mod github;
pub mod llm;
pub mod log;
pub mod mail;
pub mod smtp;
pub mod world;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use boards::{Ats, Boards, BoardsConfig, PostingSpec, Variant};
pub use github::GithubConfig;
pub use log::Stats;
pub use smtp::Rule;
pub use world::WorldConfig;

/// What to start.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The HTTP services (GitHub, chat, mail, control); port 0 picks a free one.
    pub bind: SocketAddr,
    /// The SMTP sink; port 0 picks a free one.
    pub smtp_bind: SocketAddr,
    pub world: WorldConfig,
    pub github: GithubConfig,
    /// The job boards' postings and how often their forms put up a wall.
    pub boards: BoardsConfig,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        SandboxConfig {
            bind: local,
            smtp_bind: local,
            world: WorldConfig::default(),
            github: GithubConfig::default(),
            boards: BoardsConfig::default(),
        }
    }
}

/// A running sandbox; its servers stop when it is dropped.
pub struct Sandbox {
    pub http: SocketAddr,
    pub smtp: SocketAddr,
    pub github: Arc<github::Github>,
    pub llm: Arc<llm::Llm>,
    pub mail: Arc<mail::MailApi>,
    pub sink: Arc<smtp::Sink>,
    /// The job boards: place fixtures ([`Boards::add`]), read submissions
    /// ([`Boards::applications`]).
    pub boards: Arc<Boards>,
    pub log: Arc<log::Log>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Clone)]
struct Parts {
    github: Arc<github::Github>,
    llm: Arc<llm::Llm>,
    mail: Arc<mail::MailApi>,
    sink: Arc<smtp::Sink>,
    boards: Arc<Boards>,
    log: Arc<log::Log>,
}

impl Sandbox {
    pub async fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        let log = Arc::new(log::Log::default());
        let parts = Parts {
            github: Arc::new(github::Github::new(
                world::World::new(config.world),
                config.github,
                log.clone(),
            )),
            llm: Arc::new(llm::Llm::new(log.clone())),
            mail: Arc::new(mail::MailApi::new(log.clone())),
            sink: Arc::new(smtp::Sink::new(log.clone())),
            boards: Arc::new(Boards::new(config.boards, log.clone())),
            log: log.clone(),
        };
        let http = TcpListener::bind(config.bind).await?;
        let smtp = TcpListener::bind(config.smtp_bind).await?;
        let (http_addr, smtp_addr) = (http.local_addr()?, smtp.local_addr()?);
        let app = Router::new()
            .merge(github::routes(parts.github.clone()))
            .merge(llm::routes(parts.llm.clone()))
            .merge(mail::routes(parts.mail.clone()))
            .merge(boards::routes(parts.boards.clone()))
            .merge(control(parts.clone()));
        let serve = tokio::spawn(async move {
            if let Err(err) = axum::serve(http, app).await {
                tracing::warn!(error = %err, "sandbox HTTP server stopped");
            }
        });
        let sink = tokio::spawn(parts.sink.clone().serve(smtp));
        Ok(Sandbox {
            http: http_addr,
            smtp: smtp_addr,
            github: parts.github,
            llm: parts.llm,
            mail: parts.mail,
            sink: parts.sink,
            boards: parts.boards,
            log,
            tasks: vec![serve, sink],
        })
    }

    /// `http://127.0.0.1:PORT`: the base URL of every HTTP service.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn stats(&self) -> Stats {
        self.log.stats()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn bad(field: &str, message: &str) -> Response {
    let body = json!({"error": {"code": "invalid_input", "field": field, "message": message}});
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SmtpRule {
    recipient: String,
    /// `defer`, `reject`, `drop_after_data`, or null to clear.
    rule: Option<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LlmSettings {
    rate_limit_every: Option<u64>,
    retry_after_ms: Option<u64>,
    out_of_quota: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GithubSettings {
    core_limit: Option<u64>,
    core_window_s: Option<u64>,
    search_limit: Option<u64>,
    search_window_s: Option<u64>,
    limited_status: Option<u16>,
    max_concurrent: Option<usize>,
    latency_ms: Option<u64>,
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| Box::new(bad("body", &e.to_string())))
}

fn control(parts: Parts) -> Router {
    Router::new()
        .route(
            "/_sandbox/stats",
            get(|State(p): State<Parts>| async move { Json(p.log.stats()) }),
        )
        .route(
            "/_sandbox/requests",
            get(|State(p): State<Parts>| async move { Json(p.log.requests()) }),
        )
        .route(
            "/_sandbox/messages",
            get(|State(p): State<Parts>| async move { Json(p.sink.messages()) }),
        )
        .route(
            "/_sandbox/emails",
            get(|State(p): State<Parts>| async move { Json(p.mail.sent()) }),
        )
        .route(
            "/_sandbox/smtp/rules",
            post(
                |State(p): State<Parts>, body: axum::body::Bytes| async move {
                    let rule: SmtpRule = match parse(&body) {
                        Ok(r) => r,
                        Err(e) => return *e,
                    };
                    if !rule.recipient.contains('@') {
                        return bad("recipient", "must be an e-mail address");
                    }
                    p.sink.set_rule(&rule.recipient, rule.rule);
                    StatusCode::NO_CONTENT.into_response()
                },
            ),
        )
        .route(
            "/_sandbox/llm",
            post(
                |State(p): State<Parts>, body: axum::body::Bytes| async move {
                    let s: LlmSettings = match parse(&body) {
                        Ok(s) => s,
                        Err(e) => return *e,
                    };
                    if let Some(n) = s.rate_limit_every {
                        p.llm.rate_limit_every.store(n, Ordering::Relaxed);
                    }
                    if let Some(ms) = s.retry_after_ms {
                        p.llm.retry_after_ms.store(ms, Ordering::Relaxed);
                    }
                    if let Some(q) = s.out_of_quota {
                        p.llm.out_of_quota.store(q, Ordering::Relaxed);
                    }
                    StatusCode::NO_CONTENT.into_response()
                },
            ),
        )
        .route(
            "/_sandbox/github",
            post(
                |State(p): State<Parts>, body: axum::body::Bytes| async move {
                    let s: GithubSettings = match parse(&body) {
                        Ok(s) => s,
                        Err(e) => return *e,
                    };
                    if s.limited_status.is_some_and(|c| c != 403 && c != 429) {
                        return bad("limited_status", "must be 403 or 429, as GitHub answers");
                    }
                    let mut c = p.github.config.lock().unwrap_or_else(|e| e.into_inner());
                    let secs = Duration::from_secs;
                    if let Some(v) = s.core_limit {
                        c.core_limit = v
                    }
                    if let Some(v) = s.core_window_s {
                        c.core_window = secs(v.max(1))
                    }
                    if let Some(v) = s.search_limit {
                        c.search_limit = v
                    }
                    if let Some(v) = s.search_window_s {
                        c.search_window = secs(v.max(1))
                    }
                    if let Some(v) = s.limited_status {
                        c.limited_status = v
                    }
                    if let Some(v) = s.max_concurrent {
                        c.max_concurrent = Some(v)
                    }
                    if let Some(v) = s.latency_ms {
                        c.latency = Duration::from_millis(v)
                    }
                    StatusCode::NO_CONTENT.into_response()
                },
            ),
        )
        .with_state(parts)
}
