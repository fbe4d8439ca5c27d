//! Tier-1 applications through real headless Chromium: how many a browser session fills and
//! submits per minute against the sandbox's hosted forms, and what a worker process with
//! its Chromiums holds in memory.
//!
//! For each `browser.max_sessions` (1, then 2) a fresh SQLite store and a sandbox in this
//! process get `DROVER_APPLY_POSTINGS` (default 40) plain postings, half on Greenhouse and
//! half on Lever, each of its own company (so dedup folds none) and each scoring 100 for the
//! bench's profile (title, company, location, type, salary, years), with one required yes/no
//! question each. One `drover worker --slots 4` process (the production binary, chromedriver
//! `/usr/bin/chromedriver`, Chromium `/usr/bin/chromium`) runs one apply job over them.
//!
//! - **apply step**: from the job's first event at step `apply` to its first at `report`
//!   (so the chromedriver and Chromium starts are in it); apps/min = accepted submissions ÷
//!   that; per session = ÷ `max_sessions`. (The apply kind runs two items at once, so two
//!   sessions is also the most one job can use.)
//! - **first → last submission**: the same rate between the sandbox's first and last
//!   accepted submission (the browsers warm).
//! - **peak RSS**, sampled every 100 ms from `/proc`: the worker process's own (`VmHWM`, its
//!   high-water mark) and the worker plus every process descended from it (chromedriver,
//!   Chromium and its renderers), `VmRSS` summed; the sum counts pages shared between the
//!   Chromium processes once per process, so the PSS sum (`smaps_rollup`, shared pages split
//!   between their users) is given beside it.
//!
//! ```sh
//! cargo bench --bench apply_browser
//! DROVER_APPLY_POSTINGS=80 DROVER_APPLY_SESSIONS=2 cargo bench --bench apply_browser
//! ```

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use drover_queue::profile::{Profile, Resume, ResumeInfo};
use drover_queue::testing::Backend;
use drover_queue::{JobStatus, NewJob};
use drover_sandbox::boards::{Employment, QuestionKind, QuestionSpec, Salary, Workplace};
use drover_sandbox::{Ats, BoardsConfig, PostingSpec, Sandbox, SandboxConfig, Variant};
use serde_json::json;

const USER: &str = "bench";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// Kills the worker process (and so its chromedriver and Chromiums) when dropped.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn company(i: u64) -> String {
    format!("Benchco{i:03}")
}

fn posting(i: u64) -> PostingSpec {
    let ats = if i % 2 == 0 {
        Ats::Greenhouse
    } else {
        Ats::Lever
    };
    PostingSpec {
        ats,
        board: company(i).to_lowercase(),
        title: "Senior Backend Engineer".into(),
        company: Some(company(i)),
        job: None,
        location: Some("Bengaluru, India".into()),
        workplace: Some(Workplace::OnSite),
        employment: Some(Employment::FullTime),
        department: None,
        team: None,
        description: None,
        salary: Some(Salary {
            currency: "USD".into(),
            min: 150_000,
            max: 190_000,
        }),
        salary_structured: None,
        salary_in_text: false,
        years: Some(3),
        posted_at: None,
        listed: None,
        questions: vec![QuestionSpec {
            label: "Are you authorized to work in India?".into(),
            kind: QuestionKind::YesNo,
            required: true,
        }],
        variant: Variant::Plain,
    }
}

fn profile(postings: u64) -> Profile {
    serde_json::from_value(json!({
        "name": "Asha Rao",
        "email": "asha@example.com",
        "phone": "+91 98450 00000",
        "location": "Bengaluru",
        "titles": ["Backend Engineer"],
        "companies": (0..postings).map(company).collect::<Vec<_>>(),
        "locations": ["Bengaluru"],
        "remote_ok": true,
        "job_types": ["fulltime"],
        "min_salary": 100000,
        "experience_years": 5,
        "answers": {"Are you authorized to work in India?": "Yes"},
        "caps": {"daily": 10000, "monthly": 10000},
    }))
    .expect("the bench profile")
}

fn resume() -> Resume {
    let data = b"%PDF-1.4\n% bench resume\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n".to_vec();
    Resume {
        info: ResumeInfo {
            filename: "resume.pdf".into(),
            content_type: "application/pdf".into(),
            bytes: data.len() as u64,
            uploaded_at: Utc::now(),
        },
        data,
    }
}

/// A field of `/proc/{pid}/status` or `smaps_rollup` in KiB.
fn kib(text: &str, field: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `pid` and every process descended from it, from the parent ids in `/proc/*/stat`.
fn tree(pid: u32) -> Vec<u32> {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok());
            if let Some(ppid) = ppid {
                parent.insert(p, ppid);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let of = out[i];
        out.extend(parent.iter().filter(|(_, pp)| **pp == of).map(|(p, _)| *p));
        i += 1;
    }
    out
}

/// Peaks seen by the sampler, in KiB.
#[derive(Default, Clone, Copy)]
struct Peaks {
    worker_hwm: u64,
    tree_rss: u64,
    tree_pss: u64,
    processes: usize,
}

fn sample(pid: u32, peaks: &mut Peaks) {
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        peaks.worker_hwm = peaks.worker_hwm.max(kib(&status, "VmHWM:"));
    }
    let (mut rss, mut pss) = (0, 0);
    let all = tree(pid);
    for p in &all {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) {
            rss += kib(&status, "VmRSS:");
        }
        if let Ok(rollup) = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")) {
            pss += kib(&rollup, "Pss:");
        }
    }
    if rss > peaks.tree_rss {
        peaks.tree_rss = rss;
        peaks.processes = all.len();
    }
    peaks.tree_pss = peaks.tree_pss.max(pss);
}

async fn run(sessions: u64, postings: u64) {
    let sandbox = Sandbox::start(SandboxConfig {
        boards: BoardsConfig {
            companies: 1,
            jobs: 0,
            ..BoardsConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let mut sources = Vec::new();
    for i in 0..postings {
        let spec = posting(i);
        sources.push(json!({"type": spec.ats.name(), "board": spec.board, "company": company(i)}));
        sandbox.boards.add(spec).expect("a posting");
    }
    let backend = Backend::sqlite();
    let url = backend.url();
    let store = backend.open().await;
    store
        .put_profile(USER, &profile(postings), Utc::now())
        .await
        .expect("profile");
    store.put_resume(USER, &resume()).await.expect("résumé");

    let logs = tempfile::tempdir().expect("temp dir");
    let log = std::fs::File::create(logs.path().join("worker.log")).expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_drover"));
    command
        .args([
            "worker",
            "--store",
            &url,
            "--worker-id",
            "bench",
            "--slots",
            "4",
        ])
        .env("DROVER_BROWSER__CHROMEDRIVER", "/usr/bin/chromedriver")
        .env("DROVER_BROWSER__CHROMIUM", "/usr/bin/chromium")
        .env("DROVER_BROWSER__MAX_SESSIONS", sessions.to_string())
        .env("DROVER_WORKERS__POLL_INTERVAL", "100ms")
        .env("DROVER_LOG", "info,sqlx=warn")
        .env_remove("DROVER_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    for key in ["GREENHOUSE", "LEVER", "ASHBY"] {
        command.env(format!("DROVER_BOARDS__{key}_BASE_URL"), sandbox.base_url());
    }
    let worker = Worker(command.spawn().expect("spawn drover worker"));
    let pid = worker.0.id();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peaks = Peaks::default();
            while !done.load(Ordering::Relaxed) {
                sample(pid, &mut peaks);
                std::thread::sleep(Duration::from_millis(100));
            }
            peaks
        })
    };

    let job = NewJob::new("apply", "bench applications").config(json!({
        "user_id": USER,
        "sources": sources,
        "max_postings": postings,
    }));
    let id = store.enqueue(job).await.expect("enqueue").job().id;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1800);
    let job = loop {
        let job = store.get(id).await.expect("get");
        if job.status.is_terminal() {
            break job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the apply job did not finish in 30 min; log in {}",
            logs.path().display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    done.store(true, Ordering::Relaxed);
    let peaks = sampler.join().expect("the sampler");
    drop(worker);
    assert_eq!(
        job.status,
        JobStatus::Completed,
        "{:?}; log in {}",
        job.error,
        logs.path().display()
    );

    let events = store.events(id, 0, 100_000).await.expect("events");
    let at_step = |step: &str| -> Option<DateTime<Utc>> {
        events
            .iter()
            .find(|e| e.data["step"] == step)
            .map(|e| e.created_at)
    };
    let (from, to) = (
        at_step("apply").expect("the apply step"),
        at_step("report").expect("the report step"),
    );
    let step = (to - from).num_milliseconds() as f64 / 1000.0;
    let accepted: Vec<_> = sandbox
        .boards
        .applications()
        .into_iter()
        .filter(|a| a.accepted)
        .collect();
    let applied = job
        .result
        .as_ref()
        .and_then(|r| r["counts"]["applied"].as_u64())
        .unwrap_or(0);
    assert_eq!(
        applied,
        accepted.len() as u64,
        "one submission per application"
    );
    if applied < postings {
        // What happened to the others (a tier-1 failure under load, most likely).
        let counts = job.result.as_ref().map(|r| r["counts"].clone());
        eprintln!("max_sessions {sessions}: {applied} of {postings} applied; counts {counts:?}");
        if let Ok(Some(csv)) = store.artifact(id, "applications.csv").await {
            for line in String::from_utf8_lossy(&csv.data)
                .lines()
                .filter(|l| !l.contains(",applied,"))
                .skip(1)
            {
                eprintln!("  {line}");
            }
        }
    }
    for refused in sandbox.boards.applications().iter().filter(|a| !a.accepted) {
        eprintln!(
            "  the sandbox refused a submission to {} {}: {:?}, missing {:?}",
            refused.board, refused.posting, refused.outcome, refused.missing
        );
    }
    let n = accepted.len() as f64;
    let per_min = n / step * 60.0;
    let warm = match (
        accepted.iter().map(|a| a.at).min(),
        accepted.iter().map(|a| a.at).max(),
    ) {
        (Some(first), Some(last)) if last > first => {
            (n - 1.0) / ((last - first).num_milliseconds() as f64 / 1000.0) * 60.0
        }
        _ => 0.0,
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "| {sessions} | {postings} | {} | {step:.1} | {per_min:.1} | **{:.1}** | {warm:.1} | {:.0} | {:.0} ({} processes) | {:.0} |",
        accepted.len(),
        per_min / sessions as f64,
        mib(peaks.worker_hwm),
        mib(peaks.tree_rss),
        peaks.processes,
        mib(peaks.tree_pss),
    );
    backend.cleanup().await;
}

#[tokio::main]
async fn main() {
    let postings = env_u64("DROVER_APPLY_POSTINGS", 40);
    let sessions: Vec<u64> = std::env::var("DROVER_APPLY_SESSIONS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "apply_browser: one apply job, {postings} plain Greenhouse/Lever postings (one required question each, a résumé upload), one `drover worker --slots 4` on SQLite; headless Chromium {}",
        std::process::Command::new("/usr/bin/chromium")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|_| "(version unknown)".into())
    );
    println!();
    println!("| browser.max_sessions | postings | accepted submissions | apply step s | apps/min | apps/min/session | first → last submission, apps/min | worker peak RSS MiB | worker + its Chromiums, peak RSS sum MiB | … peak PSS sum MiB |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in sessions {
        run(s, postings).await;
    }
}
