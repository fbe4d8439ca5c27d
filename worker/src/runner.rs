//! Runs one leased job: its kind's code under the job timeout, with panics captured and a
//! forced stop when the lease is lost or a cancel is not honoured within the grace period;
//! then settles the outcome in the store (complete, retry, fail, pause, cancel, hand back).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use drover_queue::{Completed, FailureKind, Fence, Job, JobFailure, Release, Store, StoreError};
use futures_util::FutureExt;
use serde_json::Value;
use tokio::sync::watch;

use crate::completer::Completer;
use crate::context::{Control, Interrupt, JobContext, RunSettings};
use crate::kind::{JobError, Registry};
use crate::retry::{retry_delay, store_call};

/// What every run of this worker shares.
pub(crate) struct RunnerEnv {
    pub store: Arc<dyn Store>,
    pub registry: Registry,
    pub worker_id: String,
    pub settings: Arc<RunSettings>,
    pub job_timeout: Option<Duration>,
    pub cancel_grace: Duration,
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    pub completer: Completer,
}

/// How a run ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Finished(Result<Value, JobError>),
    Stopped(Interrupt),
    TimedOut(Duration),
    Panicked(String),
}

impl Outcome {
    /// A metrics label: completed, failed (an attempt failed), timed_out, panicked, stopped.
    fn label(&self) -> &'static str {
        match self {
            Outcome::Finished(Ok(_)) => "completed",
            Outcome::Finished(Err(JobError::Timeout(_))) | Outcome::TimedOut(_) => "timed_out",
            Outcome::Finished(Err(JobError::Interrupted(_))) | Outcome::Stopped(_) => "stopped",
            Outcome::Finished(Err(JobError::Wait)) => "waiting",
            Outcome::Finished(Err(JobError::Snooze { .. })) => "snoozed",
            Outcome::Finished(Err(_)) => "failed",
            Outcome::Panicked(_) => "panicked",
        }
    }
}

/// The span every log line of one job's run carries.
pub(crate) fn span(env: &RunnerEnv, job: &Job) -> tracing::Span {
    tracing::info_span!("job", job_id = %job.id, kind = %job.kind,
        worker_id = %env.worker_id, attempt = job.attempt)
}

/// Runs the job's kind under the job timeout, with panics captured, until it finishes or
/// must be dropped (lost lease, cancel not honoured in time).
pub(crate) async fn execute(
    env: &RunnerEnv,
    job: &Job,
    fence: Fence,
    control: watch::Receiver<Control>,
) -> Outcome {
    let kind_label = job.kind.clone();
    metrics::counter!("drover_jobs_started_total", "kind" => kind_label.clone()).increment(1);
    let waited = (chrono::Utc::now() - job.run_at)
        .to_std()
        .unwrap_or_default();
    metrics::histogram!("drover_job_wait_seconds", "kind" => kind_label.clone())
        .record(waited.as_secs_f64());
    let started = std::time::Instant::now();
    let outcome = match env.registry.get(&job.kind) {
        None if crate::kinds::TEST_KINDS.contains(&job.kind.as_str()) => {
            Outcome::Finished(Err(JobError::Permanent(format!(
                "this worker has no kind `{}`: a test kind, run only by workers started with \
                 --enable-test-kinds",
                job.kind
            ))))
        }
        None => Outcome::Finished(Err(JobError::Permanent(format!(
            "this worker has no kind `{}`",
            job.kind
        )))),
        Some(kind) => {
            let timeout = job
                .timeouts
                .job_timeout
                .map(Duration::from_secs)
                .or(env.job_timeout);
            let ctx = JobContext::new(
                job.clone(),
                fence,
                env.store.clone(),
                control.clone(),
                env.settings.clone(),
            );
            let work = AssertUnwindSafe(kind.run(ctx)).catch_unwind();
            let timed = async {
                match timeout {
                    Some(limit) => tokio::time::timeout(limit, work).await.map_err(|_| limit),
                    None => Ok(work.await),
                }
            };
            tokio::select! {
                result = timed => match result {
                    Ok(Ok(result)) => Outcome::Finished(result),
                    Ok(Err(panic)) => Outcome::Panicked(panic_message(&panic)),
                    Err(limit) => Outcome::TimedOut(limit),
                },
                interrupt = forced_stop(control, env.cancel_grace) => {
                    Outcome::Stopped(interrupt)
                }
            }
        }
    };
    tracing::debug!(?outcome, "run ended");
    let label = outcome.label();
    metrics::histogram!("drover_job_run_seconds", "kind" => kind_label.clone(), "outcome" => label)
        .record(started.elapsed().as_secs_f64());
    match label {
        "completed" => {
            metrics::counter!("drover_jobs_completed_total", "kind" => kind_label).increment(1)
        }
        "failed" | "timed_out" | "panicked" => {
            metrics::counter!("drover_jobs_failed_total", "kind" => kind_label).increment(1)
        }
        _ => {}
    }
    outcome
}

/// Resolves with the interrupt once one is pending (for a job still waiting for a slot).
pub(crate) async fn interrupted(mut control: watch::Receiver<Control>) -> Interrupt {
    loop {
        if let Some(interrupt) = control.borrow_and_update().interrupt() {
            return interrupt;
        }
        if control.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Resolves when the run must be dropped without waiting for a safe point: at once when
/// the lease is lost, after the grace period when a cancel was not honoured.
async fn forced_stop(mut control: watch::Receiver<Control>, grace: Duration) -> Interrupt {
    loop {
        let now = *control.borrow_and_update();
        if now.lost {
            return Interrupt::LeaseLost;
        }
        if now.cancel {
            tokio::time::sleep(grace).await;
            tracing::warn!(
                ?grace,
                "cancel not honoured within the grace period; dropping the run"
            );
            return if control.borrow().lost {
                Interrupt::LeaseLost
            } else {
                Interrupt::Cancel
            };
        }
        if control.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".into())
}

/// Records the outcome in the store: a success through the batching completer, the rest
/// (retry, fail, pause, cancel, hand back) one by one.
pub(crate) async fn settle(
    env: &RunnerEnv,
    fence: Fence,
    attempt: u32,
    outcome: Outcome,
    control: watch::Receiver<Control>,
) {
    let store = &env.store;
    let retry_in = || retry_delay(attempt, env.retry_delay, env.max_retry_delay);
    let give_up = || control.borrow().lost;
    let result = match outcome {
        Outcome::Finished(Ok(value)) => {
            match env.completer.complete(fence, value, control.clone()).await {
                Ok(Completed::Done) => Ok("completed"),
                Ok(Completed::Fenced) => Err(StoreError::Fenced {
                    job: fence.job,
                    epoch: fence.epoch,
                }),
                // The store cannot keep this result: fail the job saying so rather than
                // leave it running to be re-run when its lease expires.
                Err(err) if !err.is_transient() && !matches!(err, StoreError::Fenced { .. }) => {
                    let failure =
                        JobFailure::permanent(format!("the result could not be stored: {err}"));
                    store_call("fail", || store.fail(fence, failure.clone(), None), give_up)
                        .await
                        .map(|_| "failed (result refused by the store)")
                }
                Err(err) => Err(err),
            }
        }
        Outcome::Finished(Err(JobError::Transient(message))) => {
            let failure = JobFailure::transient(message);
            let delay = retry_in();
            store_call(
                "fail",
                || store.fail(fence, failure.clone(), Some(delay)),
                give_up,
            )
            .await
            .map(|_| "failed (transient)")
        }
        Outcome::Finished(Err(JobError::Permanent(message))) => {
            let failure = JobFailure::permanent(message);
            store_call("fail", || store.fail(fence, failure.clone(), None), give_up)
                .await
                .map(|_| "failed (permanent)")
        }
        Outcome::Finished(Err(JobError::Timeout(message))) => {
            let failure = JobFailure {
                kind: FailureKind::Timeout,
                message,
            };
            let delay = retry_in();
            store_call(
                "fail",
                || store.fail(fence, failure.clone(), Some(delay)),
                give_up,
            )
            .await
            .map(|_| "timed out (step)")
        }
        Outcome::TimedOut(limit) => {
            let failure = JobFailure {
                kind: FailureKind::Timeout,
                message: format!("job_timeout of {}s exceeded", limit.as_secs()),
            };
            let delay = retry_in();
            store_call(
                "fail",
                || store.fail(fence, failure.clone(), Some(delay)),
                give_up,
            )
            .await
            .map(|_| "timed out")
        }
        Outcome::Panicked(message) => {
            let failure = JobFailure::permanent(format!("panicked: {message}"));
            store_call("fail", || store.fail(fence, failure.clone(), None), give_up)
                .await
                .map(|_| "panicked")
        }
        Outcome::Finished(Err(JobError::Wait)) => store_call("park", || store.park(fence), give_up)
            .await
            .map(|job| match job.status {
                drover_queue::JobStatus::Waiting => "parked on its gates",
                drover_queue::JobStatus::Queued => {
                    "queued again (its gates were decided meanwhile)"
                }
                _ => "settled a pending request instead of parking",
            }),
        Outcome::Finished(Err(JobError::Snooze { until, reason })) => {
            store_call("snooze", || store.snooze(fence, until, &reason), give_up)
                .await
                .map(|_| "snoozed")
        }
        Outcome::Finished(Err(JobError::Interrupted(interrupt))) | Outcome::Stopped(interrupt) => {
            let how = match interrupt {
                Interrupt::LeaseLost => {
                    tracing::warn!("lease lost; another worker owns the job now");
                    return;
                }
                Interrupt::Cancel => Release::Cancel,
                Interrupt::Pause => Release::Pause,
                Interrupt::Shutdown => Release::Shutdown,
            };
            store_call("release", || store.release(fence, how), give_up)
                .await
                .map(|_| match how {
                    Release::Cancel => "cancelled",
                    Release::Pause => "paused",
                    Release::Shutdown => "handed back",
                })
        }
    };
    match result {
        // Per-job lines are debug: at thousands of jobs a second they would swamp the log.
        Ok(what) => tracing::debug!("job {what}"),
        Err(StoreError::Fenced { .. }) => {
            tracing::warn!(
                "lease lost before the outcome was recorded; another worker owns the job"
            )
        }
        Err(err) => tracing::error!(error = %err, "could not record the job's outcome"),
    }
}
