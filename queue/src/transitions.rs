//! Every transition that reads one job, decides, and writes it back, written once for all
//! backends: a failed attempt, a release (shutdown, pause, cancel at a safe point), the
//! operator's pause/resume/cancel, and reaping an expired lease.
//!
//! Each backend gives two primitives ([`Transact`]): *load the job for update* and *save it
//! if it did not change meanwhile*. PostgreSQL and SQLite hold the row in a transaction
//! between the two (`SELECT … FOR UPDATE`, `BEGIN IMMEDIATE`), so their save always lands;
//! Redis compares the job's version in a script, and a save that lost a race is retried
//! here with a fresh read. The decisions themselves are pure functions of the job and the
//! store's clock ([`crate::operator`]).
//!
//! Only the hot paths stay hand-tuned per backend: claim, renew, `complete_many`,
//! checkpoint, `append_event`, enqueue. A new transition is one function here and one
//! conformance test.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::job::{Job, JobFailure, JobId};
use crate::operator::{self, Change, Fail, OperatorAction, Settle};
use crate::status::JobStatus;
use crate::store::{Fence, Reaped, Release, StoreError, StoreResult};

/// How often a save that lost a race is retried before giving up (Redis only: the SQL
/// backends hold the row lock and never lose one).
const MAX_TRIES: usize = 100;

/// A job read for a transition, with what the backend needs to write it back atomically.
pub struct Loaded {
    /// The job as stored.
    pub job: Job,
    /// The store's clock at the read (the server's, where the backend has one), so every
    /// process of a fleet judges lease expiry and `run_at` by the same clock.
    pub now: DateTime<Utc>,
    pub(crate) hold: Hold,
}

/// What keeps a loaded job safe to write back: an open transaction holding its row, or the
/// version that the write compares against.
pub(crate) enum Hold {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Version(String),
}

/// Whom to wake once a write is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Nobody,
    /// Workers waiting on the job's queue: it is queued and due.
    Queue,
    /// The job's runner: an operator request was set on it.
    Control,
}

/// A decided write: the job's new fields, why its status changed, and whom to tell.
#[derive(Debug, Clone)]
pub struct Write {
    /// The job as it must be stored. A changed status appends a `status` event; otherwise
    /// only the request flags and the lease fields are written.
    pub job: Job,
    /// The reason the `status` event names, when a run was settled.
    pub reason: Option<Settle>,
    pub wake: Wake,
}

/// What a transition decided about the job it read.
enum Decision {
    Write(Write),
    /// Nothing to write; answer with the job as it is.
    Keep(Job),
}

/// The two primitives a backend gives the transitions. Not for callers: go through
/// [`crate::JobStore`] and [`crate::Maintenance`], which are built on these.
#[async_trait]
pub trait Transact: Send + Sync {
    /// Reads the job for update ([`StoreError::NotFound`] when it does not exist).
    async fn load(&self, id: JobId) -> StoreResult<Loaded>;

    /// Writes `write` over `loaded` if the job did not change since it was read, and wakes
    /// whom it names after the write is durable. `Ok(None)`: it changed; read and decide
    /// again.
    async fn save(&self, loaded: Loaded, write: Write) -> StoreResult<Option<Job>>;

    /// Up to `limit` running jobs whose lease expired, oldest expiry first (candidates: the
    /// reap decides again on each under its lock).
    async fn expired_leases(&self, limit: usize) -> StoreResult<Vec<JobId>>;
}

/// Read, decide, write-if-unchanged, until the write lands or `decide` answers without one.
async fn transition<B, F>(store: &B, id: JobId, mut decide: F) -> StoreResult<Job>
where
    B: Transact + ?Sized,
    F: FnMut(&Job, DateTime<Utc>) -> StoreResult<Decision> + Send,
{
    for _ in 0..MAX_TRIES {
        let loaded = store.load(id).await?;
        let write = match decide(&loaded.job, loaded.now)? {
            Decision::Keep(job) => return Ok(job),
            Decision::Write(write) => write,
        };
        if let Some(job) = store.save(loaded, write).await? {
            return Ok(job);
        }
    }
    Err(StoreError::Unavailable(format!(
        "job {id}: too many concurrent writes; try again"
    )))
}

/// Refuses a runner's write when `fence` no longer holds the job.
fn check_fence(job: &Job, fence: Fence) -> StoreResult<()> {
    if job.lease_epoch != fence.epoch || job.status != JobStatus::Running {
        return Err(StoreError::Fenced {
            job: fence.job,
            epoch: fence.epoch,
        });
    }
    Ok(())
}

/// Wake the queue's workers when the job went back to the queue and is due.
fn wake_if_due(job: &Job, now: DateTime<Utc>) -> Wake {
    if job.status == JobStatus::Queued && job.run_at <= now {
        Wake::Queue
    } else {
        Wake::Nobody
    }
}

/// A failed attempt (fenced): queued again at now + `retry_in` while attempts remain and
/// the error may be retried, failed for good otherwise.
pub async fn fail<B: Transact + ?Sized>(
    store: &B,
    fence: Fence,
    failure: JobFailure,
    retry_in: Option<Duration>,
) -> StoreResult<Job> {
    let fail = Fail { failure, retry_in };
    transition(store, fence.job, |job, now| {
        check_fence(job, fence)?;
        let job = fail.apply(job, now);
        Ok(Decision::Write(Write {
            wake: wake_if_due(&job, now),
            job,
            reason: None,
        }))
    })
    .await
}

/// A running job stops without finishing (fenced): see [`Release`] and [`Settle`].
pub async fn release<B: Transact + ?Sized>(
    store: &B,
    fence: Fence,
    how: Release,
) -> StoreResult<Job> {
    let settle = Settle::from(how);
    transition(store, fence.job, |job, now| {
        check_fence(job, fence)?;
        let job = settle.apply(job, now);
        Ok(Decision::Write(Write {
            wake: wake_if_due(&job, now),
            job,
            reason: Some(settle),
        }))
    })
    .await
}

/// An operator's pause, resume or cancel: a move now, or a request the runner honours at
/// its next safe point ([`operator::decide`]).
pub async fn operator<B: Transact + ?Sized>(
    store: &B,
    id: JobId,
    action: OperatorAction,
) -> StoreResult<Job> {
    transition(store, id, |job, now| {
        let change = operator::decide(action, job)
            .map_err(|illegal| StoreError::IllegalTransition { job: id, illegal })?;
        let mut job = job.clone();
        let wake = match change {
            Change::Move(status) => {
                job.status = status;
                if status == JobStatus::Queued {
                    job.run_at = now;
                }
                wake_if_due(&job, now)
            }
            Change::Request {
                pause_requested,
                cancel_requested,
            } => {
                job.pause_requested = pause_requested;
                job.cancel_requested = cancel_requested;
                Wake::Control
            }
        };
        Ok(Decision::Write(Write {
            job,
            reason: None,
            wake,
        }))
    })
    .await
}

/// Takes back up to `limit` jobs whose lease expired ([`Settle::LeaseExpired`]). A job
/// renewed, settled or deleted since it was listed is left alone.
pub async fn reap_expired<B: Transact + ?Sized>(
    store: &B,
    limit: usize,
) -> StoreResult<Vec<Reaped>> {
    let mut reaped = Vec::new();
    for id in store.expired_leases(limit).await? {
        let mut previous_owner = None;
        let taken = transition(store, id, |job, now| {
            previous_owner = None;
            let expired =
                job.status == JobStatus::Running && job.lease_expires_at.is_some_and(|t| t < now);
            if !expired {
                return Ok(Decision::Keep(job.clone()));
            }
            previous_owner = Some(job.lease_owner.clone());
            let job = Settle::LeaseExpired.apply(job, now);
            Ok(Decision::Write(Write {
                wake: wake_if_due(&job, now),
                job,
                reason: Some(Settle::LeaseExpired),
            }))
        })
        .await;
        match taken {
            Ok(job) => {
                if let Some(previous_owner) = previous_owner {
                    reaped.push(Reaped {
                        job: id,
                        previous_owner,
                        status: job.status,
                    });
                }
            }
            Err(StoreError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(reaped)
}
