//! The throughput store: Redis. Every state change is one Lua script, all time comes from
//! the server's `TIME`, and every key of a queue (its jobs, indexes, event streams,
//! checkpoints, effects) carries the hash tag `{<prefix>:q:<queue>}`, so each script touches
//! one Redis Cluster slot. A few global keys live under `{<prefix>}`: the set of queues,
//! the job → queue index, workers and leaderships.
//!
//! Transitions that need the status machine (fail, release, operator actions, reaping) are
//! made once, in [`crate::transitions`]; this store's [`Transact::save`] writes them with a
//! script (`apply.lua`) that applies them only if the job's version did not move meanwhile
//! (else the transition reads and decides again).
//!
//! Durability needs Redis to run with AOF (`appendonly yes`, `appendfsync everysec` or
//! `always`); `migrate` warns when persistence is off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script, Value as RValue};
use serde_json::Value;

use crate::job::{
    from_millis, to_millis, Job, JobFailure, JobId, NewJob, Priority, Timeouts, DEFAULT_QUEUE,
};
use crate::notifier::listen::{Channels, ListenerTask, Transport};
use crate::notifier::{LocalNotifier, Notifier, Signal};
use crate::operator::Settle;
use crate::row::status_event;
use crate::status::JobStatus;
use crate::store::*;
use crate::transitions::Hold;

const PRELUDE: &str = include_str!("lua/prelude.lua");

struct Scripts {
    enqueue: Script,
    claim: Script,
    renew: Script,
    apply: Script,
    complete: Script,
    checkpoint: Script,
    effect: Script,
    artifact: Script,
    prune: Script,
    lead: Script,
}

/// The most job → queue entries a store caches (about 10 MB).
const QUEUE_CACHE_MAX: usize = 100_000;

fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| {
        let with = |body: &str| Script::new(&format!("{PRELUDE}\n{body}"));
        Scripts {
            enqueue: with(include_str!("lua/enqueue.lua")),
            claim: with(include_str!("lua/claim.lua")),
            renew: with(include_str!("lua/renew.lua")),
            apply: with(include_str!("lua/apply.lua")),
            complete: with(include_str!("lua/complete.lua")),
            checkpoint: with(include_str!("lua/checkpoint.lua")),
            effect: with(include_str!("lua/effect.lua")),
            artifact: with(include_str!("lua/artifact.lua")),
            prune: with(include_str!("lua/prune.lua")),
            lead: Script::new(include_str!("lua/lead.lua")),
        }
    })
}

impl From<redis::RedisError> for StoreError {
    fn from(err: redis::RedisError) -> Self {
        if err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_timeout()
            || matches!(
                err.kind(),
                redis::ErrorKind::BusyLoadingError | redis::ErrorKind::TryAgain
            )
        {
            StoreError::Unavailable(err.to_string())
        } else {
            StoreError::Backend(err.to_string())
        }
    }
}

/// The Redis store. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    client: redis::Client,
    prefix: String,
    notifier: Arc<LocalNotifier>,
    listener: Arc<ListenerTask>,
    options: StoreOptions,
    /// job → queue; a job never changes queue, so this only grows (bounded by use).
    queue_of: Arc<Mutex<HashMap<JobId, String>>>,
}

/// The SUBSCRIBE transport of the shared listen loop ([`crate::notifier::listen`]).
struct RedisTransport(redis::Client);

#[async_trait]
impl Transport for RedisTransport {
    type Subscription = redis::aio::PubSubStream;

    async fn subscribe(&self, channels: &Channels) -> Result<Self::Subscription, String> {
        let mut pubsub = self.0.get_async_pubsub().await.map_err(|e| e.to_string())?;
        pubsub
            .subscribe(&channels.all())
            .await
            .map_err(|e| e.to_string())?;
        Ok(pubsub.into_on_message())
    }

    async fn next(messages: &mut Self::Subscription) -> Result<Option<(String, String)>, String> {
        use futures_util::StreamExt;
        Ok(messages.next().await.map(|message| {
            let payload: String = message.get_payload().unwrap_or_default();
            (message.get_channel_name().to_string(), payload)
        }))
    }
}

/// A job's hash, as read, with the version the conditional writes check.
struct Stored {
    job: Job,
    ver: String,
}

impl RedisStore {
    /// Connect to `redis://host:port[/db][?prefix=name]` (prefix default `drover`).
    pub async fn connect(url: &str, options: StoreOptions) -> StoreResult<Self> {
        let (base, params) = url.split_once('?').unwrap_or((url, ""));
        let mut prefix = "drover".to_string();
        for pair in params.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("prefix", value)) => prefix = value.to_string(),
                _ => {
                    return Err(StoreError::Backend(format!(
                        "unknown Redis URL parameter `{pair}` (drover reads `prefix`)"
                    )))
                }
            }
        }
        let valid = !prefix.is_empty()
            && prefix.len() <= 64
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(StoreError::Backend(format!(
                "prefix `{prefix}` must be 1 to 64 of [A-Za-z0-9._-]"
            )));
        }
        let client = redis::Client::open(base)
            .map_err(|e| StoreError::Backend(format!("bad Redis URL: {e}")))?;
        // The manager's backoff (backon) starts at 1 s and multiplies by `factor` per try:
        // keep it at 2 and cap it at 1 s, or a restarted server is waited for for minutes.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(5))
            .set_response_timeout(Duration::from_secs(10))
            .set_factor(2)
            .set_max_delay(1000)
            .set_number_of_retries(3);
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(RedisStore {
            conn,
            client,
            prefix,
            notifier: Arc::new(LocalNotifier::default()),
            listener: Arc::new(ListenerTask::default()),
            options,
            queue_of: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The key prefix (isolates installations and tests sharing one server).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn base(&self, queue: &str) -> String {
        format!("{}:{{{}:q:{queue}}}", self.prefix, self.prefix)
    }

    fn global(&self, name: &str) -> String {
        format!("{}:{{{}}}:{name}", self.prefix, self.prefix)
    }

    fn channel(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The queue of a job (cached; one HGET on a miss).
    async fn queue_of(&self, id: JobId) -> StoreResult<String> {
        if let Some(queue) = self
            .queue_of
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(queue.clone());
        }
        let queue: Option<String> = self
            .conn()
            .hget(self.global("jobq"), id.to_string())
            .await?;
        let queue = queue.ok_or(StoreError::NotFound(id))?;
        self.remember_queue(id, &queue);
        Ok(queue)
    }

    /// Caches a job's queue. The cache is emptied when it reaches `QUEUE_CACHE_MAX`
    /// entries: a long-lived process sees jobs without end, and a miss costs one HGET.
    fn remember_queue(&self, id: JobId, queue: &str) {
        let mut cache = self.queue_of.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= QUEUE_CACHE_MAX {
            cache.clear();
        }
        cache.insert(id, queue.to_string());
    }

    /// The queue of a job, or `None` when the job does not exist (reads of a gone job
    /// answer empty rather than fail).
    async fn known_queue(&self, id: JobId) -> StoreResult<Option<String>> {
        match self.queue_of(id).await {
            Ok(queue) => Ok(Some(queue)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn queues_known(&self) -> StoreResult<Vec<String>> {
        let mut queues: Vec<String> = self.conn().smembers(self.global("queues")).await?;
        queues.sort();
        Ok(queues)
    }

    async fn read(&self, id: JobId) -> StoreResult<Stored> {
        let queue = self.queue_of(id).await?;
        let fields: HashMap<String, String> = self
            .conn()
            .hgetall(format!("{}:job:{id}", self.base(&queue)))
            .await?;
        if fields.is_empty() {
            return Err(StoreError::NotFound(id));
        }
        let ver = fields.get("ver").cloned().unwrap_or_default();
        Ok(Stored {
            job: job_from_hash(&fields)?,
            ver,
        })
    }

    /// Reads many jobs of one queue in one round trip, in order; missing ones are skipped.
    async fn read_many(&self, queue: &str, ids: &[String]) -> StoreResult<Vec<Job>> {
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

    /// Writes a decision about `old` (now `new`) if the job did not change meanwhile.
    /// Returns `Ok(None)` on a conflict (the caller reads and decides again).
    async fn apply(
        &self,
        old: &Stored,
        new: &Job,
        now: DateTime<Utc>,
        settle: Option<&Settle>,
        publish: &[(String, String)],
    ) -> StoreResult<Option<()>> {
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
                Ok(Some(()))
            }
            Some("conflict") => Ok(None),
            Some("missing") => Err(StoreError::NotFound(new.id)),
            other => Err(StoreError::Backend(format!("apply answered {other:?}"))),
        }
    }

    async fn server_now(&self) -> StoreResult<i64> {
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut self.conn()).await?;
        Ok(secs * 1000 + micros / 1000)
    }

    async fn fenced_script(
        &self,
        script: &Script,
        fence: Fence,
        args: Vec<Vec<u8>>,
    ) -> StoreResult<Vec<RValue>> {
        let queue = self.queue_of(fence.job).await?;
        let mut invocation = script.key(self.base(&queue));
        invocation
            .arg(fence.job.to_string())
            .arg(fence.epoch.to_string());
        for arg in args {
            invocation.arg(arg);
        }
        let reply: Vec<RValue> = invocation.invoke_async(&mut self.conn()).await?;
        match reply.first().and_then(as_str).as_deref() {
            Some("ok") => Ok(reply),
            Some("fenced") => Err(StoreError::Fenced {
                job: fence.job,
                epoch: fence.epoch,
            }),
            Some("missing") => Err(StoreError::NotFound(fence.job)),
            other => Err(StoreError::Backend(format!("script answered {other:?}"))),
        }
    }
}

fn as_str(value: &RValue) -> Option<String> {
    match value {
        RValue::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        RValue::SimpleString(s) => Some(s.clone()),
        RValue::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(field: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Backend(format!("stored {field}: {e}")))
}

/// A job from its hash.
fn job_from_hash(f: &HashMap<String, String>) -> StoreResult<Job> {
    job_from_fields(|k| f.get(k).map(String::as_str))
}

/// A job from its hash fields, looked up by name. Fields at their default are not stored
/// by `enqueue.lua` (attempt, lease epoch, request flags, artifacts, updated_at): an
/// absent field reads as its default, so hashes written with or without them read alike.
fn job_from_fields<'a>(field: impl Fn(&str) -> Option<&'a str>) -> StoreResult<Job> {
    let get = |k: &str| field(k).filter(|v| !v.is_empty());
    let int = |k: &str| -> StoreResult<Option<i64>> {
        get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|e| StoreError::Backend(format!("stored {k}: {e}")))
            })
            .transpose()
    };
    let required = |k: &str| -> StoreResult<i64> {
        int(k)?.ok_or_else(|| StoreError::Backend(format!("stored job lacks {k}")))
    };
    let text = |k: &str| get(k).map(str::to_string);
    let json = |k: &str| -> StoreResult<Option<Value>> {
        get(k).map(|v| parse_json::<Value>(k, v)).transpose()
    };
    let id: JobId = get("id")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Backend("stored job lacks its id".into()))?;
    let secs = |k: &str| -> StoreResult<Option<u64>> { Ok(int(k)?.map(|v| v.max(0) as u64)) };
    let created_at = required("created_at")?;
    Ok(Job {
        id,
        queue: text("queue").unwrap_or_else(|| DEFAULT_QUEUE.into()),
        kind: text("kind").unwrap_or_default(),
        goal: field("goal").unwrap_or_default().to_string(),
        config: json("config")?.unwrap_or_else(|| Value::Object(Default::default())),
        priority: priority_of(int("priority")?.unwrap_or(1) as i32),
        created_by: text("created_by"),
        idempotency_key: text("idempotency_key"),
        run_at: from_millis(required("run_at")?),
        attempt: int("attempt")?.unwrap_or(0).max(0) as u32,
        max_attempts: int("max_attempts")?.unwrap_or(1).max(0) as u32,
        timeouts: Timeouts {
            job_timeout: secs("job_timeout")?,
            step_timeout: secs("step_timeout")?,
            api_timeout: secs("api_timeout")?,
        },
        status: crate::row::parse_status(get("status").unwrap_or(""))?,
        progress: json("progress")?,
        result: json("result")?,
        error: get("error")
            .map(|v| parse_json::<JobFailure>("error", v))
            .transpose()?,
        artifacts: get("artifacts")
            .map(|v| parse_json::<Vec<String>>("artifacts", v))
            .transpose()?
            .unwrap_or_default(),
        lease_epoch: int("lease_epoch")?.unwrap_or(0),
        lease_owner: text("lease_owner"),
        lease_expires_at: int("lease_expires_at")?.map(from_millis),
        pause_requested: get("pause_requested").is_some_and(|v| v == "1"),
        cancel_requested: get("cancel_requested").is_some_and(|v| v == "1"),
        event_seq: int("event_seq")?.unwrap_or(0),
        created_at: from_millis(created_at),
        started_at: int("started_at")?.map(from_millis),
        updated_at: from_millis(int("updated_at")?.unwrap_or(created_at)),
        finished_at: int("finished_at")?.map(from_millis),
    })
}

/// An event from its entry in a job's event log list: `<seq>\n<at ms>\n<data>\n<kind>`.
fn event_from_entry(job_id: JobId, entry: &str) -> StoreResult<Event> {
    let mut parts = entry.splitn(4, '\n');
    let mut next = || parts.next().unwrap_or_default();
    let (seq, at, data, kind) = (next(), next(), next(), next());
    let number = |what: &str, text: &str| {
        text.parse::<i64>()
            .map_err(|e| StoreError::Backend(format!("job {job_id}: event {what} `{text}`: {e}")))
    };
    Ok(Event {
        job_id,
        seq: number("seq", seq)?,
        kind: kind.to_string(),
        data: parse_json("event", data)?,
        created_at: from_millis(number("time", at)?),
    })
}

fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

fn opt_ms(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| to_millis(t).to_string())
        .unwrap_or_else(|| "@nil".into())
}

/// The hash fields a decision changes (times the store sets are '@now').
fn changed_fields(old: &Job, new: &Job, now: DateTime<Utc>) -> Vec<(&'static str, String)> {
    let mut fields = vec![("updated_at", "@now".to_string())];
    if old.status != new.status {
        fields.push(("status", new.status.as_str().to_string()));
        if new.status.is_terminal() && old.finished_at.is_none() {
            fields.push(("finished_at", "@now".into()));
        }
    }
    if old.attempt != new.attempt {
        fields.push(("attempt", new.attempt.to_string()));
    }
    if old.run_at != new.run_at {
        // Decisions put run_at at "now + delay" by the clock they read; the script adds
        // the delay to the server's clock as it writes.
        let delay = (new.run_at - now).num_milliseconds().max(0);
        fields.push(("run_at", format!("@now+{delay}")));
    }
    if old.result != new.result {
        fields.push((
            "result",
            new.result
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_else(|| "@nil".into()),
        ));
    }
    if old.error != new.error {
        fields.push((
            "error",
            new.error
                .as_ref()
                .and_then(|e| serde_json::to_string(e).ok())
                .unwrap_or_else(|| "@nil".into()),
        ));
    }
    if old.lease_owner != new.lease_owner {
        fields.push((
            "lease_owner",
            new.lease_owner.clone().unwrap_or_else(|| "@nil".into()),
        ));
    }
    if old.lease_expires_at != new.lease_expires_at {
        fields.push(("lease_expires_at", opt_ms(new.lease_expires_at)));
    }
    if old.pause_requested != new.pause_requested {
        fields.push(("pause_requested", flag(new.pause_requested)));
    }
    if old.cancel_requested != new.cancel_requested {
        fields.push(("cancel_requested", flag(new.cancel_requested)));
    }
    fields
}

/// The index updates a status change needs: (op, key suffix, score, member).
fn index_moves(old: &Job, new: &Job, now: DateTime<Utc>) -> Vec<[String; 4]> {
    let id = new.id.to_string();
    let mut ops = Vec::new();
    let rank = |job: &Job| job.priority.rank();
    if old.status == JobStatus::Queued
        && (new.status != JobStatus::Queued || old.run_at != new.run_at)
    {
        ops.push([
            "zrem".into(),
            format!("ready:{}", rank(old)),
            "0".into(),
            id.clone(),
        ]);
    }
    if new.status == JobStatus::Queued
        && (old.status != JobStatus::Queued || old.run_at != new.run_at)
    {
        let delay = (new.run_at - now).num_milliseconds().max(0);
        ops.push([
            "zadd".into(),
            format!("ready:{}", rank(new)),
            format!("@now+{delay}"),
            id.clone(),
        ]);
    }
    if old.status == JobStatus::Running && new.status != JobStatus::Running {
        ops.push(["zrem".into(), "leases".into(), "0".into(), id.clone()]);
    }
    if old.status != new.status {
        ops.push([
            "zrem".into(),
            format!("status:{}", old.status),
            "0".into(),
            id.clone(),
        ]);
        ops.push([
            "zadd".into(),
            format!("status:{}", new.status),
            "0".into(),
            id.clone(),
        ]);
        if new.status.is_terminal() {
            ops.push([
                "zadd".into(),
                format!("finished:{}", new.status),
                "@now".into(),
                id.clone(),
            ]);
        }
    }
    ops
}

/// Where one job's arguments lie in an enqueue script's arguments.
struct SentJob {
    /// Its first argument (the id; run_at is the fifth).
    start: usize,
    /// Its field/value pairs.
    fields: std::ops::Range<usize>,
}

/// Appends the hash fields of a new job that are not at their default, as field/value
/// pairs. `enqueue.lua` adds id, queue, status, run_at, created_at and the counters.
fn push_new_job_fields(args: &mut Vec<String>, job: &NewJob, max_attempts: u32) {
    let mut push = |name: &str, value: String| {
        args.push(name.to_string());
        args.push(value);
    };
    push("kind", job.kind.clone());
    push("goal", job.goal.clone());
    push("max_attempts", max_attempts.to_string());
    if job.config.as_object().is_none_or(|c| !c.is_empty()) {
        push("config", job.config.to_string());
    }
    if job.priority != Priority::Normal {
        push("priority", job.priority.rank().to_string());
    }
    if let Some(who) = &job.created_by {
        push("created_by", who.clone());
    }
    if let Some(key) = &job.idempotency_key {
        push("idempotency_key", key.clone());
        // Only an idempotency key's match is compared by fingerprint.
        push("fingerprint", job.fingerprint());
    }
    for (name, value) in [
        ("job_timeout", job.timeouts.job_timeout),
        ("step_timeout", job.timeouts.step_timeout),
        ("api_timeout", job.timeouts.api_timeout),
    ] {
        if let Some(v) = value {
            push(name, v.to_string());
        }
    }
}

/// The job `enqueue.lua` stored from `fields` (the pairs `push_new_job_fields` wrote) at
/// server time `at` (milliseconds), read the same way a stored hash is read.
fn created_job(
    id: &str,
    queue: &str,
    run_at: &str,
    fields: &[String],
    at: &str,
) -> StoreResult<Job> {
    let run_at = if run_at.is_empty() { at } else { run_at };
    job_from_fields(|name| match name {
        // Keep in step with the fields enqueue.lua adds.
        "id" => Some(id),
        "queue" => Some(queue),
        "status" => Some("queued"),
        "run_at" => Some(run_at),
        "created_at" => Some(at),
        "event_seq" => Some("1"),
        _ => fields
            .chunks_exact(2)
            .find(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str()),
    })
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
        match landed {
            Some(()) => Ok(Some(self.read(new.id).await?.job)),
            None => Ok(None),
        }
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

#[async_trait]
impl JobStore for RedisStore {
    /// All or none within each queue; a batch spanning queues is one script per queue (a
    /// Redis Cluster cannot run one script across slots).
    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Enqueued>> {
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
            index.arg(self.global("jobq"));
            for &i in idx {
                index.arg(ids[i].to_string()).arg(queue);
            }
            let mut pipe = redis::pipe();
            pipe.sadd(self.global("queues"), queue).ignore();
            pipe.add_command(index).ignore();
            pipe.query_async::<()>(&mut self.conn()).await?;
            let mut args: Vec<String> = Vec::with_capacity(5 + idx.len() * 14);
            args.extend([
                self.options
                    .max_queue_size
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "-1".into()),
                self.channel("jobs"),
                self.channel("events"),
                queue.clone(),
                idx.len().to_string(),
            ]);
            let mut starts = Vec::with_capacity(idx.len());
            for &i in idx {
                let job = &jobs[i];
                let max_attempts = job
                    .max_attempts
                    .unwrap_or(self.options.default_max_attempts());
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
                .key(self.base(queue))
                .arg(&args)
                .invoke_async(&mut self.conn())
                .await?;
            let forget = |store: &Self| {
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
                    forget(self).await;
                    return Err(StoreError::IdempotencyConflict {
                        key: reply.get(1).cloned().unwrap_or_default(),
                        existing: reply
                            .get(2)
                            .and_then(|s| s.parse().ok())
                            .unwrap_or_default(),
                    });
                }
                Some("full") => {
                    forget(self).await;
                    return Err(StoreError::QueueFull {
                        queue: queue.clone(),
                        max: self.options.max_queue_size.unwrap_or(0),
                    });
                }
                other => return Err(StoreError::Backend(format!("enqueue answered {other:?}"))),
            }
            self.notifier.publish(Signal::JobsAvailable {
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
            let read = self.read_many(queue, &wanted).await?;
            let mut existing: HashMap<JobId, Job> = read.into_iter().map(|j| (j.id, j)).collect();
            for (&i, placed) in idx.iter().zip(starts) {
                let (created, id) =
                    outcome[i].ok_or_else(|| StoreError::Backend("enqueue".into()))?;
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

    async fn get(&self, id: JobId) -> StoreResult<Job> {
        Ok(self.read(id).await?.job)
    }

    async fn list(&self, filter: &JobFilter) -> StoreResult<JobPage> {
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
        for queue in self.queues_known().await? {
            let mut from = upper.clone();
            let mut taken = 0;
            loop {
                let ids: Vec<String> = self
                    .conn()
                    .zrevrangebylex_limit(
                        format!("{}:{index}", self.base(&queue)),
                        &from,
                        "-",
                        0,
                        200,
                    )
                    .await?;
                let n = ids.len();
                let jobs = self.read_many(&queue, &ids).await?;
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

    async fn claim(&self, request: &ClaimRequest) -> StoreResult<Vec<Lease>> {
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        let queues = if request.queues.is_empty() {
            self.queues_known().await?
        } else {
            request.queues.clone()
        };
        // Visit queues by their best due job, so priorities hold across queues too.
        let mut heads = Vec::new();
        if let [queue] = queues.as_slice() {
            heads.push(((0, 0, String::new()), queue.clone()));
        } else {
            let now = self.server_now().await?;
            for queue in queues {
                let base = self.base(&queue);
                for p in 0..3 {
                    let head: Vec<(String, f64)> = self
                        .conn()
                        .zrangebyscore_limit_withscores(
                            format!("{base}:ready:{p}"),
                            "-inf",
                            now,
                            0,
                            1,
                        )
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
                .key(self.base(&queue))
                .arg(&request.worker_id)
                .arg(millis(request.lease_ttl))
                .arg(left)
                .arg(self.channel("events"))
                .invoke_async(&mut self.conn())
                .await?;
            for hash in hashes {
                // The hash before the claim, then the fields the claim wrote: later wins.
                let fields: HashMap<&str, &str> = hash
                    .chunks_exact(2)
                    .map(|pair| (pair[0].as_str(), pair[1].as_str()))
                    .collect();
                let job = job_from_fields(|k| fields.get(k).copied())?;
                self.remember_queue(job.id, &queue);
                self.notifier.publish(Signal::Event {
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

    async fn renew(&self, fences: &[Fence], ttl: Duration) -> StoreResult<Vec<Renewal>> {
        let mut by_queue: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, fence) in fences.iter().enumerate() {
            match self.queue_of(fence.job).await {
                Ok(queue) => by_queue.entry(queue).or_default().push(i),
                Err(StoreError::NotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
        let mut out = vec![Renewal::Lost; fences.len()];
        for (queue, idx) in by_queue {
            let mut invocation = scripts().renew.key(self.base(&queue));
            invocation.arg(millis(ttl));
            for &i in &idx {
                invocation
                    .arg(fences[i].job.to_string())
                    .arg(fences[i].epoch);
            }
            let reply: Vec<String> = invocation.invoke_async(&mut self.conn()).await?;
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

    async fn complete_many(&self, completions: &[Completion]) -> StoreResult<Vec<Completed>> {
        // One script per queue (a script stays in its queue's slot); usually one in all.
        let mut by_queue: HashMap<String, Vec<usize>> = HashMap::new();
        let mut answers = vec![Completed::Fenced; completions.len()];
        for (i, c) in completions.iter().enumerate() {
            if let Some(queue) = self.known_queue(c.fence.job).await? {
                by_queue.entry(queue).or_default().push(i);
            }
        }
        for (queue, indexes) in by_queue {
            let mut invocation = scripts().complete.key(self.base(&queue));
            invocation.arg(self.channel("events"));
            for &i in &indexes {
                let c = &completions[i];
                invocation
                    .arg(c.fence.job.to_string())
                    .arg(c.fence.epoch.to_string())
                    .arg(c.result.to_string());
            }
            let reply: Vec<String> = invocation.invoke_async(&mut self.conn()).await?;
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
                    self.notifier.publish(Signal::Event {
                        job: completions[i].fence.job,
                        seq: 0,
                    });
                }
            }
        }
        Ok(answers)
    }
}

#[async_trait]
impl RunLog for RedisStore {
    async fn checkpoint(
        &self,
        fence: Fence,
        checkpoint: NewCheckpoint,
        keep: usize,
    ) -> StoreResult<i64> {
        let reply = self
            .fenced_script(
                &scripts().checkpoint,
                fence,
                vec![
                    checkpoint.step.into_bytes(),
                    checkpoint.state,
                    if checkpoint.compressed {
                        b"1".to_vec()
                    } else {
                        b"0".to_vec()
                    },
                    keep.max(1).to_string().into_bytes(),
                    self.channel("events").into_bytes(),
                ],
            )
            .await?;
        self.notifier.publish(Signal::Event {
            job: fence.job,
            seq: 0,
        });
        reply
            .get(1)
            .and_then(as_str)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| StoreError::Backend("checkpoint reply".into()))
    }

    async fn latest_checkpoint(&self, id: JobId) -> StoreResult<Option<Checkpoint>> {
        Ok(self.checkpoints_with_state(id).await?.pop())
    }

    async fn checkpoints(&self, id: JobId) -> StoreResult<Vec<Checkpoint>> {
        self.checkpoints_with_state(id).await
    }

    async fn append_event(&self, fence: Fence, kind: &str, data: Value) -> StoreResult<i64> {
        let queue = self.queue_of(fence.job).await?;
        let mut args: Vec<String> = vec![
            fence.job.to_string(),
            "fence".into(),
            fence.epoch.to_string(),
        ];
        if kind == "progress" {
            args.extend([
                "2".into(),
                "updated_at".into(),
                "@now".into(),
                "progress".into(),
                data.to_string(),
            ]);
        } else {
            args.extend(["1".into(), "updated_at".into(), "@now".into()]);
        }
        args.extend([
            "0".into(),
            kind.to_string(),
            data.to_string(),
            self.channel("events"),
            "0".into(),
        ]);
        let reply: Vec<String> = scripts()
            .apply
            .key(self.base(&queue))
            .arg(&args)
            .invoke_async(&mut self.conn())
            .await?;
        match reply.first().map(String::as_str) {
            Some("ok") => {
                let seq = reply.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                self.notifier.publish(Signal::Event {
                    job: fence.job,
                    seq,
                });
                Ok(seq)
            }
            Some("fenced") => Err(StoreError::Fenced {
                job: fence.job,
                epoch: fence.epoch,
            }),
            Some("missing") => Err(StoreError::NotFound(fence.job)),
            other => Err(StoreError::Backend(format!("append answered {other:?}"))),
        }
    }

    async fn events(&self, id: JobId, after: i64, limit: usize) -> StoreResult<Vec<Event>> {
        let Some(queue) = self.known_queue(id).await? else {
            return Ok(Vec::new());
        };
        // A job has one of the two logs: the list (see prelude.lua), or the stream of a job
        // stored before it. Both are read in one round trip.
        let base = self.base(&queue);
        let after = after.max(0);
        let limit = limit.clamp(1, MAX_EVENTS_PER_READ);
        let (list, stream): (Vec<String>, Vec<(String, HashMap<String, String>)>) = redis::pipe()
            .lrange(
                format!("{base}:eventlog:{id}"),
                after as isize,
                after.saturating_add(limit as i64 - 1) as isize,
            )
            .cmd("XRANGE")
            .arg(format!("{base}:events:{id}"))
            .arg(format!("(0-{after}"))
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn())
            .await?;
        if !list.is_empty() {
            return list
                .iter()
                .map(|entry| event_from_entry(id, entry))
                .filter(|event| event.as_ref().map_or(true, |e| e.seq > after))
                .collect();
        }
        stream
            .into_iter()
            .map(|(stream_id, fields)| {
                let seq = stream_id
                    .split_once('-')
                    .and_then(|(_, s)| s.parse().ok())
                    .ok_or_else(|| StoreError::Backend(format!("event id {stream_id}")))?;
                Ok(Event {
                    job_id: id,
                    seq,
                    kind: fields.get("kind").cloned().unwrap_or_default(),
                    data: parse_json(
                        "event",
                        fields.get("data").map(String::as_str).unwrap_or("null"),
                    )?,
                    created_at: from_millis(
                        fields.get("at").and_then(|a| a.parse().ok()).unwrap_or(0),
                    ),
                })
            })
            .collect()
    }

    async fn record_effect(&self, fence: Fence, key: &str, result: Value) -> StoreResult<Value> {
        let reply = self
            .fenced_script(
                &scripts().effect,
                fence,
                vec![key.as_bytes().to_vec(), result.to_string().into_bytes()],
            )
            .await?;
        let stored = reply.get(1).and_then(as_str).unwrap_or_default();
        parse_json("effect", &stored)
    }

    async fn effects(&self, id: JobId) -> StoreResult<Vec<Effect>> {
        let Some(queue) = self.known_queue(id).await? else {
            return Ok(Vec::new());
        };
        let base = self.base(&queue);
        let results: HashMap<String, String> =
            self.conn().hgetall(format!("{base}:effects:{id}")).await?;
        let meta: HashMap<String, String> =
            self.conn().hgetall(format!("{base}:effmeta:{id}")).await?;
        let mut effects = Vec::with_capacity(results.len());
        for (key, result) in results {
            let (epoch, at) = meta
                .get(&key)
                .and_then(|m| m.split_once(':'))
                .map(|(e, a)| (e.parse().unwrap_or(0), a.parse().unwrap_or(0)))
                .unwrap_or((0, 0));
            effects.push(Effect {
                result: parse_json("effect", &result)?,
                key,
                epoch,
                created_at: from_millis(at),
            });
        }
        effects.sort_by(|a, b| (a.created_at, &a.key).cmp(&(b.created_at, &b.key)));
        Ok(effects)
    }

    async fn put_artifact(&self, fence: Fence, artifact: NewArtifact) -> StoreResult<ArtifactMeta> {
        let meta = ArtifactMeta {
            name: artifact.name.clone(),
            content_type: artifact.content_type.clone(),
            size: artifact.data.len(),
            created_at: Utc::now(),
        };
        let event = serde_json::to_vec(&meta).unwrap_or_default();
        self.fenced_script(
            &scripts().artifact,
            fence,
            vec![
                artifact.name.into_bytes(),
                artifact.content_type.into_bytes(),
                artifact.data,
                event,
                self.channel("events").into_bytes(),
            ],
        )
        .await?;
        self.notifier.publish(Signal::Event {
            job: fence.job,
            seq: 0,
        });
        Ok(meta)
    }

    async fn artifacts(&self, id: JobId) -> StoreResult<Vec<ArtifactMeta>> {
        let Some(queue) = self.known_queue(id).await? else {
            return Ok(Vec::new());
        };
        let base = self.base(&queue);
        let meta: HashMap<String, String> =
            self.conn().hgetall(format!("{base}:artmeta:{id}")).await?;
        let mut out = Vec::with_capacity(meta.len());
        for (name, m) in meta {
            let size: usize = redis::cmd("HSTRLEN")
                .arg(format!("{base}:art:{id}"))
                .arg(&name)
                .query_async(&mut self.conn())
                .await?;
            let (ctype, at) = m.split_once('\n').unwrap_or((m.as_str(), "0"));
            out.push(ArtifactMeta {
                name,
                content_type: ctype.to_string(),
                size,
                created_at: from_millis(at.parse().unwrap_or(0)),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn artifact(&self, id: JobId, name: &str) -> StoreResult<Option<Artifact>> {
        let Some(queue) = self.known_queue(id).await? else {
            return Ok(None);
        };
        let base = self.base(&queue);
        let data: Option<Vec<u8>> = self.conn().hget(format!("{base}:art:{id}"), name).await?;
        let meta: Option<String> = self
            .conn()
            .hget(format!("{base}:artmeta:{id}"), name)
            .await?;
        Ok(match (data, meta) {
            (Some(data), Some(meta)) => {
                let (ctype, at) = meta.split_once('\n').unwrap_or((meta.as_str(), "0"));
                Some(Artifact {
                    meta: ArtifactMeta {
                        name: name.to_string(),
                        content_type: ctype.to_string(),
                        size: data.len(),
                        created_at: from_millis(at.parse().unwrap_or(0)),
                    },
                    data,
                })
            }
            _ => None,
        })
    }
}

#[async_trait]
impl Maintenance for RedisStore {
    async fn prune(&self, retention: &Retention, limit: usize) -> StoreResult<u64> {
        let now = self.server_now().await?;
        let mut total = 0;
        for queue in self.queues_known().await? {
            let left = limit.saturating_sub(total);
            if left == 0 {
                break;
            }
            let ids: Vec<String> = scripts()
                .prune
                .key(self.base(&queue))
                .arg(now.saturating_sub(millis(retention.completed)))
                .arg(now.saturating_sub(millis(retention.failed)))
                .arg(now.saturating_sub(millis(retention.cancelled)))
                .arg(left)
                .invoke_async(&mut self.conn())
                .await?;
            if !ids.is_empty() {
                let _: () = self.conn().hdel(self.global("jobq"), &ids).await?;
                let mut cache = self.queue_of.lock().unwrap_or_else(|p| p.into_inner());
                for id in &ids {
                    if let Ok(id) = id.parse() {
                        cache.remove(&id);
                    }
                }
            }
            total += ids.len();
        }
        Ok(total as u64)
    }

    async fn next_run_at(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let now = self.server_now().await?;
        let mut next: Option<i64> = None;
        for queue in self.queues_known().await? {
            for p in 0..3 {
                let head: Vec<(String, f64)> = self
                    .conn()
                    .zrangebyscore_limit_withscores(
                        format!("{}:ready:{p}", self.base(&queue)),
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

    async fn pause_queue(&self, name: &str) -> StoreResult<()> {
        let _: () = self.conn().sadd(self.global("queues"), name).await?;
        let _: () = self
            .conn()
            .set(format!("{}:paused", self.base(name)), "1")
            .await?;
        Ok(())
    }

    async fn resume_queue(&self, name: &str) -> StoreResult<()> {
        let _: () = self
            .conn()
            .del(format!("{}:paused", self.base(name)))
            .await?;
        let _: () = self.conn().publish(self.channel("jobs"), name).await?;
        self.notifier.publish(Signal::JobsAvailable {
            queue: Some(name.to_string()),
        });
        Ok(())
    }

    async fn queues(&self) -> StoreResult<Vec<QueueStats>> {
        let now = self.server_now().await?;
        let mut stats = crate::queue_stats::QueueStatsBuilder::default();
        for queue in self.queues_known().await? {
            let base = self.base(&queue);
            let paused: bool = self.conn().exists(format!("{base}:paused")).await?;
            stats.paused(queue.clone(), paused);
            for status in [JobStatus::Running, JobStatus::Paused] {
                let n: u64 = self.conn().zcard(format!("{base}:status:{status}")).await?;
                if n > 0 {
                    stats.add(queue.clone(), status.to_string(), 1, n, None);
                }
            }
            for p in 0..3i32 {
                let key = format!("{base}:ready:{p}");
                let n: u64 = self.conn().zcard(&key).await?;
                if n == 0 {
                    continue;
                }
                let oldest: Vec<(String, f64)> = self
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
}

#[async_trait]
impl Peers for RedisStore {
    async fn heartbeat_worker(&self, worker: &WorkerInfo) -> StoreResult<()> {
        let now = self.server_now().await?;
        let mut info = worker.clone();
        info.last_heartbeat = from_millis(now);
        let json = serde_json::to_string(&info).map_err(|e| StoreError::Backend(e.to_string()))?;
        let _: () = self
            .conn()
            .hset(self.global("workers"), &worker.id, json)
            .await?;
        Ok(())
    }

    async fn remove_worker(&self, id: &str) -> StoreResult<()> {
        let _: () = self.conn().hdel(self.global("workers"), id).await?;
        Ok(())
    }

    async fn workers(&self, within: Duration) -> StoreResult<Vec<WorkerInfo>> {
        let now = self.server_now().await?;
        let all: HashMap<String, String> = self.conn().hgetall(self.global("workers")).await?;
        let mut workers: Vec<WorkerInfo> = all
            .values()
            .filter_map(|json| serde_json::from_str::<WorkerJson>(json).ok())
            .map(WorkerInfo::from)
            .filter(|w| to_millis(w.last_heartbeat) >= now - millis(within))
            .collect();
        workers.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(workers)
    }

    async fn try_lead(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        let held: i64 = scripts()
            .lead
            .key(self.global(&format!("leader:{name}")))
            .arg(holder)
            .arg(millis(ttl).max(1))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(held == 1)
    }

    async fn resign(&self, name: &str, holder: &str) -> StoreResult<()> {
        let key = self.global(&format!("leader:{name}"));
        let current: Option<String> = self.conn().get(&key).await?;
        if current.as_deref() == Some(holder) {
            let _: () = self.conn().del(&key).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn notifier(&self) -> Arc<dyn Notifier> {
        self.listener.start(
            || RedisTransport(self.client.clone()),
            || Channels::named(|name| self.channel(name)),
            &self.notifier,
        );
        self.notifier.clone()
    }

    /// Redis needs no schema: this checks the server answers and warns when persistence is
    /// off (without AOF a crash of Redis loses acknowledged jobs).
    async fn migrate(&self) -> StoreResult<()> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        let aof: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .query_async(&mut self.conn())
            .await;
        match aof {
            Ok(reply) if reply.get(1).map(String::as_str) == Some("no") => tracing::warn!(
                "Redis runs without AOF (appendonly no): a Redis crash can lose acknowledged \
                 jobs. Run it with --appendonly yes --appendfsync everysec (or always)."
            ),
            Ok(_) => {}
            Err(err) => tracing::debug!(error = %err, "cannot read Redis persistence settings"),
        }
        Ok(())
    }
}

/// `WorkerInfo` as stored (it has no `Deserialize` of its own).
#[derive(serde::Deserialize)]
struct WorkerJson {
    id: String,
    host: String,
    pid: u32,
    slots: u32,
    busy: u32,
    started_at: DateTime<Utc>,
    last_heartbeat: DateTime<Utc>,
}

impl From<WorkerJson> for WorkerInfo {
    fn from(w: WorkerJson) -> Self {
        WorkerInfo {
            id: w.id,
            host: w.host,
            pid: w.pid,
            slots: w.slots,
            busy: w.busy,
            started_at: w.started_at,
            last_heartbeat: w.last_heartbeat,
        }
    }
}

impl RedisStore {
    async fn checkpoints_with_state(&self, id: JobId) -> StoreResult<Vec<Checkpoint>> {
        let Some(queue) = self.known_queue(id).await? else {
            return Ok(Vec::new());
        };
        let base = self.base(&queue);
        let meta: HashMap<String, String> =
            self.conn().hgetall(format!("{base}:cpmeta:{id}")).await?;
        let states: HashMap<String, Vec<u8>> =
            self.conn().hgetall(format!("{base}:cp:{id}")).await?;
        let mut out = Vec::with_capacity(meta.len());
        for (seq, m) in meta {
            let mut parts = m.splitn(3, '\n');
            let step = parts.next().unwrap_or_default().to_string();
            let compressed = parts.next() == Some("1");
            let at: i64 = parts.next().and_then(|a| a.parse().ok()).unwrap_or(0);
            let state = states.get(&seq).cloned().unwrap_or_default();
            out.push(Checkpoint {
                job_id: id,
                seq: seq.parse().unwrap_or(0),
                step,
                size: state.len(),
                state,
                compressed,
                created_at: from_millis(at),
            });
        }
        out.sort_by_key(|c| c.seq);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Backend;

    /// A job as the layout before issue 6 stored it: every field, defaults included.
    async fn put_old_layout_job(store: &RedisStore, id: JobId, at: i64) {
        let base = store.base(DEFAULT_QUEUE);
        let (id, at) = (id.to_string(), at.to_string());
        let mut pipe = redis::pipe();
        pipe.sadd(store.global("queues"), DEFAULT_QUEUE).ignore();
        pipe.hset(store.global("jobq"), &id, DEFAULT_QUEUE).ignore();
        pipe.hset_multiple(
            format!("{base}:job:{id}"),
            &[
                ("id", id.as_str()),
                ("queue", DEFAULT_QUEUE),
                ("kind", "noop"),
                ("goal", "old"),
                ("config", "{}"),
                ("priority", "1"),
                ("max_attempts", "3"),
                ("run_at", &at),
                ("status", "queued"),
                ("attempt", "0"),
                ("lease_epoch", "0"),
                ("event_seq", "1"),
                ("cp_seq", "0"),
                ("ver", "1"),
                ("created_at", &at),
                ("updated_at", &at),
                ("fingerprint", "0000000000000000"),
                ("pause_requested", "0"),
                ("cancel_requested", "0"),
                ("artifacts", "[]"),
            ],
        )
        .ignore();
        pipe.cmd("XADD")
            .arg(format!("{base}:events:{id}"))
            .arg("0-1")
            .arg(&[
                ("kind", "status"),
                ("data", r#"{"attempt":0,"status":"queued"}"#),
            ])
            .arg(&[("at", &at)])
            .ignore();
        pipe.zadd(format!("{base}:ready:1"), &id, &at).ignore();
        pipe.zadd(format!("{base}:status:queued"), &id, 0).ignore();
        pipe.zadd(format!("{base}:all"), &id, 0).ignore();
        pipe.query_async::<()>(&mut store.conn())
            .await
            .expect("write an old-layout job");
    }

    /// Hashes written before the lean layout (defaults stored) read, lease and complete
    /// like new ones: a deployment upgrades in place.
    #[tokio::test]
    async fn jobs_stored_by_the_previous_layout_still_run() {
        let backend = Backend::redis();
        let store = RedisStore::connect(&backend.url(), StoreOptions::default())
            .await
            .expect("connect");
        let old = uuid::Uuid::now_v7();
        let at = store.server_now().await.expect("time") - 1_000;
        put_old_layout_job(&store, old, at).await;
        let new = store
            .enqueue(NewJob::new("noop", "new"))
            .await
            .expect("enqueue")
            .into_job();

        let (old_job, new_job) = (
            store.get(old).await.expect("get old"),
            store.get(new.id).await.expect("get new"),
        );
        assert_eq!(new_job, new, "a created job reads back as returned");
        let same_but_ids_and_times = |job: &Job| {
            (
                job.kind.clone(),
                job.config.clone(),
                job.priority,
                job.status,
                job.attempt,
                job.max_attempts,
                job.lease_epoch,
                job.event_seq,
                job.artifacts.clone(),
                job.pause_requested,
                job.cancel_requested,
                job.created_at == job.updated_at,
            )
        };
        assert_eq!(
            same_but_ids_and_times(&old_job),
            same_but_ids_and_times(&new_job)
        );

        let request = ClaimRequest {
            worker_id: "w-1".into(),
            limit: 10,
            lease_ttl: Duration::from_secs(30),
            queues: vec![DEFAULT_QUEUE.into()],
        };
        let leases = store.claim(&request).await.expect("claim");
        assert_eq!(
            leases.iter().map(|l| l.job.id).collect::<Vec<_>>(),
            [old, new.id],
            "the older job first"
        );
        for lease in &leases {
            assert_eq!((lease.epoch, lease.job.attempt), (1, 1));
            assert_eq!(lease.job.status, JobStatus::Running);
            assert_eq!(lease.job.lease_owner.as_deref(), Some("w-1"));
            assert!(lease.job.started_at.is_some());
            assert_eq!(lease.job, store.get(lease.job.id).await.expect("get"));
        }
        let fences: Vec<Fence> = leases
            .iter()
            .map(|l| Fence {
                job: l.job.id,
                epoch: l.epoch,
            })
            .collect();
        let renewed = store
            .renew(&fences, Duration::from_secs(30))
            .await
            .expect("renew");
        assert!(renewed.iter().all(|r| matches!(
            r,
            Renewal::Held {
                pause_requested: false,
                cancel_requested: false
            }
        )));
        for &fence in &fences {
            let seq = store
                .append_event(fence, "progress", serde_json::json!({"done": 1}))
                .await
                .expect("append");
            assert_eq!(seq, 3);
        }
        let completions: Vec<Completion> = fences
            .iter()
            .map(|&fence| Completion {
                fence,
                result: serde_json::json!({"ok": true}),
            })
            .collect();
        let done = store.complete_many(&completions).await.expect("complete");
        assert_eq!(done, [Completed::Done, Completed::Done]);
        for id in [old, new.id] {
            let job = store.get(id).await.expect("get");
            assert_eq!(job.status, JobStatus::Completed);
            let events = store.events(id, 0, 10).await.expect("events");
            let seen: Vec<_> = events
                .iter()
                .map(|e| (e.seq, e.kind.as_str(), e.data["status"].clone()))
                .collect();
            assert_eq!(
                seen,
                [
                    (1, "status", "queued".into()),
                    (2, "status", "running".into()),
                    (3, "progress", serde_json::Value::Null),
                    (4, "status", "completed".into()),
                ]
            );
            assert_eq!(events[3].data["worker"], "w-1");
            assert_eq!(events[3].data["attempt"], 1);
            let tail = store.events(id, 2, 1).await.expect("events after 2");
            assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
        }
        // Retention deletes both layouts whole.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let zero = Retention {
            completed: Duration::ZERO,
            failed: Duration::ZERO,
            cancelled: Duration::ZERO,
        };
        assert_eq!(store.prune(&zero, 100).await.expect("prune"), 2);
        for id in [old, new.id] {
            assert_eq!(backend.leftovers(id).await, Vec::<String>::new());
        }
        backend.cleanup().await;
    }
}
