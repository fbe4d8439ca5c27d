//! Reading jobs: one by id, many of one queue in one round trip, and the newest-first
//! pages of `list` across queues.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::codec::job_from_hash;
use super::RedisStore;
use crate::job::{Job, JobId};
use crate::store::*;

impl RedisStore {
    /// A job by id (`get`); one HGETALL once its queue is known.
    pub(super) async fn read(&self, id: JobId) -> StoreResult<Job> {
        let queue = self.queue_of(id).await?;
        let fields: HashMap<String, String> = self
            .conn()
            .hgetall(format!("{}:job:{id}", self.base(&queue)))
            .await?;
        if fields.is_empty() {
            return Err(StoreError::NotFound(id));
        }
        job_from_hash(&fields)
    }

    /// Reads many jobs of one queue in one round trip, in order; missing ones are skipped.
    pub(super) async fn read_many(&self, queue: &str, ids: &[String]) -> StoreResult<Vec<Job>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let base = self.base(queue);
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(format!("{base}:job:{id}"));
        }
        let rows: Vec<HashMap<String, String>> = pipe.query_async(&mut self.conn()).await?;
        rows.iter()
            .filter(|fields| !fields.is_empty())
            .map(job_from_hash)
            .collect()
    }
}

/// A page of jobs, newest first; each queue's status (or `all`) index is read in pages of
/// 200 ids, and kind and submitter are filtered here.
pub(super) async fn list(store: &RedisStore, filter: &JobFilter) -> StoreResult<JobPage> {
    let limit = filter.page_size();
    let index = match filter.status {
        Some(status) => format!("status:{status}"),
        None => "all".to_string(),
    };
    let upper = match filter.before {
        Some(before) => format!("({before}"),
        None => "+".to_string(),
    };
    // Newest first across queues: merge each queue's page (ids sort by time).
    let mut candidates: Vec<Job> = Vec::new();
    for queue in store.queues_known().await? {
        let mut from = upper.clone();
        let mut taken = 0;
        loop {
            let ids: Vec<String> = store
                .conn()
                .zrevrangebylex_limit(
                    format!("{}:{index}", store.base(&queue)),
                    &from,
                    "-",
                    0,
                    200,
                )
                .await?;
            let n = ids.len();
            let jobs = store.read_many(&queue, &ids).await?;
            for job in jobs {
                let kind_ok = filter.kind.as_ref().is_none_or(|k| *k == job.kind);
                let by_ok = filter
                    .created_by
                    .as_ref()
                    .is_none_or(|c| Some(c) == job.created_by.as_ref());
                if kind_ok && by_ok {
                    candidates.push(job);
                    taken += 1;
                }
            }
            match ids.last() {
                Some(last) if n == 200 && taken <= limit => from = format!("({last}"),
                _ => break,
            }
        }
    }
    candidates.sort_by_key(|job| std::cmp::Reverse(job.id));
    Ok(JobPage::from_newest(candidates, limit))
}
