//! Following a job's event log until it finishes (`submit --follow`, `jobs events --follow`,
//! `demo`). Reads the log from the store; the SSE client replaces this once the API lands.

use std::process::ExitCode;
use std::time::Duration;

use drover_queue::{Event, Job, JobId, JobStatus, Store};

/// Prints events after `after` as they are appended; returns the job once it is terminal.
pub async fn follow_from(
    store: &dyn Store,
    id: JobId,
    mut after: i64,
    print: bool,
) -> anyhow::Result<Job> {
    let mut signals = store.notifier().subscribe();
    loop {
        let events = store.events(id, after, 500).await?;
        for event in &events {
            if print {
                println!("{}", describe(event));
            }
            after = event.seq;
        }
        if events.is_empty() {
            let job = store.get(id).await?;
            if job.status.is_terminal() {
                // Terminal, and every event up to it has been printed.
                let rest = store.events(id, after, 500).await?;
                if rest.is_empty() {
                    return Ok(job);
                }
                continue;
            }
            // Woken by this process's writes; other processes' events are polled.
            let _ = tokio::time::timeout(Duration::from_millis(200), signals.recv()).await;
        }
    }
}

pub async fn follow(store: &dyn Store, id: JobId, print: bool) -> anyhow::Result<Job> {
    follow_from(store, id, 0, print).await
}

/// One line per event.
pub fn describe(event: &Event) -> String {
    let time = event.created_at.format("%H:%M:%S%.3f");
    let detail = match event.kind.as_str() {
        "status" => {
            let mut line = event.data["status"].as_str().unwrap_or("?").to_string();
            if let Some(worker) = event.data["worker"].as_str() {
                line.push_str(&format!(" on {worker}"));
            }
            if let Some(n) = event.data["attempt"].as_u64().filter(|n| *n > 0) {
                line.push_str(&format!(" (attempt {n})"));
            }
            if let Some(reason) = event.data["reason"].as_str() {
                line.push_str(&format!(" [{reason}]"));
            }
            if let Some(message) = event.data["error"]["message"].as_str() {
                line.push_str(&format!(": {message}"));
            }
            line
        }
        "progress" => {
            let d = &event.data;
            let mut line = String::new();
            if let Some(step) = d["step"].as_str().or(d["stage"].as_str()) {
                line.push_str(step);
            }
            line.push_str(&format!(
                " step {}/{}",
                d["steps_done"].as_u64().unwrap_or(0),
                d["total_steps"].as_u64().unwrap_or(0)
            ));
            if let Some(total) = d["items_total"].as_u64() {
                line.push_str(&format!(
                    ", {}/{total} items",
                    d["items_processed"].as_u64().unwrap_or(0)
                ));
            }
            if let Some(eta) = d["estimated_completion"].as_str() {
                line.push_str(&format!(", eta {}", eta.get(11..19).unwrap_or(eta)));
            }
            line
        }
        "checkpoint" => format!(
            "#{} at step {} ({} bytes)",
            event.data["seq"],
            event.data["step"].as_str().unwrap_or("?"),
            event.data["size"]
        ),
        "log" => event.data["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        "error" => format!(
            "{} error in step {}: {}",
            event.data["kind"].as_str().unwrap_or("?"),
            event.data["step"].as_str().unwrap_or("?"),
            event.data["message"].as_str().unwrap_or("?")
        ),
        _ => event.data.to_string(),
    };
    format!("{time}  #{:<4} {:<10} {detail}", event.seq, event.kind)
}

/// 0 when the job completed; 1 when it failed; 2 when it was cancelled.
pub fn exit_code(job: &Job) -> ExitCode {
    match job.status {
        JobStatus::Completed => {
            if let Some(result) = &job.result {
                println!("result: {result}");
            }
            ExitCode::SUCCESS
        }
        JobStatus::Failed => {
            if let Some(error) = &job.error {
                eprintln!("job failed: {}", error.message);
            }
            ExitCode::from(1)
        }
        _ => ExitCode::from(2),
    }
}
