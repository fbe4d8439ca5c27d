//! A campaign's target: read from the goal ("Find 2k Python maintainers active in last 90
//! days"), with the config overriding any part of it, checked at submission.

use drover_queue::job::InvalidJob;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The languages a goal may name, as GitHub's `language:` qualifier spells them.
const LANGUAGES: &[(&str, &str)] = &[
    ("python", "Python"),
    ("rust", "Rust"),
    ("go", "Go"),
    ("golang", "Go"),
    ("javascript", "JavaScript"),
    ("js", "JavaScript"),
    ("typescript", "TypeScript"),
    ("ts", "TypeScript"),
    ("java", "Java"),
    ("c++", "C++"),
    ("cpp", "C++"),
    ("ruby", "Ruby"),
    ("kotlin", "Kotlin"),
    ("swift", "Swift"),
    ("scala", "Scala"),
    ("elixir", "Elixir"),
    ("haskell", "Haskell"),
    ("php", "PHP"),
    ("c#", "C#"),
    ("csharp", "C#"),
    ("zig", "Zig"),
];

/// Words of a goal that name topics (GitHub `topic:` values).
const TOPICS: &[(&str, &str)] = &[
    ("ml", "machine-learning"),
    ("machine-learning", "machine-learning"),
    ("ai", "artificial-intelligence"),
    ("llm", "llm"),
    ("devops", "devops"),
    ("web", "web"),
    ("cli", "cli"),
    ("database", "database"),
    ("security", "security"),
];

/// The most leads one campaign may ask for.
pub const MAX_COUNT: u64 = 100_000;
/// The longest activity window: what GitHub's `pushed:` search can usefully slice.
pub const MAX_ACTIVITY_DAYS: u64 = 3650;
/// The longest a contact keeps an address from other campaigns (a hundred years).
pub const MAX_RECONTACT_DAYS: u64 = 36_500;

/// What the campaign looks for and how it goes about it, after the goal and the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub languages: Vec<String>,
    pub topics: Vec<String>,
    pub count: u64,
    pub activity_days: u64,
    pub min_stars: u64,
    pub max_repos: u64,
    /// Maintainers taken per repository: the owner when a user, then top contributors.
    pub maintainers_per_repo: u64,
    pub send: bool,
    pub subject: String,
    pub body: String,
    pub volume_interval: u64,
    pub recontact_after_days: u64,
    /// Calls in flight at once per stage of this job.
    pub concurrency: u64,
}

pub const DEFAULT_SUBJECT: &str = "{repo}: a note from a fellow {language} developer";
pub const DEFAULT_BODY: &str = "Hi {first_name},\n\nI came across {repo} ({stars} stars) and \
wanted to say thanks for maintaining it.\n\nBest regards";

/// The config keys a campaign takes (any of them overrides what the goal says).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Overrides {
    languages: Option<Vec<String>>,
    topics: Option<Vec<String>>,
    count: Option<u64>,
    activity_days: Option<u64>,
    min_stars: Option<u64>,
    max_repos: Option<u64>,
    maintainers_per_repo: Option<u64>,
    send: Option<bool>,
    subject: Option<String>,
    body: Option<String>,
    volume_interval: Option<u64>,
    recontact_after_days: Option<u64>,
    concurrency: Option<u64>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> InvalidJob {
    InvalidJob {
        field,
        message: message.into(),
    }
}

/// What a goal says: the parts it names.
#[derive(Debug, Default, PartialEq)]
pub struct GoalParts {
    pub languages: Vec<String>,
    pub topics: Vec<String>,
    pub count: Option<u64>,
    pub activity_days: Option<u64>,
}

/// Reads "Find 2k Python maintainers active in last 90 days": a count (`2k` = 2000, `1.5k`,
/// `2,000`, `10k`, `1m`), languages and topics by name, and an activity window
/// ("active in (the) last N days|weeks|months").
pub fn parse_goal(goal: &str) -> GoalParts {
    let lower = goal.to_lowercase();
    let words: Vec<&str> = lower
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| {
                matches!(c, '.' | ',' | ';' | ':' | '!' | '?' | '(' | ')' | '"')
            })
        })
        .filter(|w| !w.is_empty())
        .collect();
    let mut parts = GoalParts::default();
    for (i, word) in words.iter().enumerate() {
        if let Some((_, name)) = LANGUAGES.iter().find(|(key, _)| key == word) {
            if !parts.languages.iter().any(|l| l == name) {
                parts.languages.push(name.to_string());
            }
        }
        if let Some((_, topic)) = TOPICS.iter().find(|(key, _)| key == word) {
            if !parts.topics.iter().any(|t| t == topic) {
                parts.topics.push(topic.to_string());
            }
        }
        let unit = words.get(i + 1).copied().unwrap_or("");
        let days_per = match unit.trim_end_matches('s') {
            "day" => Some(1),
            "week" => Some(7),
            "month" => Some(30),
            "year" => Some(365),
            _ => None,
        };
        if let (Some(per), Ok(n)) = (days_per, word.parse::<u64>()) {
            let before = &words[..i];
            if before
                .iter()
                .rev()
                .take(3)
                .any(|w| *w == "last" || *w == "past")
            {
                parts.activity_days = Some(n.saturating_mul(per));
                continue;
            }
        }
        if parts.count.is_none() && days_per.is_none() {
            parts.count = parse_count(word);
        }
    }
    parts
}

/// `2k`, `1.5k`, `2,000`, `500`, `1m`.
fn parse_count(word: &str) -> Option<u64> {
    let word = word.replace(',', "");
    let (number, factor) = if let Some(n) = word.strip_suffix('k') {
        (n, 1_000.0)
    } else if let Some(n) = word.strip_suffix('m') {
        (n, 1_000_000.0)
    } else {
        (word.as_str(), 1.0)
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let count = (value * factor).round();
    (count >= 1.0 && count <= u64::MAX as f64).then_some(count as u64)
}

impl Target {
    /// The goal's target with the config's overrides; the error names the field that lacks
    /// or breaks it.
    pub fn from_job(goal: &str, config: &Value) -> Result<Target, InvalidJob> {
        let overrides: Overrides = if config.is_null() {
            Overrides::default()
        } else {
            let mut config = config.clone();
            if let Some(fields) = config.as_object_mut() {
                fields
                    .values_mut()
                    .for_each(drover_queue::job::whole_number);
            }
            serde_path_to_error::deserialize(config).map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                // The fields are known statically; name the one that failed.
                invalid(config_field(&path), message)
            })?
        };
        let parts = parse_goal(goal);
        let languages = overrides.languages.unwrap_or(parts.languages);
        let topics = overrides.topics.unwrap_or(parts.topics);
        if languages.is_empty() && topics.is_empty() {
            return Err(invalid(
                "config.languages",
                "the goal names no language or topic (e.g. \"Python\"); set config.languages or config.topics",
            ));
        }
        for value in languages.iter().chain(&topics) {
            if value.is_empty()
                || value.len() > 40
                || !value
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '-' | '+' | '#' | '.' | '_'))
            {
                return Err(invalid(
                    "config.languages",
                    format!("`{value}` is not a language or topic GitHub search takes"),
                ));
            }
        }
        let count = overrides.count.or(parts.count).ok_or_else(|| {
            invalid(
                "config.count",
                "the goal says no number of leads (e.g. \"2k\"); set config.count",
            )
        })?;
        if !(1..=MAX_COUNT).contains(&count) {
            return Err(invalid(
                "config.count",
                format!("between 1 and {MAX_COUNT}"),
            ));
        }
        let activity_days = overrides
            .activity_days
            .or(parts.activity_days)
            .unwrap_or(90);
        if !(1..=MAX_ACTIVITY_DAYS).contains(&activity_days) {
            return Err(invalid(
                "config.activity_days",
                format!("between 1 and {MAX_ACTIVITY_DAYS}"),
            ));
        }
        let maintainers_per_repo = overrides.maintainers_per_repo.unwrap_or(3);
        if !(1..=20).contains(&maintainers_per_repo) {
            return Err(invalid("config.maintainers_per_repo", "between 1 and 20"));
        }
        let max_repos = overrides.max_repos.unwrap_or(count.div_ceil(2).max(10));
        if !(1..=MAX_COUNT).contains(&max_repos) {
            return Err(invalid(
                "config.max_repos",
                format!("between 1 and {MAX_COUNT}"),
            ));
        }
        let volume_interval = overrides.volume_interval.unwrap_or(1000);
        if volume_interval == 0 {
            return Err(invalid("config.volume_interval", "at least 1"));
        }
        let concurrency = overrides.concurrency.unwrap_or(4);
        if !(1..=32).contains(&concurrency) {
            return Err(invalid("config.concurrency", "between 1 and 32"));
        }
        let recontact_after_days = overrides.recontact_after_days.unwrap_or(180);
        if recontact_after_days > MAX_RECONTACT_DAYS {
            return Err(invalid(
                "config.recontact_after_days",
                format!("at most {MAX_RECONTACT_DAYS}"),
            ));
        }
        let subject = overrides.subject.unwrap_or_else(|| DEFAULT_SUBJECT.into());
        let body = overrides.body.unwrap_or_else(|| DEFAULT_BODY.into());
        for (field, text) in [("config.subject", &subject), ("config.body", &body)] {
            if text.contains('\0') {
                return Err(invalid(
                    field,
                    "must not contain the NUL character (U+0000)",
                ));
            }
        }
        check_template("config.subject", &subject, 300)?;
        check_template("config.body", &body, 20_000)?;
        if subject.contains(['\r', '\n']) {
            return Err(invalid("config.subject", "one line (no line breaks)"));
        }
        Ok(Target {
            languages,
            topics,
            count,
            activity_days,
            min_stars: overrides.min_stars.unwrap_or(10),
            max_repos,
            maintainers_per_repo,
            send: overrides.send.unwrap_or(false),
            subject,
            body,
            volume_interval,
            recontact_after_days,
            concurrency,
        })
    }
}

fn config_field(path: &str) -> &'static str {
    const FIELDS: &[&str] = &[
        "languages",
        "topics",
        "count",
        "activity_days",
        "min_stars",
        "max_repos",
        "maintainers_per_repo",
        "send",
        "subject",
        "body",
        "volume_interval",
        "recontact_after_days",
        "concurrency",
    ];
    let head = path.split(['.', '[']).next().unwrap_or("");
    match FIELDS.iter().position(|f| *f == head) {
        Some(0) => "config.languages",
        Some(1) => "config.topics",
        Some(2) => "config.count",
        Some(3) => "config.activity_days",
        Some(4) => "config.min_stars",
        Some(5) => "config.max_repos",
        Some(6) => "config.maintainers_per_repo",
        Some(7) => "config.send",
        Some(8) => "config.subject",
        Some(9) => "config.body",
        Some(10) => "config.volume_interval",
        Some(11) => "config.recontact_after_days",
        Some(12) => "config.concurrency",
        _ => "config",
    }
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &["name", "first_name", "login", "repo", "language", "stars"];

fn check_template(field: &'static str, template: &str, max: usize) -> Result<(), InvalidJob> {
    if template.is_empty() || template.chars().count() > max {
        return Err(invalid(field, format!("1 to {max} characters")));
    }
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| invalid(field, "a `{` without its `}`"))?;
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(invalid(
                field,
                format!(
                    "unknown placeholder `{{{name}}}` (known: {})",
                    PLACEHOLDERS
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// The config's JSON Schema (the same rules as [`Target::from_job`], bar the goal).
pub fn config_schema() -> Value {
    // A key left out or given as null takes its default; `count` and `languages` are the
    // exceptions (see `required`).
    let count = |min: u64, max: u64| serde_json::json!({"type": ["integer", "null"], "minimum": min, "maximum": max});
    let names = serde_json::json!({"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z0-9+#._-]{1,40}$"}});
    let placeholders = PLACEHOLDERS.join("|");
    serde_json::json!({
        "type": "object",
        "additionalProperties": false,
        // The goal may name the count and the languages instead; the document asks for them
        // so that every body it allows is accepted whatever the goal says.
        "required": ["count", "languages"],
        "description": "count and languages may be left out when the goal names them (\"Find 2k Python maintainers\"); the schema requires them so that any goal is accepted",
        "properties": {
            "languages": {"type": "array", "minItems": 1, "items": names["items"]},
            "topics": {"type": ["array", "null"], "items": names["items"]},
            "count": {"type": "integer", "minimum": 1, "maximum": MAX_COUNT},
            "activity_days": count(1, MAX_ACTIVITY_DAYS),
            "min_stars": count(0, u64::MAX),
            "max_repos": count(1, MAX_COUNT),
            "maintainers_per_repo": count(1, 20),
            "send": {"type": ["boolean", "null"], "description": "Send the messages (default false: drafts only). Needs mail.transport."},
            "subject": {"type": ["string", "null"], "minLength": 1, "maxLength": 300,
                        "pattern": format!("^([^{{}}\\r\\n\\u0000]|\\{{({placeholders})\\}})+$"),
                        "description": "One line; a template with {name}, {first_name}, {login}, {repo}, {language}, {stars}"},
            "body": {"type": ["string", "null"], "minLength": 1, "maxLength": 20000,
                     "pattern": format!("^([^{{}}\\u0000]|\\{{({placeholders})\\}})+$")},
            "volume_interval": count(1, u64::MAX),
            "recontact_after_days": count(0, MAX_RECONTACT_DAYS),
            "concurrency": count(1, 32)
        }
    })
}

/// Fills a template's placeholders.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match values.iter().find(|(key, _)| *key == name) {
                    Some((_, value)) => out.push_str(value),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn goals_are_read_as_the_seed_words_them() {
        let parts = parse_goal("Find 2k Python maintainers active in last 90 days");
        assert_eq!(parts.languages, ["Python"]);
        assert_eq!(parts.count, Some(2000));
        assert_eq!(parts.activity_days, Some(90));
        let parts = parse_goal("Find 10k developers across ML ecosystem, personalize and send");
        assert_eq!(parts.count, Some(10_000));
        assert_eq!(parts.topics, ["machine-learning"]);
        let parts = parse_goal("1.5k Rust and Go maintainers, active in the past 6 weeks");
        assert_eq!(parts.languages, ["Rust", "Go"]);
        assert_eq!(parts.count, Some(1500));
        assert_eq!(parts.activity_days, Some(42));
        assert_eq!(parse_goal("2,000 ruby folks").count, Some(2000));
        assert_eq!(parse_goal("say hello").count, None);
    }

    #[test]
    fn the_config_overrides_and_fills_gaps_naming_the_field() {
        let target = Target::from_job(
            "Find 2k Python maintainers active in last 90 days",
            &json!({}),
        )
        .unwrap();
        assert_eq!(
            (target.count, target.activity_days, target.send),
            (2000, 90, false)
        );
        let target = Target::from_job(
            "Python maintainers",
            &json!({"count": 50, "languages": ["Rust"]}),
        )
        .unwrap();
        assert_eq!(
            (target.count, target.languages.clone()),
            (50, vec!["Rust".to_string()])
        );
        let no_count = Target::from_job("Python maintainers", &json!({})).unwrap_err();
        assert_eq!(no_count.field, "config.count");
        let no_language = Target::from_job("find 200 people", &json!({})).unwrap_err();
        assert_eq!(no_language.field, "config.languages");
        let bad = Target::from_job("200 Python", &json!({"count": "many"})).unwrap_err();
        assert_eq!(bad.field, "config.count");
        let unknown = Target::from_job("200 Python", &json!({"colour": 1})).unwrap_err();
        assert_eq!(unknown.field, "config");
        let template =
            Target::from_job("200 Python", &json!({"subject": "Hi {nmae}"})).unwrap_err();
        assert_eq!(template.field, "config.subject");
        assert!(template.message.contains("{nmae}"));
    }

    #[test]
    fn templates_fill_known_placeholders() {
        let out = render(
            "Hi {first_name}, {repo} has {stars}★ {other",
            &[("first_name", "Ada"), ("repo", "x/y"), ("stars", "3")],
        );
        assert_eq!(out, "Hi Ada, x/y has 3★ {other");
    }
}
