//! The agent-graph runtime, in-process on every backend: pause/resume mid-map from the
//! checkpoint, cancel in every status, retries that resume without repeating effects,
//! timeouts, panics, fan-out/join, conditional edges, bounded maps, compression.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_queue::testing::{eventually, Backend};
use drover_queue::{FailureKind, JobStatus, NewJob};
use drover_worker::graph::{
    branch, CheckpointPolicy, Graph, GraphKind, MapStep, Next, StepContext,
};
use drover_worker::Registry;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use support::effect_server::EffectServer;
use support::{is, options, setup};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Tally {
    sum: i64,
    route: String,
    steps: Vec<String>,
    blob: String,
}

/// A graph with every kind of step and edge: fan-out/join, a conditional edge, a risky step.
fn routed() -> GraphKind<Tally> {
    let graph = Graph::new()
        .parallel(
            "split",
            vec![
                branch("a", |ctx: StepContext, _s: Tally| async move {
                    ctx.sleep(Duration::from_millis(150)).await?;
                    Ok(json!(1))
                }),
                branch("b", |ctx: StepContext, _s: Tally| async move {
                    ctx.sleep(Duration::from_millis(150)).await?;
                    Ok(json!(2))
                }),
                branch("c", |ctx: StepContext, s: Tally| async move {
                    ctx.sleep(Duration::from_millis(150)).await?;
                    Ok(json!(s.sum + 3))
                }),
            ],
            |mut s: Tally, outputs| {
                s.sum += outputs.iter().filter_map(Value::as_i64).sum::<i64>();
                s.steps.push("split".into());
                Ok(s)
            },
        )
        .edge_when("split", ["big", "small"], |s: &Tally| {
            if s.sum > 5 {
                Next::Step("big")
            } else {
                Next::Step("small")
            }
        })
        .task("small", |ctx: StepContext, mut s: Tally| async move {
            ctx.log("the sum is small").await?;
            s.route = "small".into();
            s.steps.push("small".into());
            Ok(s)
        })
        .end("small")
        .task("big", |ctx: StepContext, mut s: Tally| async move {
            let report = format!("sum,{}\n", s.sum);
            ctx.artifact("report.csv", "text/csv", report.into_bytes())
                .await?;
            s.route = "big".into();
            s.steps.push("big".into());
            Ok(s)
        })
        .risky("big");
    GraphKind::new("routed", graph, |job| {
        Ok(Tally {
            sum: job.config["start"].as_i64().unwrap_or(0),
            ..Tally::default()
        })
    })
    .policy(|_| CheckpointPolicy {
        every_step: false,
        ..CheckpointPolicy::default()
    })
}

/// Five quick steps; checkpoints every two.
fn stepper() -> GraphKind<Tally> {
    let mut graph = Graph::new();
    for name in ["one", "two", "three", "four", "five"] {
        graph = graph.task(name, move |_ctx, mut s: Tally| async move {
            s.steps.push(name.into());
            Ok(s)
        });
    }
    GraphKind::new("stepper", graph, |_| Ok(Tally::default())).policy(|_| CheckpointPolicy {
        every_step: false,
        every_n_steps: Some(2),
        ..CheckpointPolicy::default()
    })
}

/// A map that tracks how many items run at once.
fn fanout(in_flight: Arc<AtomicUsize>, peak: Arc<AtomicUsize>) -> GraphKind<Tally> {
    let graph = Graph::new().map(
        "fetch",
        MapStep::new(
            |_: &Tally| (0..12).map(Value::from).collect(),
            move |ctx: StepContext, i, _item| {
                let (in_flight, peak) = (in_flight.clone(), peak.clone());
                async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    let slept = ctx.sleep(Duration::from_millis(40)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    slept?;
                    Ok(json!(i))
                }
            },
        )
        .concurrency(3)
        .fold(|s: &mut Tally, _, v| s.sum += v.as_i64().unwrap_or(0)),
    );
    GraphKind::new("fanout", graph, |_| Ok(Tally::default()))
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Collected {
    order: Vec<u64>,
}

/// A map of 60 items (100 ms each, 3 at a time) whose outputs are kept by the fold (a
/// checkpoint every 5 items).
fn collector() -> GraphKind<Collected> {
    let graph = Graph::new().map(
        "collect",
        MapStep::new(
            |_: &Collected| (0..60).map(Value::from).collect(),
            |ctx: StepContext, i, _item| async move {
                ctx.sleep(Duration::from_millis(100)).await?;
                Ok(json!({ "i": i, "pad": "x".repeat(200) }))
            },
        )
        .concurrency(3)
        .fold(|s: &mut Collected, i, out| {
            assert_eq!(out["i"], json!(i), "the fold gets each item's own output");
            s.order.push(i as u64)
        }),
    );
    GraphKind::new("collector", graph, |_| Ok(Collected::default()))
        .policy(|_| CheckpointPolicy {
            every_items: Some(5),
            ..CheckpointPolicy::default()
        })
        .result(|s: &Collected| json!({ "order": s.order }))
}

/// A slow step (no safe point), a panicking step, or a big state, by goal.
fn trouble() -> GraphKind<Tally> {
    let graph = Graph::new()
        .task("grow", |_ctx, mut s: Tally| async move {
            s.blob = "drover ".repeat(2_000); // 14 kB: compressed in checkpoints
            Ok(s)
        })
        .task("act", |ctx: StepContext, s: Tally| async move {
            match ctx.job().goal.as_str() {
                "slow" => tokio::time::sleep(Duration::from_secs(30)).await,
                "panic" => panic!("the step blew up"),
                _ => ctx.sleep(Duration::from_millis(300)).await?,
            }
            Ok(s)
        });
    GraphKind::new("trouble", graph, |_| Ok(Tally::default())).max_attempts(1)
}

fn registry() -> Registry {
    let mut registry = Registry::with_test_kinds();
    registry
        .register(routed())
        .register(stepper())
        .register(trouble())
        .register(collector());
    registry
}

fn items_processed(job: &drover_queue::Job) -> u64 {
    job.progress
        .as_ref()
        .and_then(|p| p["items_processed"].as_u64())
        .unwrap_or(0)
}

async fn pause_mid_map_then_resume_continues_from_the_checkpoint(backend: Backend) {
    let server = EffectServer::start().await;
    let s = setup(backend, registry(), options(2)).await;
    let id = s
        .submit(NewJob::new("demo", "pause me").config(json!({
            "items": 24, "item_ms": 150, "checkpoint_every": 4, "effect_url": server.url,
        })))
        .await;
    eventually(
        Duration::from_secs(30),
        "a few items to be delivered",
        || async { (server.deliveries().len() >= 7).then_some(()) },
    )
    .await;
    let delivered_at_request = server.deliveries().len();
    let requested = Instant::now();
    s.store.pause(id).await.expect("pause");
    let paused = s.until(id, "the job to pause", is(JobStatus::Paused)).await;
    let latency = requested.elapsed();
    assert!(paused.lease_owner.is_none());
    // Paused within one item: at most the item in flight finished after the request.
    let checkpoint = s
        .store
        .latest_checkpoint(id)
        .await
        .expect("cp")
        .expect("one");
    let saved: Value = serde_json::from_slice(&checkpoint.state).expect("json");
    let done = saved["state"]["items_processed"].as_u64().expect("count");
    assert!(
        done as usize <= delivered_at_request + 1 && done as usize >= delivered_at_request,
        "paused within one item: {done} done, {delivered_at_request} delivered at the request"
    );
    assert_eq!(
        server.deliveries().len() as u64,
        done,
        "nothing runs while paused"
    );
    assert!(latency < Duration::from_secs(5), "pause took {latency:?}");

    s.store.resume(id).await.expect("resume");
    let job = s.finished(id).await;
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.result, Some(json!({"items_processed": 24})));
    assert_eq!(job.attempt, 1, "pausing does not use up attempts");
    // Every item's effect exactly once: the resumed run skipped the done items.
    let counts = server.counts();
    assert_eq!(counts.len(), 24);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    let events = s.store.events(id, 0, 1000).await.expect("events");
    let resumed = events
        .iter()
        .find(|e| {
            e.kind == "log"
                && e.data["message"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("resumed")
        })
        .expect("a resume log");
    let message = resumed.data["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("{done} items of it done")),
        "{message}"
    );
    // No progress between the pause and the resume.
    let statuses: Vec<(i64, &str)> = events
        .iter()
        .filter(|e| e.kind == "status")
        .map(|e| (e.seq, e.data["status"].as_str().unwrap_or("")))
        .collect();
    let paused_seq = statuses
        .iter()
        .find(|(_, st)| *st == "paused")
        .expect("paused")
        .0;
    let requeued_seq = statuses
        .iter()
        .find(|(seq, st)| *seq > paused_seq && *st == "queued")
        .expect("queued")
        .0;
    assert!(!events
        .iter()
        .any(|e| e.seq > paused_seq && e.seq < requeued_seq && e.kind == "progress"));
    assert!(items_processed(&job) == 24);
    s.stop().await;
}

async fn cancel_queued_paused_and_running_jobs(backend: Backend) {
    let s = setup(backend, registry(), options(2)).await;
    s.store.pause_queue("held").await.expect("pause queue");
    let queued = s.submit(NewJob::new("demo", "queued").queue("held")).await;
    assert_eq!(
        s.store.cancel(queued).await.expect("cancel").status,
        JobStatus::Cancelled
    );

    let paused = s.submit(NewJob::new("demo", "paused").queue("held")).await;
    s.store.pause(paused).await.expect("pause");
    assert_eq!(
        s.store.cancel(paused).await.expect("cancel").status,
        JobStatus::Cancelled
    );

    let running = s
        .submit(NewJob::new("demo", "running").config(json!({"items": 1000, "item_ms": 50})))
        .await;
    let job = s
        .until(running, "a few items", |j| items_processed(j) >= 3)
        .await;
    let before = items_processed(&job);
    s.store.cancel(running).await.expect("cancel");
    let job = s
        .until(running, "the cancel", |j| j.status.is_terminal())
        .await;
    assert_eq!(job.status, JobStatus::Cancelled);
    assert!(items_processed(&job) < before + 10, "stopped promptly");
    assert!(job.result.is_none());
    s.stop().await;
}

async fn transient_failure_resumes_without_repeating_effects(backend: Backend) {
    let server = EffectServer::start().await;
    let s = setup(backend, registry(), options(2)).await;
    let id = s
        .submit(NewJob::new("demo", "flaky").config(json!({
            "items": 10, "item_ms": 10, "checkpoint_every": 3, "fail_transient_at": 7,
            "effect_url": server.url,
        })))
        .await;
    let job = s.finished(id).await;
    assert_eq!((job.status, job.attempt), (JobStatus::Completed, 2));
    assert_eq!(job.result, Some(json!({"items_processed": 10})));
    let counts = server.counts();
    assert_eq!(counts.len(), 10);
    assert!(
        counts.values().all(|n| *n == 1),
        "no effect repeated: {counts:?}"
    );
    let events = s.store.events(id, 0, 1000).await.expect("events");
    let error = events
        .iter()
        .find(|e| e.kind == "error")
        .expect("an error event");
    assert_eq!(error.data["kind"], "transient");
    assert_eq!(error.data["step"], "walk");
    // The retry waited its backoff and resumed after the 7 items done before the failure.
    let resumed = events
        .iter()
        .find(|e| e.kind == "log")
        .and_then(|e| e.data["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(resumed.contains("7 items of it done"), "{resumed}");
    assert_eq!(
        s.status_events(id).await,
        ["queued", "running", "queued", "running", "completed"]
    );
    s.stop().await;
}

async fn permanent_failure_fails_at_once(backend: Backend) {
    let s = setup(backend, registry(), options(2)).await;
    let id = s
        .submit(
            NewJob::new("demo", "doomed")
                .config(json!({"items": 10, "item_ms": 5, "fail_permanent_at": 3})),
        )
        .await;
    let job = s.finished(id).await;
    assert_eq!((job.status, job.attempt), (JobStatus::Failed, 1));
    let error = job.error.expect("error");
    assert_eq!(error.kind, FailureKind::Permanent);
    assert!(error.message.contains("item 3"), "{}", error.message);
    s.stop().await;
}

async fn step_and_job_timeouts_fail_the_run(backend: Backend) {
    let s = setup(backend, registry(), options(2)).await;
    let mut slow = NewJob::new("trouble", "slow");
    slow.timeouts.step_timeout = Some(1);
    let id = s.submit(slow).await;
    let job = s.finished(id).await;
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.error.expect("error");
    assert_eq!(error.kind, FailureKind::Timeout);
    assert!(error.message.contains("step `act`"), "{}", error.message);

    let mut long = NewJob::new("demo", "too long")
        .config(json!({"items": 1000, "item_ms": 20}))
        .max_attempts(1);
    long.timeouts.job_timeout = Some(1);
    let id = s.submit(long).await;
    let job = s.finished(id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error.map(|e| e.kind), Some(FailureKind::Timeout));
    s.stop().await;
}

async fn panicking_step_fails_the_job_not_the_worker(backend: Backend) {
    let s = setup(backend, registry(), options(2)).await;
    let id = s.submit(NewJob::new("trouble", "panic")).await;
    let job = s.finished(id).await;
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.error.expect("error");
    assert_eq!(error.kind, FailureKind::Permanent);
    assert!(
        error
            .message
            .contains("step `act` panicked: the step blew up"),
        "{}",
        error.message
    );
    let id = s
        .submit(NewJob::new("demo", "after").config(json!({"items": 2, "item_ms": 1})))
        .await;
    assert_eq!(s.finished(id).await.status, JobStatus::Completed);
    s.stop().await;
}

async fn fan_out_joins_and_conditional_edges_route(backend: Backend) {
    let s = setup(backend, registry(), options(2)).await;
    let big = s
        .submit(NewJob::new("routed", "big").config(json!({"start": 1})))
        .await;
    let small = s
        .submit(NewJob::new("routed", "small").config(json!({"start": -1})))
        .await;
    let started = Instant::now();
    let big = s.finished(big).await;
    let small = s.finished(small).await;
    // The three 150 ms branches ran at once.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let big_result = big.result.expect("result");
    assert_eq!(big_result["sum"], 1 + 1 + 2 + 4);
    assert_eq!(big_result["route"], "big");
    assert_eq!(big_result["steps"], json!(["split", "big"]));
    let small_result = small.result.expect("result");
    assert_eq!(small_result["sum"], 4, "-1 + 1 + 2 + (-1 + 3)");
    assert_eq!(small_result["route"], "small");
    // Only the risky step got a checkpoint before it (the policy has no other trigger).
    let checkpoints = s.store.checkpoints(big.id).await.expect("cps");
    assert_eq!(
        checkpoints
            .iter()
            .map(|c| c.step.as_str())
            .collect::<Vec<_>>(),
        ["big"]
    );
    assert!(s.store.checkpoints(small.id).await.expect("cps").is_empty());
    // Steps wrote an artifact and a log line through their context.
    assert_eq!(big.artifacts, ["report.csv"]);
    let report = s
        .store
        .artifact(big.id, "report.csv")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(report.data, b"sum,8\n");
    let events = s.store.events(small.id, 0, 100).await.expect("events");
    assert!(events.iter().any(|e| e.kind == "log"
        && e.data["message"] == "the sum is small"
        && e.data["step"] == "small"));
    s.stop().await;
}

async fn map_runs_items_with_bounded_concurrency(backend: Backend) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut registry = registry();
    registry.register(fanout(in_flight, peak.clone()));
    let s = setup(backend, registry, options(2)).await;
    let id = s.submit(NewJob::new("fanout", "fetch")).await;
    let job = s.finished(id).await;
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.result.expect("result")["sum"], (0..12).sum::<i64>());
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    s.stop().await;
}

async fn checkpoints_follow_the_policy_and_compress(backend: Backend) {
    let s = setup(backend, registry(), options(2)).await;
    let id = s.submit(NewJob::new("stepper", "count")).await;
    let job = s.finished(id).await;
    assert_eq!(
        job.result.expect("result")["steps"],
        json!(["one", "two", "three", "four", "five"])
    );
    let steps: Vec<String> = s
        .store
        .checkpoints(id)
        .await
        .expect("cps")
        .into_iter()
        .map(|c| c.step)
        .collect();
    assert_eq!(
        steps,
        ["three", "five"],
        "every 2 steps: after two and after four"
    );

    // A 14 kB state is stored compressed, and a pause/resume reads it back.
    let id = s.submit(NewJob::new("trouble", "big state")).await;
    let checkpoint = eventually(Duration::from_secs(30), "the first checkpoint", || async {
        s.store.latest_checkpoint(id).await.expect("cp")
    })
    .await;
    assert_eq!(checkpoint.step, "act");
    assert!(checkpoint.compressed);
    assert!(checkpoint.size < 2_000, "{} bytes", checkpoint.size);
    s.store.pause(id).await.expect("pause");
    s.until(id, "the pause", is(JobStatus::Paused)).await;
    s.store.resume(id).await.expect("resume");
    let job = s.finished(id).await;
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(
        job.result.expect("result")["blob"].as_str().map(str::len),
        Some(14_000)
    );
    s.stop().await;
}

async fn map_outputs_are_stored_per_item_and_folded_in_index_order(backend: Backend) {
    let s = setup(backend, registry(), options(2)).await;
    let id = s.submit(NewJob::new("collector", "collect")).await;
    eventually(Duration::from_secs(30), "a checkpoint mid-map", || async {
        let cps = s.store.checkpoints(id).await.expect("checkpoints");
        (!cps.is_empty()).then_some(())
    })
    .await;
    s.store.pause(id).await.expect("pause");
    s.until(id, "the job to pause", is(JobStatus::Paused)).await;
    // The checkpoint holds the cursor and the small state; the outputs are rows.
    let checkpoint = s
        .store
        .latest_checkpoint(id)
        .await
        .expect("cp")
        .expect("one");
    let saved: Value = serde_json::from_slice(&checkpoint.state).expect("json");
    assert_eq!(
        saved["state"]["order"],
        json!([]),
        "no outputs in the state"
    );
    assert!(checkpoint.size < 1_000, "{} B", checkpoint.size);
    let rows = s
        .store
        .item_outputs(id, "collect", 0, 100)
        .await
        .expect("rows");
    assert!(!rows.is_empty() && rows.len() < 60, "{} rows", rows.len());
    assert!(rows.windows(2).all(|w| w[0].index < w[1].index));
    for row in &rows {
        let output: Value = serde_json::from_slice(&row.output).expect("output");
        assert_eq!(output["i"], json!(row.index));
    }
    s.store.resume(id).await.expect("resume");
    let job = s.finished(id).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    // Every output once, in index order, from the rows and the items after the pause.
    assert_eq!(
        job.result,
        Some(json!({ "order": (0..60).collect::<Vec<u64>>() }))
    );
    // Retention deletes the rows with the job.
    let zero = drover_queue::Retention {
        completed: Duration::ZERO,
        failed: Duration::ZERO,
        cancelled: Duration::ZERO,
    };
    assert_eq!(s.store.prune(&zero, 10).await.expect("prune"), 1);
    let left = s.store.item_outputs(id, "collect", 0, 100).await;
    assert!(left.expect("rows").is_empty());
    s.stop().await;
}

drover_queue::on_every_backend!(
    map_outputs_are_stored_per_item_and_folded_in_index_order,
    pause_mid_map_then_resume_continues_from_the_checkpoint,
    cancel_queued_paused_and_running_jobs,
    transient_failure_resumes_without_repeating_effects,
    permanent_failure_fails_at_once,
    step_and_job_timeouts_fail_the_run,
    panicking_step_fails_the_job_not_the_worker,
    fan_out_joins_and_conditional_edges_route,
    map_runs_items_with_bounded_concurrency,
    checkpoints_follow_the_policy_and_compress,
);
