//! Schedules on PostgreSQL: one row each; every write is a compare-and-set on `version`, and
//! the due read walks the partial index on `due_at`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::PgStore;
use crate::job::to_millis;
use crate::schedule::Schedule;
use crate::store::*;

fn schedule_from_row(row: &sqlx::postgres::PgRow) -> StoreResult<Schedule> {
    let spec: String = row.try_get("spec")?;
    let state: String = row.try_get("state")?;
    let version: i64 = row.try_get("version")?;
    let due_at: Option<i64> = row.try_get("due_at")?;
    Schedule::from_stored(&spec, &state, version, due_at).map_err(StoreError::Backend)
}

#[async_trait]
impl ScheduleStore for PgStore {
    async fn insert_schedule(&self, schedule: &Schedule) -> StoreResult<bool> {
        let done = sqlx::query(include_str!("sql/insert_schedule.sql"))
            .bind(&schedule.spec.id)
            .bind(schedule.spec_json())
            .bind(schedule.state_json())
            .bind(1i64)
            .bind(schedule.state.due_at.map(to_millis))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_schedule(&self, schedule: &Schedule, expected: i64) -> StoreResult<bool> {
        let done = sqlx::query(include_str!("sql/replace_schedule.sql"))
            .bind(&schedule.spec.id)
            .bind(schedule.spec_json())
            .bind(schedule.state_json())
            .bind(schedule.state.due_at.map(to_millis))
            .bind(expected)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_schedules(&self, writes: &[(Schedule, i64)]) -> StoreResult<Vec<bool>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = writes.iter().map(|(s, _)| s.spec.id.as_str()).collect();
        let specs: Vec<String> = writes.iter().map(|(s, _)| s.spec_json()).collect();
        let states: Vec<String> = writes.iter().map(|(s, _)| s.state_json()).collect();
        let due: Vec<Option<i64>> = writes
            .iter()
            .map(|(s, _)| s.state.due_at.map(to_millis))
            .collect();
        let expected: Vec<i64> = writes.iter().map(|(_, v)| *v).collect();
        // One statement for the chunk; the rows it answers are those written.
        let rows = sqlx::query(include_str!("sql/replace_schedules.sql"))
            .bind(&ids)
            .bind(&specs)
            .bind(&states)
            .bind(&due)
            .bind(&expected)
            .fetch_all(&self.pool)
            .await?;
        let mut won = std::collections::HashSet::with_capacity(rows.len());
        for row in &rows {
            won.insert(row.try_get::<String, _>("id")?);
        }
        Ok(ids.iter().map(|id| won.contains(*id)).collect())
    }

    async fn schedule(&self, id: &str) -> StoreResult<Option<Schedule>> {
        let row = sqlx::query(include_str!("sql/schedule.sql"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(schedule_from_row).transpose()
    }

    async fn schedules(&self) -> StoreResult<Vec<Schedule>> {
        let rows = sqlx::query(include_str!("sql/schedules.sql"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(schedule_from_row).collect()
    }

    async fn due_schedules(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Schedule>> {
        let rows = sqlx::query(include_str!("sql/due_schedules.sql"))
            .bind(to_millis(now))
            .bind(limit.min(10_000) as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(schedule_from_row).collect()
    }

    async fn delete_schedule(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query(include_str!("sql/delete_schedule.sql"))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
