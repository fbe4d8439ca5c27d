//! Issue 14's second measurement: three `drover worker` processes on one store run
//! campaigns on one GitHub token against a budget of `limit` core requests per `window`
//! (default 200 per 5 s, so B = 40 requests/s); how much of `B × rate_limit_buffer` (0.8)
//! they use together (target ≥ 95 %) and how many requests arrive over the budget (target 0).
//!
//! The sandbox runs in this process and counts every budget window as its server saw it
//! (`drover_sandbox::github::Github::windows`): windows start on demand at the first request
//! after the last one ended, as GitHub's do. Three campaigns (Python, Rust, Go; drafts only)
//! are enqueued, then three workers of one slot each are started with the production
//! defaults (poll interval, leases). The search budget is large (10,000 per window), so the
//! core budget alone is what the fleet shares.
//!
//! Counted over the windows that lie wholly in the span when all three campaigns were
//! running (from the last one's first `running` to the first one's end):
//! - **per window**: requests the sandbox counted against the core budget ÷
//!   `floor(limit × 0.8)` — does the fleet use all it allows itself in a window, and never
//!   more than the limit;
//! - **per second**: the core requests counted in that span ÷ (span × `limit / window` ×
//!   0.8) — the same share with the gaps between windows in it (a window starts only when
//!   the fleet comes back after the reset it was told);
//! - **over budget**: requests refused for a spent budget (`Stats.over_budget`), all run.
//!
//! ```sh
//! cargo bench --bench campaign_budget        # DROVER_TEST_PG / DROVER_TEST_REDIS
//! DROVER_BUDGET_STORES=postgres DROVER_BUDGET_LEADS=100 cargo bench --bench campaign_budget
//! ```
//!
//! `DROVER_BUDGET_LEADS` (per campaign, default 300), `DROVER_BUDGET_LIMIT` (200),
//! `DROVER_BUDGET_WINDOW_S` (5), `DROVER_BUDGET_LATENCY_MS` (the sandbox's answer time, 20)
//! and `DROVER_BUDGET_STORES` (`postgres,redis`) change the case; `DROVER_BUDGET_WINDOWS=1`
//! prints every window.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use drover_queue::testing::Backend;
use drover_queue::{JobId, JobStatus, NewJob};
use drover_sandbox::github::WindowRecord;
use drover_sandbox::{GithubConfig, Sandbox, SandboxConfig, WorldConfig};
use drover_worker::Registry;
use drover_workloads::{Secret, Settings};
use serde_json::json;

const WORKERS: usize = 3;
const SHARE: f64 = 0.8;
const LANGUAGES: [&str; 3] = ["Python", "Rust", "Go"];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
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

/// When each campaign was first seen running and finished, as the bench polled them.
struct Seen {
    running: Option<DateTime<Utc>>,
    finished: Option<DateTime<Utc>>,
}

struct Case {
    leads: u64,
    limit: u64,
    window: Duration,
    latency: Duration,
}

async fn run(backend: Backend, case: &Case) {
    let name = backend.name();
    let repos = (case.leads * 3 * 24 / 10).max(2_000);
    let sandbox = Sandbox::start(SandboxConfig {
        world: WorldConfig {
            seed: 11,
            repos,
            users: repos * 5 / 2,
            now: Utc::now(),
        },
        github: GithubConfig {
            core_limit: case.limit,
            core_window: case.window,
            search_limit: 10_000,
            search_window: case.window,
            latency: case.latency,
            ..GithubConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let url = backend.url();
    let store = backend.open().await;
    let settings = Settings {
        github_base_url: sandbox.base_url(),
        github_token: Some(Secret::new("ghp_campaign_budget_token")),
        ..Settings::default()
    };
    let mut registry = Registry::production();
    drover_workloads::register(&mut registry, &settings).expect("register");
    let mut ids: Vec<JobId> = Vec::new();
    for language in LANGUAGES {
        let job = NewJob::new("campaign", "bench").config(json!({
            "languages": [language],
            "count": case.leads,
            "min_stars": 0,
            "activity_days": 400,
        }));
        let job = store
            .enqueue(registry.prepare(job).expect("a valid campaign"))
            .await
            .expect("enqueue")
            .into_job();
        ids.push(job.id);
    }
    let logs = tempfile::tempdir().expect("temp dir");
    let enqueued = Utc::now();
    let workers = Workers(
        (0..WORKERS)
            .map(|i| {
                let log =
                    std::fs::File::create(logs.path().join(format!("w{i}.log"))).expect("log file");
                Command::new(env!("CARGO_BIN_EXE_drover"))
                    .args(["worker", "--store", &url, "--worker-id", &format!("w{i}")])
                    .args(["--slots", "1"])
                    .env("DROVER_GITHUB__BASE_URL", sandbox.base_url())
                    .env("DROVER_GITHUB__TOKEN", "ghp_campaign_budget_token")
                    .env("DROVER_MAIL__FROM", "Drover Bench <bench@drover.test>")
                    .env("DROVER_MAIL__PUBLIC_URL", "http://127.0.0.1:9")
                    .env(
                        "DROVER_SECRETS__KEY",
                        "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
                    )
                    .env("DROVER_LOG", "info,sqlx=warn")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("spawn drover worker")
            })
            .collect(),
    );
    let mut seen: Vec<Seen> = ids
        .iter()
        .map(|_| Seen {
            running: None,
            finished: None,
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1800);
    while seen.iter().any(|s| s.finished.is_none()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: the campaigns did not finish in 30 min; logs in {}",
            logs.path().display()
        );
        for (id, seen) in ids.iter().zip(seen.iter_mut()) {
            if seen.finished.is_some() {
                continue;
            }
            let job = store.get(*id).await.expect("get");
            let now = Utc::now();
            if job.status == JobStatus::Running && seen.running.is_none() {
                seen.running = Some(now);
            }
            if job.status.is_terminal() {
                assert_eq!(
                    job.status,
                    JobStatus::Completed,
                    "{name}: {:?}; logs in {}",
                    job.error,
                    logs.path().display()
                );
                seen.running.get_or_insert(now);
                seen.finished = Some(now);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = Utc::now();
    drop(workers);
    let leads: u64 = {
        let mut leads = 0;
        for id in &ids {
            let job = store.get(*id).await.expect("get");
            leads += job
                .result
                .as_ref()
                .and_then(|r| r["leads"].as_u64())
                .unwrap_or(0);
        }
        leads
    };
    let stats = sandbox.stats();
    let windows: Vec<WindowRecord> = sandbox
        .github
        .windows()
        .into_iter()
        .filter(|w| w.resource == "core")
        .collect();
    let busy_from = seen
        .iter()
        .filter_map(|s| s.running)
        .max()
        .expect("running");
    let busy_to = seen
        .iter()
        .filter_map(|s| s.finished)
        .min()
        .expect("finished");
    let full: Vec<&WindowRecord> = windows
        .iter()
        .filter(|w| w.start >= busy_from && w.end <= busy_to)
        .collect();
    let allowed = drover_queue::limits::budget(case.limit, SHARE);
    if std::env::var("DROVER_BUDGET_WINDOWS").is_ok_and(|v| v == "1") {
        println!("{name}: every core window (start relative to the first; * = in the busy span)");
        let first = windows.first().map_or(enqueued, |w| w.start);
        for w in &windows {
            let busy = if full.iter().any(|f| f.start == w.start) {
                "*"
            } else {
                ""
            };
            println!(
                "  {busy}{:>7.2} s  counted {:>4}  refused {}",
                (w.start - first).num_milliseconds() as f64 / 1000.0,
                w.counted,
                w.refused
            );
        }
    }
    let used: u64 = full.iter().map(|w| w.counted).sum();
    let allowed_sum = allowed * full.len() as u64;
    let min = full.iter().map(|w| w.counted).min().unwrap_or(0);
    let max = full.iter().map(|w| w.counted).max().unwrap_or(0);
    let gaps: Vec<f64> = full
        .windows(2)
        .map(|p| (p[1].start - p[0].end).num_milliseconds() as f64 / 1000.0)
        .collect();
    let gap = mean(&gaps);
    // How long after the end of the second `x-ratelimit-reset` named (when the fleet rolls
    // its window) the next window's first request arrived: the fleet's wake-up latency.
    let wakes: Vec<f64> = full
        .windows(2)
        .map(|p| {
            let rolled = p[0].end.timestamp() + 1;
            let rolled = DateTime::from_timestamp(rolled, 0).unwrap_or(p[0].end);
            (p[1].start - rolled).num_milliseconds() as f64
        })
        .collect();
    let wake = mean(&wakes);
    // Per second: every core request the sandbox counted in the busy span.
    let (span_from, span_to) = match (full.first(), full.last()) {
        (Some(a), Some(b)) => (a.start, b.end),
        _ => (busy_from, busy_to),
    };
    let span = (span_to - span_from).num_milliseconds() as f64 / 1000.0;
    let per_second = used as f64 / span;
    let rate = case.limit as f64 / case.window.as_secs_f64() * SHARE;
    let wall = (done - enqueued).num_milliseconds() as f64 / 1000.0;
    let counted: u64 = windows.iter().map(|w| w.counted).sum();
    println!(
        "| {name} | {} | {} | {min}–{max} of {allowed} | **{:.1} %** | {gap:.2} s | {wake:.0} ms | {per_second:.1} of {rate:.1} ({:.1} %) | **{}** | {counted} | {leads} | {wall:.1} |",
        windows.len(),
        full.len(),
        100.0 * used as f64 / allowed_sum.max(1) as f64,
        100.0 * per_second / rate,
        stats.over_budget,
    );
    backend.cleanup().await;
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

#[tokio::main]
async fn main() {
    let case = Case {
        leads: env_u64("DROVER_BUDGET_LEADS", 300),
        limit: env_u64("DROVER_BUDGET_LIMIT", 200),
        window: Duration::from_secs(env_u64("DROVER_BUDGET_WINDOW_S", 5)),
        latency: Duration::from_millis(env_u64("DROVER_BUDGET_LATENCY_MS", 20)),
    };
    let stores = std::env::var("DROVER_BUDGET_STORES").unwrap_or_else(|_| "postgres,redis".into());
    println!(
        "campaign_budget: {WORKERS} worker processes (1 slot each), 3 campaigns × {} leads (drafts) on one token; core budget {} per {} s (B = {:.1}/s), {SHARE} of it drover's; sandbox latency {} ms",
        case.leads,
        case.limit,
        case.window.as_secs(),
        case.limit as f64 / case.window.as_secs_f64(),
        case.latency.as_millis(),
    );
    println!();
    println!("| store | core windows | full windows while all 3 busy | counted per window | share per window | mean gap between windows | fleet back after the stated reset | requests/s used (share) | over budget | core requests | leads | wall s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for name in stores.split(',').map(str::trim) {
        let backend = match name {
            "postgres" => Backend::postgres(),
            "redis" => Backend::redis(),
            "sqlite" => Backend::sqlite(),
            other => panic!("DROVER_BUDGET_STORES: unknown store `{other}`"),
        };
        run(backend, &case).await;
    }
}
