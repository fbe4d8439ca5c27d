//! drover's configuration: one optional YAML file (`drover.yaml`) overlaid by `DROVER_*`
//! environment variables, which win.
//!
//! [`Config::load`] reads both, deserializes the merged tree and runs [`Config::validate`];
//! whatever is wrong is refused with a [`ConfigError`] that names the offending key
//! (`workers.pool_size`) and, when the value came from the environment, the variable
//! (`DROVER_WORKERS__POOL_SIZE`).
//!
//! An environment variable is a config key when its name starts with `DROVER_` and contains
//! `__`: `DROVER_<SECTION>__<KEY>`, lowercased, so `DROVER_QUEUE__MAX_RETRIES=5` sets
//! `queue.max_retries`. Other `DROVER_*` variables (say `DROVER_CONFIG`) are left alone.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

/// The file [`Config::load`] reads when it is given no path and the file exists.
pub const DEFAULT_PATH: &str = "drover.yaml";

/// Prefix of the environment variables that set config keys.
pub const ENV_PREFIX: &str = "DROVER_";

/// Separator between section and key in an environment variable name.
const ENV_SEPARATOR: &str = "__";

/// Keys whose environment value is taken verbatim rather than parsed as YAML, so that a
/// token like `0123` or `yes` stays the string it was written as.
const VERBATIM_ENV_KEYS: &[&str] = &["queue.url", "api.bind", "api.token"];

/// Keys holding lists, which the environment may also give comma-separated
/// (`DROVER_WORKERS__QUEUES=default,emails`) besides YAML flow style (`[default, emails]`).
const LIST_ENV_KEYS: &[&str] = &["workers.queues", "api.allowed_hosts"];

/// Store URL schemes drover has a backend for.
const STORE_SCHEMES: &[&str] = &["sqlite:", "postgres://", "postgresql://", "redis://"];

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read (for an explicitly given path, also when missing).
    #[error("cannot read config file `{}`: {source}", .path.display())]
    Read {
        /// The file that was to be read.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The config file is not well-formed YAML.
    #[error("config file `{}` is not valid YAML: {source}", .path.display())]
    Parse {
        /// The file that was read.
        path: PathBuf,
        /// The parser's complaint, with line and column.
        source: serde_yaml::Error,
    },
    /// A key is unknown, has the wrong type, or holds a value drover refuses.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// Dotted path of the key (`workers.pool_size`), or the environment variable's name
        /// when the name itself is malformed.
        key: String,
        /// What is wrong; starts with `set by DROVER_…:` when the value came from the
        /// environment.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// drover's whole configuration; every section and key is optional and defaults as
/// documented on its field.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The worker pool: its size, leases and heartbeats.
    pub workers: Workers,
    /// The store and the retry policy of jobs.
    pub queue: QueueSection,
    /// Checkpoints of running jobs.
    pub persistence: Persistence,
    /// Global concurrency and rate limits.
    pub limits: Limits,
    /// Timeouts applied when a job kind sets none.
    pub timeouts: TimeoutDefaults,
    /// How long finished jobs and their events are kept before pruning.
    pub retention: Retention,
    /// The HTTP API.
    pub api: Api,
}

/// The `workers` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Workers {
    /// Jobs one worker process runs at once (its slots); at least 1. Default 8.
    pub pool_size: u32,
    /// Leased jobs a worker may hold waiting for a free slot, so one claim takes a batch.
    /// Raises the throughput of short jobs; in a fleet it holds those jobs back from idle
    /// workers meanwhile. Default 0: claim only for free slots.
    pub prefetch: u32,
    /// After this many jobs a worker process stops claiming and exits cleanly, to be
    /// replaced; `None` (the default) means never.
    pub max_jobs_per_worker: Option<u64>,
    /// How often a worker renews the lease of the job it runs; must be shorter than
    /// `lease_ttl`. Default 5s.
    #[serde(with = "duration")]
    pub heartbeat_interval: Duration,
    /// How long a lease lives without a heartbeat before the job is taken back. Default 30s.
    #[serde(with = "duration")]
    pub lease_ttl: Duration,
    /// How long a stopping worker waits for its job to reach a safe point. Default 30s.
    #[serde(with = "duration")]
    pub graceful_shutdown: Duration,
    /// How often an idle worker polls the store when no notification arrives. Default 1s.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// Queues this pool claims from; empty (the default) means all queues.
    pub queues: Vec<String>,
}

impl Default for Workers {
    fn default() -> Self {
        Self {
            pool_size: 8,
            prefetch: 0,
            max_jobs_per_worker: None,
            heartbeat_interval: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(30),
            graceful_shutdown: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            queues: Vec::new(),
        }
    }
}

/// The `queue` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSection {
    /// Store URL: `sqlite:…`, `postgres://…`, `postgresql://…` or `redis://…`.
    /// Default `sqlite://drover-data/drover.db`.
    pub url: String,
    /// Default `max_attempts` of a job whose kind sets none. Default 3.
    pub max_retries: u32,
    /// Base delay of the exponential backoff between attempts. Default 1s.
    #[serde(with = "duration")]
    pub retry_delay: Duration,
    /// Upper bound of the backoff delay. Default 5m.
    #[serde(with = "duration")]
    pub max_retry_delay: Duration,
    /// Number of priority levels; only 3 (high, normal, low) is supported. Default 3.
    pub priority_levels: u32,
    /// Refuse new jobs once this many are pending; `None` (the default) means no bound.
    pub max_queue_size: Option<u64>,
}

impl Default for QueueSection {
    fn default() -> Self {
        Self {
            url: "sqlite://drover-data/drover.db".to_owned(),
            max_retries: 3,
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(5 * 60),
            priority_levels: 3,
            max_queue_size: None,
        }
    }
}

/// The `persistence` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Persistence {
    /// Checkpoint a running job at least this often; `None` (the default) leaves it to the
    /// job's own safe points.
    #[serde(with = "option_duration")]
    pub checkpoint_interval: Option<Duration>,
    /// Checkpoints kept per job, newest first; at least 1. Default 10.
    pub max_checkpoints: u32,
    /// Whether large checkpoints are compressed. Default true.
    pub compression: bool,
    /// Checkpoints smaller than this many bytes are stored uncompressed. Default 4096.
    pub compression_threshold: u64,
}

impl Default for Persistence {
    fn default() -> Self {
        Self {
            checkpoint_interval: None,
            max_checkpoints: 10,
            compression: true,
            compression_threshold: 4096,
        }
    }
}

/// The `limits` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Jobs running at once across the pool; `None` (the default) means one per worker.
    pub max_concurrent_jobs: Option<u32>,
    /// Headroom kept below an upstream rate limit, in percent. Default 10.
    pub rate_limit_buffer: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_jobs: None,
            rate_limit_buffer: 10,
        }
    }
}

/// The `timeouts` section: defaults for jobs and steps that set none themselves.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutDefaults {
    /// Wall-clock limit of a whole job; `None` (the default) means none.
    #[serde(with = "option_duration")]
    pub job_timeout: Option<Duration>,
    /// Limit of one step; `None` means none. Default 300s.
    #[serde(with = "option_duration")]
    pub step_timeout: Option<Duration>,
    /// Limit of one API request. Default 30s.
    #[serde(with = "duration")]
    pub api_timeout: Duration,
}

impl Default for TimeoutDefaults {
    fn default() -> Self {
        Self {
            job_timeout: None,
            step_timeout: Some(Duration::from_secs(300)),
            api_timeout: Duration::from_secs(30),
        }
    }
}

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The `retention` section: how long finished jobs and their events are kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Completed jobs. Default 3 days.
    #[serde(with = "duration")]
    pub completed: Duration,
    /// Failed jobs. Default 30 days.
    #[serde(with = "duration")]
    pub failed: Duration,
    /// Cancelled jobs. Default 30 days.
    #[serde(with = "duration")]
    pub cancelled: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            completed: DAY * 3,
            failed: DAY * 30,
            cancelled: DAY * 30,
        }
    }
}

/// The `api` section. Its `Debug` shows whether a token is set, never the token.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Api {
    /// Address the HTTP API listens on. Default `127.0.0.1:8080`.
    pub bind: String,
    /// Bearer token every request must carry; `None` (the default) means no auth.
    pub token: Option<String>,
    /// Largest request body accepted, in bytes. Default 1 MiB.
    pub max_body_bytes: u64,
    /// Host names, besides the bound address (and `localhost` when bound to loopback),
    /// that requests may name in `Host`, for a reverse proxy or a DNS name. Default none.
    pub allowed_hosts: Vec<String>,
    /// Event streams (`GET /v1/jobs/{id}/events`) open at once; past it, 429. Default 1000.
    pub max_sse_streams: u32,
    /// A request whose answer has not started in this long gets 503. Default 30s.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("bind", &self.bind)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_sse_streams", &self.max_sse_streams)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl Default for Api {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".to_owned(),
            token: None,
            max_body_bytes: 1024 * 1024,
            allowed_hosts: Vec::new(),
            max_sse_streams: 1000,
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// Loads the configuration: the YAML file at `path` (or `./drover.yaml` if `path` is
    /// `None` and that file exists), then the `DROVER_<SECTION>__<KEY>` variables of `env`,
    /// which win, then [`Config::validate`].
    ///
    /// An environment value is parsed as a YAML scalar (`4`, `true`, `5s`, `[a, b]`); an
    /// empty value is null, which clears an optional key. Errors name the dotted key, and
    /// the variable when the value came from `env`. An explicit `path` that does not exist
    /// is an error; a missing `./drover.yaml` is not.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree = match path {
            Some(path) => read_file(path)?.unwrap_or(Value::Null),
            None => match read_file(Path::new(DEFAULT_PATH)) {
                Ok(tree) => tree.unwrap_or(Value::Null),
                Err(ConfigError::Read { source, .. })
                    if source.kind() == io::ErrorKind::NotFound =>
                {
                    Value::Null
                }
                Err(err) => return Err(err),
            },
        };
        empty_sections_as_mappings(&mut tree);
        let origins = overlay_env(&mut tree, env)?;
        let config = from_tree(tree, &origins)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot: `workers.pool_size >= 1`,
    /// `workers.heartbeat_interval < workers.lease_ttl`, `queue.priority_levels == 3`,
    /// `persistence.max_checkpoints >= 1` and a `queue.url` scheme drover has a store for.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.workers.pool_size == 0 {
            return Err(invalid("workers.pool_size", "must be at least 1"));
        }
        if self.workers.heartbeat_interval >= self.workers.lease_ttl {
            // A lease that can expire between two heartbeats would be taken back from a
            // healthy worker.
            return Err(invalid(
                "workers.heartbeat_interval",
                format!(
                    "must be shorter than `workers.lease_ttl` ({} is not shorter than {})",
                    humantime::format_duration(self.workers.heartbeat_interval),
                    humantime::format_duration(self.workers.lease_ttl),
                ),
            ));
        }
        if self.queue.priority_levels != 3 {
            return Err(invalid(
                "queue.priority_levels",
                format!(
                    "only 3 priority levels (high, normal, low) are supported, got {}",
                    self.queue.priority_levels
                ),
            ));
        }
        if self.persistence.max_checkpoints == 0 {
            return Err(invalid("persistence.max_checkpoints", "must be at least 1"));
        }
        if self.api.max_sse_streams == 0 {
            return Err(invalid("api.max_sse_streams", "must be at least 1"));
        }
        if self.api.request_timeout.is_zero() {
            return Err(invalid("api.request_timeout", "must be longer than 0s"));
        }
        let url = &self.queue.url;
        if !STORE_SCHEMES.iter().any(|scheme| url.starts_with(scheme)) {
            // Name only the scheme: the rest of a store URL may hold a password.
            let found = match url.split_once(':') {
                Some((scheme, _)) => format!("scheme `{scheme}`"),
                None => "no scheme".to_owned(),
            };
            return Err(invalid(
                "queue.url",
                format!(
                    "unsupported store URL with {found} (expected one of {})",
                    STORE_SCHEMES.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// Reads and parses a YAML file; `Ok(None)` for a file holding no document.
fn read_file(path: &Path) -> Result<Option<Value>, ConfigError> {
    let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parse_error = |source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let mut tree: Value = serde_yaml::from_str(&text).map_err(parse_error)?;
    // Lets a file share settings between sections with `<<: *anchor`.
    tree.apply_merge().map_err(parse_error)?;
    Ok(Some(tree))
}

/// `workers:` with every key commented out is a null section; read it as an empty one.
fn empty_sections_as_mappings(tree: &mut Value) {
    if let Value::Mapping(sections) = tree {
        for (_, section) in sections.iter_mut() {
            if section.is_null() {
                *section = Value::Mapping(Mapping::new());
            }
        }
    }
}

/// Sections and their keys, in declaration order, as the defaults serialize them.
fn known_keys() -> Vec<(String, Vec<String>)> {
    let defaults = serde_yaml::to_value(Config::default())
        .expect("the default config serializes to a YAML mapping");
    let Value::Mapping(sections) = defaults else {
        return Vec::new();
    };
    sections
        .into_iter()
        .filter_map(|(section, keys)| {
            let section = section.as_str()?.to_owned();
            let keys = keys
                .as_mapping()?
                .keys()
                .filter_map(|key| key.as_str().map(str::to_owned))
                .collect();
            Some((section, keys))
        })
        .collect()
}

/// Writes the `DROVER_<SECTION>__<KEY>` variables of `env` into `tree`; returns which
/// variable set each dotted key, so later errors can name it.
fn overlay_env(
    tree: &mut Value,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut origins = HashMap::new();
    let mut known = None;
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains(ENV_SEPARATOR) {
            continue;
        }
        let (section, key) = match rest.split(ENV_SEPARATOR).collect::<Vec<_>>()[..] {
            [section, key] if !section.is_empty() && !key.is_empty() => {
                (section.to_lowercase(), key.to_lowercase())
            }
            _ => {
                return Err(invalid(
                    name,
                    format!(
                        "expected a name of the form {ENV_PREFIX}<SECTION>{ENV_SEPARATOR}<KEY>"
                    ),
                ))
            }
        };
        let dotted = format!("{section}.{key}");
        let known = known.get_or_insert_with(known_keys);
        let Some((_, keys)) = known.iter().find(|(name, _)| *name == section) else {
            let sections: Vec<&str> = known.iter().map(|(name, _)| name.as_str()).collect();
            return Err(invalid(
                dotted,
                format!(
                    "set by {name}: unknown section `{section}` (expected one of {})",
                    sections.join(", ")
                ),
            ));
        };
        if !keys.contains(&key) {
            return Err(invalid(
                dotted,
                format!(
                    "set by {name}: unknown key (expected one of {})",
                    keys.join(", ")
                ),
            ));
        }
        let value = env_value(&dotted, &raw);
        if tree.is_null() {
            *tree = Value::Mapping(Mapping::new());
        }
        // A file whose top level or section is not a mapping keeps its own error, which
        // deserializing reports against the file's key.
        if let Value::Mapping(sections) = tree {
            let entry = sections
                .entry(Value::String(section))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if let Value::Mapping(keys) = entry {
                keys.insert(Value::String(key), value);
                origins.insert(dotted, name);
            }
        }
    }
    Ok(origins)
}

/// Parses one environment value for the key `dotted`.
fn env_value(dotted: &str, raw: &str) -> Value {
    if raw.is_empty() {
        return Value::Null;
    }
    if VERBATIM_ENV_KEYS.contains(&dotted) {
        return Value::String(raw.to_owned());
    }
    if LIST_ENV_KEYS.contains(&dotted) && !raw.trim_start().starts_with('[') {
        let items = raw
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| Value::String(item.to_owned()))
            .collect();
        return Value::Sequence(items);
    }
    // Not YAML (say `a: b: c`): keep the text, and let deserializing judge it.
    serde_yaml::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// Deserializes the merged tree, naming the failing key and, when `origins` says the value
/// came from the environment, its variable.
fn from_tree(tree: Value, origins: &HashMap<String, String>) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize(tree).map_err(|err| {
        let path = err.path().to_string();
        let key = if path == "." {
            "(top level)".to_owned()
        } else {
            path
        };
        // `workers.queues[2]` came from the variable that set `workers.queues`.
        let base = key.split('[').next().unwrap_or(&key);
        let message = match origins.get(base) {
            Some(var) => format!("set by {var}: {}", err.inner()),
            None => err.inner().to_string(),
        };
        invalid(key, message)
    })
}

/// Serde for a [`Duration`]: reads seconds (integer or fractional) or a humantime string
/// (`"5s"`, `"1m 30s"`, `"3days"`); writes a humantime string.
mod duration {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*value))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }

    pub(super) struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration: seconds as a number, or a string like \"30s\" or \"1m 30s\"")
        }

        fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(secs))
        }

        fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Duration, E> {
            u64::try_from(secs)
                .map(Duration::from_secs)
                .map_err(|_| E::custom(format!("a duration cannot be negative, got {secs}")))
        }

        fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Duration, E> {
            Duration::try_from_secs_f64(secs)
                .map_err(|err| E::custom(format!("invalid duration of {secs} seconds: {err}")))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            humantime::parse_duration(text)
                .map_err(|err| E::custom(format!("invalid duration {text:?}: {err}")))
        }
    }
}

/// Serde for an optional [`Duration`]: null or absent is `None`, otherwise as [`duration`].
mod option_duration {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    use super::duration::DurationVisitor;

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::duration::serialize(value, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        deserializer.deserialize_option(OptionVisitor)
    }

    struct OptionVisitor;

    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<Duration>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("null or a duration: seconds as a number, or a string like \"30s\"")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(DurationVisitor).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file(yaml: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("create temp file");
        file.write_all(yaml.as_bytes()).expect("write temp file");
        file
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn load(yaml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let file = file(yaml);
        Config::load(Some(file.path()), env(vars))
    }

    fn invalid_key(result: Result<Config, ConfigError>) -> (String, String) {
        match result {
            Err(ConfigError::Invalid { key, message }) => (key, message),
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let config = Config::default();
        assert_eq!(config.workers.pool_size, 8);
        assert_eq!(config.workers.max_jobs_per_worker, None);
        assert_eq!(config.workers.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(config.workers.lease_ttl, Duration::from_secs(30));
        assert!(config.workers.queues.is_empty());
        assert_eq!(config.queue.url, "sqlite://drover-data/drover.db");
        assert_eq!(config.queue.max_retries, 3);
        assert_eq!(config.queue.max_retry_delay, Duration::from_secs(300));
        assert_eq!(config.queue.priority_levels, 3);
        assert_eq!(config.persistence.max_checkpoints, 10);
        assert!(config.persistence.compression);
        assert_eq!(config.limits.rate_limit_buffer, 10);
        assert_eq!(config.timeouts.step_timeout, Some(Duration::from_secs(300)));
        assert_eq!(config.retention.completed, Duration::from_secs(3 * 86_400));
        assert_eq!(config.retention.failed, Duration::from_secs(30 * 86_400));
        assert_eq!(config.api.bind, "127.0.0.1:8080");
        assert_eq!(config.api.max_body_bytes, 1_048_576);
        assert!(config.validate().is_ok());
        // An empty file and no environment give the same.
        assert_eq!(load("", &[]).expect("empty file loads"), config);
    }

    #[test]
    fn defaults_round_trip_through_yaml() {
        let yaml = serde_yaml::to_string(&Config::default()).expect("serialize");
        assert!(yaml.contains("heartbeat_interval: 5s"), "{yaml}");
        assert!(yaml.contains("completed: 3days"), "{yaml}");
        assert_eq!(load(&yaml, &[]).expect("reload"), Config::default());
    }

    #[test]
    fn partial_yaml_keeps_other_defaults() {
        let config = load(
            "workers:\n  pool_size: 2\napi:\n  token: secret\nlimits:\n",
            &[],
        )
        .expect("loads");
        assert_eq!(config.workers.pool_size, 2);
        assert_eq!(config.workers.lease_ttl, Duration::from_secs(30));
        assert_eq!(config.api.token.as_deref(), Some("secret"));
        assert_eq!(config.api.bind, "127.0.0.1:8080");
        assert_eq!(config.queue, QueueSection::default());
        assert_eq!(config.limits, Limits::default());
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let config = load("api:\n  token: hunter2-secret\n", &[]).expect("loads");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn durations_as_numbers_and_strings() {
        let config = load(
            "workers:\n  heartbeat_interval: 2\n  lease_ttl: 1m 30s\n  poll_interval: 0.25\n\
             retention:\n  completed: 3days\n\
             persistence:\n  checkpoint_interval: 45s\n\
             timeouts:\n  step_timeout: null\n  job_timeout: 3600\n",
            &[],
        )
        .expect("loads");
        assert_eq!(config.workers.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(config.workers.lease_ttl, Duration::from_secs(90));
        assert_eq!(config.workers.poll_interval, Duration::from_millis(250));
        assert_eq!(config.retention.completed, Duration::from_secs(3 * 86_400));
        assert_eq!(
            config.persistence.checkpoint_interval,
            Some(Duration::from_secs(45))
        );
        assert_eq!(config.timeouts.step_timeout, None);
        assert_eq!(config.timeouts.job_timeout, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn bad_durations_are_named() {
        let (key, message) = invalid_key(load("queue:\n  retry_delay: soon\n", &[]));
        assert_eq!(key, "queue.retry_delay");
        assert!(message.contains("invalid duration \"soon\""), "{message}");
        let (key, message) = invalid_key(load("workers:\n  poll_interval: -1\n", &[]));
        assert_eq!(key, "workers.poll_interval");
        assert!(message.contains("negative"), "{message}");
    }

    #[test]
    fn unknown_key_in_file_is_named() {
        let err = load("workers:\n  pool_sise: 4\n", &[]).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("`workers.pool_sise`"), "{text}");
        assert!(text.contains("pool_size"), "{text}");
        let (key, _) = invalid_key(load("wrokers:\n  pool_size: 4\n", &[]));
        assert_eq!(key, "wrokers");
    }

    #[test]
    fn wrong_type_is_named() {
        let (key, message) = invalid_key(load("workers:\n  pool_size: x\n", &[]));
        assert_eq!(key, "workers.pool_size");
        assert!(message.contains("invalid type: string \"x\""), "{message}");
        let (key, _) = invalid_key(load("workers:\n  queues: [a, [b]]\n", &[]));
        assert_eq!(key, "workers.queues[1]");
    }

    #[test]
    fn malformed_yaml_names_the_file() {
        let file = file("workers: [\n");
        let err = Config::load(Some(file.path()), env(&[])).expect_err("refused");
        assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
        assert!(err.to_string().contains(&file.path().display().to_string()));
    }

    #[test]
    fn env_wins_over_file() {
        let config = load(
            "workers:\n  pool_size: 2\nqueue:\n  url: sqlite://a.db\n",
            &[
                ("DROVER_WORKERS__POOL_SIZE", "4"),
                ("DROVER_WORKERS__LEASE_TTL", "1m"),
                ("DROVER_WORKERS__MAX_JOBS_PER_WORKER", "100"),
                ("DROVER_WORKERS__QUEUES", "default, emails"),
                ("DROVER_PERSISTENCE__COMPRESSION", "false"),
                ("DROVER_QUEUE__URL", "postgres://drover@db/drover"),
                ("DROVER_API__TOKEN", "0123"),
                ("DROVER_TIMEOUTS__STEP_TIMEOUT", ""),
                ("DROVER_CONFIG", "ignored.yaml"),
                ("HOME", "/root"),
            ],
        )
        .expect("loads");
        assert_eq!(config.workers.pool_size, 4);
        assert_eq!(config.workers.lease_ttl, Duration::from_secs(60));
        assert_eq!(config.workers.max_jobs_per_worker, Some(100));
        assert_eq!(config.workers.queues, ["default", "emails"]);
        assert!(!config.persistence.compression);
        assert_eq!(config.queue.url, "postgres://drover@db/drover");
        assert_eq!(config.api.token.as_deref(), Some("0123"));
        assert_eq!(config.timeouts.step_timeout, None);
    }

    #[test]
    fn env_unknown_key_or_section_is_named() {
        let (key, message) = invalid_key(load("", &[("DROVER_WORKERS__POOL_SISE", "4")]));
        assert_eq!(key, "workers.pool_sise");
        assert!(
            message.starts_with("set by DROVER_WORKERS__POOL_SISE:"),
            "{message}"
        );
        assert!(message.contains("pool_size"), "{message}");

        let (key, message) = invalid_key(load("", &[("DROVER_WROKERS__POOL_SIZE", "4")]));
        assert_eq!(key, "wrokers.pool_size");
        assert!(message.contains("DROVER_WROKERS__POOL_SIZE"), "{message}");

        let (key, _) = invalid_key(load("", &[("DROVER_WORKERS__POOL__SIZE", "4")]));
        assert_eq!(key, "DROVER_WORKERS__POOL__SIZE");
    }

    #[test]
    fn env_wrong_type_names_variable_and_key() {
        let err = load("", &[("DROVER_WORKERS__POOL_SIZE", "x")]).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "config key `workers.pool_size`: set by DROVER_WORKERS__POOL_SIZE: \
             invalid type: string \"x\", expected u32"
        );
    }

    #[test]
    fn heartbeat_must_be_shorter_than_lease() {
        let err = load("workers:\n  heartbeat_interval: 30s\n", &[]).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("workers.heartbeat_interval"), "{text}");
        assert!(text.contains("workers.lease_ttl"), "{text}");
    }

    #[test]
    fn validation_names_the_key() {
        let cases = [
            ("workers:\n  pool_size: 0\n", "workers.pool_size"),
            ("queue:\n  priority_levels: 5\n", "queue.priority_levels"),
            (
                "persistence:\n  max_checkpoints: 0\n",
                "persistence.max_checkpoints",
            ),
            ("queue:\n  url: mysql://root:hunter2@db\n", "queue.url"),
        ];
        for (yaml, expected) in cases {
            let (key, message) = invalid_key(load(yaml, &[]));
            assert_eq!(key, expected, "{yaml}");
            assert!(!message.contains("hunter2"), "{message}");
        }
        for url in [
            "sqlite::memory:",
            "postgresql://db/drover",
            "redis://cache:6379",
        ] {
            let config = load("", &[("DROVER_QUEUE__URL", url)]).expect(url);
            assert_eq!(config.queue.url, url);
        }
    }

    #[test]
    fn missing_explicit_file_names_the_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nope.yaml");
        let err = Config::load(Some(&path), env(&[])).expect_err("refused");
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}
