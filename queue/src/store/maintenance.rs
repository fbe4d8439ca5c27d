//! Work no single job asks for: taking back expired leases, retention, queue admin.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreResult;
use crate::job::JobId;
use crate::status::JobStatus;
use crate::transitions::{self, Transact};

/// A job the reaper took back from a dead worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaped {
    pub job: JobId,
    pub previous_owner: Option<String>,
    pub status: JobStatus,
}

/// Per-queue depth and state.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct QueueStats {
    pub name: String,
    pub paused: bool,
    /// Unfinished jobs by status (queued, running, paused, waiting).
    pub by_status: std::collections::BTreeMap<String, u64>,
    /// Queued jobs by priority.
    pub queued_by_priority: std::collections::BTreeMap<String, u64>,
    /// Age of the oldest job that is due and waiting, in seconds.
    pub oldest_waiting_secs: Option<f64>,
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

/// Background upkeep of the store, run by the leader's maintenance loops, and queue admin.
#[async_trait]
pub trait Maintenance: Transact {
    /// Take back jobs whose lease expired: queued again (attempts left), or paused/cancelled
    /// when an operator asked for it, or failed when attempts ran out. Provided once, in
    /// [`crate::transitions::reap_expired`].
    async fn reap_expired(&self, limit: usize) -> StoreResult<Vec<Reaped>> {
        transitions::reap_expired(self, limit).await
    }

    /// Deletes up to `limit` finished jobs whose retention (by status) has passed, with
    /// everything they own. Returns how many were deleted. Call repeatedly to drain.
    async fn prune(&self, retention: &Retention, limit: usize) -> StoreResult<u64>;

    /// The earliest future `run_at` among queued jobs, for the worker's wake-up timer.
    async fn next_run_at(&self) -> StoreResult<Option<DateTime<Utc>>>;

    /// Stops leasing from the queue `name` (checked like a job's queue name first).
    async fn pause_queue(&self, name: &str) -> StoreResult<()> {
        crate::job::check_queue_name(name)?;
        self.set_queue_paused(name, true).await
    }

    /// Leases from the queue `name` again.
    async fn resume_queue(&self, name: &str) -> StoreResult<()> {
        crate::job::check_queue_name(name)?;
        self.set_queue_paused(name, false).await
    }

    /// The backend's write behind [`Maintenance::pause_queue`] and
    /// [`Maintenance::resume_queue`], for a name already checked.
    async fn set_queue_paused(&self, name: &str, paused: bool) -> StoreResult<()>;

    async fn queues(&self) -> StoreResult<Vec<QueueStats>>;
}
