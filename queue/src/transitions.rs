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

use crate::gate::{self, Decided, Gate, GateRefusal, NewGate};
use crate::job::{InvalidJob, Job, JobFailure, JobId};
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
    /// The job's gates, once [`Transact::load_gates`] read them under the same hold.
    pub gates: Option<Vec<Gate>>,
}

impl Loaded {
    /// A job read under `hold` at `now`, its gates not read yet.
    pub(crate) fn new(job: Job, now: DateTime<Utc>, hold: Hold) -> Loaded {
        Loaded {
            job,
            now,
            hold,
            gates: None,
        }
    }

    /// The gates [`Transact::load_gates`] read (none before it was called).
    fn gates(&self) -> &[Gate] {
        self.gates.as_deref().unwrap_or_default()
    }
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

/// A decided write: the job's new fields, why its status changed, the gates it changes, and
/// whom to tell.
#[derive(Debug, Clone)]
pub struct Write {
    /// The job as it must be stored. A changed status appends a `status` event; otherwise
    /// only the request flags and the lease fields are written.
    pub job: Job,
    /// The reason the `status` event names (`lease_expired`, `snoozed`, …).
    pub reason: Option<&'static str>,
    /// A text the `status` event carries as `note` (why a job snoozed).
    pub note: Option<String>,
    /// Gates to store as they are here (opened, decided or timed out), each with a `gate`
    /// event, after the `status` event.
    pub gates: Vec<Gate>,
    pub wake: Wake,
}

impl Write {
    /// A write of `job` alone, waking whom `wake` names.
    fn job(job: Job, reason: Option<&'static str>, wake: Wake) -> Write {
        Write {
            job,
            reason,
            note: None,
            gates: Vec::new(),
            wake,
        }
    }

    /// The data of the `status` event this write appends when it changes the status.
    pub fn status_event(&self) -> serde_json::Value {
        let mut data = crate::row::status_event(&self.job, self.reason);
        if let Some(note) = &self.note {
            data["note"] = note.clone().into();
        }
        data
    }
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

    /// Reads the job's gates into `loaded.gates` under its hold, so the save lands only if
    /// neither the job nor its gates changed meanwhile.
    async fn load_gates(&self, loaded: &mut Loaded) -> StoreResult<()>;

    /// Up to `limit` jobs, not finished, holding an open gate whose deadline passed
    /// (candidates: the timeout decides again on each under its lock).
    async fn gates_past_deadline(&self, limit: usize) -> StoreResult<Vec<JobId>>;
}

/// Read, decide, write-if-unchanged, until the write lands or `decide` answers without one.
async fn transition<B, F>(store: &B, id: JobId, mut decide: F) -> StoreResult<Job>
where
    B: Transact + ?Sized,
    F: FnMut(&Job, DateTime<Utc>) -> StoreResult<Decision> + Send,
{
    with_gates(
        store,
        id,
        |_| false,
        |loaded| decide(&loaded.job, loaded.now),
    )
    .await
}

/// As [`transition`], reading the job's gates too when `needs_gates` says so of the job.
async fn with_gates<B, G, F>(
    store: &B,
    id: JobId,
    needs_gates: G,
    mut decide: F,
) -> StoreResult<Job>
where
    B: Transact + ?Sized,
    G: Fn(&Job) -> bool + Send,
    F: FnMut(&Loaded) -> StoreResult<Decision> + Send,
{
    for _ in 0..MAX_TRIES {
        let mut loaded = store.load(id).await?;
        if needs_gates(&loaded.job) {
            store.load_gates(&mut loaded).await?;
        }
        let write = match decide(&loaded)? {
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
        Ok(Decision::Write(Write::job(
            job.clone(),
            None,
            wake_if_due(&job, now),
        )))
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
        let wake = wake_if_due(&job, now);
        Ok(Decision::Write(Write::job(
            job,
            Some(settle.reason()),
            wake,
        )))
    })
    .await
}

/// A running job waits for a rate limit, a window or a cap (fenced): back to `queued` with
/// `run_at = until` (now, if that is past), no attempt used, the reason in the `status`
/// event. A pending pause or cancel wins, as for any settle.
pub async fn snooze<B: Transact + ?Sized>(
    store: &B,
    fence: Fence,
    until: DateTime<Utc>,
    reason: &str,
) -> StoreResult<Job> {
    crate::store::refuse_nul_text("reason", reason)?;
    transition(store, fence.job, |job, now| {
        check_fence(job, fence)?;
        let mut job = Settle::Snooze.apply(job, now);
        if job.status == JobStatus::Queued {
            job.run_at = until.max(now);
        }
        let wake = wake_if_due(&job, now);
        let mut write = Write::job(job, Some(Settle::Snooze.reason()), wake);
        write.note = Some(reason.to_string());
        Ok(Decision::Write(write))
    })
    .await
}

/// Opens gates for a running job (fenced) and answers them as stored, in the order asked. A
/// key the job already has keeps its stored gate (and decision), so a step run again after a
/// resume finds its answers; new keys are stored open, each with a `gate` event.
pub async fn open_gates<B: Transact + ?Sized>(
    store: &B,
    fence: Fence,
    gates: Vec<NewGate>,
) -> StoreResult<Vec<Gate>> {
    for new in &gates {
        new.validate()?;
    }
    let mut answer = Vec::new();
    with_gates(
        store,
        fence.job,
        |_| true,
        |loaded| {
            check_fence(&loaded.job, fence)?;
            let stored = loaded.gates();
            let mut opened: Vec<Gate> = Vec::new();
            answer.clear();
            for new in &gates {
                let existing = stored
                    .iter()
                    .chain(opened.iter())
                    .find(|g| g.key == new.key)
                    .cloned();
                let gate = match existing {
                    Some(gate) => gate,
                    None => {
                        let gate = Gate::open(fence.job, new.clone(), loaded.now);
                        opened.push(gate.clone());
                        gate
                    }
                };
                answer.push(gate);
            }
            if opened.is_empty() {
                return Ok(Decision::Keep(loaded.job.clone()));
            }
            if stored.len() + opened.len() > gate::MAX_GATES_PER_JOB {
                return Err(StoreError::Invalid(InvalidJob {
                    field: "gates",
                    message: format!("a job holds at most {} gates", gate::MAX_GATES_PER_JOB),
                }));
            }
            let mut write = Write::job(loaded.job.clone(), None, Wake::Nobody);
            write.gates = opened;
            Ok(Decision::Write(write))
        },
    )
    .await?;
    Ok(answer)
}

/// Parks a running job on its open gates (fenced), after its runner checkpointed: `waiting`,
/// the lease and the attempt handed back. Gates past their deadline take their default on the
/// way. With no gate open any more (every one was decided while the job was still parking)
/// it goes back to `queued` at once instead, so no decision is lost. A pending cancel or
/// pause wins.
pub async fn park<B: Transact + ?Sized>(store: &B, fence: Fence) -> StoreResult<Job> {
    with_gates(
        store,
        fence.job,
        |_| true,
        |loaded| {
            check_fence(&loaded.job, fence)?;
            let now = loaded.now;
            let timed_out: Vec<Gate> = loaded
                .gates()
                .iter()
                .filter_map(|g| gate::time_out(g, now))
                .collect();
            let still_open = loaded
                .gates()
                .iter()
                .filter(|g| g.is_open() && !timed_out.iter().any(|t| t.key == g.key))
                .count();
            let settle = if still_open > 0 {
                Settle::Wait
            } else {
                Settle::Shutdown
            };
            let mut job = settle.apply(&loaded.job, now);
            let reason = if still_open > 0 || job.status != JobStatus::Queued {
                settle.reason()
            } else {
                "gates_decided"
            };
            let wake = wake_if_due(&job, now);
            if job.status == JobStatus::Queued {
                job.run_at = now;
            }
            let mut write = Write::job(job, Some(reason), wake);
            write.gates = timed_out;
            Ok(Decision::Write(write))
        },
    )
    .await
}

/// Where a job goes once `gates` (its gates after a change) hold none open: a waiting job is
/// queued again and due at once; any other status stays.
fn wake_when_decided(job: &Job, gates: &[Gate], now: DateTime<Utc>) -> (Job, Wake) {
    let mut job = job.clone();
    if job.status == JobStatus::Waiting && !gates.iter().any(Gate::is_open) {
        job.status = JobStatus::Queued;
        job.run_at = now;
        return (job, Wake::Queue);
    }
    (job, Wake::Nobody)
}

/// An operator decides a gate: recorded with its note, a `gate` event, and the job queued
/// again when it was waiting and no gate of it is open any more. The same decision again
/// answers the gate as it is; a different one, or one after the deadline, is a conflict; one
/// the gate does not accept is invalid (naming `decision`). A decision on a running job's
/// gate is kept for the step (it reads it once it parks or runs again).
pub async fn decide<B: Transact + ?Sized>(
    store: &B,
    id: JobId,
    decision: gate::Decision,
) -> StoreResult<Gate> {
    gate::check_gate_key(&decision.key)?;
    let mut answer = None;
    with_gates(
        store,
        id,
        |_| true,
        |loaded| {
            let gates = loaded.gates();
            let gate = gates
                .iter()
                .find(|g| g.key == decision.key)
                .ok_or_else(|| StoreError::NoGate {
                    job: id,
                    key: decision.key.clone(),
                })?;
            if loaded.job.status.is_terminal() && gate.is_open() {
                return Err(StoreError::GateConflict {
                    job: id,
                    key: decision.key.clone(),
                    message: format!(
                        "the job is {}; its gates can no longer be decided",
                        loaded.job.status
                    ),
                });
            }
            let decided = match gate::decide(gate, &decision, loaded.now) {
                Ok(Decided::Already(gate)) => {
                    answer = Some(gate);
                    return Ok(Decision::Keep(loaded.job.clone()));
                }
                Ok(Decided::Now(gate)) => gate,
                Err(GateRefusal::Conflict(message)) => {
                    return Err(StoreError::GateConflict {
                        job: id,
                        key: decision.key.clone(),
                        message,
                    })
                }
                Err(GateRefusal::Invalid(message)) => {
                    return Err(StoreError::Invalid(InvalidJob {
                        field: "decision",
                        message,
                    }))
                }
                Err(GateRefusal::InvalidNote(message)) => {
                    return Err(StoreError::Invalid(InvalidJob {
                        field: "note",
                        message,
                    }))
                }
            };
            let after: Vec<Gate> = gates
                .iter()
                .map(|g| {
                    if g.key == decided.key {
                        decided.clone()
                    } else {
                        g.clone()
                    }
                })
                .collect();
            let (job, wake) = wake_when_decided(&loaded.job, &after, loaded.now);
            let reason = (job.status != loaded.job.status).then_some("gates_decided");
            answer = Some(decided.clone());
            let mut write = Write::job(job, reason, wake);
            write.gates = vec![decided];
            Ok(Decision::Write(write))
        },
    )
    .await?;
    answer.ok_or_else(|| StoreError::Backend("decide answered no gate".into()))
}

/// Times out the open gates past their deadline of up to `limit` jobs: each takes its
/// default (recorded `timed_out`), and a waiting job with no gate open any more is queued
/// again. Returns how many gates timed out.
pub async fn time_out_gates<B: Transact + ?Sized>(store: &B, limit: usize) -> StoreResult<usize> {
    let mut count = 0;
    for id in store.gates_past_deadline(limit).await? {
        let mut timed = 0;
        let result = with_gates(
            store,
            id,
            |_| true,
            |loaded| {
                timed = 0;
                let now = loaded.now;
                let timed_out: Vec<Gate> = loaded
                    .gates()
                    .iter()
                    .filter_map(|g| gate::time_out(g, now))
                    .collect();
                if timed_out.is_empty() || loaded.job.status.is_terminal() {
                    return Ok(Decision::Keep(loaded.job.clone()));
                }
                timed = timed_out.len();
                let after: Vec<Gate> = loaded
                    .gates()
                    .iter()
                    .map(|g| {
                        timed_out
                            .iter()
                            .find(|t| t.key == g.key)
                            .cloned()
                            .unwrap_or_else(|| g.clone())
                    })
                    .collect();
                let (job, wake) = wake_when_decided(&loaded.job, &after, now);
                let reason = (job.status != loaded.job.status).then_some("gates_timed_out");
                let mut write = Write::job(job, reason, wake);
                write.gates = timed_out;
                Ok(Decision::Write(write))
            },
        )
        .await;
        match result {
            Ok(_) => count += timed,
            Err(StoreError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(count)
}

/// An operator's pause, resume or cancel: a move now, or a request the runner honours at
/// its next safe point ([`operator::decide`]).
pub async fn operator<B: Transact + ?Sized>(
    store: &B,
    id: JobId,
    action: OperatorAction,
) -> StoreResult<Job> {
    // Resuming a paused job needs its gates: one still open makes it `waiting` again.
    let resuming_paused =
        move |job: &Job| action == OperatorAction::Resume && job.status == JobStatus::Paused;
    with_gates(store, id, resuming_paused, |loaded| {
        let (job, now) = (&loaded.job, loaded.now);
        let change = operator::decide(action, job)
            .map_err(|illegal| StoreError::IllegalTransition { job: id, illegal })?;
        let mut job = job.clone();
        let wake = match change {
            Change::Move(JobStatus::Queued) if loaded.gates().iter().any(Gate::is_open) => {
                job.status = JobStatus::Waiting;
                Wake::Nobody
            }
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
        Ok(Decision::Write(Write::job(job, None, wake)))
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
            let wake = wake_if_due(&job, now);
            Ok(Decision::Write(Write::job(
                job,
                Some(Settle::LeaseExpired.reason()),
                wake,
            )))
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
