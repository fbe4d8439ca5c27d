//! The job model (SPEC §2): what an operator submits and what the store keeps.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::status::JobStatus;

/// A job's id: a UUIDv7, so ids sort by creation time.
pub type JobId = Uuid;

/// The queue a job goes to when the submitter names none.
pub const DEFAULT_QUEUE: &str = "default";

/// Leasing order between levels; FIFO (by `run_at`, then id) within a level.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    /// Every level, highest first.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// The stored rank: lower ranks are leased first.
    pub fn rank(self) -> i32 {
        match self {
            Priority::High => 0,
            Priority::Normal => 1,
            Priority::Low => 2,
        }
    }

    /// The level of a stored rank.
    pub fn from_rank(rank: i32) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.rank() == rank)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown priority `{s}` (expected high, normal or low)"))
    }
}

/// Per-job time limits in seconds; `None` takes the worker's configured default.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_timeout: Option<u64>,
}

/// Whether retrying can help.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// Network, timeout, 429/5xx, rate limit: retried with backoff up to `max_attempts`.
    Transient,
    /// Bad input, 4xx, invalid credentials: fails the job at once.
    Permanent,
    /// The job's worker stopped renewing its lease and attempts ran out.
    LeaseExpired,
    /// The job ran longer than its `job_timeout`.
    Timeout,
}

/// Why a job failed (or why its last attempt did).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl JobFailure {
    pub fn transient(message: impl Into<String>) -> Self {
        JobFailure {
            kind: FailureKind::Transient,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        JobFailure {
            kind: FailureKind::Permanent,
            message: message.into(),
        }
    }
}

/// A job as submitted. Everything but `kind` and `goal` has a default.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    pub kind: String,
    pub goal: String,
    #[serde(default = "empty_object")]
    pub config: Value,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Limits on what a [`NewJob`] may hold; checked by [`NewJob::validate`].
pub const MAX_KIND_LEN: usize = 64;
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
pub const MAX_QUEUE_NAME_LEN: usize = 64;

impl NewJob {
    /// A job of `kind` with `goal` and every default.
    pub fn new(kind: impl Into<String>, goal: impl Into<String>) -> Self {
        NewJob {
            kind: kind.into(),
            goal: goal.into(),
            config: empty_object(),
            priority: Priority::Normal,
            queue: None,
            run_at: None,
            max_attempts: None,
            timeouts: Timeouts::default(),
            idempotency_key: None,
            created_by: None,
        }
    }

    pub fn config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    pub fn run_at(mut self, run_at: DateTime<Utc>) -> Self {
        self.run_at = Some(run_at);
        self
    }

    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The queue this job goes to.
    pub fn queue_name(&self) -> &str {
        self.queue.as_deref().unwrap_or(DEFAULT_QUEUE)
    }

    /// Checks what the store cannot express in its schema; the error names the field.
    pub fn validate(&self) -> Result<(), InvalidJob> {
        let invalid = |field: &'static str, message: String| Err(InvalidJob { field, message });
        if self.kind.is_empty() || self.kind.len() > MAX_KIND_LEN {
            return invalid("kind", format!("must be 1 to {MAX_KIND_LEN} characters"));
        }
        if !self.config.is_object() {
            return invalid("config", "must be a JSON object".into());
        }
        if let Some(queue) = &self.queue {
            check_queue_name(queue)?;
        }
        if self.max_attempts == Some(0) || self.max_attempts.is_some_and(|n| n > 1000) {
            return invalid("max_attempts", "must be between 1 and 1000".into());
        }
        if let Some(key) = &self.idempotency_key {
            // Characters, not bytes: the OpenAPI document's `maxLength` counts them too.
            if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY_LEN {
                return invalid(
                    "idempotency_key",
                    format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"),
                );
            }
        }
        // PostgreSQL cannot store U+0000 in text or jsonb; every backend refuses it alike.
        let texts = [
            ("kind", Some(self.kind.as_str())),
            ("goal", Some(self.goal.as_str())),
            ("created_by", self.created_by.as_deref()),
            ("idempotency_key", self.idempotency_key.as_deref()),
        ];
        for (field, text) in texts {
            if text.is_some_and(|t| t.contains('\0')) {
                return invalid(field, NUL_MESSAGE.into());
            }
        }
        if has_nul(&self.config) {
            return invalid("config", NUL_MESSAGE.into());
        }
        for (field, value) in [
            ("timeouts.job_timeout", self.timeouts.job_timeout),
            ("timeouts.step_timeout", self.timeouts.step_timeout),
            ("timeouts.api_timeout", self.timeouts.api_timeout),
        ] {
            if value == Some(0) || value.is_some_and(|v| v > i64::MAX as u64 / 1000) {
                return invalid(field, "must be a positive number of seconds".into());
            }
        }
        Ok(())
    }

    /// A stable fingerprint of the submitted body: two submissions with the same
    /// `idempotency_key` are "the same job" exactly when their fingerprints match.
    /// `run_at` is left out: it says when, not what, and a relative time (`--run-at 10m`)
    /// resolves to another instant on every submission.
    pub fn fingerprint(&self) -> String {
        let body = NewJob {
            run_at: None,
            ..self.clone()
        };
        // serde_json maps are sorted by key, so this text is canonical for equal bodies.
        let canonical = serde_json::to_string(&body).unwrap_or_default();
        format!("{:016x}", fnv1a64(canonical.as_bytes()))
    }
}

/// Checks a queue name (`[A-Za-z0-9._-]`, 1 to 64 characters): the stores build key and
/// channel names from it, so it is checked wherever one arrives, not only at the API.
pub fn check_queue_name(name: &str) -> Result<(), InvalidJob> {
    let ok = !name.is_empty()
        && name.len() <= MAX_QUEUE_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(InvalidJob {
            field: "queue",
            message: format!("must be 1 to {MAX_QUEUE_NAME_LEN} of [A-Za-z0-9._-]"),
        })
    }
}

/// Why a text holding U+0000 is refused.
pub const NUL_MESSAGE: &str = "must not contain the NUL character (U+0000)";

/// True when a string anywhere in `value` (a key or a value) holds U+0000.
pub fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Turns a whole number written with a fraction (`60.0`) into the integer it is: JSON has
/// one number type, and the OpenAPI document's `integer` admits both spellings.
pub fn whole_number(value: &mut Value) {
    if let Some(f) = value.as_f64().filter(|_| value.is_f64()) {
        if f.fract() == 0.0 && f >= 0.0 && f < u64::MAX as f64 {
            *value = Value::from(f as u64);
        } else if f.fract() == 0.0 && f < 0.0 && f >= i64::MIN as f64 {
            *value = Value::from(f as i64);
        }
    }
}

/// FNV-1a, 64 bits: a hash that stays the same across builds and platforms.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A submitted job that fails [`NewJob::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidJob {
    /// The offending field, dotted for nested ones (`timeouts.step_timeout`).
    pub field: &'static str,
    pub message: String,
}

/// A job as the store keeps it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: Uuid,
    pub queue: String,
    pub kind: String,
    pub goal: String,
    pub config: Value,
    pub priority: Priority,
    pub created_by: Option<String>,
    pub idempotency_key: Option<String>,
    pub run_at: DateTime<Utc>,
    /// How many times the job has been leased and not handed back unrun.
    pub attempt: u32,
    pub max_attempts: u32,
    pub timeouts: Timeouts,
    pub status: JobStatus,
    /// The latest progress the runner reported.
    pub progress: Option<Value>,
    pub result: Option<Value>,
    pub error: Option<JobFailure>,
    pub artifacts: Vec<String>,
    /// Bumped on every lease; writes from older epochs are refused (fencing).
    pub lease_epoch: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// An operator asked a running job to pause at its next safe point.
    pub pause_requested: bool,
    /// An operator asked a running job to cancel at its next safe point.
    pub cancel_requested: bool,
    /// The seq of the newest entry of the job's event log.
    pub event_seq: i64,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Job {
    /// The attempt to show people. `attempt` counts runs that used up an attempt, and a
    /// pause or a wait on a gate hands its run's attempt back (neither exhausts retries),
    /// so a job paused in its first run holds 0: a paused or waiting job shows the attempt
    /// it resumes as instead.
    pub fn shown_attempt(&self) -> u32 {
        if matches!(self.status, JobStatus::Paused | JobStatus::Waiting) {
            (self.attempt + 1).min(self.max_attempts.max(1))
        } else {
            self.attempt
        }
    }
}

/// Milliseconds since the Unix epoch, as stored.
pub type Millis = i64;

/// The stored form of a time.
pub fn to_millis(t: DateTime<Utc>) -> Millis {
    t.timestamp_millis()
}

/// A stored time back as a `DateTime`; out-of-range values clamp to the epoch.
pub fn from_millis(ms: Millis) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Now, as stored.
pub fn now_millis() -> Millis {
    Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fingerprint_ignores_key_order_but_not_content() {
        let a = NewJob::new("noop", "g").config(json!({"a": 1, "b": 2}));
        let b = NewJob::new("noop", "g").config(json!({"b": 2, "a": 1}));
        let c = NewJob::new("noop", "g").config(json!({"a": 1, "b": 3}));
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn validation_names_the_field() {
        let err = NewJob::new("noop", "g")
            .config(json!([1]))
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "config");
        let err = NewJob::new("", "g").validate().unwrap_err();
        assert_eq!(err.field, "kind");
        let mut job = NewJob::new("noop", "g");
        job.timeouts.step_timeout = Some(0);
        assert_eq!(job.validate().unwrap_err().field, "timeouts.step_timeout");
        assert!(NewJob::new("noop", "g").max_attempts(0).validate().is_err());
    }

    #[test]
    fn priorities_rank_high_first() {
        assert!(Priority::High.rank() < Priority::Normal.rank());
        assert_eq!(Priority::from_rank(2), Some(Priority::Low));
        assert_eq!("high".parse::<Priority>().unwrap(), Priority::High);
    }
}
