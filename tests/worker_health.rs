//! What a `drover worker --bind` process tells probes and scrapers, on real PostgreSQL:
//! `/healthz` stays 200, `/readyz` turns 503 while the store is cut off and from the moment
//! SIGTERM starts the drain (before the process exits), `/metrics` always carries
//! `drover_queue_depth`, and a drained job finishes elsewhere without repeating an effect.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use drover_queue::{JobId, JobStatus, NewJob};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client")
}

/// Status and JSON body of `GET base/path`; `None` when nothing answers.
async fn probe(http: &reqwest::Client, base: &str, path: &str) -> Option<(u16, Value)> {
    let response = http.get(format!("{base}{path}")).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

async fn metrics_text(http: &reqwest::Client, base: &str) -> String {
    let response = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    response.text().await.expect("metrics body")
}

/// The value of `drover_queue_depth{queue, status}` in Prometheus text.
fn depth(text: &str, queue: &str, status: &str) -> Option<f64> {
    let (queue, status) = (format!("queue=\"{queue}\""), format!("status=\"{status}\""));
    text.lines()
        .filter(|line| line.starts_with("drover_queue_depth{"))
        .filter(|line| line.contains(&queue) && line.contains(&status))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

/// The value of the sample named exactly `series` (name and labels) in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// A TCP proxy in front of PostgreSQL that can cut every connection and refuse new ones,
/// so a worker sees its store go away while PostgreSQL keeps serving the test.
struct CutProxy {
    addr: SocketAddr,
    open: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    async fn start(upstream: String) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (open, open_rx) = watch::channel(true);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut open = open_rx.clone();
                if !*open.borrow() {
                    continue; // dropped: the client sees the connection closed
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = open.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        CutProxy { addr, open, task }
    }

    fn cut(&self) {
        self.open.send_replace(false);
    }

    fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The parts of `scheme://[userinfo@]host:port/rest`: before, `host:port`, after.
fn split_authority(url: &str) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (authority, path) = rest.split_once('/').expect("a URL with a database");
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (format!("{userinfo}@"), hostport),
        None => (String::new(), authority),
    };
    (
        format!("{scheme}://{userinfo}"),
        hostport.to_string(),
        format!("/{path}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_endpoints_report_health_readiness_and_queue_depth() {
    let url = pg_schema_url(&pg_url());
    let store = open(&url).await;
    let logs = tempfile::tempdir().expect("temp dir");
    let (before, upstream, after) = split_authority(&url);
    let proxy = CutProxy::start(upstream).await;
    let worker_url = format!("{before}{}{after}", proxy.addr);
    let (mut worker, base) = spawn_serving_worker(&worker_url, "probed", 2, logs.path(), &[]);
    let http = http();

    let (status, body) = probe(&http, &base, "/readyz")
        .await
        .expect("readyz answers");
    assert_eq!((status, &body["status"]), (200, &json!("ready")), "{body}");
    let (status, body) = probe(&http, &base, "/healthz")
        .await
        .expect("healthz answers");
    assert_eq!((status, &body["draining"]), (200, &json!(false)), "{body}");

    // Idle: the depth is there, as zeros, for every unfinished status.
    let text = metrics_text(&http, &base).await;
    for status in ["queued", "running", "paused"] {
        assert_eq!(
            depth(&text, "default", status),
            Some(0.0),
            "{status}:\n{text}"
        );
    }
    // The worker process's own figures, and its slot utilisation (idle: 0 of 2 busy) once
    // its heartbeat is in the registry.
    for name in [
        "process_resident_memory_bytes",
        "process_threads",
        "process_open_fds",
    ] {
        let value = sample(&text, name).unwrap_or_else(|| panic!("{name}:\n{text}"));
        assert!(value >= 1.0, "{name} {value}");
    }
    eventually(
        Duration::from_secs(10),
        "the worker's slot utilisation",
        || async {
            let text = metrics_text(&http, &base).await;
            (sample(&text, r#"drover_worker_slot_utilization{worker="probed"}"#) == Some(0.0))
                .then_some(())
        },
    )
    .await;

    // Jobs not due for an hour stay queued: the depth counts them, store-wide.
    let later: Vec<NewJob> = (0..3)
        .map(|i| {
            let mut job = NewJob::new("noop", format!("later {i}"));
            job.queue = Some("later".into());
            job.run_at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
            job
        })
        .collect();
    let later: Vec<JobId> = enqueue_all(&*store, later).await;
    eventually(
        Duration::from_secs(10),
        "the depth of queue `later`",
        || async {
            let text = metrics_text(&http, &base).await;
            (depth(&text, "later", "queued") == Some(3.0)
                && depth(&text, "later", "running") == Some(0.0))
            .then_some(())
        },
    )
    .await;

    // Once they are gone the queue drops out of the store's list; its depth reads 0, not 3.
    for id in &later {
        store.cancel(*id).await.expect("cancel");
    }
    eventually(
        Duration::from_secs(10),
        "the depth of queue `later` to fall to 0",
        || async {
            let text = metrics_text(&http, &base).await;
            (depth(&text, "later", "queued") == Some(0.0)).then_some(())
        },
    )
    .await;

    // The store goes away: not ready, for that reason alone, and still alive.
    proxy.cut();
    let body = eventually(
        Duration::from_secs(20),
        "readyz to refuse without its store",
        || async {
            match probe(&http, &base, "/readyz").await {
                Some((503, body)) => Some(body),
                _ => None,
            }
        },
    )
    .await;
    assert_eq!(
        body,
        json!({"status": "not_ready", "reason": "store_unavailable"}),
        "no store error text in the answer"
    );
    let (status, _) = probe(&http, &base, "/healthz")
        .await
        .expect("healthz answers");
    assert_eq!(status, 200, "a worker without its store is still alive");

    proxy.restore();
    eventually(
        Duration::from_secs(30),
        "readyz to recover with its store",
        || async { matches!(probe(&http, &base, "/readyz").await, Some((200, _))).then_some(()) },
    )
    .await;

    worker.signal(libc::SIGTERM);
    let status = worker
        .exited(Duration::from_secs(15))
        .await
        .expect("exits after SIGTERM");
    assert!(status.success(), "clean exit: {status:?}");
    drop_schema(&url).await;
}

/// An effect endpoint that records each POST's `Idempotency-Key` and holds its answer until
/// released, so a test can keep a job between two safe points for as long as it needs.
#[derive(Clone)]
struct HeldEffects {
    keys: Arc<Mutex<Vec<String>>>,
    held: watch::Sender<bool>,
}

impl HeldEffects {
    async fn start() -> (HeldEffects, String, tokio::task::JoinHandle<()>) {
        let effects = HeldEffects {
            keys: Arc::default(),
            held: watch::channel(true).0,
        };
        let app = Router::new()
            .route("/effect", post(held_effect))
            .with_state(effects.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/effect", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (effects, url, task)
    }

    fn keys(&self) -> Vec<String> {
        self.keys.lock().expect("keys").clone()
    }

    fn release(&self) {
        self.held.send_replace(false);
    }
}

async fn held_effect(State(effects): State<HeldEffects>, headers: HeaderMap) -> Json<Value> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    effects.keys.lock().expect("keys").push(key);
    let mut held = effects.held.subscribe();
    let _ = held.wait_for(|held| !*held).await;
    Json(json!({ "ok": true }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_503_on_sigterm_while_a_job_drains_and_no_effect_repeats() {
    let url = pg_schema_url(&pg_url());
    let store = open(&url).await;
    let logs = tempfile::tempdir().expect("temp dir");
    let (effects, effect_url, _server) = HeldEffects::start().await;
    let job = NewJob::new("demo", "drained mid-effect").config(json!({
        "items": 3, "item_ms": 0, "checkpoint_every": 1, "effect_url": effect_url,
    }));
    let id: JobId = store.enqueue(job).await.expect("enqueue").into_job().id;
    let (mut first, base) = spawn_serving_worker(&url, "first", 2, logs.path(), &[]);
    let http = http();

    // The job is inside its first effect, which does not answer yet: no safe point.
    eventually(
        Duration::from_secs(30),
        "the first effect to arrive",
        || async { (!effects.keys().is_empty()).then_some(()) },
    )
    .await;
    let text = metrics_text(&http, &base).await;
    assert_eq!(depth(&text, "default", "running"), Some(1.0), "{text}");

    first.signal(libc::SIGTERM);
    let body = eventually(
        Duration::from_secs(10),
        "readyz to refuse once draining",
        || async {
            match probe(&http, &base, "/readyz").await {
                Some((503, body)) => Some(body),
                _ => None,
            }
        },
    )
    .await;
    assert_eq!(body, json!({"status": "not_ready", "reason": "draining"}));
    // The held effect keeps the job from its safe point, so this is before the exit.
    assert!(first.running(), "readyz refused before the process exited");
    let (status, body) = probe(&http, &base, "/healthz")
        .await
        .expect("healthz answers while draining");
    assert_eq!((status, &body["draining"]), (200, &json!(true)), "{body}");

    effects.release();
    let status = first
        .exited(Duration::from_secs(15))
        .await
        .expect("exits within graceful_shutdown");
    assert!(status.success(), "clean exit: {status:?}");
    let job = store.get(id).await.expect("get");
    assert_eq!(job.status, JobStatus::Queued, "handed back: {job:?}");

    // Another worker finishes it from where it stopped: each effect delivered once.
    let _second = spawn_worker(&url, "second", 2, logs.path());
    eventually(Duration::from_secs(60), "the job to finish", || async {
        all_finished(&*store, &[id]).await.then_some(())
    })
    .await;
    assert_each_completed_once(&*store, &[id]).await;
    let mut keys = effects.keys();
    keys.sort();
    let expected: Vec<String> = (0..3).map(|item| format!("{id}/{item}")).collect();
    assert_eq!(keys, expected, "every effect exactly once");
    drop_schema(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_exits_by_itself_after_max_jobs_per_worker() {
    let url = pg_schema_url(&pg_url());
    let store = open(&url).await;
    let logs = tempfile::tempdir().expect("temp dir");
    let jobs: Vec<JobId> = enqueue_all(
        &*store,
        (0..3)
            .map(|i| NewJob::new("noop", format!("budget {i}")))
            .collect(),
    )
    .await;
    let (mut worker, _base) = spawn_serving_worker(
        &url,
        "budgeted",
        1,
        logs.path(),
        &[("DROVER_WORKERS__MAX_JOBS_PER_WORKER", "2")],
    );
    let status = worker
        .exited(Duration::from_secs(30))
        .await
        .expect("exits once its budget is spent");
    assert!(status.success(), "clean exit: {status:?}");
    let mut completed = 0;
    for id in &jobs {
        if store.get(*id).await.expect("get").status == JobStatus::Completed {
            completed += 1;
        }
    }
    assert_eq!(
        completed, 2,
        "two jobs done, the third left for another worker"
    );
    drop_schema(&url).await;
}
