//! Issue 6, on every backend: a demo-kind campaign of 10,000 items with a checkpoint every
//! 1,000 runs through a real worker pool and completes; the store keeps only the newest
//! `max_checkpoints`; progress is coalesced, so the event log stays small; and retention with
//! a zero retention deletes the job and everything it owns, checked in the storage itself
//! (rows and keys), not only through the `Store` read methods.

mod support;

use std::time::{Duration, Instant};

use drover_queue::{JobStatus, NewJob, Retention, StoreError};
use drover_worker::graph::{Graph, GraphKind, StepContext, INTENT_PREFIX};
use drover_worker::{Registry, RunSettings, WorkerOptions};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use support::{options, setup};

const ITEMS: u64 = 10_000;
const CHECKPOINT_EVERY: u64 = 1_000;
/// Fewer than the campaign writes, so trimming has to happen.
const KEEP: usize = 3;
/// The map checkpoints after items 1,000 … 9,000 (not after the last one: the step boundary
/// right after it checkpoints anyway), and once more at the step boundary before `finish`.
const CHECKPOINTS_WRITTEN: usize = 10;

/// A real campaign ends by sending through the effect ledger and writing a CSV report.
/// The demo kind does neither, so this small kind gives retention an effect and an artifact
/// to delete alongside the campaign.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Report {
    mailed: bool,
}

fn report() -> GraphKind<Report> {
    let graph = Graph::new().task("report", |ctx: StepContext, mut s: Report| async move {
        let receipt: Value = ctx
            .effect("summary-mail", || async { Ok(json!({ "status": 202 })) })
            .await?;
        s.mailed = receipt["status"] == 202;
        ctx.artifact("report.csv", "text/csv", b"item,status\n0,sent\n".to_vec())
            .await?;
        Ok(s)
    });
    GraphKind::new("report", graph, |_| Ok(Report::default()))
}

fn registry() -> Registry {
    let mut registry = Registry::with_test_kinds();
    registry.register(report());
    registry
}

async fn ten_thousand_items_complete_bounded_and_are_pruned(
    backend: drover_queue::testing::Backend,
) {
    let run = RunSettings {
        max_checkpoints: KEEP,
        ..RunSettings::default()
    };
    let progress_interval = run.progress_interval;
    let s = setup(
        backend,
        registry(),
        WorkerOptions {
            run,
            // This test prunes explicitly; the pool's own pruner must not race it.
            retention: None,
            ..options(2)
        },
    )
    .await;

    let started = Instant::now();
    let id = s
        .submit(NewJob::new("demo", "campaign of 10k").config(json!({
            "items": ITEMS, "item_ms": 0, "checkpoint_every": CHECKPOINT_EVERY,
        })))
        .await;
    let job = s.finished(id).await;
    let elapsed = started.elapsed();
    assert_eq!(job.status, JobStatus::Completed, "error: {:?}", job.error);
    assert_eq!(job.result, Some(json!({ "items_processed": ITEMS })));
    // One uninterrupted run: the counts below assume no retry or resume.
    assert_eq!(job.attempt, 1);

    // Page through the log: a store answers at most 10,000 events per call, and a log that
    // is not coalesced would be longer than that.
    let mut events = Vec::new();
    loop {
        let after = events.last().map_or(0, |e: &drover_queue::Event| e.seq);
        let page = s.store.events(id, after, 1_000).await.expect("events");
        if page.is_empty() {
            break;
        }
        events.extend(page);
    }
    let of_kind = |kind: &str| events.iter().filter(|e| e.kind == kind).count();
    let written: Vec<i64> = events
        .iter()
        .filter(|e| e.kind == "checkpoint")
        .map(|e| e.data["seq"].as_i64().expect("checkpoint seq"))
        .collect();
    assert_eq!(
        written,
        (1..=CHECKPOINTS_WRITTEN as i64).collect::<Vec<_>>(),
        "one checkpoint per 1,000 items and one at the step boundary"
    );
    let kept: Vec<i64> = s
        .store
        .checkpoints(id)
        .await
        .expect("checkpoints")
        .iter()
        .map(|c| c.seq)
        .collect();
    let newest = (CHECKPOINTS_WRITTEN - KEEP + 1) as i64..=CHECKPOINTS_WRITTEN as i64;
    assert_eq!(
        kept,
        newest.collect::<Vec<_>>(),
        "only the newest max_checkpoints are kept"
    );

    // Progress is written at most once per `progress_interval`, except for the writes that
    // are not rate-limited: the two step boundaries, the flush before each checkpoint and
    // the final flush. Anything per item would blow far past this.
    let unlimited = 2 + CHECKPOINTS_WRITTEN + 1;
    let limited = (elapsed.as_millis() / progress_interval.as_millis()) as usize + 1;
    let progress_bound = unlimited + limited;
    assert!(
        progress_bound < ITEMS as usize / 10,
        "the run took {elapsed:?}: too slow for the bound to mean anything"
    );
    let progress = of_kind("progress");
    assert!(
        progress <= progress_bound,
        "{progress} progress events in {elapsed:?}: not coalesced (bound {progress_bound})"
    );
    // queued, running, completed; the checkpoints; the progress; nothing else.
    assert_eq!(of_kind("status"), 3);
    assert_eq!(events.len(), 3 + CHECKPOINTS_WRITTEN + progress);
    let last = events.last().expect("events");
    assert_eq!(last.seq, events.len() as i64, "the log has no gaps");

    // A second finished job that owns an effect and an artifact, so retention has one of
    // each kind of thing a job can own to delete.
    let tail = s.submit(NewJob::new("report", "campaign report")).await;
    let tail_job = s.finished(tail).await;
    assert_eq!(
        tail_job.status,
        JobStatus::Completed,
        "{:?}",
        tail_job.error
    );
    // The effect's outcome, and the intent recorded before it was performed.
    let effects = s.store.effects(tail).await.expect("effects");
    let intents = effects.iter().filter(|e| e.key.starts_with(INTENT_PREFIX));
    assert_eq!((effects.len(), intents.count()), (2, 1));
    assert_eq!(s.store.artifacts(tail).await.expect("artifacts").len(), 1);

    for owned in [id, tail] {
        assert!(
            !s.backend.leftovers(owned).await.is_empty(),
            "the storage check sees the job before retention"
        );
    }
    let before = s.backend.footprint().await;

    let zero = Retention {
        completed: Duration::ZERO,
        failed: Duration::ZERO,
        cancelled: Duration::ZERO,
    };
    assert_eq!(s.store.prune(&zero, 500).await.expect("prune"), 2);
    assert_eq!(s.store.prune(&zero, 500).await.expect("prune"), 0);

    for gone in [id, tail] {
        assert!(matches!(
            s.store.get(gone).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(s
            .store
            .events(gone, 0, 10)
            .await
            .expect("events")
            .is_empty());
        assert!(s.store.checkpoints(gone).await.expect("cps").is_empty());
        assert!(s.store.latest_checkpoint(gone).await.expect("cp").is_none());
        assert!(s.store.effects(gone).await.expect("effects").is_empty());
        assert!(s.store.artifacts(gone).await.expect("artifacts").is_empty());
        assert_eq!(
            s.backend.leftovers(gone).await,
            Vec::<String>::new(),
            "storage still holds part of job {gone}"
        );
    }
    let after = s.backend.footprint().await;
    for owned in [
        "jobs",
        "job_events",
        "checkpoints",
        "effects",
        "artifacts",
        // Redis: the job hash, its event log (a list; a stream for jobs stored before),
        // checkpoint, effect and artifact hashes.
        "job",
        "eventlog",
        "events",
        "cp",
        "cpmeta",
        "effects",
        "effmeta",
        "art",
        "artmeta",
        "artlist",
    ] {
        assert_eq!(
            after.count(owned),
            0,
            "`{owned}` is not empty after retention: {after:?}"
        );
    }
    assert!(
        after.total() < before.total(),
        "retention freed nothing: {before:?} -> {after:?}"
    );
    s.stop().await;
}

drover_queue::on_every_backend!(ten_thousand_items_complete_bounded_and_are_pruned);
