//! `drover jobs …` and `drover queues …`: inspect and control jobs and queues.

use std::process::ExitCode;

use clap::Subcommand;
use drover_queue::{Job, JobFilter, JobId, JobStatus, Store};

use crate::follow;

#[derive(Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        #[arg(long)]
        status: Option<JobStatus>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        created_by: Option<String>,
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        /// Continue after this cursor (printed at the end of the previous page).
        #[arg(long)]
        cursor: Option<JobId>,
        #[arg(long)]
        json: bool,
    },
    /// Show one job.
    Show {
        id: JobId,
        #[arg(long)]
        json: bool,
    },
    /// Pause a job (a running job stops at its next safe point).
    Pause { id: JobId },
    /// Resume a paused job.
    Resume { id: JobId },
    /// Cancel a job (a running job stops at its next safe point).
    Cancel { id: JobId },
    /// Print a job's event log.
    Events {
        id: JobId,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Keep printing new events until the job finishes.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Subcommand)]
pub enum QueuesCommand {
    /// Depth by status and priority, oldest waiting age, paused flag.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop leasing from a queue.
    Pause { name: String },
    /// Resume leasing from a queue.
    Resume { name: String },
}

pub async fn run(store: &dyn Store, command: JobsCommand) -> anyhow::Result<ExitCode> {
    match command {
        JobsCommand::List {
            status,
            kind,
            created_by,
            limit,
            cursor,
            json,
        } => {
            let page = store
                .list(&JobFilter {
                    status,
                    kind,
                    created_by,
                    before: cursor,
                    limit: limit as usize,
                })
                .await?;
            if json {
                let body = serde_json::json!({"jobs": page.jobs, "next_cursor": page.next});
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                println!(
                    "{:<36}  {:<9}  {:<8}  {:<6}  {:<7}  GOAL",
                    "ID", "STATUS", "KIND", "PRIO", "ATTEMPT"
                );
                for job in &page.jobs {
                    println!(
                        "{:<36}  {:<9}  {:<8}  {:<6}  {:<7}  {}",
                        job.id,
                        job.status,
                        job.kind,
                        job.priority,
                        format!("{}/{}", job.attempt, job.max_attempts),
                        truncate(&job.goal, 60)
                    );
                }
                if let Some(next) = page.next {
                    println!("more: drover jobs list --cursor {next}");
                }
            }
        }
        JobsCommand::Show { id, json } => {
            let job = store.get(id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            } else {
                print_job(&job);
            }
        }
        JobsCommand::Pause { id } => report("pause", &store.pause(id).await?),
        JobsCommand::Resume { id } => report("resume", &store.resume(id).await?),
        JobsCommand::Cancel { id } => report("cancel", &store.cancel(id).await?),
        JobsCommand::Events { id, after, follow } => {
            if follow {
                let job = follow::follow_from(store, id, after, true).await?;
                return Ok(follow::exit_code(&job));
            }
            store.get(id).await?;
            for event in store.events(id, after, 10_000).await? {
                println!("{}", follow::describe(&event));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_queues(store: &dyn Store, command: QueuesCommand) -> anyhow::Result<ExitCode> {
    match command {
        QueuesCommand::List { json } => {
            let queues = store.queues().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&queues)?);
            } else {
                println!(
                    "{:<20}  {:<6}  {:>7}  {:>7}  {:>7}  OLDEST WAITING",
                    "QUEUE", "PAUSED", "QUEUED", "RUNNING", "PAUSED"
                );
                for q in &queues {
                    let n = |s: &str| q.by_status.get(s).copied().unwrap_or(0);
                    println!(
                        "{:<20}  {:<6}  {:>7}  {:>7}  {:>7}  {}",
                        q.name,
                        if q.paused { "yes" } else { "no" },
                        n("queued"),
                        n("running"),
                        n("paused"),
                        q.oldest_waiting_secs
                            .map(|s| format!("{s:.1}s"))
                            .unwrap_or_else(|| "-".into())
                    );
                }
            }
        }
        QueuesCommand::Pause { name } => {
            store.pause_queue(&name).await?;
            println!("queue {name} paused: no new leases until resumed");
        }
        QueuesCommand::Resume { name } => {
            store.resume_queue(&name).await?;
            println!("queue {name} resumed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report(action: &str, job: &Job) {
    let note = match (action, job.status) {
        ("pause", JobStatus::Running) => " (pause requested: it stops at its next safe point)",
        ("cancel", JobStatus::Running) => " (cancel requested: it stops at its next safe point)",
        ("resume", JobStatus::Running) => " (pending pause withdrawn)",
        _ => "",
    };
    println!("job {}: {}{note}", job.id, job.status);
}

fn print_job(job: &Job) {
    println!("id:          {}", job.id);
    println!("kind:        {}", job.kind);
    println!("goal:        {}", job.goal);
    println!("status:      {}", job.status);
    println!("queue:       {} ({} priority)", job.queue, job.priority);
    println!("attempt:     {}/{}", job.attempt, job.max_attempts);
    println!("run_at:      {}", job.run_at.to_rfc3339());
    println!(
        "created:     {}{}",
        job.created_at.to_rfc3339(),
        job.created_by
            .as_deref()
            .map(|w| format!(" by {w}"))
            .unwrap_or_default()
    );
    if let Some(at) = job.started_at {
        println!("started:     {}", at.to_rfc3339());
    }
    if let Some(at) = job.finished_at {
        println!("finished:    {}", at.to_rfc3339());
    }
    if let Some(owner) = &job.lease_owner {
        println!("leased by:   {owner} (epoch {})", job.lease_epoch);
    }
    if job.pause_requested || job.cancel_requested {
        println!(
            "requested:   {}",
            if job.cancel_requested {
                "cancel"
            } else {
                "pause"
            }
        );
    }
    println!("config:      {}", job.config);
    if let Some(progress) = &job.progress {
        println!("progress:    {progress}");
    }
    if let Some(result) = &job.result {
        println!("result:      {result}");
    }
    if let Some(error) = &job.error {
        println!("error:       {:?}: {}", error.kind, error.message);
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max - 1).chain(['…']).collect()
    }
}
