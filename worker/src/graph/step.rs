//! What a step's code sees: the job, safe points, the effect ledger, progress, logs and
//! artifacts. Every write carries the lease's fence.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_queue::{Job, NewArtifact};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::context::{Interrupt, JobContext};
use crate::graph::progress::{Progress, Reporter};
use crate::kind::JobError;

/// The effects this job already performed, by key (loaded once per run).
pub(crate) type Ledger = Arc<Mutex<HashMap<String, Value>>>;

/// A step's handle on its job. Cheap to clone (map items each get one).
#[derive(Clone)]
pub struct StepContext {
    pub(crate) job: JobContext,
    pub(crate) step: &'static str,
    pub(crate) ledger: Ledger,
    pub(crate) reporter: Arc<Reporter>,
}

impl StepContext {
    /// The job as it was leased.
    pub fn job(&self) -> &Job {
        self.job.job()
    }

    /// The job's `config`.
    pub fn config(&self) -> &Value {
        &self.job.job().config
    }

    /// This run's attempt number (1 for the first run).
    pub fn attempt(&self) -> u32 {
        self.job.job().attempt
    }

    /// The step this context belongs to.
    pub fn step(&self) -> &'static str {
        self.step
    }

    /// A safe point: `?` on it stops the step when a pause, cancel, shutdown or lost lease
    /// is pending.
    pub async fn safe_point(&self) -> Result<(), JobError> {
        self.job.safe_point().await.map_err(JobError::from)
    }

    /// Waits (a rate limiter, a retry delay); the wait is a safe point.
    pub async fn sleep(&self, duration: Duration) -> Result<(), JobError> {
        self.job.sleep(duration).await.map_err(JobError::from)
    }

    /// The pending interrupt, if any, without waiting.
    pub fn interrupted(&self) -> Option<Interrupt> {
        self.job.interrupted()
    }

    /// Performs an external side effect at most once per job and `key`.
    ///
    /// If this job already recorded `key` (in this run or an earlier one), `perform` is not
    /// called and the recorded result is returned. Otherwise `perform` runs and its result
    /// is recorded durably (fenced) before it is returned. A crash after `perform` returns
    /// and before the record lands is the one window in which the effect can repeat; keep
    /// the effect idempotent on the other side too (an idempotency key) to close it.
    pub async fn effect<T, F, Fut>(&self, key: &str, perform: F) -> Result<T, JobError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, JobError>>,
    {
        let recorded = self
            .ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned();
        if let Some(value) = recorded {
            return serde_json::from_value(value).map_err(|e| {
                JobError::Permanent(format!("recorded effect `{key}` does not parse: {e}"))
            });
        }
        let result = perform().await?;
        let value = serde_json::to_value(&result)
            .map_err(|e| JobError::Permanent(format!("effect `{key}` result: {e}")))?;
        let stored = self
            .job
            .write(|store, fence| {
                let value = value.clone();
                async move { store.record_effect(fence, key, value).await }
            })
            .await?;
        self.ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), stored);
        Ok(result)
    }

    /// Updates the job's progress (coalesced: a few events a second at most).
    pub async fn progress(&self, change: impl FnOnce(&mut Progress)) -> Result<(), JobError> {
        self.reporter.update(&self.job, change).await
    }

    /// Appends a `log` event.
    pub async fn log(&self, message: impl Into<String>) -> Result<(), JobError> {
        let data = json!({ "step": self.step, "message": message.into() });
        self.job.event("log", data).await.map(|_| ())
    }

    /// Stores a named artifact (a report, a screenshot) and appends an `artifact` event.
    pub async fn artifact(
        &self,
        name: &str,
        content_type: &str,
        data: Vec<u8>,
    ) -> Result<(), JobError> {
        let artifact = NewArtifact {
            name: name.to_string(),
            content_type: content_type.to_string(),
            data,
        };
        self.job
            .write(|store, fence| {
                let artifact = artifact.clone();
                async move { store.put_artifact(fence, artifact).await }
            })
            .await
            .map(|_| ())
    }
}
