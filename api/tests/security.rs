//! The API's defences, in-process (tower `oneshot`) on real stores, and over a real socket
//! where the connection itself is what is tested: JSON-only bodies, the cross-site and
//! Host checks, where `?token=` counts, the digest comparison, response headers, limits,
//! the access log, and test kinds kept out of production registries. The same attacks from
//! a real browser page are in the workspace's `tests/dashboard.rs`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use drover_api::{router, ApiConfig, AppState};
use drover_queue::testing::Backend;
use drover_queue::{ClaimRequest, JobFilter, NewArtifact, NewJob, Store};
use drover_worker::Registry;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

struct Api {
    backend: Backend,
    store: Arc<dyn Store>,
    app: Router,
}

async fn api_with(backend: Backend, registry: Registry, config: ApiConfig) -> Api {
    let store = backend.open().await;
    let app = router(AppState::new(store.clone(), registry, config));
    Api {
        backend,
        store,
        app,
    }
}

/// An API on a fresh SQLite file, bound (as far as the Host check knows) to 127.0.0.1:8080.
async fn api(config: ApiConfig) -> Api {
    let config = ApiConfig {
        bound: Some("127.0.0.1:8080".parse().expect("an address")),
        ..config
    };
    api_with(Backend::sqlite(), Registry::with_test_kinds(), config).await
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header: {:?}", self.headers))
    }

    /// Asserts an error reply: the status, the code, and that the message names `what`.
    fn error(&self, status: StatusCode, code: &str, what: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        let body: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()));
        assert_eq!(body["error"]["code"], code, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(what),
            "message should name {what:?}: {message}"
        );
    }
}

impl Api {
    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .expect("body")
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Sends `request` and returns the response without reading its body (an event
    /// stream's body ends only with the job).
    async fn head(&self, request: Request<Body>) -> axum::response::Response {
        self.app.clone().oneshot(request).await.expect("infallible")
    }

    async fn jobs(&self) -> usize {
        let filter = JobFilter {
            status: None,
            kind: None,
            created_by: None,
            before: None,
            limit: 100,
        };
        self.store.list(&filter).await.expect("list").jobs.len()
    }

    async fn done(self) {
        self.backend.cleanup().await;
    }
}

fn submit(content_type: Option<&str>) -> axum::http::request::Builder {
    let request = Request::post("/v1/jobs");
    match content_type {
        Some(value) => request.header(header::CONTENT_TYPE, value),
        None => request,
    }
}

fn noop() -> Body {
    Body::from(json!({"kind": "noop", "goal": "g"}).to_string())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_must_be_declared_json() {
    let api = api(ApiConfig::default()).await;
    for content_type in [
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let request = submit(content_type).body(noop()).expect("request");
        api.send(request).await.error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type",
        );
    }
    let batch = Request::post("/v1/jobs/batch")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(
            json!([{"kind": "noop", "goal": "g"}]).to_string(),
        ))
        .expect("request");
    api.send(batch).await.error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "application/json",
    );
    assert_eq!(api.jobs().await, 0, "nothing stored from a non-JSON body");
    // Parameters and case do not matter; field errors still name the field.
    let request = submit(Some("Application/JSON; charset=utf-8")).body(noop());
    let reply = api.send(request.expect("request")).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let bad = submit(Some("application/json"))
        .body(Body::from(
            r#"{"kind": "noop", "goal": "g", "priority": 7}"#,
        ))
        .expect("request");
    api.send(bad)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "priority");
    api.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_from_other_sites_are_refused() {
    let api = api(ApiConfig::default()).await;
    let json = Some("application/json");
    // What browsers say about a page on another site, or on another port of this host.
    for site in ["cross-site", "same-site"] {
        let request = submit(json).header("sec-fetch-site", site).body(noop());
        api.send(request.expect("request")).await.error(
            StatusCode::FORBIDDEN,
            "cross_site",
            "Sec-Fetch-Site",
        );
    }
    // Browsers without Sec-Fetch-Site: their Origin.
    for origin in ["http://evil.test", "http://127.0.0.1:9999", "null"] {
        let request = submit(json)
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::ORIGIN, origin)
            .body(noop());
        api.send(request.expect("request")).await.error(
            StatusCode::FORBIDDEN,
            "cross_site",
            "Origin",
        );
    }
    assert_eq!(api.jobs().await, 0);
    // The dashboard's own requests, and clients that are not browsers, pass.
    let own = submit(json)
        .header("sec-fetch-site", "same-origin")
        .body(noop());
    assert_eq!(
        api.send(own.expect("request")).await.status,
        StatusCode::CREATED
    );
    let own = submit(json)
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ORIGIN, "http://127.0.0.1:8080")
        .body(noop());
    assert_eq!(
        api.send(own.expect("request")).await.status,
        StatusCode::CREATED
    );
    let cli = submit(json).body(noop()).expect("request");
    assert_eq!(api.send(cli).await.status, StatusCode::CREATED);
    assert_eq!(api.jobs().await, 3);

    // Pause and cancel take no body: the site check is all that stops a cross-site form.
    let id = api
        .store
        .enqueue(NewJob::new("noop", "keep"))
        .await
        .expect("enqueue");
    let id = id.job().id;
    for action in ["pause", "cancel"] {
        let request = Request::post(format!("/v1/jobs/{id}/{action}"))
            .header("sec-fetch-site", "cross-site")
            .body(Body::empty())
            .expect("request");
        api.send(request)
            .await
            .error(StatusCode::FORBIDDEN, "cross_site", "Sec-Fetch-Site");
    }
    let queue = Request::post("/v1/queues/default/pause")
        .header(header::ORIGIN, "http://evil.test")
        .body(Body::empty())
        .expect("request");
    api.send(queue)
        .await
        .error(StatusCode::FORBIDDEN, "cross_site", "Origin");
    let job = api.store.get(id).await.expect("job");
    assert_eq!(job.status.as_str(), "queued");
    // Reads from other sites are not refused here: without CORS the browser keeps the
    // answer from the page.
    let read = Request::get("/v1/jobs")
        .header("sec-fetch-site", "cross-site")
        .body(Body::empty())
        .expect("request");
    assert_eq!(api.send(read).await.status, StatusCode::OK);
    api.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_header_must_name_this_server() {
    let config = ApiConfig {
        allowed_hosts: vec!["drover.example.com".into()],
        ..ApiConfig::default()
    };
    let api = api(config).await;
    for host in [
        "127.0.0.1:8080",
        "localhost:8080",
        "drover.example.com",
        "DROVER.example.com:443",
    ] {
        let request = Request::get("/v1/jobs").header(header::HOST, host);
        let reply = api
            .send(request.body(Body::empty()).expect("request"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{host}: {}", reply.text());
    }
    // A page whose name re-resolved to 127.0.0.1 (DNS rebinding) sends its own name.
    for path in ["/", "/v1/jobs", "/metrics", "/openapi.json"] {
        let request = Request::get(path).header(header::HOST, "rebind.evil.test:8080");
        api.send(request.body(Body::empty()).expect("request"))
            .await
            .error(
                StatusCode::FORBIDDEN,
                "host_not_allowed",
                "api.allowed_hosts",
            );
    }
    let write = submit(Some("application/json"))
        .header(header::HOST, "rebind.evil.test:8080")
        .header("sec-fetch-site", "same-origin")
        .body(noop())
        .expect("request");
    api.send(write)
        .await
        .error(StatusCode::FORBIDDEN, "host_not_allowed", "Host");
    assert_eq!(api.jobs().await, 0);
    api.done().await;
}

/// A finished job with one artifact named `name`; returns the job's id.
async fn job_with_artifact(store: &dyn Store, name: &str) -> String {
    let job = store
        .enqueue(NewJob::new("noop", "a"))
        .await
        .expect("enqueue");
    let claim = ClaimRequest {
        worker_id: "w".into(),
        limit: 1,
        lease_ttl: Duration::from_secs(60),
        queues: vec![],
    };
    let lease = store
        .claim(&claim)
        .await
        .expect("claim")
        .pop()
        .expect("lease");
    let artifact = NewArtifact {
        name: name.into(),
        content_type: "text/html".into(),
        data: b"<script>alert(1)</script>".to_vec(),
    };
    store
        .put_artifact(lease.fence(), artifact)
        .await
        .expect("artifact");
    store
        .complete(lease.fence(), json!({}))
        .await
        .expect("complete");
    job.job().id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_tokens_count_only_on_streams_and_downloads() {
    let config = ApiConfig {
        token: Some("s3cret".into()),
        ..ApiConfig::default()
    };
    let api = api(config).await;
    let id = job_with_artifact(&*api.store, "page.html").await;
    api.send(get("/v1/jobs?token=s3cret")).await.error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "?token=",
    );
    api.send(get(&format!("/v1/jobs/{id}?token=s3cret")))
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized", "Authorization");
    let post = Request::post(format!("/v1/jobs/{id}/cancel?token=s3cret"));
    let post = post.body(Body::empty()).expect("request");
    assert_eq!(api.send(post).await.status, StatusCode::UNAUTHORIZED);
    let events = api
        .head(get(&format!("/v1/jobs/{id}/events?token=s3cret")))
        .await;
    assert_eq!(events.status(), StatusCode::OK);
    let download = api.send(get(&format!(
        "/v1/jobs/{id}/artifacts/page.html?token=s3cret"
    )));
    assert_eq!(download.await.status, StatusCode::OK);
    api.send(get(&format!(
        "/v1/jobs/{id}/artifacts/page.html?token=s3cre"
    )))
    .await
    .error(StatusCode::UNAUTHORIZED, "unauthorized", "not valid");
    // The scheme in any case; a wrong token of any length is refused alike.
    for (value, status) in [
        ("bearer s3cret", StatusCode::OK),
        ("BEARER s3cret", StatusCode::OK),
        ("Bearer s3cre", StatusCode::UNAUTHORIZED),
        ("Bearer s3cret-and-more", StatusCode::UNAUTHORIZED),
        ("Basic s3cret", StatusCode::UNAUTHORIZED),
    ] {
        let request = Request::get("/v1/jobs").header(header::AUTHORIZATION, value);
        let reply = api
            .send(request.body(Body::empty()).expect("request"))
            .await;
        assert_eq!(reply.status, status, "{value}: {}", reply.text());
    }
    api.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_downloads_carry_protective_headers() {
    let api = api(ApiConfig::default()).await;
    let page = api.send(get("/")).await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.header("content-security-policy");
    for want in [
        "default-src 'none'",
        "script-src 'sha256-",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(want), "{want} not in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), "nosniff");

    // Artifact names are `[A-Za-z0-9._-]` (the store refuses others), so the header's
    // `filename*=` form (tested in `headers.rs`) is a second line of defence.
    let id = job_with_artifact(&*api.store, "report-2026.html").await;
    let file = api
        .send(get(&format!("/v1/jobs/{id}/artifacts/report-2026.html")))
        .await;
    assert_eq!(file.status, StatusCode::OK, "{}", file.text());
    assert_eq!(
        file.header("content-disposition"),
        "attachment; filename=\"report-2026.html\"; filename*=UTF-8''report-2026.html"
    );
    let refused = api
        .send(get(&format!(
            "/v1/jobs/{id}/artifacts/r%C3%A9sum%C3%A9%202026.html"
        )))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text()
    );
    assert!(refused.text().contains("name:"), "{}", refused.text());
    assert_eq!(file.header("x-content-type-options"), "nosniff");
    assert!(file.header("content-security-policy").contains("sandbox"));
    // JSON answers are not sniffed either.
    let list = api.send(get("/v1/jobs")).await;
    assert_eq!(list.header("x-content-type-options"), "nosniff");
    api.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_does_not_tell_the_store_error() {
    let backend = Backend::postgres();
    let Backend::Postgres { schema } = &backend else {
        unreachable!("a PostgreSQL backend")
    };
    let schema = schema.clone();
    let api = api_with(backend, Registry::with_test_kinds(), ApiConfig::default()).await;
    assert_eq!(api.send(get("/readyz")).await.status, StatusCode::OK);
    // The store's tables go away under it: its errors now name the schema.
    drover_queue::testing::drop_schema(&drover_queue::testing::pg_url(), &schema).await;
    let reply = api.send(get("/readyz")).await;
    reply.error(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "store",
    );
    let text = reply.text();
    assert!(
        !text.contains(&schema) && !text.contains("relation"),
        "{text}"
    );
    api.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_store_gets_a_timely_503() {
    let backend = Backend::postgres();
    let Backend::Postgres { schema } = &backend else {
        unreachable!("a PostgreSQL backend")
    };
    let schema = schema.clone();
    let config = ApiConfig {
        request_timeout: Duration::from_millis(300),
        ..ApiConfig::default()
    };
    let api = api_with(backend, Registry::with_test_kinds(), config).await;
    // Another session holds the jobs table: every query on it waits.
    use sqlx::Connection as _;
    let mut other = sqlx::PgConnection::connect(&drover_queue::testing::pg_url())
        .await
        .expect("connect to PostgreSQL");
    sqlx::query("BEGIN")
        .execute(&mut other)
        .await
        .expect("begin");
    sqlx::query(&format!(
        "LOCK TABLE \"{schema}\".jobs IN ACCESS EXCLUSIVE MODE"
    ))
    .execute(&mut other)
    .await
    .expect("lock jobs");
    let started = Instant::now();
    let reply = api.send(get("/v1/jobs")).await;
    reply.error(
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
        "api.request_timeout",
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    sqlx::query("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("rollback");
    assert_eq!(api.send(get("/v1/jobs")).await.status, StatusCode::OK);
    drop(other);
    api.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped() {
    let config = ApiConfig {
        max_sse_streams: 2,
        ..ApiConfig::default()
    };
    let api = api(config).await;
    let id = api
        .store
        .enqueue(NewJob::new("noop", "watched"))
        .await
        .expect("enqueue");
    let events = format!("/v1/jobs/{}/events", id.job().id);
    let first = api.head(get(&events)).await;
    let second = api.head(get(&events)).await;
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    api.send(get(&events)).await.error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_streams",
        "api.max_sse_streams",
    );
    // A client that leaves gives its place back.
    drop(first);
    let third = api.head(get(&events)).await;
    assert_eq!(third.status(), StatusCode::OK);
    drop((second, third));
    api.done().await;
}

/// A `tracing` writer that keeps what it is given.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn each_request_is_logged_with_a_request_id_and_no_token() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let config = ApiConfig {
        token: Some("s3cret".into()),
        ..ApiConfig::default()
    };
    let api = api(config).await;
    let id = job_with_artifact(&*api.store, "a.txt").await;
    let reply = api
        .send(get(&format!("/v1/jobs/{id}/artifacts/a.txt?token=s3cret")))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let generated = reply.header("x-request-id").to_string();
    assert!(generated.parse::<uuid::Uuid>().is_ok(), "{generated}");
    let request = Request::get("/v1/jobs/nope")
        .header(header::AUTHORIZATION, "Bearer s3cret")
        .header("x-request-id", "req-42")
        .body(Body::empty())
        .expect("request");
    let reply = api.send(request).await;
    assert_eq!(reply.header("x-request-id"), "req-42");
    let forged = Request::get("/healthz")
        .header("x-request-id", "a b")
        .body(Body::empty())
        .expect("request");
    assert_ne!(api.send(forged).await.header("x-request-id"), "a b");

    let log = String::from_utf8(captured.0.lock().expect("log").clone()).expect("UTF-8 log");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("drover_api::access"))
        .collect();
    assert_eq!(lines.len(), 3, "{log}");
    for want in [
        "method=GET",
        "route=/v1/jobs/{id}/artifacts/{name}",
        "token=[redacted]",
        "status=200",
        "latency_ms=",
        &format!("request_id={generated}"),
    ] {
        assert!(lines[0].contains(want), "{want} not in {}", lines[0]);
    }
    assert!(lines[1].contains("status=404") && lines[1].contains("request_id=req-42"));
    assert!(!log.contains("s3cret"), "the token reached the log:\n{log}");
    drop(_guard);
    api.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_registries_refuse_test_kinds_naming_the_flag() {
    let api = api_with(
        Backend::sqlite(),
        Registry::production(),
        ApiConfig::default(),
    )
    .await;
    for kind in ["demo", "noop", "sleep"] {
        let body =
            json!({"kind": kind, "goal": "g", "config": {"effect_url": "http://169.254.169.254/"}});
        let request = submit(Some("application/json")).body(Body::from(body.to_string()));
        api.send(request.expect("request")).await.error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            &format!("kind: `{kind}` is a test kind; start the server with --enable-test-kinds"),
        );
    }
    assert_eq!(api.jobs().await, 0);
    api.done().await;
}

/// Reads from `stream` until it closes; `None` if it is still open after `within`.
async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    within: Duration,
) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    Some(all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let backend = Backend::sqlite();
    let store = backend.open().await;
    let config = ApiConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ApiConfig::default()
    };
    let state = AppState::new(store, Registry::with_test_kinds(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(drover_api::serve_on(state, listener, async move {
        let _ = stopped.await;
    }));

    // A whole request is answered (and names the bound address as an allowed Host).
    let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    client.write_all(request.as_bytes()).await.expect("write");
    let answer = read_until_closed(&mut client, Duration::from_secs(10)).await;
    let answer =
        String::from_utf8_lossy(&answer.expect("the server answers and closes")).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("x-request-id:"),
        "{answer}"
    );

    // Half a request: the server closes the connection soon after the timeout.
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let cut = read_until_closed(&mut slow, Duration::from_secs(10)).await;
    assert!(
        cut.is_some(),
        "the half-sent request still held its connection after 10 s"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let _ = stop.send(());
    let stopped = tokio::time::timeout(Duration::from_secs(10), server).await;
    let result = stopped.expect("the server stops").expect("the server task");
    result.expect("the server ends cleanly");
    backend.cleanup().await;
}
