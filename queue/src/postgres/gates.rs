//! Reading gates: a job's, and the inbox across jobs.

use async_trait::async_trait;
use sqlx::types::Json;

use super::PgStore;
use crate::gate::{Gate, GateFilter, GatePage, GateStatus};
use crate::job::{to_millis, JobId};
use crate::store::*;

#[async_trait]
impl Gates for PgStore {
    async fn gates(&self, job: JobId) -> StoreResult<Vec<Gate>> {
        let bodies: Vec<Json<Gate>> = sqlx::query_scalar(include_str!("sql/gates_of_job.sql"))
            .bind(job)
            .fetch_all(&self.pool)
            .await?;
        if bodies.is_empty() {
            self.get(job).await?;
        }
        Ok(bodies.into_iter().map(|g| g.0).collect())
    }

    async fn gate_inbox(&self, filter: &GateFilter) -> StoreResult<GatePage> {
        let limit = filter.page_size();
        let (after_ms, after_job, after_key) = match &filter.after {
            Some(c) => (to_millis(c.opened_at), c.job_id, c.key.clone()),
            None => (i64::MIN, JobId::nil(), String::new()),
        };
        let bodies: Vec<Json<Gate>> = sqlx::query_scalar(include_str!("sql/gate_inbox.sql"))
            .bind(filter.status.unwrap_or(GateStatus::Open).as_str())
            .bind(after_ms)
            .bind(after_job)
            .bind(after_key)
            .bind(limit as i64 + 1)
            .fetch_all(&self.pool)
            .await?;
        Ok(GatePage::from_ordered(
            bodies.into_iter().map(|g| g.0).collect(),
            limit,
        ))
    }
}
