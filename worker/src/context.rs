//! What a running job sees: its job, its fence, and the safe points where pause, cancel,
//! shutdown and a lost lease take effect.

use std::sync::Arc;
use std::time::Duration;

use drover_queue::{Fence, Job, NewCheckpoint, Store, StoreError};
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
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            max_checkpoints: 10,
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

    /// The store (for reads; writes go through the methods here so they stay fenced).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
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

    /// Writes a checkpoint of `state` after `step` (fenced). Returns its seq.
    pub async fn checkpoint<S: Serialize>(&self, step: &str, state: &S) -> Result<i64, JobError> {
        let bytes = serde_json::to_vec(state)
            .map_err(|e| JobError::Permanent(format!("state does not serialize: {e}")))?;
        let keep = self.settings.max_checkpoints;
        self.write(|store, fence| {
            let checkpoint = NewCheckpoint {
                step: step.to_string(),
                state: bytes.clone(),
                compressed: false,
            };
            async move { store.checkpoint(fence, checkpoint, keep).await }
        })
        .await
    }

    /// The state of the newest checkpoint, when the job has one (a resumed run).
    pub async fn resume_state<S: DeserializeOwned>(&self) -> Result<Option<S>, JobError> {
        let id = self.job.id;
        let checkpoint = self
            .write(|store, _| async move { store.latest_checkpoint(id).await })
            .await?;
        checkpoint
            .map(|c| {
                serde_json::from_slice(&c.state).map_err(|e| {
                    JobError::Permanent(format!("checkpoint {} does not parse: {e}", c.seq))
                })
            })
            .transpose()
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

    /// Runs a fenced store call, retrying while the store is unreachable and the lease holds.
    async fn write<T, F, Fut>(&self, call: F) -> Result<T, JobError>
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
