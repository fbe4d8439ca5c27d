//! Issue 12 §3's measurement: a 10,000-item map whose items each return about 1 KB, with a
//! checkpoint every 100 items, on every backend, two ways:
//!
//! - `before`: `MapStep::fold_as_completed`, the behaviour before outputs were stored per
//!   item: each output is folded into the state as it completes, so each checkpoint
//!   serialises every output so far (O(n²) bytes);
//! - `after` (the default now): outputs are written as rows, each once, with the checkpoint
//!   that records them done; checkpoints carry the cursor and the small state; the fold runs
//!   when the map ends, on outputs read back from the store a page at a time.
//!
//! Both modes use the same fold (it keeps every output in the state, as a campaign that
//! collects its results does), so the difference is what is written and when.
//!
//! Every case runs in a child process of its own so that its peak RSS (`getrusage`
//! `ru_maxrss`, the worker and the store client in one process; SQLite's engine too) is its
//! own. Bytes written are counted from what the store received: the checkpoint bodies (the
//! `size` of every `checkpoint` event: the stored bytes, after zstd where it applied) plus
//! the item-output payloads stored (read back with `RunLog::item_outputs`); the outputs'
//! own size is the sum of the items' JSON as the kind produced it. The store's growth
//! (`Footprint`: the SQLite file and WAL, PostgreSQL relation sizes, Redis `MEMORY USAGE`)
//! is shown too. Wall time is the store's clock from enqueue to completion.
//!
//! ```sh
//! CARGO_TARGET_DIR=… cargo bench --bench map_outputs   # DROVER_TEST_PG / DROVER_TEST_REDIS
//! DROVER_BENCH_ITEMS=2000 cargo bench --bench map_outputs   # a smaller map
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use drover_queue::testing::{eventually, Backend};
use drover_queue::{Event, JobId, JobStatus, NewJob, Retention, Store};
use drover_worker::graph::{CheckpointPolicy, Graph, GraphKind, MapStep, StepContext};
use drover_worker::{JobError, Registry, RunSettings, WorkerOptions};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const CHECKPOINT_EVERY: u64 = 100;
const OUTPUT_BYTES: usize = 1_000;

fn items() -> u64 {
    std::env::var("DROVER_BENCH_ITEMS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(10_000)
}

/// The JSON bytes of every output the kind returned, in this process.
static OUTPUT_TOTAL: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Serialize, Deserialize)]
struct MapState {
    items: u64,
    outputs: Vec<Value>,
}

/// About 1 KB of text that zstd cannot shrink much (hex of a xorshift stream), so that
/// the `before` checkpoints are not flattered by compression.
fn output(index: u64) -> Value {
    let mut x = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut text = String::with_capacity(OUTPUT_BYTES);
    while text.len() < OUTPUT_BYTES - 40 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push_str(&format!("{x:016x}"));
    }
    json!({ "item": index, "text": text })
}

fn kind(before: bool) -> GraphKind<MapState> {
    let mut map = MapStep::new(
        |state: &MapState| (0..state.items).map(Value::from).collect(),
        |_ctx: StepContext, _i: usize, item: Value| async move {
            let out = output(item.as_u64().unwrap_or_default());
            OUTPUT_TOTAL.fetch_add(out.to_string().len() as u64, Ordering::Relaxed);
            Ok::<_, JobError>(out)
        },
    )
    .concurrency(4)
    .fold(|state: &mut MapState, _, output| state.outputs.push(output));
    if before {
        map = map.fold_as_completed();
    }
    let graph = Graph::new().map("map", map);
    GraphKind::new("map_outputs", graph, |job| {
        Ok(MapState {
            items: job.config["items"].as_u64().unwrap_or(0),
            outputs: Vec::new(),
        })
    })
    .policy(|_| CheckpointPolicy {
        every_items: Some(CHECKPOINT_EVERY),
        ..CheckpointPolicy::default()
    })
    .result(|state| json!({ "outputs": state.outputs.len() }))
}

async fn all_events(store: &Arc<dyn Store>, id: JobId) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    loop {
        let after = events.last().map_or(0, |e| e.seq);
        let page = store.events(id, after, 1_000).await.expect("events");
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
}

/// The bytes of the job's stored outputs of step `map`, and how many rows.
async fn stored_outputs(store: &Arc<dyn Store>, id: JobId) -> (u64, u64) {
    let (mut bytes, mut rows, mut from) = (0, 0, 0);
    loop {
        let page = store
            .item_outputs(id, "map", from, 1_000)
            .await
            .expect("item outputs");
        let Some(last) = page.last().map(|r| r.index) else {
            return (bytes, rows);
        };
        rows += page.len() as u64;
        bytes += page.iter().map(|r| r.output.len() as u64).sum::<u64>();
        from = last + 1;
    }
}

fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return 0;
    }
    usage.ru_maxrss as u64 * 1024 // kilobytes on Linux
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / 1024.0 / 1024.0)
}

/// One case, in this (child) process: prints its table row.
async fn case(backend: Backend, before: bool) {
    let name = backend.name();
    let n = items();
    let store = backend.open().await;
    let mut registry = Registry::with_test_kinds();
    registry.register(kind(before));
    let worker = drover_worker::start(
        store.clone(),
        registry,
        WorkerOptions {
            slots: 1,
            retention: None,
            run: RunSettings::default(),
            ..WorkerOptions::default()
        },
    );
    let start = backend.footprint().await;
    let id = store
        .enqueue(NewJob::new("map_outputs", "bench").config(json!({ "items": n })))
        .await
        .expect("enqueue")
        .into_job()
        .id;
    let job = eventually(Duration::from_secs(1800), "the map to finish", || async {
        let job = store.get(id).await.expect("get");
        job.status.is_terminal().then_some(job)
    })
    .await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(job.result, Some(json!({ "outputs": n })));
    let wall = job.finished_at.expect("finished_at") - job.created_at;
    let rss = peak_rss_bytes();
    let events = all_events(&store, id).await;
    let checkpoints: Vec<u64> = events
        .iter()
        .filter(|e| e.kind == "checkpoint")
        .map(|e| e.data["size"].as_u64().unwrap_or(0))
        .collect();
    let checkpoint_bytes: u64 = checkpoints.iter().sum();
    let (item_bytes, rows) = stored_outputs(&store, id).await;
    let end = backend.footprint().await;
    let outputs = OUTPUT_TOTAL.load(Ordering::Relaxed);
    let written = checkpoint_bytes + item_bytes;
    let zero = Retention {
        completed: Duration::ZERO,
        failed: Duration::ZERO,
        cancelled: Duration::ZERO,
    };
    assert_eq!(store.prune(&zero, 10).await.expect("prune"), 1);
    assert_eq!(
        stored_outputs(&store, id).await,
        (0, 0),
        "pruned with the job"
    );
    println!(
        "| {name} | {} | {:.2} | {} ({}) | {} / {rows} | {} ({:.0} B/item) | {:.2}× | {} | {} |",
        if before { "before" } else { "after" },
        wall.num_milliseconds() as f64 / 1000.0,
        checkpoints.len(),
        mib(checkpoint_bytes),
        mib(item_bytes),
        mib(written),
        written as f64 / n as f64,
        written as f64 / outputs.max(1) as f64,
        mib(end.bytes.saturating_sub(start.bytes)),
        mib(rss),
    );
    worker.shutdown();
    worker.wait().await;
    backend.cleanup().await;
}

fn backend(name: &str) -> Backend {
    match name {
        "sqlite" => Backend::sqlite(),
        "postgres" => Backend::postgres(),
        _ => Backend::redis(),
    }
}

#[tokio::main]
async fn main() {
    // A child runs one case: DROVER_BENCH_CASE=<backend>:<before|after>.
    if let Ok(spec) = std::env::var("DROVER_BENCH_CASE") {
        let (name, mode) = spec.split_once(':').unwrap_or((spec.as_str(), "after"));
        case(backend(name), mode == "before").await;
        return;
    }
    let n = items();
    println!(
        "map_outputs: one map of {n} items, each returning ~{OUTPUT_BYTES} B of JSON, \
         concurrency 4, a checkpoint every {CHECKPOINT_EVERY} items; one process per case"
    );
    println!();
    println!(
        "| backend | mode | wall s | checkpoints (bytes) | item outputs / rows | written (per item) | written ÷ outputs | store growth | peak RSS |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let exe = std::env::current_exe().expect("current exe");
    for name in ["sqlite", "postgres", "redis"] {
        for mode in ["before", "after"] {
            let status = std::process::Command::new(&exe)
                .env("DROVER_BENCH_CASE", format!("{name}:{mode}"))
                .status()
                .expect("run a case");
            assert!(status.success(), "{name} {mode}: {status}");
        }
    }
}
