//! Schedules (SPEC §8): a cron expression in an IANA zone (or `every`), a job template, an
//! overlap policy, a catch-up window and an optional deterministic spread, kept as data in
//! the store.
//!
//! - this file: the model, what a client sends and what the store keeps;
//! - [`timing`]: when ticks fall (cron, `every`, DST, spread) and which are due;
//! - [`fire`]: one evaluation of a due schedule, written once for every backend on the
//!   [`crate::store::ScheduleStore`] primitives;
//! - [`declare`]: schedules a config file declares, applied at a process's start.
//!
//! Exactly one job per tick, fleet-wide, rests on the job's idempotency key
//! `schedule:<id>:<tick as RFC 3339 UTC>`; the schedule's own bookkeeping advances by a
//! compare-and-set on its `version`, so two evaluators racing cannot both count a tick.

pub mod declare;
pub mod fire;
pub mod nightly;
pub mod timing;
pub mod view;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::{JobId, NewJob, Priority};

pub use declare::{declare, Declared};
pub use fire::{
    evaluate, evaluate_due, next_runs, pause, resume, save, trigger, Evaluated, Save, ScheduleError,
};
pub use timing::{spread_minutes, Due, Timing};
pub use view::{view, LastRun, ScheduleView};

/// The most ticks one evaluation enqueues under `catchup: all`.
pub const CATCHUP_ALL_CAP: usize = 100;
/// How many runs a schedule remembers (its `last_runs`).
pub const RECENT_RUNS: usize = 10;
/// Limits on a schedule id: it becomes part of the jobs' idempotency keys.
pub const MAX_ID_LEN: usize = 128;

/// What a client declares: the body of `POST /v1/schedules` and a config file's entry.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    pub id: String,
    /// A cron expression: 5 fields, or 6 with seconds first; `L`, `#`, `W` and `@daily`-style
    /// nicknames as croner parses them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Or a fixed interval (`30s`, `5m`, whole seconds), its ticks at multiples of it since
    /// the Unix epoch, so every evaluator agrees on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// An IANA zone; the cron expression reads in it, and the spread's date is taken in it.
    #[serde(default = "utc")]
    pub timezone: String,
    pub job: JobTemplate,
    #[serde(default)]
    pub overlap: Overlap,
    /// Missed ticks older than this are counted as missed, never run.
    #[serde(default = "one_hour")]
    pub catchup_window: String,
    #[serde(default)]
    pub catchup: Catchup,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<Spread>,
    #[serde(default)]
    pub paused: bool,
}

fn utc() -> String {
    "UTC".into()
}

fn one_hour() -> String {
    "1h".into()
}

/// The job each tick enqueues.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobTemplate {
    pub kind: String,
    #[serde(default)]
    pub goal: String,
    #[serde(default = "empty_object")]
    pub config: Value,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// What a tick does while an earlier run of the schedule has not finished.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// The tick is skipped (counted in `skipped`).
    #[default]
    Skip,
    /// The newest such tick waits and runs when the earlier run has finished.
    BufferOne,
    /// The tick runs anyway.
    AllowAll,
    /// The earlier run is cancelled and the tick runs.
    CancelOther,
}

/// Which missed ticks inside the catch-up window run.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Catchup {
    /// The latest only; the others are counted as missed.
    #[default]
    Latest,
    /// Every one, oldest first, at most [`CATCHUP_ALL_CAP`] (the newest ones).
    All,
}

/// A deterministic spread: the run for local date D starts at the tick +
/// `u64::from_be_bytes(sha256(key + D)[0..8]) % window_minutes` minutes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spread {
    /// At least one minute (`600m`, `10h`).
    pub window: String,
    pub key: String,
}

/// Who declared a schedule, and so who may replace it at a process's start.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Created at run time (`POST /v1/schedules`, `drover schedules create`).
    #[default]
    Api,
    /// Declared in a config file's `schedules:`; see [`declare`].
    Config,
}

/// A schedule as stored: the declaration and the evaluator's bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub spec: ScheduleSpec,
    pub state: ScheduleState,
}

/// The evaluator's bookkeeping of one schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// Bumped by every write; writes compare-and-set on it.
    #[serde(skip)]
    pub version: i64,
    /// Every tick at or before this was handled (fired, skipped or counted missed).
    pub cursor: DateTime<Utc>,
    /// When an evaluator should look next: the next tick, sooner while a run is buffered,
    /// none while paused. The store indexes it.
    #[serde(skip)]
    pub due_at: Option<DateTime<Utc>>,
    /// A tick held back by `buffer_one` until the earlier run finishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffered: Option<DateTime<Utc>>,
    #[serde(default)]
    pub runs: u64,
    /// Ticks skipped by the overlap policy.
    #[serde(default)]
    pub skipped: u64,
    /// Ticks that never ran: older than the catch-up window, or coalesced into a later one.
    #[serde(default)]
    pub missed: u64,
    /// The latest runs, newest first, at most [`RECENT_RUNS`].
    #[serde(default)]
    pub recent: Vec<RecentRun>,
    #[serde(default)]
    pub source: Source,
    /// For a config schedule: the file's entry as last applied. A start whose entry equals
    /// it writes nothing, so changes made at run time (a pause) outlive restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared: Option<ScheduleSpec>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One tick that enqueued a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentRun {
    pub tick: DateTime<Utc>,
    pub job_id: JobId,
}

/// A declaration the store refuses, naming the field (`cron`, `timezone`, `job.kind`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidSchedule {
    pub field: String,
    pub message: String,
}

pub(crate) fn invalid<T>(
    field: impl Into<String>,
    message: impl Into<String>,
) -> Result<T, InvalidSchedule> {
    Err(InvalidSchedule {
        field: field.into(),
        message: message.into(),
    })
}

/// A duration written the humantime way (`90s`, `1h 30m`), naming `field` when it is not.
pub(crate) fn parse_duration(field: &str, text: &str) -> Result<Duration, InvalidSchedule> {
    humantime::parse_duration(text.trim()).or_else(|e| {
        invalid(
            field,
            format!("`{text}` is not a duration such as `30s`, `5m` or `1h`: {e}"),
        )
    })
}

impl ScheduleSpec {
    /// Checks everything a tick will need, naming the first field at fault.
    pub fn validate(&self) -> Result<Timing, InvalidSchedule> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= MAX_ID_LEN
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !id_ok {
            return invalid("id", format!("must be 1 to {MAX_ID_LEN} of [A-Za-z0-9._-]"));
        }
        let timing = Timing::of(self)?;
        self.job_for(self.job_tick_example(), self.job_tick_example())
            .validate()
            .or_else(|e| invalid(format!("job.{}", e.field), e.message))?;
        Ok(timing)
    }

    fn job_tick_example(&self) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH
    }

    /// The job the tick at `tick` enqueues, starting at `start` (the tick plus the spread).
    pub fn job_for(&self, tick: DateTime<Utc>, start: DateTime<Utc>) -> NewJob {
        let t = &self.job;
        NewJob {
            kind: t.kind.clone(),
            goal: t.goal.clone(),
            config: t.config.clone(),
            priority: t.priority,
            queue: t.queue.clone(),
            run_at: Some(start),
            max_attempts: t.max_attempts,
            timeouts: Default::default(),
            idempotency_key: Some(tick_key(&self.id, tick)),
            created_by: Some(format!("schedule:{}", self.id)),
        }
    }

    /// True when `other` ticks at other times than this (so the cursor restarts).
    pub fn timing_differs(&self, other: &ScheduleSpec) -> bool {
        (&self.cron, &self.every, &self.timezone) != (&other.cron, &other.every, &other.timezone)
    }
}

/// The idempotency key of a tick's job: `schedule:<id>:<tick as RFC 3339 UTC>`.
pub fn tick_key(id: &str, tick: DateTime<Utc>) -> String {
    format!(
        "schedule:{id}:{}",
        tick.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

impl ScheduleState {
    /// The bookkeeping of a schedule created at `now`: ticks after `now` count.
    pub fn new(now: DateTime<Utc>) -> Self {
        ScheduleState {
            version: 0,
            cursor: now,
            due_at: None,
            buffered: None,
            runs: 0,
            skipped: 0,
            missed: 0,
            recent: Vec::new(),
            source: Source::Api,
            declared: None,
            created_at: now,
            updated_at: now,
        }
    }
}

impl Schedule {
    /// The state as the store keeps it beside the spec (JSON; `version` and `due_at` are
    /// columns of their own).
    pub fn state_json(&self) -> String {
        serde_json::to_string(&self.state).unwrap_or_default()
    }

    pub fn spec_json(&self) -> String {
        serde_json::to_string(&self.spec).unwrap_or_default()
    }

    /// Rebuilds a stored schedule from its columns.
    pub fn from_stored(
        spec: &str,
        state: &str,
        version: i64,
        due_at: Option<i64>,
    ) -> Result<Schedule, String> {
        let spec: ScheduleSpec =
            serde_json::from_str(spec).map_err(|e| format!("stored schedule spec: {e}"))?;
        let mut state: ScheduleState =
            serde_json::from_str(state).map_err(|e| format!("stored schedule state: {e}"))?;
        state.version = version;
        state.due_at = due_at.map(crate::job::from_millis);
        Ok(Schedule { spec, state })
    }
}
