//! The campaign kind end to end on every store, through its real clients (HTTP to the
//! sandbox's GitHub and chat API, SMTP to its sink), run by a real worker pool.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use drover_queue::testing::Backend;
use drover_queue::{JobId, JobStatus, NewJob, Store, Suppression, SuppressionReason};
use drover_sandbox::{Sandbox, SandboxConfig, WorldConfig};
use drover_worker::{Registry, WorkerOptions};
use drover_workloads::{Secret, Settings, TransportKind};
use serde_json::{json, Value};

const KEY: [u8; 32] = [7; 32];

fn options() -> WorkerOptions {
    WorkerOptions {
        slots: 2,
        lease_ttl: Duration::from_secs(5),
        heartbeat_interval: Duration::from_millis(200),
        poll_interval: Duration::from_millis(100),
        graceful_shutdown: Duration::from_secs(5),
        retry_delay: Duration::from_millis(50),
        max_retry_delay: Duration::from_millis(200),
        ..WorkerOptions::default()
    }
}

async fn sandbox(repos: u64, users: u64) -> Sandbox {
    Sandbox::start(SandboxConfig {
        world: WorldConfig {
            seed: 7,
            repos,
            users,
            now: chrono::Utc::now(),
        },
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox")
}

fn settings(sandbox: &Sandbox, transport: TransportKind, llm: bool) -> Settings {
    Settings {
        github_base_url: sandbox.base_url(),
        github_token: Some(Secret::new("ghp_campaign_test_token")),
        llm_base_url: llm.then(|| format!("{}/v1", sandbox.base_url())),
        llm_api_key: llm.then(|| Secret::new("sk-test")),
        mail_transport: transport,
        smtp_url: Some(Secret::new(format!("smtp://{}", sandbox.smtp))),
        mail_http_url: Some(sandbox.base_url()),
        mail_api_key: Some(Secret::new("re_test")),
        mail_from: Some("Drover Outreach <outreach@drover.test>".into()),
        per_domain_per_minute: 100_000,
        public_url: Some("http://127.0.0.1:9".into()),
        secrets_key: Some(drover_queue::secret::SecretKey::new(KEY)),
        api_timeout: Duration::from_secs(10),
        ..Settings::default()
    }
}

fn registry(settings: &Settings) -> Registry {
    let mut registry = Registry::production();
    drover_workloads::register(&mut registry, settings).expect("register");
    registry
}

/// Checks a campaign as the API would and enqueues it.
async fn submit(store: &Arc<dyn Store>, settings: &Settings, goal: &str, config: Value) -> JobId {
    let job = registry(settings)
        .prepare(NewJob::new("campaign", goal).config(config))
        .expect("a valid campaign");
    store.enqueue(job).await.expect("enqueue").job().id
}

async fn finished(store: &Arc<dyn Store>, id: JobId) -> drover_queue::Job {
    finished_within(store, id, Duration::from_secs(120)).await
}

async fn finished_within(store: &Arc<dyn Store>, id: JobId, within: Duration) -> drover_queue::Job {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let job = store.get(id).await.expect("get");
        if job.status.is_terminal() {
            return job;
        }
        if tokio::time::Instant::now() > deadline {
            let events = store.events(id, 0, 10_000).await.expect("events");
            let tail: Vec<_> = events
                .iter()
                .rev()
                .take(15)
                .map(|e| (&e.kind, &e.data))
                .collect();
            panic!("the campaign did not finish: {job:?}\nlast events: {tail:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The report's rows, as maps of column → value.
async fn report(store: &Arc<dyn Store>, id: JobId) -> Vec<HashMap<String, String>> {
    let artifact = store
        .artifact(id, "report.csv")
        .await
        .expect("artifact")
        .expect("report.csv");
    let mut reader = csv::Reader::from_reader(artifact.data.as_slice());
    let headers = reader.headers().expect("headers").clone();
    reader
        .records()
        .map(|r| {
            let r = r.expect("row");
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

async fn every_lead_with_an_address_gets_one_message(backend: Backend) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("debug,sqlx=warn,hyper=warn,reqwest=warn")
        .try_init();
    let sandbox = sandbox(2_000, 4_000).await;
    let settings = settings(&sandbox, TransportKind::Smtp, false);
    let store = backend.open().await;
    // One address is already unsubscribed: found below, it must get nothing.
    let worker = drover_worker::start(store.clone(), registry(&settings), options());
    let job = NewJob::new(
        "campaign",
        "Find 60 Python maintainers active in last 120 days",
    )
    .config(json!({ "send": true, "volume_interval": 10, "min_stars": 5 }));
    let job = registry(&settings).prepare(job).expect("valid");
    let id = store.enqueue(job).await.expect("enqueue").job().id;
    let done = finished(&store, id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let result = done.result.clone().expect("result");
    let rows = report(&store, id).await;
    assert_eq!(
        rows.len() as u64,
        result["leads"].as_u64().unwrap(),
        "{result}"
    );
    assert!(rows.len() >= 20, "a campaign worth testing: {result}");

    let messages = sandbox.sink.messages();
    let mut at_sink: HashMap<String, usize> = HashMap::new();
    for message in &messages {
        for to in &message.to {
            *at_sink.entry(to.to_lowercase()).or_default() += 1;
        }
    }
    let sent: Vec<&HashMap<String, String>> =
        rows.iter().filter(|r| r["send_status"] == "sent").collect();
    assert!(!sent.is_empty(), "{result}");
    assert_eq!(sent.len() as u64, result["sent"].as_u64().unwrap());
    for row in &sent {
        assert_eq!(
            at_sink.get(&row["email"]),
            Some(&1),
            "one message to {}",
            row["email"]
        );
        assert!(row["message_id"].starts_with('<') && row["message_id"].ends_with("@drover.test>"));
    }
    assert_eq!(
        at_sink.len(),
        sent.len(),
        "the sink got mail only for sent rows"
    );
    for to in at_sink.keys() {
        assert!(
            !to.ends_with("@users.noreply.github.com") && !to.contains("[bot]"),
            "{to}"
        );
    }
    for row in &rows {
        match row["send_status"].as_str() {
            "no_email" => assert!(row["email"].is_empty()),
            "sent" | "duplicate" | "suppressed" => assert!(!row["email"].is_empty()),
            other => panic!("unexpected status {other}: {row:?}"),
        }
    }
    // Headers: a deterministic Message-ID and a one-click unsubscribe link.
    let first = &messages[0];
    let unsubscribe = first.header("List-Unsubscribe").expect("List-Unsubscribe");
    assert!(
        unsubscribe.starts_with("<http://127.0.0.1:9/u/"),
        "{unsubscribe}"
    );
    assert_eq!(
        first.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let token = unsubscribe
        .trim_start_matches("<http://127.0.0.1:9/u/")
        .trim_end_matches('>');
    let address =
        drover_queue::suppress::verify_unsubscribe_token(&KEY, token).expect("a valid token");
    assert_eq!(
        Some(address.as_str()),
        first.to.first().map(|s| s.to_lowercase()).as_deref()
    );

    // A second campaign: the first's recipients were contacted (within 180 days) and one
    // address unsubscribed, so nobody is written to twice.
    store
        .suppress(&Suppression {
            email: address.clone(),
            reason: SuppressionReason::Unsubscribed,
            note: None,
            created_at: chrono::Utc::now(),
        })
        .await
        .expect("suppress");
    let again = NewJob::new(
        "campaign",
        "Find 60 Python maintainers active in last 120 days",
    )
    .config(json!({ "send": true, "min_stars": 5 }));
    let again = store
        .enqueue(registry(&settings).prepare(again).expect("valid"))
        .await
        .expect("enqueue")
        .job()
        .id;
    let second = finished(&store, again).await;
    assert_eq!(second.status, JobStatus::Completed, "{:?}", second.error);
    assert_eq!(
        second.result.as_ref().unwrap()["sent"],
        0,
        "{:?}",
        second.result
    );
    assert_eq!(sandbox.sink.messages().len(), messages.len());
    let rows = report(&store, again).await;
    let unsubscribed = rows
        .iter()
        .find(|r| r["email"] == address)
        .expect("the address");
    assert_eq!(unsubscribed["send_status"], "suppressed");
    assert!(
        unsubscribed["error"].contains("unsubscribed"),
        "{unsubscribed:?}"
    );

    worker.shutdown();
    worker.wait().await;
    backend.cleanup().await;
}

async fn drafts_are_written_by_the_llm_and_nothing_is_sent(backend: Backend) {
    let sandbox = sandbox(1_000, 2_000).await;
    // A transport is configured, but the campaign does not ask to send.
    let settings = settings(&sandbox, TransportKind::Smtp, true);
    let store = backend.open().await;
    let worker = drover_worker::start(store.clone(), registry(&settings), options());
    let job = NewJob::new(
        "campaign",
        "30 Rust maintainers active in the last 200 days",
    )
    .config(json!({ "min_stars": 1 }));
    let id = store
        .enqueue(registry(&settings).prepare(job).expect("valid"))
        .await
        .expect("enqueue")
        .job()
        .id;
    let done = finished(&store, id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let rows = report(&store, id).await;
    let drafted: Vec<_> = rows
        .iter()
        .filter(|r| r["send_status"] == "drafted")
        .collect();
    assert!(!drafted.is_empty(), "{:?}", done.result);
    for row in &drafted {
        assert_eq!(row["personalization"], "llm");
        assert!(!row["body"].is_empty() && !row["subject"].is_empty());
    }
    assert!(sandbox.sink.messages().is_empty(), "drafts only");
    let stats = sandbox.stats();
    assert!(stats.over_budget == 0, "{stats:?}");
    let progress = done.progress.clone().unwrap_or(Value::Null);
    assert!(
        progress["metrics"]["api_calls"].as_u64().unwrap_or(0) > 0,
        "{progress}"
    );
    assert!(
        progress["metrics"]["rate_limit_remaining"]
            .as_u64()
            .is_some(),
        "the token's budget left is in the progress: {progress}"
    );
    worker.shutdown();
    worker.wait().await;
    backend.cleanup().await;
}

/// What the SMTP server and the LLM answer lands in each lead's row: a 550 is `failed`, a
/// connection dropped after DATA is `unknown` (and not sent again by a later attempt), a 450
/// that stays is `failed` after its tries; a 429 from the LLM is retried, and
/// `insufficient_quota` falls back to the templates.
async fn each_lead_records_what_the_servers_answered(backend: Backend) {
    let sandbox = sandbox(2_000, 4_000).await;
    let store = backend.open().await;
    let goal = "Find 40 Python maintainers active in last 120 days";
    // A dry run first, to learn the addresses this goal finds.
    let drafts = settings(&sandbox, TransportKind::None, false);
    let worker = drover_worker::start(store.clone(), registry(&drafts), options());
    let dry = submit(&store, &drafts, goal, json!({ "min_stars": 5 })).await;
    assert_eq!(finished(&store, dry).await.status, JobStatus::Completed);
    worker.shutdown();
    worker.wait().await;
    let addresses: Vec<String> = report(&store, dry)
        .await
        .into_iter()
        .filter(|r| r["send_status"] == "drafted")
        .map(|r| r["email"].clone())
        .collect();
    assert!(addresses.len() >= 6, "{addresses:?}");
    let (rejected, dropped, deferred) = (&addresses[0], &addresses[1], &addresses[2]);
    sandbox
        .sink
        .set_rule(rejected, Some(drover_sandbox::Rule::Reject));
    sandbox
        .sink
        .set_rule(dropped, Some(drover_sandbox::Rule::DropAfterData));
    sandbox
        .sink
        .set_rule(deferred, Some(drover_sandbox::Rule::Defer));
    // The LLM rate-limits every 5th request, then runs out of quota half-way.
    sandbox
        .llm
        .rate_limit_every
        .store(5, std::sync::atomic::Ordering::SeqCst);
    sandbox
        .llm
        .retry_after_ms
        .store(50, std::sync::atomic::Ordering::SeqCst);

    let sending = settings(&sandbox, TransportKind::Smtp, true);
    let worker = drover_worker::start(store.clone(), registry(&sending), options());
    let id = submit(
        &store,
        &sending,
        goal,
        json!({
            "min_stars": 5, "send": true, "concurrency": 1, "volume_interval": 5
        }),
    )
    .await;
    // Out of quota once a few messages went.
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while sandbox.sink.messages().len() < 4 && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sandbox
        .llm
        .out_of_quota
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let done = finished(&store, id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let rows = report(&store, id).await;
    let row = |email: &str| {
        rows.iter()
            .find(|r| r["email"] == email)
            .expect("the row")
            .clone()
    };
    let r = row(rejected);
    assert_eq!(
        (r["send_status"].as_str(), r["error"].as_str()),
        ("failed", "SMTP 550"),
        "{r:?}"
    );
    let d = row(dropped);
    assert_eq!(d["send_status"], "unknown", "{d:?}");
    let q = row(deferred);
    assert_eq!(q["send_status"], "failed", "{q:?}");
    assert!(q["error"].starts_with("SMTP 450"), "{q:?}");
    // The dropped message reached the sink once (it was taken, then the line cut).
    let at_sink = |email: &str| {
        sandbox
            .sink
            .messages()
            .iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(email)))
            .count()
    };
    assert_eq!(at_sink(dropped), 1);
    assert_eq!(at_sink(rejected), 0);
    let sources: std::collections::HashSet<&str> =
        rows.iter().map(|r| r["personalization"].as_str()).collect();
    assert!(
        sources.contains("llm") && sources.contains("template"),
        "{sources:?}"
    );
    let fallback = rows
        .iter()
        .find(|r| r["personalization"] == "template")
        .expect("a template row");
    assert!(
        fallback["error"].contains("insufficient_quota"),
        "{fallback:?}"
    );
    assert_eq!(done.result.as_ref().unwrap()["unknown"], 1);
    worker.shutdown();
    worker.wait().await;
    backend.cleanup().await;
}

/// The daily cap is a fleet-wide budget: past it the campaign snoozes to the next UTC
/// midnight instead of failing or sending more.
async fn the_daily_cap_snoozes_the_campaign_until_midnight(backend: Backend) {
    let sandbox = sandbox(2_000, 4_000).await;
    let mut capped = settings(&sandbox, TransportKind::Smtp, false);
    capped.daily_cap = Some(3);
    let store = backend.open().await;
    let worker = drover_worker::start(store.clone(), registry(&capped), options());
    let job = registry(&capped)
        .prepare(
            NewJob::new(
                "campaign",
                "Find 40 Python maintainers active in last 120 days",
            )
            .config(json!({ "min_stars": 5, "send": true, "concurrency": 1 })),
        )
        .expect("valid");
    let id = store.enqueue(job).await.expect("enqueue").job().id;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let snoozed = loop {
        let job = store.get(id).await.expect("get");
        if job.status == JobStatus::Queued
            && job.run_at > chrono::Utc::now() + chrono::Duration::seconds(60)
        {
            break job;
        }
        assert!(!job.status.is_terminal(), "{job:?}");
        assert!(tokio::time::Instant::now() < deadline, "no snooze: {job:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let midnight = (chrono::Utc::now().date_naive() + chrono::Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    assert!(
        snoozed.run_at >= midnight,
        "{:?} before {midnight}",
        snoozed.run_at
    );
    assert_eq!(sandbox.sink.messages().len(), 3, "exactly the cap");
    let events = store.events(id, 0, 10_000).await.expect("events");
    assert!(
        events
            .iter()
            .any(|e| e.kind == "status" && e.data.to_string().contains("mail:daily")),
        "the snooze says why"
    );
    worker.shutdown();
    worker.wait().await;
    backend.cleanup().await;
}

macro_rules! on_every_store {
    ($($test:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $test() { super::$test(drover_queue::testing::Backend::sqlite()).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $test() { super::$test(drover_queue::testing::Backend::postgres()).await } )* }
        mod redis { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $test() { super::$test(drover_queue::testing::Backend::redis()).await } )* }
    };
}

on_every_store!(
    every_lead_with_an_address_gets_one_message,
    drafts_are_written_by_the_llm_and_nothing_is_sent,
    each_lead_records_what_the_servers_answered,
    the_daily_cap_snoozes_the_campaign_until_midnight,
);

/// SPEC §7.2's scale in one job: 10,000 leads, drafted, on every store.
async fn ten_thousand_leads_complete_in_one_job(backend: Backend) {
    let sandbox = Sandbox::start(SandboxConfig {
        world: WorldConfig {
            seed: 11,
            repos: 24_000,
            users: 60_000,
            now: chrono::Utc::now(),
        },
        github: drover_sandbox::GithubConfig {
            core_limit: 10_000_000,
            search_limit: 100_000,
            ..drover_sandbox::GithubConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let settings = settings(&sandbox, TransportKind::None, false);
    let store = backend.open().await;
    let worker = drover_worker::start(store.clone(), registry(&settings), options());
    let id = submit(
        &store,
        &settings,
        "10k maintainers",
        json!({
            "languages": ["Python", "Rust", "Go", "JavaScript", "TypeScript"],
            "count": 10_000,
            "max_repos": 12_000,
            "min_stars": 0,
            "activity_days": 400,
            "maintainers_per_repo": 2,
            "concurrency": 16,
        }),
    )
    .await;
    let done = finished_within(&store, id, Duration::from_secs(600)).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let result = done.result.clone().expect("result");
    assert_eq!(result["leads"], 10_000, "{result}");
    let rows = report(&store, id).await;
    assert_eq!(rows.len(), 10_000);
    let logins: std::collections::HashSet<&str> =
        rows.iter().map(|r| r["login"].as_str()).collect();
    assert_eq!(logins.len(), 10_000, "no lead twice");
    assert_eq!(
        rows.iter()
            .filter(|r| r["send_status"] == "drafted")
            .count() as u64,
        result["drafted"].as_u64().unwrap()
    );
    assert_eq!(sandbox.stats().over_budget, 0);
    worker.shutdown();
    worker.wait().await;
    backend.cleanup().await;
}

mod scale {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_ten_thousand_leads() {
        ten_thousand_leads_complete_in_one_job(Backend::sqlite()).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_ten_thousand_leads() {
        ten_thousand_leads_complete_in_one_job(Backend::postgres()).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_ten_thousand_leads() {
        ten_thousand_leads_complete_in_one_job(Backend::redis()).await
    }
}
