//! What a job kind is, and the registry of kinds a worker can run.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use drover_queue::job::InvalidJob;
use drover_queue::NewJob;
use serde_json::Value;

use crate::context::{Interrupt, JobContext};

/// Why a run ended without a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Network, timeout, 429/5xx, rate limit: retried with backoff while attempts remain.
    #[error("transient: {0}")]
    Transient(String),
    /// Bad input, 4xx, invalid credentials: the job fails at once.
    #[error("permanent: {0}")]
    Permanent(String),
    /// A step ran past its `step_timeout`: retried like a transient error, recorded as a
    /// timeout.
    #[error("timeout: {0}")]
    Timeout(String),
    /// The run stopped at a safe point because of a pause, cancel, shutdown or lost lease.
    #[error("interrupted: {0:?}")]
    Interrupted(Interrupt),
    /// A step opened gates that are not decided yet: the runner parks the job (`waiting`)
    /// after its checkpoint, and the step runs again once every gate is decided
    /// ([`JobContext::wait`]).
    #[error("waiting for gates to be decided")]
    Wait,
    /// The job waits until a time without holding a slot ([`JobContext::snooze_until`]).
    #[error("snoozed until {until}: {reason}")]
    Snooze {
        until: chrono::DateTime<chrono::Utc>,
        reason: String,
    },
}

impl JobError {
    /// True for the ways a run stops that are not failures: an interrupt, a wait, a snooze.
    pub fn is_stop(&self) -> bool {
        matches!(
            self,
            JobError::Interrupted(_) | JobError::Wait | JobError::Snooze { .. }
        )
    }
}

impl From<Interrupt> for JobError {
    fn from(interrupt: Interrupt) -> Self {
        JobError::Interrupted(interrupt)
    }
}

/// A kind of job: how to run one. A kind's code holds only its business logic; the runner
/// around it handles leases, timeouts, panics, retries and settling.
#[async_trait]
pub trait Kind: Send + Sync + 'static {
    /// The name jobs are submitted with.
    fn name(&self) -> &'static str;

    /// `max_attempts` for jobs of this kind submitted without one (the configured default
    /// when `None`).
    fn max_attempts(&self) -> Option<u32> {
        None
    }

    /// Checks a job's `config` before it is enqueued; the error names the field.
    fn validate(&self, _config: &Value) -> Result<(), String> {
        Ok(())
    }

    /// Checks a whole job before it is enqueued: its goal and its config together (a
    /// workload that reads its target from the goal, with the config filling gaps). The
    /// error names the field (`goal`, `config.count`). By default, [`Kind::validate`].
    fn validate_job(&self, _goal: &str, config: &Value) -> Result<(), InvalidJob> {
        self.validate(config).map_err(|message| InvalidJob {
            field: "config",
            message,
        })
    }

    /// Runs the job to its result. Call `ctx.safe_point()` often enough that pause and
    /// cancel requests are honoured promptly.
    async fn run(&self, ctx: JobContext) -> Result<Value, JobError>;
}

/// The kinds a process knows, by name.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn Kind>>,
    /// JSON Schemas of kinds' `config`, for the OpenAPI document; a kind without one
    /// takes any object.
    config_schemas: BTreeMap<&'static str, Value>,
}

impl Registry {
    /// The kinds a production process runs: the real workloads only. drover has none yet
    /// besides its test kinds, so this is empty; a job of a test kind submitted to it is
    /// refused with a message naming `--enable-test-kinds`.
    pub fn production() -> Self {
        Registry::default()
    }

    /// [`Registry::production`] plus the test kinds (`noop`, `sleep`, `demo`;
    /// [`crate::kinds::TEST_KINDS`]), for tests, `drover demo`, `drover bench` and processes
    /// started with `--enable-test-kinds`. `demo` POSTs to any `config.effect_url`, which is
    /// why these are not in production registries.
    pub fn with_test_kinds() -> Self {
        let mut registry = Registry::production();
        registry.register(crate::kinds::Noop);
        registry.register(crate::kinds::Sleep);
        registry.register(crate::kinds::demo());
        registry.describe_config("sleep", crate::kinds::Sleep::config_schema());
        registry.describe_config("demo", crate::kinds::demo::config_schema());
        registry
    }

    pub fn register(&mut self, kind: impl Kind) -> &mut Self {
        self.kinds.insert(kind.name(), Arc::new(kind));
        self
    }

    /// Publishes the JSON Schema that `name`'s [`Kind::validate`] enforces on `config`, so
    /// that the OpenAPI document states it. It must accept exactly what `validate` accepts.
    pub fn describe_config(&mut self, name: &'static str, schema: Value) -> &mut Self {
        self.config_schemas.insert(name, schema);
        self
    }

    /// The JSON Schema of `name`'s `config`, when its kind published one.
    pub fn config_schema(&self, name: &str) -> Option<&Value> {
        self.config_schemas.get(name)
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Kind>> {
        self.kinds.get(name).cloned()
    }

    /// The names of every registered kind.
    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.keys().copied().collect()
    }

    /// Checks a job before it is enqueued and fills in its kind's defaults.
    pub fn prepare(&self, mut job: NewJob) -> Result<NewJob, InvalidJob> {
        job.validate()?;
        let kind = self.get(&job.kind).ok_or_else(|| InvalidJob {
            field: "kind",
            message: if crate::kinds::TEST_KINDS.contains(&job.kind.as_str()) {
                format!(
                    "`{}` is a test kind; start the server with --enable-test-kinds",
                    job.kind
                )
            } else {
                let known = self.names();
                let known = if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                };
                format!("unknown kind `{}` (known: {known})", job.kind)
            },
        })?;
        kind.validate_job(&job.goal, &job.config)?;
        if job.max_attempts.is_none() {
            job.max_attempts = kind.max_attempts();
        }
        Ok(job)
    }
}
