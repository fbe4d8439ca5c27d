//! `drover bench`: the standard throughput and latency workload against any store.
//!
//! - W1: enqueue `--jobs` no-op jobs in batches, then process them with a worker pool of
//!   `--slots` slots in this process; report enqueue and process jobs/s.
//! - W2 (`--latency`): 500 single enqueues at 50/s to an idle pool; report the
//!   enqueue→start latency (from sending the enqueue to the job's code starting, measured
//!   in this process) at p50/p95/p99.
//!
//! Each run's jobs go to a queue of their own (`bench-<random>`), leased only by the
//! bench's pool, which stops once it has run and recorded them all.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use drover_queue::{JobId, NewJob, Store};
use drover_worker::{JobContext, JobError, Kind, Registry, WorkerOptions};
use serde_json::Value;

#[derive(Args)]
pub struct BenchArgs {
    /// Jobs for the throughput workload (W1).
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Worker slots.
    #[arg(long, default_value_t = 8)]
    slots: usize,
    /// Leased jobs the pool may hold waiting for a slot (`workers.prefetch`).
    #[arg(long, default_value_t = 0)]
    prefetch: usize,
    /// Jobs per enqueue batch.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Also run the latency workload (W2: 500 single enqueues at 50/s).
    #[arg(long)]
    latency: bool,
    /// Repeat the workloads this many times (one row each, then the median).
    #[arg(long, default_value_t = 1)]
    runs: usize,
}

/// One run's figures.
#[derive(Clone, Copy, Default)]
struct Figures {
    enqueue_rate: f64,
    process_rate: f64,
    /// enqueue→start p50, p95, p99 (W2).
    latency: Option<[Duration; 3]>,
}

pub async fn run(store: Arc<dyn Store>, args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.jobs > 0, "--jobs: must be at least 1");
    anyhow::ensure!(args.slots > 0, "--slots: must be at least 1");
    anyhow::ensure!(args.runs > 0, "--runs: must be at least 1");
    anyhow::ensure!(
        (1..=10_000).contains(&args.batch),
        "--batch: must be 1 to 10000"
    );
    println!("| store | jobs | slots | prefetch | enqueue jobs/s | process jobs/s | enqueue→start p50 ms | p95 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut runs = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let figures = once(&store, &args).await?;
        print_row(&*store, &args, "", &figures);
        runs.push(figures);
    }
    if runs.len() > 1 {
        let median = |pick: &dyn Fn(&Figures) -> f64| {
            let mut values: Vec<f64> = runs.iter().map(pick).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let latency = args.latency.then(|| {
            [0, 1, 2].map(|i| {
                Duration::from_secs_f64(median(&|f: &Figures| {
                    f.latency.map(|l| l[i].as_secs_f64()).unwrap_or_default()
                }))
            })
        });
        let figures = Figures {
            enqueue_rate: median(&|f: &Figures| f.enqueue_rate),
            process_rate: median(&|f: &Figures| f.process_rate),
            latency,
        };
        print_row(&*store, &args, " (median)", &figures);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_row(store: &dyn Store, args: &BenchArgs, note: &str, f: &Figures) {
    let ms = |i: usize| {
        f.latency
            .map(|l| format!("{:.2}", l[i].as_secs_f64() * 1000.0))
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "| {}{note} | {} | {} | {} | {:.0} | {:.0} | {} | {} | {} |",
        store.backend(),
        args.jobs,
        args.slots,
        args.prefetch,
        f.enqueue_rate,
        f.process_rate,
        ms(0),
        ms(1),
        ms(2)
    );
}

/// One run of W1 (and W2) on a queue of its own.
async fn once(store: &Arc<dyn Store>, args: &BenchArgs) -> anyhow::Result<Figures> {
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

    // W1: process with a pool that stops once it has run (and recorded) every job.
    let started = Instant::now();
    let pool = drover_worker::start(
        store.clone(),
        noop_registry(),
        pool_options(args, &queue, args.jobs),
    );
    pool.wait().await;
    let process_rate = args.jobs as f64 / started.elapsed().as_secs_f64();
    let left = unfinished(&**store, &queue).await?;
    anyhow::ensure!(left == 0, "{left} jobs of the run were left unfinished");

    // W2: single enqueues at 50/s to an idle pool.
    let latency = if args.latency {
        Some(latency(store, args, &queue).await?)
    } else {
        None
    };
    Ok(Figures {
        enqueue_rate,
        process_rate,
        latency,
    })
}

fn pool_options(args: &BenchArgs, queue: &str, jobs: usize) -> WorkerOptions {
    WorkerOptions {
        slots: args.slots,
        prefetch: args.prefetch,
        max_jobs: Some(jobs as u64),
        queues: vec![queue.to_string()],
        poll_interval: Duration::from_millis(100),
        heartbeat_interval: Duration::from_secs(2),
        retention: None,
        ..WorkerOptions::default()
    }
}

async fn unfinished(store: &dyn Store, queue: &str) -> anyhow::Result<u64> {
    let stats = store.queues().await?;
    Ok(stats
        .iter()
        .filter(|q| q.name == queue)
        .flat_map(|q| q.by_status.values())
        .sum())
}

/// `bench-probe`: a no-op that notes when it started, for W2's latency.
struct Probe(Arc<Mutex<HashMap<JobId, Instant>>>);

#[async_trait::async_trait]
impl Kind for Probe {
    fn name(&self) -> &'static str {
        "bench-probe"
    }

    async fn run(&self, ctx: JobContext) -> Result<Value, JobError> {
        if let Ok(mut started) = self.0.lock() {
            started.insert(ctx.job().id, Instant::now());
        }
        Ok(Value::Null)
    }
}

/// The bench's workload is `noop`, a test kind: the bench registers that one alone (it has
/// no `--enable-test-kinds`).
fn noop_registry() -> Registry {
    let mut registry = Registry::production();
    registry.register(drover_worker::kinds::Noop);
    registry
}

/// W2: enqueue→start measured in this process, from the moment the enqueue is sent to
/// the moment the job's code starts (so it includes the enqueue's commit, the wake-up and
/// the claim), with a monotonic clock.
async fn latency(
    store: &Arc<dyn Store>,
    args: &BenchArgs,
    queue: &str,
) -> anyhow::Result<[Duration; 3]> {
    const JOBS: usize = 500;
    let started = Arc::new(Mutex::new(HashMap::with_capacity(JOBS)));
    let mut registry = noop_registry();
    registry.register(Probe(started.clone()));
    let pool = drover_worker::start(store.clone(), registry, pool_options(args, queue, JOBS));
    let mut sent: Vec<(JobId, Instant)> = Vec::with_capacity(JOBS);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..JOBS {
        tick.tick().await;
        let job = NewJob::new("bench-probe", format!("latency {i}")).queue(queue.to_string());
        let at = Instant::now();
        sent.push((store.enqueue(job).await?.job().id, at));
    }
    pool.wait().await;
    let started = started
        .lock()
        .map_err(|_| anyhow::anyhow!("latency probe poisoned"))?;
    let mut samples: Vec<Duration> = sent
        .iter()
        .filter_map(|(id, at)| started.get(id).map(|s| s.duration_since(*at)))
        .collect();
    anyhow::ensure!(
        samples.len() == JOBS,
        "only {} of {JOBS} latency jobs ran",
        samples.len()
    );
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    Ok([at(0.50), at(0.95), at(0.99)])
}
