//! `drover demo`: the quick start. By default a campaign of a few hundred leads, run on the
//! configured store (the embedded SQLite file unless told otherwise) through the real clients
//! against a sandbox started in this process: HTTP to its GitHub and chat API, SMTP to its
//! sink with `send: true`. Nothing leaves the machine. `drover demo walk` runs the older
//! `demo` kind job instead, and `drover demo apply` the apply workload: the sandbox's job
//! boards and hosted forms, filled in a real headless Chromium (see `crate::demo_apply`).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use drover_queue::NewJob;
use drover_sandbox::{Sandbox, SandboxConfig, WorldConfig};
use drover_workloads::{Secret, TransportKind};

use crate::settings::Settings;
use crate::{follow, PoolArgs};

#[derive(Args)]
pub struct DemoArgs {
    #[command(subcommand)]
    what: Option<DemoWhat>,
    #[command(flatten)]
    pool: PoolArgs,
}

#[derive(Subcommand, Clone)]
enum DemoWhat {
    /// A campaign against an in-process sandbox (the default).
    Campaign(CampaignArgs),
    /// A `demo` kind job of 10 items, checkpointing every 3.
    Walk,
    /// Applications to the sandbox's job boards in a headless Chromium, with review gates.
    Apply(crate::demo_apply::ApplyArgs),
}

#[derive(Args, Clone)]
struct CampaignArgs {
    /// How many maintainers to look for.
    #[arg(long, default_value_t = 300, value_name = "N")]
    leads: u64,
    /// Write drafts only; send nothing (not even to the sandbox's sink).
    #[arg(long)]
    drafts: bool,
}

pub async fn run(settings: Settings, args: DemoArgs) -> anyhow::Result<ExitCode> {
    match args
        .what
        .clone()
        .unwrap_or(DemoWhat::Campaign(CampaignArgs {
            leads: 300,
            drafts: false,
        })) {
        DemoWhat::Walk => walk(settings, args.pool).await,
        DemoWhat::Campaign(campaign_args) => campaign(settings, args.pool, campaign_args).await,
        DemoWhat::Apply(apply_args) => {
            crate::demo_apply::run(settings, args.pool, apply_args).await
        }
    }
}

async fn walk(settings: Settings, pool: PoolArgs) -> anyhow::Result<ExitCode> {
    let registry = settings.registry(true)?;
    let job = NewJob::new("demo", "quick start: walk 10 items, checkpointing every 3")
        .config(serde_json::json!({"items": 10, "item_ms": 100, "checkpoint_every": 3}));
    let (_, finished) = run_one(&settings, registry, &pool, job).await?;
    Ok(follow::exit_code(&finished))
}

async fn campaign(
    settings: Settings,
    pool: PoolArgs,
    args: CampaignArgs,
) -> anyhow::Result<ExitCode> {
    if !(1..=drover_workloads::campaign::target::MAX_COUNT).contains(&args.leads) {
        anyhow::bail!(
            "--leads: between 1 and {}",
            drover_workloads::campaign::target::MAX_COUNT
        );
    }
    // About one repository in twenty-two of the sandbox's world is an active Python one with
    // ten stars or more, and each gives a maintainer or two.
    let repos = (args.leads * 20).max(2_000);
    let sandbox = Sandbox::start(SandboxConfig {
        world: WorldConfig {
            seed: 42,
            repos,
            users: repos * 2,
            now: chrono::Utc::now(),
        },
        ..SandboxConfig::default()
    })
    .await?;
    println!(
        "sandbox: GitHub REST and chat API on {}, SMTP sink on {} (in this process; nothing leaves the machine)",
        sandbox.base_url(),
        sandbox.smtp
    );
    let mut workloads = settings.workloads()?;
    workloads.github_base_url = sandbox.base_url();
    workloads.github_token = Some(Secret::new("demo-token"));
    workloads.llm_base_url = Some(format!("{}/v1", sandbox.base_url()));
    workloads.llm_api_key = Some(Secret::new("demo-key"));
    workloads.mail_transport = TransportKind::Smtp;
    workloads.smtp_url = Some(Secret::new(format!("smtp://{}", sandbox.smtp)));
    workloads.mail_from = Some("drover demo <demo@drover.test>".into());
    workloads.per_domain_per_minute = 10_000;
    workloads.public_url = Some(format!("http://{}", settings.config.api.bind));
    let mut key = [0u8; 32];
    for chunk in key.chunks_mut(8) {
        chunk.copy_from_slice(&fastrand::u64(..).to_le_bytes());
    }
    workloads.secrets_key = Some(drover_queue::secret::SecretKey::new(key));
    let mut registry = drover_worker::Registry::with_test_kinds();
    drover_workloads::register(&mut registry, &workloads).map_err(|e| anyhow::anyhow!("{e}"))?;
    let job = NewJob::new(
        "campaign",
        format!(
            "Find {} Python maintainers active in last 90 days",
            args.leads
        ),
    )
    .config(serde_json::json!({
        "send": !args.drafts,
        "max_repos": args.leads,
        "volume_interval": 100,
        "concurrency": 8,
    }));
    let (store, finished) = run_one(&settings, registry, &pool, job).await?;
    let messages = sandbox.sink.messages().len();
    let stats = sandbox.stats();
    println!(
        "sandbox saw {} GitHub/chat/mail requests ({} over a rate budget), {messages} messages at the SMTP sink",
        stats.endpoints.values().sum::<u64>(),
        stats.over_budget,
    );
    if let Some(artifact) = store.artifact(finished.id, "report.csv").await? {
        let dir = std::path::Path::new("drover-data");
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("campaign-{}-report.csv", finished.id));
        std::fs::write(&path, &artifact.data)?;
        println!(
            "report: {} ({} rows); also GET /v1/jobs/{}/artifacts/report.csv from `drover serve`",
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
    Ok(follow::exit_code(&finished))
}

/// Starts a worker pool, submits `job`, follows it to the end and stops the pool.
async fn run_one(
    settings: &Settings,
    registry: drover_worker::Registry,
    pool: &PoolArgs,
    job: NewJob,
) -> anyhow::Result<(std::sync::Arc<dyn drover_queue::Store>, drover_queue::Job)> {
    let store = settings.open_store().await?;
    println!(
        "drover demo: {} store at {}",
        store.backend(),
        settings.store_url()
    );
    let handle = drover_worker::start(
        store.clone(),
        registry.clone(),
        settings.worker_options(pool),
    );
    let job = registry.prepare(job).map_err(|e| anyhow::anyhow!("{e}"))?;
    let job = store.enqueue(job).await?.into_job();
    println!("submitted job {} (kind {})", job.id, job.kind);
    let finished = follow::follow(&*store, job.id, true).await?;
    handle.shutdown();
    handle.wait().await;
    Ok((store, finished))
}
