//! Enqueue: one `enqueue.lua` per queue of a batch (all or none within each queue), after
//! the job → queue index is written. A created job is built from the arguments sent and the
//! server time the script answers, without reading it back; only the jobs an idempotency
//! key matched are read.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::codec::{created_job, push_new_job_fields, SentJob};
use super::{scripts, RedisStore};
use crate::job::{to_millis, Job, JobId, NewJob};
use crate::notifier::Signal;
use crate::store::*;

/// All or none within each queue; a batch spanning queues is one script per queue (a
/// Redis Cluster cannot run one script across slots).
pub(super) async fn enqueue_batch(
    store: &RedisStore,
    jobs: Vec<NewJob>,
) -> StoreResult<Vec<Enqueued>> {
    for job in &jobs {
        job.validate()?;
    }
    let mut by_queue: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        match by_queue.iter_mut().find(|(q, _)| q == job.queue_name()) {
            Some((_, idx)) => idx.push(i),
            None => by_queue.push((job.queue_name().to_string(), vec![i])),
        }
    }
    let mut ids: Vec<JobId> = jobs.iter().map(|_| uuid::Uuid::now_v7()).collect();
    let mut outcome: Vec<Option<(bool, JobId)>> = vec![None; jobs.len()];
    // Per queue, the script's arguments, where each job's arguments and its field pairs
    // lie in them, and the server time the script stored at: a created job is known
    // without reading it back.
    let mut sent: Vec<(Vec<String>, Vec<SentJob>, String)> = Vec::with_capacity(by_queue.len());
    for (queue, idx) in &by_queue {
        // Index first: a crash after this leaves a harmless entry, never a lost job.
        let mut index = redis::cmd("HSET");
        index.arg(store.global("jobq"));
        for &i in idx {
            index.arg(ids[i].to_string()).arg(queue);
        }
        let mut pipe = redis::pipe();
        pipe.sadd(store.global("queues"), queue).ignore();
        pipe.add_command(index).ignore();
        pipe.query_async::<()>(&mut store.conn()).await?;
        let mut args: Vec<String> = Vec::with_capacity(5 + idx.len() * 14);
        args.extend([
            store
                .options
                .max_queue_size
                .map(|m| m.to_string())
                .unwrap_or_else(|| "-1".into()),
            store.channel("jobs"),
            store.channel("events"),
            queue.clone(),
            idx.len().to_string(),
        ]);
        let mut starts = Vec::with_capacity(idx.len());
        for &i in idx {
            let job = &jobs[i];
            let max_attempts = job
                .max_attempts
                .unwrap_or(store.options.default_max_attempts());
            let start = args.len();
            args.push(ids[i].to_string());
            match &job.idempotency_key {
                Some(key) => {
                    args.push(key.clone());
                    args.push(job.fingerprint());
                }
                None => args.extend([String::new(), String::new()]),
            }
            args.push(job.priority.rank().to_string());
            args.push(
                job.run_at
                    .map(|t| to_millis(t).to_string())
                    .unwrap_or_default(),
            );
            let count = args.len();
            args.push(String::new());
            push_new_job_fields(&mut args, job, max_attempts);
            args[count] = ((args.len() - count - 1) / 2).to_string();
            starts.push(SentJob {
                start,
                fields: count + 1..args.len(),
            });
        }
        let reply: Vec<String> = scripts()
            .enqueue
            .key(store.base(queue))
            .arg(&args)
            .invoke_async(&mut store.conn())
            .await?;
        let forget = |store: &RedisStore| {
            let ids: Vec<String> = idx.iter().map(|&i| ids[i].to_string()).collect();
            let key = store.global("jobq");
            let mut conn = store.conn();
            async move {
                let _: redis::RedisResult<()> = conn.hdel(key, ids).await;
            }
        };
        match reply.first().map(String::as_str) {
            Some("ok") => {
                for (n, &i) in idx.iter().enumerate() {
                    let created = reply.get(2 + 2 * n).map(String::as_str) == Some("created");
                    let id = reply
                        .get(3 + 2 * n)
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| StoreError::Backend("enqueue reply".into()))?;
                    if !created {
                        ids[i] = id;
                    }
                    outcome[i] = Some((created, id));
                }
                let at = reply.get(1).cloned().unwrap_or_default();
                sent.push((args, starts, at));
            }
            Some("conflict") => {
                forget(store).await;
                return Err(StoreError::IdempotencyConflict {
                    key: reply.get(1).cloned().unwrap_or_default(),
                    existing: reply
                        .get(2)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_default(),
                });
            }
            Some("full") => {
                forget(store).await;
                return Err(StoreError::QueueFull {
                    queue: queue.clone(),
                    max: store.options.max_queue_size.unwrap_or(0),
                });
            }
            other => return Err(StoreError::Backend(format!("enqueue answered {other:?}"))),
        }
        store.notifier.publish(Signal::JobsAvailable {
            queue: Some(queue.clone()),
        });
    }
    let mut results = Vec::with_capacity(jobs.len());
    for ((queue, idx), (args, starts, at)) in by_queue.iter().zip(&sent) {
        // Only the jobs an idempotency key matched are read back.
        let wanted: Vec<String> = idx
            .iter()
            .filter_map(|&i| match outcome[i] {
                Some((false, id)) => Some(id.to_string()),
                _ => None,
            })
            .collect();
        let read = store.read_many(queue, &wanted).await?;
        let mut existing: HashMap<JobId, Job> = read.into_iter().map(|j| (j.id, j)).collect();
        for (&i, placed) in idx.iter().zip(starts) {
            let (created, id) = outcome[i].ok_or_else(|| StoreError::Backend("enqueue".into()))?;
            if created {
                // The job's arguments: id, key, fingerprint, rank, run_at, count, pairs.
                let (id, run_at) = (&args[placed.start], &args[placed.start + 4]);
                let fields = &args[placed.fields.clone()];
                let job = created_job(id, queue, run_at, fields, at)?;
                results.push((i, Enqueued::Created(job)));
            } else {
                let job = existing
                    .remove(&id)
                    .ok_or_else(|| StoreError::Backend(format!("job {id} was not stored")))?;
                results.push((i, Enqueued::Existing(job)));
            }
        }
    }
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, r)| r).collect())
}
