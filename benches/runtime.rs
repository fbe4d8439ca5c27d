//! Runtime figures: checkpoint write time of a 10 kB state, and pause latency (from the
//! operator's request to the job being `paused`), on SQLite and PostgreSQL.
//!
//!     cargo bench --bench runtime            # DROVER_TEST_PG selects the PostgreSQL server
//!
//! Prints one row per backend and measure with median, p99 and max.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_queue::testing::{eventually, Backend};
use drover_queue::{ClaimRequest, JobStatus, NewCheckpoint, NewJob, Store};
use drover_worker::context::{encode_checkpoint, RunSettings};
use drover_worker::{Registry, WorkerOptions};
use serde_json::json;

const CHECKPOINTS: usize = 1000;
const PAUSES: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn row(backend: &str, what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {backend:<8} | {what:<42} | {:>5} | {:>8.2} | {:>8.2} | {:>8.2} |",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap_or(&Duration::ZERO)),
    );
}

/// A 10 kB state of the kind a campaign checkpoints: leads with a few fields each.
fn state() -> serde_json::Value {
    let leads: Vec<_> = (0..150)
        .map(|i| json!({"login": format!("dev{i:04}"), "repo": format!("org/project-{i}"), "score": i * 7 % 100, "sent": i % 3 == 0}))
        .collect();
    json!({ "cursor": 1234, "leads": leads })
}

async fn checkpoint_writes(store: &Arc<dyn Store>) -> (Vec<Duration>, usize, usize) {
    let job = store
        .enqueue(NewJob::new("noop", "bench"))
        .await
        .expect("enqueue")
        .into_job();
    let lease = store
        .claim(&ClaimRequest {
            worker_id: "bench".into(),
            limit: 1,
            lease_ttl: Duration::from_secs(600),
            queues: vec![],
        })
        .await
        .expect("claim")
        .pop()
        .expect("the job");
    assert_eq!(lease.job.id, job.id);
    let settings = RunSettings::default();
    let state = state();
    let raw = serde_json::to_vec(&state).expect("json").len();
    let mut stored = 0;
    let mut samples = Vec::with_capacity(CHECKPOINTS);
    for i in 0..CHECKPOINTS {
        let started = Instant::now();
        let (bytes, compressed) = encode_checkpoint(&state, &settings).expect("encode");
        stored = bytes.len();
        store
            .checkpoint(
                lease.fence(),
                NewCheckpoint {
                    step: format!("step-{i}"),
                    state: bytes,
                    compressed,
                    items: Vec::new(),
                },
                settings.max_checkpoints,
            )
            .await
            .expect("checkpoint");
        samples.push(started.elapsed());
    }
    (samples, raw, stored)
}

async fn pause_latency(store: &Arc<dyn Store>) -> Vec<Duration> {
    let worker = drover_worker::start(
        store.clone(),
        Registry::with_test_kinds(),
        WorkerOptions {
            slots: 4,
            heartbeat_interval: Duration::from_secs(5),
            ..WorkerOptions::default()
        },
    );
    let id = store
        .enqueue(
            NewJob::new("demo", "pause bench")
                .config(json!({"items": 100000, "item_ms": 50, "checkpoint_every": 20})),
        )
        .await
        .expect("enqueue")
        .job()
        .id;
    let mut samples = Vec::with_capacity(PAUSES);
    for _ in 0..PAUSES {
        eventually(Duration::from_secs(30), "the job to run", || async {
            let job = store.get(id).await.expect("get");
            let items = job
                .progress
                .as_ref()
                .and_then(|p| p["items_processed"].as_u64())
                .unwrap_or(0);
            (job.status == JobStatus::Running && items > 0).then_some(())
        })
        .await;
        // Mid-item, at a random point of the 50 ms item.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..50))).await;
        let started = Instant::now();
        store.pause(id).await.expect("pause");
        loop {
            if store.get(id).await.expect("get").status == JobStatus::Paused {
                break;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        samples.push(started.elapsed());
        store.resume(id).await.expect("resume");
    }
    store.cancel(id).await.expect("cancel");
    worker.shutdown();
    worker.wait().await;
    samples
}

#[tokio::main]
async fn main() {
    println!("| backend  | measure                                    |     n | median ms |   p99 ms |   max ms |");
    println!("|----------|--------------------------------------------|------:|---------:|---------:|---------:|");
    for backend in [Backend::sqlite(), Backend::postgres()] {
        let name = backend.name();
        let store = backend.open().await;
        let (samples, raw, stored) = checkpoint_writes(&store).await;
        row(
            name,
            &format!("checkpoint write ({raw} B -> {stored} B zstd)"),
            samples,
        );
        row(
            name,
            "pause latency (request -> paused)",
            pause_latency(&store).await,
        );
        backend.cleanup().await;
    }
}
