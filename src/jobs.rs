//! `drover jobs …` and `drover queues …`: inspect and control jobs and queues.

use std::process::ExitCode;

use clap::Subcommand;
use drover_queue::{Job, JobFilter, JobId, JobStatus, Store, MAX_EVENTS_PER_READ};

use crate::client::ApiClient;
use crate::follow;

#[derive(Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only jobs in this status.
        #[arg(long)]
        status: Option<JobStatus>,
        /// Only jobs of this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Only jobs submitted by this name.
        #[arg(long)]
        created_by: Option<String>,
        /// Jobs per page, 1 to 1000.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        /// Continue after this cursor (printed at the end of the previous page).
        #[arg(long)]
        cursor: Option<JobId>,
        /// Print the page as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one job.
    Show {
        /// The job's id.
        id: JobId,
        /// Print the job as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pause a job (a running job stops at its next safe point).
    Pause {
        /// The job's id.
        id: JobId,
    },
    /// Resume a paused job.
    Resume {
        /// The job's id.
        id: JobId,
    },
    /// Cancel a job (a running job stops at its next safe point).
    Cancel {
        /// The job's id.
        id: JobId,
    },
    /// Print a job's event log.
    Events {
        /// The job's id.
        id: JobId,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Keep printing new events until the job finishes.
        #[arg(long)]
        follow: bool,
    },
    /// A job's gates: what it asks an operator, and the answers so far.
    Gates {
        /// The job's id.
        id: JobId,
        /// Print the gates as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decide one of a job's gates.
    Decide {
        /// The job's id.
        id: JobId,
        /// The gate's key (as `drover jobs gates` lists it).
        key: String,
        /// The decision: one of the gate's decisions (`approve`), or JSON (`{"n": 3}`).
        decision: String,
        /// Why, for the record.
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum QueuesCommand {
    /// Depth by status and priority, oldest waiting age, paused flag.
    List {
        /// Print the queues as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop leasing from a queue.
    Pause {
        /// The queue's name.
        name: String,
    },
    /// Resume leasing from a queue.
    Resume {
        /// The queue's name.
        name: String,
    },
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
            print_list(&page.jobs, page.next.map(|n| n.to_string()), json)?;
        }
        JobsCommand::Show { id, json } => {
            let job = store.get(id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            } else {
                print_job(&job);
            }
        }
        JobsCommand::Gates { id, json } => {
            crate::gates::print_gates(&store.gates(id).await?, json)?
        }
        JobsCommand::Decide {
            id,
            key,
            decision,
            note,
        } => {
            let decision = drover_queue::Decision {
                key,
                decision: crate::gates::parse_decision(&decision),
                note,
            };
            crate::gates::print_decided(&store.decide(id, decision).await?);
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
            // Page through the whole log: a store answers at most `MAX_EVENTS_PER_READ`
            // events per call.
            let mut after = after;
            loop {
                let page = store.events(id, after, MAX_EVENTS_PER_READ).await?;
                for event in &page {
                    println!("{}", follow::describe(event));
                }
                match page.last() {
                    Some(last) if page.len() == MAX_EVENTS_PER_READ => after = last.seq,
                    _ => break,
                }
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
                print_queues(&queues);
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

fn print_list(jobs: &[Job], next: Option<String>, json: bool) -> anyhow::Result<()> {
    if json {
        let body = serde_json::json!({"jobs": jobs, "next_cursor": next});
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    println!(
        "{:<36}  {:<9}  {:<8}  {:<6}  {:<7}  GOAL",
        "ID", "STATUS", "KIND", "PRIO", "ATTEMPT"
    );
    for job in jobs {
        println!(
            "{:<36}  {:<9}  {:<8}  {:<6}  {:<7}  {}",
            job.id,
            job.status,
            job.kind,
            job.priority,
            format!("{}/{}", job.shown_attempt(), job.max_attempts),
            truncate(&job.goal, 60)
        );
    }
    if let Some(next) = next {
        println!("more: drover jobs list --cursor {next}");
    }
    Ok(())
}

fn print_queues(queues: &[drover_queue::QueueStats]) {
    println!(
        "{:<20}  {:<6}  {:>7}  {:>7}  {:>7}  OLDEST WAITING",
        "QUEUE", "PAUSED", "QUEUED", "RUNNING", "PAUSED"
    );
    for q in queues {
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

/// `drover jobs …` through the HTTP API.
pub async fn run_api(client: &ApiClient, command: JobsCommand) -> anyhow::Result<ExitCode> {
    match command {
        JobsCommand::List {
            status,
            kind,
            created_by,
            limit,
            cursor,
            json,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            if let Some(status) = status {
                query.push(("status", status.to_string()));
            }
            if let Some(kind) = kind {
                query.push(("kind", kind));
            }
            if let Some(created_by) = created_by {
                query.push(("created_by", created_by));
            }
            if let Some(cursor) = cursor {
                query.push(("cursor", cursor.to_string()));
            }
            let (jobs, next) = client.list(&query).await?;
            print_list(&jobs, next, json)?;
        }
        JobsCommand::Show { id, json } => {
            let job = client.get(&id.to_string()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            } else {
                print_job(&job);
            }
        }
        JobsCommand::Gates { id, json } => {
            let body = client.get_json(&format!("/v1/jobs/{id}/gates")).await?;
            let gates: Vec<drover_queue::Gate> = serde_json::from_value(body["gates"].clone())?;
            crate::gates::print_gates(&gates, json)?;
        }
        JobsCommand::Decide {
            id,
            key,
            decision,
            note,
        } => {
            let body = serde_json::json!({
                "decision": crate::gates::parse_decision(&decision),
                "note": note,
            });
            let gate = client
                .post_json(&format!("/v1/jobs/{id}/gates/{key}"), &body)
                .await?;
            crate::gates::print_decided(&serde_json::from_value(gate)?);
        }
        JobsCommand::Pause { id } => {
            report("pause", &client.control(&id.to_string(), "pause").await?)
        }
        JobsCommand::Resume { id } => {
            report("resume", &client.control(&id.to_string(), "resume").await?)
        }
        JobsCommand::Cancel { id } => {
            report("cancel", &client.control(&id.to_string(), "cancel").await?)
        }
        JobsCommand::Events { id, after, .. } => {
            // The API's stream replays, then follows until the job finishes.
            let job = follow::follow_api(client, &id.to_string(), after).await?;
            return Ok(follow::exit_code(&job));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `drover queues …` through the HTTP API.
pub async fn run_queues_api(
    client: &ApiClient,
    command: QueuesCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        QueuesCommand::List { json } => {
            let body = client.queues().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body["queues"])?);
            } else {
                let queues: Vec<drover_queue::QueueStats> =
                    serde_json::from_value(body["queues"].clone()).unwrap_or_default();
                print_queues(&queues);
            }
        }
        QueuesCommand::Pause { name } => {
            client.queue(&name, "pause").await?;
            println!("queue {name} paused: no new leases until resumed");
        }
        QueuesCommand::Resume { name } => {
            client.queue(&name, "resume").await?;
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
    println!("attempt:     {}/{}", job.shown_attempt(), job.max_attempts);
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
