//! `drover demo apply`: the apply workload end to end on the configured store (the embedded
//! SQLite file unless told otherwise). A sandbox started in this process serves a generated
//! world of Greenhouse, Lever and Ashby boards and their hosted forms; a demo profile and a
//! small PDF résumé are stored; one apply job runs in a worker pool whose tier-1
//! applications fill the forms in a real headless Chromium (chromedriver from
//! `browser.chromedriver`). The HTTP API is served on an ephemeral loopback port so that the
//! review gates can be decided with curl as well as with `drover jobs decide`; what nobody
//! decides is rejected at the short `--review-timeout` (or approved by the demo itself with
//! `--approve-all`), so the demo always finishes on its own.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use clap::Args;
use drover_queue::profile::{Profile, Resume, ResumeInfo};
use drover_queue::{Decision, GateStatus, JobId, NewJob, Store};
use drover_sandbox::{Ats, BoardsConfig, Sandbox, SandboxConfig, Variant, WorldConfig};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::settings::Settings;
use crate::{follow, PoolArgs};

/// Jobs in the generated world, at least and at most.
const MIN_POSTINGS: u64 = 5;
const MAX_POSTINGS: u64 = 500;
/// How long `--approve-all` leaves a gate open before approving it, so it can be seen.
const APPROVE_AFTER: Duration = Duration::from_secs(3);

#[derive(Args, Clone)]
pub struct ApplyArgs {
    /// Jobs on the generated boards (a job posted on two boards counts once), 5 to 500.
    #[arg(long, default_value_t = 40, value_name = "N")]
    postings: u64,
    /// Companies posting them (each on one or two of Greenhouse, Lever, Ashby).
    #[arg(long, default_value_t = 4, value_name = "N")]
    companies: u64,
    /// The seed the board world comes from (the same seed, the same postings).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// How long each review gate waits for your decision before its default, reject.
    #[arg(long, default_value = "30s", value_parser = parse_timeout, value_name = "DURATION")]
    review_timeout: Duration,
    /// Approve every review gate a few seconds after it opens instead of waiting for you.
    #[arg(long)]
    approve_all: bool,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .ok()
        .filter(|d| d.as_secs() >= 1 && d.as_secs() <= 3600)
        .ok_or_else(|| format!("`{text}`: a duration from 1s to 1h, such as 30s or 2m"))
}

pub async fn run(settings: Settings, pool: PoolArgs, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    if !(MIN_POSTINGS..=MAX_POSTINGS).contains(&args.postings) {
        anyhow::bail!("--postings: between {MIN_POSTINGS} and {MAX_POSTINGS}");
    }
    if !(1..=100).contains(&args.companies) {
        anyhow::bail!("--companies: between 1 and 100");
    }
    let mut workloads = settings.workloads()?;
    if workloads.browser.webdriver_url.is_none() {
        check_chromedriver(&workloads.browser.chromedriver)?;
    }

    let sandbox = Sandbox::start(SandboxConfig {
        // The GitHub world is not used here: keep it tiny.
        world: WorldConfig {
            seed: args.seed,
            repos: 10,
            users: 10,
            now: Utc::now(),
        },
        boards: BoardsConfig {
            seed: args.seed,
            companies: args.companies,
            jobs: args.postings,
            ..BoardsConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await?;
    ensure_a_captcha(&sandbox);
    let world = World::of(&sandbox);
    println!(
        "sandbox: job boards and hosted forms on {} (in this process; nothing leaves the machine)",
        sandbox.base_url()
    );
    println!(
        "  {} postings of {} companies: {} job(s) posted on two boards, {} forms behind a CAPTCHA, {} behind a login, {} asking for an e-mailed code, {} on Ashby",
        world.postings, world.companies, world.twice, world.captcha, world.login, world.email_code, world.ashby
    );

    workloads.greenhouse_base_url = sandbox.base_url();
    workloads.lever_base_url = sandbox.base_url();
    workloads.ashby_base_url = sandbox.base_url();
    let mut registry = drover_worker::Registry::production();
    drover_workloads::register(&mut registry, &workloads).map_err(|e| anyhow::anyhow!("{e}"))?;

    let store = settings.open_store().await?;
    println!(
        "drover demo: {} store at {}; browser: {} session(s) of {}",
        store.backend(),
        settings.store_url(),
        workloads.browser.max_sessions,
        workloads
            .browser
            .webdriver_url
            .clone()
            .unwrap_or_else(|| workloads.browser.chromedriver.display().to_string()),
    );
    // A user of its own per run: the applications ledger would otherwise skip what an
    // earlier demo on this store applied to (the world is the same for the same seed).
    let user = format!("demo-{:06x}", fastrand::u32(..) & 0xff_ffff);
    store.put_profile(&user, &profile(), Utc::now()).await?;
    store.put_resume(&user, &resume()).await?;
    println!("profile {user}: Asha Rao, backend/platform engineer in Bengaluru or remote; résumé asha-rao-resume.pdf");

    // The API, so that a gate can be decided with curl while the demo waits.
    let (stop, stopped) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api_url = format!("http://{}", listener.local_addr()?);
    let state = drover_api::AppState::new(
        store.clone(),
        registry.clone(),
        drover_api::ApiConfig::default(),
    );
    let mut until = stopped.clone();
    let api = tokio::spawn(drover_api::serve_on(state, listener, async move {
        let _ = until.wait_for(|s| *s).await;
    }));
    println!("drover API on {api_url} (for the review gates; stops with the demo)");

    let handle = drover_worker::start(
        store.clone(),
        registry.clone(),
        settings.worker_options(&pool),
    );
    let job = NewJob::new("apply", format!("demo applications for {user}")).config(json!({
        "user_id": user,
        "sources": world.sources,
        "review_timeout": format!("{}s", args.review_timeout.as_secs()),
    }));
    let job = registry.prepare(job).map_err(|e| anyhow::anyhow!("{e}"))?;
    let job = store.enqueue(job).await?.into_job();
    println!("submitted job {} (kind {})", job.id, job.kind);

    let gates = tokio::spawn(watch_gates(
        store.clone(),
        job.id,
        api_url,
        args.approve_all,
        args.review_timeout,
        stopped,
    ));
    let finished = follow::follow(&*store, job.id, true).await;
    stop.send_replace(true);
    let _ = gates.await;
    handle.shutdown();
    handle.wait().await;
    let _ = api.await;
    let finished = finished?;

    summary(&*store, &sandbox, &finished).await?;
    Ok(follow::exit_code(&finished))
}

/// The postings the sandbox generated, counted for the opening lines, and the boards the
/// job searches.
struct World {
    postings: usize,
    companies: usize,
    twice: usize,
    captcha: usize,
    login: usize,
    email_code: usize,
    ashby: usize,
    sources: Vec<Value>,
}

impl World {
    fn of(sandbox: &Sandbox) -> World {
        let postings = sandbox.boards.postings();
        let variant = |v: Variant| postings.iter().filter(|p| p.variant == v).count();
        let jobs: HashSet<u64> = postings.iter().map(|p| p.job).collect();
        let companies = sandbox.boards.companies();
        let sources = companies
            .iter()
            .flat_map(|c| {
                c.boards
                    .iter()
                    // The company's name: the boards' JSON does not carry it reliably, and
                    // dedup compares it across boards.
                    .map(|ats| json!({"type": ats.name(), "board": c.slug, "company": c.name}))
            })
            .collect();
        World {
            postings: postings.len(),
            companies: companies.len(),
            twice: postings.len() - jobs.len(),
            captcha: variant(Variant::Captcha),
            login: variant(Variant::Login),
            email_code: variant(Variant::EmailCode),
            ashby: postings.iter().filter(|p| p.ats == Ats::Ashby).count(),
            sources,
        }
    }
}

/// A small world may draw no CAPTCHA: the demo shows one, so the last Greenhouse or Lever
/// posting gets one then (the first stays plain, see the sandbox's `generate`).
fn ensure_a_captcha(sandbox: &Sandbox) {
    let postings = sandbox.boards.postings();
    if postings.iter().any(|p| p.variant == Variant::Captcha) {
        return;
    }
    if let Some(p) = postings
        .iter()
        .skip(1)
        .rev()
        .find(|p| p.ats != Ats::Ashby && p.variant == Variant::Plain)
    {
        sandbox.boards.set_variant(p.ats, &p.id, Variant::Captcha);
    }
}

/// Refuses to start when the chromedriver to spawn cannot be found, saying what to do.
fn check_chromedriver(chromedriver: &Path) -> anyhow::Result<()> {
    let found = if chromedriver.components().count() > 1 {
        chromedriver.is_file()
    } else {
        std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| dir.join(chromedriver).is_file())
        })
    };
    anyhow::ensure!(
        found,
        "browser.chromedriver: `{}` not found{}; install chromium-driver (Debian and Ubuntu: \
         `apt-get install chromium chromium-driver`) or set browser.chromedriver \
         (DROVER_BROWSER__CHROMEDRIVER) to its path",
        chromedriver.display(),
        if chromedriver.components().count() > 1 {
            ""
        } else {
            " on PATH"
        }
    );
    Ok(())
}

/// Prints each review gate as it opens, and how to decide it; with `approve_all`, approves
/// it after [`APPROVE_AFTER`]. Returns when `stopped` turns true.
async fn watch_gates(
    store: Arc<dyn Store>,
    job: JobId,
    api_url: String,
    approve_all: bool,
    timeout: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut seen: HashSet<String> = HashSet::new();
    let mut told = false;
    let mut pending: Vec<(tokio::time::Instant, String)> = Vec::new();
    loop {
        let open = match store.gates(job).await {
            Ok(gates) => gates,
            Err(err) => {
                tracing::warn!(error = %err, "demo: cannot read the gates");
                Vec::new()
            }
        };
        let fresh: Vec<_> = open
            .iter()
            .filter(|g| g.status == GateStatus::Open && !seen.contains(&g.key))
            .collect();
        for gate in &fresh {
            seen.insert(gate.key.clone());
            if approve_all {
                pending.push((
                    tokio::time::Instant::now() + APPROVE_AFTER,
                    gate.key.clone(),
                ));
            }
        }
        if let (Some(first), false) = (fresh.first(), told) {
            told = true;
            let key = &first.key;
            // (The gates' own lines, `gate {"action":"opened",…}`, are the job's events above.)
            println!(
                "{} review gate(s) open: the job waits for a decision on each (approve or reject). Decide one from this directory, on the same store:",
                fresh.len()
            );
            println!("  drover gates");
            println!("  drover jobs decide {job} {key} approve --note \"good fit\"");
            println!("or through the API this demo serves:");
            println!(
                "  curl -X POST {api_url}/v1/jobs/{job}/gates/{key} -H 'content-type: application/json' -d '{{\"decision\": \"approve\"}}'"
            );
            if approve_all {
                println!(
                    "(--approve-all: the demo approves each gate {} s after it opens)",
                    APPROVE_AFTER.as_secs()
                );
            } else {
                println!(
                    "gates nobody decides are rejected at their deadline, {} s after they open (--review-timeout; --approve-all approves them)",
                    timeout.as_secs()
                );
            }
        }
        let now = tokio::time::Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(at, _)| *at <= now);
        pending = later;
        let mut approved = 0;
        for (_, key) in due {
            let decision = Decision {
                key: key.clone(),
                decision: json!("approve"),
                note: Some("approved by drover demo apply --approve-all".into()),
            };
            match store.decide(job, decision).await {
                Ok(_) => approved += 1,
                // Decided meanwhile by someone else (or the job ended): theirs stands.
                Err(err) => println!("gate {key}: not approved by the demo: {err}"),
            }
        }
        if approved > 0 {
            println!("approved {approved} review gate(s) (--approve-all)");
        }
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// The closing lines: the counts, what the sandbox received, where the report is.
async fn summary(
    store: &dyn Store,
    sandbox: &Sandbox,
    finished: &drover_queue::Job,
) -> anyhow::Result<()> {
    let counts = finished
        .result
        .as_ref()
        .map(|r| r["counts"].clone())
        .unwrap_or(Value::Null);
    let n = |k: &str| counts[k].as_u64().unwrap_or(0);
    println!(
        "summary: {} postings (after folding {} duplicate(s)), {} applied, {} manual, {} skipped, {} rejected in review ({} approved), {} failed, {} unknown",
        n("postings"),
        n("duplicates"),
        n("applied"),
        n("manual"),
        n("skip") + n("skipped") + n("capped"),
        n("rejected"),
        n("approved"),
        n("failed"),
        n("unknown"),
    );
    let received = sandbox.boards.applications();
    let accepted = received.iter().filter(|a| a.accepted).count();
    // The sandbox knows which postings are one job on two boards: the check of dedup.
    let jobs: HashSet<u64> = received
        .iter()
        .filter(|a| a.accepted)
        .map(|a| a.job)
        .collect();
    println!(
        "sandbox received {} submissions on its hosted forms ({accepted} accepted, {} refused), for {} distinct jobs",
        received.len(),
        received.len() - accepted,
        jobs.len()
    );
    if let Some(artifact) = store.artifact(finished.id, "applications.csv").await? {
        let dir = PathBuf::from("drover-data");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("apply-{}-applications.csv", finished.id));
        std::fs::write(&path, &artifact.data)?;
        println!(
            "applications.csv: {} ({} rows); also GET /v1/jobs/{}/artifacts/applications.csv from `drover serve`",
            path.display(),
            artifact
                .data
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                .saturating_sub(1),
            finished.id
        );
    }
    Ok(())
}

/// The demo's applicant: backend and platform roles in Bengaluru or remote.
fn profile() -> Profile {
    let profile = json!({
        "name": "Asha Rao",
        "email": "asha@example.com",
        "phone": "+91 98450 00000",
        "location": "Bengaluru",
        "links": {"LinkedIn": "https://linkedin.example/in/asha", "GitHub": "https://github.example/asha"},
        "titles": ["Backend Engineer", "Platform Engineer", "Software Engineer"],
        "locations": ["Bengaluru", "Remote"],
        "remote_ok": true,
        "job_types": ["fulltime"],
        "experience_years": 6,
        // Above the default 10 a day, so that one demo applies to all it finds.
        "caps": {"daily": 500, "monthly": 500},
        "answers": {
            "Are you legally authorized to work in the country where this job is located?": "Yes",
            "Will you now or in the future require visa sponsorship?": "No",
            "Why do you want to work here?": "I build and run backend systems, and your team's work is close to what I do best.",
            "How did you hear about this job?": "Your careers page",
            "What is your notice period?": "30 days",
            "What are your salary expectations?": "Open to discussion",
        },
    });
    serde_json::from_value(profile).expect("the demo profile is valid")
}

/// A small, well-formed PDF (one empty page).
fn resume() -> Resume {
    let data = b"%PDF-1.4\n\
1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n\
3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\n\
trailer << /Root 1 0 R >>\n\
%%EOF\n"
        .to_vec();
    Resume {
        info: ResumeInfo {
            filename: "asha-rao-resume.pdf".into(),
            content_type: "application/pdf".into(),
            bytes: data.len() as u64,
            uploaded_at: Utc::now(),
        },
        data,
    }
}
