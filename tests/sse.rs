//! SSE across processes on PostgreSQL: one `drover api` and two `drover worker` processes.
//! A client follows a demo job's stream from the API while the job runs on a worker; that
//! worker is SIGKILLed mid-run; the stream carries on as the other worker resumes the job
//! and ends with `end`. Sequence ids are strictly increasing without gaps, and a client
//! that reconnects with `Last-Event-ID` sees no event twice.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

struct ApiProcess {
    child: Child,
    base: String,
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_api(store: &str, logs: &std::path::Path) -> ApiProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let log = std::fs::File::create(logs.join("api.log")).expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args([
            "api",
            "--store",
            store,
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--enable-test-kinds",
        ])
        .env("DROVER_LOG", "info,sqlx=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn drover api");
    let api = ApiProcess {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(30), "the API to answer", || async {
        let ok = http
            .get(format!("{}/healthz", api.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        ok.then_some(())
    })
    .await;
    api
}

#[derive(Debug, Clone)]
struct Received {
    id: Option<i64>,
    event: String,
    data: Value,
}

fn parse(block: &str) -> Option<Received> {
    let mut received = Received {
        id: None,
        event: "message".into(),
        data: Value::Null,
    };
    let mut any = false;
    for line in block
        .lines()
        .filter(|l| !l.starts_with(':') && !l.is_empty())
    {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        any = true;
        match field {
            "id" => received.id = value.parse().ok(),
            "event" => received.event = value.to_string(),
            "data" => received.data = serde_json::from_str(value).unwrap_or(Value::Null),
            _ => {}
        }
    }
    any.then_some(received)
}

/// Streams events into `out` until `end`, or until `stop_after` events when given.
async fn follow(
    base: String,
    job: String,
    last_event_id: Option<i64>,
    stop_after: Option<usize>,
    out: mpsc::UnboundedSender<Received>,
) {
    let mut request = reqwest::Client::new().get(format!("{base}/v1/jobs/{job}/events"));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    let response = request.send().await.expect("connect");
    assert!(response.status().is_success(), "{}", response.status());
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut seen = 0;
    while let Some(chunk) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let Some(event) = parse(&block) else { continue };
            let is_end = event.event == "end";
            let _ = out.send(event);
            seen += 1;
            if is_end || stop_after.is_some_and(|n| seen >= n) {
                return; // dropping the body closes the connection
            }
        }
    }
}

fn assert_gapless(ids: &[i64], what: &str) {
    assert!(!ids.is_empty(), "{what}: no events");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            *id,
            i as i64 + 1,
            "{what}: ids must run 1, 2, 3… without gaps or repeats: {ids:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_stream_survives_a_worker_crash_and_reconnects_without_repeats() {
    let url = pg_schema_url(&pg_url());
    let store = open(&url).await;
    let logs = tempfile::tempdir().expect("temp dir");
    let api = start_api(&url, logs.path()).await;
    let mut workers = [
        spawn_worker(&url, "w1", 2, logs.path()),
        spawn_worker(&url, "w2", 2, logs.path()),
    ];
    let job: Value = reqwest::Client::new()
        .post(format!("{}/v1/jobs", api.base))
        .json(&json!({"kind": "demo", "goal": "follow me", "config": {"items": 40, "item_ms": 80, "checkpoint_every": 5}}))
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("job json");
    let id = job["id"].as_str().expect("id").to_string();

    // Client A follows the whole run on one connection.
    let (a_tx, mut a_rx) = mpsc::unbounded_channel();
    let client_a = tokio::spawn(follow(api.base.clone(), id.clone(), None, None, a_tx));
    // Client B reads the first 6 events, disconnects, and comes back later.
    let (b_tx, mut b_rx) = mpsc::unbounded_channel();
    follow(api.base.clone(), id.clone(), None, Some(6), b_tx.clone()).await;

    // Wait for real progress, then kill whichever worker holds the job.
    let owner = eventually(
        Duration::from_secs(60),
        "the job to make progress",
        || async {
            let job = store.get(id.parse().expect("uuid")).await.expect("get");
            let items = job
                .progress
                .as_ref()
                .and_then(|p| p["items_processed"].as_u64())
                .unwrap_or(0);
            (items >= 8).then(|| job.lease_owner.clone()).flatten()
        },
    )
    .await;
    let victim = workers
        .iter()
        .position(|w| w.id == owner)
        .expect("the owner is one of ours");
    workers[victim].kill9();

    let mut b_first = Vec::new();
    while let Ok(event) = b_rx.try_recv() {
        b_first.push(event);
    }
    let b_last = b_first
        .iter()
        .filter_map(|e| e.id)
        .max()
        .expect("B saw ids");
    tokio::time::timeout(
        Duration::from_secs(120),
        follow(api.base.clone(), id.clone(), Some(b_last), None, b_tx),
    )
    .await
    .expect("B's second connection ends");
    tokio::time::timeout(Duration::from_secs(120), client_a)
        .await
        .expect("A ends")
        .expect("A ran");

    let mut a_events = Vec::new();
    while let Ok(event) = a_rx.try_recv() {
        a_events.push(event);
    }
    assert_eq!(
        a_events.last().map(|e| e.event.as_str()),
        Some("end"),
        "A's stream ends with end"
    );
    let a_ids: Vec<i64> = a_events.iter().filter_map(|e| e.id).collect();
    assert_gapless(&a_ids, "client A");
    let statuses: Vec<(String, String)> = a_events
        .iter()
        .filter(|e| e.event == "status")
        .map(|e| {
            (
                e.data["status"].as_str().unwrap_or("").to_string(),
                e.data["worker"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let survivor = if owner == "w1" { "w2" } else { "w1" };
    assert!(
        statuses.contains(&("running".into(), owner.clone())),
        "{statuses:?}"
    );
    assert!(
        a_events
            .iter()
            .any(|e| e.event == "status" && e.data["reason"] == "lease_expired"),
        "the reaper took the job back"
    );
    assert!(
        statuses.contains(&("running".into(), survivor.to_string())),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last(),
        Some(&("completed".to_string(), survivor.to_string()))
    );
    assert!(a_events.iter().any(|e| e.event == "log"
        && e.data["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("resumed from checkpoint")));

    let mut b_events = b_first;
    while let Ok(event) = b_rx.try_recv() {
        b_events.push(event);
    }
    let b_ids: Vec<i64> = b_events.iter().filter_map(|e| e.id).collect();
    assert_gapless(&b_ids, "client B across its reconnect");
    assert_eq!(b_ids, a_ids, "both clients saw the same log");
    assert_eq!(b_events.last().map(|e| e.event.as_str()), Some("end"));
    drop_schema(&url).await;
}
