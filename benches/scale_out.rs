//! Issue 17's scaling measurement: throughput with 1, 2, 4 and 8 `drover worker` processes
//! (8 slots each) on one PostgreSQL and on one Redis, for no-op jobs and for demo jobs of
//! about 50 ms (`demo`, 5 items of 10 ms, a checkpoint and progress per item: the store
//! writes of a real job).
//!
//! Each row: a fresh schema or prefix, every job enqueued first (batches of 1,000), then the
//! processes started; throughput is jobs ÷ (last `finished_at` − first `started_at`), read
//! from the store, so process start-up is not counted. The ratio is to one process.
//!
//! ```sh
//! cargo bench --bench scale_out     # DROVER_TEST_PG / DROVER_TEST_REDIS select the servers
//! DROVER_SCALE_PROCESSES=1,2 DROVER_SCALE_JOBS=2000 cargo bench --bench scale_out
//! ```
//!
//! `DROVER_SCALE_JOBS` sets the no-op jobs per row (default 8,000); demo rows take a fifth
//! of that. The servers, the workers and this driver share the machine: on a 2-core box the
//! figures show where the machine saturates as much as where the store does.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_queue::testing::{eventually, Backend};
use drover_queue::{JobFilter, JobStatus, NewJob, Store};
use serde_json::json;

const SLOTS: u32 = 8;

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

/// Kills the worker processes when dropped.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(url: &str, processes: usize) -> Workers {
    Workers(
        (0..processes)
            .map(|i| {
                Command::new(env!("CARGO_BIN_EXE_drover"))
                    .args(["worker", "--store", url, "--enable-test-kinds"])
                    .args(["--worker-id", &format!("scale-{i}")])
                    .args(["--slots", &SLOTS.to_string()])
                    .env("DROVER_LOG", "warn")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn drover worker")
            })
            .collect(),
    )
}

/// Jobs per second over the run, from the store's own timestamps.
async fn rate(store: &Arc<dyn Store>, jobs: usize) -> f64 {
    let mut first = None;
    let mut last = None;
    let mut seen = 0;
    let mut before = None;
    loop {
        let page = store
            .list(&JobFilter {
                status: Some(JobStatus::Completed),
                before,
                limit: 500,
                ..Default::default()
            })
            .await
            .expect("list");
        for job in &page.jobs {
            seen += 1;
            first = match (first, job.started_at) {
                (Some(f), Some(s)) => Some(std::cmp::min(f, s)),
                (f, s) => f.or(s),
            };
            last = last.max(job.finished_at);
        }
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, jobs, "every job completed");
    let (Some(first), Some(last)) = (first, last) else {
        return 0.0;
    };
    let secs = (last - first).num_milliseconds().max(1) as f64 / 1000.0;
    jobs as f64 / secs
}

async fn row(backend: &Backend, workload: &str, jobs: usize, processes: usize) -> f64 {
    let store = backend.open().await;
    let batch: Vec<NewJob> = (0..jobs)
        .map(|i| match workload {
            "noop" => NewJob::new("noop", format!("scale {i}")),
            _ => NewJob::new("demo", format!("scale {i}"))
                .config(json!({"items": 5, "item_ms": 10, "checkpoint_every": 1})),
        })
        .collect();
    for chunk in batch.chunks(1000) {
        store.enqueue_batch(chunk.to_vec()).await.expect("enqueue");
    }
    let started = Instant::now();
    let workers = spawn(&backend.url(), processes);
    eventually(Duration::from_secs(600), "every job to finish", || async {
        let queues = store.queues().await.ok()?;
        let left: u64 = queues.iter().flat_map(|q| q.by_status.values()).sum();
        (left == 0).then_some(())
    })
    .await;
    let wall = started.elapsed();
    drop(workers);
    let rate = rate(&store, jobs).await;
    eprintln!(
        "  {} {workload} ×{jobs}, {processes} processes: {rate:.0} jobs/s (wall {:.1} s with start-up)",
        backend.name(),
        wall.as_secs_f64()
    );
    rate
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let processes = env_list("DROVER_SCALE_PROCESSES", &[1, 2, 4, 8]);
    let noop_jobs = env_list("DROVER_SCALE_JOBS", &[8000])[0];
    println!("| store | jobs | processes × {SLOTS} slots | jobs/s | ratio to 1 process |");
    println!("|---|---|---:|---:|---:|");
    for make in [Backend::postgres as fn() -> Backend, Backend::redis] {
        for (workload, jobs) in [("noop", noop_jobs), ("demo ~50 ms", noop_jobs / 5)] {
            let mut one = None;
            for n in &processes {
                let backend = make();
                let rate = row(&backend, workload, jobs, *n).await;
                let base = *one.get_or_insert(rate);
                println!(
                    "| {} | {workload} | {n} | {rate:.0} | {:.2} |",
                    backend.name(),
                    rate / base
                );
                backend.cleanup().await;
            }
        }
    }
}
