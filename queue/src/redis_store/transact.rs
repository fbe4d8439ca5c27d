//! The two primitives [`crate::transitions`] writes every read-decide-write transition on
//! (fail, release, operator actions, reaping): `load` reads a job with the server's clock and
//! the version it carries, `save` writes the decision with `apply.lua` only if that version
//! did not move meanwhile (else the transition reads and decides again).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::AsyncCommands;

use super::codec::{changed_fields, gate_index_moves, index_moves, job_from_hash};
use super::{scripts, RedisStore};
use crate::job::{from_millis, Job, JobId};
use crate::notifier::Signal;
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
        Ok(Loaded::new(
            job_from_hash(&fields)?,
            from_millis(secs * 1000 + micros / 1000),
            Hold::Version(fields.get("ver").cloned().unwrap_or_default()),
        ))
    }

    async fn save(&self, loaded: Loaded, write: Write) -> StoreResult<Option<Job>> {
        let Hold::Version(ver) = loaded.hold else {
            return Err(StoreError::Backend(
                "a Redis save needs the version it read".into(),
            ));
        };
        let publish = match write.wake {
            Wake::Nobody => vec![],
            Wake::Queue => vec![(self.channel("jobs"), write.job.queue.clone())],
            Wake::Control => vec![(self.channel("control"), write.job.id.to_string())],
        };
        let old = Stored {
            job: loaded.job,
            ver,
        };
        let landed = self.apply(&old, &write, loaded.now, &publish).await?;
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

    /// The gates hash is written only by `apply.lua` under the job's version check, so the
    /// version read by `load` covers the gates read here.
    async fn load_gates(&self, loaded: &mut Loaded) -> StoreResult<()> {
        let key = format!("{}:gates:{}", self.base(&loaded.job.queue), loaded.job.id);
        let gates = self.read_gates(key).await?;
        loaded.gates = Some(gates);
        Ok(())
    }

    async fn gates_past_deadline(&self, limit: usize) -> StoreResult<Vec<JobId>> {
        let now = self.server_now().await?;
        let mut jobs: Vec<JobId> = Vec::new();
        for queue in self.queues_known().await? {
            let left = limit.saturating_sub(jobs.len());
            if left == 0 {
                break;
            }
            let members: Vec<String> = self
                .conn()
                .zrangebyscore_limit(
                    format!("{}:gate_deadlines", self.base(&queue)),
                    "-inf",
                    now,
                    0,
                    left as isize,
                )
                .await?;
            for member in members {
                let job = member.split_once('/').and_then(|(id, _)| id.parse().ok());
                if let Some(job) = job {
                    if !jobs.contains(&job) {
                        jobs.push(job);
                    }
                }
            }
        }
        Ok(jobs)
    }
}

impl RedisStore {
    /// Writes a decision about `old` (now `new`) if the job did not change meanwhile, and
    /// answers the job as written. `Ok(None)` on a conflict (the caller reads and decides
    /// again).
    async fn apply(
        &self,
        old: &Stored,
        write: &Write,
        now: DateTime<Utc>,
        publish: &[(String, String)],
    ) -> StoreResult<Option<Job>> {
        let new = &write.job;
        let base = self.base(&new.queue);
        let id = new.id.to_string();
        let mut args: Vec<String> = vec![id.clone(), "ver".into(), old.ver.clone()];
        let fields = changed_fields(&old.job, new, now);
        args.push(fields.len().to_string());
        for (f, v) in fields {
            args.push(f.to_string());
            args.push(v);
        }
        let mut ops = index_moves(&old.job, new, now);
        for gate in &write.gates {
            ops.extend(gate_index_moves(gate));
        }
        args.push(ops.len().to_string());
        for op in ops {
            args.extend(op);
        }
        if old.job.status != new.status {
            args.push("status".into());
            args.push(write.status_event().to_string());
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
        args.push(write.gates.len().to_string());
        for gate in &write.gates {
            args.push(gate.key.clone());
            args.push(serde_json::to_string(gate).map_err(|e| StoreError::Backend(e.to_string()))?);
            args.push(gate.event().to_string());
        }
        let reply: Vec<String> = scripts()
            .apply
            .key(&base)
            .arg(&args)
            .invoke_async(&mut self.conn())
            .await?;
        match reply.first().map(String::as_str) {
            Some("ok") => {
                if old.job.status != new.status || !write.gates.is_empty() {
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
