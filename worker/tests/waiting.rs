//! Jobs that wait without a slot, run by a real worker pool on every backend: the `demo`
//! kind's review gate (approve goes on, reject stops early, the deadline applies the
//! default), a map whose items open gates while the others run, snooze, and a crowd of
//! waiting jobs that holds no slot.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use drover_queue::testing::{eventually, Backend};
use drover_queue::{Decision, GateStatus, JobStatus, NewGate, NewJob};
use drover_worker::graph::{Graph, GraphKind, MapStep, StepContext};
use drover_worker::{JobError, Registry};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use support::{is, options, setup};

fn decide(key: &str, value: &str) -> Decision {
    Decision {
        key: key.into(),
        decision: json!(value),
        note: None,
    }
}

async fn demo_review_gate_waits_for_the_operator(backend: Backend) {
    let s = setup(backend, Registry::with_test_kinds(), options(2)).await;
    let config = json!({ "items": 5, "item_ms": 0, "gate_at": 2 });
    let approved = s
        .submit(NewJob::new("demo", "approve").config(config.clone()))
        .await;
    let rejected = s.submit(NewJob::new("demo", "reject").config(config)).await;
    for id in [approved, rejected] {
        let job = s.until(id, "the job to wait", is(JobStatus::Waiting)).await;
        assert_eq!(job.lease_owner, None);
        let gates = s.store.gates(id).await.expect("gates");
        assert_eq!(gates.len(), 1);
        assert_eq!(gates[0].key, "approve-2");
        assert_eq!(gates[0].prompt, "Continue the demo after item 2?");
        assert_eq!(gates[0].default, Some(json!("reject")));
        assert_eq!(gates[0].context["items_processed"], 3);
    }
    s.store
        .decide(approved, decide("approve-2", "approve"))
        .await
        .expect("approve");
    s.store
        .decide(rejected, decide("approve-2", "reject"))
        .await
        .expect("reject");
    let done = s.finished(approved).await;
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.result, Some(json!({ "items_processed": 5 })));
    assert_eq!(done.attempt, 1, "waiting used no attempt");
    let stopped = s.finished(rejected).await;
    assert_eq!(
        stopped.result,
        Some(json!({ "items_processed": 3, "stopped_by": "reject" }))
    );
    assert_eq!(
        s.status_events(approved).await,
        [
            "queued",
            "running",
            "waiting",
            "queued",
            "running",
            "completed"
        ]
    );

    // Nobody decides: the deadline applies the default (reject) within about a second.
    let late = s
        .submit(NewJob::new("demo", "late").config(json!({
            "items": 3, "item_ms": 0, "gate_at": 0, "gate_deadline_s": 1
        })))
        .await;
    let done = s.finished(late).await;
    assert_eq!(
        done.result,
        Some(json!({ "items_processed": 1, "stopped_by": "reject" }))
    );
    let gate = &s.store.gates(late).await.expect("gates")[0];
    assert_eq!(gate.status, GateStatus::TimedOut);
    s.stop().await;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Reviewed {
    approved: Vec<usize>,
}

async fn map_items_wait_while_the_others_run(backend: Backend) {
    let runs = Arc::new((0..6).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
    let counted = runs.clone();
    let graph = Graph::new().map(
        "review",
        MapStep::new(
            |_: &Reviewed| (0..6).map(Value::from).collect(),
            move |ctx: StepContext, i: usize, _item: Value| {
                let runs = counted.clone();
                async move {
                    runs[i].fetch_add(1, Ordering::SeqCst);
                    if i == 1 || i == 4 {
                        let key = format!("posting-{i}");
                        let gate = NewGate::new(&key, "Apply?").decisions(["approve", "reject"]);
                        let decisions = ctx.wait(vec![gate]).await?;
                        return Ok(json!(decisions.decision(&key) == Some(&json!("approve"))));
                    }
                    Ok::<Value, JobError>(json!(true))
                }
            },
        )
        .fold(|state: &mut Reviewed, i, approved| {
            if approved == json!(true) {
                state.approved.push(i)
            }
        }),
    );
    let mut registry = Registry::with_test_kinds();
    registry.register(
        GraphKind::new("review", graph, |_| Ok(Reviewed::default()))
            .result(|s: &Reviewed| json!({ "approved": s.approved })),
    );
    let s = setup(backend, registry, options(2)).await;
    let id = s.submit(NewJob::new("review", "six postings")).await;
    s.until(id, "the job to wait", is(JobStatus::Waiting)).await;
    // Every item that could run ran before the job parked, each once.
    let counts: Vec<usize> = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
    assert_eq!(counts, [1, 1, 1, 1, 1, 1]);
    let keys: Vec<String> = s
        .store
        .gates(id)
        .await
        .expect("gates")
        .into_iter()
        .map(|g| g.key)
        .collect();
    assert_eq!(keys, ["posting-1", "posting-4"]);
    s.store
        .decide(id, decide("posting-1", "approve"))
        .await
        .expect("decide");
    s.store
        .decide(id, decide("posting-4", "reject"))
        .await
        .expect("decide");
    let done = s.finished(id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let mut approved: Vec<u64> = done.result.expect("result")["approved"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    approved.sort();
    assert_eq!(approved, [0, 1, 2, 3, 5]);
    // Resumed, only the two gated items ran again: the others were done in the checkpoint.
    let counts: Vec<usize> = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
    assert_eq!(counts, [1, 2, 1, 1, 2, 1]);
    s.stop().await;
}

async fn a_snoozed_job_gives_its_slot_back_and_goes_on(backend: Backend) {
    let s = setup(backend, Registry::with_test_kinds(), options(1)).await;
    let snoozer = s
        .submit(NewJob::new("demo", "snooze").config(json!({
            "items": 4, "item_ms": 0, "snooze_at": 1, "snooze_s": 2
        })))
        .await;
    s.until(snoozer, "the snooze", |j| {
        j.status == JobStatus::Queued && j.started_at.is_some()
    })
    .await;
    // Its one slot is free meanwhile: another job runs to the end while it sleeps.
    let other = s.submit(NewJob::new("noop", "meanwhile")).await;
    assert_eq!(s.finished(other).await.status, JobStatus::Completed);
    assert_eq!(
        s.store.get(snoozer).await.expect("get").status,
        JobStatus::Queued
    );
    let done = s.finished(snoozer).await;
    assert_eq!(done.result, Some(json!({ "items_processed": 4 })));
    assert_eq!(done.attempt, 1, "the snooze used no attempt");
    let events = s.store.events(snoozer, 0, 1000).await.expect("events");
    let snoozed = events
        .iter()
        .find(|e| e.kind == "status" && e.data["reason"] == "snoozed")
        .expect("a snoozed status event");
    assert_eq!(snoozed.data["note"], "demo: snooze after item 1");
    s.stop().await;
}

async fn waiting_jobs_hold_no_slot(backend: Backend) {
    // 10,000 jobs wait on a 4-slot worker; a job submitted after them still runs at once.
    const WAITING: usize = 10_000;
    let s = setup(backend, Registry::with_test_kinds(), options(4)).await;
    let jobs: Vec<NewJob> = (0..WAITING)
        .map(|i| {
            NewJob::new("demo", format!("wait {i}"))
                .config(json!({ "items": 1, "item_ms": 0, "gate_at": 0 }))
        })
        .collect();
    let ids = s.submit_all(jobs).await;
    eventually(Duration::from_secs(400), "every job to wait", || async {
        let stats = s.store.queues().await.expect("stats");
        let waiting: u64 = stats
            .iter()
            .map(|q| q.by_status.get("waiting").copied().unwrap_or(0))
            .sum();
        (waiting == WAITING as u64).then_some(())
    })
    .await;
    let other = s.submit(NewJob::new("noop", "after the crowd")).await;
    assert_eq!(s.finished(other).await.status, JobStatus::Completed);
    let inbox = s
        .store
        .gate_inbox(&drover_queue::GateFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("inbox");
    assert_eq!(inbox.gates.len(), 1000, "a full first page");
    assert!(inbox.next.is_some());
    let ids: std::collections::HashSet<_> = ids.into_iter().collect();
    assert!(inbox.gates.iter().all(|g| ids.contains(&g.job_id)));
    s.stop().await;
}

/// A map item's gate is in the inbox while the other items still run, and a decision made
/// then is kept: the map finishes its items, parking finds no open gate, and the job goes on
/// without waiting; only the gated item runs again.
async fn a_gated_item_is_in_the_inbox_while_the_others_run(backend: Backend) {
    let runs = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (counted, held) = (runs.clone(), release.clone());
    let graph = Graph::new().map(
        "review",
        MapStep::new(
            |_: &Reviewed| (0..3).map(Value::from).collect(),
            move |ctx: StepContext, i: usize, _item: Value| {
                let (runs, held) = (counted.clone(), held.clone());
                async move {
                    runs[i].fetch_add(1, Ordering::SeqCst);
                    if i == 0 {
                        let gate =
                            NewGate::new("posting-0", "Apply?").decisions(["approve", "reject"]);
                        let decisions = ctx.wait(vec![gate]).await?;
                        return Ok(json!(
                            decisions.decision("posting-0") == Some(&json!("approve"))
                        ));
                    }
                    if i == 1 {
                        // Held until the test has seen the gate and decided it.
                        let _permit = held
                            .acquire()
                            .await
                            .map_err(|e| JobError::Permanent(e.to_string()))?;
                    }
                    Ok::<Value, JobError>(json!(true))
                }
            },
        )
        .concurrency(2)
        .fold(|state: &mut Reviewed, i, approved| {
            if approved == json!(true) {
                state.approved.push(i)
            }
        }),
    );
    let mut registry = Registry::with_test_kinds();
    registry.register(
        GraphKind::new("review", graph, |_| Ok(Reviewed::default()))
            .result(|s: &Reviewed| json!({ "approved": s.approved })),
    );
    let s = setup(backend, registry, options(2)).await;
    let id = s.submit(NewJob::new("review", "three postings")).await;
    let store = s.store.clone();
    eventually(Duration::from_secs(20), "the gate in the inbox", || {
        let store = store.clone();
        async move {
            let filter = drover_queue::GateFilter {
                status: None,
                after: None,
                limit: 10,
            };
            let inbox = store.gate_inbox(&filter).await.ok()?;
            inbox
                .gates
                .iter()
                .any(|g| g.job_id == id && g.key == "posting-0")
                .then_some(())
        }
    })
    .await;
    let job = s.store.get(id).await.expect("get");
    assert_eq!(job.status, JobStatus::Running, "item 1 is still held");
    let gate = s
        .store
        .decide(id, decide("posting-0", "approve"))
        .await
        .expect("decide");
    assert_eq!(gate.status, GateStatus::Decided);
    release.add_permits(1);
    let done = s.finished(id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let mut approved: Vec<u64> = done.result.expect("result")["approved"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    approved.sort();
    assert_eq!(approved, [0, 1, 2]);
    let counts: Vec<usize> = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
    assert_eq!(counts, [2, 1, 1], "only the gated item ran again");
    s.stop().await;
}

drover_queue::on_every_backend!(
    demo_review_gate_waits_for_the_operator,
    map_items_wait_while_the_others_run,
    a_gated_item_is_in_the_inbox_while_the_others_run,
    a_snoozed_job_gives_its_slot_back_and_goes_on,
    waiting_jobs_hold_no_slot,
);
