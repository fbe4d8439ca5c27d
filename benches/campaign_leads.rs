//! Issue 14's measurement: one campaign of 10,000 leads (`DROVER_BENCH_LEADS`) in one job,
//! on every store, against an unthrottled sandbox in the same process, through the real
//! clients: HTTP to its GitHub, SMTP to its sink with `send: true`.
//!
//! Every store runs in a child process of its own, so that the peak RSS (`getrusage`
//! `ru_maxrss`) is that case's: the worker pool, the store client and the clients. The
//! sandbox runs in the parent (a fresh one per store), as a real service would run
//! elsewhere; its request log and the SMTP sink's messages would otherwise count. Bytes written count what the store received for the
//! job: the checkpoint bodies (the `size` of each `checkpoint` event, after zstd where it
//! applied), the item outputs of the three map steps (read back), the effect ledger's rows
//! (keys and JSON values) and the report artifact. The store's growth (`Footprint`) is
//! shown too. Wall time is the store's clock from enqueue to completion.
//!
//! ```sh
//! cargo bench --bench campaign_leads          # DROVER_TEST_PG / DROVER_TEST_REDIS
//! DROVER_BENCH_LEADS=2000 cargo bench --bench campaign_leads
//! ```

use std::sync::Arc;
use std::time::Duration;

use drover_queue::testing::{eventually, Backend};
use drover_queue::{JobId, JobStatus, NewJob, Store};
use drover_sandbox::{GithubConfig, Sandbox, SandboxConfig, WorldConfig};
use drover_worker::{Registry, WorkerOptions};
use drover_workloads::{Secret, Settings, TransportKind};
use serde_json::json;

fn leads() -> u64 {
    std::env::var("DROVER_BENCH_LEADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(10_000)
}

fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return 0;
    }
    usage.ru_maxrss as u64 * 1024
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1024.0 / 1024.0)
}

async fn output_bytes(store: &Arc<dyn Store>, id: JobId, step: &str) -> u64 {
    let (mut bytes, mut from) = (0, 0);
    loop {
        let page = store
            .item_outputs(id, step, from, 1_000)
            .await
            .expect("item outputs");
        let Some(last) = page.last().map(|r| r.index) else {
            return bytes;
        };
        bytes += page.iter().map(|r| r.output.len() as u64).sum::<u64>();
        from = last + 1;
    }
}

async fn checkpoint_bytes(store: &Arc<dyn Store>, id: JobId) -> (u64, u64) {
    let (mut count, mut bytes, mut after) = (0, 0, 0);
    loop {
        let page = store.events(id, after, 1_000).await.expect("events");
        let Some(last) = page.last().map(|e| e.seq) else {
            return (count, bytes);
        };
        for event in page.iter().filter(|e| e.kind == "checkpoint") {
            count += 1;
            bytes += event.data["size"].as_u64().unwrap_or(0);
        }
        after = last;
    }
}

async fn sandbox() -> Sandbox {
    let repos = (leads() * 24 / 10).max(2_000);
    Sandbox::start(SandboxConfig {
        world: WorldConfig {
            seed: 11,
            repos,
            users: repos * 5 / 2,
            now: chrono::Utc::now(),
        },
        github: GithubConfig {
            core_limit: u64::MAX / 4,
            search_limit: u64::MAX / 4,
            ..GithubConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox")
}

/// One store, in this (child) process, against the parent's sandbox at `base` / `smtp`.
async fn case(backend: Backend, base: String, smtp: String) {
    let name = backend.name();
    let n = leads();
    let settings = Settings {
        github_base_url: base.clone(),
        github_token: Some(Secret::new("bench-token")),
        mail_transport: TransportKind::Smtp,
        smtp_url: Some(Secret::new(format!("smtp://{smtp}"))),
        mail_from: Some("bench <bench@drover.test>".into()),
        per_domain_per_minute: u64::MAX / 4,
        public_url: Some("http://127.0.0.1:9".into()),
        secrets_key: Some(drover_queue::secret::SecretKey::new([3; 32])),
        ..Settings::default()
    };
    let mut registry = Registry::production();
    drover_workloads::register(&mut registry, &settings).expect("register");
    let store = backend.open().await;
    let worker = drover_worker::start(
        store.clone(),
        registry.clone(),
        WorkerOptions {
            slots: 1,
            retention: None,
            ..WorkerOptions::default()
        },
    );
    let start = backend.footprint().await;
    let job = NewJob::new("campaign", "bench").config(json!({
        "languages": ["Python", "Rust", "Go", "JavaScript", "TypeScript"],
        "count": n,
        "max_repos": n * 12 / 10,
        "min_stars": 0,
        "activity_days": 400,
        "maintainers_per_repo": 2,
        "concurrency": 16,
        "send": true,
    }));
    let id = store
        .enqueue(registry.prepare(job).expect("valid"))
        .await
        .expect("enqueue")
        .into_job()
        .id;
    let job = eventually(
        Duration::from_secs(3600),
        "the campaign to finish",
        || async {
            let job = store.get(id).await.expect("get");
            job.status.is_terminal().then_some(job)
        },
    )
    .await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    let result = job.result.clone().expect("result");
    assert_eq!(result["leads"], n, "{result}");
    let wall =
        (job.finished_at.expect("finished") - job.created_at).num_milliseconds() as f64 / 1000.0;
    let rss = peak_rss_bytes();
    let (checkpoints, ck_bytes) = checkpoint_bytes(&store, id).await;
    let mut outputs = 0;
    for step in ["extraction", "enrichment", "outreach"] {
        outputs += output_bytes(&store, id, step).await;
    }
    let effects: u64 = store
        .effects(id)
        .await
        .expect("effects")
        .iter()
        .map(|e| e.key.len() as u64 + e.result.to_string().len() as u64)
        .sum();
    let report = store
        .artifact(id, "report.csv")
        .await
        .expect("artifact")
        .map_or(0, |a| a.data.len() as u64);
    let written = ck_bytes + outputs + effects + report;
    let end = backend.footprint().await;
    let sent = result["sent"].as_u64().unwrap_or(0);
    println!(
        "| {name} | {n} | {sent} | {wall:.1} | {:.0} | {} ({checkpoints}) | {} | {} | {} | {} ({:.0} B/lead) | {} | {} |",
        n as f64 / wall,
        mib(ck_bytes),
        mib(outputs),
        mib(effects),
        mib(report),
        mib(written),
        written as f64 / n as f64,
        mib(end.bytes.saturating_sub(start.bytes)),
        mib(rss),
    );
    let stats: serde_json::Value = reqwest::get(format!("{base}/_sandbox/stats"))
        .await
        .expect("the sandbox's stats")
        .json()
        .await
        .expect("stats JSON");
    let at_sink: u64 = stats["recipients"]
        .as_object()
        .map_or(0, |r| r.values().filter_map(|v| v.as_u64()).sum());
    assert_eq!(at_sink, sent, "the sink got exactly the sent messages");
    assert_eq!(stats["over_budget"], 0);
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
    if let Ok(name) = std::env::var("DROVER_BENCH_CASE") {
        let base = std::env::var("DROVER_BENCH_SANDBOX").expect("DROVER_BENCH_SANDBOX");
        let smtp = std::env::var("DROVER_BENCH_SMTP").expect("DROVER_BENCH_SMTP");
        case(backend(&name), base, smtp).await;
        return;
    }
    println!(
        "campaign_leads: one campaign of {} leads, send: true to the sandbox's SMTP sink, concurrency 16, one process per store",
        leads()
    );
    println!();
    println!("| store | leads | sent | wall s | leads/s | checkpoints (count) | item outputs | effect ledger | report | written (per lead) | store growth | peak RSS |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let exe = std::env::current_exe().expect("current exe");
    for name in ["sqlite", "postgres", "redis"] {
        let sandbox = sandbox().await;
        let exe = exe.clone();
        let (base, smtp) = (sandbox.base_url(), sandbox.smtp.to_string());
        let status = tokio::task::spawn_blocking(move || {
            std::process::Command::new(&exe)
                .env("DROVER_BENCH_CASE", name)
                .env("DROVER_BENCH_SANDBOX", base)
                .env("DROVER_BENCH_SMTP", smtp)
                .status()
                .expect("run a case")
        })
        .await
        .expect("the case's waiter");
        assert!(status.success(), "{name}: {status}");
    }
}
