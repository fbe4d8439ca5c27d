//! The graph runtime under real process crashes, on PostgreSQL, a shared SQLite file and Redis:
//! a SIGKILLed worker's demo job is finished by another worker from its last checkpoint
//! without repeating effects, and a SIGSTOPped worker that lost its lease cannot write.

mod common;

#[path = "../worker/tests/support/effect_server.rs"]
mod effect_server;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use drover_queue::{Job, JobId, JobStatus, NewJob, Store};
use effect_server::{Delivery, EffectServer};
use serde_json::json;

enum Backend {
    Postgres(String),
    Sqlite(tempfile::TempDir),
    Redis(String),
}

impl Backend {
    fn url(&self) -> String {
        match self {
            Backend::Postgres(url) => url.clone(),
            Backend::Sqlite(dir) => format!("sqlite://{}", dir.path().join("shared.db").display()),
            Backend::Redis(prefix) => {
                format!("{}/?prefix={prefix}", drover_queue::testing::redis_url())
            }
        }
    }

    async fn cleanup(self) {
        match &self {
            Backend::Postgres(url) => drop_schema(url).await,
            Backend::Redis(prefix) => drover_queue::testing::drop_prefix(prefix).await,
            Backend::Sqlite(_) => {}
        }
    }
}

fn postgres() -> Backend {
    Backend::Postgres(pg_schema_url(&pg_url()))
}

fn sqlite() -> Backend {
    Backend::Sqlite(tempfile::tempdir().expect("temp dir"))
}

fn redis() -> Backend {
    Backend::Redis(format!("t_{}", uuid::Uuid::now_v7().simple()))
}

async fn job(store: &dyn Store, id: JobId) -> Job {
    store.get(id).await.expect("get")
}

async fn wait_deliveries(server: &EffectServer, n: usize) {
    eventually(
        Duration::from_secs(60),
        "effects to be delivered",
        || async { (server.deliveries().len() >= n).then_some(()) },
    )
    .await;
}

/// The `n` of the newest `resumed from checkpoint … n items of it done` log event.
async fn resumed_items(store: &dyn Store, id: JobId) -> Option<u64> {
    store
        .events(id, 0, 10_000)
        .await
        .expect("events")
        .iter()
        .rev()
        .filter(|e| e.kind == "log")
        .filter_map(|e| e.data["message"].as_str())
        .find(|m| m.starts_with("resumed from checkpoint"))
        .and_then(|m| m.split(", ").find(|p| p.ends_with("items of it done")))
        .and_then(|p| p.split(' ').next())
        .and_then(|n| n.parse().ok())
}

/// Every item delivered; any key delivered twice is in `allowed`, and at most one is.
fn assert_effects(job: JobId, items: u64, deliveries: &[Delivery], allowed: &[u64]) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for d in deliveries {
        *counts.entry(d.key.as_str()).or_default() += 1;
    }
    for item in 0..items {
        assert!(
            counts.contains_key(format!("{job}/{item}").as_str()),
            "item {item} never delivered"
        );
    }
    let twice: Vec<&str> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| *k)
        .collect();
    assert!(twice.len() <= 1, "more than one effect repeated: {twice:?}");
    for key in &twice {
        assert_eq!(counts[key], 2, "{key} delivered more than twice");
        let allowed_keys: Vec<String> = allowed.iter().map(|i| format!("{job}/{i}")).collect();
        assert!(
            allowed_keys.iter().any(|k| k == key),
            "{key} repeated, but only {allowed_keys:?} may be (the effect the crash fell in)"
        );
    }
}

fn log_contains(dir: &Path, worker: &str, needle: &str) -> bool {
    std::fs::read_to_string(dir.join(format!("{worker}.log")))
        .map(|log| log.contains(needle))
        .unwrap_or(false)
}

async fn sigkill_mid_run_resumes_from_checkpoint_without_repeating_effects(backend: Backend) {
    let server = EffectServer::start().await;
    let url = backend.url();
    let store = open(&url).await;
    let logs = tempfile::tempdir().expect("temp dir");
    let mut victim = spawn_worker(&url, "victim", 2, logs.path());
    let id = store
        .enqueue(NewJob::new("demo", "crash me").config(json!({
            "items": 40, "item_ms": 60, "checkpoint_every": 5, "effect_url": server.url,
        })))
        .await
        .expect("enqueue")
        .job()
        .id;
    wait_deliveries(&server, 12).await;
    victim.kill9();
    let killed_at = Instant::now();
    let before_kill: Vec<Delivery> = server
        .deliveries()
        .into_iter()
        .filter(|d| d.at < killed_at)
        .collect();
    let last_by_victim = before_kill.len() as u64 - 1;

    let _survivor = spawn_worker(&url, "survivor", 2, logs.path());
    let done = eventually(
        Duration::from_secs(90),
        "the survivor to finish the job",
        || async {
            let job = job(&*store, id).await;
            job.status.is_terminal().then_some(job)
        },
    )
    .await;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert_eq!(done.result, Some(json!({"items_processed": 40})));
    assert_eq!(done.attempt, 2, "one crashed attempt, one that finished");
    // It continued from the last checkpoint, never from item 0.
    let resumed = resumed_items(&*store, id)
        .await
        .expect("a resume from a checkpoint");
    assert!(resumed >= 10, "resumed with {resumed} items done");
    assert!(resumed <= before_kill.len() as u64);
    // Every item's effect was delivered; only the one the kill fell into may repeat.
    assert_effects(id, 40, &server.deliveries(), &[last_by_victim]);
    assert_each_completed_once(&*store, &[id]).await;
    backend.cleanup().await;
}

async fn sigstopped_worker_is_fenced_after_losing_its_lease(backend: Backend) {
    let server = EffectServer::start().await;
    let url = backend.url();
    let store = open(&url).await;
    let logs = tempfile::tempdir().expect("temp dir");
    let victim = spawn_worker(&url, "victim", 2, logs.path());
    let id = store
        .enqueue(NewJob::new("demo", "stop me").config(json!({
            "items": 30, "item_ms": 300, "checkpoint_every": 3, "effect_url": server.url,
        })))
        .await
        .expect("enqueue")
        .job()
        .id;
    wait_deliveries(&server, 6).await;
    // Stop it while it sleeps inside an item (just after a delivery), holding its lease.
    let delivered = server.deliveries().len();
    tokio::time::sleep(Duration::from_millis(60)).await;
    victim.signal(libc::SIGSTOP);
    let in_flight = [delivered as u64 - 1, delivered as u64];

    let _survivor = spawn_worker(&url, "survivor", 2, logs.path());
    let taken = eventually(
        Duration::from_secs(60),
        "the survivor to take the job over",
        || async {
            let job = job(&*store, id).await;
            (job.lease_owner.as_deref() == Some("survivor")).then_some(job)
        },
    )
    .await;
    assert!(taken.lease_epoch >= 2);
    // Let the survivor make progress, then wake the stale worker up.
    wait_deliveries(&server, delivered + 3).await;
    victim.signal(libc::SIGCONT);
    eventually(
        Duration::from_secs(30),
        "the stale worker to notice",
        || async { log_contains(logs.path(), "victim", "lease lost").then_some(()) },
    )
    .await;

    let done = eventually(Duration::from_secs(90), "the job to finish", || async {
        let job = job(&*store, id).await;
        job.status.is_terminal().then_some(job)
    })
    .await;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert_eq!(done.result, Some(json!({"items_processed": 30})));
    let completed_by = store
        .events(id, 0, 10_000)
        .await
        .expect("events")
        .into_iter()
        .rev()
        .find(|e| e.kind == "status" && e.data["status"] == "completed")
        .and_then(|e| e.data["worker"].as_str().map(String::from));
    assert_eq!(completed_by.as_deref(), Some("survivor"));
    assert_effects(id, 30, &server.deliveries(), &in_flight);
    assert_each_completed_once(&*store, &[id]).await;
    // The stale worker is alive and holds nothing.
    let running: Vec<Job> = store
        .list(&drover_queue::JobFilter {
            status: Some(JobStatus::Running),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list")
        .jobs;
    assert!(running.is_empty(), "{running:?}");
    drop(victim);
    backend.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigkill_mid_run_resumes_from_checkpoint_without_repeating_effects() {
    sigkill_mid_run_resumes_from_checkpoint_without_repeating_effects(postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigkill_mid_run_resumes_from_checkpoint_without_repeating_effects() {
    sigkill_mid_run_resumes_from_checkpoint_without_repeating_effects(sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigstopped_worker_is_fenced_after_losing_its_lease() {
    sigstopped_worker_is_fenced_after_losing_its_lease(postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigstopped_worker_is_fenced_after_losing_its_lease() {
    sigstopped_worker_is_fenced_after_losing_its_lease(sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sigkill_mid_run_resumes_from_checkpoint_without_repeating_effects() {
    sigkill_mid_run_resumes_from_checkpoint_without_repeating_effects(redis()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sigstopped_worker_is_fenced_after_losing_its_lease() {
    sigstopped_worker_is_fenced_after_losing_its_lease(redis()).await;
}
