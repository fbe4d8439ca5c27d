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
    assert_eq!(config.limits.rate_limit_buffer, 0.8);
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

#[test]
fn every_key_has_an_effect() {
    let set = file("limits:\n  rate_limit_buffer: 0.5\nworkers:\n  pool_size: 2\n");
    let config = Config::load(
        Some(set.path()),
        env(&[("DROVER_TIMEOUTS__API_TIMEOUT", "10s")]),
    )
    .expect("load");
    assert!(config.inert_keys_set().is_empty());
}

#[test]
fn workload_sections_are_checked_naming_the_key() {
    let refused = |yaml: &str, envs: &[(&str, &str)]| {
        Config::load(Some(file(yaml).path()), env(envs))
            .expect_err(yaml)
            .to_string()
    };
    assert!(
        refused("limits:\n  rate_limit_buffer: 1.5\n", &[]).contains("limits.rate_limit_buffer")
    );
    assert!(refused("github:\n  base_url: ftp://x\n", &[]).contains("github.base_url"));
    assert!(refused("mail:\n  transport: smtp\n", &[]).contains("mail.smtp_url"));
    assert!(refused("mail:\n  transport: carrier-pigeon\n", &[]).contains("mail.transport"));
    let no_key = "mail:\n  transport: smtp\n  smtp_url: smtp://127.0.0.1:2525\n  from: a@b.test\n  public_url: http://127.0.0.1:8080\n";
    assert!(refused(no_key, &[]).contains("secrets.key"));
    let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let config = Config::load(
        Some(file(no_key).path()),
        env(&[
            ("DROVER_SECRETS__KEY", key),
            ("DROVER_GITHUB__TOKEN", "0123"),
        ]),
    )
    .expect("a complete mail section loads");
    assert_eq!(config.github.token.as_deref(), Some("0123"));
    let shown = format!("{config:?}");
    assert!(!shown.contains("0123") && !shown.contains(key), "{shown}");
}

#[test]
fn debug_output_never_shows_a_store_password() {
    let config = Config::load(
        Some(file("workers:\n  pool_size: 2\n").path()),
        env(&[(
            "DROVER_QUEUE__URL",
            "postgres://drover:s3cret@db:5432/drover",
        )]),
    )
    .expect("load");
    let shown = format!("{config:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(
        shown.contains("postgres://drover:***@db:5432/drover"),
        "{shown}"
    );
}

#[test]
fn schedules_are_declared_in_the_file() {
    let yaml = "schedules:\n\
                - id: nightly\n  \
                  cron: '0 20 * * *'\n  \
                  timezone: Asia/Kolkata\n  \
                  job: {kind: noop, goal: nightly run, config: {items: 3}}\n  \
                  spread: {window: 600m, key: user-1}\n\
                - id: often\n  \
                  every: 30s\n  \
                  job: {kind: noop}\n  \
                  overlap: allow_all\n";
    let config = load(yaml, &[]).expect("loads");
    assert_eq!(config.schedules.len(), 2);
    let nightly = &config.schedules[0];
    assert_eq!(nightly.timezone, "Asia/Kolkata");
    assert_eq!(nightly.job.config, serde_json::json!({"items": 3}));
    assert_eq!(config.schedules[1].catchup_window, "1h");
    // `schedules:` with nothing under it is no schedule.
    assert!(load("schedules:\n", &[])
        .expect("empty")
        .schedules
        .is_empty());
}

#[test]
fn a_bad_schedule_entry_names_its_key() {
    let entry = |body: &str| {
        format!("schedules:\n- id: ok\n  every: 1m\n  job: {{kind: noop}}\n- id: bad\n{body}")
    };
    let cases = [
        (
            "  cron: 'every tuesday'\n  job: {kind: noop}\n",
            "schedules[1].cron",
        ),
        (
            "  cron: '* * * * *'\n  timezone: Mars/Olympus\n  job: {kind: noop}\n",
            "schedules[1].timezone",
        ),
        (
            "  every: 1m\n  job: {kind: noop, priority: urgent}\n",
            "schedules[1].job.priority",
        ),
        (
            "  every: 1m\n  job: {kind: noop}\n  color: red\n",
            "schedules[1].color",
        ),
        (
            "  every: 1m\n  job: {kind: noop}\n  catchup_window: soon\n",
            "schedules[1].catchup_window",
        ),
    ];
    for (body, expected) in cases {
        let (key, message) = invalid_key(load(&entry(body), &[]));
        assert_eq!(key, expected, "{body}: {message}");
    }
    let twice = "schedules:\n- {id: a, every: 1m, job: {kind: noop}}\n\
                 - {id: a, every: 2m, job: {kind: noop}}\n";
    let (key, message) = invalid_key(load(twice, &[]));
    assert_eq!(key, "schedules[1].id");
    assert!(message.contains("schedules[0]"), "{message}");
}

/// 32 bytes of 0x2a, base64.
const KEY_B64: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

#[test]
fn the_secrets_key_comes_from_the_environment_or_a_file() {
    let config = load("", &[("DROVER_SECRETS__KEY", KEY_B64)]).expect("loads");
    let key = config.secrets.key().expect("decodes").expect("a key");
    assert_eq!(key.bytes(), &[0x2a; 32]);

    let key_file = file(&format!("{KEY_B64}\n"));
    let config = load(
        &format!("secrets:\n  key_file: {}\n", key_file.path().display()),
        &[],
    )
    .expect("loads");
    let key = config.secrets.key().expect("reads").expect("a key");
    assert_eq!(key.bytes(), &[0x2a; 32]);

    assert_eq!(
        load("", &[]).expect("loads").secrets.key().expect("none"),
        None
    );
}

#[test]
fn a_wrong_secrets_key_is_refused_naming_it() {
    // 16 bytes, not 32.
    let (key, message) = invalid_key(load(
        "",
        &[("DROVER_SECRETS__KEY", "AAAAAAAAAAAAAAAAAAAAAA==")],
    ));
    assert_eq!(key, "secrets.key");
    assert!(message.contains("32 bytes"), "{message}");
    assert!(message.contains("DROVER_SECRETS__KEY"), "{message}");
    let (key, message) = invalid_key(load("", &[("DROVER_SECRETS__KEY", "not*base64")]));
    assert_eq!(key, "secrets.key");
    assert!(
        !message.contains("not*base64"),
        "the value is not repeated: {message}"
    );

    let short = file("c2hvcnQ=\n");
    let (key, _) = invalid_key(load(
        &format!("secrets:\n  key_file: {}\n", short.path().display()),
        &[],
    ));
    assert_eq!(key, "secrets.key_file");
    let (key, message) = invalid_key(load("secrets:\n  key_file: /nonexistent/drover.key\n", &[]));
    assert_eq!(key, "secrets.key_file");
    assert!(message.contains("/nonexistent/drover.key"), "{message}");

    let both = file(KEY_B64);
    let (key, message) = invalid_key(load(
        &format!("secrets:\n  key_file: {}\n", both.path().display()),
        &[("DROVER_SECRETS__KEY", KEY_B64)],
    ));
    assert_eq!(key, "secrets.key");
    assert!(message.contains("not both"), "{message}");
}

#[test]
fn debug_output_never_shows_the_secrets_key() {
    let config = load("", &[("DROVER_SECRETS__KEY", KEY_B64)]).expect("loads");
    let shown = format!("{config:?} {:?}", config.secrets.key());
    assert!(
        !shown.contains(KEY_B64) && !shown.contains("KioqKio"),
        "{shown}"
    );
    assert!(shown.contains("<redacted>"), "{shown}");
}

#[test]
fn previous_secrets_keys_decode_or_are_refused_by_position() {
    let config = load(
        &format!("secrets:\n  previous_keys: [\"{KEY_B64}\"]\n"),
        &[],
    )
    .expect("loads");
    assert_eq!(config.secrets.previous_keys().expect("decodes").len(), 1);
    assert!(!format!("{:?}", config.secrets).contains(KEY_B64));
    let (key, message) = invalid_key(load("secrets:\n  previous_keys: [\"c2hvcnQ=\"]\n", &[]));
    assert_eq!(key, "secrets.previous_keys");
    assert!(
        message.contains("entry 0") && !message.contains("c2hvcnQ="),
        "{message}"
    );
}
