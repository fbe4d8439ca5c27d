//! The `Store` seam: how jobs are kept, leased, fenced and settled, split by concern the way
//! Oban splits its engine, peer and plugins:
//!
//! - [`JobStore`] (`jobs.rs`): enqueue, read, claim, renew, complete, fail, release and the
//!   operator's pause/resume/cancel;
//! - [`RunLog`] (`runlog.rs`): what a run leaves behind: events, checkpoints, effects, artifacts;
//! - [`Maintenance`] (`maintenance.rs`): reaping expired leases, retention, queue admin;
//! - [`Peers`] (`peers.rs`): the worker registry and leadership;
//! - [`Gates`] (`gates.rs`): the questions waiting jobs ask operators;
//! - [`ScheduleStore`] (`schedules.rs`): schedules as data;
//! - [`RateLimits`] (`limits.rs`): the fleet's shared rate limits per resource;
//! - [`Suppressions`] (`suppressions.rs`): who must not be written to, and who was;
//! - [`Profiles`] and [`Applications`] (`profiles.rs`): the apply workload's users (profile,
//!   résumé, sealed sessions) and each user's applications ledger with its caps.
//!
//! [`Store`] is all of them plus the connection itself. Every backend (SQLite, PostgreSQL, Redis)
//! implements them and passes the same conformance suite. Transitions that read a job, decide
//! and write it back are written once, in [`crate::transitions`], on the two primitives of
//! [`Transact`]; backends hand-tune only the hot paths.

mod gates;
mod jobs;
mod limits;
mod maintenance;
mod peers;
mod profiles;
mod runlog;
mod schedules;
mod suppressions;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::job::{InvalidJob, JobId, Priority};
use crate::notifier::Notifier;
use crate::status::IllegalTransition;

pub use crate::transitions::{Loaded, Transact, Wake, Write};
pub use gates::*;
pub use jobs::*;
pub use limits::*;
pub use maintenance::*;
pub use peers::*;
pub use profiles::*;
pub use runlog::*;
pub use schedules::*;
pub use suppressions::*;

/// What can go wrong talking to a store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("job {0} not found")]
    NotFound(JobId),
    #[error("job {job}: {illegal}")]
    IllegalTransition {
        job: JobId,
        illegal: IllegalTransition,
    },
    /// The write carried a lease epoch that is no longer the job's: another worker owns it now
    /// (or the job left `running`). The writer must stop working on the job.
    #[error("job {job}: lease epoch {epoch} is stale; the write was refused")]
    Fenced { job: JobId, epoch: i64 },
    #[error("job {job} has no gate `{key}`")]
    NoGate { job: JobId, key: String },
    /// The gate was decided otherwise, timed out, or its job finished.
    #[error("job {job}, gate `{key}`: {message}")]
    GateConflict {
        job: JobId,
        key: String,
        message: String,
    },
    #[error("idempotency_key `{key}` is already used by job {existing} with a different body")]
    IdempotencyConflict { key: String, existing: JobId },
    #[error("queue `{queue}` is full: it holds {max} unfinished jobs (queue.max_queue_size)")]
    QueueFull { queue: String, max: u64 },
    #[error(transparent)]
    Invalid(#[from] InvalidJob),
    /// The store could not be reached or the connection broke; retry with backoff.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Backend(String),
}

impl StoreError {
    /// True when retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::Error::*;
        match &err {
            Io(_) | Tls(_) | PoolTimedOut | PoolClosed | WorkerCrashed | Protocol(_) => {
                StoreError::Unavailable(err.to_string())
            }
            Database(db) => {
                // SQLite busy/locked, PostgreSQL admin shutdown / cannot connect now /
                // serialization failure: all pass if retried.
                let code = db.code().unwrap_or_default();
                let transient = matches!(
                    code.as_ref(),
                    "5" | "6" | "261" | "517" | "57P01" | "57P02" | "57P03" | "40001" | "40P01"
                ) || code.starts_with("08");
                if transient {
                    StoreError::Unavailable(err.to_string())
                } else {
                    StoreError::Backend(err.to_string())
                }
            }
            _ => StoreError::Backend(err.to_string()),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Options every backend honours.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Refuse enqueues to a queue holding this many unfinished jobs.
    pub max_queue_size: Option<u64>,
    /// `max_attempts` for jobs submitted without one (3 when unset).
    pub max_attempts: Option<u32>,
}

impl StoreOptions {
    pub fn default_max_attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(3).max(1)
    }
}

/// Checks shared by every backend's claim: a sane limit.
pub(crate) fn claim_limit(request: &ClaimRequest) -> i64 {
    request.limit.min(10_000) as i64
}

/// Converts a `Duration` to stored milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The priority name of a stored rank (unknown ranks read as normal).
pub(crate) fn priority_of(rank: i32) -> Priority {
    Priority::from_rank(rank).unwrap_or_default()
}
/// Refuses a value holding U+0000 anywhere (PostgreSQL cannot store it; every backend
/// refuses it alike), naming `field`.
pub(crate) fn refuse_nul(field: &'static str, value: &serde_json::Value) -> StoreResult<()> {
    if crate::job::has_nul(value) {
        return Err(StoreError::Invalid(InvalidJob {
            field,
            message: crate::job::NUL_MESSAGE.into(),
        }));
    }
    Ok(())
}

/// As [`refuse_nul`], for a text.
pub(crate) fn refuse_nul_text(field: &'static str, text: &str) -> StoreResult<()> {
    if text.contains('\0') {
        return Err(StoreError::Invalid(InvalidJob {
            field,
            message: crate::job::NUL_MESSAGE.into(),
        }));
    }
    Ok(())
}

/// Refuses a batch of completions when one result cannot be stored: the whole batch, as
/// PostgreSQL's single statement would, so every backend answers alike (the worker's
/// completer splits a refused batch to settle the others).
pub(crate) fn refuse_unstorable(completions: &[Completion]) -> StoreResult<()> {
    completions
        .iter()
        .try_for_each(|c| refuse_nul("result", &c.result))
}

/// Refuses an event no backend can store alike (U+0000 in its kind or data).
pub(crate) fn refuse_unstorable_event(kind: &str, data: &serde_json::Value) -> StoreResult<()> {
    refuse_nul_text("kind", kind)?;
    refuse_nul("data", data)
}

/// Refuses an effect record no backend can store alike (U+0000 in its key or result).
pub(crate) fn refuse_unstorable_effect(key: &str, result: &serde_json::Value) -> StoreResult<()> {
    refuse_nul_text("key", key)?;
    refuse_nul("result", result)
}

/// The longest artifact name.
pub const MAX_ARTIFACT_NAME_LEN: usize = 255;

/// Checks an artifact name (`[A-Za-z0-9._-]`, 1 to 255 characters, not `.` or `..`): it
/// becomes a download's file name and part of a URL path, so every backend's artifact write
/// refuses any other, naming `name`.
pub fn check_artifact_name(name: &str) -> Result<(), InvalidJob> {
    let ok = !name.is_empty()
        && name.len() <= MAX_ARTIFACT_NAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidJob {
            field: "name",
            message: format!(
                "an artifact name must be 1 to {MAX_ARTIFACT_NAME_LEN} of [A-Za-z0-9._-], \
                 and not `.` or `..`"
            ),
        })
    }
}

/// The durable job store: the four concerns over one connection.
///
/// Promises every backend keeps (and the conformance suite checks):
/// - a job returned by `enqueue` is durable;
/// - at most one worker holds a job's lease at a time; each claim bumps `lease_epoch`, and
///   every runner write carrying an older epoch is refused with [`StoreError::Fenced`];
/// - claims take only due, queued jobs of unpaused queues, by priority, then `run_at`, then id;
/// - every status change follows [`crate::status`] and appends a `status` event.
#[async_trait]
pub trait Store:
    JobStore
    + RunLog
    + Maintenance
    + Peers
    + Gates
    + ScheduleStore
    + RateLimits
    + Suppressions
    + Profiles
    + Applications
    + 'static
{
    /// `sqlite`, `postgres` or `redis`.
    fn backend(&self) -> &'static str;

    /// Where wake-ups and control requests arrive.
    fn notifier(&self) -> Arc<dyn Notifier>;

    /// Applies pending migrations; safe to call from many processes at once. Says which
    /// this call applied (none when another process had, or the store was up to date).
    async fn migrate(&self) -> StoreResult<crate::migrate::MigrationReport>;

    /// The store's schema version against this build's, without changing anything: a
    /// process that does not migrate (`workers.migrate: false`) checks it at start.
    async fn schema_status(&self) -> StoreResult<crate::migrate::SchemaStatus>;

    /// What an operator checks of the server behind the store (`drover doctor`), read
    /// without changing anything. The default knows nothing beyond the schema.
    async fn server_health(&self) -> StoreResult<ServerHealth> {
        Ok(ServerHealth::default())
    }
}

/// What [`Store::server_health`] reads; each field is `None` where it does not apply to
/// the backend (or, for `append_only`, when the server does not say).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerHealth {
    /// PostgreSQL: the server's clock (`now()`). Leases and schedules are stamped with it,
    /// so a host whose clock is far off misjudges expiries.
    pub clock: Option<chrono::DateTime<chrono::Utc>>,
    /// Redis: whether AOF is on (`CONFIG GET appendonly`); without it a Redis crash loses
    /// acknowledged jobs.
    pub append_only: Option<bool>,
    /// SQLite: the database file, whose disk must not fill.
    pub file: Option<std::path::PathBuf>,
}
