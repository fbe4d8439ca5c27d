//! Gates (SPEC §2, waiting): a named question a running job asks an operator. A step opens
//! gates and the job parks as `waiting`, holding no lease and no slot; each gate is decided
//! through the API, the CLI or the dashboard, or takes its default at its deadline; when none
//! is open the job is queued again and the step continues with the decisions.
//!
//! Everything here is pure: what a gate may hold, what a decision must look like, and what
//! deciding or timing out does to a gate. The writes are transitions
//! ([`crate::transitions`]), written once for every backend.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::{has_nul, InvalidJob, JobId};

/// How long a gate waits when its step sets no deadline: a gate never waits forever.
pub const DEFAULT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// The most gates one job may hold (open or decided).
pub const MAX_GATES_PER_JOB: usize = 10_000;

/// Where a gate is in its life.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    /// Waiting for a decision.
    Open,
    /// An operator decided it.
    Decided,
    /// Its deadline passed first; its default decision applies.
    TimedOut,
}

impl GateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GateStatus::Open => "open",
            GateStatus::Decided => "decided",
            GateStatus::TimedOut => "timed_out",
        }
    }
}

impl fmt::Display for GateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GateStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [GateStatus::Open, GateStatus::Decided, GateStatus::TimedOut]
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| {
                format!("unknown gate status `{s}` (expected open, decided or timed_out)")
            })
    }
}

/// A gate as a step opens it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewGate {
    /// Unique within the job: `[A-Za-z0-9._:-]{1,128}`. Opening a key the job already has
    /// keeps the stored gate (and its decision): that is how a step re-run after a resume
    /// finds its answer.
    pub key: String,
    /// What the operator is asked, shown as text.
    pub prompt: String,
    /// What the operator needs to decide (any JSON; `null` for none).
    #[serde(default)]
    pub context: Value,
    /// The decisions allowed, when the answer is one of a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decisions: Option<Vec<Value>>,
    /// A JSON schema the decision must match, for free-form answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// When the default applies; [`DEFAULT_DEADLINE`] after opening when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    /// The decision recorded at the deadline (`null` when none is given: the step then sees
    /// a timed-out gate without a decision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

impl NewGate {
    /// A gate asking `prompt`, with no choices, schema, context or default, and the default
    /// deadline.
    pub fn new(key: impl Into<String>, prompt: impl Into<String>) -> Self {
        NewGate {
            key: key.into(),
            prompt: prompt.into(),
            context: Value::Null,
            decisions: None,
            schema: None,
            deadline: None,
            default: None,
        }
    }

    /// Only these decisions are allowed.
    pub fn decisions<V: Into<Value>>(mut self, decisions: impl IntoIterator<Item = V>) -> Self {
        self.decisions = Some(decisions.into_iter().map(Into::into).collect());
        self
    }

    /// The decision must match this JSON schema.
    pub fn schema(mut self, schema: Value) -> Self {
        self.schema = Some(schema);
        self
    }

    pub fn context(mut self, context: Value) -> Self {
        self.context = context;
        self
    }

    pub fn deadline(mut self, deadline: DateTime<Utc>) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The decision that applies at the deadline.
    pub fn default_decision(mut self, decision: impl Into<Value>) -> Self {
        self.default = Some(decision.into());
        self
    }

    /// Checks the gate before it is stored: key, prompt, choices, schema and default.
    pub fn validate(&self) -> Result<(), InvalidJob> {
        let invalid = |field: &'static str, message: String| Err(InvalidJob { field, message });
        check_gate_key(&self.key)?;
        if self.prompt.trim().is_empty() {
            return invalid("prompt", "must not be empty".into());
        }
        if self.prompt.len() > 10_000 {
            return invalid("prompt", "must be at most 10,000 bytes".into());
        }
        for (field, value) in [
            ("prompt", &Value::String(self.prompt.clone())),
            ("context", &self.context),
        ] {
            if has_nul(value) {
                return invalid(field, crate::job::NUL_MESSAGE.into());
            }
        }
        if let Some(decisions) = &self.decisions {
            if decisions.is_empty() {
                return invalid("decisions", "must list at least one decision".into());
            }
            if decisions.iter().any(|d| d.is_null() || has_nul(d)) {
                return invalid(
                    "decisions",
                    "a decision must not be null or hold U+0000".into(),
                );
            }
        }
        if let Some(schema) = &self.schema {
            if has_nul(schema) {
                return invalid("schema", crate::job::NUL_MESSAGE.into());
            }
            jsonschema::validator_for(schema).map_err(|e| InvalidJob {
                field: "schema",
                message: format!("is not a valid JSON schema: {e}"),
            })?;
        }
        if let Some(default) = &self.default {
            self.check_decision(default).map_err(|message| InvalidJob {
                field: "default",
                message,
            })?;
        }
        Ok(())
    }

    /// Why `decision` is not an answer this gate accepts, if it is not.
    pub fn check_decision(&self, decision: &Value) -> Result<(), String> {
        check_decision(self.decisions.as_deref(), self.schema.as_ref(), decision)
    }
}

/// Why `decision` is not an answer a gate with these choices and schema accepts.
fn check_decision(
    decisions: Option<&[Value]>,
    schema: Option<&Value>,
    decision: &Value,
) -> Result<(), String> {
    if decision.is_null() {
        return Err("is required".into());
    }
    if has_nul(decision) {
        return Err(crate::job::NUL_MESSAGE.into());
    }
    if let Some(allowed) = decisions {
        if !allowed.contains(decision) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return Err(format!("must be one of {}", list.join(", ")));
        }
    }
    if let Some(schema) = schema {
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| format!("the gate's schema does not compile: {e}"))?;
        if let Err(error) = validator.validate(decision) {
            return Err(format!("does not match the gate's schema: {error}"));
        }
    }
    Ok(())
}

/// Refuses a gate key outside `[A-Za-z0-9._:-]{1,128}`, naming the field `key`.
pub fn check_gate_key(key: &str) -> Result<(), InvalidJob> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidJob {
            field: "key",
            message: format!(
                "gate key `{}` must be 1–128 characters of A-Z a-z 0-9 . _ : -",
                key.escape_debug()
            ),
        })
    }
}

/// A gate as stored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    pub job_id: uuid::Uuid,
    pub key: String,
    pub prompt: String,
    pub context: Value,
    /// The decisions allowed (`null`: any answer the schema accepts).
    pub decisions: Option<Vec<Value>>,
    /// The JSON schema a decision must match (`null`: none).
    pub schema: Option<Value>,
    pub deadline: DateTime<Utc>,
    /// The decision that applies at the deadline.
    pub default: Option<Value>,
    pub status: GateStatus,
    /// The decision (the default, once timed out).
    pub decision: Option<Value>,
    pub note: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

impl Gate {
    /// `new` opened by `job` at `now`.
    pub fn open(job: JobId, new: NewGate, now: DateTime<Utc>) -> Gate {
        let deadline = new.deadline.unwrap_or_else(|| {
            now + chrono::Duration::from_std(DEFAULT_DEADLINE).unwrap_or(chrono::Duration::MAX)
        });
        Gate {
            job_id: job,
            key: new.key,
            prompt: new.prompt,
            context: new.context,
            decisions: new.decisions,
            schema: new.schema,
            deadline,
            default: new.default,
            status: GateStatus::Open,
            decision: None,
            note: None,
            opened_at: now,
            decided_at: None,
        }
    }

    pub fn is_open(&self) -> bool {
        self.status == GateStatus::Open
    }

    /// Why `decision` is not an answer this gate accepts, if it is not.
    pub fn check_decision(&self, decision: &Value) -> Result<(), String> {
        check_decision(self.decisions.as_deref(), self.schema.as_ref(), decision)
    }

    /// The data of the `gate` event recording this gate's latest change.
    pub fn event(&self) -> Value {
        let action = match self.status {
            GateStatus::Open => "opened",
            GateStatus::Decided => "decided",
            GateStatus::TimedOut => "timed_out",
        };
        let mut data = serde_json::json!({ "key": self.key, "action": action });
        match self.status {
            GateStatus::Open => {
                data["prompt"] = self.prompt.clone().into();
                data["deadline"] = serde_json::to_value(self.deadline).unwrap_or_default();
            }
            GateStatus::Decided | GateStatus::TimedOut => {
                data["decision"] = self.decision.clone().unwrap_or(Value::Null);
                if let Some(note) = &self.note {
                    data["note"] = note.clone().into();
                }
            }
        }
        data
    }
}

/// What an operator decides about one gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub key: String,
    pub decision: Value,
    pub note: Option<String>,
}

/// What deciding a gate does to it, or why it cannot be decided ([`crate::StoreError`]'s
/// gate variants carry the reason).
pub(crate) enum Decided {
    /// The gate is decided now.
    Now(Gate),
    /// The same decision was recorded before: nothing to write.
    Already(Gate),
}

/// Decides `gate` at `now`, or says why not: a different decision or a timed-out gate is a
/// conflict, a decision the gate does not accept is invalid.
pub(crate) fn decide(
    gate: &Gate,
    decision: &Decision,
    now: DateTime<Utc>,
) -> Result<Decided, GateRefusal> {
    match gate.status {
        GateStatus::Decided if gate.decision.as_ref() == Some(&decision.decision) => {
            Ok(Decided::Already(gate.clone()))
        }
        GateStatus::Decided | GateStatus::TimedOut => Err(GateRefusal::Conflict(format!(
            "gate `{}` is already {} with decision {}",
            gate.key,
            gate.status,
            gate.decision.as_ref().unwrap_or(&Value::Null)
        ))),
        GateStatus::Open => {
            gate.check_decision(&decision.decision)
                .map_err(GateRefusal::Invalid)?;
            if let Some(note) = &decision.note {
                if note.contains('\0') || note.len() > 10_000 {
                    return Err(GateRefusal::InvalidNote(
                        "must be at most 10,000 bytes and hold no U+0000".into(),
                    ));
                }
            }
            let mut decided = gate.clone();
            decided.status = GateStatus::Decided;
            decided.decision = Some(decision.decision.clone());
            decided.note = decision.note.clone();
            decided.decided_at = Some(now);
            Ok(Decided::Now(decided))
        }
    }
}

/// Why a decision was refused.
#[derive(Debug, Clone)]
pub(crate) enum GateRefusal {
    Conflict(String),
    Invalid(String),
    InvalidNote(String),
}

/// `gate` past its deadline at `now`: timed out with its default.
pub(crate) fn time_out(gate: &Gate, now: DateTime<Utc>) -> Option<Gate> {
    if !gate.is_open() || gate.deadline > now {
        return None;
    }
    let mut timed_out = gate.clone();
    timed_out.status = GateStatus::TimedOut;
    timed_out.decision = gate.default.clone();
    timed_out.decided_at = Some(now);
    Some(timed_out)
}

/// Filters for the inbox of gates across jobs.
#[derive(Debug, Clone, Default)]
pub struct GateFilter {
    /// Only gates in this status; open gates when `None`.
    pub status: Option<GateStatus>,
    /// Gates opened before this one (the previous page's cursor: `(opened_at, job, key)`).
    pub after: Option<GateCursor>,
    pub limit: usize,
}

impl GateFilter {
    /// The page size honoured: `limit`, between 1 and 1,000.
    pub fn page_size(&self) -> usize {
        self.limit.clamp(1, 1000)
    }
}

/// Where a page of the inbox ends: gates are listed oldest opened first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateCursor {
    pub opened_at: DateTime<Utc>,
    pub job_id: JobId,
    pub key: String,
}

impl GateCursor {
    pub fn of(gate: &Gate) -> GateCursor {
        GateCursor {
            opened_at: gate.opened_at,
            job_id: gate.job_id,
            key: gate.key.clone(),
        }
    }

    /// The cursor as an opaque token for the API: `<ms>.<job id>.<key>`.
    pub fn token(&self) -> String {
        format!(
            "{}.{}.{}",
            crate::job::to_millis(self.opened_at),
            self.job_id,
            self.key
        )
    }

    pub fn parse(token: &str) -> Option<GateCursor> {
        let mut parts = token.splitn(3, '.');
        let millis: i64 = parts.next()?.parse().ok()?;
        let job_id = parts.next()?.parse().ok()?;
        let key = parts.next()?.to_string();
        check_gate_key(&key).ok()?;
        Some(GateCursor {
            opened_at: crate::job::from_millis(millis),
            job_id,
            key,
        })
    }

    /// True when `gate` comes after this cursor in inbox order.
    pub fn precedes(&self, gate: &Gate) -> bool {
        (
            crate::job::to_millis(gate.opened_at),
            gate.job_id,
            gate.key.as_str(),
        ) > (
            crate::job::to_millis(self.opened_at),
            self.job_id,
            self.key.as_str(),
        )
    }
}

/// One page of the inbox, oldest opened first.
#[derive(Debug, Clone)]
pub struct GatePage {
    pub gates: Vec<Gate>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<GateCursor>,
}

impl GatePage {
    /// The page made of `gates` read in inbox order with one more than `limit` where there
    /// were enough.
    pub fn from_ordered(mut gates: Vec<Gate>, limit: usize) -> GatePage {
        let next = if gates.len() > limit {
            gates.truncate(limit);
            gates.last().map(GateCursor::of)
        } else {
            None
        };
        GatePage { gates, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gate(new: NewGate) -> Gate {
        Gate::open(uuid::Uuid::now_v7(), new, Utc::now())
    }

    fn decision(value: Value) -> Decision {
        Decision {
            key: "k".into(),
            decision: value,
            note: None,
        }
    }

    #[test]
    fn a_decision_is_checked_against_the_choices_and_the_schema() {
        let choices = gate(NewGate::new("k", "go?").decisions(["approve", "reject"]));
        assert!(choices.check_decision(&json!("approve")).is_ok());
        let err = choices.check_decision(&json!("maybe")).unwrap_err();
        assert!(err.contains("\"approve\""), "{err}");
        assert_eq!(
            choices.check_decision(&Value::Null).unwrap_err(),
            "is required"
        );

        let schema = gate(NewGate::new("k", "how many?").schema(json!({
            "type": "object", "required": ["n"], "properties": {"n": {"type": "integer", "minimum": 1}}
        })));
        assert!(schema.check_decision(&json!({"n": 3})).is_ok());
        assert!(schema
            .check_decision(&json!({"n": 0}))
            .unwrap_err()
            .contains("schema"));
        assert!(schema.check_decision(&json!("three")).is_err());
    }

    #[test]
    fn a_bad_gate_is_refused_naming_the_field() {
        let field = |g: NewGate| g.validate().unwrap_err().field;
        assert_eq!(field(NewGate::new("a b", "p")), "key");
        assert_eq!(field(NewGate::new("", "p")), "key");
        assert_eq!(field(NewGate::new("k", " ")), "prompt");
        assert_eq!(
            field(NewGate::new("k", "p").decisions(Vec::<Value>::new())),
            "decisions"
        );
        assert_eq!(
            field(NewGate::new("k", "p").schema(json!({"type": 12}))),
            "schema"
        );
        assert_eq!(
            field(
                NewGate::new("k", "p")
                    .decisions(["yes"])
                    .default_decision("no")
            ),
            "default"
        );
        assert!(NewGate::new("approve-3", "p")
            .decisions(["approve", "reject"])
            .default_decision("reject")
            .validate()
            .is_ok());
    }

    #[test]
    fn the_same_decision_again_is_accepted_and_a_different_one_conflicts() {
        let open = gate(NewGate::new("k", "go?").decisions(["approve", "reject"]));
        let now = Utc::now();
        let Ok(Decided::Now(decided)) = decide(&open, &decision(json!("approve")), now) else {
            panic!("an open gate takes an allowed decision");
        };
        assert_eq!(decided.status, GateStatus::Decided);
        assert!(matches!(
            decide(&decided, &decision(json!("approve")), now),
            Ok(Decided::Already(_))
        ));
        assert!(matches!(
            decide(&decided, &decision(json!("reject")), now),
            Err(GateRefusal::Conflict(_))
        ));
        assert!(matches!(
            decide(&open, &decision(json!("later")), now),
            Err(GateRefusal::Invalid(_))
        ));
    }

    #[test]
    fn a_gate_times_out_with_its_default_only_after_its_deadline() {
        let now = Utc::now();
        let open = gate(
            NewGate::new("k", "go?")
                .decisions(["approve", "reject"])
                .default_decision("reject")
                .deadline(now + chrono::Duration::seconds(5)),
        );
        assert!(time_out(&open, now).is_none());
        let timed_out = time_out(&open, now + chrono::Duration::seconds(5)).expect("due");
        assert_eq!(timed_out.status, GateStatus::TimedOut);
        assert_eq!(timed_out.decision, Some(json!("reject")));
        assert!(time_out(&timed_out, now + chrono::Duration::hours(1)).is_none());
    }

    #[test]
    fn inbox_cursors_round_trip() {
        let g = gate(NewGate::new("approve-3", "go?"));
        let cursor = GateCursor::of(&g);
        let parsed = GateCursor::parse(&cursor.token()).expect("parses");
        assert_eq!(parsed.job_id, g.job_id);
        assert_eq!(parsed.key, "approve-3");
        assert!(GateCursor::parse("nope").is_none());
    }
}
