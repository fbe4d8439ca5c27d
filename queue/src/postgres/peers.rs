//! The worker registry (heartbeats) and leadership (a lease row per name), both on the
//! server's clock.

use std::time::Duration;

use async_trait::async_trait;

use super::PgStore;
use crate::job::to_millis;
use crate::store::*;

#[async_trait]
impl Peers for PgStore {
    async fn heartbeat_worker(&self, worker: &WorkerInfo) -> StoreResult<()> {
        sqlx::query(include_str!("sql/heartbeat_worker.sql"))
            .bind(&worker.id)
            .bind(&worker.host)
            .bind(worker.pid as i64)
            .bind(worker.slots as i32)
            .bind(worker.busy as i32)
            .bind(to_millis(worker.started_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn remove_worker(&self, id: &str) -> StoreResult<()> {
        sqlx::query(include_str!("sql/remove_worker.sql"))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn workers(&self, within: Duration) -> StoreResult<Vec<WorkerInfo>> {
        read_workers!(&self.pool, millis(within), i32)
    }

    async fn try_lead(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        let row = sqlx::query(include_str!("sql/try_lead.sql"))
            .bind(name)
            .bind(holder)
            .bind(millis(ttl))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    async fn resign(&self, name: &str, holder: &str) -> StoreResult<()> {
        sqlx::query(include_str!("sql/resign.sql"))
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
