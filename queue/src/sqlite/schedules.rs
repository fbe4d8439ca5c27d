//! Schedules on SQLite: one row each; every write is a compare-and-set on `version`, and
//! the due read walks the partial index on `due_at`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::SqliteStore;
use crate::job::to_millis;
use crate::schedule::Schedule;
use crate::store::*;

fn schedule_from_row(row: &sqlx::sqlite::SqliteRow) -> StoreResult<Schedule> {
    let spec: String = row.try_get("spec")?;
    let state: String = row.try_get("state")?;
    let version: i64 = row.try_get("version")?;
    let due_at: Option<i64> = row.try_get("due_at")?;
    Schedule::from_stored(&spec, &state, version, due_at).map_err(StoreError::Backend)
}

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn insert_schedule(&self, schedule: &Schedule) -> StoreResult<bool> {
        let done = sqlx::query(include_str!("sql/insert_schedule.sql"))
            .bind(&schedule.spec.id)
            .bind(schedule.spec_json())
            .bind(schedule.state_json())
            .bind(1i64)
            .bind(schedule.state.due_at.map(to_millis))
            .execute(&self.writer)
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
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_schedules(&self, writes: &[(Schedule, i64)]) -> StoreResult<Vec<bool>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        // One statement over a JSON array of the writes (a search of the primary key per
        // element): one wait for the write lock and one commit for the chunk.
        let batch: Vec<serde_json::Value> = writes
            .iter()
            .map(|(schedule, expected)| {
                serde_json::json!({
                    "id": schedule.spec.id,
                    "spec": schedule.spec_json(),
                    "state": schedule.state_json(),
                    "due_at": schedule.state.due_at.map(to_millis),
                    "expected": expected,
                })
            })
            .collect();
        let batch = serde_json::to_string(&batch)
            .map_err(|e| StoreError::Backend(format!("schedule batch: {e}")))?;
        let rows = sqlx::query(include_str!("sql/replace_schedules.sql"))
            .bind(batch)
            .fetch_all(&self.writer)
            .await?;
        let mut won = std::collections::HashSet::with_capacity(rows.len());
        for row in &rows {
            won.insert(row.try_get::<String, _>("id")?);
        }
        Ok(writes
            .iter()
            .map(|(schedule, _)| won.contains(&schedule.spec.id))
            .collect())
    }

    async fn schedule(&self, id: &str) -> StoreResult<Option<Schedule>> {
        let row = sqlx::query(include_str!("sql/schedule.sql"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(schedule_from_row).transpose()
    }

    async fn schedules(&self) -> StoreResult<Vec<Schedule>> {
        let rows = sqlx::query(include_str!("sql/schedules.sql"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(schedule_from_row).collect()
    }

    async fn due_schedules(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Schedule>> {
        let rows = sqlx::query(include_str!("sql/due_schedules.sql"))
            .bind(to_millis(now))
            .bind(limit.min(10_000) as i64)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(schedule_from_row).collect()
    }

    async fn delete_schedule(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query(include_str!("sql/delete_schedule.sql"))
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
