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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_emptied_when_full_and_keeps_the_newest_entry() {
        let cache = QueueCache::default();
        let first = uuid::Uuid::now_v7();
        cache.remember(first, "a");
        for _ in 1..QUEUE_CACHE_MAX {
            cache.remember(uuid::Uuid::now_v7(), "a");
        }
        assert_eq!(cache.entries().len(), QUEUE_CACHE_MAX);
        assert_eq!(cache.get(first).as_deref(), Some("a"));

        let newest = uuid::Uuid::now_v7();
        cache.remember(newest, "b");
        assert_eq!(
            cache.entries().len(),
            1,
            "emptied, then the newest entry kept"
        );
        assert_eq!(cache.get(newest).as_deref(), Some("b"));
        assert_eq!(cache.get(first), None, "a miss reads the index again");
    }

    #[test]
    fn forgotten_jobs_are_read_from_the_index_again() {
        let cache = QueueCache::default();
        let (kept, pruned) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        cache.remember(kept, "a");
        cache.remember(pruned, "a");
        cache.forget(&[pruned.to_string(), "not-an-id".to_string()]);
        assert_eq!(cache.get(kept).as_deref(), Some("a"));
        assert_eq!(cache.get(pruned), None);
    }
}
