//! How jobs, events and the run log are laid out in Redis values, as pure functions: a job
//! from its hash, the fields and index moves a decision writes, the field pairs of a new
//! job, and the entries of events, checkpoints, effects and artifacts. Nothing here talks
//! to Redis, so all of it is tested without a server (`codec/tests.rs`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use redis::Value as RValue;
use serde_json::Value;

use crate::job::{
    from_millis, to_millis, Job, JobFailure, JobId, NewJob, Priority, Timeouts, DEFAULT_QUEUE,
};
use crate::status::JobStatus;
use crate::store::*;

/// A script's reply item as text (bulk, simple or integer), `None` for anything else.
pub(super) fn as_str(value: &RValue) -> Option<String> {
    match value {
        RValue::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        RValue::SimpleString(s) => Some(s.clone()),
        RValue::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(
    field: &str,
    text: &str,
) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Backend(format!("stored {field}: {e}")))
}

/// A job from its hash.
pub(super) fn job_from_hash(f: &HashMap<String, String>) -> StoreResult<Job> {
    job_from_fields(|k| f.get(k).map(String::as_str))
}

/// A job from its hash fields, looked up by name. Fields at their default are not stored
/// by `enqueue.lua` (attempt, lease epoch, request flags, artifacts, updated_at): an
/// absent field reads as its default, so hashes written with or without them read alike.
pub(super) fn job_from_fields<'a>(field: impl Fn(&str) -> Option<&'a str>) -> StoreResult<Job> {
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
pub(super) fn event_from_entry(job_id: JobId, entry: &str) -> StoreResult<Event> {
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

/// An event from its entry in a job's event stream (jobs stored before the list layout):
/// entry id `0-<seq>`, fields `kind`, `data`, `at`.
pub(super) fn event_from_stream(
    job_id: JobId,
    stream_id: &str,
    fields: &HashMap<String, String>,
) -> StoreResult<Event> {
    let seq = stream_id
        .split_once('-')
        .and_then(|(_, s)| s.parse().ok())
        .ok_or_else(|| StoreError::Backend(format!("event id {stream_id}")))?;
    Ok(Event {
        job_id,
        seq,
        kind: fields.get("kind").cloned().unwrap_or_default(),
        data: parse_json(
            "event",
            fields.get("data").map(String::as_str).unwrap_or("null"),
        )?,
        created_at: from_millis(fields.get("at").and_then(|a| a.parse().ok()).unwrap_or(0)),
    })
}

/// A checkpoint from its `cpmeta` entry (`<step>\n<compressed 1|0>\n<at ms>`) and state.
pub(super) fn checkpoint_from(job_id: JobId, seq: &str, meta: &str, state: Vec<u8>) -> Checkpoint {
    let mut parts = meta.splitn(3, '\n');
    let step = parts.next().unwrap_or_default().to_string();
    let compressed = parts.next() == Some("1");
    let at: i64 = parts.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    Checkpoint {
        job_id,
        seq: seq.parse().unwrap_or(0),
        step,
        size: state.len(),
        state,
        compressed,
        created_at: from_millis(at),
    }
}

/// An effect from its stored result and its `effmeta` entry (`<epoch>:<at ms>`).
pub(super) fn effect_from(key: String, result: &str, meta: Option<&str>) -> StoreResult<Effect> {
    let (epoch, at) = meta
        .and_then(|m| m.split_once(':'))
        .map(|(e, a)| (e.parse().unwrap_or(0), a.parse().unwrap_or(0)))
        .unwrap_or((0, 0));
    Ok(Effect {
        result: parse_json("effect", result)?,
        key,
        epoch,
        created_at: from_millis(at),
    })
}

/// An artifact's metadata from its `artmeta` entry (`<content type>\n<at ms>`) and size.
pub(super) fn artifact_meta(name: String, meta: &str, size: usize) -> ArtifactMeta {
    let (ctype, at) = meta.split_once('\n').unwrap_or((meta, "0"));
    ArtifactMeta {
        name,
        content_type: ctype.to_string(),
        size,
        created_at: from_millis(at.parse().unwrap_or(0)),
    }
}

fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

fn opt_ms(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| to_millis(t).to_string())
        .unwrap_or_else(|| "@nil".into())
}

/// The hash fields a decision changes (times the store sets are '@now').
pub(super) fn changed_fields(
    old: &Job,
    new: &Job,
    now: DateTime<Utc>,
) -> Vec<(&'static str, String)> {
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
pub(super) fn index_moves(old: &Job, new: &Job, now: DateTime<Utc>) -> Vec<[String; 4]> {
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

/// The index moves storing `gate` makes: out of every status index and the deadlines, then
/// into its status's (by opened time) and, while open, the deadlines (by deadline).
pub(super) fn gate_index_moves(gate: &crate::gate::Gate) -> Vec<[String; 4]> {
    use crate::gate::GateStatus;
    let member = format!("{}/{}", gate.job_id, gate.key);
    let mut ops = Vec::new();
    for status in [GateStatus::Open, GateStatus::Decided, GateStatus::TimedOut] {
        ops.push([
            "zrem".into(),
            format!("gate_status:{status}"),
            "0".into(),
            member.clone(),
        ]);
    }
    ops.push([
        "zrem".into(),
        "gate_deadlines".into(),
        "0".into(),
        member.clone(),
    ]);
    ops.push([
        "zadd".into(),
        format!("gate_status:{}", gate.status),
        crate::job::to_millis(gate.opened_at).to_string(),
        member.clone(),
    ]);
    if gate.is_open() {
        ops.push([
            "zadd".into(),
            "gate_deadlines".into(),
            crate::job::to_millis(gate.deadline).to_string(),
            member,
        ]);
    }
    ops
}

/// Where one job's arguments lie in an enqueue script's arguments.
pub(super) struct SentJob {
    /// Its first argument (the id; run_at is the fifth).
    pub(super) start: usize,
    /// Its field/value pairs.
    pub(super) fields: std::ops::Range<usize>,
}

/// Appends the hash fields of a new job that are not at their default, as field/value
/// pairs. `enqueue.lua` adds id, queue, status, run_at, created_at and the counters.
pub(super) fn push_new_job_fields(args: &mut Vec<String>, job: &NewJob, max_attempts: u32) {
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
pub(super) fn created_job(
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

/// `WorkerInfo` as stored (it has no `Deserialize` of its own).
#[derive(serde::Deserialize)]
pub(super) struct WorkerJson {
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

#[cfg(test)]
mod tests;
