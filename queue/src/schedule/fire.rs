//! Schedule writes and evaluation, written once for every backend on the
//! [`ScheduleStore`] primitives.
//!
//! A tick is fired in two steps, each safe to repeat: the job is enqueued under its tick's
//! idempotency key (a second evaluator, or a retry after a crash, finds the same job), then
//! the schedule's bookkeeping advances by a compare-and-set on its version (only one
//! evaluator counts the tick). A template changed between deploys makes the key's stored
//! body differ; that answer means "this tick already fired", never an error.

use chrono::{DateTime, Utc};

use super::{
    InvalidSchedule, Overlap, RecentRun, Schedule, ScheduleSpec, ScheduleState, Timing, RECENT_RUNS,
};
use crate::job::JobId;
use crate::store::{Enqueued, Store, StoreError, StoreResult};

/// How often a schedule holding a buffered tick is looked at again.
const BUFFER_RECHECK: chrono::Duration = chrono::Duration::seconds(1);
/// How many times a write retries after losing a compare-and-set to another writer.
const CAS_TRIES: usize = 8;

/// What can go wrong managing a schedule.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScheduleError {
    #[error("schedule `{0}` not found")]
    NotFound(String),
    #[error("schedule `{0}` already exists")]
    Exists(String),
    #[error(transparent)]
    Invalid(#[from] InvalidSchedule),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How [`save`] treats an existing id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Save {
    /// Refuse it ([`ScheduleError::Exists`]).
    Create,
    /// Require it ([`ScheduleError::NotFound`] otherwise).
    Replace,
    /// Either (config-declared schedules at start).
    Upsert,
}

/// What one evaluation of a schedule did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluated {
    /// Ticks that enqueued a job (new, or found under the tick's key).
    pub fired: Vec<(DateTime<Utc>, JobId)>,
    pub skipped: u64,
    pub missed: u64,
    /// Another evaluator advanced the schedule first; this one counted nothing.
    pub lost_race: bool,
}

/// The `due_at` of `state` under `timing`: the next tick after the cursor, sooner while a
/// tick is buffered, none while paused.
fn due_at(
    timing: &Timing,
    spec: &ScheduleSpec,
    state: &ScheduleState,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if spec.paused {
        return None;
    }
    let next = timing.next_tick(state.cursor);
    match state.buffered {
        Some(_) => Some(next.map_or(now + BUFFER_RECHECK, |n| n.min(now + BUFFER_RECHECK))),
        None => next,
    }
}

/// Creates or replaces a schedule from its declaration. A replacement keeps the counters
/// and the last runs; when it ticks at other times, its cursor restarts at `now` (no tick
/// of the new timing before the change runs).
pub async fn save(
    store: &dyn Store,
    spec: ScheduleSpec,
    how: Save,
    now: DateTime<Utc>,
) -> Result<Schedule, ScheduleError> {
    let timing = spec.validate()?;
    for _ in 0..CAS_TRIES {
        match store.schedule(&spec.id).await? {
            None if how == Save::Replace => return Err(ScheduleError::NotFound(spec.id)),
            None => {
                let mut state = ScheduleState::new(now);
                state.due_at = due_at(&timing, &spec, &state, now);
                state.version = 1;
                let schedule = Schedule {
                    spec: spec.clone(),
                    state,
                };
                if store.insert_schedule(&schedule).await? {
                    return Ok(schedule);
                }
            }
            Some(_) if how == Save::Create => return Err(ScheduleError::Exists(spec.id)),
            Some(old) => {
                let mut state = old.state.clone();
                let was_paused = old.spec.paused;
                if old.spec.timing_differs(&spec) || (was_paused && !spec.paused) {
                    state.cursor = now;
                }
                state.updated_at = now;
                state.due_at = due_at(&timing, &spec, &state, now);
                state.version = old.state.version + 1;
                let schedule = Schedule {
                    spec: spec.clone(),
                    state,
                };
                if store.replace_schedule(&schedule, old.state.version).await? {
                    return Ok(schedule);
                }
            }
        }
    }
    Err(StoreError::Unavailable(format!(
        "schedule `{}`: too many concurrent writes",
        spec.id
    ))
    .into())
}

/// Pauses a schedule: no tick runs until it is resumed.
pub async fn pause(
    store: &dyn Store,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Schedule, ScheduleError> {
    set_paused(store, id, true, now).await
}

/// Resumes a schedule; ticks that fell while it was paused do not run.
pub async fn resume(
    store: &dyn Store,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Schedule, ScheduleError> {
    set_paused(store, id, false, now).await
}

async fn set_paused(
    store: &dyn Store,
    id: &str,
    paused: bool,
    now: DateTime<Utc>,
) -> Result<Schedule, ScheduleError> {
    let old = store
        .schedule(id)
        .await?
        .ok_or_else(|| ScheduleError::NotFound(id.to_string()))?;
    if old.spec.paused == paused {
        return Ok(old);
    }
    let spec = ScheduleSpec { paused, ..old.spec };
    save(store, spec, Save::Replace, now).await
}

/// The next `n` start times of a schedule (spread applied); none while paused.
pub fn next_runs(schedule: &Schedule, n: usize) -> Vec<DateTime<Utc>> {
    match (schedule.spec.paused, Timing::of(&schedule.spec)) {
        (false, Ok(timing)) => timing.next_runs(schedule.state.cursor, n),
        _ => Vec::new(),
    }
}

/// Evaluates every due schedule once (at most `limit`): the evaluator's round.
pub async fn evaluate_due(
    store: &dyn Store,
    now: DateTime<Utc>,
    limit: usize,
) -> StoreResult<Vec<(String, Evaluated)>> {
    let due = store.due_schedules(now, limit).await?;
    let mut out = Vec::with_capacity(due.len());
    for schedule in due {
        let id = schedule.spec.id.clone();
        match evaluate(store, schedule, now).await {
            Ok(done) => out.push((id, done)),
            Err(err) if err.is_transient() => return Err(err),
            Err(err) => tracing::warn!(schedule = %id, error = %err, "schedule evaluation failed"),
        }
    }
    Ok(out)
}

/// One run now, through the schedule's overlap policy (the tick is `now`, to the second).
pub async fn trigger(
    store: &dyn Store,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Evaluated, ScheduleError> {
    let schedule = store
        .schedule(id)
        .await?
        .ok_or_else(|| ScheduleError::NotFound(id.to_string()))?;
    let tick = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
    Ok(run(store, schedule, now, Some(tick)).await?)
}

/// Evaluates one schedule at `now`: fires its due ticks under its overlap policy, counts
/// what was skipped or missed, and advances its cursor.
pub async fn evaluate(
    store: &dyn Store,
    schedule: Schedule,
    now: DateTime<Utc>,
) -> StoreResult<Evaluated> {
    run(store, schedule, now, None).await
}

async fn run(
    store: &dyn Store,
    schedule: Schedule,
    now: DateTime<Utc>,
    manual: Option<DateTime<Utc>>,
) -> StoreResult<Evaluated> {
    let Schedule { spec, state: old } = schedule;
    let timing = spec
        .validate()
        .map_err(|e| StoreError::Backend(format!("schedule `{}`: {e}", spec.id)))?;
    let due = match manual {
        Some(_) => super::Due {
            fire: Vec::new(),
            missed: 0,
            cursor: None,
        },
        None if spec.paused => return Ok(Evaluated::default()),
        None => timing.due(old.cursor, now),
    };
    let mut ticks: Vec<DateTime<Utc>> = old
        .buffered
        .into_iter()
        .chain(due.fire.iter().copied())
        .collect();
    ticks.extend(manual);
    let mut result = Evaluated {
        missed: due.missed,
        ..Default::default()
    };

    // Runs of this schedule that have not finished yet.
    let mut active: Vec<JobId> = Vec::new();
    if spec.overlap != Overlap::AllowAll && !ticks.is_empty() {
        for run in &old.recent {
            match store.get(run.job_id).await {
                Ok(job) if !job.status.is_terminal() => active.push(job.id),
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
    }

    // Which ticks run now, which wait, which are skipped.
    let mut buffered = None;
    let run_now: Vec<DateTime<Utc>> = match spec.overlap {
        Overlap::AllowAll => ticks,
        Overlap::Skip | Overlap::CancelOther => {
            let newest = ticks.last().copied();
            let blocked = spec.overlap == Overlap::Skip && !active.is_empty();
            let runs: Vec<_> = if blocked {
                Vec::new()
            } else {
                newest.into_iter().collect()
            };
            result.skipped += (ticks.len() - runs.len()) as u64;
            runs
        }
        Overlap::BufferOne => {
            let (runs, wait): (Vec<_>, Option<_>) = if active.is_empty() {
                let first = ticks.first().copied();
                let rest = ticks.get(1..).and_then(|r| r.last().copied());
                (first.into_iter().collect(), rest)
            } else {
                (Vec::new(), ticks.last().copied())
            };
            buffered = wait;
            result.skipped += (ticks.len() - runs.len() - usize::from(wait.is_some())) as u64;
            runs
        }
    };

    let mut recent = old.recent.clone();
    for &tick in &run_now {
        let job = spec.job_for(tick, timing.start_of(tick));
        let id = match store.enqueue(job).await {
            Ok(Enqueued::Created(job) | Enqueued::Existing(job)) => job.id,
            // The tick's key holds a job of an older template: the tick already fired.
            Err(StoreError::IdempotencyConflict { existing, .. }) => existing,
            Err(err) => return Err(err),
        };
        if !recent.iter().any(|r| r.tick == tick) {
            recent.insert(0, RecentRun { tick, job_id: id });
        }
        result.fired.push((tick, id));
    }
    recent.sort_by_key(|r| std::cmp::Reverse(r.tick));
    recent.truncate(RECENT_RUNS);

    let mut state = old.clone();
    if let Some(cursor) = due.cursor {
        state.cursor = state.cursor.max(cursor);
    }
    state.buffered = buffered;
    state.runs += result.fired.len() as u64;
    state.skipped += result.skipped;
    state.missed += result.missed;
    state.recent = recent;
    state.updated_at = now;
    state.due_at = due_at(&timing, &spec, &state, now);
    state.version = old.version + 1;
    let advanced = Schedule { spec, state };
    if !store.replace_schedule(&advanced, old.version).await? {
        // Another evaluator (or an edit) came first; our jobs, if any, are the ones it
        // enqueued under the same keys.
        return Ok(Evaluated {
            fired: result.fired,
            lost_race: true,
            ..Default::default()
        });
    }
    if advanced.spec.overlap == Overlap::CancelOther && !result.fired.is_empty() {
        for id in active {
            match store.cancel(id).await {
                Ok(_)
                | Err(StoreError::NotFound(_))
                | Err(StoreError::IllegalTransition { .. }) => {}
                Err(err) => {
                    tracing::warn!(job = %id, error = %err, "cancelling an overlapping run failed")
                }
            }
        }
    }
    Ok(result)
}
