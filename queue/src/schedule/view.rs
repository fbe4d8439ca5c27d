//! A schedule as people see it (the API's body and the CLI's): its declaration, counters, and
//! its next and last runs with their jobs' status now.

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{next_runs, Schedule, ScheduleSpec, Source};
use crate::store::{Store, StoreError};
use crate::JobStatus;

/// How many next and last runs a schedule shows.
pub const SHOWN_RUNS: usize = 10;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleView {
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    /// The next start times, RFC 3339 UTC, spread applied (none while paused).
    pub next_runs: Vec<DateTime<Utc>>,
    /// The latest runs, newest first.
    pub last_runs: Vec<LastRun>,
    pub runs: u64,
    /// Ticks skipped by the overlap policy.
    pub skipped: u64,
    /// Ticks that never ran (older than the catch-up window, or coalesced).
    pub missed: u64,
    /// `config` when a config file declared it (a process's start may replace it then),
    /// `api` when it was created at run time.
    pub source: Source,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One tick that enqueued a job, with the job's status now (null once the job is gone).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    pub tick: DateTime<Utc>,
    pub job_id: Uuid,
    pub status: Option<JobStatus>,
}

/// Times to the second, as the API's shape shows them.
pub fn to_second(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0).unwrap_or(t)
}

/// `schedule` with its last runs' jobs read from `store`.
pub async fn view(store: &dyn Store, schedule: &Schedule) -> Result<ScheduleView, StoreError> {
    let mut last_runs = Vec::new();
    for run in schedule.state.recent.iter().take(SHOWN_RUNS) {
        let status = match store.get(run.job_id).await {
            Ok(job) => Some(job.status),
            Err(StoreError::NotFound(_)) => None,
            Err(err) => return Err(err),
        };
        last_runs.push(LastRun {
            tick: to_second(run.tick),
            job_id: run.job_id,
            status,
        });
    }
    let s = &schedule.state;
    Ok(ScheduleView {
        spec: schedule.spec.clone(),
        next_runs: next_runs(schedule, SHOWN_RUNS)
            .into_iter()
            .map(to_second)
            .collect(),
        last_runs,
        runs: s.runs,
        skipped: s.skipped,
        missed: s.missed,
        source: s.source,
        created_at: to_second(s.created_at),
        updated_at: to_second(s.updated_at),
    })
}
