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

/// The effects this job already performed, by key (loaded once per run), with the intents
/// recorded before performing them (under [`INTENT_PREFIX`]).
pub(crate) type Ledger = Arc<Mutex<HashMap<String, Value>>>;

/// The ledger key of an effect's intent: `intent:<key>`. Effect keys may not start with it.
pub const INTENT_PREFIX: &str = "intent:";

/// The field of a recorded outcome that says it is unknown.
const UNKNOWN: &str = "$unknown";

fn intent_key(key: &str) -> String {
    format!("{INTENT_PREFIX}{key}")
}

fn parse_recorded<T: DeserializeOwned>(key: &str, value: Value) -> Result<T, JobError> {
    serde_json::from_value(value)
        .map_err(|e| JobError::Permanent(format!("recorded effect `{key}` does not parse: {e}")))
}

/// What the ledger holds for an effect key.
enum Entry {
    /// A result: the effect happened.
    Done(Value),
    /// Recorded as unknown by [`StepContext::effect_once`].
    Unknown,
    /// An intent without a result: an earlier run may or may not have performed it.
    Pending,
    /// Nothing: never attempted.
    New,
}

/// What [`StepContext::effect_once`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once<T> {
    /// Performed (by this run or an earlier one), with its result.
    Done(T),
    /// An earlier run recorded its intent but not its outcome: it may or may not have
    /// happened, and it is never attempted again.
    Unknown,
}

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

    /// The store, for state a workload shares across jobs and workers (see
    /// [`JobContext::store`]).
    pub fn store(&self) -> &std::sync::Arc<dyn drover_queue::Store> {
        self.job.store()
    }

    /// The outputs an earlier map step of this job stored, from index `from`, in index order,
    /// at most `limit` a call (see `RunLog::item_outputs`): how a report reads 10,000 leads
    /// without the state carrying them.
    pub async fn item_outputs(
        &self,
        step: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<drover_queue::ItemOutput>, JobError> {
        self.job.item_outputs(step, from, limit).await
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

    /// Performs an external side effect that is safe to repeat on the other side (an HTTP
    /// API honouring an `Idempotency-Key`), at most once per job and `key` as far as the
    /// ledger can tell.
    ///
    /// Before `perform` runs, a fenced *intent* is recorded: a worker that lost its lease is
    /// refused there and never performs. Then `perform` runs and its result is recorded
    /// (fenced) and returned. When this job already recorded a result for `key`, `perform`
    /// is not called and the recorded result is returned. When an earlier run recorded the
    /// intent but no result (it crashed, was cut off or failed in between), the outcome is
    /// unknown and `perform` runs again: that is why the other side must be idempotent. For
    /// an effect that must never repeat (an e-mail by SMTP), use [`StepContext::effect_once`].
    pub async fn effect<T, F, Fut>(&self, key: &str, perform: F) -> Result<T, JobError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, JobError>>,
    {
        match self.ledger_entry(key)? {
            Entry::Done(value) => parse_recorded(key, value),
            Entry::Unknown => Err(JobError::Permanent(format!(
                "effect `{key}` was recorded with an unknown outcome; it is not repeated"
            ))),
            Entry::Pending => {
                self.log(format!(
                    "effect `{key}`: an earlier run may have performed it (its outcome is \
                     unknown); performing it again, relying on the other side's idempotency"
                ))
                .await?;
                self.perform_and_record(key, perform).await
            }
            Entry::New => {
                self.record(&intent_key(key), json!({ "intent": true }))
                    .await?;
                self.perform_and_record(key, perform).await
            }
        }
    }

    /// Performs an external side effect that must never be repeated (an e-mail by SMTP,
    /// where a dropped connection after DATA leaves the outcome unknowable).
    ///
    /// As [`StepContext::effect`], a fenced intent is recorded first and the result after.
    /// But when an earlier run recorded the intent and no result, `perform` is **not**
    /// called: the effect is recorded as unknown and [`Once::Unknown`] is returned, now and
    /// on every later run. A `perform` that fails leaves its intent without a result, so a
    /// retried job sees it as unknown: return a definite failure (the server refused the
    /// message) as an `Ok` value of `T` rather than an error.
    pub async fn effect_once<T, F, Fut>(&self, key: &str, perform: F) -> Result<Once<T>, JobError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, JobError>>,
    {
        match self.ledger_entry(key)? {
            Entry::Done(value) => parse_recorded(key, value).map(Once::Done),
            Entry::Unknown => Ok(Once::Unknown),
            Entry::Pending => {
                self.record(key, json!({ UNKNOWN: true })).await?;
                self.log(format!(
                    "effect `{key}`: an earlier run recorded its intent but no outcome; \
                     recorded as unknown and not repeated"
                ))
                .await?;
                Ok(Once::Unknown)
            }
            Entry::New => {
                self.record(&intent_key(key), json!({ "intent": true }))
                    .await?;
                self.perform_and_record(key, perform).await.map(Once::Done)
            }
        }
    }

    /// True when this job has ever begun the effect `key` (an intent or a result is
    /// recorded): a step can then skip the preparation a first attempt needs (a browser, a
    /// filled form) and let [`StepContext::effect_once`] answer from the ledger.
    pub fn effect_begun(&self, key: &str) -> bool {
        !matches!(self.ledger_entry(key), Ok(Entry::New))
    }

    fn ledger_entry(&self, key: &str) -> Result<Entry, JobError> {
        if key.starts_with(INTENT_PREFIX) {
            return Err(JobError::Permanent(format!(
                "effect key `{key}`: the prefix `{INTENT_PREFIX}` is reserved"
            )));
        }
        let ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        Ok(match ledger.get(key) {
            Some(value) if value.get(UNKNOWN) == Some(&Value::Bool(true)) => Entry::Unknown,
            Some(value) => Entry::Done(value.clone()),
            None if ledger.contains_key(&intent_key(key)) => Entry::Pending,
            None => Entry::New,
        })
    }

    async fn perform_and_record<T, F, Fut>(&self, key: &str, perform: F) -> Result<T, JobError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, JobError>>,
    {
        // The intent landed under our fence; a lease known lost since then stops here.
        if let Some(interrupt) = self
            .job
            .interrupted()
            .filter(|i| *i == Interrupt::LeaseLost)
        {
            return Err(JobError::Interrupted(interrupt));
        }
        let result = perform().await?;
        let value = serde_json::to_value(&result)
            .map_err(|e| JobError::Permanent(format!("effect `{key}` result: {e}")))?;
        let stored = self.record(key, value).await?;
        parse_recorded(key, stored)
    }

    /// Records `value` under `key` (fenced; the first record of a key wins) and keeps it
    /// in this run's copy of the ledger.
    async fn record(&self, key: &str, value: Value) -> Result<Value, JobError> {
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
            .insert(key.to_string(), stored.clone());
        Ok(stored)
    }

    /// Updates the job's progress (coalesced: a few events a second at most).
    /// Asks an operator and waits without a slot: see [`JobContext::wait`]. In a map item,
    /// the other items go on; the job parks once every item that can run has run.
    pub async fn wait(
        &self,
        gates: Vec<drover_queue::NewGate>,
    ) -> Result<crate::context::Decisions, JobError> {
        self.job.wait(gates).await
    }

    /// Waits until `until` without a slot: see [`JobContext::snooze_until`].
    pub fn snooze_until(
        &self,
        until: chrono::DateTime<chrono::Utc>,
        reason: impl Into<String>,
    ) -> JobError {
        self.job.snooze_until(until, reason)
    }

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
