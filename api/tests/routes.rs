//! Every route in-process (tower `oneshot`), with each 4xx, on every backend.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use drover_api::{router, ApiConfig, AppState};
use drover_queue::testing::Backend;
use drover_queue::{ClaimRequest, NewArtifact, NewCheckpoint, NewJob, Store, StoreOptions};
use drover_worker::Registry;
use serde_json::{json, Value};
use tower::ServiceExt;

struct Api {
    backend: Backend,
    store: Arc<dyn Store>,
    app: Router,
}

async fn api_with(backend: Backend, options: StoreOptions, config: ApiConfig) -> Api {
    let store = backend.open_with(options).await;
    let app = router(AppState::new(
        store.clone(),
        Registry::with_test_kinds(),
        config,
    ));
    Api {
        backend,
        store,
        app,
    }
}

async fn api(backend: Backend) -> Api {
    api_with(backend, StoreOptions::default(), ApiConfig::default()).await
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an error reply: the status, the code, and that the message names `field`.
    fn error(&self, status: StatusCode, code: &str, field: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(field),
            "message should name {field:?}: {message}"
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

    async fn get(&self, uri: &str) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).expect("request"))
            .await
    }

    async fn post(&self, uri: &str, body: &str) -> Reply {
        let request = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        self.send(request).await
    }

    async fn submit(&self, body: Value) -> Value {
        let reply = self.post("/v1/jobs", &body.to_string()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        reply.json()
    }

    async fn done(self) {
        self.backend.cleanup().await;
    }
}

async fn submit_creates_dedupes_and_refuses_bad_input(backend: Backend) {
    let api = api(backend).await;
    let job = api
        .submit(
            json!({"kind": "demo", "goal": "g", "config": {"items": 3}, "priority": "high",
            "idempotency_key": "k1", "created_by": "ana", "max_attempts": 2,
            "timeouts": {"step_timeout": 9}}),
        )
        .await;
    assert_eq!(job["status"], "queued");
    assert_eq!(job["priority"], "high");
    assert_eq!(job["max_attempts"], 2);
    assert_eq!(job["timeouts"]["step_timeout"], 9);
    let same = api
        .post(
            "/v1/jobs",
            &json!({"kind": "demo", "goal": "g", "config": {"items": 3}, "priority": "high",
            "idempotency_key": "k1", "created_by": "ana", "max_attempts": 2,
            "timeouts": {"step_timeout": 9}})
            .to_string(),
        )
        .await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(same.json()["id"], job["id"]);
    api.post(
        "/v1/jobs",
        r#"{"kind": "demo", "goal": "other", "idempotency_key": "k1"}"#,
    )
    .await
    .error(StatusCode::CONFLICT, "idempotency_conflict", "k1");

    let cases = [
        (r#"{"kind": "nope", "goal": "g"}"#, "kind"),
        (
            r#"{"kind": "demo", "goal": "g", "priority": "urgent"}"#,
            "priority",
        ),
        (
            r#"{"kind": "demo", "goal": "g", "run_at": "tomorrow"}"#,
            "run_at",
        ),
        (r#"{"kind": "demo", "goal": "g", "config": [1]}"#, "config"),
        (
            r#"{"kind": "demo", "goal": "g", "config": {"items": "x"}}"#,
            "config.items",
        ),
        (
            r#"{"kind": "demo", "goal": "g", "max_attempts": 0}"#,
            "max_attempts",
        ),
        (
            r#"{"kind": "demo", "goal": "g", "timeouts": {"step_timeout": -1}}"#,
            "timeouts.step_timeout",
        ),
        (
            r#"{"kind": "demo", "goal": "g", "colour": "red"}"#,
            "colour",
        ),
        (r#"{"goal": "g"}"#, "kind"),
        (r#"[]"#, "body"),
    ];
    for (body, field) in cases {
        api.post("/v1/jobs", body)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid", field);
    }
    api.post("/v1/jobs", "{not json")
        .await
        .error(StatusCode::BAD_REQUEST, "bad_request", "body");
    // Nothing was stored by the refused requests.
    let list = api.get("/v1/jobs").await.json();
    assert_eq!(list["jobs"].as_array().map(Vec::len), Some(1));
    api.done().await;
}

async fn limits_backpressure_and_auth(backend: Backend) {
    let api = api_with(
        backend,
        StoreOptions {
            max_queue_size: Some(1),
            ..Default::default()
        },
        ApiConfig {
            token: Some("s3cret".into()),
            max_body_bytes: 2048,
            ..ApiConfig::default()
        },
    )
    .await;
    let authed = |request: axum::http::request::Builder| {
        request.header(header::AUTHORIZATION, "Bearer s3cret")
    };
    // No token, a wrong token: 401. The open routes stay open.
    api.get("/v1/jobs")
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized", "Bearer");
    let wrong = Request::get("/v1/jobs")
        .header(header::AUTHORIZATION, "Bearer nope")
        .body(Body::empty())
        .expect("request");
    api.send(wrong)
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized", "token");
    for open in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/"] {
        assert_eq!(api.get(open).await.status, StatusCode::OK, "{open}");
    }
    // `?token=` counts only on event streams and downloads (tests/security.rs).
    api.get("/v1/jobs?token=s3cret").await.error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "?token=",
    );
    let post = |body: String| {
        authed(Request::post("/v1/jobs"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("request")
    };
    let reply = api
        .send(post(json!({"kind": "noop", "goal": "one"}).to_string()))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    api.send(post(json!({"kind": "noop", "goal": "two"}).to_string()))
        .await
        .error(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_full",
            "max_queue_size",
        );
    let big = json!({"kind": "noop", "goal": "x".repeat(4096)}).to_string();
    assert_eq!(
        api.send(post(big)).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    api.done().await;
}

async fn batch_inserts_all_or_none(backend: Backend) {
    let api = api(backend).await;
    let reply = api
        .post(
            "/v1/jobs/batch",
            &json!([{"kind": "noop", "goal": "a"}, {"kind": "demo", "goal": "b"}]).to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let jobs = reply.json()["jobs"].as_array().cloned().unwrap_or_default();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1]["kind"], "demo");
    api.post(
        "/v1/jobs/batch",
        &json!([{"kind": "noop", "goal": "a"}, {"kind": "noop", "goal": "b", "priority": "meh"}])
            .to_string(),
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "[1].priority");
    api.post("/v1/jobs/batch", "[]").await.error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "body",
    );
    api.post("/v1/jobs/batch", r#"{"kind": "noop"}"#)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "array");
    let list = api.get("/v1/jobs").await.json();
    assert_eq!(list["jobs"].as_array().map(Vec::len), Some(2));
    api.done().await;
}

async fn list_show_filters_and_pages(backend: Backend) {
    let api = api(backend).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let kind = if i % 2 == 0 { "noop" } else { "demo" };
        ids.push(
            api.submit(json!({"kind": kind, "goal": format!("{i}"), "created_by": "bo"}))
                .await["id"]
                .clone(),
        );
    }
    let first = api.get("/v1/jobs?limit=2").await.json();
    assert_eq!(first["jobs"][0]["id"], ids[4]);
    let cursor = first["next_cursor"].as_str().expect("cursor").to_string();
    let second = api
        .get(&format!("/v1/jobs?limit=2&cursor={cursor}"))
        .await
        .json();
    assert_eq!(second["jobs"][0]["id"], ids[2]);
    let demos = api
        .get("/v1/jobs?kind=demo&created_by=bo&status=queued")
        .await
        .json();
    assert_eq!(demos["jobs"].as_array().map(Vec::len), Some(2));
    for (uri, field) in [
        ("/v1/jobs?status=done", "status"),
        ("/v1/jobs?limit=0", "limit"),
        ("/v1/jobs?limit=x", "limit"),
        ("/v1/jobs?cursor=zzz", "cursor"),
        ("/v1/jobs?colour=red", "colour"),
    ] {
        api.get(uri)
            .await
            .error(StatusCode::BAD_REQUEST, "bad_request", field);
    }
    let id = ids[0].as_str().expect("id");
    assert_eq!(
        api.get(&format!("/v1/jobs/{id}")).await.json()["id"],
        ids[0]
    );
    let unknown = uuid::Uuid::now_v7();
    api.get(&format!("/v1/jobs/{unknown}")).await.error(
        StatusCode::NOT_FOUND,
        "not_found",
        &unknown.to_string(),
    );
    api.get("/v1/jobs/not-a-uuid")
        .await
        .error(StatusCode::NOT_FOUND, "not_found", "not-a-uuid");
    api.get("/v2/nothing")
        .await
        .error(StatusCode::NOT_FOUND, "not_found", "route");
    api.done().await;
}

async fn control_routes_follow_the_status_machine(backend: Backend) {
    let api = api(backend).await;
    let id = api.submit(json!({"kind": "noop", "goal": "c"})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let reply = api.post(&format!("/v1/jobs/{id}/pause"), "").await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.json()["status"], "paused");
    api.post(&format!("/v1/jobs/{id}/pause"), "").await.error(
        StatusCode::CONFLICT,
        "illegal_transition",
        "cannot pause a job that is paused",
    );
    let reply = api.post(&format!("/v1/jobs/{id}/resume"), "").await;
    assert_eq!(
        (reply.status, reply.json()["status"].clone()),
        (StatusCode::ACCEPTED, json!("queued"))
    );
    api.post(&format!("/v1/jobs/{id}/resume"), "").await.error(
        StatusCode::CONFLICT,
        "illegal_transition",
        "resume",
    );
    let reply = api.post(&format!("/v1/jobs/{id}/cancel"), "").await;
    assert_eq!(
        (reply.status, reply.json()["status"].clone()),
        (StatusCode::ACCEPTED, json!("cancelled"))
    );
    api.post(&format!("/v1/jobs/{id}/cancel"), "").await.error(
        StatusCode::CONFLICT,
        "illegal_transition",
        "cancelled",
    );
    let unknown = uuid::Uuid::now_v7();
    api.post(&format!("/v1/jobs/{unknown}/pause"), "")
        .await
        .error(StatusCode::NOT_FOUND, "not_found", "not found");
    api.done().await;
}

/// Runs a job to completion through the store, with a checkpoint, an artifact and progress.
async fn finished_job(api: &Api) -> String {
    let job = api
        .store
        .enqueue(NewJob::new("noop", "done"))
        .await
        .expect("enqueue")
        .into_job();
    let lease = api
        .store
        .claim(&ClaimRequest {
            worker_id: "w".into(),
            limit: 1,
            lease_ttl: Duration::from_secs(60),
            queues: vec![],
        })
        .await
        .expect("claim")
        .pop()
        .expect("lease");
    let fence = lease.fence();
    api.store
        .checkpoint(
            fence,
            NewCheckpoint {
                step: "s".into(),
                state: b"{}".to_vec(),
                compressed: false,
                items: Vec::new(),
            },
            5,
        )
        .await
        .expect("checkpoint");
    api.store
        .append_event(fence, "progress", json!({"items_processed": 1}))
        .await
        .expect("progress");
    api.store
        .put_artifact(
            fence,
            NewArtifact {
                name: "report.csv".into(),
                content_type: "text/csv".into(),
                data: b"a,b\n".to_vec(),
            },
        )
        .await
        .expect("artifact");
    api.store
        .complete(fence, json!({"ok": true}))
        .await
        .expect("complete");
    job.id.to_string()
}

async fn events_checkpoints_and_artifacts(backend: Backend) {
    let api = api(backend).await;
    let id = finished_job(&api).await;
    // The whole log, then `end`.
    let reply = api.get(&format!("/v1/jobs/{id}/events")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap_or("")
        .starts_with("text/event-stream"));
    let text = reply.text();
    let ids: Vec<i64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .filter_map(|s| s.parse().ok())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6], "{text}");
    assert!(text.contains("event: checkpoint") && text.contains("event: artifact"));
    assert!(text.trim_end().ends_with("event: end\ndata: {}"), "{text}");
    // Replay after Last-Event-ID (or ?after=) sends nothing twice.
    let request = Request::get(format!("/v1/jobs/{id}/events"))
        .header("Last-Event-ID", "4")
        .body(Body::empty())
        .expect("request");
    let tail = api.send(request).await.text();
    let ids: Vec<&str> = tail
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    assert_eq!(ids, ["5", "6"]);
    let tail = api
        .get(&format!("/v1/jobs/{id}/events?after=5"))
        .await
        .text();
    assert_eq!(tail.lines().filter(|l| l.starts_with("id: ")).count(), 1);
    let bad = Request::get(format!("/v1/jobs/{id}/events"))
        .header("Last-Event-ID", "soon")
        .body(Body::empty())
        .expect("request");
    api.send(bad)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_request", "Last-Event-ID");
    api.get(&format!("/v1/jobs/{id}/events?after=-3"))
        .await
        .error(StatusCode::BAD_REQUEST, "bad_request", "after");
    let unknown = uuid::Uuid::now_v7();
    api.get(&format!("/v1/jobs/{unknown}/events")).await.error(
        StatusCode::NOT_FOUND,
        "not_found",
        "not found",
    );

    let checkpoints = api.get(&format!("/v1/jobs/{id}/checkpoints")).await.json();
    assert_eq!(checkpoints["checkpoints"][0]["seq"], 1);
    assert_eq!(checkpoints["checkpoints"][0]["size"], 2);
    api.get(&format!("/v1/jobs/{unknown}/checkpoints"))
        .await
        .error(StatusCode::NOT_FOUND, "not_found", "not found");

    let artifacts = api.get(&format!("/v1/jobs/{id}/artifacts")).await.json();
    assert_eq!(artifacts["artifacts"][0]["name"], "report.csv");
    let file = api
        .get(&format!("/v1/jobs/{id}/artifacts/report.csv"))
        .await;
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(file.headers[header::CONTENT_TYPE], "text/csv");
    assert_eq!(file.body, b"a,b\n");
    api.get(&format!("/v1/jobs/{id}/artifacts/nope.csv"))
        .await
        .error(StatusCode::NOT_FOUND, "not_found", "nope.csv");
    api.get(&format!("/v1/jobs/{unknown}/artifacts"))
        .await
        .error(StatusCode::NOT_FOUND, "not_found", "not found");
    api.done().await;
}

async fn queues_workers_and_operations(backend: Backend) {
    let api = api(backend).await;
    api.submit(json!({"kind": "noop", "goal": "q", "queue": "mail"}))
        .await;
    let reply = api.post("/v1/queues/mail/pause", "").await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.json(), json!({"queue": "mail", "paused": true}));
    let queues = api.get("/v1/queues").await.json();
    let mail = queues["queues"]
        .as_array()
        .and_then(|q| q.iter().find(|q| q["name"] == "mail").cloned())
        .expect("mail");
    assert_eq!(mail["paused"], true);
    assert_eq!(mail["by_status"]["queued"], 1);
    assert_eq!(
        api.post("/v1/queues/mail/resume", "").await.json()["paused"],
        false
    );
    api.post("/v1/queues/bad%20name/pause", "").await.error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "name",
    );

    api.store
        .heartbeat_worker(&drover_queue::WorkerInfo {
            id: "w-9".into(),
            host: "box".into(),
            pid: 9,
            slots: 4,
            busy: 1,
            started_at: chrono::Utc::now(),
            last_heartbeat: chrono::Utc::now(),
        })
        .await
        .expect("heartbeat");
    let workers = api.get("/v1/workers").await.json();
    assert_eq!(workers["workers"][0]["id"], "w-9");

    assert_eq!(api.get("/healthz").await.json()["status"], "ok");
    assert_eq!(api.get("/readyz").await.json()["status"], "ready");
    let page = api.get("/").await;
    assert!(page.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap_or("")
        .starts_with("text/html"));
    assert!(page.text().contains("drover"));
    let openapi = api.get("/openapi.json").await.json();
    for path in [
        "/v1/jobs",
        "/v1/jobs/batch",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/pause",
        "/v1/jobs/{id}/resume",
        "/v1/jobs/{id}/cancel",
        "/v1/jobs/{id}/events",
        "/v1/jobs/{id}/checkpoints",
        "/v1/jobs/{id}/artifacts",
        "/v1/jobs/{id}/artifacts/{name}",
        "/v1/queues",
        "/v1/queues/{name}/pause",
        "/v1/queues/{name}/resume",
        "/v1/workers",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "openapi.json lacks {path}"
        );
    }
    assert!(openapi["components"]["schemas"]["Job"].is_object());
    let metrics = api.get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.text();
    assert!(text.contains("drover_queue_depth"), "{text}");
    // The process's own figures, read from /proc/self at the scrape.
    let value = |name: &str| -> f64 {
        sample(&text, name).unwrap_or_else(|| panic!("/metrics lacks {name}:\n{text}"))
    };
    assert!(value("process_resident_memory_bytes") > 0.0);
    assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
    assert!(value("process_threads") >= 1.0);
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    assert!(value("process_cpu_seconds_total") >= 0.0);
    let now = chrono::Utc::now().timestamp() as f64;
    let started = value("process_start_time_seconds");
    assert!(
        started <= now + 1.0 && started > now - 3600.0,
        "{started} vs {now}"
    );
    assert!(
        text.contains("# TYPE process_cpu_seconds_total counter"),
        "{text}"
    );
    // w-9 heartbeated 1 busy slot of 4.
    assert_eq!(
        sample(&text, r#"drover_worker_slot_utilization{worker="w-9"}"#),
        Some(0.25),
        "{text}"
    );
    api.done().await;
}

/// The value of the sample named exactly `series` (name and labels) in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Gates over HTTP: a job's gates, deciding (200, 200 again, 409, 422 naming the field,
/// 404), and the inbox across jobs with its cursor.
async fn gates_are_listed_and_decided(backend: Backend) {
    let api = api(backend).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let job = api
            .store
            .enqueue(NewJob::new("noop", format!("gated {i}")))
            .await
            .expect("enqueue")
            .into_job();
        let lease = api
            .store
            .claim(&ClaimRequest {
                worker_id: "w".into(),
                limit: 10,
                lease_ttl: Duration::from_secs(30),
                queues: vec![],
            })
            .await
            .expect("claim")
            .into_iter()
            .find(|l| l.job.id == job.id)
            .expect("claimed");
        let gate = drover_queue::NewGate::new("approve-1", "Apply to this posting?")
            .decisions(["approve", "reject"])
            .context(json!({ "title": "Rust engineer" }));
        api.store
            .open_gates(lease.fence(), vec![gate])
            .await
            .expect("open");
        api.store.park(lease.fence()).await.expect("park");
        ids.push(job.id.to_string());
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let id = &ids[0];
    let shown = api.get(&format!("/v1/jobs/{id}")).await.json();
    assert_eq!(shown["status"], "waiting");
    let gates = api.get(&format!("/v1/jobs/{id}/gates")).await;
    assert_eq!(gates.status, StatusCode::OK);
    let gate = &gates.json()["gates"][0];
    assert_eq!(gate["key"], "approve-1");
    assert_eq!(gate["prompt"], "Apply to this posting?");
    assert_eq!(gate["context"]["title"], "Rust engineer");
    assert_eq!(gate["decisions"], json!(["approve", "reject"]));
    assert_eq!(gate["status"], "open");
    assert!(gate["deadline"].is_string());

    let inbox = api.get("/v1/gates?status=open&limit=2").await.json();
    let listed: Vec<&str> = inbox["gates"]
        .as_array()
        .expect("gates")
        .iter()
        .map(|g| g["job_id"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(listed, [ids[0].as_str(), ids[1].as_str()]);
    let cursor = inbox["next_cursor"].as_str().expect("a next page");
    let rest = api
        .get(&format!("/v1/gates?limit=2&cursor={cursor}"))
        .await
        .json();
    assert_eq!(rest["gates"][0]["job_id"], ids[2].as_str());
    assert!(rest.get("next_cursor").is_none());
    api.get("/v1/gates?status=maybe")
        .await
        .error(StatusCode::BAD_REQUEST, "bad_request", "status");
    api.get("/v1/gates?cursor=x")
        .await
        .error(StatusCode::BAD_REQUEST, "bad_request", "cursor");

    let uri = format!("/v1/jobs/{id}/gates/approve-1");
    api.post(&uri, r#"{"decision": "maybe"}"#).await.error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "decision",
    );
    api.post(&uri, r#"{"note": "no decision"}"#).await.error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "decision",
    );
    api.post(&uri, r#"{"decision": "approve", "extra": 1}"#)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "extra");
    let decided = api
        .post(&uri, r#"{"decision": "approve", "note": "good fit"}"#)
        .await;
    assert_eq!(decided.status, StatusCode::OK, "{}", decided.text());
    let decided = decided.json();
    assert_eq!(decided["status"], "decided");
    assert_eq!(decided["decision"], "approve");
    assert_eq!(decided["note"], "good fit");
    assert!(decided["decided_at"].is_string());
    let again = api
        .post(&uri, r#"{"decision": "approve", "note": "good fit"}"#)
        .await;
    assert_eq!(again.status, StatusCode::OK);
    api.post(&uri, r#"{"decision": "reject"}"#).await.error(
        StatusCode::CONFLICT,
        "gate_conflict",
        "approve-1",
    );
    api.post(
        &format!("/v1/jobs/{id}/gates/nope"),
        r#"{"decision": "approve"}"#,
    )
    .await
    .error(StatusCode::NOT_FOUND, "not_found", "nope");
    api.post(
        &format!("/v1/jobs/{id}/gates/bad%20key"),
        r#"{"decision": "approve"}"#,
    )
    .await
    .error(StatusCode::NOT_FOUND, "not_found", "bad key");
    // The last gate decided: the job is queued again, and out of the inbox.
    assert_eq!(
        api.get(&format!("/v1/jobs/{id}")).await.json()["status"],
        "queued"
    );
    let inbox = api.get("/v1/gates").await.json();
    assert_eq!(inbox["gates"].as_array().map(Vec::len), Some(2));
    api.done().await;
}

drover_queue::on_every_backend!(
    gates_are_listed_and_decided,
    submit_creates_dedupes_and_refuses_bad_input,
    limits_backpressure_and_auth,
    batch_inserts_all_or_none,
    list_show_filters_and_pages,
    control_routes_follow_the_status_machine,
    events_checkpoints_and_artifacts,
    queues_workers_and_operations,
);
