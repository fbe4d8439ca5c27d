//! The two primitives [`crate::transitions`] writes every read-decide-write transition on
//! (fail, release, operator actions, reaping): `load` reads a job with the server's clock and
//! the version it carries, `save` writes the decision with `apply.lua` only if that version
//! did not move meanwhile (else the transition reads and decides again).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::AsyncCommands;

use super::codec::{changed_fields, index_moves, job_from_hash};
use super::{scripts, RedisStore};
use crate::job::{from_millis, Job, JobId};
use crate::notifier::Signal;
use crate::operator::Settle;
use crate::row::status_event;
use crate::store::*;
use crate::transitions::Hold;

/// A job's hash, as read, with the version the conditional writes check.
struct Stored {
    job: Job,
    ver: String,
}

#[async_trait]
impl Transact for RedisStore {
    async fn load(&self, id: JobId) -> StoreResult<Loaded> {
        let queue = self.queue_of(id).await?;
        let ((secs, micros), fields): ((i64, i64), HashMap<String, String>) = redis::pipe()
            .cmd("TIME")
            .hgetall(format!("{}:job:{id}", self.base(&queue)))
            .query_async(&mut self.conn())
            .await?;
        if fields.is_empty() {
            return Err(StoreError::NotFound(id));
        }
        Ok(Loaded {
            job: job_from_hash(&fields)?,
            now: from_millis(secs * 1000 + micros / 1000),
            hold: Hold::Version(fields.get("ver").cloned().unwrap_or_default()),
        })
    }

    async fn save(&self, loaded: Loaded, write: Write) -> StoreResult<Option<Job>> {
        let Hold::Version(ver) = loaded.hold else {
            return Err(StoreError::Backend(
                "a Redis save needs the version it read".into(),
            ));
        };
        let new = &write.job;
        let publish = match write.wake {
            Wake::Nobody => vec![],
            Wake::Queue => vec![(self.channel("jobs"), new.queue.clone())],
            Wake::Control => vec![(self.channel("control"), new.id.to_string())],
        };
        let old = Stored {
            job: loaded.job,
            ver,
        };
        let landed = self
            .apply(&old, new, loaded.now, write.reason.as_ref(), &publish)
            .await?;
        Ok(landed)
    }

    /// Lease index entries of jobs no longer running (settled between a read of the index
    /// and the script that settled them) are dropped here, so they are not listed again.
    async fn expired_leases(&self, limit: usize) -> StoreResult<Vec<JobId>> {
        let now = self.server_now().await?;
        let mut expired = Vec::new();
        for queue in self.queues_known().await? {
            let left = limit.saturating_sub(expired.len());
            if left == 0 {
                break;
            }
            let leases = format!("{}:leases", self.base(&queue));
            let ids: Vec<String> = self
                .conn()
                .zrangebyscore_limit(&leases, "-inf", format!("({now}"), 0, left as isize)
                .await?;
            if ids.is_empty() {
                continue;
            }
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.hget(format!("{}:job:{id}", self.base(&queue)), "status");
            }
            let statuses: Vec<Option<String>> = pipe.query_async(&mut self.conn()).await?;
            let mut stale = Vec::new();
            for (id, status) in ids.into_iter().zip(statuses) {
                match (id.parse::<JobId>(), status.as_deref()) {
                    (Ok(job), Some("running")) => expired.push(job),
                    _ => stale.push(id),
                }
            }
            if !stale.is_empty() {
                let _: () = self.conn().zrem(&leases, stale).await?;
            }
        }
        Ok(expired)
    }
}

impl RedisStore {
    /// Writes a decision about `old` (now `new`) if the job did not change meanwhile, and
    /// answers the job as written. `Ok(None)` on a conflict (the caller reads and decides
    /// again).
    async fn apply(
        &self,
        old: &Stored,
        new: &Job,
        now: DateTime<Utc>,
        settle: Option<&Settle>,
        publish: &[(String, String)],
    ) -> StoreResult<Option<Job>> {
        let base = self.base(&new.queue);
        let id = new.id.to_string();
        let mut args: Vec<String> = vec![id.clone(), "ver".into(), old.ver.clone()];
        let fields = changed_fields(&old.job, new, now);
        args.push(fields.len().to_string());
        for (f, v) in fields {
            args.push(f.to_string());
            args.push(v);
        }
        let ops = index_moves(&old.job, new, now);
        args.push(ops.len().to_string());
        for op in ops {
            args.extend(op);
        }
        if old.job.status != new.status {
            args.push("status".into());
            args.push(status_event(new, settle).to_string());
        } else {
            args.push(String::new());
            args.push(String::new());
        }
        args.push(self.channel("events"));
        args.push(publish.len().to_string());
        for (channel, message) in publish {
            args.push(channel.clone());
            args.push(message.clone());
        }
        let reply: Vec<String> = scripts()
            .apply
            .key(&base)
            .arg(&args)
            .invoke_async(&mut self.conn())
            .await?;
        match reply.first().map(String::as_str) {
            Some("ok") => {
                if old.job.status != new.status {
                    self.notifier.publish(Signal::Event {
                        job: new.id,
                        seq: 0,
                    });
                }
                // The job as the script wrote it: field/value pairs after `ok` and the seq.
                let fields: HashMap<String, String> = reply[2.min(reply.len())..]
                    .chunks_exact(2)
                    .map(|pair| (pair[0].clone(), pair[1].clone()))
                    .collect();
                Ok(Some(job_from_hash(&fields)?))
            }
            Some("conflict") => Ok(None),
            Some("missing") => Err(StoreError::NotFound(new.id)),
            other => Err(StoreError::Backend(format!("apply answered {other:?}"))),
        }
    }
}
