//! Schedules as data: the few primitives every backend implements. What a write means
//! (create, replace, pause, advance after a tick) is decided once, in
//! [`crate::schedule::fire`]; each write here is a compare-and-set on the row's `version`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::schedule::Schedule;

/// Where schedules are kept.
///
/// Promises every backend keeps (and the conformance suite checks):
/// - `insert_schedule` stores a new id once; a second insert of the id answers `false`;
/// - `replace_schedule` writes only when the stored `version` is `expected`, bumping it, so
///   of two writers that read the same version exactly one wins;
/// - `due_schedules` is one indexed read: the schedules whose `due_at` is at or before
///   `now`, soonest first (a paused schedule has no `due_at`).
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Stores `schedule` (its version becomes 1); `false` when the id is taken.
    async fn insert_schedule(&self, schedule: &Schedule) -> StoreResult<bool>;

    /// Writes `schedule` over the stored row when its version is `expected` (the stored
    /// version becomes `expected + 1`); `false` when another write came first or the row is
    /// gone.
    async fn replace_schedule(&self, schedule: &Schedule, expected: i64) -> StoreResult<bool>;

    /// [`ScheduleStore::replace_schedule`] for each `(schedule, expected)`, answering for
    /// each whether it was written; the evaluator's write after a chunk of due schedules.
    /// Backends write them in one transaction, statement or pipeline; this default writes
    /// them one by one.
    async fn replace_schedules(&self, writes: &[(Schedule, i64)]) -> StoreResult<Vec<bool>> {
        let mut written = Vec::with_capacity(writes.len());
        for (schedule, expected) in writes {
            written.push(self.replace_schedule(schedule, *expected).await?);
        }
        Ok(written)
    }

    async fn schedule(&self, id: &str) -> StoreResult<Option<Schedule>>;

    /// Every schedule, by id.
    async fn schedules(&self) -> StoreResult<Vec<Schedule>>;

    /// Up to `limit` schedules due at `now`, soonest first.
    async fn due_schedules(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Schedule>>;

    /// Deletes the schedule (not its jobs); `false` when there was none.
    async fn delete_schedule(&self, id: &str) -> StoreResult<bool>;
}
