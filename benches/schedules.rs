//! Issue 15's benchmark: tick-to-enqueue lag with many schedules due in the same minute,
//! on each store (not a timed test).
//!
//! `SCHEDULES` schedules (default 10,000) of `* * * * *` are created, then one evaluator
//! (what the `schedules` maintenance plugin does each round) evaluates them at the minute's
//! tick until none is due. A schedule's lag is the time from the round's start to the end
//! of its own enqueue and compare-and-set; the plugin's polling (every 250 ms) adds up to
//! that much on top. `allow_all` and `skip` are measured apart: `skip` reads the previous
//! run's job first.
//!
//! ```sh
//! CARGO_TARGET_DIR=… cargo bench --bench schedules               # every store
//! SCHEDULES=1000 cargo bench --bench schedules -- sqlite          # one store, fewer
//! ```

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use drover_queue::schedule::{self, JobTemplate, Overlap, Save, ScheduleSpec};
use drover_queue::testing::Backend;
use drover_queue::Priority;

fn spec(i: usize, overlap: Overlap) -> ScheduleSpec {
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
        overlap,
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

async fn measure(backend: Backend, n: usize, overlap: Overlap) {
    let store = backend.open().await;
    let minute =
        DateTime::<Utc>::from_timestamp(Utc::now().timestamp() / 60 * 60, 0).expect("time");
    let created = minute - chrono::Duration::seconds(30);
    let setup = Instant::now();
    for i in 0..n {
        schedule::save(store.as_ref(), spec(i, overlap), Save::Create, created)
            .await
            .expect("create");
    }
    let setup = setup.elapsed();
    let start = Instant::now();
    let mut lags = Vec::with_capacity(n);
    loop {
        let done = schedule::evaluate_due(store.as_ref(), minute, 500)
            .await
            .expect("evaluate");
        if done.is_empty() {
            break;
        }
        // One round's results arrive together; each schedule's own end is spread evenly
        // over the round, as the evaluator does them one by one.
        let end = start.elapsed();
        let before = lags.last().copied().unwrap_or_default();
        let k = done.len() as u32;
        for j in 1..=k {
            lags.push(before + (end - before) * j / k);
        }
        assert!(done.iter().all(|(_, e)| e.fired.len() == 1));
    }
    let total = start.elapsed();
    lags.sort();
    println!(
        "{:<8} {:<9} schedules={n} p50={:.0?} p99={:.0?} max={:.0?} all due enqueued in {:.2?} ({:.0}/s); setup {:.1?}",
        backend.name(),
        format!("{overlap:?}"),
        percentile(&lags, 0.50),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or_default(),
        total,
        n as f64 / total.as_secs_f64(),
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
    for overlap in [Overlap::AllowAll, Overlap::Skip] {
        if wanted("sqlite") {
            measure(Backend::sqlite(), n, overlap).await;
        }
        if wanted("postgres") {
            measure(Backend::postgres(), n, overlap).await;
        }
        if wanted("redis") {
            measure(Backend::redis(), n, overlap).await;
        }
    }
}
