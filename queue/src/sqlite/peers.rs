//! The worker registry (heartbeats) and leadership (a lease row per name), on this
//! machine's clock.

use std::time::Duration;

use async_trait::async_trait;

use super::SqliteStore;
use crate::job::{now_millis, to_millis};
use crate::store::*;

#[async_trait]
impl Peers for SqliteStore {
    async fn heartbeat_worker(&self, worker: &WorkerInfo) -> StoreResult<()> {
        sqlx::query(include_str!("sql/heartbeat_worker.sql"))
            .bind(&worker.id)
            .bind(&worker.host)
            .bind(worker.pid as i64)
            .bind(worker.slots as i64)
            .bind(worker.busy as i64)
            .bind(to_millis(worker.started_at))
            .bind(now_millis())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn remove_worker(&self, id: &str) -> StoreResult<()> {
        sqlx::query(include_str!("sql/remove_worker.sql"))
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn workers(&self, within: Duration) -> StoreResult<Vec<WorkerInfo>> {
        read_workers!(
            &self.reader,
            now_millis().saturating_sub(millis(within)),
            i64
        )
    }

    async fn try_lead(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        let now = now_millis();
        let row = sqlx::query(include_str!("sql/try_lead.sql"))
            .bind(name)
            .bind(holder)
            .bind(now.saturating_add(millis(ttl)))
            .bind(now)
            .fetch_optional(&self.writer)
            .await?;
        Ok(row.is_some())
    }

    async fn resign(&self, name: &str, holder: &str) -> StoreResult<()> {
        sqlx::query(include_str!("sql/resign.sql"))
            .bind(name)
            .bind(holder)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
