//! The job status machine: the one place that says which transitions are legal.
//!
//! ```text
//! queued ──lease──▶ running ──▶ completed | failed | cancelled
//!    ▲                │  ▲ │
//!    │ resume         │  │ └──wait──▶ waiting ──every gate decided or timed out──▶ queued
//!    └──── paused ◀───┘  └── queued (retry after backoff, lease lost, shutdown, snooze)
//! ```
//!
//! A waiting job can also be paused (it keeps its gates) and cancelled; resuming a paused job
//! whose gates are still open makes it `waiting` again.
//!
//! Stores never decide legality themselves: they ask [`Transition::sources`] for the
//! statuses a transition may start from and make their writes conditional on them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a job is in its life.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting to be leased (possibly not before its `run_at`).
    Queued,
    /// Leased by a worker, which holds the lease and its epoch.
    Running,
    /// Stopped at a safe point (or before it ever ran); resumes from its last checkpoint.
    Paused,
    /// Parked on gates an operator must decide; holds no lease and no slot.
    Waiting,
    /// Finished with a result. Terminal.
    Completed,
    /// Finished with an error. Terminal.
    Failed,
    /// Stopped for good by an operator. Terminal.
    Cancelled,
}

impl JobStatus {
    /// Every status, in the order the status machine draws them.
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Paused,
        JobStatus::Waiting,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// The name stored in the database and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Paused => "paused",
            JobStatus::Waiting => "waiting",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// True for completed, failed and cancelled: nothing leaves these.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// The status `transition` leads to from `self`, or `None` when the machine has no such edge.
    pub fn after(self, transition: Transition) -> Option<JobStatus> {
        use JobStatus::*;
        use Transition::*;
        match (self, transition) {
            (Queued, Lease) => Some(Running),
            (Queued, Pause) => Some(Paused),
            (Queued, Cancel) => Some(Cancelled),
            (Running, Complete) => Some(Completed),
            (Running, Fail) => Some(Failed),
            (Running, Cancel) => Some(Cancelled),
            (Running, Pause) => Some(Paused),
            (Running, Requeue) => Some(Queued),
            (Running, Wait) => Some(Waiting),
            (Waiting, Wake) => Some(Queued),
            (Waiting, Pause) => Some(Paused),
            (Waiting, Cancel) => Some(Cancelled),
            (Paused, Resume) => Some(Queued),
            (Paused, Cancel) => Some(Cancelled),
            _ => None,
        }
    }

    /// Like [`JobStatus::after`], but an illegal transition is an error naming both ends.
    pub fn apply(self, transition: Transition) -> Result<JobStatus, IllegalTransition> {
        self.after(transition).ok_or(IllegalTransition {
            from: self,
            transition,
        })
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// A status name that is not one of [`JobStatus::ALL`].
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown job status `{0}` (expected queued, running, paused, waiting, completed, failed or \
     cancelled)"
)]
pub struct UnknownStatus(pub String);

/// An edge of the status machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// A worker claims the job.
    Lease,
    /// The runner finished the job with a result.
    Complete,
    /// The runner gave up on the job (permanent error or attempts exhausted).
    Fail,
    /// An operator cancels (a running job settles at its next safe point).
    Cancel,
    /// An operator pauses (a running job settles at its next safe point).
    Pause,
    /// An operator resumes a paused job.
    Resume,
    /// Back to the queue: retry after backoff, lease lost, graceful shutdown, snooze.
    Requeue,
    /// The runner parks the job on open gates.
    Wait,
    /// Every gate of a waiting job is decided or timed out: back to the queue.
    Wake,
}

impl Transition {
    /// Every transition.
    pub const ALL: [Transition; 9] = [
        Transition::Lease,
        Transition::Complete,
        Transition::Fail,
        Transition::Cancel,
        Transition::Pause,
        Transition::Resume,
        Transition::Requeue,
        Transition::Wait,
        Transition::Wake,
    ];

    /// The statuses this transition may start from.
    pub fn sources(self) -> Vec<JobStatus> {
        JobStatus::ALL
            .into_iter()
            .filter(|status| status.after(self).is_some())
            .collect()
    }

    /// The verb used in error messages and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Lease => "lease",
            Transition::Complete => "complete",
            Transition::Fail => "fail",
            Transition::Cancel => "cancel",
            Transition::Pause => "pause",
            Transition::Resume => "resume",
            Transition::Requeue => "requeue",
            Transition::Wait => "wait",
            Transition::Wake => "wake",
        }
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition the status machine does not draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {transition} a job that is {from}")]
pub struct IllegalTransition {
    pub from: JobStatus,
    pub transition: Transition,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses_have_no_way_out() {
        for status in JobStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for transition in Transition::ALL {
                assert!(
                    status.after(transition).is_none(),
                    "{status} --{transition}"
                );
            }
        }
    }

    #[test]
    fn exactly_the_drawn_edges_are_legal() {
        let legal: usize = JobStatus::ALL
            .into_iter()
            .map(|s| {
                Transition::ALL
                    .into_iter()
                    .filter(|t| s.after(*t).is_some())
                    .count()
            })
            .sum();
        assert_eq!(legal, 14);
        assert_eq!(
            Transition::Cancel.sources(),
            vec![
                JobStatus::Queued,
                JobStatus::Running,
                JobStatus::Paused,
                JobStatus::Waiting
            ]
        );
        assert_eq!(
            JobStatus::Paused.apply(Transition::Lease),
            Err(IllegalTransition {
                from: JobStatus::Paused,
                transition: Transition::Lease
            })
        );
    }

    #[test]
    fn names_round_trip() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>().unwrap(), status);
        }
        assert!("done".parse::<JobStatus>().is_err());
    }
}
