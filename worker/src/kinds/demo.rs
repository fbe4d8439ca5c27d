//! `demo`: a graph that walks `config.items` items (default 20), `config.item_ms` ms each
//! (default 200), checkpointing every `config.checkpoint_every` items (default 5) and
//! reporting progress per item. `config.fail_transient_at` / `config.fail_permanent_at`
//! (an item index) exercise retries: the transient failure happens on the first attempt
//! only. With `config.effect_url`, each item POSTs `{"job_id", "item"}` there through the
//! effect ledger with `Idempotency-Key: <job_id>/<item>` and `X-Drover-Attempt: <attempt>`
//! (also `"attempt"` in the body). `config.effect_mode` is `retry` (default: `ctx.effect`,
//! an effect whose outcome is unknown is POSTed again with the same key) or `once`
//! (`ctx.effect_once`: never POSTed again; the item lands in the result's `unknown_items`).
//! The result is `{"items_processed": n}`, with `"unknown_items": [..]` when there are any.
//!
//! Waiting can be tried with it too. `config.gate_at` (an item index) opens the gate
//! `approve-<index>` after that item (decisions `approve` / `reject`, deadline
//! `config.gate_deadline_s` seconds, default 3600, default decision `reject`); on `reject`
//! the job completes early with `{"items_processed": n, "stopped_by": "reject"}`.
//! `config.snooze_at` (an item index) and `config.snooze_s` snooze the job once, after that
//! item, for that many seconds.

use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::graph::{CheckpointPolicy, Graph, GraphKind, MapStep, Next, Once, StepContext};
use crate::kind::JobError;

/// The most items one demo job may walk.
pub const MAX_ITEMS: u64 = 1_000_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoConfig {
    #[serde(default = "default_items")]
    items: u64,
    #[serde(default = "default_item_ms")]
    item_ms: u64,
    #[serde(default = "default_checkpoint_every")]
    checkpoint_every: u64,
    #[serde(default)]
    fail_transient_at: Option<u64>,
    #[serde(default)]
    fail_permanent_at: Option<u64>,
    #[serde(default)]
    effect_url: Option<String>,
    #[serde(default)]
    effect_mode: EffectMode,
    #[serde(default)]
    gate_at: Option<u64>,
    #[serde(default = "default_gate_deadline_s")]
    gate_deadline_s: u64,
    #[serde(default)]
    snooze_at: Option<u64>,
    #[serde(default)]
    snooze_s: u64,
}

/// How an item's effect meets an intent without an outcome (an earlier run crashed or was
/// cut off between performing it and recording it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum EffectMode {
    /// `ctx.effect`: performs it again, with the same `Idempotency-Key`.
    #[default]
    Retry,
    /// `ctx.effect_once`: never performs it again; the item is reported in `unknown_items`.
    Once,
}

fn default_gate_deadline_s() -> u64 {
    3600
}

fn default_items() -> u64 {
    20
}
fn default_item_ms() -> u64 {
    200
}
fn default_checkpoint_every() -> u64 {
    5
}

/// The URLs `config.effect_url` may hold: ASCII http(s), a host of letters, digits, dots
/// and dashes, an optional port and a plain path. Narrower than a URL parser, so that the
/// OpenAPI document can state the rule exactly.
pub const EFFECT_URL_PATTERN: &str = "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$";

/// [`EFFECT_URL_PATTERN`], checked by hand (no regex engine in the worker).
fn simple_http_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    let path_ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'/' | b'-'));
    host_ok && port_ok && path_ok
}

/// What `demo`'s config accepts, as a JSON Schema (the same rules as `DemoConfig::parse`).
pub fn config_schema() -> Value {
    let count = |minimum: u64, maximum: u64| json!({ "type": "integer", "minimum": minimum, "maximum": maximum });
    let item = json!({ "type": ["integer", "null"], "minimum": 0, "maximum": u64::MAX });
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "items": count(0, MAX_ITEMS),
            "item_ms": count(0, 3_600_000),
            "checkpoint_every": count(1, u64::MAX),
            "fail_transient_at": item,
            "fail_permanent_at": item,
            "effect_url": {
                "type": ["string", "null"],
                "pattern": EFFECT_URL_PATTERN,
                "description": "Each item POSTs here through the effect ledger"
            },
            "effect_mode": {
                "type": "string",
                "enum": ["retry", "once"],
                "description": "retry (default): an effect whose outcome is unknown after a crash is POSTed again with the same Idempotency-Key; once: it is never POSTed again and the item is listed in the result's unknown_items"
            }
        }
    })
}

impl DemoConfig {
    fn parse(config: &Value) -> Result<Self, String> {
        let mut config = config.clone();
        if let Some(fields) = config.as_object_mut() {
            fields
                .values_mut()
                .for_each(drover_queue::job::whole_number);
        }
        let parsed: DemoConfig = serde_path_to_error::deserialize(config).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                format!("config: {inner}")
            } else {
                format!("config.{path}: {inner}")
            }
        })?;
        if parsed.items > MAX_ITEMS {
            return Err(format!("config.items: at most {MAX_ITEMS}"));
        }
        if parsed.item_ms > 3_600_000 {
            return Err("config.item_ms: at most one hour".into());
        }
        if parsed.checkpoint_every == 0 {
            return Err("config.checkpoint_every: must be at least 1".into());
        }
        if parsed.gate_at.is_some_and(|at| at >= parsed.items) {
            return Err("config.gate_at: must be an item index, below config.items".into());
        }
        if !(1..=30 * 24 * 3600).contains(&parsed.gate_deadline_s) {
            return Err("config.gate_deadline_s: between 1 and 2592000 (30 days)".into());
        }
        if parsed.snooze_at.is_some_and(|at| at >= parsed.items) {
            return Err("config.snooze_at: must be an item index, below config.items".into());
        }
        if parsed.snooze_s > 24 * 3600 {
            return Err("config.snooze_s: at most 86400 (one day)".into());
        }
        if let Some(url) = &parsed.effect_url {
            if !simple_http_url(url) {
                return Err(format!(
                    "config.effect_url: must be a plain http(s) URL (`{EFFECT_URL_PATTERN}`)"
                ));
            }
        }
        Ok(parsed)
    }
}

/// The state a demo job checkpoints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DemoState {
    pub items: u64,
    pub items_processed: u64,
    /// Items walked before the review gate: all of them without `config.gate_at`.
    #[serde(default)]
    pub before_gate: Option<u64>,
    /// `reject` when the review gate stopped the walk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
    /// Items whose effect (`effect_mode: once`) an earlier run may or may not have performed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_items: Vec<u64>,
}

impl DemoState {
    /// Items walked before the review: up to and including `gate_at`, or all of them.
    fn first_part(&self) -> u64 {
        self.before_gate.unwrap_or(self.items).min(self.items)
    }
}

fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new)
}

/// The `demo` kind.
pub fn demo() -> GraphKind<DemoState> {
    let graph = Graph::new()
        .map(
            "walk",
            MapStep::new(
                |state: &DemoState| (0..state.first_part()).map(Value::from).collect(),
                walk_item,
            )
            // The fold only counts (and notes unknown items): no output rows,
            // checkpoints as small as before.
            .fold(fold_item)
            .fold_as_completed(),
        )
        .task("review", review)
        .map(
            "walk_on",
            MapStep::new(
                |state: &DemoState| match state.stopped_by {
                    Some(_) => Vec::new(),
                    None => (state.first_part()..state.items).map(Value::from).collect(),
                },
                walk_item,
            )
            // The fold only counts (and notes unknown items): no output rows,
            // checkpoints as small as before.
            .fold(fold_item)
            .fold_as_completed(),
        )
        .task("finish", |ctx: StepContext, state: DemoState| async move {
            ctx.progress(|p| p.stage = Some("done".into())).await?;
            Ok(state)
        })
        // Without `config.gate_at` the walk goes straight to the end, as it always did (the
        // same steps, progress and checkpoints).
        .edge_when("walk", ["review", "finish"], |state: &DemoState| {
            if state.before_gate.is_some() {
                Next::Step("review")
            } else {
                Next::Step("finish")
            }
        });
    GraphKind::new("demo", graph, |job| {
        let config = DemoConfig::parse(&job.config).map_err(JobError::Permanent)?;
        Ok(DemoState {
            items: config.items,
            items_processed: 0,
            before_gate: config.gate_at.map(|at| at + 1),
            stopped_by: None,
            unknown_items: Vec::new(),
        })
    })
    .policy(|job| CheckpointPolicy {
        every_items: DemoConfig::parse(&job.config)
            .map(|c| c.checkpoint_every)
            .ok(),
        ..CheckpointPolicy::default()
    })
    .validate(|config| DemoConfig::parse(config).map(|_| ()))
    .result(|state| {
        let mut result = json!({ "items_processed": state.items_processed });
        if let Some(by) = &state.stopped_by {
            result["stopped_by"] = json!(by);
        }
        if !state.unknown_items.is_empty() {
            let mut unknown = state.unknown_items.clone();
            unknown.sort_unstable();
            result["unknown_items"] = json!(unknown);
        }
        result
    })
    .max_attempts(3)
}

/// After the first part of the walk: with `config.gate_at`, asks whether to go on.
async fn review(ctx: StepContext, mut state: DemoState) -> Result<DemoState, JobError> {
    let config = DemoConfig::parse(ctx.config()).map_err(JobError::Permanent)?;
    let Some(at) = config.gate_at else {
        return Ok(state);
    };
    let key = format!("approve-{at}");
    let deadline = chrono::Utc::now() + chrono::Duration::seconds(config.gate_deadline_s as i64);
    let gate = drover_queue::NewGate::new(&key, format!("Continue the demo after item {at}?"))
        .decisions(["approve", "reject"])
        .default_decision("reject")
        .deadline(deadline)
        .context(json!({ "items_processed": state.items_processed, "items": state.items }));
    let decisions = ctx.wait(vec![gate]).await?;
    if decisions.decision(&key) == Some(&json!("reject")) {
        state.stopped_by = Some("reject".into());
    }
    Ok(state)
}

/// Counts an item, and notes it when its effect's outcome is unknown.
fn fold_item(state: &mut DemoState, _index: usize, output: Value) {
    state.items_processed += 1;
    if let Some(item) = output.get("unknown_item").and_then(Value::as_u64) {
        state.unknown_items.push(item);
    }
}

async fn walk_item(ctx: StepContext, _index: usize, item: Value) -> Result<Value, JobError> {
    let config = DemoConfig::parse(ctx.config()).map_err(JobError::Permanent)?;
    let item = item.as_u64().unwrap_or_default();
    ctx.sleep(Duration::from_millis(config.item_ms)).await?;
    if config.fail_permanent_at == Some(item) {
        return Err(JobError::Permanent(format!(
            "demo: permanent failure at item {item}"
        )));
    }
    if config.fail_transient_at == Some(item) && ctx.attempt() == 1 {
        return Err(JobError::Transient(format!(
            "demo: transient failure at item {item}"
        )));
    }
    if let Some(url) = &config.effect_url {
        let post = Post {
            job_id: ctx.job().id,
            item,
            attempt: ctx.attempt(),
            timeout: Duration::from_secs(ctx.job().timeouts.api_timeout.unwrap_or(30)),
        };
        let key = format!("item-{item}");
        match config.effect_mode {
            EffectMode::Retry => {
                ctx.effect(&key, || post_effect(url, post)).await?;
            }
            EffectMode::Once => {
                if ctx.effect_once(&key, || post_effect(url, post)).await? == Once::Unknown {
                    return Ok(json!({ "unknown_item": item }));
                }
            }
        }
    }
    if config.snooze_at == Some(item) {
        // Once per job: the snooze is recorded in the effect ledger, so the item run again
        // after it goes on.
        let fresh = std::sync::atomic::AtomicBool::new(false);
        let until = chrono::Utc::now() + chrono::Duration::seconds(config.snooze_s as i64);
        let recorded: chrono::DateTime<chrono::Utc> = ctx
            .effect(&format!("snooze-{item}"), || async {
                fresh.store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(until)
            })
            .await?;
        if fresh.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ctx.snooze_until(recorded, format!("demo: snooze after item {item}")));
        }
    }
    Ok(Value::Null)
}

/// What one item's POST carries.
#[derive(Debug, Clone, Copy)]
struct Post {
    job_id: uuid::Uuid,
    item: u64,
    /// The run's attempt, sent as `X-Drover-Attempt` so the far side can tell runs apart.
    attempt: u32,
    timeout: Duration,
}

async fn post_effect(url: &str, post: Post) -> Result<Value, JobError> {
    let Post {
        job_id,
        item,
        attempt,
        timeout,
    } = post;
    let response = http()
        .post(url)
        .timeout(timeout)
        .header("Idempotency-Key", format!("{job_id}/{item}"))
        .header("X-Drover-Attempt", attempt.to_string())
        .json(&json!({ "job_id": job_id, "item": item, "attempt": attempt }))
        .send()
        .await
        .map_err(|e| {
            metrics::counter!("drover_external_calls_total", "tool" => "demo_effect", "outcome" => "error")
                .increment(1);
            JobError::Transient(format!("effect POST failed: {}", without_url(e)))
        })?;
    let status = response.status();
    let (outcome, result) = if status.is_success() {
        ("ok", Ok(json!({ "status": status.as_u16() })))
    } else if status.as_u16() == 429 || status.is_server_error() {
        (
            "transient",
            Err(JobError::Transient(format!(
                "effect POST answered {status}"
            ))),
        )
    } else {
        (
            "permanent",
            Err(JobError::Permanent(format!(
                "effect POST answered {status}"
            ))),
        )
    };
    metrics::counter!("drover_external_calls_total", "tool" => "demo_effect", "outcome" => outcome)
        .increment(1);
    result
}

/// The error and its causes, without the URL: the error lands in the job's `error`, its
/// events, the dashboard and the logs, and a URL can carry credentials or internal names.
fn without_url(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_effect_post_does_not_name_its_url() {
        // A port nothing listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let url = format!("http://127.0.0.1:{port}/hook-secret-path?key=k3y");
        let post = Post {
            job_id: uuid::Uuid::nil(),
            item: 0,
            attempt: 1,
            timeout: Duration::from_secs(5),
        };
        let err = post_effect(&url, post)
            .await
            .expect_err("nothing listens there");
        let JobError::Transient(message) = err else {
            panic!("a connection error is transient: {err:?}");
        };
        assert!(message.starts_with("effect POST failed: "), "{message}");
        for secret in ["hook-secret-path", "k3y", &port.to_string()] {
            assert!(!message.contains(secret), "{secret} in {message}");
        }
    }

    #[test]
    fn config_defaults_and_errors_name_the_field() {
        let c = DemoConfig::parse(&json!({})).unwrap();
        assert_eq!((c.items, c.item_ms, c.checkpoint_every), (20, 200, 5));
        let err = DemoConfig::parse(&json!({"items": "many"})).unwrap_err();
        assert!(err.starts_with("config.items: "), "{err}");
        let err = DemoConfig::parse(&json!({"checkpoint_every": 0})).unwrap_err();
        assert!(err.contains("config.checkpoint_every"), "{err}");
        let err = DemoConfig::parse(&json!({"effect_url": "ftp://x"})).unwrap_err();
        assert!(err.contains("config.effect_url"), "{err}");
        for bad in [
            "https://\u{cf}",
            "http://",
            "http://a b",
            "http://h:123456",
            "http://h/?q",
        ] {
            assert!(!simple_http_url(bad), "{bad}");
        }
        for good in [
            "http://127.0.0.1:8080",
            "https://example.com/hook/a-b_c.d~e",
            "http://h/",
        ] {
            assert!(simple_http_url(good), "{good}");
        }
        assert_eq!(c.effect_mode, EffectMode::Retry);
        let c = DemoConfig::parse(&json!({"effect_mode": "once"})).unwrap();
        assert_eq!(c.effect_mode, EffectMode::Once);
        let err = DemoConfig::parse(&json!({"effect_mode": "twice"})).unwrap_err();
        assert!(err.starts_with("config.effect_mode: "), "{err}");
        let err = DemoConfig::parse(&json!({"itemz": 3})).unwrap_err();
        assert!(err.contains("itemz"), "{err}");
    }
}
