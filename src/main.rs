//! `drover`: the one binary. Runs workers (and, from the API issue on, the HTTP API),
//! applies migrations, submits and manages jobs.

mod bench;
mod client;
mod follow;
mod jobs;
mod run;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use drover_queue::{NewJob, Priority, Store};
use drover_worker::Registry;

use crate::settings::Settings;

#[derive(Parser)]
#[command(
    name = "drover",
    version,
    about = "Durable job queue workers for long-running agent work"
)]
struct Cli {
    /// Configuration file (YAML). Default: ./drover.yaml when it exists.
    #[arg(
        short = 'c',
        long,
        global = true,
        env = "DROVER_CONFIG",
        value_name = "FILE"
    )]
    config_file: Option<PathBuf>,
    /// Store URL: sqlite://path | postgres://…[?schema=name]. Overrides `queue.url`.
    #[arg(long, global = true, env = "DROVER_STORE", value_name = "URL")]
    store: Option<String>,
    /// Talk to a drover API at this URL instead of opening the store (submit, jobs, queues).
    #[arg(long, global = true, env = "DROVER_API", value_name = "URL")]
    api: Option<String>,
    /// Bearer token: the one `serve`/`api` require (overrides `api.token`), and the one
    /// the client commands send with `--api`.
    #[arg(
        long,
        global = true,
        env = "DROVER_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "DROVER_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// The HTTP API and workers in one process, on the configured store (the embedded
    /// SQLite file by default).
    Serve(WorkerArgs),
    /// The HTTP API alone (workers run elsewhere, sharing PostgreSQL).
    Api(WorkerArgs),
    /// A worker process (for fleets sharing PostgreSQL).
    Worker(WorkerArgs),
    /// Apply pending migrations and exit.
    Migrate,
    /// Submit a job.
    Submit(SubmitArgs),
    /// Inspect and control jobs.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Inspect and pause/resume queues.
    #[command(subcommand)]
    Queues(jobs::QueuesCommand),
    /// Quick start: run a worker on the embedded store, submit a job, and follow it to the end.
    Demo(WorkerArgs),
    /// The standard throughput and latency workload against the configured store.
    Bench(bench::BenchArgs),
}

#[derive(Args, Clone, Default)]
pub struct WorkerArgs {
    /// Jobs run at once (overrides `workers.pool_size`).
    #[arg(long, value_name = "N")]
    slots: Option<u32>,
    /// Only lease from these queues, comma-separated (overrides `workers.queues`).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    queues: Option<Vec<String>>,
    /// This worker's id (default: host-pid-random); shown as the lease owner.
    #[arg(long, value_name = "ID")]
    worker_id: Option<String>,
    /// Where the HTTP API listens (overrides `api.bind`).
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// Bearer token the API requires (overrides `api.token`).
    #[arg(
        long,
        env = "DROVER_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

#[derive(Args)]
struct SubmitArgs {
    /// The job kind (`noop`, `sleep`, …).
    kind: String,
    /// What the job should achieve, in words.
    goal: String,
    /// Kind-specific configuration: a JSON object, or @path to a JSON file.
    #[arg(long, value_name = "JSON|@FILE")]
    config: Option<String>,
    #[arg(long, value_enum, default_value = "normal")]
    priority: PriorityArg,
    /// Queue to submit to.
    #[arg(long, value_name = "NAME")]
    queue: Option<String>,
    /// Not before: RFC 3339 time, or a delay such as `30s` or `5m`.
    #[arg(long, value_name = "WHEN")]
    run_at: Option<String>,
    #[arg(long, value_name = "N")]
    max_attempts: Option<u32>,
    /// Submitting twice with the same key and body yields one job.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    #[arg(long, value_name = "WHO")]
    created_by: Option<String>,
    /// Follow the job's events until it finishes; exit non-zero unless it completed.
    #[arg(long, alias = "wait")]
    follow: bool,
    /// Print the job as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PriorityArg {
    High,
    Normal,
    Low,
}

impl From<PriorityArg> for Priority {
    fn from(p: PriorityArg) -> Self {
        match p {
            PriorityArg::High => Priority::High,
            PriorityArg::Normal => Priority::Normal,
            PriorityArg::Low => Priority::Low,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DROVER_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(cli.config_file.as_deref(), cli.store.as_deref())?;
    let registry = Registry::with_test_kinds();
    match cli.command {
        Command::Serve(args) => run::serve(&settings, registry, &args, cli.token, true, true).await,
        Command::Api(args) => run::serve(&settings, registry, &args, cli.token, true, false).await,
        Command::Worker(args) => {
            run::serve(&settings, registry, &args, cli.token, false, true).await
        }
        Command::Migrate => {
            let store = settings.open_store().await?;
            println!("migrations applied to the {} store", store.backend());
            Ok(ExitCode::SUCCESS)
        }
        Command::Submit(args) => {
            let job = new_job(&registry, &args)?;
            match client(&cli.api, cli.token)? {
                Some(client) => submit_api(&client, job, &args).await,
                None => submit(&*settings.open_store().await?, job, &args).await,
            }
        }
        Command::Jobs(command) => match client(&cli.api, cli.token)? {
            Some(client) => jobs::run_api(&client, command).await,
            None => jobs::run(&*settings.open_store().await?, command).await,
        },
        Command::Queues(command) => match client(&cli.api, cli.token)? {
            Some(client) => jobs::run_queues_api(&client, command).await,
            None => jobs::run_queues(&*settings.open_store().await?, command).await,
        },
        Command::Demo(args) => demo(settings, registry, args).await,
        Command::Bench(args) => bench::run(settings.open_store().await?, args).await,
    }
}

fn client(
    api: &Option<String>,
    token: Option<String>,
) -> anyhow::Result<Option<client::ApiClient>> {
    api.as_deref()
        .map(|url| client::ApiClient::new(url, token))
        .transpose()
}

/// The job `submit` asks for, checked against the kinds this binary knows.
fn new_job(registry: &Registry, args: &SubmitArgs) -> anyhow::Result<NewJob> {
    let config = match args.config.as_deref() {
        None => serde_json::json!({}),
        Some(text) => parse_config_arg(text)?,
    };
    let mut job = NewJob::new(args.kind.clone(), args.goal.clone())
        .config(config)
        .priority(args.priority.into());
    job.queue = args.queue.clone();
    job.max_attempts = args.max_attempts;
    job.idempotency_key = args.idempotency_key.clone();
    job.created_by = args
        .created_by
        .clone()
        .or_else(|| std::env::var("USER").ok());
    if let Some(when) = args.run_at.as_deref() {
        job.run_at = Some(parse_run_at(when)?);
    }
    registry
        .prepare(job)
        .map_err(|e| anyhow::anyhow!("invalid job ({}): {}", flag_of(e.field), e.message))
}

fn report_submitted(job: &drover_queue::Job, created: bool, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(job)?);
    } else if created {
        println!(
            "job {} queued ({}, {} priority, queue {})",
            job.id, job.kind, job.priority, job.queue
        );
    } else {
        println!(
            "job {} already exists for this idempotency key ({})",
            job.id, job.status
        );
    }
    Ok(())
}

async fn submit(store: &dyn Store, job: NewJob, args: &SubmitArgs) -> anyhow::Result<ExitCode> {
    let outcome = store.enqueue(job).await?;
    let created = outcome.is_created();
    let job = outcome.into_job();
    report_submitted(&job, created, args.json)?;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let finished = follow::follow(store, job.id, !args.json).await?;
    Ok(follow::exit_code(&finished))
}

async fn submit_api(
    client: &client::ApiClient,
    job: NewJob,
    args: &SubmitArgs,
) -> anyhow::Result<ExitCode> {
    let (job, created) = client.submit(&job).await?;
    report_submitted(&job, created, args.json)?;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let finished = follow::follow_api(client, &job.id.to_string(), 0).await?;
    Ok(follow::exit_code(&finished))
}

/// The command-line spelling of a job field, for error messages.
fn flag_of(field: &str) -> &str {
    match field {
        "kind" => "<KIND>",
        "goal" => "<GOAL>",
        "max_attempts" => "--max-attempts",
        "idempotency_key" => "--idempotency-key",
        "created_by" => "--created-by",
        "queue" => "--queue",
        "priority" => "--priority",
        _ => "--config",
    }
}

fn parse_config_arg(text: &str) -> anyhow::Result<serde_json::Value> {
    let (source, body) = match text.strip_prefix('@') {
        Some(path) => (
            path.to_string(),
            std::fs::read_to_string(path)
                .with_context(|| format!("--config: cannot read {path}"))?,
        ),
        None => ("the argument".to_string(), text.to_string()),
    };
    let value: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("--config: {source} is not valid JSON"))?;
    anyhow::ensure!(value.is_object(), "--config: must be a JSON object");
    Ok(value)
}

fn parse_run_at(when: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(when) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    let delay = humantime::parse_duration(when.trim_start_matches('+')).map_err(|_| {
        anyhow::anyhow!("--run-at: `{when}` is neither an RFC 3339 time nor a delay like 30s")
    })?;
    let delay = chrono::Duration::from_std(delay).context("--run-at: delay too large")?;
    Ok(chrono::Utc::now() + delay)
}

/// Quick start: a worker on the configured store (SQLite file by default), one job, its
/// events as they happen, then a graceful stop.
async fn demo(
    settings: Settings,
    registry: Registry,
    args: WorkerArgs,
) -> anyhow::Result<ExitCode> {
    let store = settings.open_store().await?;
    println!(
        "drover demo: {} store at {}",
        store.backend(),
        settings.store_url()
    );
    let handle = drover_worker::start(
        store.clone(),
        registry.clone(),
        settings.worker_options(&args),
    );
    let job = NewJob::new("demo", "quick start: walk 10 items, checkpointing every 3")
        .config(serde_json::json!({"items": 10, "item_ms": 100, "checkpoint_every": 3}));
    let job = registry.prepare(job).map_err(|e| anyhow::anyhow!("{e}"))?;
    let job = store.enqueue(job).await?.into_job();
    println!("submitted job {} (kind {})", job.id, job.kind);
    let finished = follow::follow(&*store, job.id, true).await?;
    handle.shutdown();
    handle.wait().await;
    Ok(follow::exit_code(&finished))
}
