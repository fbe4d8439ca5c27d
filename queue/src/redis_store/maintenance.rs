//! Maintenance and peers: retention (`prune.lua`), the next due `run_at`, queue pause and
//! stats, the worker registry and leadership (`lead.lua`).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;

use super::codec::WorkerJson;
use super::{scripts, RedisStore};
use crate::job::{from_millis, to_millis};
use crate::notifier::Signal;
use crate::status::JobStatus;
use crate::store::*;

pub(super) async fn prune(
    store: &RedisStore,
    retention: &Retention,
    limit: usize,
) -> StoreResult<u64> {
    let now = store.server_now().await?;
    let mut total = 0;
    for queue in store.queues_known().await? {
        let left = limit.saturating_sub(total);
        if left == 0 {
            break;
        }
        let ids: Vec<String> = scripts()
            .prune
            .key(store.base(&queue))
            .arg(now.saturating_sub(millis(retention.completed)))
            .arg(now.saturating_sub(millis(retention.failed)))
            .arg(now.saturating_sub(millis(retention.cancelled)))
            .arg(left)
            .invoke_async(&mut store.conn())
            .await?;
        if !ids.is_empty() {
            let _: () = store.conn().hdel(store.global("jobq"), &ids).await?;
            store.queue_cache.forget(&ids);
        }
        total += ids.len();
    }
    Ok(total as u64)
}

pub(super) async fn next_run_at(store: &RedisStore) -> StoreResult<Option<DateTime<Utc>>> {
    let now = store.server_now().await?;
    let mut next: Option<i64> = None;
    for queue in store.queues_known().await? {
        for p in 0..3 {
            let head: Vec<(String, f64)> = store
                .conn()
                .zrangebyscore_limit_withscores(
                    format!("{}:ready:{p}", store.base(&queue)),
                    format!("({now}"),
                    "+inf",
                    0,
                    1,
                )
                .await?;
            if let Some((_, score)) = head.first() {
                let at = *score as i64;
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
    }
    Ok(next.map(from_millis))
}

pub(super) async fn pause_queue(store: &RedisStore, name: &str) -> StoreResult<()> {
    let _: () = store.conn().sadd(store.global("queues"), name).await?;
    let _: () = store
        .conn()
        .set(format!("{}:paused", store.base(name)), "1")
        .await?;
    Ok(())
}

pub(super) async fn resume_queue(store: &RedisStore, name: &str) -> StoreResult<()> {
    let _: () = store
        .conn()
        .del(format!("{}:paused", store.base(name)))
        .await?;
    let _: () = store.conn().publish(store.channel("jobs"), name).await?;
    store.notifier.publish(Signal::JobsAvailable {
        queue: Some(name.to_string()),
    });
    Ok(())
}

pub(super) async fn queues(store: &RedisStore) -> StoreResult<Vec<QueueStats>> {
    let now = store.server_now().await?;
    let mut stats = crate::queue_stats::QueueStatsBuilder::default();
    for queue in store.queues_known().await? {
        let base = store.base(&queue);
        let paused: bool = store.conn().exists(format!("{base}:paused")).await?;
        stats.paused(queue.clone(), paused);
        for status in [JobStatus::Running, JobStatus::Paused, JobStatus::Waiting] {
            let n: u64 = store
                .conn()
                .zcard(format!("{base}:status:{status}"))
                .await?;
            if n > 0 {
                stats.add(queue.clone(), status.to_string(), 1, n, None);
            }
        }
        for p in 0..3i32 {
            let key = format!("{base}:ready:{p}");
            let n: u64 = store.conn().zcard(&key).await?;
            if n == 0 {
                continue;
            }
            let oldest: Vec<(String, f64)> = store
                .conn()
                .zrangebyscore_limit_withscores(&key, "-inf", now, 0, 1)
                .await?;
            stats.add(
                queue.clone(),
                "queued".into(),
                p,
                n,
                oldest.first().map(|(_, s)| *s as i64),
            );
        }
    }
    Ok(stats.finish(now))
}

pub(super) async fn heartbeat_worker(store: &RedisStore, worker: &WorkerInfo) -> StoreResult<()> {
    let now = store.server_now().await?;
    let mut info = worker.clone();
    info.last_heartbeat = from_millis(now);
    let json = serde_json::to_string(&info).map_err(|e| StoreError::Backend(e.to_string()))?;
    let _: () = store
        .conn()
        .hset(store.global("workers"), &worker.id, json)
        .await?;
    Ok(())
}

pub(super) async fn remove_worker(store: &RedisStore, id: &str) -> StoreResult<()> {
    let _: () = store.conn().hdel(store.global("workers"), id).await?;
    Ok(())
}

pub(super) async fn workers(store: &RedisStore, within: Duration) -> StoreResult<Vec<WorkerInfo>> {
    let now = store.server_now().await?;
    let all: HashMap<String, String> = store.conn().hgetall(store.global("workers")).await?;
    let mut workers: Vec<WorkerInfo> = all
        .values()
        .filter_map(|json| serde_json::from_str::<WorkerJson>(json).ok())
        .map(WorkerInfo::from)
        .filter(|w| to_millis(w.last_heartbeat) >= now - millis(within))
        .collect();
    workers.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(workers)
}

pub(super) async fn try_lead(
    store: &RedisStore,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> StoreResult<bool> {
    let held: i64 = scripts()
        .lead
        .key(store.global(&format!("leader:{name}")))
        .arg(holder)
        .arg(millis(ttl).max(1))
        .invoke_async(&mut store.conn())
        .await?;
    Ok(held == 1)
}

pub(super) async fn resign(store: &RedisStore, name: &str, holder: &str) -> StoreResult<()> {
    let key = store.global(&format!("leader:{name}"));
    let current: Option<String> = store.conn().get(&key).await?;
    if current.as_deref() == Some(holder) {
        let _: () = store.conn().del(&key).await?;
    }
    Ok(())
}
