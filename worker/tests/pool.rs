//! The worker pool in-process, on every backend: slots, retries, failures, panics,
//! timeouts, pause and cancel of running jobs, `max_jobs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use drover_queue::testing::{eventually, Backend};
use drover_queue::{FailureKind, JobFilter, JobStatus, NewJob};
use drover_worker::{JobContext, JobError, Kind, Registry, WorkerOptions};
use serde_json::{json, Value};
use support::{options, setup};

mod support;

/// Tracks how many runs overlap.
#[derive(Default)]
struct Concurrency {
    now: AtomicUsize,
    max: AtomicUsize,
}

struct Busy(Arc<Concurrency>);

#[async_trait]
impl Kind for Busy {
    fn name(&self) -> &'static str {
        "busy"
    }

    async fn run(&self, ctx: JobContext) -> Result<Value, JobError> {
        let now = self.0.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.max.fetch_max(now, Ordering::SeqCst);
        let slept = ctx.sleep(Duration::from_millis(30)).await;
        self.0.now.fetch_sub(1, Ordering::SeqCst);
        slept?;
        Ok(json!({}))
    }
}

/// Fails transiently until attempt `config.succeed_at`.
struct Flaky;

#[async_trait]
impl Kind for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }

    async fn run(&self, ctx: JobContext) -> Result<Value, JobError> {
        let succeed_at = ctx.job().config["succeed_at"].as_u64().unwrap_or(1) as u32;
        if ctx.job().attempt < succeed_at {
            return Err(JobError::Transient(format!(
                "HTTP 503 on attempt {}",
                ctx.job().attempt
            )));
        }
        Ok(json!({ "attempt": ctx.job().attempt }))
    }
}

struct Broken;

#[async_trait]
impl Kind for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }

    async fn run(&self, ctx: JobContext) -> Result<Value, JobError> {
        match ctx.job().goal.as_str() {
            "panic" => panic!("step exploded"),
            _ => Err(JobError::Permanent("invalid credentials".into())),
        }
    }
}

/// Sleeps without ever reaching a safe point.
struct Stubborn;

#[async_trait]
impl Kind for Stubborn {
    fn name(&self) -> &'static str {
        "stubborn"
    }

    async fn run(&self, _ctx: JobContext) -> Result<Value, JobError> {
        tokio::time::sleep(Duration::from_secs(600)).await;
        Ok(json!({}))
    }
}

/// Returns a result no store keeps (it holds U+0000) when its goal is `poison`.
struct Poison;

#[async_trait]
impl Kind for Poison {
    fn name(&self) -> &'static str {
        "poison"
    }

    async fn run(&self, ctx: JobContext) -> Result<Value, JobError> {
        ctx.sleep(Duration::from_millis(20)).await?;
        match ctx.job().goal.as_str() {
            "poison" => Ok(json!({ "text": "a NUL \u{0} inside" })),
            goal => Ok(json!({ "text": goal })),
        }
    }
}

fn registry(concurrency: &Arc<Concurrency>) -> Registry {
    let mut registry = Registry::with_test_kinds();
    registry
        .register(Poison)
        .register(Busy(concurrency.clone()))
        .register(Flaky)
        .register(Broken)
        .register(Stubborn);
    registry
}

async fn runs_at_most_slots_jobs_at_once(backend: Backend) {
    let concurrency = Arc::new(Concurrency::default());
    let s = setup(backend, registry(&concurrency), options(3)).await;
    let jobs: Vec<NewJob> = (0..20)
        .map(|i| NewJob::new("busy", format!("{i}")))
        .collect();
    let ids = s.submit_all(jobs).await;
    for id in &ids {
        assert_eq!(s.finished(*id).await.status, JobStatus::Completed);
    }
    let max = concurrency.max.load(Ordering::SeqCst);
    assert!((1..=3).contains(&max), "at most 3 at once, saw {max}");
    s.stop().await;
}

async fn transient_errors_retry_with_backoff(backend: Backend) {
    let s = setup(backend, registry(&Arc::default()), options(2)).await;
    let id = s
        .submit(
            NewJob::new("flaky", "retry")
                .config(json!({"succeed_at": 3}))
                .max_attempts(5),
        )
        .await;
    let job = s.finished(id).await;
    assert_eq!((job.status, job.attempt), (JobStatus::Completed, 3));
    assert_eq!(job.result, Some(json!({"attempt": 3})));
    let events = s.store.events(id, 0, 100).await.expect("events");
    let retries: Vec<_> = events
        .iter()
        .filter(|e| e.data["status"] == "queued" && e.data["error"]["kind"] == "transient")
        .collect();
    assert_eq!(retries.len(), 2);
    // Each retry waited its backoff (half of 50 ms at least) before the next lease.
    for pair in events.windows(2) {
        if pair[0].data["status"] == "queued" && pair[0].data["error"].is_object() {
            assert!(pair[1].created_at - pair[0].created_at >= chrono::Duration::milliseconds(20));
        }
    }

    // Attempts exhausted: the last transient error is final.
    let id = s
        .submit(
            NewJob::new("flaky", "give up")
                .config(json!({"succeed_at": 9}))
                .max_attempts(2),
        )
        .await;
    let job = s.finished(id).await;
    assert_eq!((job.status, job.attempt), (JobStatus::Failed, 2));
    assert_eq!(job.error.map(|e| e.kind), Some(FailureKind::Transient));
    s.stop().await;
}

async fn permanent_errors_and_panics_fail_at_once(backend: Backend) {
    let s = setup(backend, registry(&Arc::default()), options(2)).await;
    let id = s
        .submit(NewJob::new("broken", "bad creds").max_attempts(3))
        .await;
    let job = s.finished(id).await;
    assert_eq!((job.status, job.attempt), (JobStatus::Failed, 1));
    let error = job.error.expect("error recorded");
    assert_eq!(
        (error.kind, error.message.as_str()),
        (FailureKind::Permanent, "invalid credentials")
    );

    let id = s
        .submit(NewJob::new("broken", "panic").max_attempts(3))
        .await;
    let job = s.finished(id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.error.expect("error").message.contains("step exploded"));
    // The worker survived the panic.
    let id = s.submit(NewJob::new("noop", "still alive")).await;
    assert_eq!(s.finished(id).await.status, JobStatus::Completed);

    // A job of a kind this worker does not know fails, naming the kind.
    let id = s.submit(NewJob::new("mystery", "x")).await;
    let job = s.finished(id).await;
    assert!(job.error.expect("error").message.contains("mystery"));
    s.stop().await;
}

async fn job_timeout_stops_a_run(backend: Backend) {
    let s = setup(backend, registry(&Arc::default()), options(2)).await;
    let mut job = NewJob::new("stubborn", "never ends").max_attempts(1);
    job.timeouts.job_timeout = Some(1);
    let id = s.submit(job).await;
    let job = s.finished(id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error.map(|e| e.kind), Some(FailureKind::Timeout));
    s.stop().await;
}

async fn running_jobs_pause_resume_and_cancel(backend: Backend) {
    let s = setup(backend, registry(&Arc::default()), options(4)).await;
    // Pause at the safe point (the sleep), then resume: it runs again and completes.
    let id = s
        .submit(NewJob::new("sleep", "pause me").config(json!({"ms": 60_000})))
        .await;
    s.until(id, "it to run", |j| j.status == JobStatus::Running)
        .await;
    s.store.pause(id).await.expect("pause");
    let job = s
        .until(id, "it to pause", |j| j.status == JobStatus::Paused)
        .await;
    assert_eq!(job.lease_owner, None);
    s.store.resume(id).await.expect("resume");
    s.until(id, "it to run again", |j| {
        j.status == JobStatus::Running && j.lease_epoch == 2
    })
    .await;
    s.store.cancel(id).await.expect("cancel");
    let job = s
        .until(id, "it to cancel", |j| j.status.is_terminal())
        .await;
    assert_eq!(job.status, JobStatus::Cancelled);

    // A run that never reaches a safe point is dropped after the cancel grace period.
    let id = s.submit(NewJob::new("stubborn", "ignore me")).await;
    s.until(id, "it to run", |j| j.status == JobStatus::Running)
        .await;
    s.store.cancel(id).await.expect("cancel");
    let job = s
        .until(id, "the forced cancel", |j| j.status.is_terminal())
        .await;
    assert_eq!(job.status, JobStatus::Cancelled);
    s.stop().await;
}

async fn max_jobs_stops_the_worker(backend: Backend) {
    let s = setup(
        backend,
        registry(&Arc::default()),
        WorkerOptions {
            max_jobs: Some(2),
            ..options(1)
        },
    )
    .await;
    for i in 0..3 {
        s.submit(NewJob::new("noop", format!("{i}"))).await;
    }
    tokio::time::timeout(Duration::from_secs(20), s.worker.wait())
        .await
        .expect("the worker stops by itself");
    let done = s
        .store
        .list(&JobFilter {
            status: Some(JobStatus::Completed),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(done.jobs.len(), 2);
    s.backend.cleanup().await;
}

async fn finished_jobs_are_pruned_by_the_leader(backend: Backend) {
    let s = setup(
        backend,
        registry(&Arc::default()),
        WorkerOptions {
            retention: Some(drover_queue::Retention {
                completed: Duration::ZERO,
                failed: Duration::from_secs(3600),
                cancelled: Duration::ZERO,
            }),
            prune_interval: Duration::from_millis(100),
            ..options(2)
        },
    )
    .await;
    let done = s.submit(NewJob::new("noop", "short-lived")).await;
    let kept = s
        .submit(NewJob::new("broken", "kept for a while").max_attempts(1))
        .await;
    eventually(
        Duration::from_secs(20),
        "the completed job to be pruned",
        || async {
            matches!(
                s.store.get(done).await,
                Err(drover_queue::StoreError::NotFound(_))
            )
            .then_some(())
        },
    )
    .await;
    assert_eq!(s.finished(kept).await.status, JobStatus::Failed);
    s.stop().await;
}

async fn prefetched_jobs_complete_once_within_the_slots(backend: Backend) {
    let concurrency = Arc::new(Concurrency::default());
    let s = setup(
        backend,
        registry(&concurrency),
        WorkerOptions {
            prefetch: 8,
            ..options(3)
        },
    )
    .await;
    let jobs: Vec<NewJob> = (0..40)
        .map(|i| NewJob::new("busy", format!("{i}")))
        .collect();
    let ids = s.submit_all(jobs).await;
    for id in &ids {
        assert_eq!(s.finished(*id).await.status, JobStatus::Completed);
        assert_eq!(
            s.status_events(*id).await,
            vec!["queued", "running", "completed"],
            "each job runs and completes once"
        );
    }
    let max = concurrency.max.load(Ordering::SeqCst);
    assert!((1..=3).contains(&max), "at most 3 at once, saw {max}");
    s.stop().await;
}

async fn prefetched_jobs_settle_without_running_when_interrupted(backend: Backend) {
    let concurrency = Arc::new(Concurrency::default());
    let s = setup(
        backend,
        registry(&concurrency),
        WorkerOptions {
            prefetch: 2,
            ..options(1)
        },
    )
    .await;
    // The one slot is taken; the next two jobs are leased and wait for it.
    let holder = s
        .submit(NewJob::new("sleep", "holds the slot").config(json!({"ms": 60_000})))
        .await;
    s.until(holder, "the holder to run", support::is(JobStatus::Running))
        .await;
    let paused = s.submit(NewJob::new("busy", "pause me")).await;
    let cancelled = s.submit(NewJob::new("busy", "cancel me")).await;
    for id in [paused, cancelled] {
        s.until(
            id,
            "the job to be prefetched",
            support::is(JobStatus::Running),
        )
        .await;
    }
    s.store.pause(paused).await.expect("pause");
    s.store.cancel(cancelled).await.expect("cancel");
    let job = s
        .until(paused, "the pause", support::is(JobStatus::Paused))
        .await;
    assert_eq!(job.attempt, 0, "a pause hands the attempt back");
    s.until(cancelled, "the cancel", support::is(JobStatus::Cancelled))
        .await;

    // Shutdown hands a waiting job back uncounted, like the running one.
    let waiting = s.submit(NewJob::new("busy", "hand me back")).await;
    s.until(
        waiting,
        "the job to be prefetched",
        support::is(JobStatus::Running),
    )
    .await;
    s.worker.shutdown();
    s.worker.wait().await;
    for id in [holder, waiting] {
        let job = s.store.get(id).await.expect("get");
        assert_eq!((job.status, job.attempt), (JobStatus::Queued, 0));
    }
    assert_eq!(
        concurrency.max.load(Ordering::SeqCst),
        0,
        "no waiting job ran"
    );
    s.backend.cleanup().await;
}

/// One result the store refuses must not sink the batch it is completed in: the other
/// jobs complete once, the offender fails at once saying why (no lease left to expire, no
/// re-run of the whole batch).
async fn a_refused_result_fails_only_its_job(backend: Backend) {
    let concurrency = Arc::new(Concurrency::default());
    let s = setup(
        backend,
        registry(&concurrency),
        WorkerOptions {
            prefetch: 32,
            ..options(8)
        },
    )
    .await;
    let mut jobs: Vec<NewJob> = (0..40)
        .map(|i| NewJob::new("poison", format!("ok {i}")))
        .collect();
    jobs.insert(17, NewJob::new("poison", "poison"));
    let ids = s.submit_all(jobs).await;
    for (i, id) in ids.iter().enumerate() {
        let job = s.finished(*id).await;
        if i == 17 {
            assert_eq!(job.status, JobStatus::Failed);
            let error = job.error.expect("error");
            assert_eq!(error.kind, FailureKind::Permanent);
            assert!(
                error.message.contains("could not be stored"),
                "{}",
                error.message
            );
            assert!(error.message.contains("U+0000"), "{}", error.message);
            assert_eq!(s.status_events(*id).await, ["queued", "running", "failed"]);
        } else {
            assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
            assert_eq!(
                s.status_events(*id).await,
                ["queued", "running", "completed"],
                "each good job completes once"
            );
        }
    }
    s.stop().await;
}

drover_queue::on_every_backend!(
    a_refused_result_fails_only_its_job,
    runs_at_most_slots_jobs_at_once,
    transient_errors_retry_with_backoff,
    permanent_errors_and_panics_fail_at_once,
    job_timeout_stops_a_run,
    running_jobs_pause_resume_and_cancel,
    max_jobs_stops_the_worker,
    finished_jobs_are_pruned_by_the_leader,
    prefetched_jobs_complete_once_within_the_slots,
    prefetched_jobs_settle_without_running_when_interrupted,
);
