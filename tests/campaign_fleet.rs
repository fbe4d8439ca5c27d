//! The campaign kind (SPEC §7.2) run by real `drover` processes against the sandbox, which
//! this test process starts in-process so that it reads the request log and the SMTP sink
//! directly:
//! 1. a worker SIGKILLed in the middle of sending, and a successor: no recipient gets two
//!    messages (one whose send was cut off is recorded `unknown` and never sent again), and
//!    `report.csv` has every lead once and matches the sink;
//! 2. three workers running campaigns on one GitHub token against a small sandbox budget:
//!    the sandbox sees no request over the budget, the campaigns snooze for the rate limit
//!    and finish;
//! 3. a campaign paused in the middle of enrichment through the API and resumed on another
//!    worker: no GitHub URL is answered 200 twice;
//! 4. an unsubscribe through `POST /u/{token}` on the API process keeps that address out of
//!    the next campaign.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use drover_queue::testing::Backend;
use drover_queue::{Job, JobId, JobStatus, Store};
use drover_sandbox::{GithubConfig, Sandbox, SandboxConfig, WorldConfig};
use serde_json::{json, Value};

/// base64 of 32 bytes of 7: the unsubscribe tokens' key, the same in every process.
const SECRETS_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const GOAL: &str = "Find 60 Python maintainers active in last 120 days";

/// A `drover api` child process; killed when dropped.
struct ApiProcess {
    child: Child,
    base: String,
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
    addr.expect("an ephemeral port").port()
}

/// One scenario: a store, the sandbox, an API process and the workers' settings.
struct Fleet {
    backend: Backend,
    url: String,
    store: Arc<dyn Store>,
    sandbox: Sandbox,
    logs: tempfile::TempDir,
    env: Vec<(String, String)>,
    api: ApiProcess,
    http: reqwest::Client,
}

impl Fleet {
    /// Starts the sandbox (`github` its limits) and an API process; `smtp` configures the
    /// SMTP transport (else drafts only).
    async fn start(backend: Backend, github: GithubConfig, repos: u64, smtp: bool) -> Fleet {
        let sandbox = Sandbox::start(SandboxConfig {
            world: WorldConfig {
                seed: 11,
                repos,
                users: repos * 2,
                now: chrono::Utc::now(),
            },
            github,
            ..SandboxConfig::default()
        })
        .await
        .expect("sandbox");
        let url = backend.url();
        let store = backend.open().await;
        let logs = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut env: Vec<(String, String)> = [
            ("DROVER_GITHUB__BASE_URL", sandbox.base_url()),
            ("DROVER_GITHUB__TOKEN", "ghp_campaign_fleet_token".into()),
            (
                "DROVER_MAIL__FROM",
                "Drover Outreach <outreach@drover.test>".into(),
            ),
            (
                "DROVER_MAIL__PUBLIC_URL",
                format!("http://127.0.0.1:{port}"),
            ),
            ("DROVER_MAIL__PER_DOMAIN_PER_MINUTE", "100000".into()),
            ("DROVER_SECRETS__KEY", SECRETS_KEY.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if smtp {
            env.push(("DROVER_MAIL__TRANSPORT".into(), "smtp".into()));
            env.push((
                "DROVER_MAIL__SMTP_URL".into(),
                format!("smtp://{}", sandbox.smtp),
            ));
        }
        let log = std::fs::File::create(logs.path().join("api.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_drover"))
            .args([
                "api",
                "--store",
                &url,
                "--bind",
                &format!("127.0.0.1:{port}"),
            ])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("DROVER_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn drover api");
        let api = ApiProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let health = format!("{}/healthz", api.base);
        eventually(Duration::from_secs(30), "the API to listen", || async {
            let answer = http.get(&health).send().await.ok()?;
            answer.status().is_success().then_some(())
        })
        .await;
        Fleet {
            backend,
            url,
            store,
            sandbox,
            logs,
            env,
            api,
            http,
        }
    }

    fn worker(&self, id: &str, slots: u32) -> WorkerProcess {
        let mut command = worker_command(&self.url, id, slots, self.logs.path());
        command.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        WorkerProcess::spawn(id, command)
    }

    /// Submits a campaign through the API; its id.
    async fn submit(&self, goal: &str, config: Value) -> JobId {
        let answer = self
            .http
            .post(format!("{}/v1/jobs", self.api.base))
            .json(&json!({ "kind": "campaign", "goal": goal, "config": config }))
            .send()
            .await
            .expect("POST /v1/jobs");
        let status = answer.status();
        let body: Value = answer.json().await.expect("a JSON answer");
        assert!(status.is_success(), "{status}: {body}");
        let id = body["id"].as_str().expect("the job's id");
        id.parse().expect("a job id")
    }

    async fn post(&self, path: &str) -> Value {
        let answer = self
            .http
            .post(format!("{}{path}", self.api.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = answer.status();
        let body: Value = answer.json().await.expect("a JSON answer");
        assert!(status.is_success(), "POST {path}: {status}: {body}");
        body
    }

    async fn job(&self, id: JobId) -> Job {
        self.store.get(id).await.expect("get")
    }

    /// Waits for `id` to finish, and asserts it completed.
    async fn completed(&self, id: JobId) -> Job {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(100);
        loop {
            let job = self.job(id).await;
            if job.status.is_terminal() {
                assert_eq!(
                    job.status,
                    JobStatus::Completed,
                    "{:?}\n{}",
                    job.error,
                    self.tail(id).await
                );
                return job;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "campaign {id} did not finish: {job:?}\n{}",
                    self.tail(id).await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last events of `id` and the names of the process logs, for a failure's message.
    async fn tail(&self, id: JobId) -> String {
        let events = self.store.events(id, 0, 100_000).await.unwrap_or_default();
        let tail: Vec<String> = events
            .iter()
            .rev()
            .take(20)
            .map(|e| format!("{} {}", e.kind, e.data))
            .collect();
        format!(
            "last events (newest first):\n{}\nlogs in {}",
            tail.join("\n"),
            self.logs.path().display()
        )
    }

    async fn status_events(&self, id: JobId) -> Vec<Value> {
        let events = self.store.events(id, 0, 100_000).await.expect("events");
        events
            .into_iter()
            .filter(|e| e.kind == "status")
            .map(|e| e.data)
            .collect()
    }

    /// The rows of `report.csv`, as maps of column → value.
    async fn report(&self, id: JobId) -> Vec<HashMap<String, String>> {
        let artifact = self
            .store
            .artifact(id, "report.csv")
            .await
            .expect("artifact")
            .expect("report.csv");
        let mut reader = csv::Reader::from_reader(artifact.data.as_slice());
        let headers = reader.headers().expect("headers").clone();
        reader
            .records()
            .map(|r| {
                let r = r.expect("a row");
                headers
                    .iter()
                    .zip(r.iter())
                    .map(|(h, v)| (h.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    }

    /// Messages at the sink per recipient (lowercase).
    fn at_sink(&self) -> HashMap<String, usize> {
        let mut at_sink: HashMap<String, usize> = HashMap::new();
        for message in self.sandbox.sink.messages() {
            for to in &message.to {
                *at_sink.entry(to.to_lowercase()).or_default() += 1;
            }
        }
        at_sink
    }

    async fn finish(self) {
        let Fleet { backend, api, .. } = self;
        drop(api);
        backend.cleanup().await;
    }
}

/// No lead appears twice in `rows`, and their count is the result's.
fn assert_complete(rows: &[HashMap<String, String>], result: &Value) {
    assert_eq!(
        rows.len() as u64,
        result["leads"].as_u64().unwrap_or(0),
        "{result}"
    );
    let mut logins = std::collections::HashSet::new();
    for row in rows {
        assert!(logins.insert(row["login"].clone()), "a row twice: {row:?}");
    }
    let mut addressed = std::collections::HashSet::new();
    for row in rows {
        if matches!(row["send_status"].as_str(), "sent" | "unknown" | "drafted") {
            assert!(
                addressed.insert(row["email"].clone()),
                "an address twice: {row:?}"
            );
        }
    }
}

// ---------- 1. SIGKILL in the middle of sending ----------

async fn a_worker_killed_while_sending_sends_nobody_two_messages(backend: Backend) {
    let fleet = Fleet::start(backend, GithubConfig::default(), 2_000, true).await;
    let mut victim = fleet.worker("victim", 1);
    // One item at a time, so the sends are spread out enough to be cut in the middle.
    let id = fleet
        .submit(
            GOAL,
            json!({ "send": true, "min_stars": 5, "volume_interval": 5, "concurrency": 1 }),
        )
        .await;
    let killed_at = eventually(
        Duration::from_secs(60),
        "the campaign to start sending",
        || async {
            let n = fleet.sandbox.sink.messages().len();
            (n >= 5).then_some(n)
        },
    )
    .await;
    victim.kill9();
    let at_kill = fleet.sandbox.sink.messages().len();
    let _successor = fleet.worker("successor", 1);
    let done = fleet.completed(id).await;
    let result = done.result.clone().expect("a result");
    let rows = fleet.report(id).await;
    assert_complete(&rows, &result);

    let messages = fleet.sandbox.sink.messages();
    assert!(
        messages.len() > at_kill,
        "the successor sent the rest (killed at {killed_at}, {at_kill} at the sink then, {} now)",
        messages.len()
    );
    let at_sink = fleet.at_sink();
    for (to, n) in &at_sink {
        assert_eq!(*n, 1, "{to} got {n} messages");
    }
    let mut accounted = 0;
    for row in &rows {
        match row["send_status"].as_str() {
            "sent" => {
                assert_eq!(at_sink.get(&row["email"]), Some(&1), "{row:?}");
                accounted += 1;
            }
            // Cut off between the intent and the outcome: delivered or not, never again.
            "unknown" => {
                if at_sink.contains_key(&row["email"]) {
                    accounted += 1;
                }
            }
            "no_email" | "duplicate" | "suppressed" => {
                assert!(!at_sink.contains_key(&row["email"]), "{row:?}");
            }
            other => panic!("unexpected status {other}: {row:?}"),
        }
    }
    assert_eq!(
        accounted,
        at_sink.len(),
        "every message at the sink is a row's"
    );
    assert_eq!(
        result["sent"].as_u64(),
        Some(rows.iter().filter(|r| r["send_status"] == "sent").count() as u64)
    );
    fleet.finish().await;
}

// ---------- 2. three workers, one token, a small budget ----------

async fn three_workers_share_one_token_without_going_over(backend: Backend) {
    let github = GithubConfig {
        core_limit: 300,
        core_window: Duration::from_secs(10),
        search_limit: 30,
        search_window: Duration::from_secs(10),
        ..GithubConfig::default()
    };
    let fleet = Fleet::start(backend, github, 1_500, false).await;
    let _workers: Vec<WorkerProcess> = (0..3).map(|i| fleet.worker(&format!("w{i}"), 1)).collect();
    let mut ids = Vec::new();
    for language in ["Python", "Rust", "Go"] {
        let goal = format!("Find 40 {language} maintainers active in last 200 days");
        ids.push(
            fleet
                .submit(&goal, json!({ "min_stars": 1, "max_repos": 25 }))
                .await,
        );
    }
    let mut snoozes = 0;
    for id in &ids {
        let done = fleet.completed(*id).await;
        let result = done.result.clone().expect("a result");
        assert!(result["drafted"].as_u64() > Some(0), "{result}");
        assert_complete(&fleet.report(*id).await, &result);
        snoozes += fleet
            .status_events(*id)
            .await
            .iter()
            .filter(|e| {
                e["reason"] == "snoozed"
                    && e["note"]
                        .as_str()
                        .is_some_and(|n| n.contains("rate limit of github:"))
            })
            .count();
    }
    let stats = fleet.sandbox.stats();
    assert_eq!(stats.over_budget, 0, "{stats:?}");
    let counted: u64 = stats.tokens.values().sum();
    assert!(
        counted > 300,
        "the campaigns needed more than one window: {stats:?}"
    );
    assert!(
        snoozes > 0,
        "the campaigns snoozed for the rate limit: {stats:?}"
    );
    fleet.finish().await;
}

// ---------- 3. pause in enrichment, resume elsewhere ----------

async fn a_campaign_paused_in_enrichment_resumes_elsewhere_without_refetching(backend: Backend) {
    // A little latency from the start, so that enrichment is not over before it is seen.
    let github = GithubConfig {
        latency: Duration::from_millis(10),
        ..GithubConfig::default()
    };
    let fleet = Fleet::start(backend, github, 2_000, false).await;
    let mut first = fleet.worker("first", 1);
    let id = fleet
        .submit(
            GOAL,
            json!({ "min_stars": 5, "volume_interval": 5, "concurrency": 2 }),
        )
        .await;
    // Enrichment slowed down once it starts, so the pause lands in its middle.
    eventually(Duration::from_secs(60), "enrichment to start", || async {
        let job = fleet.job(id).await;
        let progress = job.progress.unwrap_or(Value::Null);
        (progress["stage"] == "enrichment").then_some(())
    })
    .await;
    fleet.sandbox.github.config.lock().unwrap().latency = Duration::from_millis(80);
    eventually(Duration::from_secs(30), "a few profiles read", || async {
        let job = fleet.job(id).await;
        let progress = job.progress.unwrap_or(Value::Null);
        (progress["stage"] == "enrichment" && progress["items_processed"].as_u64() >= Some(4))
            .then_some(())
    })
    .await;
    fleet.post(&format!("/v1/jobs/{id}/pause")).await;
    let paused = eventually(Duration::from_secs(30), "the campaign to pause", || async {
        let job = fleet.job(id).await;
        (job.status == JobStatus::Paused).then_some(job)
    })
    .await;
    let progress = paused.progress.clone().unwrap_or(Value::Null);
    assert_eq!(progress["stage"], "enrichment", "{progress}");
    assert!(
        progress["items_processed"].as_u64() < progress["items_total"].as_u64(),
        "paused in the middle: {progress}"
    );
    first.kill9();
    fleet.sandbox.github.config.lock().unwrap().latency = Duration::ZERO;
    let _second = fleet.worker("second", 1);
    fleet.post(&format!("/v1/jobs/{id}/resume")).await;
    let done = fleet.completed(id).await;
    let result = done.result.clone().expect("a result");
    assert_complete(&fleet.report(id).await, &result);

    let mut fetched: HashMap<String, usize> = HashMap::new();
    for request in fleet.sandbox.log.requests() {
        // Commits are asked per author under one path; profiles and contributors once each.
        let once = request.path.starts_with("/users/") || request.path.ends_with("/contributors");
        if request.service == "github" && request.status == 200 && once {
            *fetched.entry(request.path).or_default() += 1;
        }
    }
    assert!(fetched.keys().any(|p| p.starts_with("/users/")));
    let twice: Vec<_> = fetched.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "fetched twice with a 200: {twice:?}");
    fleet.finish().await;
}

// ---------- 4. an unsubscribe keeps an address out of the next campaign ----------

async fn an_unsubscribe_keeps_the_address_out_of_the_next_campaign(backend: Backend) {
    let fleet = Fleet::start(backend, GithubConfig::default(), 1_000, true).await;
    // This worker serves /metrics, to see the clients' calls counted.
    let probes = free_port();
    let mut command = worker_command(&fleet.url, "worker", 2, fleet.logs.path());
    command
        .envs(fleet.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(["--bind", &format!("127.0.0.1:{probes}")]);
    let _worker = WorkerProcess::spawn("worker", command);
    let goal = "Find 30 Python maintainers active in last 150 days";
    let config = json!({ "send": true, "min_stars": 1, "recontact_after_days": 0 });
    let first = fleet.submit(goal, config.clone()).await;
    fleet.completed(first).await;
    let messages = fleet.sandbox.sink.messages();
    assert!(messages.len() >= 2, "a campaign worth testing");
    let metrics = fleet
        .http
        .get(format!("http://127.0.0.1:{probes}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    let github_ok = metrics
        .lines()
        .find(|l| {
            l.starts_with("drover_external_calls_total{")
                && l.contains("tool=\"github\"")
                && l.contains("outcome=\"ok\"")
        })
        .unwrap_or_else(|| panic!("no github calls counted in:\n{metrics}"));
    let counted: f64 = github_ok
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a count");
    assert!(counted > 0.0, "{github_ok}");
    let message = &messages[0];
    let address = message.to[0].to_lowercase();
    let link = message
        .header("List-Unsubscribe")
        .expect("List-Unsubscribe");
    let link = link.trim_start_matches('<').trim_end_matches('>');
    assert!(
        link.starts_with(&format!("{}/u/", fleet.api.base)),
        "{link}"
    );
    // RFC 8058 one-click, as a mail provider posts it.
    let answer = fleet
        .http
        .post(link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("POST /u/{token}");
    assert_eq!(answer.status().as_u16(), 200);

    let second = fleet.submit(goal, config).await;
    let done = fleet.completed(second).await;
    let rows = fleet.report(second).await;
    assert_complete(&rows, &done.result.clone().expect("a result"));
    let row = rows
        .iter()
        .find(|r| r["email"] == address)
        .expect("the address is found again");
    assert_eq!(row["send_status"], "suppressed", "{row:?}");
    assert!(row["error"].contains("unsubscribed"), "{row:?}");
    assert_eq!(
        fleet.at_sink().get(&address),
        Some(&1),
        "one message, the first"
    );
    // Everybody else was written to again (`recontact_after_days: 0`).
    assert!(rows.iter().any(|r| r["send_status"] == "sent"), "{rows:?}");
    fleet.finish().await;
}

macro_rules! on {
    ($store:ident: $($test:ident),* $(,)?) => {
        mod $store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(drover_queue::testing::Backend::$store()).await
                }
            )*
        }
    };
}

on!(postgres:
    a_worker_killed_while_sending_sends_nobody_two_messages,
    three_workers_share_one_token_without_going_over,
    a_campaign_paused_in_enrichment_resumes_elsewhere_without_refetching,
    an_unsubscribe_keeps_the_address_out_of_the_next_campaign,
);
on!(redis:
    a_worker_killed_while_sending_sends_nobody_two_messages,
    three_workers_share_one_token_without_going_over,
    a_campaign_paused_in_enrichment_resumes_elsewhere_without_refetching,
    an_unsubscribe_keeps_the_address_out_of_the_next_campaign,
);
// One worker process at a time (and the API) on one file: three at once is not a topology
// SQLite is meant for.
on!(sqlite:
    a_worker_killed_while_sending_sends_nobody_two_messages,
    a_campaign_paused_in_enrichment_resumes_elsewhere_without_refetching,
    an_unsubscribe_keeps_the_address_out_of_the_next_campaign,
);
