//! Issue 15's benchmark: tick-to-enqueue lag with 10,000 schedules due in the same minute,
//! on each store (not a timed test).
//!
//! `SCHEDULES` schedules (default 10,000) of `* * * * *` (Europe/Berlin, `allow_all`) are
//! created, the real evaluator (the `schedules` maintenance plugin a worker or API process
//! runs: a round every 250 ms under its leadership) is started, and at the next minute all
//! of them fall due at once. A schedule's lag is its job's `created_at` (the enqueue) minus
//! the tick, so it includes the plugin's polling and the round's whole work: one read of
//! the due schedules, their jobs enqueued in batches and their compare-and-sets, chunk by
//! chunk, several chunks at once.
//!
//! ```sh
//! CARGO_TARGET_DIR=… cargo bench --bench schedules               # every store
//! SCHEDULES=1000 cargo bench --bench schedules -- sqlite          # one store, fewer
//! ```

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use drover_queue::schedule::{self, JobTemplate, Overlap, Save, ScheduleSpec};
use drover_queue::testing::Backend;
use drover_queue::{JobFilter, Priority};
use tokio::sync::watch;

fn spec(i: usize) -> ScheduleSpec {
    ScheduleSpec {
        id: format!("s{i:05}"),
        cron: Some("* * * * *".into()),
        every: None,
        timezone: "Europe/Berlin".into(),
        job: JobTemplate {
            kind: "noop".into(),
            goal: format!("schedule {i}"),
            config: serde_json::json!({}),
            priority: Priority::Normal,
            queue: None,
            max_attempts: None,
        },
        overlap: Overlap::AllowAll,
        catchup_window: "1h".into(),
        catchup: Default::default(),
        spread: None,
        paused: false,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn measure(backend: Backend, n: usize) {
    let store = backend.open().await;
    let setup = Instant::now();
    for i in 0..n {
        schedule::save(store.as_ref(), spec(i), Save::Create, Utc::now())
            .await
            .expect("create");
    }
    let setup = setup.elapsed();
    let (stop, stopped) = watch::channel(false);
    let evaluator = tokio::spawn(drover_worker::maintenance::schedules::run(
        store.clone(),
        "bench".into(),
        stopped,
    ));

    // The next minute: every schedule's first tick.
    let tick =
        DateTime::<Utc>::from_timestamp(Utc::now().timestamp() / 60 * 60 + 60, 0).expect("time");
    tokio::time::sleep((tick - Utc::now()).to_std().unwrap_or_default()).await;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let due = store.due_schedules(tick, 1).await.expect("due");
        if due.is_empty() {
            break;
        }
    }
    stop.send_replace(true);
    evaluator.await.expect("evaluator");

    let mut lags = Vec::with_capacity(n);
    let mut before = None;
    loop {
        let page = store
            .list(&JobFilter {
                before,
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("list");
        for job in &page.jobs {
            assert_eq!(job.run_at, tick, "{job:?}");
            lags.push((job.created_at - tick).to_std().unwrap_or_default());
        }
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(lags.len(), n, "one job per schedule");
    lags.sort();
    let ms = |d: Duration| d.as_millis();
    println!(
        "{:<8} schedules={n} tick-to-enqueue p50={}ms p99={}ms max={}ms; setup {:.1?}",
        backend.name(),
        ms(percentile(&lags, 0.50)),
        ms(percentile(&lags, 0.99)),
        ms(lags.last().copied().unwrap_or_default()),
        setup,
    );
    backend.cleanup().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("SCHEDULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| f == name);
    if wanted("sqlite") {
        measure(Backend::sqlite(), n).await;
    }
    if wanted("postgres") {
        measure(Backend::postgres(), n).await;
    }
    if wanted("redis") {
        measure(Backend::redis(), n).await;
    }
}
