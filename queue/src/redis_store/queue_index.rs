//! Which queue holds a job: the global `jobq` hash (see `keys.rs`) and a bounded cache of
//! it. Every per-job key carries its queue's hash tag, so a job's queue is needed before
//! any of its keys can be named; a job never changes queue, so a cached answer stays true.

use std::collections::HashMap;
use std::sync::Mutex;

use redis::AsyncCommands;

use super::RedisStore;
use crate::job::JobId;
use crate::store::*;

/// The most job → queue entries a store caches (about 10 MB).
const QUEUE_CACHE_MAX: usize = 100_000;

/// job → queue. Emptied when it reaches [`QUEUE_CACHE_MAX`] entries: a long-lived process
/// sees jobs without end, and a miss costs one HGET.
#[derive(Default)]
pub(super) struct QueueCache(Mutex<HashMap<JobId, String>>);

impl QueueCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: JobId) -> Option<String> {
        self.entries().get(&id).cloned()
    }

    /// Caches a job's queue.
    pub(super) fn remember(&self, id: JobId, queue: &str) {
        let mut cache = self.entries();
        if cache.len() >= QUEUE_CACHE_MAX {
            cache.clear();
        }
        cache.insert(id, queue.to_string());
    }

    /// Drops deleted jobs (ids as stored; unparsable ones are skipped).
    pub(super) fn forget(&self, ids: &[String]) {
        let mut cache = self.entries();
        for id in ids {
            if let Ok(id) = id.parse() {
                cache.remove(&id);
            }
        }
    }
}

impl RedisStore {
    /// The queue of a job (cached; one HGET on a miss).
    pub(super) async fn queue_of(&self, id: JobId) -> StoreResult<String> {
        if let Some(queue) = self.queue_cache.get(id) {
            return Ok(queue);
        }
        let queue: Option<String> = self
            .conn()
            .hget(self.global("jobq"), id.to_string())
            .await?;
        let queue = queue.ok_or(StoreError::NotFound(id))?;
        self.queue_cache.remember(id, &queue);
        Ok(queue)
    }

    /// The queue of a job, or `None` when the job does not exist (reads of a gone job
    /// answer empty rather than fail).
    pub(super) async fn known_queue(&self, id: JobId) -> StoreResult<Option<String>> {
        match self.queue_of(id).await {
            Ok(queue) => Ok(Some(queue)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The base of a job's keys (see `keys.rs`), or `None` when the job does not exist.
    pub(super) async fn known_base(&self, id: JobId) -> StoreResult<Option<String>> {
        Ok(self.known_queue(id).await?.map(|queue| self.base(&queue)))
    }
}
