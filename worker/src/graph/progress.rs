//! Progress reporting: what a step says about where the job is, coalesced so a tight loop
//! writes at most a few events a second, with `estimated_completion` computed from the
//! rate of this run.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::context::JobContext;
use crate::kind::JobError;

/// A job's progress, as the `progress` events and `Job::progress` carry it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// A coarse phase in the kind's words ("discovery", "sending").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The step running now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Steps finished so far, and how many the graph has.
    pub steps_done: u64,
    pub total_steps: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_item: Option<String>,
    pub items_processed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items_total: Option<u64>,
    /// Free-form counters: API calls, rate limit remaining, …
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metrics: Map<String, Value>,
    /// Recent errors, newest last (at most 10).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_completion: Option<DateTime<Utc>>,
}

const MAX_ERRORS: usize = 10;

impl Progress {
    /// Remember an error (the last few are kept).
    pub fn push_error(&mut self, error: impl Into<String>) {
        self.errors.push(error.into());
        if self.errors.len() > MAX_ERRORS {
            self.errors.remove(0);
        }
    }
}

struct State {
    latest: Progress,
    dirty: bool,
    last_write: Option<Instant>,
    /// Items processed when this run started, and when: the rate is this run's own.
    baseline: Option<(u64, Instant)>,
}

/// Holds the latest progress and writes it as events, at most once per interval.
pub(crate) struct Reporter {
    interval: Duration,
    state: Mutex<State>,
}

impl Reporter {
    pub fn new(interval: Duration, initial: Progress) -> Self {
        Reporter {
            interval,
            state: Mutex::new(State {
                latest: initial,
                dirty: false,
                last_write: None,
                baseline: None,
            }),
        }
    }

    /// Change the progress; writes an event when the last one is older than the interval.
    pub async fn update(
        &self,
        ctx: &JobContext,
        change: impl FnOnce(&mut Progress),
    ) -> Result<(), JobError> {
        self.change(ctx, change, false).await
    }

    /// Change the progress and write it at once (step boundaries: rare, and a dashboard
    /// should not show a finished step while a long one runs).
    pub async fn update_now(
        &self,
        ctx: &JobContext,
        change: impl FnOnce(&mut Progress),
    ) -> Result<(), JobError> {
        self.change(ctx, change, true).await
    }

    async fn change(
        &self,
        ctx: &JobContext,
        change: impl FnOnce(&mut Progress),
        now: bool,
    ) -> Result<(), JobError> {
        let due = {
            let mut state = self.lock();
            change(&mut state.latest);
            state.dirty = true;
            if state.baseline.is_none() {
                state.baseline = Some((state.latest.items_processed, Instant::now()));
            }
            now || state
                .last_write
                .is_none_or(|at| at.elapsed() >= self.interval)
        };
        if due {
            self.flush(ctx).await?;
        }
        Ok(())
    }

    /// Writes the latest progress if it changed since the last write.
    pub async fn flush(&self, ctx: &JobContext) -> Result<(), JobError> {
        let snapshot = {
            let mut state = self.lock();
            if !state.dirty {
                return Ok(());
            }
            state.dirty = false;
            state.last_write = Some(Instant::now());
            let eta = estimate(&state.latest, state.baseline);
            state.latest.estimated_completion = eta;
            state.latest.clone()
        };
        let data = serde_json::to_value(&snapshot).unwrap_or_default();
        ctx.event("progress", data).await.map(|_| ())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panicking step held it; the data is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// now + remaining items / this run's rate.
fn estimate(progress: &Progress, baseline: Option<(u64, Instant)>) -> Option<DateTime<Utc>> {
    let total = progress.items_total?;
    let (start_items, since) = baseline?;
    let done_here = progress.items_processed.checked_sub(start_items)?;
    if done_here == 0 {
        return None;
    }
    let remaining = total.saturating_sub(progress.items_processed);
    let per_item = since.elapsed().as_secs_f64() / done_here as f64;
    let left = chrono::Duration::milliseconds((per_item * remaining as f64 * 1000.0) as i64);
    Some(Utc::now() + left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_uses_this_runs_rate() {
        let progress = Progress {
            items_processed: 15,
            items_total: Some(25),
            ..Default::default()
        };
        let started = Instant::now() - Duration::from_secs(5);
        // 5 items in 5 s; 10 left: about 10 s from now.
        let eta = estimate(&progress, Some((10, started))).expect("eta");
        let left = (eta - Utc::now()).num_milliseconds();
        assert!((9_000..=11_000).contains(&left), "{left}");
        assert_eq!(estimate(&progress, Some((15, started))), None);
        assert_eq!(estimate(&Progress::default(), Some((0, started))), None);
    }

    #[test]
    fn errors_keep_the_last_ten() {
        let mut progress = Progress::default();
        for i in 0..15 {
            progress.push_error(format!("e{i}"));
        }
        assert_eq!(progress.errors.len(), 10);
        assert_eq!(progress.errors[0], "e5");
    }
}
