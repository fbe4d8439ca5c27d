//! What a run leaves behind: events (`apply.lua` under a fence), checkpoints, effects and
//! artifacts (one fenced script each), and their reads.

use std::collections::HashMap;

use chrono::Utc;
use redis::{AsyncCommands, Script, Value as RValue};
use serde_json::Value;

use super::codec::{
    artifact_meta, as_str, checkpoint_from, effect_from, event_from_entry, event_from_stream,
    parse_json,
};
use super::{scripts, RedisStore};
use crate::job::JobId;
use crate::notifier::Signal;
use crate::store::*;

/// An entry of XRANGE's reply: its id and its fields.
type StreamEntry = (String, HashMap<String, String>);

/// Runs a script that writes only while `fence` holds (ARGV: id, epoch, then `args`).
async fn fenced_script(
    store: &RedisStore,
    script: &Script,
    fence: Fence,
    args: Vec<Vec<u8>>,
) -> StoreResult<Vec<RValue>> {
    let queue = store.queue_of(fence.job).await?;
    let mut invocation = script.key(store.base(&queue));
    invocation
        .arg(fence.job.to_string())
        .arg(fence.epoch.to_string());
    for arg in args {
        invocation.arg(arg);
    }
    let reply: Vec<RValue> = invocation.invoke_async(&mut store.conn()).await?;
    fenced_answer(fence, reply.first().and_then(as_str).as_deref(), "script")?;
    Ok(reply)
}

/// What a fenced script's first reply word means: `ok`, or why nothing was written.
fn fenced_answer(fence: Fence, answer: Option<&str>, script: &str) -> StoreResult<()> {
    match answer {
        Some("ok") => Ok(()),
        Some("fenced") => Err(StoreError::Fenced {
            job: fence.job,
            epoch: fence.epoch,
        }),
        Some("missing") => Err(StoreError::NotFound(fence.job)),
        other => Err(StoreError::Backend(format!("{script} answered {other:?}"))),
    }
}

pub(super) async fn checkpoint(
    store: &RedisStore,
    fence: Fence,
    checkpoint: NewCheckpoint,
    keep: usize,
) -> StoreResult<i64> {
    let reply = fenced_script(
        store,
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
            store.channel("events").into_bytes(),
        ]
        .into_iter()
        .chain(checkpoint.items.into_iter().flat_map(|item| {
            [
                item_member(&item.step, item.index).into_bytes(),
                item.visit.to_string().into_bytes(),
                item.output,
            ]
        }))
        .collect(),
    )
    .await?;
    store.notifier.publish(Signal::Event {
        job: fence.job,
        seq: 0,
    });
    reply
        .get(1)
        .and_then(as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Backend("checkpoint reply".into()))
}

/// An item output's field in `:items:<id>` and member of `:itemidx:<id>`: the index is
/// zero-padded so that the lex order of a step's members is index order.
fn item_member(step: &str, index: u64) -> String {
    format!("{step}\n{index:020}")
}

pub(super) async fn item_outputs(
    store: &RedisStore,
    id: JobId,
    step: &str,
    from: u64,
    limit: usize,
) -> StoreResult<Vec<ItemOutput>> {
    let Some(base) = store.known_base(id).await? else {
        return Ok(Vec::new());
    };
    let limit = limit.min(MAX_ITEM_OUTPUTS_PER_READ);
    if limit == 0 {
        return Ok(Vec::new());
    }
    let members: Vec<String> = redis::cmd("ZRANGEBYLEX")
        .arg(format!("{base}:itemidx:{id}"))
        .arg(format!("[{}", item_member(step, from)))
        .arg(format!("[{}", item_member(step, u64::MAX)))
        .arg("LIMIT")
        .arg(0)
        .arg(limit)
        .query_async(&mut store.conn())
        .await?;
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
        .arg(format!("{base}:items:{id}"))
        .arg(&members)
        .query_async(&mut store.conn())
        .await?;
    let mut outputs = Vec::with_capacity(members.len());
    for (member, row) in members.iter().zip(rows) {
        // A member without its row was pruned between the two reads.
        let Some(row) = row else { continue };
        let bad = || StoreError::Backend(format!("item output `{member}` is malformed"));
        let index = member
            .rsplit_once('\n')
            .and_then(|(_, i)| i.parse().ok())
            .ok_or_else(bad)?;
        let cut = row.iter().position(|b| *b == b'\n').ok_or_else(bad)?;
        let visit = std::str::from_utf8(&row[..cut])
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)?;
        outputs.push(ItemOutput {
            step: step.to_string(),
            index,
            visit,
            output: row[cut + 1..].to_vec(),
        });
    }
    Ok(outputs)
}

pub(super) async fn append_event(
    store: &RedisStore,
    fence: Fence,
    kind: &str,
    data: Value,
) -> StoreResult<i64> {
    let queue = store.queue_of(fence.job).await?;
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
        store.channel("events"),
        "0".into(),
    ]);
    let reply: Vec<String> = scripts()
        .apply
        .key(store.base(&queue))
        .arg(&args)
        .invoke_async(&mut store.conn())
        .await?;
    fenced_answer(fence, reply.first().map(String::as_str), "append")?;
    let seq = reply.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    store.notifier.publish(Signal::Event {
        job: fence.job,
        seq,
    });
    Ok(seq)
}

pub(super) async fn events(
    store: &RedisStore,
    id: JobId,
    after: i64,
    limit: usize,
) -> StoreResult<Vec<Event>> {
    let Some(base) = store.known_base(id).await? else {
        return Ok(Vec::new());
    };
    // A job has one of the two logs: the list (see prelude.lua), or the stream of a job
    // stored before it. Both are read in one round trip.
    let after = after.max(0);
    let limit = limit.clamp(1, MAX_EVENTS_PER_READ);
    let (list, stream): (Vec<String>, Vec<StreamEntry>) = redis::pipe()
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
        .query_async(&mut store.conn())
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
        .map(|(stream_id, fields)| event_from_stream(id, &stream_id, &fields))
        .collect()
}

pub(super) async fn record_effect(
    store: &RedisStore,
    fence: Fence,
    key: &str,
    result: Value,
) -> StoreResult<Value> {
    let reply = fenced_script(
        store,
        &scripts().effect,
        fence,
        vec![key.as_bytes().to_vec(), result.to_string().into_bytes()],
    )
    .await?;
    let stored = reply.get(1).and_then(as_str).unwrap_or_default();
    parse_json("effect", &stored)
}

pub(super) async fn effects(store: &RedisStore, id: JobId) -> StoreResult<Vec<Effect>> {
    let Some(base) = store.known_base(id).await? else {
        return Ok(Vec::new());
    };
    let results: HashMap<String, String> =
        store.conn().hgetall(format!("{base}:effects:{id}")).await?;
    let meta: HashMap<String, String> =
        store.conn().hgetall(format!("{base}:effmeta:{id}")).await?;
    let mut effects = Vec::with_capacity(results.len());
    for (key, result) in results {
        let meta = meta.get(&key).map(String::as_str);
        effects.push(effect_from(key, &result, meta)?);
    }
    effects.sort_by(|a, b| (a.created_at, &a.key).cmp(&(b.created_at, &b.key)));
    Ok(effects)
}

pub(super) async fn put_artifact(
    store: &RedisStore,
    fence: Fence,
    artifact: NewArtifact,
) -> StoreResult<ArtifactMeta> {
    let meta = ArtifactMeta {
        name: artifact.name.clone(),
        content_type: artifact.content_type.clone(),
        size: artifact.data.len(),
        created_at: Utc::now(),
    };
    let event = serde_json::to_vec(&meta).unwrap_or_default();
    fenced_script(
        store,
        &scripts().artifact,
        fence,
        vec![
            artifact.name.into_bytes(),
            artifact.content_type.into_bytes(),
            artifact.data,
            event,
            store.channel("events").into_bytes(),
        ],
    )
    .await?;
    store.notifier.publish(Signal::Event {
        job: fence.job,
        seq: 0,
    });
    Ok(meta)
}

pub(super) async fn artifacts(store: &RedisStore, id: JobId) -> StoreResult<Vec<ArtifactMeta>> {
    let Some(base) = store.known_base(id).await? else {
        return Ok(Vec::new());
    };
    let meta: HashMap<String, String> =
        store.conn().hgetall(format!("{base}:artmeta:{id}")).await?;
    let mut out = Vec::with_capacity(meta.len());
    for (name, m) in meta {
        let size: usize = redis::cmd("HSTRLEN")
            .arg(format!("{base}:art:{id}"))
            .arg(&name)
            .query_async(&mut store.conn())
            .await?;
        out.push(artifact_meta(name, &m, size));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub(super) async fn artifact(
    store: &RedisStore,
    id: JobId,
    name: &str,
) -> StoreResult<Option<Artifact>> {
    let Some(base) = store.known_base(id).await? else {
        return Ok(None);
    };
    let data: Option<Vec<u8>> = store.conn().hget(format!("{base}:art:{id}"), name).await?;
    let meta: Option<String> = store
        .conn()
        .hget(format!("{base}:artmeta:{id}"), name)
        .await?;
    Ok(match (data, meta) {
        (Some(data), Some(meta)) => Some(Artifact {
            meta: artifact_meta(name.to_string(), &meta, data.len()),
            data,
        }),
        _ => None,
    })
}

/// Every kept checkpoint of a job, oldest first, with its state.
pub(super) async fn checkpoints(store: &RedisStore, id: JobId) -> StoreResult<Vec<Checkpoint>> {
    let Some(base) = store.known_base(id).await? else {
        return Ok(Vec::new());
    };
    let meta: HashMap<String, String> = store.conn().hgetall(format!("{base}:cpmeta:{id}")).await?;
    let states: HashMap<String, Vec<u8>> = store.conn().hgetall(format!("{base}:cp:{id}")).await?;
    let mut out = Vec::with_capacity(meta.len());
    for (seq, m) in meta {
        let state = states.get(&seq).cloned().unwrap_or_default();
        out.push(checkpoint_from(id, &seq, &m, state));
    }
    out.sort_by_key(|c| c.seq);
    Ok(out)
}
