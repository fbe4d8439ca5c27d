//! What a running job sees: its job, its fence, and the safe points where pause, cancel,
//! shutdown and a lost lease take effect.

use std::sync::Arc;
use std::time::Duration;

use drover_queue::{
    Fence, Gate, GateStatus, ItemOutput, Job, NewCheckpoint, NewGate, NewItemOutput, Store,
    StoreError,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use crate::kind::JobError;
use crate::retry::store_call;

/// Why a run must stop at its next safe point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// The lease is gone (another worker may own the job): stop and write nothing more.
    LeaseLost,
    /// An operator cancelled the job.
    Cancel,
    /// An operator paused the job.
    Pause,
    /// This worker is shutting down: hand the job back for another worker to continue.
    Shutdown,
}

/// The requests that reached a running job, set by the heartbeat and the notifier.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    pub pause: bool,
    pub cancel: bool,
    pub shutdown: bool,
    pub lost: bool,
}

impl Control {
    /// The interrupt that wins when several are pending: a lost lease first (nothing may be
    /// written), then cancel, pause, shutdown.
    pub fn interrupt(&self) -> Option<Interrupt> {
        if self.lost {
            Some(Interrupt::LeaseLost)
        } else if self.cancel {
            Some(Interrupt::Cancel)
        } else if self.pause {
            Some(Interrupt::Pause)
        } else if self.shutdown {
            Some(Interrupt::Shutdown)
        } else {
            None
        }
    }
}

/// Settings a running job's writes follow.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Checkpoints kept per job.
    pub max_checkpoints: usize,
    /// zstd-compress checkpoint states larger than `compression_threshold` bytes.
    pub compression: bool,
    pub compression_threshold: usize,
    /// Limit for one step (one map item) of jobs that set no `step_timeout`.
    pub step_timeout: Option<Duration>,
    /// Progress events are written at most this often per job (the rest are coalesced).
    pub progress_interval: Duration,
    /// Also checkpoint when this much time passed since the last one.
    pub checkpoint_interval: Option<Duration>,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            max_checkpoints: 10,
            compression: true,
            compression_threshold: 4096,
            step_timeout: Some(Duration::from_secs(300)),
            progress_interval: Duration::from_millis(250),
            checkpoint_interval: None,
        }
    }
}

/// A checkpoint's stored bytes: the state as JSON, zstd-compressed (level 3) when
/// compression is on and the JSON is larger than the threshold. Returns the bytes and
/// whether they are compressed.
pub fn encode_checkpoint<S: Serialize>(
    state: &S,
    settings: &RunSettings,
) -> Result<(Vec<u8>, bool), JobError> {
    let json = serde_json::to_vec(state)
        .map_err(|e| JobError::Permanent(format!("state does not serialize: {e}")))?;
    if !settings.compression || json.len() <= settings.compression_threshold {
        return Ok((json, false));
    }
    match zstd::bulk::compress(&json, 3) {
        Ok(packed) => Ok((packed, true)),
        Err(err) => {
            tracing::warn!(error = %err, "zstd failed; storing the checkpoint uncompressed");
            Ok((json, false))
        }
    }
}

/// A running job's handle on the world. Every write it makes carries the lease's fence.
#[derive(Clone)]
pub struct JobContext {
    job: Arc<Job>,
    fence: Fence,
    store: Arc<dyn Store>,
    control: watch::Receiver<Control>,
    settings: Arc<RunSettings>,
}

impl JobContext {
    pub(crate) fn new(
        job: Job,
        fence: Fence,
        store: Arc<dyn Store>,
        control: watch::Receiver<Control>,
        settings: Arc<RunSettings>,
    ) -> Self {
        JobContext {
            job: Arc::new(job),
            fence,
            store,
            control,
            settings,
        }
    }

    /// The job as it was when leased.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The lease's fence.
    pub fn fence(&self) -> Fence {
        self.fence
    }

    /// The pending interrupt, if any, without waiting.
    pub fn interrupted(&self) -> Option<Interrupt> {
        self.control.borrow().interrupt()
    }

    /// A safe point: returns the pending interrupt as an error, so `?` stops the run.
    pub async fn safe_point(&self) -> Result<(), Interrupt> {
        tokio::task::yield_now().await;
        match self.interrupted() {
            Some(interrupt) => Err(interrupt),
            None => Ok(()),
        }
    }

    /// Waits `duration`, returning early at a pending interrupt (waiting is a safe point).
    pub async fn sleep(&self, duration: Duration) -> Result<(), Interrupt> {
        // tokio rounds every timer up to the next millisecond tick, so even a zero sleep
        // would wait up to 1 ms: a 10,000-item map with `item_ms: 0` took over 10 s. A zero
        // wait is just the safe point.
        if duration.is_zero() {
            return self.safe_point().await;
        }
        tokio::select! {
            _ = tokio::time::sleep(duration) => self.safe_point().await,
            interrupt = self.until_interrupted() => Err(interrupt),
        }
    }

    /// Resolves when an interrupt is pending (for racing long operations against one).
    pub async fn until_interrupted(&self) -> Interrupt {
        let mut control = self.control.clone();
        let interrupt = control
            .wait_for(|c| c.interrupt().is_some())
            .await
            .map(|c| c.interrupt());
        // A closed channel means the runner is gone: behave as on shutdown.
        interrupt.ok().flatten().unwrap_or(Interrupt::Shutdown)
    }

    /// The store the job lives in, for what a workload shares across jobs and workers (rate
    /// limits, suppressions). Writes that belong to the job go through the fenced methods
    /// here, never straight to the store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The settings this run follows.
    pub fn settings(&self) -> &RunSettings {
        &self.settings
    }

    /// Writes a checkpoint of `state` after `step` (fenced), zstd-compressed when large.
    /// Returns its seq.
    pub async fn checkpoint<S: Serialize>(&self, step: &str, state: &S) -> Result<i64, JobError> {
        self.checkpoint_with_items(step, state, Vec::new()).await
    }

    /// Writes a checkpoint and, in the same transaction, map item outputs (fenced).
    pub(crate) async fn checkpoint_with_items<S: Serialize>(
        &self,
        step: &str,
        state: &S,
        items: Vec<NewItemOutput>,
    ) -> Result<i64, JobError> {
        let started = std::time::Instant::now();
        let (bytes, compressed) = encode_checkpoint(state, &self.settings)?;
        metrics::histogram!("drover_checkpoint_bytes").record(bytes.len() as f64);
        let keep = self.settings.max_checkpoints;
        self.write(|store, fence| {
            let checkpoint = NewCheckpoint {
                step: step.to_string(),
                state: bytes.clone(),
                compressed,
                items: items.clone(),
            };
            async move { store.checkpoint(fence, checkpoint, keep).await }
        })
        .await
        .inspect(|_| {
            metrics::histogram!("drover_checkpoint_write_seconds")
                .record(started.elapsed().as_secs_f64());
        })
    }

    /// The job's stored outputs of map step `step` from index `from`, in index order, at most
    /// `limit` (see `RunLog::item_outputs`).
    pub async fn item_outputs(
        &self,
        step: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<ItemOutput>, JobError> {
        let id = self.job.id;
        self.write(|store, _| async move { store.item_outputs(id, step, from, limit).await })
            .await
    }

    /// The state of the newest checkpoint, when the job has one (a resumed run).
    pub async fn resume_state<S: DeserializeOwned>(&self) -> Result<Option<S>, JobError> {
        let id = self.job.id;
        let checkpoint = self
            .write(|store, _| async move { store.latest_checkpoint(id).await })
            .await?;
        let Some(checkpoint) = checkpoint else {
            return Ok(None);
        };
        let unreadable = |e: String| {
            JobError::Permanent(format!("checkpoint {} is unreadable: {e}", checkpoint.seq))
        };
        let json = if checkpoint.compressed {
            zstd::stream::decode_all(checkpoint.state.as_slice())
                .map_err(|e| unreadable(e.to_string()))?
        } else {
            checkpoint.state.clone()
        };
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| unreadable(e.to_string()))
    }

    /// The effects this job recorded so far, by key.
    pub async fn effects(&self) -> Result<std::collections::HashMap<String, Value>, JobError> {
        let id = self.job.id;
        let effects = self
            .write(|store, _| async move { store.effects(id).await })
            .await?;
        Ok(effects.into_iter().map(|e| (e.key, e.result)).collect())
    }

    /// Appends an event to the job's log (fenced). `progress` events also become the job's
    /// latest progress.
    pub async fn event(&self, kind: &str, data: Value) -> Result<i64, JobError> {
        self.write(|store, fence| {
            let data = data.clone();
            async move { store.append_event(fence, kind, data).await }
        })
        .await
    }

    /// Asks an operator: opens `gates` (each key unique within the job) and answers their
    /// decisions once every one is decided or timed out. Until then it returns
    /// [`JobError::Wait`]: return it (`?`), and the runner checkpoints, parks the job as
    /// `waiting` (no lease, no slot) and, once the gates are decided, runs the step again
    /// from its start, when this call finds the decisions. Code before the call in the
    /// same step therefore runs again: keep it free of side effects, or make them effects.
    pub async fn wait(&self, gates: Vec<NewGate>) -> Result<Decisions, JobError> {
        for gate in &gates {
            gate.validate()
                .map_err(|e| JobError::Permanent(format!("gate {}: {e}", gate.key)))?;
        }
        let stored = self
            .write(|store, fence| {
                let gates = gates.clone();
                async move { store.open_gates(fence, gates).await }
            })
            .await?;
        if stored.iter().any(Gate::is_open) {
            return Err(JobError::Wait);
        }
        Ok(Decisions { gates: stored })
    }

    /// Waits until `until` without holding a slot: return the error this gives (`return
    /// Err(ctx.snooze_until(t, "rate limit resets"))`), and the runner checkpoints and puts
    /// the job back to `queued` with `run_at = until`, no attempt used, `reason` in its
    /// `status` event.
    pub fn snooze_until(
        &self,
        until: chrono::DateTime<chrono::Utc>,
        reason: impl Into<String>,
    ) -> JobError {
        JobError::Snooze {
            until,
            reason: reason.into(),
        }
    }

    /// Runs a fenced store call, retrying while the store is unreachable and the lease holds.
    pub(crate) async fn write<T, F, Fut>(&self, call: F) -> Result<T, JobError>
    where
        F: Fn(Arc<dyn Store>, Fence) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let fence = self.fence;
        let result = store_call(
            "job write",
            || call(self.store.clone(), fence),
            || self.control.borrow().lost,
        )
        .await;
        match result {
            Ok(value) => Ok(value),
            Err(StoreError::Fenced { .. }) | Err(StoreError::NotFound(_)) => {
                Err(JobError::Interrupted(Interrupt::LeaseLost))
            }
            Err(err) if err.is_transient() => Err(JobError::Interrupted(Interrupt::LeaseLost)),
            Err(err) => Err(JobError::Transient(err.to_string())),
        }
    }
}

/// The answers to the gates of one [`JobContext::wait`].
#[derive(Debug, Clone)]
pub struct Decisions {
    gates: Vec<Gate>,
}

impl Decisions {
    /// The decision of gate `key` (its default when it timed out; `None` for a gate that
    /// timed out without a default, or a key this wait did not open).
    pub fn decision(&self, key: &str) -> Option<&Value> {
        self.gate(key).and_then(|g| g.decision.as_ref())
    }

    /// True when gate `key` took its default at its deadline rather than a decision.
    pub fn timed_out(&self, key: &str) -> bool {
        self.gate(key)
            .is_some_and(|g| g.status == GateStatus::TimedOut)
    }

    /// Gate `key` as stored (with its note and who-knows-when).
    pub fn gate(&self, key: &str) -> Option<&Gate> {
        self.gates.iter().find(|g| g.key == key)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    use drover_queue::testing::Backend;
    use drover_queue::NewJob;

    use super::*;

    #[tokio::test]
    async fn a_zero_sleep_is_a_safe_point_without_a_timer() {
        let backend = Backend::sqlite();
        let store = backend.open().await;
        let job = store
            .enqueue(NewJob::new("noop", "zero sleep"))
            .await
            .expect("enqueue")
            .into_job();
        let fence = Fence {
            job: job.id,
            epoch: 0,
        };
        let (control, control_rx) = watch::channel(Control::default());
        let ctx = JobContext::new(
            job,
            fence,
            store,
            control_rx,
            Arc::new(RunSettings::default()),
        );
        // Polled by hand, nothing drives tokio's timer wheel: a sleep that registered a timer
        // stays pending on every poll here, while the safe point is ready once it has yielded.
        let mut cx = Context::from_waker(Waker::noop());
        let mut sleep = std::pin::pin!(ctx.sleep(Duration::ZERO));
        let ready = (0..3).find_map(|_| match sleep.as_mut().poll(&mut cx) {
            Poll::Ready(result) => Some(result),
            Poll::Pending => None,
        });
        assert_eq!(ready, Some(Ok(())), "a zero sleep waited for a timer tick");
        // It is still a safe point.
        control.send_modify(|c| c.pause = true);
        assert_eq!(ctx.sleep(Duration::ZERO).await, Err(Interrupt::Pause));
        backend.cleanup().await;
    }
}
