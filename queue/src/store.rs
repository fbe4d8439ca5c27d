//! The `Store` seam: how jobs are kept, leased, fenced and settled. Every backend
//! (SQLite, PostgreSQL, later Redis) implements it and passes the same conformance suite.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::job::{InvalidJob, Job, JobFailure, JobId, NewJob, Priority};
use crate::notifier::Notifier;
use crate::status::{IllegalTransition, JobStatus};

/// What can go wrong talking to a store.
#[derive(Debug, thiserror::Error)]
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

/// The outcome of an enqueue.
#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    /// A new job was stored.
    Created(Job),
    /// A job with the same `idempotency_key` and the same body already existed.
    Existing(Job),
}

impl Enqueued {
    pub fn job(&self) -> &Job {
        match self {
            Enqueued::Created(job) | Enqueued::Existing(job) => job,
        }
    }

    pub fn into_job(self) -> Job {
        match self {
            Enqueued::Created(job) | Enqueued::Existing(job) => job,
        }
    }

    pub fn is_created(&self) -> bool {
        matches!(self, Enqueued::Created(_))
    }
}

/// What a worker asks for when it has free slots.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub worker_id: String,
    /// At most this many jobs: the worker's free slots, never more.
    pub limit: usize,
    /// How long the lease lasts unless renewed.
    pub lease_ttl: Duration,
    /// Only these queues; empty means every queue.
    pub queues: Vec<String>,
}

/// A held lease: the job as it was when leased and the epoch every write must carry.
#[derive(Debug, Clone)]
pub struct Lease {
    pub job: Job,
    pub epoch: i64,
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    pub fn fence(&self) -> Fence {
        Fence {
            job: self.job.id,
            epoch: self.epoch,
        }
    }
}

/// The proof of ownership a runner's write carries: the job and the epoch it was leased at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fence {
    pub job: JobId,
    pub epoch: i64,
}

/// What a lease renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Still ours; an operator may have asked for a pause or cancel meanwhile.
    Held {
        pause_requested: bool,
        cancel_requested: bool,
    },
    /// Gone: the epoch moved on or the job left `running`. Stop and write nothing more.
    Lost,
}

/// How a running job stops without finishing (see [`Store::release`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Graceful shutdown: back to `queued` at once; the attempt is not counted.
    Shutdown,
    /// An operator's pause request, honoured at a safe point: `paused`.
    Pause,
    /// An operator's cancel request, honoured at a safe point: `cancelled`.
    Cancel,
}

/// One finished run to record with [`Store::complete_many`].
#[derive(Debug, Clone)]
pub struct Completion {
    pub fence: Fence,
    pub result: Value,
}

/// What [`Store::complete_many`] did with one completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completed {
    /// The job is `completed` under this fence (by this call or an earlier try of it).
    Done,
    /// The fence no longer holds (another worker owns the job, or the job is gone):
    /// nothing was written for it.
    Fenced,
}

/// A checkpoint to write.
#[derive(Debug, Clone)]
pub struct NewCheckpoint {
    pub step: String,
    pub state: Vec<u8>,
    /// The state is zstd-compressed.
    pub compressed: bool,
}

/// A stored checkpoint.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checkpoint {
    pub job_id: uuid::Uuid,
    /// Per job, increasing.
    pub seq: i64,
    pub step: String,
    #[serde(skip)]
    pub state: Vec<u8>,
    pub compressed: bool,
    pub size: usize,
    pub created_at: DateTime<Utc>,
}

/// One entry of a job's event log.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub job_id: uuid::Uuid,
    /// Per job, increasing, no gaps.
    pub seq: i64,
    /// status | progress | checkpoint | log | artifact | error
    pub kind: String,
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

/// A completed external side effect, as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Effect {
    pub key: String,
    pub result: Value,
    /// The lease epoch of the run that performed it.
    pub epoch: i64,
    pub created_at: DateTime<Utc>,
}

/// An artifact to store.
#[derive(Debug, Clone)]
pub struct NewArtifact {
    pub name: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// A stored artifact's metadata.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArtifactMeta {
    pub name: String,
    pub content_type: String,
    pub size: usize,
    pub created_at: DateTime<Utc>,
}

/// A stored artifact with its content.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub meta: ArtifactMeta,
    pub data: Vec<u8>,
}

/// A job the reaper took back from a dead worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaped {
    pub job: JobId,
    pub previous_owner: Option<String>,
    pub status: JobStatus,
}

/// Filters for [`Store::list`].
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub kind: Option<String>,
    pub created_by: Option<String>,
    /// Jobs older than this id (the previous page's cursor).
    pub before: Option<JobId>,
    pub limit: usize,
}

/// One page of jobs, newest first.
#[derive(Debug, Clone)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Pass as `before` for the next page; `None` on the last page.
    pub next: Option<JobId>,
}

/// Per-queue depth and state.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct QueueStats {
    pub name: String,
    pub paused: bool,
    /// Unfinished jobs by status (queued, running, paused).
    pub by_status: std::collections::BTreeMap<String, u64>,
    /// Queued jobs by priority.
    pub queued_by_priority: std::collections::BTreeMap<String, u64>,
    /// Age of the oldest job that is due and waiting, in seconds.
    pub oldest_waiting_secs: Option<f64>,
}

/// A live worker process, as its heartbeat reports it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerInfo {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub slots: u32,
    pub busy: u32,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
}

/// How long finished jobs (and their events, checkpoints, effects, artifacts) are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub completed: Duration,
    pub failed: Duration,
    pub cancelled: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: Duration = Duration::from_secs(86_400);
        Retention {
            completed: DAY * 3,
            failed: DAY * 30,
            cancelled: DAY * 30,
        }
    }
}

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

/// The durable job store.
///
/// Promises every backend keeps (and the conformance suite checks):
/// - a job returned by `enqueue` is durable;
/// - at most one worker holds a job's lease at a time; each claim bumps `lease_epoch`, and
///   every runner write carrying an older epoch is refused with [`StoreError::Fenced`];
/// - claims take only due, queued jobs of unpaused queues, by priority, then `run_at`, then id;
/// - every status change follows [`crate::status`] and appends a `status` event.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite`, `postgres` or `redis`.
    fn backend(&self) -> &'static str;

    /// Where wake-ups and control requests arrive.
    fn notifier(&self) -> Arc<dyn Notifier>;

    /// Applies pending migrations; safe to call from many processes at once.
    async fn migrate(&self) -> StoreResult<()>;

    /// Store one job. Same `idempotency_key` and same body: the existing job.
    async fn enqueue(&self, job: NewJob) -> StoreResult<Enqueued> {
        let mut results = self.enqueue_batch(vec![job]).await?;
        results
            .pop()
            .ok_or_else(|| StoreError::Backend("enqueue stored nothing".into()))
    }

    /// Store many jobs in one transaction: all or none.
    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Enqueued>>;

    async fn get(&self, id: JobId) -> StoreResult<Job>;

    async fn list(&self, filter: &JobFilter) -> StoreResult<JobPage>;

    /// Lease up to `limit` due jobs (in one round trip where the backend allows).
    async fn claim(&self, request: &ClaimRequest) -> StoreResult<Vec<Lease>>;

    /// Extend many leases at once; one answer per fence, in order.
    async fn renew(&self, fences: &[Fence], ttl: Duration) -> StoreResult<Vec<Renewal>>;

    /// Store a checkpoint (fenced), keeping only the newest `keep`. Returns its seq.
    async fn checkpoint(
        &self,
        fence: Fence,
        checkpoint: NewCheckpoint,
        keep: usize,
    ) -> StoreResult<i64>;

    /// The newest checkpoint, if any.
    async fn latest_checkpoint(&self, id: JobId) -> StoreResult<Option<Checkpoint>>;

    /// The kept checkpoints' metadata, oldest first.
    async fn checkpoints(&self, id: JobId) -> StoreResult<Vec<Checkpoint>>;

    /// Append an event to the job's log (fenced). Returns its seq.
    async fn append_event(&self, fence: Fence, kind: &str, data: Value) -> StoreResult<i64>;

    /// Events with seq > `after`, oldest first, at most `limit` and never more than
    /// [`MAX_EVENTS_PER_READ`]: a caller that wants the whole log pages on with the last seq.
    async fn events(&self, id: JobId, after: i64, limit: usize) -> StoreResult<Vec<Event>>;

    /// Record a completed side effect under `key` (fenced). The first record for a key
    /// wins: recording it again returns the stored result, not the new one.
    async fn record_effect(&self, fence: Fence, key: &str, result: Value) -> StoreResult<Value>;

    /// Every effect the job has recorded.
    async fn effects(&self, id: JobId) -> StoreResult<Vec<Effect>>;

    /// Store (or replace) a named artifact (fenced), list it on the job and log an
    /// `artifact` event.
    async fn put_artifact(&self, fence: Fence, artifact: NewArtifact) -> StoreResult<ArtifactMeta>;

    /// The job's artifacts' metadata, by name.
    async fn artifacts(&self, id: JobId) -> StoreResult<Vec<ArtifactMeta>>;

    /// One artifact with its content.
    async fn artifact(&self, id: JobId, name: &str) -> StoreResult<Option<Artifact>>;

    /// Finish the job with a result (fenced). Repeating it with the same fence returns the
    /// job. One completion through [`Store::complete_many`], then the job as stored.
    async fn complete(&self, fence: Fence, result: Value) -> StoreResult<Job> {
        let answers = self.complete_many(&[Completion { fence, result }]).await?;
        let job = self.get(fence.job).await?;
        match answers.first() {
            Some(Completed::Done) => Ok(job),
            _ => Err(StoreError::Fenced {
                job: fence.job,
                epoch: fence.epoch,
            }),
        }
    }

    /// Finish many jobs at once, each under its own fence, in as few round trips and
    /// commits as the backend allows: one answer per completion, in order. A completion
    /// whose fence broke is refused alone; the others still land. When this returns `Ok`,
    /// every `Done` is durable.
    async fn complete_many(&self, completions: &[Completion]) -> StoreResult<Vec<Completed>>;

    /// Record a failed attempt (fenced). With `retry_in` and attempts left the job is queued
    /// again at now + `retry_in`; otherwise it fails for good.
    async fn fail(
        &self,
        fence: Fence,
        failure: JobFailure,
        retry_in: Option<Duration>,
    ) -> StoreResult<Job>;

    /// Stop a running job without finishing it (fenced); see [`Release`].
    async fn release(&self, fence: Fence, how: Release) -> StoreResult<Job>;

    /// Operator pause: queued → paused at once; running → a request honoured at a safe point.
    async fn pause(&self, id: JobId) -> StoreResult<Job>;

    /// Operator resume: paused → queued; a running job's pending pause request is withdrawn.
    async fn resume(&self, id: JobId) -> StoreResult<Job>;

    /// Operator cancel: queued/paused → cancelled at once; running → a request honoured at a
    /// safe point.
    async fn cancel(&self, id: JobId) -> StoreResult<Job>;

    /// Take back jobs whose lease expired: queued again (attempts left), or paused/cancelled
    /// when an operator asked for it, or failed when attempts ran out.
    async fn reap_expired(&self, limit: usize) -> StoreResult<Vec<Reaped>>;

    /// Deletes up to `limit` finished jobs whose retention (by status) has passed, with
    /// everything they own. Returns how many were deleted. Call repeatedly to drain.
    async fn prune(&self, retention: &Retention, limit: usize) -> StoreResult<u64>;

    /// The earliest future `run_at` among queued jobs, for the worker's wake-up timer.
    async fn next_run_at(&self) -> StoreResult<Option<DateTime<Utc>>>;

    async fn pause_queue(&self, name: &str) -> StoreResult<()>;
    async fn resume_queue(&self, name: &str) -> StoreResult<()>;
    async fn queues(&self) -> StoreResult<Vec<QueueStats>>;

    /// Record a worker's heartbeat (creates it on first call).
    async fn heartbeat_worker(&self, worker: &WorkerInfo) -> StoreResult<()>;
    /// Forget a worker (clean shutdown).
    async fn remove_worker(&self, id: &str) -> StoreResult<()>;
    /// Workers whose last heartbeat is younger than `within`.
    async fn workers(&self, within: Duration) -> StoreResult<Vec<WorkerInfo>>;

    /// Become (or stay) the holder of the named leadership for `ttl`. True when held.
    /// At most one holder at a time; a holder that stops renewing loses it after `ttl`.
    async fn try_lead(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool>;
    /// Give leadership up early (clean shutdown).
    async fn resign(&self, name: &str, holder: &str) -> StoreResult<()>;
}

/// The most events one [`Store::events`] call answers.
pub const MAX_EVENTS_PER_READ: usize = 10_000;

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
