//! The lease hot paths, one script per queue each: claim (visiting queues by their best due
//! job), renew, and `complete_many`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use redis::AsyncCommands;

use super::codec::job_from_fields;
use super::{scripts, RedisStore};
use crate::notifier::Signal;
use crate::store::*;

pub(super) async fn claim(store: &RedisStore, request: &ClaimRequest) -> StoreResult<Vec<Lease>> {
    if request.limit == 0 {
        return Ok(Vec::new());
    }
    let queues = if request.queues.is_empty() {
        store.queues_known().await?
    } else {
        request.queues.clone()
    };
    // Visit queues by their best due job, so priorities hold across queues too.
    let mut heads = Vec::new();
    if let [queue] = queues.as_slice() {
        heads.push(((0, 0, String::new()), queue.clone()));
    } else {
        let now = store.server_now().await?;
        for queue in queues {
            let base = store.base(&queue);
            for p in 0..3 {
                let head: Vec<(String, f64)> = store
                    .conn()
                    .zrangebyscore_limit_withscores(format!("{base}:ready:{p}"), "-inf", now, 0, 1)
                    .await?;
                if let Some((id, score)) = head.into_iter().next() {
                    heads.push(((p, score as i64, id), queue.clone()));
                    break;
                }
            }
        }
        heads.sort();
    }
    let mut leases = Vec::new();
    for (_, queue) in heads {
        let left = claim_limit(request) as usize - leases.len();
        if left == 0 {
            break;
        }
        let hashes: Vec<Vec<String>> = scripts()
            .claim
            .key(store.base(&queue))
            .arg(&request.worker_id)
            .arg(millis(request.lease_ttl))
            .arg(left)
            .arg(store.channel("events"))
            .invoke_async(&mut store.conn())
            .await?;
        for hash in hashes {
            // The hash before the claim, then the fields the claim wrote: later wins.
            let fields: HashMap<&str, &str> = hash
                .chunks_exact(2)
                .map(|pair| (pair[0].as_str(), pair[1].as_str()))
                .collect();
            let job = job_from_fields(|k| fields.get(k).copied())?;
            store.queue_cache.remember(job.id, &queue);
            store.notifier.publish(Signal::Event {
                job: job.id,
                seq: job.event_seq,
            });
            leases.push(Lease {
                epoch: job.lease_epoch,
                expires_at: job.lease_expires_at.unwrap_or_else(Utc::now),
                job,
            });
        }
    }
    Ok(leases)
}

pub(super) async fn renew(
    store: &RedisStore,
    fences: &[Fence],
    ttl: Duration,
) -> StoreResult<Vec<Renewal>> {
    let mut by_queue: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, fence) in fences.iter().enumerate() {
        match store.queue_of(fence.job).await {
            Ok(queue) => by_queue.entry(queue).or_default().push(i),
            Err(StoreError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    let mut out = vec![Renewal::Lost; fences.len()];
    for (queue, idx) in by_queue {
        let mut invocation = scripts().renew.key(store.base(&queue));
        invocation.arg(millis(ttl));
        for &i in &idx {
            invocation
                .arg(fences[i].job.to_string())
                .arg(fences[i].epoch);
        }
        let reply: Vec<String> = invocation.invoke_async(&mut store.conn()).await?;
        for (&i, answer) in idx.iter().zip(reply) {
            if let Some(flags) = answer.strip_prefix("held:") {
                let (pause, cancel) = flags.split_once(':').unwrap_or(("0", "0"));
                out[i] = Renewal::Held {
                    pause_requested: pause == "1",
                    cancel_requested: cancel == "1",
                };
            }
        }
    }
    Ok(out)
}

pub(super) async fn complete_many(
    store: &RedisStore,
    completions: &[Completion],
) -> StoreResult<Vec<Completed>> {
    // One script per queue (a script stays in its queue's slot); usually one in all.
    let mut by_queue: HashMap<String, Vec<usize>> = HashMap::new();
    let mut answers = vec![Completed::Fenced; completions.len()];
    for (i, c) in completions.iter().enumerate() {
        if let Some(queue) = store.known_queue(c.fence.job).await? {
            by_queue.entry(queue).or_default().push(i);
        }
    }
    for (queue, indexes) in by_queue {
        let mut invocation = scripts().complete.key(store.base(&queue));
        invocation.arg(store.channel("events"));
        for &i in &indexes {
            let c = &completions[i];
            invocation
                .arg(c.fence.job.to_string())
                .arg(c.fence.epoch.to_string())
                .arg(c.result.to_string());
        }
        let reply: Vec<String> = invocation.invoke_async(&mut store.conn()).await?;
        if reply.len() != indexes.len() {
            return Err(StoreError::Backend(format!(
                "complete answered {} times for {} jobs",
                reply.len(),
                indexes.len()
            )));
        }
        for (&i, answer) in indexes.iter().zip(&reply) {
            if answer == "done" {
                answers[i] = Completed::Done;
                store.notifier.publish(Signal::Event {
                    job: completions[i].fence.job,
                    seq: 0,
                });
            }
        }
    }
    Ok(answers)
}
