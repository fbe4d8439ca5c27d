//! Per-queue depth and state, folded from grouped counts (shared by the SQL backends).

use crate::job::DEFAULT_QUEUE;
use crate::status::JobStatus;
use crate::store::{priority_of, QueueStats};

/// Folds grouped counts into per-queue stats .
#[derive(Default)]
pub(crate) struct QueueStatsBuilder {
    queues: std::collections::BTreeMap<String, (QueueStats, Option<i64>)>,
}

impl QueueStatsBuilder {
    fn entry(&mut self, name: String) -> &mut (QueueStats, Option<i64>) {
        self.queues.entry(name.clone()).or_insert_with(|| {
            (
                QueueStats {
                    name,
                    paused: false,
                    by_status: Default::default(),
                    queued_by_priority: Default::default(),
                    oldest_waiting_secs: None,
                },
                None,
            )
        })
    }

    pub(crate) fn paused(&mut self, name: String, paused: bool) {
        self.entry(name).0.paused = paused;
    }

    pub(crate) fn add(
        &mut self,
        queue: String,
        status: String,
        priority: i32,
        count: u64,
        oldest: Option<i64>,
    ) {
        let (stats, oldest_seen) = self.entry(queue);
        *stats.by_status.entry(status.clone()).or_default() += count;
        if status == JobStatus::Queued.as_str() {
            *stats
                .queued_by_priority
                .entry(priority_of(priority).to_string())
                .or_default() += count;
        }
        if let Some(oldest) = oldest {
            *oldest_seen = Some(oldest_seen.map_or(oldest, |o| o.min(oldest)));
        }
    }

    pub(crate) fn finish(self, now: i64) -> Vec<QueueStats> {
        let mut out: Vec<QueueStats> = self
            .queues
            .into_values()
            .map(|(mut stats, oldest)| {
                stats.oldest_waiting_secs = oldest.map(|o| (now - o).max(0) as f64 / 1000.0);
                stats
            })
            .collect();
        if !out.iter().any(|q| q.name == DEFAULT_QUEUE) {
            out.insert(
                0,
                QueueStats {
                    name: DEFAULT_QUEUE.to_string(),
                    paused: false,
                    by_status: Default::default(),
                    queued_by_priority: Default::default(),
                    oldest_waiting_secs: None,
                },
            );
        }
        out
    }
}
