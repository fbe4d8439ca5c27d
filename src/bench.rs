//! `drover bench`: the standard throughput and latency workload against any store.
//!
//! - W1: enqueue `--jobs` no-op jobs in batches, then process them with a worker pool of
//!   `--slots` slots in this process; report enqueue and process jobs/s.
//! - W2 (`--latency`): 500 single enqueues at 50/s while the pool runs; report the
//!   enqueue→start latency (the store's `started_at - created_at`) at p50/p95/p99.
//!
//! Jobs go to a queue of their own (`bench-<random>`), leased only by the bench's pool.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use drover_queue::{JobId, JobStatus, NewJob, Store};
use drover_worker::{Registry, WorkerOptions};

#[derive(Args)]
pub struct BenchArgs {
    /// Jobs for the throughput workload (W1).
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Worker slots.
    #[arg(long, default_value_t = 8)]
    slots: usize,
    /// Jobs per enqueue batch.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Also run the latency workload (W2: 500 single enqueues at 50/s).
    #[arg(long)]
    latency: bool,
}

pub async fn run(store: Arc<dyn Store>, args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.jobs > 0, "--jobs: must be at least 1");
    anyhow::ensure!(args.slots > 0, "--slots: must be at least 1");
    anyhow::ensure!(
        (1..=10_000).contains(&args.batch),
        "--batch: must be 1 to 10000"
    );
    let queue = format!("bench-{:08x}", fastrand::u32(..));

    // W1: enqueue in batches.
    let started = Instant::now();
    let mut left = args.jobs;
    while left > 0 {
        let n = left.min(args.batch);
        let batch = (0..n)
            .map(|i| NewJob::new("noop", format!("bench {i}")).queue(queue.clone()))
            .collect();
        store.enqueue_batch(batch).await?;
        left -= n;
    }
    let enqueue_rate = args.jobs as f64 / started.elapsed().as_secs_f64();

    // W1: process with a pool of `slots`.
    let options = WorkerOptions {
        slots: args.slots,
        queues: vec![queue.clone()],
        poll_interval: Duration::from_millis(100),
        heartbeat_interval: Duration::from_secs(2),
        retention: None,
        ..WorkerOptions::default()
    };
    let started = Instant::now();
    let pool = drover_worker::start(store.clone(), Registry::builtin(), options);
    wait_until_drained(&*store, &queue).await?;
    let process_rate = args.jobs as f64 / started.elapsed().as_secs_f64();

    // W2: single enqueues at 50/s while the pool idles waiting for work.
    let latency = if args.latency {
        Some(latency(&*store, &queue).await?)
    } else {
        None
    };
    pool.shutdown();
    pool.wait().await;

    let fmt = |d: Option<Duration>| {
        d.map(|d| format!("{:.2}", d.as_secs_f64() * 1000.0))
            .unwrap_or_else(|| "-".into())
    };
    let (p50, p95, p99) = match &latency {
        Some(l) => (Some(l.0), Some(l.1), Some(l.2)),
        None => (None, None, None),
    };
    println!("| store | jobs | slots | enqueue jobs/s | process jobs/s | enqueue→start p50 ms | p95 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {:.0} | {:.0} | {} | {} | {} |",
        store.backend(),
        args.jobs,
        args.slots,
        enqueue_rate,
        process_rate,
        fmt(p50),
        fmt(p95),
        fmt(p99)
    );
    Ok(ExitCode::SUCCESS)
}

async fn wait_until_drained(store: &dyn Store, queue: &str) -> anyhow::Result<()> {
    loop {
        let stats = store.queues().await?;
        let unfinished: u64 = stats
            .iter()
            .filter(|q| q.name == queue)
            .flat_map(|q| q.by_status.values())
            .sum();
        if unfinished == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn latency(store: &dyn Store, queue: &str) -> anyhow::Result<(Duration, Duration, Duration)> {
    const JOBS: usize = 500;
    let mut ids: Vec<JobId> = Vec::with_capacity(JOBS);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..JOBS {
        tick.tick().await;
        let job = NewJob::new("noop", format!("latency {i}")).queue(queue.to_string());
        ids.push(store.enqueue(job).await?.job().id);
    }
    wait_until_drained(store, queue).await?;
    let mut samples = Vec::with_capacity(JOBS);
    for id in ids {
        let job = store.get(id).await?;
        if job.status != JobStatus::Completed {
            continue;
        }
        if let Some(started) = job.started_at {
            samples.push((started - job.created_at).to_std().unwrap_or_default());
        }
    }
    anyhow::ensure!(!samples.is_empty(), "no latency samples");
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    Ok((at(0.50), at(0.95), at(0.99)))
}
