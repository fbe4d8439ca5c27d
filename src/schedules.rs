//! `drover schedules list|show|create|pause|resume|trigger|delete`: schedules on the store, or
//! through the API with `--api`. A bad flag is named in the error.

use std::process::ExitCode;

use anyhow::{anyhow, Context as _};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use drover_queue::schedule::{self, Save, ScheduleError, ScheduleSpec};
use drover_queue::Store;
use serde_json::{json, Map, Value};

use crate::client::ApiClient;

#[derive(Subcommand)]
pub enum ScheduleCommand {
    /// Every schedule, with its next run and counters.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One schedule with its next and last 10 runs.
    Show {
        /// The schedule's id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a schedule from flags or a JSON file (`--replace` updates one that exists).
    Create(Box<CreateArgs>),
    /// No tick fires until it is resumed.
    Pause {
        /// The schedule's id.
        id: String,
    },
    /// Ticks that fell while it was paused do not run.
    Resume {
        /// The schedule's id.
        id: String,
    },
    /// One run now, through the schedule's overlap policy.
    Trigger {
        /// The schedule's id.
        id: String,
    },
    /// Delete a schedule; the jobs it enqueued stay.
    Delete {
        /// The schedule's id.
        id: String,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    /// The declaration as JSON (the body of `POST /v1/schedules`); flags given as well
    /// override its fields.
    #[arg(long, value_name = "FILE")]
    file: Option<std::path::PathBuf>,
    /// The schedule's id (letters, digits, `.`, `_`, `-`, `:`).
    #[arg(long)]
    id: Option<String>,
    /// A cron expression: 5 fields, or 6 with seconds first.
    #[arg(long)]
    cron: Option<String>,
    /// Instead of cron: a whole number of seconds, minutes or hours (`90s`, `15m`, `1h`).
    #[arg(long)]
    every: Option<String>,
    /// An IANA time zone (default UTC).
    #[arg(long)]
    timezone: Option<String>,
    /// The job's kind.
    #[arg(long)]
    kind: Option<String>,
    /// The job's goal.
    #[arg(long)]
    goal: Option<String>,
    /// The job's config, as JSON.
    #[arg(long, value_name = "JSON")]
    config: Option<String>,
    /// The job's priority: high, normal (default) or low.
    #[arg(long)]
    priority: Option<String>,
    /// The job's queue (default `default`).
    #[arg(long)]
    queue: Option<String>,
    /// skip (default), buffer_one, allow_all or cancel_other.
    #[arg(long)]
    overlap: Option<String>,
    /// How old a missed tick may be and still run (default 1h).
    #[arg(long, value_name = "DURATION")]
    catchup_window: Option<String>,
    /// latest (default) or all.
    #[arg(long)]
    catchup: Option<String>,
    /// A deterministic spread: the window (`600m`)…
    #[arg(long, value_name = "DURATION")]
    spread_window: Option<String>,
    /// …and the key it is drawn from (a user id, say).
    #[arg(long)]
    spread_key: Option<String>,
    /// Create it paused.
    #[arg(long)]
    paused: bool,
    /// Replace the schedule with this id if it exists.
    #[arg(long)]
    replace: bool,
    /// Print the created schedule as JSON.
    #[arg(long)]
    json: bool,
}

/// The flag that sets a declaration's field, for error messages.
fn flag(field: &str) -> String {
    let flag = match field {
        "job.kind" | "kind" => "--kind",
        "job.goal" => "--goal",
        "job.config" => "--config",
        "job.priority" => "--priority",
        "job.queue" => "--queue",
        "spread.window" => "--spread-window",
        "spread.key" => "--spread-key",
        "catchup_window" => "--catchup-window",
        "id" | "cron" | "every" | "timezone" | "overlap" | "catchup" | "paused" => {
            return format!("--{field}")
        }
        other => return other.to_string(),
    };
    flag.to_string()
}

/// The declaration the flags (and `--file`) give, as the API's JSON body.
fn body(args: &CreateArgs) -> anyhow::Result<Value> {
    let mut body = match &args.file {
        None => Map::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--file: cannot read {}", path.display()))?;
            match serde_json::from_str(&text) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(anyhow!("--file: {} is not a JSON object", path.display())),
                Err(e) => return Err(anyhow!("--file: {} is not JSON: {e}", path.display())),
            }
        }
    };
    let mut set = |key: &str, value: &Option<String>| {
        if let Some(v) = value {
            body.insert(key.into(), Value::String(v.clone()));
        }
    };
    set("id", &args.id);
    set("cron", &args.cron);
    set("every", &args.every);
    set("timezone", &args.timezone);
    set("overlap", &args.overlap);
    set("catchup_window", &args.catchup_window);
    set("catchup", &args.catchup);
    if args.paused {
        body.insert("paused".into(), Value::Bool(true));
    }
    let mut job = match body.remove("job") {
        Some(Value::Object(job)) => job,
        _ => Map::new(),
    };
    for (key, value) in [
        ("kind", &args.kind),
        ("goal", &args.goal),
        ("priority", &args.priority),
        ("queue", &args.queue),
    ] {
        if let Some(v) = value {
            job.insert(key.into(), Value::String(v.clone()));
        }
    }
    if let Some(config) = &args.config {
        let config: Value =
            serde_json::from_str(config).map_err(|e| anyhow!("--config: not JSON: {e}"))?;
        job.insert("config".into(), config);
    }
    body.insert("job".into(), Value::Object(job));
    if args.spread_window.is_some() || args.spread_key.is_some() {
        let (Some(window), Some(key)) = (&args.spread_window, &args.spread_key) else {
            return Err(anyhow!("--spread-window and --spread-key go together"));
        };
        body.insert("spread".into(), json!({"window": window, "key": key}));
    }
    if !body.contains_key("id") {
        return Err(anyhow!("--id: a schedule needs an id"));
    }
    Ok(Value::Object(body))
}

/// Parses and checks a declaration as the API does, naming the flag at fault.
fn spec(body: Value) -> anyhow::Result<ScheduleSpec> {
    let spec: ScheduleSpec = serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        anyhow!("{}: {}", flag(&path), e.into_inner())
    })?;
    spec.validate()
        .map_err(|e| anyhow!("{}: {}", flag(&e.field), e.message))?;
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    crate::every_kind()
        .prepare(spec.job_for(epoch, epoch))
        .map_err(|e| anyhow!("{}: {}", flag(&format!("job.{}", e.field)), e.message))?;
    Ok(spec)
}

fn store_error(err: ScheduleError) -> anyhow::Error {
    match err {
        ScheduleError::Invalid(invalid) => anyhow!("{}: {}", flag(&invalid.field), invalid.message),
        other => anyhow!(other),
    }
}

fn time(v: &Value) -> String {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M:%SZ")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

fn rule(s: &Value) -> String {
    match (s["cron"].as_str(), s["every"].as_str()) {
        (Some(cron), _) => format!("cron {cron}"),
        (None, Some(every)) => format!("every {every}"),
        _ => "-".into(),
    }
}

fn print_list(list: &[Value], json: bool) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "schedules": list }))?
        );
        return Ok(());
    }
    if list.is_empty() {
        println!("no schedules");
        return Ok(());
    }
    println!(
        "{:<24}  {:<26}  {:<18}  {:<10}  {:<20}  RUNS/SKIPPED/MISSED",
        "ID", "WHEN", "ZONE", "KIND", "NEXT RUN"
    );
    for s in list {
        let next = if s["paused"] == true {
            "paused".to_string()
        } else {
            time(&s["next_runs"][0])
        };
        println!(
            "{:<24}  {:<26}  {:<18}  {:<10}  {:<20}  {}/{}/{}",
            s["id"].as_str().unwrap_or("-"),
            rule(s),
            s["timezone"].as_str().unwrap_or("UTC"),
            s["job"]["kind"].as_str().unwrap_or("-"),
            next,
            s["runs"],
            s["skipped"],
            s["missed"]
        );
    }
    Ok(())
}

fn print_one(s: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!(
        "id:        {}   declared by {}",
        s["id"].as_str().unwrap_or("-"),
        match s["source"].as_str() {
            Some("config") => "the config file",
            _ => "the API",
        }
    );
    println!(
        "when:      {} ({})",
        rule(s),
        s["timezone"].as_str().unwrap_or("UTC")
    );
    println!(
        "job:       {} \"{}\"",
        s["job"]["kind"].as_str().unwrap_or("-"),
        s["job"]["goal"].as_str().unwrap_or("")
    );
    println!(
        "overlap:   {}   catch-up: {} {}",
        s["overlap"].as_str().unwrap_or("-"),
        s["catchup"].as_str().unwrap_or("latest"),
        s["catchup_window"].as_str().unwrap_or("-")
    );
    if let Some(spread) = s["spread"].as_object() {
        println!(
            "spread:    {} by {}",
            spread["window"].as_str().unwrap_or("-"),
            spread["key"].as_str().unwrap_or("-")
        );
    }
    println!(
        "state:     {}   runs {}, skipped {}, missed {}",
        if s["paused"] == true {
            "paused"
        } else {
            "active"
        },
        s["runs"],
        s["skipped"],
        s["missed"]
    );
    println!("next runs:");
    for t in s["next_runs"].as_array().into_iter().flatten() {
        println!("  {}", time(t));
    }
    println!("last runs:");
    let last = s["last_runs"].as_array().cloned().unwrap_or_default();
    if last.is_empty() {
        println!("  none yet");
    }
    for run in last {
        println!(
            "  {}  {}  {}",
            time(&run["tick"]),
            run["job_id"].as_str().unwrap_or("-"),
            run["status"].as_str().unwrap_or("gone")
        );
    }
    Ok(())
}

fn print_triggered(id: &str, done: &Value) {
    match done["fired"].as_array().and_then(|f| f.first()) {
        Some(fired) => println!(
            "schedule {id}: job {} for the tick {}",
            fired["job_id"].as_str().unwrap_or("-"),
            time(&fired["tick"])
        ),
        None if done["lost_race"] == true => {
            println!("schedule {id}: another evaluator fired it first")
        }
        None => println!("schedule {id}: held back by its overlap policy"),
    }
}

async fn shown(store: &dyn Store, s: &schedule::Schedule) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(schedule::view(store, s).await?)?)
}

/// `drover schedules …` on the store.
pub async fn run(store: &dyn Store, command: ScheduleCommand) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    match command {
        ScheduleCommand::List { json } => {
            let mut list = Vec::new();
            for s in store.schedules().await? {
                list.push(shown(store, &s).await?);
            }
            print_list(&list, json)?;
        }
        ScheduleCommand::Show { id, json } => {
            let s = store
                .schedule(&id)
                .await?
                .ok_or_else(|| anyhow!("schedule `{id}` not found"))?;
            print_one(&shown(store, &s).await?, json)?;
        }
        ScheduleCommand::Create(args) => {
            let spec = spec(body(&args)?)?;
            let how = if args.replace && store.schedule(&spec.id).await?.is_some() {
                Save::Replace
            } else {
                Save::Create
            };
            let s = schedule::save(store, spec, how, now)
                .await
                .map_err(store_error)?;
            print_one(&shown(store, &s).await?, args.json)?;
        }
        ScheduleCommand::Pause { id } => {
            let s = schedule::pause(store, &id, now)
                .await
                .map_err(store_error)?;
            println!("schedule {} paused", s.spec.id);
        }
        ScheduleCommand::Resume { id } => {
            let s = schedule::resume(store, &id, now)
                .await
                .map_err(store_error)?;
            println!(
                "schedule {} resumed; next run {}",
                s.spec.id,
                schedule::next_runs(&s, 1)
                    .first()
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "-".into())
            );
        }
        ScheduleCommand::Trigger { id } => {
            let done = schedule::trigger(store, &id, now)
                .await
                .map_err(store_error)?;
            let fired: Vec<Value> = done
                .fired
                .iter()
                .map(|(tick, job)| json!({"tick": tick, "job_id": job}))
                .collect();
            print_triggered(&id, &json!({"fired": fired, "lost_race": done.lost_race}));
        }
        ScheduleCommand::Delete { id } => {
            if !store.delete_schedule(&id).await? {
                return Err(anyhow!("schedule `{id}` not found"));
            }
            println!("schedule {id} deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `drover schedules …` through the API.
pub async fn run_api(client: &ApiClient, command: ScheduleCommand) -> anyhow::Result<ExitCode> {
    let path = |id: &str| format!("/v1/schedules/{id}");
    match command {
        ScheduleCommand::List { json } => {
            let body = client.get_json("/v1/schedules").await?;
            print_list(
                body["schedules"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
                json,
            )?;
        }
        ScheduleCommand::Show { id, json } => print_one(&client.get_json(&path(&id)).await?, json)?,
        ScheduleCommand::Create(args) => {
            let body = body(&args)?;
            // Checked here first, so a bad flag is named as a flag.
            let id = spec(body.clone())?.id;
            let exists = args.replace && client.get_json(&path(&id)).await.is_ok();
            let shown = if exists {
                client.put_json(&path(&id), &body).await?
            } else {
                client.post_json("/v1/schedules", &body).await?
            };
            print_one(&shown, args.json)?;
        }
        ScheduleCommand::Pause { id } => {
            client.post_empty(&format!("{}/pause", path(&id))).await?;
            println!("schedule {id} paused");
        }
        ScheduleCommand::Resume { id } => {
            let s = client.post_empty(&format!("{}/resume", path(&id))).await?;
            println!(
                "schedule {id} resumed; next run {}",
                time(&s["next_runs"][0])
            );
        }
        ScheduleCommand::Trigger { id } => {
            let done = client.post_empty(&format!("{}/trigger", path(&id))).await?;
            print_triggered(&id, &done);
        }
        ScheduleCommand::Delete { id } => {
            client.delete(&path(&id)).await?;
            println!("schedule {id} deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Applies the config file's `schedules:` at a process's start (see
/// [`drover_queue::schedule::declare`] for what is written and who owns it). An entry whose
/// job the process could not run is refused, naming `schedules[i].job.<field>`.
pub async fn declare_from_config(
    store: &dyn Store,
    entries: &[ScheduleSpec],
    registry: &drover_worker::Registry,
) -> anyhow::Result<()> {
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    for (i, spec) in entries.iter().enumerate() {
        if let Err(e) = registry.prepare(spec.job_for(epoch, epoch)) {
            anyhow::bail!("config key `schedules[{i}].job.{}`: {}", e.field, e.message);
        }
    }
    for (i, spec) in entries.iter().enumerate() {
        let outcome = drover_worker::retry::store_call(
            "declare a schedule",
            || async {
                match schedule::declare(store, spec.clone(), Utc::now()).await {
                    Err(ScheduleError::Store(err)) => Err(err),
                    other => Ok(other),
                }
            },
            || false,
        )
        .await
        .with_context(|| format!("schedules[{i}] (`{}`)", spec.id))?;
        match outcome {
            Ok(schedule::Declared::Unchanged) => {}
            Ok(schedule::Declared::TakenOver) => tracing::warn!(
                schedule = %spec.id,
                "a schedule created at run time is now declared by the config file"
            ),
            Ok(done) => tracing::info!(schedule = %spec.id, outcome = ?done, "schedule declared"),
            Err(ScheduleError::Invalid(e)) => {
                anyhow::bail!("config key `schedules[{i}].{}`: {}", e.field, e.message)
            }
            Err(err) => return Err(anyhow!(err).context(format!("schedules[{i}]"))),
        }
    }
    Ok(())
}
