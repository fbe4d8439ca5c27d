//! `drover`: the one binary. Runs workers (and, from the API issue on, the HTTP API),
//! applies migrations, submits and manages jobs.

mod bench;
mod client;
mod config;
mod demo;
mod demo_apply;
mod doctor;
mod follow;
mod gates;
mod jobs;
mod profiles;
mod run;
mod schedules;
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
    /// Configuration file (YAML). Default: ./drover.yaml when it exists. Not read by client
    /// commands given --api.
    #[arg(
        short = 'c',
        long,
        global = true,
        env = "DROVER_CONFIG",
        value_name = "FILE"
    )]
    config_file: Option<PathBuf>,
    /// Store URL: sqlite://path | postgres://…[?schema=name] | redis://…[?prefix=name].
    /// Overrides `queue.url`.
    #[arg(long, global = true, env = "DROVER_STORE", value_name = "URL")]
    store: Option<String>,
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
    Serve(ServeArgs),
    /// The HTTP API alone (workers run elsewhere, sharing PostgreSQL or Redis).
    Api(ApiArgs),
    /// A worker process (for fleets sharing PostgreSQL or Redis).
    Worker(WorkerArgs),
    /// Apply pending migrations and exit.
    Migrate,
    /// Submit a job.
    Submit(SubmitArgs),
    /// Inspect and control jobs.
    Jobs(JobsArgs),
    /// Inspect and pause/resume queues.
    Queues(QueuesArgs),
    /// The inbox: gates across jobs that wait for an operator's decision.
    Gates(GatesArgs),
    /// Schedules: list, show, create, pause, resume, trigger, delete.
    Schedules(SchedulesArgs),
    /// The apply workload's users, through the API: profile, résumé, sealed sessions, and
    /// the applications ledger.
    Profiles(ProfilesArgs),
    /// The sandbox: local servers speaking GitHub REST, OpenAI-compatible chat, a
    /// Resend-shaped mail API, SMTP, and Greenhouse/Lever/Ashby job boards with their
    /// application forms, for trials and tests (never a real service).
    Sandbox(SandboxArgs),
    /// Quick start: a campaign against an in-process sandbox on the embedded store, followed
    /// to the end (`demo apply` for job applications in a headless Chromium, `demo walk` for
    /// the `demo` kind).
    Demo(demo::DemoArgs),
    /// The standard throughput and latency workload against the configured store.
    Bench(bench::BenchArgs),
    /// Checks what drover needs, one line each with what to do about a failure: the store,
    /// the secrets key, GitHub, the LLM, the job boards, mail, Chromium and ChromeDriver,
    /// disk space. Exits non-zero when a check fails.
    Doctor(doctor::DoctorArgs),
}

/// The worker pool's flags (`serve`, `worker`, `demo`).
#[derive(Args, Clone, Default)]
pub struct PoolArgs {
    /// Jobs run at once (overrides `workers.pool_size`).
    #[arg(long, value_name = "N")]
    slots: Option<u32>,
    /// Only lease from these queues, comma-separated (overrides `workers.queues`).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    queues: Option<Vec<String>>,
    /// This worker's id (default: host-pid-random); shown as the lease owner.
    #[arg(long, value_name = "ID")]
    worker_id: Option<String>,
}

/// The HTTP API's flags (`serve`, `api`).
#[derive(Args, Clone, Default)]
pub struct ListenArgs {
    /// Where the HTTP API listens (overrides `api.bind`). Anything but a loopback address
    /// needs a token.
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

/// Whether this process runs (and its API accepts) the test kinds.
#[derive(Args, Clone, Copy, Default)]
pub struct TestKindsArg {
    /// Register the test kinds `noop`, `sleep` and `demo` (whose `config.effect_url` makes
    /// workers POST anywhere): for tests and trials, never for production.
    #[arg(
        long,
        env = "DROVER_ENABLE_TEST_KINDS",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    enable_test_kinds: bool,
}

impl TestKindsArg {
    fn registry(self, settings: &Settings) -> anyhow::Result<Registry> {
        settings.registry(self.enable_test_kinds)
    }
}

/// Every kind drover has, for checking a job on the client side (`drover submit`): the
/// server (or, on the store, the worker) decides what it runs.
pub(crate) fn every_kind() -> Registry {
    let mut registry = Registry::with_test_kinds();
    // The default settings always make clients: no transport, the public GitHub.
    let _ = drover_workloads::register(&mut registry, &drover_workloads::Settings::default());
    registry
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    pool: PoolArgs,
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    kinds: TestKindsArg,
}

#[derive(Args)]
struct ApiArgs {
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    kinds: TestKindsArg,
}

#[derive(Args)]
struct WorkerArgs {
    #[command(flatten)]
    pool: PoolArgs,
    /// Where the worker serves `/healthz`, `/readyz` (503 while draining or while the store
    /// is unreachable) and `/metrics`; nothing is served when not given.
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    #[command(flatten)]
    kinds: TestKindsArg,
}

/// Where the client commands (`submit`, `jobs`, `queues`) send their requests.
#[derive(Args, Clone, Default)]
struct ClientArgs {
    /// Talk to a drover API at this URL instead of opening the store; drover.yaml is then
    /// not read.
    #[arg(long, global = true, env = "DROVER_API", value_name = "URL")]
    api: Option<String>,
    /// Bearer token sent to --api.
    #[arg(
        long,
        global = true,
        env = "DROVER_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

impl ClientArgs {
    fn client(&self) -> anyhow::Result<Option<client::ApiClient>> {
        self.api
            .as_deref()
            .map(|url| client::ApiClient::new(url, self.token.clone()))
            .transpose()
    }
}

#[derive(Args)]
struct JobsArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: jobs::JobsCommand,
}

#[derive(Args)]
struct GatesArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    inbox: gates::InboxArgs,
}

#[derive(Args)]
struct SandboxArgs {
    /// Where the HTTP services listen.
    #[arg(long, default_value = "127.0.0.1:8025", value_name = "ADDR")]
    bind: std::net::SocketAddr,
    /// Where the SMTP sink listens.
    #[arg(long, default_value = "127.0.0.1:2525", value_name = "ADDR")]
    smtp_bind: std::net::SocketAddr,
    /// The seed the generated world comes from (the same seed, the same world).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Repositories in the world.
    #[arg(long, default_value_t = 5_000)]
    repos: u64,
    /// Users in the world.
    #[arg(long, default_value_t = 20_000)]
    users: u64,
    /// GitHub core requests per token per hour.
    #[arg(long, default_value_t = 5_000)]
    core_limit: u64,
    /// Jobs on the Greenhouse, Lever and Ashby boards (some posted on two boards).
    #[arg(long, default_value_t = 200)]
    jobs: u64,
    /// Companies posting those jobs.
    #[arg(long, default_value_t = 12)]
    companies: u64,
}

#[derive(Args)]
struct SchedulesArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: schedules::ScheduleCommand,
}

#[derive(Args)]
struct ProfilesArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: profiles::ProfileCommand,
}

#[derive(Args)]
struct QueuesArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: jobs::QueuesCommand,
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
    /// The job's priority.
    #[arg(long, value_enum, default_value = "normal")]
    priority: PriorityArg,
    /// Queue to submit to.
    #[arg(long, value_name = "NAME")]
    queue: Option<String>,
    /// Not before: RFC 3339 time, or a delay such as `30s` or `5m`.
    #[arg(long, value_name = "WHEN")]
    run_at: Option<String>,
    /// Runs allowed before the job fails (default: the kind's, else `queue.max_retries`).
    #[arg(long, value_name = "N")]
    max_attempts: Option<u32>,
    /// Submitting twice with the same key and body yields one job.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// Who submitted the job, for filtering (default: $USER).
    #[arg(long, value_name = "WHO")]
    created_by: Option<String>,
    /// Follow the job's events until it finishes; exit non-zero unless it completed.
    #[arg(long, alias = "wait")]
    follow: bool,
    /// Print the job as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
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
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Colours only for a person at a terminal: not for journald, files or CI logs, and not
/// when `NO_COLOR` is set to anything (<https://no-color.org>).
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal as _;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Client commands given --api never read drover.yaml: a broken local file must not
    // stop remote administration.
    let settings = || Settings::load(cli.config_file.as_deref(), cli.store.as_deref());
    match cli.command {
        Command::Serve(args) => {
            let listen = Some(&args.listen);
            let settings = settings()?;
            run::serve(
                &settings,
                args.kinds.registry(&settings)?,
                Some(&args.pool),
                listen,
                None,
            )
            .await
        }
        Command::Api(args) => {
            let settings = settings()?;
            run::serve(
                &settings,
                args.kinds.registry(&settings)?,
                None,
                Some(&args.listen),
                None,
            )
            .await
        }
        Command::Worker(args) => {
            let settings = settings()?;
            run::serve(
                &settings,
                args.kinds.registry(&settings)?,
                Some(&args.pool),
                None,
                args.bind.as_deref(),
            )
            .await
        }
        Command::Migrate => {
            let (store, report) = settings()?.open_and_migrate().await?;
            for (version, name) in &report.applied {
                println!("applied migration {version:04} {name}");
            }
            match (report.applied.len(), store.backend()) {
                (_, "redis") => println!("the redis store needs no migrations"),
                (0, backend) => println!(
                    "the {backend} store is up to date (schema version {})",
                    report.version
                ),
                (n, backend) => println!(
                    "applied {n} migration{} to the {backend} store (schema version {})",
                    if n == 1 { "" } else { "s" },
                    report.version
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Submit(args) => {
            // Checked against every kind drover has, test kinds included: the server (or,
            // on the store, the worker) decides what it runs.
            let job = new_job(&every_kind(), &args)?;
            match args.client.client()? {
                Some(client) => submit_api(&client, job, &args).await,
                None => submit(&*settings()?.open_store().await?, job, &args).await,
            }
        }
        Command::Jobs(args) => match args.client.client()? {
            Some(client) => jobs::run_api(&client, args.command).await,
            None => jobs::run(&*settings()?.open_store().await?, args.command).await,
        },
        Command::Gates(args) => match args.client.client()? {
            Some(client) => gates::run_api(&client, args.inbox).await,
            None => gates::run(&*settings()?.open_store().await?, args.inbox).await,
        },
        Command::Schedules(args) => match args.client.client()? {
            Some(client) => schedules::run_api(&client, args.command).await,
            None => schedules::run(&*settings()?.open_store().await?, args.command).await,
        },
        Command::Profiles(args) => match args.client.client()? {
            Some(client) => profiles::run_api(&client, args.command).await,
            None => Err(anyhow::anyhow!(
                "--api: `drover profiles` talks to the API, which seals session cookies with \
                 the secrets key (set --api or DROVER_API, and --token)"
            )),
        },
        Command::Sandbox(args) => sandbox(args).await,
        Command::Queues(args) => match args.client.client()? {
            Some(client) => jobs::run_queues_api(&client, args.command).await,
            None => jobs::run_queues(&*settings()?.open_store().await?, args.command).await,
        },
        Command::Demo(args) => demo::run(settings()?, args).await,
        Command::Bench(args) => bench::run(settings()?.open_store().await?, args).await,
        Command::Doctor(args) => doctor::run(settings(), args).await,
    }
}

/// `drover sandbox`: serves until interrupted.
async fn sandbox(args: SandboxArgs) -> anyhow::Result<ExitCode> {
    for (flag, addr) in [("--bind", args.bind), ("--smtp-bind", args.smtp_bind)] {
        if !addr.ip().is_loopback() {
            anyhow::bail!("{flag}: the sandbox listens on loopback addresses only, not {addr}");
        }
    }
    let config = drover_sandbox::SandboxConfig {
        bind: args.bind,
        smtp_bind: args.smtp_bind,
        world: drover_sandbox::WorldConfig {
            seed: args.seed,
            repos: args.repos,
            users: args.users,
            ..Default::default()
        },
        github: drover_sandbox::GithubConfig {
            core_limit: args.core_limit,
            ..Default::default()
        },
        boards: drover_sandbox::BoardsConfig {
            seed: args.seed,
            jobs: args.jobs,
            companies: args.companies,
            ..Default::default()
        },
    };
    let sandbox = drover_sandbox::Sandbox::start(config)
        .await
        .map_err(|e| anyhow::anyhow!("--bind / --smtp-bind: cannot listen: {e}"))?;
    println!(
        "sandbox HTTP on {} (GitHub REST, /v1/chat/completions, /emails, /_sandbox/stats)",
        sandbox.base_url()
    );
    println!(
        "job boards on {0}: Greenhouse /v1/boards/{{token}}/jobs, Lever /v0/postings/{{site}}, Ashby /posting-api/job-board/{{name}}; forms under /gh, /lever; boards listed at {0}/_sandbox/boards",
        sandbox.base_url()
    );
    println!("sandbox SMTP on {}", sandbox.smtp);
    tokio::signal::ctrl_c().await?;
    Ok(ExitCode::SUCCESS)
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
#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every argument of every command, with the path of commands leading to it.
    fn arguments(command: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
        let path = format!("{path} {}", command.get_name());
        out.extend(
            command
                .get_arguments()
                .map(|arg| (path.clone(), arg.clone())),
        );
        for sub in command.get_subcommands() {
            arguments(sub, &path, out);
        }
    }

    #[test]
    fn every_flag_and_argument_has_help() {
        super::Cli::command().debug_assert();
        let mut all = Vec::new();
        arguments(&super::Cli::command(), "", &mut all);
        let missing: Vec<String> = all
            .iter()
            .filter(|(_, arg)| !matches!(arg.get_id().as_str(), "help" | "version"))
            .filter(|(_, arg)| arg.get_help().is_none())
            .map(|(path, arg)| format!("{path}: {}", arg.get_id()))
            .collect();
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
