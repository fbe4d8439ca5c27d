//! Retention, the next due job, and the queues: pausing them and their stats.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::SqliteStore;
use crate::job::{from_millis, now_millis, JobId};
use crate::notifier::Signal;
use crate::store::*;

/// What pruning a job deletes, in order: its run log first, the job last.
const PRUNE: [&str; 7] = [
    include_str!("sql/delete_job_events.sql"),
    include_str!("sql/delete_checkpoints.sql"),
    include_str!("sql/delete_item_outputs.sql"),
    include_str!("sql/delete_effects.sql"),
    include_str!("sql/delete_artifacts.sql"),
    include_str!("sql/delete_gates.sql"),
    include_str!("sql/delete_job.sql"),
];

impl SqliteStore {
    async fn write_queue_paused(&self, name: &str, paused: bool) -> StoreResult<()> {
        sqlx::query(include_str!("sql/set_queue_paused.sql"))
            .bind(name)
            .bind(paused)
            .bind(now_millis())
            .execute(&self.writer)
            .await?;
        if !paused {
            self.notifier.publish(Signal::JobsAvailable {
                queue: Some(name.to_string()),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Maintenance for SqliteStore {
    async fn prune(&self, retention: &Retention, limit: usize) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let now = now_millis();
        let ids: Vec<JobId> = sqlx::query_scalar(include_str!("sql/prunable_jobs.sql"))
            .bind(now.saturating_sub(millis(retention.completed)))
            .bind(now.saturating_sub(millis(retention.failed)))
            .bind(now.saturating_sub(millis(retention.cancelled)))
            .bind(limit.min(10_000) as i64)
            .fetch_all(&mut *tx)
            .await?;
        for id in &ids {
            for sql in PRUNE {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    async fn next_run_at(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let now = now_millis();
        let next: Option<i64> = sqlx::query_scalar(include_str!("sql/next_run_at.sql"))
            .bind(now)
            .fetch_one(&self.reader)
            .await?;
        Ok(next.map(from_millis))
    }

    async fn set_queue_paused(&self, name: &str, paused: bool) -> StoreResult<()> {
        self.write_queue_paused(name, paused).await
    }

    async fn queues(&self) -> StoreResult<Vec<QueueStats>> {
        let now = now_millis();
        let counts = sqlx::query(include_str!("sql/queue_counts.sql"))
            .bind(now)
            .fetch_all(&self.reader)
            .await?;
        let paused = sqlx::query(include_str!("sql/queues.sql"))
            .fetch_all(&self.reader)
            .await?;
        queue_stats_from_rows!(&paused, &counts, now)
    }
}
