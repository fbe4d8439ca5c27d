//! Reading gates: a job's (`gates:<id>`), and the inbox across jobs, merged from each queue's
//! `gate_status:<status>` index (score: opened at). Entries of finished or deleted jobs are
//! skipped (the inbox shows only work that can still go on).

use std::collections::HashMap;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::RedisStore;
use crate::gate::{Gate, GateFilter, GatePage, GateStatus};
use crate::job::{to_millis, JobId};
use crate::status::JobStatus;
use crate::store::*;

fn parse_gate(json: &str) -> StoreResult<Gate> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Backend(format!("a stored gate is unreadable: {e}")))
}

impl RedisStore {
    /// The gates in the hash `key` (a job's `gates:<id>`), oldest opened first.
    pub(super) async fn read_gates(&self, key: String) -> StoreResult<Vec<Gate>> {
        let fields: HashMap<String, String> = self.conn().hgetall(key).await?;
        let mut gates = fields
            .values()
            .map(|json| parse_gate(json))
            .collect::<StoreResult<Vec<Gate>>>()?;
        gates.sort_by(|a, b| (a.opened_at, &a.key).cmp(&(b.opened_at, &b.key)));
        Ok(gates)
    }
}

#[async_trait]
impl Gates for RedisStore {
    async fn gates(&self, job: JobId) -> StoreResult<Vec<Gate>> {
        let base = self
            .known_base(job)
            .await?
            .ok_or(StoreError::NotFound(job))?;
        self.read_gates(format!("{base}:gates:{job}")).await
    }

    async fn gate_inbox(&self, filter: &GateFilter) -> StoreResult<GatePage> {
        let limit = filter.page_size();
        let status = filter.status.unwrap_or(GateStatus::Open);
        let from = filter
            .after
            .as_ref()
            .map(|c| to_millis(c.opened_at).to_string())
            .unwrap_or_else(|| "-inf".into());
        let mut found: Vec<Gate> = Vec::new();
        for queue in self.queues_known().await? {
            let base = self.base(&queue);
            let index = format!("{base}:gate_status:{status}");
            let mut offset = 0isize;
            let mut kept = 0;
            // Read this queue's index in chunks until it gave `limit + 1` live gates past
            // the cursor (enough for the merged page) or ran out.
            while kept <= limit {
                let chunk = (limit as isize + 1).max(64);
                let members: Vec<String> = self
                    .conn()
                    .zrangebyscore_limit(&index, from.as_str(), "+inf", offset, chunk)
                    .await?;
                if members.is_empty() {
                    break;
                }
                offset += members.len() as isize;
                let mut pipe = redis::pipe();
                let mut keys = Vec::new();
                for member in &members {
                    let Some((id, key)) = member.split_once('/') else {
                        continue;
                    };
                    pipe.hget(format!("{base}:gates:{id}"), key);
                    pipe.hget(format!("{base}:job:{id}"), "status");
                    keys.push(member.clone());
                }
                let answers: Vec<Option<String>> = pipe.query_async(&mut self.conn()).await?;
                for pair in answers.chunks_exact(2) {
                    let (Some(json), Some(job_status)) = (&pair[0], &pair[1]) else {
                        continue;
                    };
                    let finished = job_status
                        .parse::<JobStatus>()
                        .map(JobStatus::is_terminal)
                        .unwrap_or(true);
                    let gate = parse_gate(json)?;
                    let past_cursor = filter.after.as_ref().is_none_or(|c| c.precedes(&gate));
                    if !finished && past_cursor && gate.status == status {
                        found.push(gate);
                        kept += 1;
                    }
                }
                if (members.len() as isize) < chunk {
                    break;
                }
            }
        }
        found.sort_by(|a, b| {
            (to_millis(a.opened_at), a.job_id, &a.key).cmp(&(
                to_millis(b.opened_at),
                b.job_id,
                &b.key,
            ))
        });
        found.truncate(limit + 1);
        Ok(GatePage::from_ordered(found, limit))
    }
}
