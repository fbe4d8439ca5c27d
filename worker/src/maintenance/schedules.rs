//! The schedule evaluator: each round reads the due schedules (one indexed read) and fires
//! their ticks through [`drover_queue::schedule`]. Workers and the API process both run it,
//! so workers can scale to zero without losing ticks; the leadership keeps one evaluator
//! busy at a time, and the store's compare-and-set keeps a tick to one job even when two
//! believe they lead.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use drover_queue::{schedule, Store};
use tokio::sync::watch;

use super::Plugin;

/// The leadership name the evaluator holds.
pub const LEADERSHIP: &str = "schedules";
/// How often it looks. A round also waits for a tick due before the next round, so ticks
/// are enqueued at their time plus the round's own work, not up to an interval late.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// Due schedules one read takes (the stores' cap); they are evaluated in chunks, several
/// at once (see [`schedule::evaluate_due`]).
const BATCH: usize = 10_000;

pub(crate) struct Evaluator;

#[async_trait]
impl Plugin for Evaluator {
    fn leadership(&self) -> &'static str {
        LEADERSHIP
    }

    fn interval(&self) -> Duration {
        INTERVAL
    }

    async fn round(&self, store: &dyn Store, shutdown: &watch::Receiver<bool>) {
        let Some(evaluated_at) = evaluate_all(store, shutdown).await else {
            return;
        };
        // A tick falling before the next round is waited for here, so that it is enqueued
        // at its time rather than up to an interval late. (A schedule still due after the
        // evaluation, one whose evaluation fails, leaves it to the next round.)
        let next = match store.due_schedules(evaluated_at + INTERVAL, 1).await {
            Ok(next) => next.first().and_then(|s| s.state.due_at),
            Err(_) => return,
        };
        let Some(at) = next.filter(|at| *at > evaluated_at) else {
            return;
        };
        let wait = (at - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(1);
        let mut stop = shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        evaluate_all(store, shutdown).await;
    }
}

/// Evaluates due schedules until none is left (a read takes at most [`BATCH`]), recording
/// the metrics; the time of the last evaluation, or `None` when one failed.
async fn evaluate_all(
    store: &dyn Store,
    shutdown: &watch::Receiver<bool>,
) -> Option<DateTime<Utc>> {
    let mut last = None;
    while !*shutdown.borrow() {
        let now = Utc::now();
        let evaluated = match schedule::evaluate_due(store, now, BATCH).await {
            Ok(evaluated) => evaluated,
            Err(err) => {
                tracing::warn!(error = %err, "evaluating schedules failed");
                return None;
            }
        };
        last = Some(now);
        let enqueued_at = Utc::now();
        for (id, done) in &evaluated {
            if done.lost_race {
                continue;
            }
            for (tick, _) in &done.fired {
                let lag = (enqueued_at - *tick).to_std().unwrap_or_default();
                metrics::histogram!("drover_schedule_tick_lag_seconds").record(lag.as_secs_f64());
            }
            metrics::counter!("drover_schedule_ticks_total", "outcome" => "fired")
                .increment(done.fired.len() as u64);
            metrics::counter!("drover_schedule_ticks_total", "outcome" => "skipped")
                .increment(done.skipped);
            metrics::counter!("drover_schedule_ticks_total", "outcome" => "missed")
                .increment(done.missed);
            if done.missed > 0 {
                tracing::warn!(schedule = %id, missed = done.missed, "schedule ticks missed");
            }
        }
        if evaluated.len() < BATCH {
            break;
        }
    }
    last
}

/// Runs the schedule evaluator for `holder` until `shutdown` turns true: for processes
/// other than workers (the API) that should evaluate schedules too.
pub async fn run(store: Arc<dyn Store>, holder: String, shutdown: watch::Receiver<bool>) {
    super::run(Evaluator, store, holder, shutdown).await
}
