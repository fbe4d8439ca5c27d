//! Schedules declared in a config file (`schedules:` in drover.yaml), applied when an API or
//! worker process starts.
//!
//! Ownership: a schedule created this way is marked [`Source::Config`] and remembers the
//! entry it was last given ([`ScheduleState::declared`]). A start whose entry equals that
//! writes nothing, so run-time changes (a pause, a `PUT`) outlive restarts and three
//! processes starting at once do not race; an entry that changed replaces the schedule (the
//! file wins), counters and last runs kept. A process never deletes a schedule: one that
//! left the file stays, marked `config`, until an operator deletes it, since during a
//! rolling deploy processes with the older file are still running.

use chrono::{DateTime, Utc};

use super::fire::{due_at, CAS_TRIES};
use super::{Schedule, ScheduleError, ScheduleSpec, ScheduleState, Source};
use crate::store::{Store, StoreError};

/// What [`declare`] did with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    Created,
    /// The entry differed from the one last applied; the schedule now follows it.
    Updated,
    /// A schedule of that id created at run time now belongs to the config file.
    TakenOver,
    /// The entry is the one last applied: nothing written.
    Unchanged,
}

/// Creates or updates the schedule a config file declares (see the module's rules).
pub async fn declare(
    store: &dyn Store,
    spec: ScheduleSpec,
    now: DateTime<Utc>,
) -> Result<Declared, ScheduleError> {
    let timing = spec.validate()?;
    for _ in 0..CAS_TRIES {
        match store.schedule(&spec.id).await? {
            None => {
                let mut state = ScheduleState::new(now);
                state.source = Source::Config;
                state.declared = Some(spec.clone());
                state.due_at = due_at(&timing, &spec, &state, now);
                state.version = 1;
                let schedule = Schedule {
                    spec: spec.clone(),
                    state,
                };
                if store.insert_schedule(&schedule).await? {
                    return Ok(Declared::Created);
                }
            }
            Some(old)
                if old.state.source == Source::Config
                    && old.state.declared.as_ref() == Some(&spec) =>
            {
                return Ok(Declared::Unchanged);
            }
            Some(old) => {
                let outcome = match old.state.source {
                    Source::Api => Declared::TakenOver,
                    Source::Config => Declared::Updated,
                };
                let mut state = old.state.clone();
                if old.spec.timing_differs(&spec) || (old.spec.paused && !spec.paused) {
                    state.cursor = now;
                }
                state.source = Source::Config;
                state.declared = Some(spec.clone());
                state.updated_at = now;
                state.due_at = due_at(&timing, &spec, &state, now);
                state.version = old.state.version + 1;
                let schedule = Schedule {
                    spec: spec.clone(),
                    state,
                };
                if store.replace_schedule(&schedule, old.state.version).await? {
                    return Ok(outcome);
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
