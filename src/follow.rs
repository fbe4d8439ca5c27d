//! Following a job's event log until it finishes (`submit --follow`, `jobs events`, `demo`):
//! from the HTTP API's SSE stream with `--api`, from the store otherwise. On a terminal it
//! draws a live progress bar; otherwise it prints one line per event.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use drover_queue::{Event, Job, JobId, JobStatus, Store};

use crate::client::ApiClient;

/// Prints events after `after` as they are appended; returns the job once it is terminal.
pub async fn follow_from(
    store: &dyn Store,
    id: JobId,
    mut after: i64,
    print: bool,
) -> anyhow::Result<Job> {
    let mut signals = store.notifier().subscribe();
    let renderer = print.then(Renderer::new);
    let started = Instant::now();
    let mut warned = false;
    loop {
        let events = store.events(id, after, 500).await?;
        for event in &events {
            if let Some(renderer) = &renderer {
                let time = event.created_at.format("%H:%M:%S%.3f").to_string();
                renderer.event(Some(event.seq), &time, &event.kind, &event.data);
            }
            after = event.seq;
        }
        if events.is_empty() {
            let job = store.get(id).await?;
            if job.status.is_terminal() {
                // Terminal, and every event up to it has been printed.
                let rest = store.events(id, after, 500).await?;
                if rest.is_empty() {
                    if let Some(renderer) = &renderer {
                        renderer.finish();
                    }
                    return Ok(job);
                }
                continue;
            }
            if !warned && started.elapsed() >= UNSERVED_AFTER && waits_for_a_worker(&job) {
                warned = true;
                if store.workers(LIVE_WITHIN).await?.is_empty() {
                    eprintln!("{}", no_worker_hint(&job));
                }
            }
            // Woken by this process's writes; other processes' events are polled.
            let _ = tokio::time::timeout(Duration::from_millis(200), signals.recv()).await;
        }
    }
}

pub async fn follow(store: &dyn Store, id: JobId, print: bool) -> anyhow::Result<Job> {
    follow_from(store, id, 0, print).await
}

/// How long a due job may sit queued before a follower checks that a worker is alive.
const UNSERVED_AFTER: Duration = Duration::from_secs(4);
/// A worker counts as alive when its last heartbeat is younger than this.
const LIVE_WITHIN: Duration = Duration::from_secs(30);

/// True for a job that is due and waits only for a worker to lease it.
fn waits_for_a_worker(job: &Job) -> bool {
    job.status == JobStatus::Queued && job.run_at <= chrono::Utc::now()
}

fn no_worker_hint(job: &Job) -> String {
    format!(
        "drover: job {} is still queued and no worker is alive on this store (none sent a \
         heartbeat in the last {} s); start one with `drover worker --store <url>` or \
         `drover serve`, and check that its --queues include `{}`",
        job.id,
        LIVE_WITHIN.as_secs(),
        job.queue
    )
}

/// Follows the job's SSE stream from the API after `after`; returns the finished job.
pub async fn follow_api(client: &ApiClient, id: &str, after: i64) -> anyhow::Result<Job> {
    let renderer = Renderer::new();
    let stream = client.follow(id, after, |message| {
        let data: serde_json::Value =
            serde_json::from_str(&message.data).unwrap_or(serde_json::Value::Null);
        let time = chrono::Utc::now().format("%H:%M:%S%.3f").to_string();
        renderer.event(message.id, &time, &message.event, &data);
    });
    // Says once, after a few seconds, when nothing will ever run the job.
    let watchdog = async {
        tokio::time::sleep(UNSERVED_AFTER).await;
        if let Ok(job) = client.get(id).await {
            let none_alive = client.workers().await.is_ok_and(|w| w.is_empty());
            if waits_for_a_worker(&job) && none_alive {
                eprintln!("{}", no_worker_hint(&job));
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        followed = stream => followed?,
        _ = watchdog => {}
    }
    renderer.finish();
    client.get(id).await
}

/// One line per event.
pub fn describe(event: &Event) -> String {
    let time = event.created_at.format("%H:%M:%S%.3f");
    let detail = summary(&event.kind, &event.data);
    format!("{time}  #{:<4} {:<10} {detail}", event.seq, event.kind)
}

/// A short human summary of an event's data.
pub fn summary(kind: &str, data: &serde_json::Value) -> String {
    match kind {
        "status" => {
            let mut line = data["status"].as_str().unwrap_or("?").to_string();
            if let Some(worker) = data["worker"].as_str() {
                line.push_str(&format!(" on {worker}"));
            }
            if let Some(n) = data["attempt"].as_u64().filter(|n| *n > 0) {
                line.push_str(&format!(" (attempt {n})"));
            }
            if let Some(reason) = data["reason"].as_str() {
                line.push_str(&format!(" [{reason}]"));
            }
            if let Some(message) = data["error"]["message"].as_str() {
                line.push_str(&format!(": {message}"));
            }
            line
        }
        "progress" => {
            let d = data;
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
            data["seq"],
            data["step"].as_str().unwrap_or("?"),
            data["size"]
        ),
        "log" => data["message"].as_str().unwrap_or_default().to_string(),
        "error" => format!(
            "{} error in step {}: {}",
            data["kind"].as_str().unwrap_or("?"),
            data["step"].as_str().unwrap_or("?"),
            data["message"].as_str().unwrap_or("?")
        ),
        _ => data.to_string(),
    }
}

/// Shows a followed job: a live progress bar on a terminal, one line per event otherwise.
pub struct Renderer {
    bar: Option<indicatif::ProgressBar>,
}

impl Renderer {
    pub fn new() -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            let style = indicatif::ProgressStyle::with_template(
                "{spinner} {prefix:>9} [{bar:40.cyan/blue}] {pos}/{len} {msg} (eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Renderer { bar }
    }

    /// One event: `seq` and `time` label the plain line.
    pub fn event(&self, seq: Option<i64>, time: &str, kind: &str, data: &serde_json::Value) {
        let line = format!(
            "{time}  #{:<4} {kind:<10} {}",
            seq.unwrap_or(0),
            summary(kind, data)
        );
        let Some(bar) = &self.bar else {
            println!("{line}");
            return;
        };
        match kind {
            "progress" => {
                let total = data["items_total"]
                    .as_u64()
                    .or(data["total_steps"].as_u64());
                let done = if data["items_total"].is_u64() {
                    data["items_processed"].as_u64()
                } else {
                    data["steps_done"].as_u64()
                };
                if let Some(total) = total {
                    bar.set_length(total);
                }
                if let Some(done) = done {
                    bar.set_position(done);
                }
                if let Some(step) = data["step"].as_str().or(data["stage"].as_str()) {
                    bar.set_message(step.to_string());
                }
            }
            "status" => {
                bar.set_prefix(data["status"].as_str().unwrap_or("?").to_string());
                bar.println(line);
            }
            "checkpoint" => {}
            _ => bar.println(line),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
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
