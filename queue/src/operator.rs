//! Decisions every backend makes the same way, on top of the status machine: what an
//! operator's pause/resume/cancel does to a job, and where a running job goes when it stops
//! without finishing (its lease expired, its worker shut down, or it honoured a request).

use crate::job::{FailureKind, Job, JobFailure};
use crate::status::{IllegalTransition, JobStatus, Transition};

/// What an operator asks of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorAction {
    Pause,
    Resume,
    Cancel,
}

impl OperatorAction {
    fn transition(self) -> Transition {
        match self {
            OperatorAction::Pause => Transition::Pause,
            OperatorAction::Resume => Transition::Resume,
            OperatorAction::Cancel => Transition::Cancel,
        }
    }
}

/// The write an operator action turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Move the job to this status now.
    Move(JobStatus),
    /// The job is running: set these request flags; its runner settles at a safe point.
    Request {
        pause_requested: bool,
        cancel_requested: bool,
    },
}

/// What `action` does to `job`, or why it cannot.
pub fn decide(action: OperatorAction, job: &Job) -> Result<Change, IllegalTransition> {
    let illegal = IllegalTransition {
        from: job.status,
        transition: action.transition(),
    };
    if job.status == JobStatus::Running {
        return match action {
            OperatorAction::Pause => Ok(Change::Request {
                pause_requested: true,
                cancel_requested: job.cancel_requested,
            }),
            OperatorAction::Cancel => Ok(Change::Request {
                pause_requested: job.pause_requested,
                cancel_requested: true,
            }),
            // Resuming a running job withdraws a pause it has not honoured yet.
            OperatorAction::Resume if job.pause_requested => Ok(Change::Request {
                pause_requested: false,
                cancel_requested: job.cancel_requested,
            }),
            OperatorAction::Resume => Err(illegal),
        };
    }
    job.status
        .after(action.transition())
        .map(Change::Move)
        .ok_or(illegal)
}

/// Why a running job stops without finishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Its worker stopped renewing the lease (crashed, cut off, paused by the OS).
    LeaseExpired,
    /// Its worker is shutting down gracefully and handed it back.
    Shutdown,
    /// It honoured a pause request at a safe point.
    Pause,
    /// It honoured a cancel request at a safe point.
    Cancel,
    /// It waits for a time (a rate limit reset, a sending window) without holding a slot.
    Snooze,
    /// It parks on gates an operator must decide.
    Wait,
}

/// Where a settled job goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub status: JobStatus,
    /// The attempt count to store (a shutdown or a pause hands the attempt back).
    pub attempt: u32,
    /// The error to record, if the job failed for good.
    pub error: Option<JobFailure>,
}

impl Settle {
    /// A short name for logs and the `status` event.
    pub fn reason(&self) -> &'static str {
        match self {
            Settle::LeaseExpired => "lease_expired",
            Settle::Shutdown => "shutdown",
            Settle::Pause => "paused",
            Settle::Cancel => "cancelled",
            Settle::Snooze => "snoozed",
            Settle::Wait => "waiting",
        }
    }

    /// Where `job` (running) goes. Pending operator requests win over requeueing, so a
    /// pause or cancel asked of a job whose worker died is not forgotten.
    pub fn outcome(self, job: &Job) -> Settled {
        let transition = match self {
            Settle::Cancel => Transition::Cancel,
            Settle::Pause => Transition::Pause,
            _ if job.cancel_requested => Transition::Cancel,
            _ if job.pause_requested => Transition::Pause,
            Settle::Shutdown | Settle::Snooze => Transition::Requeue,
            Settle::Wait => Transition::Wait,
            Settle::LeaseExpired if job.attempt < job.max_attempts => Transition::Requeue,
            Settle::LeaseExpired => Transition::Fail,
        };
        let status = JobStatus::Running
            .after(transition)
            .expect("every settle transition starts from running");
        // A run stopped by its worker's shutdown, an operator's pause, a snooze or a wait
        // did not fail: hand the attempt back, so pausing, snoozing or waiting many times
        // never exhausts a job's retries.
        let attempt = match self {
            Settle::Shutdown | Settle::Pause | Settle::Snooze | Settle::Wait => {
                job.attempt.saturating_sub(1)
            }
            Settle::LeaseExpired | Settle::Cancel => job.attempt,
        };
        let error = (transition == Transition::Fail).then(|| JobFailure {
            kind: FailureKind::LeaseExpired,
            message: format!(
                "lease expired {} times (worker {} stopped renewing it); attempts exhausted",
                job.attempt,
                job.lease_owner.as_deref().unwrap_or("unknown")
            ),
        });
        Settled {
            status,
            attempt,
            error,
        }
    }
}

impl Settle {
    /// `job` (running) once settled this way at `now`: its new status and attempt (and the
    /// error, when it failed for good), the lease cleared, operator requests consumed, and
    /// due at once if it went back to the queue.
    pub fn apply(self, job: &Job, now: chrono::DateTime<chrono::Utc>) -> Job {
        let settled = self.outcome(job);
        let mut job = job.clone();
        job.status = settled.status;
        job.attempt = settled.attempt;
        if let Some(error) = settled.error {
            job.error = Some(error);
        }
        job.lease_owner = None;
        job.lease_expires_at = None;
        job.pause_requested = false;
        job.cancel_requested = false;
        if job.status == JobStatus::Queued {
            job.run_at = now;
        }
        job
    }
}

impl From<crate::store::Release> for Settle {
    fn from(how: crate::store::Release) -> Self {
        use crate::store::Release;
        match how {
            Release::Shutdown => Settle::Shutdown,
            Release::Pause => Settle::Pause,
            Release::Cancel => Settle::Cancel,
        }
    }
}

/// A failed attempt of a running job: the error, and the delay before a retry when the
/// error may be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    pub failure: JobFailure,
    pub retry_in: Option<std::time::Duration>,
}

impl Fail {
    /// `job` (running) after this failure at `now`: queued again at `now + retry_in` (the
    /// lease cleared) while attempts remain and a retry is allowed, failed for good
    /// otherwise; the error recorded either way.
    pub fn apply(&self, job: &Job, now: chrono::DateTime<chrono::Utc>) -> Job {
        let mut new = job.clone();
        new.status = after_failure(job, self.retry_in.is_some());
        if new.status == JobStatus::Queued {
            let delay = chrono::Duration::from_std(self.retry_in.unwrap_or_default())
                .unwrap_or(chrono::Duration::MAX);
            new.run_at = now
                .checked_add_signed(delay)
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
            new.lease_owner = None;
        }
        new.error = Some(self.failure.clone());
        new.lease_expires_at = None;
        new
    }
}

/// Where a failed attempt leaves the job: queued again when it may be retried and attempts
/// remain, failed otherwise.
pub fn after_failure(job: &Job, retry: bool) -> JobStatus {
    let transition = if retry && job.attempt < job.max_attempts {
        Transition::Requeue
    } else {
        Transition::Fail
    };
    JobStatus::Running
        .after(transition)
        .expect("requeue and fail start from running")
}
