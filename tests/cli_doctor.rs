//! `drover doctor` end to end: the binary against the sandbox standing in for GitHub, the
//! LLM, the job boards and SMTP, with real Chromium and ChromeDriver and each store.

use std::path::Path;
use std::process::{Command, Output};

use drover_queue::testing::Backend;
use drover_sandbox::{Sandbox, SandboxConfig, WorldConfig};
use serde_json::Value;

const TOKEN: &str = "ghp_doctor_never_printed_4f9a2c";
const LLM_KEY: &str = "sk-doctor-never-printed-77c1";
const SECRETS_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig {
        world: WorldConfig {
            seed: 3,
            repos: 20,
            users: 40,
            now: chrono::Utc::now(),
        },
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox")
}

/// Every service pointed at the sandbox, with a token, an LLM key, SMTP and a secrets key.
fn configured(sandbox: &Sandbox) -> Vec<(String, String)> {
    let base = sandbox.base_url();
    let mut env: Vec<(String, String)> = [
        ("DROVER_GITHUB__BASE_URL", base.clone()),
        ("DROVER_GITHUB__TOKEN", TOKEN.into()),
        ("DROVER_LLM__BASE_URL", format!("{base}/v1")),
        ("DROVER_LLM__API_KEY", LLM_KEY.into()),
        ("DROVER_MAIL__TRANSPORT", "smtp".into()),
        ("DROVER_MAIL__SMTP_URL", format!("smtp://{}", sandbox.smtp)),
        ("DROVER_MAIL__FROM", "Drover <outreach@drover.test>".into()),
        ("DROVER_MAIL__PUBLIC_URL", "http://127.0.0.1:8080".into()),
        ("DROVER_SECRETS__KEY", SECRETS_KEY.into()),
        (
            "DROVER_BROWSER__CHROMEDRIVER",
            "/usr/bin/chromedriver".into(),
        ),
        ("DROVER_BROWSER__CHROMIUM", "/usr/bin/chromium".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for board in ["GREENHOUSE", "LEVER", "ASHBY"] {
        env.push((format!("DROVER_BOARDS__{board}_BASE_URL"), base.clone()));
    }
    env
}

/// Runs `drover` off the runtime's threads, so the in-process sandbox keeps answering.
async fn drover(cwd: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_drover"));
    command
        .current_dir(cwd)
        .args(args)
        .env_remove("DROVER_STORE")
        .env_remove("DROVER_CONFIG")
        .env("DROVER_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)));
    tokio::task::spawn_blocking(move || command.output().expect("run drover"))
        .await
        .expect("join")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The checks of a `--json` run, by name.
fn checks(out: &Output) -> Vec<(String, String, String)> {
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", text(&out.stdout), text(&out.stderr)));
    json.as_array()
        .expect("an array")
        .iter()
        .map(|c| {
            let field = |name: &str| c[name].as_str().expect(name).to_string();
            (field("check"), field("status"), field("detail"))
        })
        .collect()
}

fn find<'a>(checks: &'a [(String, String, String)], name: &str) -> &'a (String, String, String) {
    checks
        .iter()
        .find(|c| c.0 == name)
        .unwrap_or_else(|| panic!("no {name} check in {checks:#?}"))
}

fn assert_no_secret(out: &Output) {
    for secret in [TOKEN, LLM_KEY, SECRETS_KEY] {
        for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !text(bytes).contains(secret),
                "{stream} shows a secret:\n{}",
                text(bytes)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_configured_and_reachable_passes() {
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("drover.db").display());
    let env = configured(&sandbox);
    let migrated = drover(dir.path(), &env, &["migrate", "--store", &store]).await;
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));

    let out = drover(dir.path(), &env, &["doctor", "--json", "--store", &store]).await;
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let checks = checks(&out);
    for name in [
        "config",
        "store",
        "store.schema",
        "disk",
        "secrets.key",
        "github",
        "llm",
        "boards.greenhouse",
        "boards.lever",
        "boards.ashby",
        "mail",
        "browser.versions",
        "browser.page",
    ] {
        let (_, status, detail) = find(&checks, name);
        assert_ne!(status, "fail", "{name}: {detail}");
    }
    for name in [
        "store",
        "store.schema",
        "secrets.key",
        "github",
        "mail",
        "browser.versions",
        "browser.page",
    ] {
        assert_eq!(find(&checks, name).1, "ok", "{:?}", find(&checks, name));
    }
    assert!(
        find(&checks, "github").2.contains("core requests left"),
        "{checks:#?}"
    );
    assert!(find(&checks, "browser.versions")
        .2
        .contains("major version"));
    assert_no_secret(&out);

    // The same checks as lines for a person.
    let out = drover(dir.path(), &env, &["doctor", "--store", &store]).await;
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), checks.len(), "{stdout}");
    assert!(
        stdout
            .lines()
            .all(|l| l.starts_with("ok ") || l.starts_with("warn ")),
        "{stdout}"
    );
    assert_no_secret(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_github_fails_naming_it_and_what_to_do() {
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("drover.db").display());
    let mut env = configured(&sandbox);
    env.retain(|(k, _)| k != "DROVER_GITHUB__BASE_URL");
    env.push((
        "DROVER_GITHUB__BASE_URL".into(),
        "http://127.0.0.1:9".into(),
    ));

    let out = drover(dir.path(), &env, &["doctor", "--store", &store]).await;
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    let failing: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failing.len(), 1, "only GitHub fails:\n{stdout}");
    assert!(failing[0].contains("github"), "{stdout}");
    assert!(failing[0].contains("127.0.0.1:9"), "{stdout}");
    assert!(
        failing[0].contains("DROVER_GITHUB__BASE_URL"),
        "says what to do: {stdout}"
    );
    // The store file did not exist: doctor says so and does not create it.
    assert!(stdout.contains("does not exist yet"), "{stdout}");
    assert!(!dir.path().join("drover.db").exists());
    assert_no_secret(&out);

    let out = drover(dir.path(), &env, &["doctor", "--json", "--store", &store]).await;
    assert!(!out.status.success());
    assert_eq!(find(&checks(&out), "github").1, "fail");
    assert_no_secret(&out);
}

/// PostgreSQL's clock and Redis's AOF are read; a schema not yet migrated is a warning
/// while workers migrate at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_clock_and_redis_aof_are_checked() {
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let env = configured(&sandbox);
    let pg = Backend::postgres();
    let redis = Backend::redis();

    let out = drover(
        dir.path(),
        &env,
        &["doctor", "--json", "--store", &pg.url()],
    )
    .await;
    let found = checks(&out);
    assert_eq!(find(&found, "store").1, "ok", "{found:#?}");
    assert_eq!(find(&found, "store.clock").1, "ok", "one host, one clock");
    let schema = find(&found, "store.schema");
    assert_eq!(schema.1, "warn", "{schema:?}");
    assert!(schema.2.contains("drover migrate"), "{schema:?}");

    let out = drover(
        dir.path(),
        &env,
        &["doctor", "--json", "--store", &redis.url()],
    )
    .await;
    let found = checks(&out);
    assert_eq!(find(&found, "store").1, "ok", "{found:#?}");
    assert!(
        find(&found, "store.aof").2.contains("appendonly"),
        "{found:#?}"
    );

    // A store that does not answer fails, and the process still prints every other check.
    let out = drover(
        dir.path(),
        &env,
        &[
            "doctor",
            "--store",
            "postgres://doctor:pw-never-shown@127.0.0.1:9/test",
        ],
    )
    .await;
    assert!(!out.status.success());
    let stdout = text(&out.stdout);
    let store = stdout
        .lines()
        .find(|l| l.starts_with("FAIL") && l.contains("store"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(store.contains("DROVER_STORE"), "{store}");
    assert!(!stdout.contains("pw-never-shown"), "{stdout}");
    assert!(stdout.contains("browser.page"), "{stdout}");
    pg.cleanup().await;
    redis.cleanup().await;
}

/// A server that refuses every credential, as GitHub and OpenAI answer a bad one.
async fn refusing_server() -> String {
    use axum::http::StatusCode;
    let app = axum::Router::new().fallback(|| async {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"message": "Bad credentials"})),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_and_a_readable_key_file_are_named() {
    use std::os::unix::fs::PermissionsExt as _;
    let sandbox = sandbox().await;
    let refusing = refusing_server().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let key_file = dir.path().join("drover.key");
    std::fs::write(&key_file, SECRETS_KEY).expect("key file");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut env = configured(&sandbox);
    env.retain(|(k, _)| {
        !matches!(
            k.as_str(),
            "DROVER_GITHUB__BASE_URL" | "DROVER_LLM__BASE_URL" | "DROVER_SECRETS__KEY"
        )
    });
    env.push(("DROVER_GITHUB__BASE_URL".into(), refusing.clone()));
    env.push(("DROVER_LLM__BASE_URL".into(), refusing));
    env.push((
        "DROVER_SECRETS__KEY_FILE".into(),
        key_file.display().to_string(),
    ));
    let store = format!("sqlite://{}", dir.path().join("drover.db").display());

    let out = drover(dir.path(), &env, &["doctor", "--json", "--store", &store]).await;
    assert!(!out.status.success());
    let found = checks(&out);
    let github = find(&found, "github");
    assert_eq!(github.1, "fail", "{github:?}");
    assert!(github.2.contains("DROVER_GITHUB__TOKEN"), "{github:?}");
    let llm = find(&found, "llm");
    assert_eq!(llm.1, "fail", "{llm:?}");
    assert!(llm.2.contains("DROVER_LLM__API_KEY"), "{llm:?}");
    let key = find(&found, "secrets.key");
    assert_eq!(key.1, "warn", "{key:?}");
    assert!(key.2.contains("chmod 600"), "{key:?}");
    assert_no_secret(&out);
}
