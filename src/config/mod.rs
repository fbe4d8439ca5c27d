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

mod durations;
mod load;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use durations::{duration, option_duration};

/// The file [`Config::load`] reads when it is given no path and the file exists.
pub const DEFAULT_PATH: &str = "drover.yaml";

/// Prefix of the environment variables that set config keys.
pub const ENV_PREFIX: &str = "DROVER_";

/// Separator between section and key in an environment variable name.
const ENV_SEPARATOR: &str = "__";

/// Keys whose environment value is taken verbatim rather than parsed as YAML, so that a
/// token like `0123` or `yes` stays the string it was written as.
const VERBATIM_ENV_KEYS: &[&str] = &[
    "queue.url",
    "api.bind",
    "api.token",
    "secrets.key",
    "github.base_url",
    "github.token",
    "llm.base_url",
    "llm.api_key",
    "llm.model",
    "mail.smtp_url",
    "mail.http_url",
    "mail.api_key",
    "mail.from",
    "mail.public_url",
    "boards.greenhouse_base_url",
    "boards.lever_base_url",
    "boards.ashby_base_url",
    "browser.webdriver_url",
    "browser.chromedriver",
    "browser.chromium",
];

/// Keys holding lists, which the environment may also give comma-separated
/// (`DROVER_WORKERS__QUEUES=default,emails`) besides YAML flow style (`[default, emails]`).
const LIST_ENV_KEYS: &[&str] = &["workers.queues", "api.allowed_hosts"];

/// Store URL schemes drover has a backend for.
const STORE_SCHEMES: &[&str] = &[
    "sqlite:",
    "postgres://",
    "postgresql://",
    "redis://",
    "redis+cluster://",
];

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
    /// The key unsubscribe tokens are made under.
    pub secrets: Secrets,
    /// The GitHub REST API the campaign workload reads.
    pub github: Github,
    /// An OpenAI-compatible API for personalisation (none: the templates).
    pub llm: Llm,
    /// How messages are sent (by default they are not: drafts only).
    pub mail: Mail,
    /// The job boards the apply workload reads.
    pub boards: Boards,
    /// The browser tier-1 applications run in.
    pub browser: Browser,
    /// Schedules created or updated when an API or worker process starts, each shaped as
    /// the body of `POST /v1/schedules`; see [`drover_queue::schedule::declare`] for who
    /// owns them afterwards. Default none.
    pub schedules: Vec<drover_queue::schedule::ScheduleSpec>,
}

impl Config {
    /// Keys set away from their default that drover accepts (so configs written for what
    /// comes next load) but does not use yet: each earns a warning at start, never silence.
    pub fn inert_keys_set(&self) -> Vec<&'static str> {
        Vec::new()
    }
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
    /// Whether `serve`, `worker` and `api` apply pending migrations at start (default
    /// true). A fleet sets it false and runs `drover migrate` once per release; a process
    /// then refuses to start while the store's schema is behind its own.
    pub migrate: bool,
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
            migrate: true,
        }
    }
}

/// The `queue` section. Its `Debug` shows the store URL with any password replaced.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSection {
    /// Store URL: `sqlite:…`, `postgres://…`, `postgresql://…`, `redis://…` or
    /// `redis+cluster://…`.
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

impl fmt::Debug for QueueSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueSection")
            .field("url", &crate::settings::redact(&self.url))
            .field("max_retries", &self.max_retries)
            .field("retry_delay", &self.retry_delay)
            .field("max_retry_delay", &self.max_retry_delay)
            .field("priority_levels", &self.priority_levels)
            .field("max_queue_size", &self.max_queue_size)
            .finish()
    }
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
    /// Jobs running at once in this process's pool (not across the fleet); `None` (the
    /// default) means one per worker slot.
    pub max_concurrent_jobs: Option<u32>,
    /// The share of an external rate limit (a GitHub token's, a mail domain's) drover
    /// lets itself use, fleet-wide: above 0, at most 1. Default 0.8.
    pub rate_limit_buffer: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_jobs: None,
            rate_limit_buffer: 0.8,
        }
    }
}

/// The `github` section.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Github {
    /// Default `https://api.github.com`.
    pub base_url: String,
    /// A token (`DROVER_GITHUB__TOKEN`); without one, GitHub allows 60 requests an hour.
    pub token: Option<String>,
}

impl Default for Github {
    fn default() -> Self {
        Github {
            base_url: "https://api.github.com".into(),
            token: None,
        }
    }
}

impl fmt::Debug for Github {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Github")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The `boards` section: the job boards' public posting APIs (SPEC §7.1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Boards {
    /// Default `https://boards-api.greenhouse.io`.
    pub greenhouse_base_url: String,
    /// Default `https://api.lever.co`.
    pub lever_base_url: String,
    /// Default `https://api.ashbyhq.com`.
    pub ashby_base_url: String,
}

impl Default for Boards {
    fn default() -> Self {
        Boards {
            greenhouse_base_url: "https://boards-api.greenhouse.io".into(),
            lever_base_url: "https://api.lever.co".into(),
            ashby_base_url: "https://api.ashbyhq.com".into(),
        }
    }
}

/// The `browser` section: where tier-1 applications run (headless Chromium over WebDriver).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Browser {
    /// An external WebDriver (`http://127.0.0.1:9515`); when set, no chromedriver is
    /// spawned. Default none.
    pub webdriver_url: Option<String>,
    /// The chromedriver a worker spawns when there is no `webdriver_url`. Default
    /// `chromedriver` (from `PATH`).
    pub chromedriver: PathBuf,
    /// The Chromium binary. Default none: chromedriver finds it.
    pub chromium: Option<PathBuf>,
    /// Run Chromium headless. Default true.
    pub headless: bool,
    /// Browser sessions one worker process runs at once (Chromium is the memory, not the
    /// job); 1 to 32. Default 2.
    pub max_sessions: u32,
}

impl Default for Browser {
    fn default() -> Self {
        Browser {
            webdriver_url: None,
            chromedriver: PathBuf::from("chromedriver"),
            chromium: None,
            headless: true,
            max_sessions: 2,
        }
    }
}

/// The `llm` section.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Llm {
    /// An OpenAI-compatible API's base (`https://api.openai.com/v1`); requests go to
    /// `{base_url}/chat/completions`. Default none: messages come from the templates.
    pub base_url: Option<String>,
    /// `DROVER_LLM__API_KEY`.
    pub api_key: Option<String>,
    /// Default `gpt-4o-mini`.
    pub model: String,
}

impl Default for Llm {
    fn default() -> Self {
        Llm {
            base_url: None,
            api_key: None,
            model: "gpt-4o-mini".into(),
        }
    }
}

impl fmt::Debug for Llm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Llm")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .finish()
    }
}

/// `mail.transport`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// Drafts only: nothing is sent, whatever a job asks.
    #[default]
    None,
    Smtp,
    Http,
}

/// The `mail` section.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Mail {
    /// `none` (default: drafts only), `smtp` or `http`.
    pub transport: MailTransport,
    /// `smtp://host:port`, `smtp://host:port?tls=required` or `smtps://user:pass@host:465`.
    pub smtp_url: Option<String>,
    /// A Resend-shaped API's base (`https://api.resend.com`).
    pub http_url: Option<String>,
    /// The HTTP API's key (`DROVER_MAIL__API_KEY`).
    pub api_key: Option<String>,
    /// The sender: `Name <address>` or an address.
    pub from: Option<String>,
    /// Messages per recipient domain per minute, fleet-wide. Default 30.
    pub per_domain_per_minute: u64,
    /// Messages per UTC day, fleet-wide. Default none.
    pub daily_cap: Option<u64>,
    /// This API's public URL, for the unsubscribe links every message carries.
    pub public_url: Option<String>,
}

impl Default for Mail {
    fn default() -> Self {
        Mail {
            transport: MailTransport::None,
            smtp_url: None,
            http_url: None,
            api_key: None,
            from: None,
            per_domain_per_minute: 30,
            daily_cap: None,
            public_url: None,
        }
    }
}

impl fmt::Debug for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let smtp = self.smtp_url.as_ref().map(|url| {
            // A password may sit in the URL's user part.
            match url
                .split_once("://")
                .and_then(|(s, rest)| rest.split_once('@').map(|(_, h)| (s, h)))
            {
                Some((scheme, host)) => format!("{scheme}://<redacted>@{host}"),
                None => url.clone(),
            }
        });
        f.debug_struct("Mail")
            .field("transport", &self.transport)
            .field("smtp_url", &smtp)
            .field("http_url", &self.http_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("per_domain_per_minute", &self.per_domain_per_minute)
            .field("daily_cap", &self.daily_cap)
            .field("public_url", &self.public_url)
            .finish()
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

/// The `secrets` section: the 32-byte key (base64) that unsubscribe tokens are made under,
/// from `key_file` or from `key` (meant for `DROVER_SECRETS__KEY`). Its `Debug` shows
/// whether a key is set, never the key.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Secrets {
    /// A file holding the key, base64 (`openssl rand -base64 32 > key`). Default none.
    pub key_file: Option<PathBuf>,
    /// The key itself, base64; set it through `DROVER_SECRETS__KEY` rather than in a
    /// file that others read. Default none.
    pub key: Option<String>,
    /// Earlier keys (base64), after a rotation: session cookies sealed under them still
    /// open (each blob names its key by id); new ones are sealed under `key`. Default none.
    pub previous_keys: Vec<String>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("key_file", &self.key_file)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("previous_keys", &self.previous_keys.len())
            .finish()
    }
}

impl Secrets {
    /// The key, read and decoded: `None` when neither `key` nor `key_file` is set. An
    /// unreadable file, text that is not base64 of 32 bytes, or both keys set are refused
    /// naming the key (never showing its value).
    pub fn key(&self) -> Result<Option<drover_queue::secret::SecretKey>, ConfigError> {
        use drover_queue::secret::SecretKey;
        match (&self.key, &self.key_file) {
            (Some(_), Some(_)) => Err(invalid(
                "secrets.key",
                "set either `secrets.key` (DROVER_SECRETS__KEY) or `secrets.key_file`, not both",
            )),
            (Some(key), None) => SecretKey::from_base64(key).map(Some).map_err(|why| {
                invalid(
                    "secrets.key",
                    format!("{why} (set in the config file or by DROVER_SECRETS__KEY)"),
                )
            }),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|err| {
                    invalid(
                        "secrets.key_file",
                        format!("cannot read `{}`: {err}", path.display()),
                    )
                })?;
                SecretKey::from_base64(&text).map(Some).map_err(|why| {
                    invalid(
                        "secrets.key_file",
                        format!("the key in `{}`: {why}", path.display()),
                    )
                })
            }
            (None, None) => Ok(None),
        }
    }

    /// The earlier keys, decoded; one that is not base64 of 32 bytes is refused naming
    /// its position (never its value).
    pub fn previous_keys(&self) -> Result<Vec<drover_queue::secret::SecretKey>, ConfigError> {
        self.previous_keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                drover_queue::secret::SecretKey::from_base64(key)
                    .map_err(|why| invalid("secrets.previous_keys", format!("entry {i}: {why}")))
            })
            .collect()
    }
}

impl Config {
    /// Checks what types alone cannot: `workers.pool_size >= 1`,
    /// `workers.heartbeat_interval < workers.lease_ttl`, `queue.priority_levels == 3`,
    /// `persistence.max_checkpoints >= 1`, a `queue.url` scheme drover has a store for,
    /// a `secrets` key that reads and decodes to 32 bytes, and `schedules` entries that are
    /// valid declarations with distinct ids.
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
        self.secrets.key()?;
        self.secrets.previous_keys()?;
        self.validate_workloads()?;
        self.validate_schedules()?;
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

    /// Each `schedules[i]` checked as `POST /v1/schedules` checks a body (the job's kind is
    /// checked at start, against the kinds the process runs), naming `schedules[i].<field>`.
    fn validate_schedules(&self) -> Result<(), ConfigError> {
        for (i, spec) in self.schedules.iter().enumerate() {
            if let Err(e) = spec.validate() {
                return Err(invalid(format!("schedules[{i}].{}", e.field), e.message));
            }
            if let Some(first) = self.schedules[..i].iter().position(|s| s.id == spec.id) {
                return Err(invalid(
                    format!("schedules[{i}].id"),
                    format!(
                        "`{}` is declared twice (first at schedules[{first}])",
                        spec.id
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// The workloads' sections: URLs that parse, a share in (0, 1], and what sending needs
    /// when a transport is set (a sender, a public URL and the secrets key for unsubscribe
    /// links, and the transport's own URL).
    fn validate_workloads(&self) -> Result<(), ConfigError> {
        let share = self.limits.rate_limit_buffer;
        if !(share > 0.0 && share <= 1.0) {
            return Err(invalid(
                "limits.rate_limit_buffer",
                format!("the share of a rate limit drover uses: above 0, at most 1 (got {share})"),
            ));
        }
        let http_url = |key: &'static str, url: &str| {
            if url.starts_with("http://") || url.starts_with("https://") {
                Ok(())
            } else {
                Err(invalid(key, "must be an http:// or https:// URL"))
            }
        };
        http_url("github.base_url", &self.github.base_url)?;
        http_url(
            "boards.greenhouse_base_url",
            &self.boards.greenhouse_base_url,
        )?;
        http_url("boards.lever_base_url", &self.boards.lever_base_url)?;
        http_url("boards.ashby_base_url", &self.boards.ashby_base_url)?;
        if let Some(url) = &self.browser.webdriver_url {
            http_url("browser.webdriver_url", url)?;
        }
        if !(1..=32).contains(&self.browser.max_sessions) {
            return Err(invalid("browser.max_sessions", "from 1 to 32"));
        }
        if let Some(url) = &self.llm.base_url {
            http_url("llm.base_url", url)?;
        }
        if let Some(url) = &self.mail.http_url {
            http_url("mail.http_url", url)?;
        }
        if let Some(url) = &self.mail.public_url {
            http_url("mail.public_url", url)?;
            if drover_api::url_host(url).is_none() {
                return Err(invalid(
                    "mail.public_url",
                    "must name a host (https://drover.example.com)",
                ));
            }
        }
        if let Some(url) = &self.mail.smtp_url {
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return Err(invalid(
                    "mail.smtp_url",
                    "must be an smtp:// or smtps:// URL",
                ));
            }
        }
        if self.mail.per_domain_per_minute == 0 {
            return Err(invalid("mail.per_domain_per_minute", "must be at least 1"));
        }
        let needs = |key: &'static str, set: bool, why: &str| {
            if set {
                Ok(())
            } else {
                Err(invalid(
                    key,
                    format!("required when mail.transport is {why}"),
                ))
            }
        };
        match self.mail.transport {
            MailTransport::None => return Ok(()),
            MailTransport::Smtp => needs("mail.smtp_url", self.mail.smtp_url.is_some(), "smtp")?,
            MailTransport::Http => {
                needs("mail.http_url", self.mail.http_url.is_some(), "http")?;
                needs("mail.api_key", self.mail.api_key.is_some(), "http")?;
            }
        }
        needs("mail.from", self.mail.from.is_some(), "set")?;
        needs(
            "mail.public_url",
            self.mail.public_url.is_some(),
            "set (every message carries an unsubscribe link)",
        )?;
        if self.secrets.key()?.is_none() {
            return Err(invalid(
                "secrets.key",
                "required when mail.transport is set: unsubscribe links are signed with it \
                 (DROVER_SECRETS__KEY or secrets.key_file)",
            ));
        }
        Ok(())
    }
}
