//! The schedule evaluator: each round reads the due schedules (one indexed read) and fires
//! their ticks through [`drover_queue::schedule`]. Workers and the API process both run it,
//! so workers can scale to zero without losing ticks; the leadership keeps one evaluator
//! busy at a time, and the store's compare-and-set keeps a tick to one job even when two
//! believe they lead.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use drover_queue::{schedule, Store};
use tokio::sync::watch;

use super::Plugin;

/// The leadership name the evaluator holds.
pub const LEADERSHIP: &str = "schedules";
/// How often it looks: ticks are enqueued within this (plus the round's own time).
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
        while !*shutdown.borrow() {
            let now = Utc::now();
            let evaluated = match schedule::evaluate_due(store, now, BATCH).await {
                Ok(evaluated) => evaluated,
                Err(err) => {
                    tracing::warn!(error = %err, "evaluating schedules failed");
                    return;
                }
            };
            let enqueued_at = Utc::now();
            for (id, done) in &evaluated {
                if done.lost_race {
                    continue;
                }
                for (tick, _) in &done.fired {
                    let lag = (enqueued_at - *tick).to_std().unwrap_or_default();
                    metrics::histogram!("drover_schedule_tick_lag_seconds")
                        .record(lag.as_secs_f64());
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
    }
}

/// Runs the schedule evaluator for `holder` until `shutdown` turns true: for processes
/// other than workers (the API) that should evaluate schedules too.
pub async fn run(store: Arc<dyn Store>, holder: String, shutdown: watch::Receiver<bool>) {
    super::run(Evaluator, store, holder, shutdown).await
}
