//! The graph API's promises: a malformed graph fails when the kind is built, not hours into
//! a run; map items retried, or skipped and listed; per-step retries and timeouts; map
//! concurrency per job; finished branches not re-run; checkpoints of another graph version
//! or over other items refused. In-process, on every backend.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_queue::testing::Backend;
use drover_queue::{FailureKind, JobStatus, NewJob};
use drover_worker::graph::{branch, Graph, GraphKind, MapStep, Next, Once, StepContext};
use drover_worker::{JobError, Registry};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use support::{is, options, setup};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Bag {
    outputs: Vec<i64>,
    notes: Vec<String>,
}

fn noop_task(g: Graph<Bag>, name: &'static str) -> Graph<Bag> {
    g.task(name, |_ctx, s: Bag| async move { Ok(s) })
}

#[test]
fn malformed_graphs_are_refused_when_built() {
    let two = || noop_task(noop_task(Graph::<Bag>::new(), "a"), "b");
    let cases: Vec<(Graph<Bag>, &str)> = vec![
        (Graph::new(), "at least one step"),
        (two().edge("a", "nowhere"), "unknown step `nowhere`"),
        (two().edge("zz", "b"), "edge names unknown step `zz`"),
        (
            two().edge_when("a", ["b", "gone"], |_| Next::Step("b")),
            "unknown step `gone`",
        ),
        (two().end("zz"), "end names unknown step `zz`"),
        (two().risky("zz"), "risky names unknown step `zz`"),
        (
            two().timeout("zz", Duration::from_secs(1)),
            "timeout names unknown step `zz`",
        ),
        (two().retry("zz", 2), "retry names unknown step `zz`"),
        (noop_task(two(), "a"), "`a` is added twice"),
        (
            two().map(
                "m",
                MapStep::over_outputs(
                    "a",
                    |_, outputs| outputs,
                    |_ctx, _i, v| async move { Ok(v) },
                ),
            ),
            "map `m` reads the outputs of `a`, which is not a map step",
        ),
    ];
    for (graph, expected) in cases {
        let problem = graph.validate().expect_err(expected);
        assert!(
            problem.contains(expected),
            "{problem:?} should say {expected:?}"
        );
    }
    assert!(two()
        .edge_when("a", ["b"], |_| Next::End)
        .validate()
        .is_ok());
    let built = std::panic::catch_unwind(|| {
        GraphKind::new("broken", two().edge("a", "nowhere"), |_| Ok(Bag::default()))
    });
    assert!(built.is_err(), "GraphKind::new refuses a malformed graph");
}

/// Counts runs per key across a test.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<HashMap<String, usize>>>);

impl Runs {
    /// Counts one more run of `key`; returns how many there have been, this one included.
    fn bump(&self, key: impl Into<String>) -> usize {
        let mut runs = self.0.lock().expect("runs");
        let n = runs.entry(key.into()).or_default();
        *n += 1;
        *n
    }

    fn of(&self, key: &str) -> usize {
        self.0.lock().expect("runs").get(key).copied().unwrap_or(0)
    }
}

/// A map over 10 items: items 3 and 7 always fail, item 5 fails transiently twice before it
/// succeeds (three tries), at most `config.concurrency` items at once.
fn picky(runs: Runs, peak: Arc<AtomicUsize>) -> GraphKind<Bag> {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let map = MapStep::new(
        |_: &Bag| (0..10).map(Value::from).collect(),
        move |ctx: StepContext, i, _item| {
            let (runs, peak, in_flight) = (runs.clone(), peak.clone(), in_flight.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let slept = ctx.sleep(Duration::from_millis(30)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                slept?;
                let tries = runs.bump(format!("item-{i}"));
                match i {
                    3 | 7 => Err(JobError::Permanent(format!("item {i} is bad"))),
                    5 if tries < 3 => Err(JobError::Transient("flaky".into())),
                    _ => Ok(json!(i)),
                }
            }
        },
    )
    .concurrency_from(|job| job.config["concurrency"].as_u64().unwrap_or(1) as usize)
    .retry_items(3, Duration::from_millis(10))
    .skip_failed_items()
    .fold(|s: &mut Bag, _, out| s.outputs.push(out.as_i64().unwrap_or(-1)));
    GraphKind::new("picky", Graph::new().map("each", map), |_| {
        Ok(Bag::default())
    })
    .max_attempts(1)
}

/// A task that fails transiently once (retried in the run), and one that times out.
fn flaky(runs: Runs) -> GraphKind<Bag> {
    let graph = Graph::new()
        .task("flaky", move |ctx: StepContext, mut s: Bag| {
            let runs = runs.clone();
            async move {
                if runs.bump("flaky") == 1 {
                    return Err(JobError::Transient("the first try fails".into()));
                }
                s.notes
                    .push(format!("flaky ok on attempt {}", ctx.attempt()));
                Ok(s)
            }
        })
        .task("slow", |ctx: StepContext, s: Bag| async move {
            if ctx.job().goal == "slow" {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            Ok(s)
        })
        .retry("flaky", 2)
        .timeout("slow", Duration::from_millis(200));
    GraphKind::new("flaky", graph, |_| Ok(Bag::default())).max_attempts(1)
}

/// A fan-out whose branch `b` fails transiently on the job's first attempt: the retried
/// job must not run branch `a` again.
fn fork(runs: Runs) -> GraphKind<Bag> {
    let (ra, rb) = (runs.clone(), runs);
    let graph = Graph::new().parallel(
        "fork",
        vec![
            branch("a", move |_ctx: StepContext, _s: Bag| {
                let runs = ra.clone();
                async move {
                    runs.bump("a");
                    Ok(json!(1))
                }
            }),
            branch("b", move |ctx: StepContext, _s: Bag| {
                let runs = rb.clone();
                async move {
                    runs.bump("b");
                    ctx.sleep(Duration::from_millis(50)).await?;
                    if ctx.attempt() == 1 {
                        return Err(JobError::Transient("board b is down".into()));
                    }
                    Ok(json!(2))
                }
            }),
        ],
        |mut s: Bag, outputs| {
            s.outputs = outputs.iter().filter_map(Value::as_i64).collect();
            Ok(s)
        },
    );
    GraphKind::new("fork", graph, |_| Ok(Bag::default())).max_attempts(2)
}

/// `walk` over `config.items` items, 80 ms each, checkpointing every 2; the graph is at
/// `version`, and `items_offset` shifts the items it walks (a changed item list).
fn walker(version: u32, items_offset: i64, migrate: bool) -> GraphKind<Bag> {
    let map = MapStep::new(
        move |_: &Bag| (0..8).map(|i| Value::from(i + items_offset)).collect(),
        |ctx: StepContext, _i, item| async move {
            ctx.sleep(Duration::from_millis(80)).await?;
            Ok(item)
        },
    )
    .fold(|s: &mut Bag, _, out| s.outputs.push(out.as_i64().unwrap_or(-1)));
    let graph = Graph::new().map("walk", map).version(version);
    let kind = GraphKind::new("walker", graph, |_| Ok(Bag::default())).policy(|_| {
        drover_worker::graph::CheckpointPolicy {
            every_items: Some(2),
            ..Default::default()
        }
    });
    if migrate {
        kind.migrate(1, |mut state| {
            state["notes"] = json!(["migrated from version 1"]);
            Ok(state)
        })
    } else {
        kind
    }
}

/// A state JSON cannot hold: a map with tuple keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Unwritable {
    cells: HashMap<(i32, i32), i32>,
}

fn unwritable() -> GraphKind<Unwritable> {
    let graph = Graph::new().task("fill", |_ctx, mut s: Unwritable| async move {
        s.cells.insert((1, 2), 3);
        Ok(s)
    });
    GraphKind::new("unwritable", graph, |_| Ok(Unwritable::default())).max_attempts(1)
}

/// Three items, each an effect (`effect_once` when `config.once`, else `effect`); item 1's
/// first try performs it and then fails transiently, as a connection dropped after the
/// server took the message would.
fn mailer(runs: Runs) -> GraphKind<Bag> {
    let map = MapStep::new(
        |_: &Bag| (0..3).map(Value::from).collect(),
        move |ctx: StepContext, i, _item| {
            let runs = runs.clone();
            async move {
                let key = format!("mail-{i}");
                let attempt = ctx.attempt();
                let perform = || {
                    let runs = runs.clone();
                    let key = key.clone();
                    async move {
                        runs.bump(key.as_str());
                        if i == 1 && attempt == 1 {
                            return Err(JobError::Transient(
                                "connection dropped after DATA".into(),
                            ));
                        }
                        Ok(json!({ "sent": i }))
                    }
                };
                if ctx.config()["once"] == json!(true) {
                    match ctx.effect_once(&key, perform).await? {
                        Once::Done(_) => Ok(json!("sent")),
                        Once::Unknown => Ok(json!("unknown")),
                    }
                } else {
                    ctx.effect(&key, perform).await.map(|_| json!("sent"))
                }
            }
        },
    )
    .fold(|s: &mut Bag, i, out| s.notes.push(format!("{i}:{}", out.as_str().unwrap_or("?"))));
    GraphKind::new("mailer", Graph::new().map("send", map), |_| {
        Ok(Bag::default())
    })
    .max_attempts(2)
}

fn registry_with(kinds: impl FnOnce(&mut Registry)) -> Registry {
    let mut registry = Registry::with_test_kinds();
    kinds(&mut registry);
    registry
}

async fn failed_items_are_retried_or_skipped_and_listed(backend: Backend) {
    let runs = Runs::default();
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (runs.clone(), peak.clone());
    let s = setup(
        backend,
        registry_with(|reg| {
            reg.register(picky(r, p));
        }),
        options(2),
    )
    .await;
    let id = s
        .submit(NewJob::new("picky", "skip the bad ones").config(json!({"concurrency": 3})))
        .await;
    let job = s.finished(id).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(job.attempt, 1, "item failures did not retry the job");
    let result = job.result.expect("result");
    let mut outputs: Vec<i64> = serde_json::from_value(result["outputs"].clone()).expect("outputs");
    outputs.sort_unstable();
    assert_eq!(outputs, [0, 1, 2, 4, 5, 6, 8, 9]);
    let failed: Vec<(String, u64)> = result["failed_items"]
        .as_array()
        .expect("failed_items listed in the result")
        .iter()
        .map(|f| {
            (
                f["step"].as_str().unwrap_or("").to_string(),
                f["item"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    let mut failed_items: Vec<u64> = failed.iter().map(|(_, i)| *i).collect();
    failed_items.sort_unstable();
    assert_eq!(failed_items, [3, 7]);
    assert!(failed.iter().all(|(step, _)| step == "each"));
    assert_eq!(runs.of("item-5"), 3, "the flaky item ran three times");
    assert_eq!(runs.of("item-3"), 1, "a permanent failure is not retried");
    assert_eq!(
        peak.load(Ordering::SeqCst),
        3,
        "concurrency from the job's config"
    );
    s.stop().await;
}

async fn steps_retry_in_the_run_and_time_out_alone(backend: Backend) {
    let runs = Runs::default();
    let r = runs.clone();
    let s = setup(
        backend,
        registry_with(|reg| {
            reg.register(flaky(r));
        }),
        options(2),
    )
    .await;
    let id = s.submit(NewJob::new("flaky", "fast")).await;
    let job = s.finished(id).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(job.attempt, 1, "the step's retry did not use a job attempt");
    assert_eq!(runs.of("flaky"), 2);
    assert_eq!(
        job.result.expect("result")["notes"],
        json!(["flaky ok on attempt 1"])
    );

    let id = s.submit(NewJob::new("flaky", "slow")).await;
    let job = s.finished(id).await;
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.error.expect("error");
    assert_eq!(error.kind, FailureKind::Timeout, "{error:?}");
    s.stop().await;
}

async fn finished_branches_are_not_run_again(backend: Backend) {
    let runs = Runs::default();
    let r = runs.clone();
    let s = setup(
        backend,
        registry_with(|reg| {
            reg.register(fork(r));
        }),
        options(2),
    )
    .await;
    let id = s.submit(NewJob::new("fork", "two boards")).await;
    let job = s.finished(id).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(job.attempt, 2);
    assert_eq!(job.result.expect("result")["outputs"], json!([1, 2]));
    assert_eq!(runs.of("a"), 1, "the branch that finished ran once");
    assert_eq!(runs.of("b"), 2);
    s.stop().await;
}

/// Pauses a `walker` job after a few items, then resumes it on a worker running `next`.
async fn resume_walker_on(backend: Backend, next: GraphKind<Bag>) -> drover_queue::Job {
    let s = setup(
        backend,
        registry_with(|reg| {
            reg.register(walker(1, 0, false));
        }),
        options(1),
    )
    .await;
    let id = s.submit(NewJob::new("walker", "walk")).await;
    s.until(id, "a checkpoint mid-map", |job| {
        job.progress
            .as_ref()
            .and_then(|p| p["items_processed"].as_u64())
            .is_some_and(|n| n >= 3)
    })
    .await;
    s.store.pause(id).await.expect("pause");
    s.until(id, "the pause", is(JobStatus::Paused)).await;
    s.worker.shutdown();
    let store = s.store.clone();
    let backend = s.backend;
    s.worker.wait().await;
    let worker = drover_worker::start(
        store.clone(),
        registry_with(|reg| {
            reg.register(next);
        }),
        options(1),
    );
    store.resume(id).await.expect("resume");
    let job = drover_queue::testing::eventually(Duration::from_secs(30), "the end", || async {
        let job = store.get(id).await.expect("get");
        job.status.is_terminal().then_some(job)
    })
    .await;
    worker.shutdown();
    worker.wait().await;
    backend.cleanup().await;
    job
}

async fn checkpoints_of_another_version_or_other_items_are_refused(backend: Backend) {
    let job = resume_walker_on(backend, walker(2, 0, false)).await;
    assert_eq!(job.status, JobStatus::Failed);
    let message = job.error.expect("error").message;
    assert!(
        message.contains("graph version 1") && message.contains("no migration"),
        "{message}"
    );
}

async fn a_registered_migration_resumes_an_older_checkpoint(backend: Backend) {
    let job = resume_walker_on(backend, walker(2, 0, true)).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    let result = job.result.expect("result");
    assert_eq!(result["notes"], json!(["migrated from version 1"]));
    let mut outputs: Vec<i64> = serde_json::from_value(result["outputs"].clone()).expect("outputs");
    outputs.sort_unstable();
    assert_eq!(
        outputs,
        (0..8).collect::<Vec<i64>>(),
        "no item twice or lost"
    );
}

async fn a_map_whose_items_changed_is_not_resumed(backend: Backend) {
    let job = resume_walker_on(backend, walker(1, 100, false)).await;
    assert_eq!(job.status, JobStatus::Failed);
    let message = job.error.expect("error").message;
    assert!(message.contains("items changed"), "{message}");
}

async fn a_state_that_does_not_serialize_fails_the_job(backend: Backend) {
    let s = setup(
        backend,
        registry_with(|reg| {
            reg.register(unwritable());
        }),
        options(1),
    )
    .await;
    let id = s.submit(NewJob::new("unwritable", "fill")).await;
    let job = s.finished(id).await;
    assert_eq!(
        job.status,
        JobStatus::Failed,
        "not completed with a null result"
    );
    assert_eq!(job.result, None);
    let error = job.error.expect("error");
    assert!(
        error.message.contains("does not serialize"),
        "{}",
        error.message
    );
    s.stop().await;
}

async fn effects_whose_outcome_is_unknown_are_never_guessed(backend: Backend) {
    let runs = Runs::default();
    let r = runs.clone();
    let s = setup(
        backend,
        registry_with(|reg| {
            reg.register(mailer(r));
        }),
        options(1),
    )
    .await;

    // effect_once: the item whose outcome is unknown is recorded so, never performed again.
    let id = s
        .submit(NewJob::new("mailer", "once").config(json!({"once": true})))
        .await;
    let job = s.finished(id).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(job.attempt, 2);
    let mut notes: Vec<String> =
        serde_json::from_value(job.result.expect("result")["notes"].clone()).expect("notes");
    notes.sort();
    assert_eq!(notes, ["0:sent", "1:unknown", "2:sent"]);
    for key in ["mail-0", "mail-1", "mail-2"] {
        assert_eq!(runs.of(key), 1, "{key} performed once");
    }
    let ledger: HashMap<String, Value> = s
        .store
        .effects(id)
        .await
        .expect("effects")
        .into_iter()
        .map(|e| (e.key, e.result))
        .collect();
    assert_eq!(ledger["mail-1"], json!({"$unknown": true}));
    for key in ["intent:mail-0", "intent:mail-1", "intent:mail-2"] {
        assert!(ledger.contains_key(key), "{key} recorded before performing");
    }

    // effect: the other side is idempotent, so the unknown one is performed again.
    let runs_before = runs.of("mail-1");
    let id = s.submit(NewJob::new("mailer", "idempotent")).await;
    let job = s.finished(id).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(
        runs.of("mail-1") - runs_before,
        2,
        "retried after the unknown outcome"
    );
    s.stop().await;
}

/// `numbers` maps 0..20 to their squares; `evens` maps over those outputs (read back from
/// the store, the state never holding them), keeping the even ones; a checkpoint every 3
/// items, so both maps' outputs are stored in several checkpoints and the last ones with
/// the step boundary's.
fn pipeline(seen: Arc<Mutex<Vec<i64>>>) -> GraphKind<Bag> {
    let first = MapStep::new(
        |_: &Bag| (0..20).map(Value::from).collect(),
        |_ctx, _i, item: Value| async move { Ok(json!(item.as_i64().unwrap_or(0).pow(2))) },
    )
    .concurrency(4);
    let second = MapStep::over_outputs(
        "numbers",
        |_: &Bag, outputs| {
            outputs
                .into_iter()
                .filter(|v| v.as_i64().unwrap_or(1) % 2 == 0)
                .collect()
        },
        move |_ctx, _i, item: Value| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("seen").push(item.as_i64().unwrap_or(-1));
                Ok(item)
            }
        },
    )
    .fold(|bag: &mut Bag, _i, v| bag.outputs.push(v.as_i64().unwrap_or(-1)));
    let graph = Graph::new().map("numbers", first).map("evens", second);
    GraphKind::new("pipeline", graph, |_| Ok(Bag::default())).policy(|_| {
        drover_worker::graph::CheckpointPolicy {
            every_items: Some(3),
            ..Default::default()
        }
    })
}

async fn a_map_over_an_earlier_maps_outputs_sees_each_once_in_order(backend: Backend) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = setup(
        backend,
        registry_with(|r| {
            r.register(pipeline(seen.clone()));
        }),
        options(2),
    )
    .await;
    let id = s.submit(NewJob::new("pipeline", "squares")).await;
    let job = s.finished(id).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    let evens: Vec<i64> = (0..20).map(|i: i64| i * i).filter(|v| v % 2 == 0).collect();
    assert_eq!(job.result.expect("result")["outputs"], json!(evens));
    let mut seen = seen.lock().expect("seen").clone();
    seen.sort_unstable();
    assert_eq!(seen, evens, "each item once");
    // The state never carried the first map's outputs: its checkpoints stay small.
    let checkpoints = s.store.checkpoints(id).await.expect("checkpoints");
    assert!(checkpoints.iter().all(|c| c.size < 400), "{checkpoints:?}");
    s.stop().await;
}

drover_queue::on_every_backend!(
    a_map_over_an_earlier_maps_outputs_sees_each_once_in_order,
    effects_whose_outcome_is_unknown_are_never_guessed,
    a_state_that_does_not_serialize_fails_the_job,
    failed_items_are_retried_or_skipped_and_listed,
    steps_retry_in_the_run_and_time_out_alone,
    finished_branches_are_not_run_again,
    checkpoints_of_another_version_or_other_items_are_refused,
    a_registered_migration_resumes_an_older_checkpoint,
    a_map_whose_items_changed_is_not_resumed,
);
