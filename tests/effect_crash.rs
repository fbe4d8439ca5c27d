//! The effect window under real process crashes, on PostgreSQL, a shared SQLite file and
//! Redis, in both `demo` effect modes (`retry`: `ctx.effect`; `once`: `ctx.effect_once`).
//!
//! Crash points, each for item 0 of a 3-item demo job whose map writes no checkpoint (so
//! the resumed run walks item 0 again and only the effect ledger stands between it and a
//! repeat):
//! 1. SIGKILL before the intent (in the item's delay): nothing was sent; the successor
//!    sends each item once.
//! 2. SIGKILL with the request in flight (the server holds it): `retry` sends it again with
//!    the same `Idempotency-Key`; `once` never sends it again and reports it unknown.
//! 3. SIGSTOP on arrival, the server answers, then SIGKILL (answered, outcome not recorded):
//!    as 2.
//! 4. SIGKILL after the outcome was recorded: never sent again.
//!
//! SIGSTOP: stopped before the intent, the lease is lost, another worker finishes, SIGCONT:
//! the stale worker sends nothing and writes nothing. Stopped with its request in flight,
//! SIGCONT after another worker took over: its outcome write is refused and it sends nothing
//! more.

mod common;

#[path = "../worker/tests/support/effect_server.rs"]
mod effect_server;

use std::time::Duration;

use common::*;
use drover_queue::{Job, JobId, NewJob, Store};
use effect_server::{Delivery, EffectServer};
use serde_json::{json, Value};

const ITEMS: u64 = 3;

enum Backend {
    Postgres(String),
    Sqlite(tempfile::TempDir),
    Redis(String),
}

impl Backend {
    fn url(&self) -> String {
        match self {
            Backend::Postgres(url) => url.clone(),
            Backend::Sqlite(dir) => format!("sqlite://{}", dir.path().join("shared.db").display()),
            Backend::Redis(prefix) => {
                format!("{}/?prefix={prefix}", drover_queue::testing::redis_url())
            }
        }
    }

    async fn cleanup(self) {
        match &self {
            Backend::Postgres(url) => drop_schema(url).await,
            Backend::Redis(prefix) => drover_queue::testing::drop_prefix(prefix).await,
            Backend::Sqlite(_) => {}
        }
    }
}

fn postgres() -> Backend {
    Backend::Postgres(pg_schema_url(&pg_url()))
}

fn sqlite() -> Backend {
    Backend::Sqlite(tempfile::tempdir().expect("temp dir"))
}

fn redis() -> Backend {
    Backend::Redis(format!("t_{}", uuid::Uuid::now_v7().simple()))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Retry,
    Once,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Retry => "retry",
            Mode::Once => "once",
        }
    }
}

/// A running scenario: the store, the effect server, the job and its workers' log dir.
struct Run {
    backend: Backend,
    url: String,
    store: std::sync::Arc<dyn Store>,
    server: EffectServer,
    logs: tempfile::TempDir,
    id: JobId,
}

impl Run {
    /// Starts worker `victim`, then enqueues the job (the server holding requests if `hold`).
    async fn start(backend: Backend, mode: Mode, item_ms: u64, hold: bool) -> (Run, WorkerProcess) {
        let server = EffectServer::start().await;
        if hold {
            server.hold();
        }
        let url = backend.url();
        let store = open(&url).await;
        let logs = tempfile::tempdir().expect("temp dir");
        let victim = spawn_worker(&url, "victim", 1, logs.path());
        let id = store
            .enqueue(NewJob::new("demo", "effect window").config(json!({
                "items": ITEMS, "item_ms": item_ms, "checkpoint_every": 1000,
                "effect_url": server.url, "effect_mode": mode.name(),
            })))
            .await
            .expect("enqueue")
            .job()
            .id;
        let run = Run {
            backend,
            url,
            store,
            server,
            logs,
            id,
        };
        (run, victim)
    }

    fn key(&self, item: u64) -> String {
        format!("{}/{item}", self.id)
    }

    async fn job(&self) -> Job {
        self.store.get(self.id).await.expect("get")
    }

    async fn owned_by(&self, worker: &str) -> Job {
        eventually(
            Duration::from_secs(20),
            &format!("{worker} to hold the job"),
            || async {
                let job = self.job().await;
                (job.lease_owner.as_deref() == Some(worker)).then_some(job)
            },
        )
        .await
    }

    async fn finished(&self) -> Job {
        let done = eventually(Duration::from_secs(25), "the job to finish", || async {
            let job = self.job().await;
            job.status.is_terminal().then_some(job)
        })
        .await;
        assert_eq!(done.status, drover_queue::JobStatus::Completed, "{done:?}");
        done
    }

    fn survivor(&self) -> WorkerProcess {
        spawn_worker(&self.url, "survivor", 1, self.logs.path())
    }

    async fn events(&self) -> usize {
        self.store
            .events(self.id, 0, 100_000)
            .await
            .expect("events")
            .len()
    }

    async fn victim_noticed(&self) {
        eventually(
            Duration::from_secs(20),
            "the stale worker to notice its lost lease",
            || async {
                std::fs::read_to_string(self.logs.path().join("victim.log"))
                    .map(|log| log.contains("lease lost"))
                    .unwrap_or(false)
                    .then_some(())
            },
        )
        .await;
    }

    /// How many times `item`'s key arrived, and from which attempts.
    fn arrivals(&self, item: u64) -> Vec<u32> {
        let key = self.key(item);
        self.server
            .deliveries()
            .iter()
            .filter(|d| d.key == key)
            .map(|d| d.attempt)
            .collect()
    }

    /// Items 1.. each arrived exactly once, from the survivor's attempt, and the survivor
    /// got every answer.
    fn assert_rest_once(&self) {
        for item in 1..ITEMS {
            assert_eq!(self.arrivals(item), vec![2], "item {item}");
        }
        let survivor = self.server.deliveries();
        assert!(
            survivor
                .iter()
                .filter(|d| d.attempt == 2)
                .all(|d| d.answered),
            "{survivor:?}"
        );
    }

    async fn cleanup(self) {
        self.backend.cleanup().await;
    }
}

fn plain_result() -> Value {
    json!({ "items_processed": ITEMS })
}

/// 1. SIGKILL in item 0's delay, before its intent.
async fn kill_before_intent(backend: Backend, mode: Mode) {
    let (run, mut victim) = Run::start(backend, mode, 1500, false).await;
    run.owned_by("victim").await;
    victim.kill9();
    assert!(run.server.deliveries().is_empty(), "killed before any POST");
    let _survivor = run.survivor();
    let done = run.finished().await;
    assert_eq!(done.result, Some(plain_result()));
    assert_eq!(run.arrivals(0), vec![2]);
    run.assert_rest_once();
    run.cleanup().await;
}

/// The outcome after a crash between the intent and the outcome record of item 0.
async fn assert_unknown_outcome(run: &Run, mode: Mode, done: &Job) {
    match mode {
        Mode::Retry => {
            assert_eq!(done.result, Some(plain_result()));
            // Sent again, with the same Idempotency-Key: one delivery by key at the far side.
            assert_eq!(run.arrivals(0), vec![1, 2]);
        }
        Mode::Once => {
            assert_eq!(
                done.result,
                Some(json!({ "items_processed": ITEMS, "unknown_items": [0] }))
            );
            assert_eq!(run.arrivals(0), vec![1], "never sent again");
            let effects = run.store.effects(run.id).await.expect("effects");
            let item0 = effects
                .iter()
                .find(|e| e.key == "item-0")
                .expect("item-0 recorded");
            assert_eq!(item0.result, json!({ "$unknown": true }));
        }
    }
    run.assert_rest_once();
}

/// 2. SIGKILL while item 0's request is held by the server (intent recorded, in flight).
async fn kill_in_flight(backend: Backend, mode: Mode) {
    let (run, mut victim) = Run::start(backend, mode, 0, true).await;
    run.server.arrived(&run.key(0), 1).await;
    victim.kill9();
    run.server.release();
    let _survivor = run.survivor();
    let done = run.finished().await;
    assert_unknown_outcome(&run, mode, &done).await;
    run.cleanup().await;
}

/// 3. SIGSTOP when item 0's request arrives, the server answers, then SIGKILL: answered,
///    outcome not recorded.
async fn kill_after_answer(backend: Backend, mode: Mode) {
    let (run, mut victim) = Run::start(backend, mode, 0, true).await;
    let key = run.key(0);
    run.server.arrived(&key, 1).await;
    victim.signal(libc::SIGSTOP);
    run.server.release();
    run.server
        .until(
            Duration::from_secs(10),
            "item 0 answered",
            |ds: &[Delivery]| ds.iter().any(|d| d.key == key && d.answered),
        )
        .await;
    victim.kill9();
    let effects = run.store.effects(run.id).await.expect("effects");
    assert!(
        !effects.iter().any(|e| e.key == "item-0"),
        "the stopped worker recorded no outcome: {effects:?}"
    );
    assert!(effects.iter().any(|e| e.key == "intent:item-0"));
    let _survivor = run.survivor();
    let done = run.finished().await;
    assert_unknown_outcome(&run, mode, &done).await;
    run.cleanup().await;
}

/// 4. SIGKILL after item 0's outcome was recorded (in item 1's delay).
async fn kill_after_outcome(backend: Backend, mode: Mode) {
    let (run, mut victim) = Run::start(backend, mode, 1500, false).await;
    eventually(
        Duration::from_secs(20),
        "item 0's outcome recorded",
        || async {
            let effects = run.store.effects(run.id).await.expect("effects");
            effects.iter().any(|e| e.key == "item-0").then_some(())
        },
    )
    .await;
    victim.kill9();
    assert_eq!(run.server.deliveries().len(), 1, "only item 0 was sent");
    let _survivor = run.survivor();
    let done = run.finished().await;
    assert_eq!(done.result, Some(plain_result()));
    assert_eq!(run.arrivals(0), vec![1], "not repeated");
    run.assert_rest_once();
    run.cleanup().await;
}

/// SIGSTOP before item 0's intent; another worker finishes; SIGCONT: nothing sent or written.
async fn stopped_before_intent(backend: Backend, mode: Mode) {
    let (run, victim) = Run::start(backend, mode, 1500, false).await;
    run.owned_by("victim").await;
    victim.signal(libc::SIGSTOP);
    assert!(
        run.server.deliveries().is_empty(),
        "stopped before any POST"
    );
    let _survivor = run.survivor();
    let done = run.finished().await;
    let events = run.events().await;
    victim.signal(libc::SIGCONT);
    run.victim_noticed().await;
    assert_eq!(done.result, Some(plain_result()));
    assert_eq!(run.arrivals(0), vec![2], "the stale worker sent nothing");
    run.assert_rest_once();
    let after = run.job().await;
    assert_eq!(
        (after.status, after.attempt, after.result.clone()),
        (done.status, done.attempt, done.result.clone())
    );
    assert_eq!(
        run.events().await,
        events,
        "the stale worker wrote no event"
    );
    drop(victim);
    run.cleanup().await;
}

/// SIGSTOP with item 0's request in flight; another worker takes over and finishes; SIGCONT:
/// the stale worker's outcome write is refused and it sends nothing more.
async fn stopped_in_flight(backend: Backend, mode: Mode) {
    let (run, victim) = Run::start(backend, mode, 0, true).await;
    run.server.arrived(&run.key(0), 1).await;
    victim.signal(libc::SIGSTOP);
    let _survivor = run.survivor();
    run.owned_by("survivor").await;
    run.server.release();
    let done = run.finished().await;
    let events = run.events().await;
    victim.signal(libc::SIGCONT);
    run.victim_noticed().await;
    assert_unknown_outcome(&run, mode, &done).await;
    let from_victim = run
        .server
        .deliveries()
        .iter()
        .filter(|d| d.attempt == 1)
        .count();
    assert_eq!(from_victim, 1, "the stale worker started no further effect");
    let effects = run.store.effects(run.id).await.expect("effects");
    assert!(
        effects
            .iter()
            .all(|e| e.epoch >= 2 || e.key == "intent:item-0"),
        "only the first intent is the stale worker's: {effects:?}"
    );
    assert_eq!(
        run.events().await,
        events,
        "the stale worker wrote no event"
    );
    drop(victim);
    run.cleanup().await;
}

macro_rules! on_every_store {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_retry() {
                super::$scenario(postgres(), Mode::Retry).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_once() {
                super::$scenario(postgres(), Mode::Once).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_retry() {
                super::$scenario(sqlite(), Mode::Retry).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_once() {
                super::$scenario(sqlite(), Mode::Once).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_retry() {
                super::$scenario(redis(), Mode::Retry).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_once() {
                super::$scenario(redis(), Mode::Once).await;
            }
        }
    };
}

on_every_store!(kill_before_intent);
on_every_store!(kill_in_flight);
on_every_store!(kill_after_answer);
on_every_store!(kill_after_outcome);
on_every_store!(stopped_before_intent);
on_every_store!(stopped_in_flight);
