//! Jobs and their leases: enqueue, read, claim, renew and every way a run ends.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{StoreError, StoreResult};
use crate::job::{Job, JobFailure, JobId, NewJob};
use crate::operator::OperatorAction;
use crate::status::JobStatus;
use crate::transitions::{self, Transact};

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

/// How a running job stops without finishing (see [`JobStore::release`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Graceful shutdown: back to `queued` at once; the attempt is not counted.
    Shutdown,
    /// An operator's pause request, honoured at a safe point: `paused`.
    Pause,
    /// An operator's cancel request, honoured at a safe point: `cancelled`.
    Cancel,
}

/// One finished run to record with [`JobStore::complete_many`].
#[derive(Debug, Clone)]
pub struct Completion {
    pub fence: Fence,
    pub result: Value,
}

/// What [`JobStore::complete_many`] did with one completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completed {
    /// The job is `completed` under this fence (by this call or an earlier try of it).
    Done,
    /// The fence no longer holds (another worker owns the job, or the job is gone):
    /// nothing was written for it.
    Fenced,
}

/// Filters for [`JobStore::list`].
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

impl JobFilter {
    /// The page size a list honours: `limit`, between 1 and 1,000.
    pub fn page_size(&self) -> usize {
        self.limit.clamp(1, 1000)
    }
}

impl JobPage {
    /// The page made of `jobs`, read newest first with one more than `limit` where there
    /// were enough: the extra job only says that a next page exists.
    pub fn from_newest(mut jobs: Vec<Job>, limit: usize) -> JobPage {
        let next = if jobs.len() > limit {
            jobs.truncate(limit);
            jobs.last().map(|j| j.id)
        } else {
            None
        };
        JobPage { jobs, next }
    }
}

/// Jobs and their leases.
///
/// The transitions that read a job, decide and write it back (`fail`, `release`, `pause`,
/// `resume`, `cancel`) are provided once, in [`crate::transitions`], on the backend's
/// [`Transact`] primitives; a backend implements only the hot paths below.
#[async_trait]
pub trait JobStore: Transact {
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

    /// Finish the job with a result (fenced). Repeating it with the same fence returns the
    /// job. One completion through [`JobStore::complete_many`], then the job as stored.
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
    ) -> StoreResult<Job> {
        transitions::fail(self, fence, failure, retry_in).await
    }

    /// Stop a running job without finishing it (fenced); see [`Release`].
    async fn release(&self, fence: Fence, how: Release) -> StoreResult<Job> {
        transitions::release(self, fence, how).await
    }

    /// A running job waits until `until` without holding a slot (fenced): `queued` with that
    /// `run_at`, no attempt used, `reason` in the `status` event. See [`transitions::snooze`].
    async fn snooze(&self, fence: Fence, until: DateTime<Utc>, reason: &str) -> StoreResult<Job> {
        transitions::snooze(self, fence, until, reason).await
    }

    /// Operator pause: queued → paused at once; running → a request honoured at a safe point.
    async fn pause(&self, id: JobId) -> StoreResult<Job> {
        transitions::operator(self, id, OperatorAction::Pause).await
    }

    /// Operator resume: paused → queued; a running job's pending pause request is withdrawn.
    async fn resume(&self, id: JobId) -> StoreResult<Job> {
        transitions::operator(self, id, OperatorAction::Resume).await
    }

    /// Operator cancel: queued/paused → cancelled at once; running → a request honoured at a
    /// safe point.
    async fn cancel(&self, id: JobId) -> StoreResult<Job> {
        transitions::operator(self, id, OperatorAction::Cancel).await
    }
}
