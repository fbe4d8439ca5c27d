//! Retention, the next due job, and the queues: pausing them and their stats.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PgStore;
use crate::job::{from_millis, JobId};
use crate::store::*;

impl PgStore {
    async fn write_queue_paused(&self, name: &str, paused: bool) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(include_str!("sql/set_queue_paused.sql"))
            .bind(name)
            .bind(paused)
            .execute(&mut *tx)
            .await?;
        if !paused {
            Self::notify(&mut tx, &self.channel("jobs"), name).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl Maintenance for PgStore {
    async fn prune(&self, retention: &Retention, limit: usize) -> StoreResult<u64> {
        let deleted: Vec<JobId> = sqlx::query_scalar(include_str!("sql/prune.sql"))
            .bind(millis(retention.completed))
            .bind(millis(retention.failed))
            .bind(millis(retention.cancelled))
            .bind(limit.min(10_000) as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(deleted.len() as u64)
    }

    async fn next_run_at(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let next: Option<i64> = sqlx::query_scalar(include_str!("sql/next_run_at.sql"))
            .fetch_one(&self.pool)
            .await?;
        Ok(next.map(from_millis))
    }

    async fn set_queue_paused(&self, name: &str, paused: bool) -> StoreResult<()> {
        self.write_queue_paused(name, paused).await
    }

    async fn queues(&self) -> StoreResult<Vec<QueueStats>> {
        let mut conn = self.pool.acquire().await?;
        let now = Self::now(&mut conn).await?;
        let counts = sqlx::query(include_str!("sql/queue_counts.sql"))
            .bind(now)
            .fetch_all(&mut *conn)
            .await?;
        let paused = sqlx::query(include_str!("sql/queues.sql"))
            .fetch_all(&mut *conn)
            .await?;
        queue_stats_from_rows!(&paused, &counts, now)
    }
}
