//! An apply job's config (SPEC §7.3): `user_id`, `sources`, `max_postings`, `tier1`,
//! `review`, and `review_timeout` (how long a review gate waits before its default,
//! reject: 24 h).

use std::time::Duration;

use drover_queue::job::InvalidJob;
use drover_queue::profile::check_user_id;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::boards::Source;

/// Postings one job considers when `max_postings` is not given, and at most.
pub const DEFAULT_MAX_POSTINGS: usize = 200;
pub const MAX_POSTINGS: usize = 10_000;
/// How long a review waits for a person (SPEC §7.3: 24 h).
pub const DEFAULT_REVIEW_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// What happens to postings in the review band.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Review {
    /// Each opens a gate: approve or reject, rejected at the deadline.
    #[default]
    Gate,
    /// They are skipped.
    Skip,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyConfig {
    pub user_id: String,
    /// Empty: the profile's `sources`.
    pub sources: Vec<Source>,
    pub max_postings: usize,
    pub tier1: bool,
    pub review: Review,
    #[serde(with = "secs")]
    pub review_timeout: Duration,
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> InvalidJob {
    InvalidJob {
        field,
        message: message.into(),
    }
}

impl ApplyConfig {
    /// The config of a job, every fault naming its field.
    pub fn from_job(config: &Value) -> Result<ApplyConfig, InvalidJob> {
        let Some(object) = config.as_object() else {
            return Err(invalid("config", "must be an object with at least user_id"));
        };
        const KNOWN: [&str; 6] = [
            "user_id",
            "sources",
            "max_postings",
            "tier1",
            "review",
            "review_timeout",
        ];
        if let Some(unknown) = object.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(invalid(
                "config",
                format!("unknown key `{unknown}` (known: {})", KNOWN.join(", ")),
            ));
        }
        let user_id = match object.get("user_id") {
            Some(Value::String(id)) => id.clone(),
            _ => return Err(invalid("config.user_id", "required: the profile's user id")),
        };
        check_user_id(&user_id).map_err(|e| invalid("config.user_id", e.message))?;
        let sources = match object.get("sources") {
            None | Some(Value::Null) => Vec::new(),
            Some(value) => Source::parse_list(value).map_err(|e| InvalidJob {
                field: "config.sources",
                message: format!("{}: {}", e.field, e.message),
            })?,
        };
        let max_postings = match object.get("max_postings") {
            None | Some(Value::Null) => DEFAULT_MAX_POSTINGS,
            // JSON has one number type: `3.0` is the integer 3, as the schema's `integer` says.
            Some(v) => match v.as_u64().or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            }) {
                Some(n) if (1..=MAX_POSTINGS as u64).contains(&n) => n as usize,
                _ => {
                    return Err(invalid(
                        "config.max_postings",
                        format!("an integer from 1 to {MAX_POSTINGS}"),
                    ))
                }
            },
        };
        let tier1 = match object.get("tier1") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid("config.tier1", "true or false")),
        };
        let review = match object.get("review") {
            None | Some(Value::Null) => Review::Gate,
            Some(Value::String(s)) if s == "gate" => Review::Gate,
            Some(Value::String(s)) if s == "skip" => Review::Skip,
            Some(_) => return Err(invalid("config.review", "`gate` or `skip`")),
        };
        let review_timeout = match object.get("review_timeout") {
            None | Some(Value::Null) => DEFAULT_REVIEW_TIMEOUT,
            Some(Value::String(s)) => review_timeout(s).ok_or_else(|| {
                invalid(
                    "config.review_timeout",
                    "a whole number and a unit, from 1s to 30d: `24h`, `90m`, `2d` \
                     (at most 999999s, 9999m, 720h or 30d)",
                )
            })?,
            Some(_) => {
                return Err(invalid(
                    "config.review_timeout",
                    "a duration such as `24h` or `90m`",
                ))
            }
        };
        Ok(ApplyConfig {
            user_id,
            sources,
            max_postings,
            tier1,
            review,
            review_timeout,
        })
    }
}

/// `review_timeout`: `<n><unit>`, n without leading zeros, at most 999999s, 9999m, 720h or
/// 30d (so never past 30 days): exactly what [`REVIEW_TIMEOUT_PATTERN`] allows.
fn review_timeout(text: &str) -> Option<Duration> {
    let unit = text.chars().last()?;
    let digits = &text[..text.len() - unit.len_utf8()];
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let (max, seconds) = match unit {
        's' => (999_999, 1),
        'm' => (9_999, 60),
        'h' => (720, 3_600),
        'd' => (30, 86_400),
        _ => return None,
    };
    (n <= max).then(|| Duration::from_secs(n * seconds))
}

/// The schema's pattern for `review_timeout`, the same set as [`review_timeout`] accepts.
const REVIEW_TIMEOUT_PATTERN: &str = "^([1-9][0-9]{0,5}s|[1-9][0-9]{0,3}m|([1-9][0-9]?|[1-6][0-9]{2}|7[01][0-9]|720)h|([1-9]|[12][0-9]|30)d)$";

/// The JSON schema of an apply job's config (what `GET /v1/kinds` shows).
pub fn config_schema() -> Value {
    let board = json!({"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$"});
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["user_id"],
        "properties": {
            "user_id": {"type": "string", "pattern": "^[A-Za-z0-9._@-]{1,128}$",
                        "description": "The profile (PUT /v1/profiles/{user_id}) applied for"},
            "sources": {"type": ["array", "null"], "maxItems": 100, "items": {
                "type": "object", "additionalProperties": false, "required": ["type", "board"],
                "properties": {
                    "type": {"enum": ["greenhouse", "lever", "ashby"]},
                    "board": board,
                    "company": {"type": ["string", "null"], "maxLength": 200,
                                "pattern": "^[^\\u0000]*$"}
                }},
                "description": "Boards to search; none: the profile's sources"},
            "max_postings": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_POSTINGS},
            "tier1": {"type": ["boolean", "null"],
                      "description": "Apply through the hosted forms in a browser (default true); false: every posting is tier 2"},
            "review": {"enum": ["gate", "skip", null],
                       "description": "Postings scoring 45-69: a gate each (default) or skipped"},
            "review_timeout": {"type": ["string", "null"], "pattern": REVIEW_TIMEOUT_PATTERN,
                               "description": "How long a review waits before it is rejected (default 24h)"}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_faults_name_their_field() {
        let config = ApplyConfig::from_job(&json!({"user_id": "ann"})).expect("valid");
        assert_eq!(config.max_postings, DEFAULT_MAX_POSTINGS);
        assert!(config.tier1);
        assert_eq!(config.review, Review::Gate);
        assert_eq!(config.review_timeout, DEFAULT_REVIEW_TIMEOUT);

        let field = |config: Value| ApplyConfig::from_job(&config).unwrap_err().field;
        assert_eq!(field(json!({})), "config.user_id");
        assert_eq!(field(json!({"user_id": "a b"})), "config.user_id");
        assert_eq!(
            field(json!({"user_id": "a", "max_postings": 0})),
            "config.max_postings"
        );
        assert_eq!(
            field(json!({"user_id": "a", "review": "maybe"})),
            "config.review"
        );
        assert_eq!(
            field(json!({"user_id": "a", "tier1": "yes"})),
            "config.tier1"
        );
        assert_eq!(
            field(json!({"user_id": "a", "review_timeout": "soon"})),
            "config.review_timeout"
        );
        assert_eq!(
            field(json!({"user_id": "a", "sources": [{"type": "monster", "board": "x"}]})),
            "config.sources"
        );
        assert_eq!(field(json!({"user_id": "a", "extra": 1})), "config");
        for bad in [
            "0d", "31d", "721h", "10000m", "1000000s", "05m", "1h 30m", "m", "",
        ] {
            assert_eq!(
                field(json!({"user_id": "a", "review_timeout": bad})),
                "config.review_timeout",
                "{bad}"
            );
        }
        let ok = |t: &str| {
            ApplyConfig::from_job(&json!({"user_id": "a", "review_timeout": t}))
                .map(|c| c.review_timeout)
        };
        assert_eq!(ok("30d").ok(), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(ok("720h").ok(), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(ok("999999s").ok(), Some(Duration::from_secs(999_999)));
        let whole = ApplyConfig::from_job(&json!({"user_id": "a", "max_postings": 146.0}));
        assert_eq!(whole.expect("3.0 is an integer").max_postings, 146);
        assert_eq!(
            field(json!({"user_id": "a", "max_postings": 1.5})),
            "config.max_postings"
        );
        let short = ApplyConfig::from_job(&json!({"user_id": "a", "review_timeout": "3s"}));
        assert_eq!(short.expect("valid").review_timeout, Duration::from_secs(3));
    }
}
