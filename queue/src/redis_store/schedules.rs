//! Schedules on Redis, under the global hash tag (one slot): a hash per schedule (`spec`,
//! `state`, `version`), a zset of due times and a set of ids. Writes are one script each,
//! a compare-and-set on `version`.

use std::sync::OnceLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::{AsyncCommands, Script};

use super::RedisStore;
use crate::job::to_millis;
use crate::schedule::Schedule;
use crate::store::*;

fn put_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(include_str!("lua/schedule_put.lua")))
}

fn put_many_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(include_str!("lua/schedule_put_many.lua")))
}

fn delete_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(include_str!("lua/schedule_delete.lua")))
}

impl RedisStore {
    fn schedule_key(&self, id: &str) -> String {
        self.global(&format!("sched:{id}"))
    }

    async fn put_schedule(&self, schedule: &Schedule, expected: Option<i64>) -> StoreResult<bool> {
        let id = &schedule.spec.id;
        let written: i64 = put_script()
            .key(self.schedule_key(id))
            .key(self.global("sched:due"))
            .key(self.global("sched:ids"))
            .arg(if expected.is_some() {
                "replace"
            } else {
                "insert"
            })
            .arg(expected.unwrap_or(0))
            .arg(schedule.spec_json())
            .arg(schedule.state_json())
            .arg(
                schedule
                    .state
                    .due_at
                    .map(|t| to_millis(t).to_string())
                    .unwrap_or_default(),
            )
            .arg(id)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(written == 1)
    }

    async fn read_schedules(&self, ids: &[String]) -> StoreResult<Vec<Schedule>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET")
                .arg(self.schedule_key(id))
                .arg("spec")
                .arg("state")
                .arg("version");
        }
        let rows: Vec<(Option<String>, Option<String>, Option<i64>)> =
            pipe.query_async(&mut self.conn()).await?;
        let due: Vec<Option<f64>> = {
            let mut pipe = redis::pipe();
            for id in ids {
                pipe.zscore(self.global("sched:due"), id);
            }
            pipe.query_async(&mut self.conn()).await?
        };
        let mut out = Vec::with_capacity(ids.len());
        for ((spec, state, version), due) in rows.into_iter().zip(due) {
            // Deleted between the index read and this one.
            let (Some(spec), Some(state), Some(version)) = (spec, state, version) else {
                continue;
            };
            let schedule = Schedule::from_stored(&spec, &state, version, due.map(|d| d as i64))
                .map_err(StoreError::Backend)?;
            out.push(schedule);
        }
        Ok(out)
    }
}

#[async_trait]
impl ScheduleStore for RedisStore {
    async fn insert_schedule(&self, schedule: &Schedule) -> StoreResult<bool> {
        self.put_schedule(schedule, None).await
    }

    async fn replace_schedule(&self, schedule: &Schedule, expected: i64) -> StoreResult<bool> {
        self.put_schedule(schedule, Some(expected)).await
    }

    async fn replace_schedules(&self, writes: &[(Schedule, i64)]) -> StoreResult<Vec<bool>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        // One script for the chunk: one round trip, atomic, each write still its own
        // compare-and-set.
        let mut invocation = put_many_script().prepare_invoke();
        invocation
            .key(self.global("sched:due"))
            .key(self.global("sched:ids"));
        for (schedule, expected) in writes {
            let id = &schedule.spec.id;
            invocation
                .key(self.schedule_key(id))
                .arg(*expected)
                .arg(schedule.spec_json())
                .arg(schedule.state_json())
                .arg(
                    schedule
                        .state
                        .due_at
                        .map(|t| to_millis(t).to_string())
                        .unwrap_or_default(),
                )
                .arg(id);
        }
        let written: Vec<i64> = invocation.invoke_async(&mut self.conn()).await?;
        Ok(written.into_iter().map(|w| w == 1).collect())
    }

    async fn schedule(&self, id: &str) -> StoreResult<Option<Schedule>> {
        Ok(self.read_schedules(&[id.to_string()]).await?.pop())
    }

    async fn schedules(&self) -> StoreResult<Vec<Schedule>> {
        let mut ids: Vec<String> = self.conn().smembers(self.global("sched:ids")).await?;
        ids.sort();
        self.read_schedules(&ids).await
    }

    async fn due_schedules(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Schedule>> {
        let ids: Vec<String> = self
            .conn()
            .zrangebyscore_limit(
                self.global("sched:due"),
                "-inf",
                to_millis(now),
                0,
                limit.min(10_000) as isize,
            )
            .await?;
        self.read_schedules(&ids).await
    }

    async fn delete_schedule(&self, id: &str) -> StoreResult<bool> {
        let deleted: i64 = delete_script()
            .key(self.schedule_key(id))
            .key(self.global("sched:due"))
            .key(self.global("sched:ids"))
            .arg(id)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(deleted == 1)
    }
}
