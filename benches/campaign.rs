//! Issue 6's measurement: what a demo-kind campaign of 10,000 items (a checkpoint every 1,000)
//! costs the store, and whether retention gives it back. On each backend it runs
//! `DROVER_BENCH_CAMPAIGNS` campaigns (default 20) one after another through a real worker
//! pool; after each, retention with a zero retention prunes it. Each run reports the wall
//! time, checkpoints written and kept, the events in the job's log, and the store's size
//! before the campaign, after it, and after retention, read from the storage itself:
//!
//! - SQLite: the database file plus its WAL, with `PRAGMA page_count` / `freelist_count`.
//!   Every commit appends whole pages to the WAL; SQLite checkpoints it back into the file
//!   at 1,000 pages and then reuses it from the start without truncating it, so the WAL's
//!   size climbs to about 4 MiB and stays there;
//! - PostgreSQL: `pg_total_relation_size` summed over the schema's tables, and live rows.
//!   PostgreSQL does not give space back to the file system without VACUUM (deleted rows
//!   stay as dead tuples until (auto)vacuum makes their space reusable), so the size after
//!   retention is a high-water mark; the live rows show what is really kept. A final row
//!   shows the size after an explicit `VACUUM`. With `DROVER_BENCH_VACUUM=1` every run's
//!   retention is followed by a `VACUUM` (what autovacuum would do), to show that the space
//!   is then reused and the size stays flat;
//! - Redis: the keys under the store's prefix and `MEMORY USAGE` summed over them.
//!
//! ```sh
//! cargo bench --bench campaign     # DROVER_TEST_PG / DROVER_TEST_REDIS select the servers
//! ```
//!
//! Every backend is private (a temporary SQLite file, a fresh schema, a fresh key prefix)
//! and is removed afterwards.

use std::sync::Arc;
use std::time::Duration;

use drover_queue::testing::{eventually, Backend, Footprint};
use drover_queue::{Event, JobId, JobStatus, NewJob, Retention, Store};
use drover_worker::{Registry, RunSettings, WorkerOptions};
use serde_json::json;

const ITEMS: u64 = 10_000;
const CHECKPOINT_EVERY: u64 = 1_000;
/// Below the 10 checkpoints a campaign writes, so the trimming shows in the table.
const MAX_CHECKPOINTS: usize = 5;

fn campaigns() -> usize {
    std::env::var("DROVER_BENCH_CAMPAIGNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        // Enough for SQLite's WAL to reach its ceiling (about 11 campaigns here), so the
        // table shows where the file sizes level off rather than only their climb.
        .unwrap_or(20)
}

/// `DROVER_BENCH_VACUUM=1`: VACUUM PostgreSQL after each run's retention.
fn vacuum_each_run() -> bool {
    std::env::var("DROVER_BENCH_VACUUM").is_ok_and(|v| v == "1")
}

fn human(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB {
        format!("{:.2} MiB", b / KIB / KIB)
    } else {
        format!("{:.1} KiB", b / KIB)
    }
}

/// One size cell: bytes, rows or keys, and SQLite's page accounting.
fn size(backend: &str, f: &Footprint) -> String {
    let unit = if backend == "redis" { "keys" } else { "rows" };
    let mut cell = format!("{} / {} {unit}", human(f.bytes), f.total());
    if let Some(p) = f.pages {
        cell.push_str(&format!(
            " (pages {} free {}, WAL {})",
            p.page_count,
            p.freelist_count,
            human(p.wal_bytes)
        ));
    }
    cell
}

/// The job's whole log (a store answers at most 10,000 events per call).
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

async fn prune_all(store: &Arc<dyn Store>) -> u64 {
    let zero = Retention {
        completed: Duration::ZERO,
        failed: Duration::ZERO,
        cancelled: Duration::ZERO,
    };
    let mut total = 0;
    loop {
        let n = store.prune(&zero, 500).await.expect("prune");
        total += n;
        if n == 0 {
            return total;
        }
    }
}

/// `VACUUM` every table of the schema (PostgreSQL only), so the last row can show what
/// the relations shrink to once dead tuples are reclaimed.
async fn vacuum(backend: &Backend) {
    let Backend::Postgres { schema } = backend else {
        return;
    };
    let url = format!("{}?schema={schema}", drover_queue::testing::pg_url());
    let store = drover_queue::PgStore::connect(&url, Default::default())
        .await
        .expect("connect");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = $1")
            .bind(schema)
            .fetch_all(store.pool())
            .await
            .expect("tables");
    for table in tables {
        sqlx::query(&format!("VACUUM \"{schema}\".\"{table}\""))
            .execute(store.pool())
            .await
            .expect("vacuum");
    }
}

async fn bench(backend: Backend, runs: usize) {
    let name = backend.name();
    let store = backend.open().await;
    let worker = drover_worker::start(
        store.clone(),
        Registry::with_test_kinds(),
        WorkerOptions {
            slots: 2,
            // Retention is run by hand after each campaign, so it is measured.
            retention: None,
            run: RunSettings {
                max_checkpoints: MAX_CHECKPOINTS,
                ..RunSettings::default()
            },
            ..WorkerOptions::default()
        },
    );
    let mut after_retention = Vec::new();
    for run in 1..=runs {
        let before = backend.footprint().await;
        let id = store
            .enqueue(
                NewJob::new("demo", format!("campaign {run}")).config(json!({
                    "items": ITEMS, "item_ms": 0, "checkpoint_every": CHECKPOINT_EVERY,
                })),
            )
            .await
            .expect("enqueue")
            .into_job()
            .id;
        let job = eventually(
            Duration::from_secs(300),
            "the campaign to finish",
            || async {
                let job = store.get(id).await.expect("get");
                job.status.is_terminal().then_some(job)
            },
        )
        .await;
        assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
        assert_eq!(job.result, Some(json!({ "items_processed": ITEMS })));
        // From the store's clock: enqueue to completion, without the polling above.
        let wall = job.finished_at.expect("finished_at") - job.created_at;
        let events = all_events(&store, id).await;
        let written = events.iter().filter(|e| e.kind == "checkpoint").count();
        let kept = store.checkpoints(id).await.expect("checkpoints").len();
        let after = backend.footprint().await;
        let pruned = prune_all(&store).await;
        assert_eq!(pruned, 1, "retention deletes the campaign");
        if vacuum_each_run() {
            vacuum(&backend).await;
        }
        let retained = backend.footprint().await;
        println!(
            "| {name} | {run} | {:.3} | {written} / {kept} | {} | {} | {} | {} |",
            wall.num_milliseconds() as f64 / 1000.0,
            events.len(),
            size(name, &before),
            size(name, &after),
            size(name, &retained),
        );
        if run == 1 || run == runs {
            eprintln!("{name} run {run} after the campaign: {:?}", after.counts);
            eprintln!("{name} run {run} after retention:    {:?}", retained.counts);
        }
        after_retention.push(retained.bytes);
    }
    if name == "postgres" {
        vacuum(&backend).await;
        let vacuumed = backend.footprint().await;
        println!(
            "| {name} | after VACUUM | | | | | | {} |",
            size(name, &vacuumed)
        );
    }
    eprintln!(
        "{name}: size after retention, run 1 → {runs}: {}",
        after_retention
            .iter()
            .map(|b| human(*b))
            .collect::<Vec<_>>()
            .join(", ")
    );
    worker.shutdown();
    worker.wait().await;
    backend.cleanup().await;
}

#[tokio::main]
async fn main() {
    let runs = campaigns();
    println!(
        "campaign: demo kind, {ITEMS} items, item_ms 0, checkpoint every {CHECKPOINT_EVERY}, \
         max_checkpoints {MAX_CHECKPOINTS}; {runs} campaigns per backend, each pruned \
         (zero retention) before the next{}",
        if vacuum_each_run() {
            "; PostgreSQL VACUUMed after each retention"
        } else {
            ""
        }
    );
    println!();
    println!(
        "| backend | run | wall s | checkpoints written / kept | events | store before | after campaign | after retention |"
    );
    println!("|---|---:|---:|---:|---:|---|---|---|");
    for backend in [Backend::sqlite(), Backend::postgres(), Backend::redis()] {
        bench(backend, runs).await;
    }
}
