//! The `drover` binary end to end: the quick start, submitting and managing jobs, and the
//! errors bad input gets.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn drover(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drover"))
        .current_dir(cwd)
        .args(args)
        .env_remove("DROVER_STORE")
        .env_remove("DROVER_CONFIG")
        .env("DROVER_LOG", "warn")
        .output()
        .expect("run drover")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn quick_start_demo_runs_a_campaign_against_the_sandbox() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = drover(dir.path(), &["demo", "campaign", "--leads", "80"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for want in [
        "sandbox: GitHub REST and chat API on http://127.0.0.1:",
        "running on",
        "discovery",
        "enrichment",
        "outreach",
        "artifact",
        "completed on",
        "0 over a rate budget",
        "report: drover-data/campaign-",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("result: "))
        .expect("a result line");
    let result: serde_json::Value = serde_json::from_str(result).expect("the result is JSON");
    assert_eq!(result["leads"], 80, "{result}");
    let sent = result["sent"].as_u64().expect("sent");
    assert!(sent > 0, "{result}");
    assert!(
        stdout.contains(&format!("{sent} messages at the SMTP sink")),
        "the sink got exactly the sent messages:\n{stdout}"
    );
    let report = std::fs::read_dir(dir.path().join("drover-data"))
        .expect("drover-data")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with("-report.csv"))
        .expect("the report file");
    let report = std::fs::read_to_string(report.path()).expect("read the report");
    assert_eq!(report.lines().count(), 81, "a header and a row per lead");
    assert!(report.starts_with(
        "login,name,email,email_source,repo,last_active_at,personalization,subject,send_status"
    ));
}

/// `drover demo apply`: real Chromium fills the sandbox's forms; the gate instructions are
/// printed; the summary's applied count is what the sandbox received.
#[test]
fn demo_apply_applies_in_chromium_prints_the_gate_commands_and_a_summary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .current_dir(dir.path())
        .args(["demo", "apply", "--postings", "20", "--approve-all"])
        .env_remove("DROVER_STORE")
        .env_remove("DROVER_CONFIG")
        .env("DROVER_LOG", "warn")
        .env("DROVER_BROWSER__CHROMEDRIVER", "/usr/bin/chromedriver")
        .env("DROVER_BROWSER__CHROMIUM", "/usr/bin/chromium")
        .output()
        .expect("run drover");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let job = stdout
        .lines()
        .find_map(|l| l.strip_prefix("submitted job "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the job id");
    for want in [
        "sandbox: job boards and hosted forms on http://127.0.0.1:".to_string(),
        "forms behind a CAPTCHA".to_string(),
        "review gate(s) open".to_string(),
        "  drover gates".to_string(),
        format!("  drover jobs decide {job} review:"),
        format!("/v1/jobs/{job}/gates/review:"),
        "-d '{\"decision\": \"approve\"}'".to_string(),
        "(--approve-all)".to_string(),
        "completed on".to_string(),
        "applications.csv: drover-data/apply-".to_string(),
    ] {
        assert!(stdout.contains(&want), "missing {want:?} in:\n{stdout}");
    }
    let summary = stdout
        .lines()
        .find_map(|l| l.strip_prefix("summary: "))
        .expect("a summary line");
    let count = |what: &str| -> u64 {
        summary
            .split(", ")
            .find_map(|part| part.strip_suffix(what))
            .and_then(|n| n.trim().rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {what:?} count in {summary:?}"))
    };
    let applied = count(" applied");
    assert!(applied > 0, "{summary}");
    assert!(
        count(" manual") > 0,
        "the CAPTCHA and Ashby postings: {summary}"
    );
    assert!(
        stdout.contains(&format!(
            "sandbox received {applied} submissions on its hosted forms ({applied} accepted, 0 refused), for {applied} distinct jobs"
        )),
        "one accepted submission per application:\n{stdout}"
    );
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("result: "))
        .expect("a result line");
    let result: serde_json::Value = serde_json::from_str(result).expect("the result is JSON");
    let counts = &result["counts"];
    assert_eq!(counts["applied"], applied, "{result}");
    assert!(counts["approved"].as_u64() > Some(0), "{result}");
    let report = std::fs::read_dir(dir.path().join("drover-data"))
        .expect("drover-data")
        .filter_map(Result::ok)
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .ends_with("-applications.csv")
        })
        .expect("the applications file");
    let report = std::fs::read_to_string(report.path()).expect("read the report");
    assert_eq!(
        report.lines().count() as u64,
        1 + counts["postings"].as_u64().expect("postings"),
        "a header and a row per posting"
    );
}

#[test]
fn demo_apply_without_chromedriver_says_what_to_install() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .current_dir(dir.path())
        .args(["demo", "apply"])
        .env_remove("DROVER_STORE")
        .env_remove("DROVER_CONFIG")
        .env("DROVER_LOG", "warn")
        .env("DROVER_BROWSER__CHROMEDRIVER", "no-such-chromedriver")
        .output()
        .expect("run drover");
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    for want in [
        "browser.chromedriver: `no-such-chromedriver` not found on PATH",
        "install chromium-driver",
        "set browser.chromedriver",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
}

#[test]
fn demo_walk_runs_a_demo_job_to_completion() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = drover(dir.path(), &["demo", "walk"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for want in [
        "queued",
        "running on",
        "completed on",
        "checkpoint",
        "result: {\"items_processed\":10}",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    assert!(dir.path().join("drover-data/drover.db").exists());
}

#[test]
fn bench_prints_a_row_of_figures() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = drover(
        dir.path(),
        &[
            "bench",
            "--jobs",
            "200",
            "--slots",
            "4",
            "--prefetch",
            "16",
            "--batch",
            "50",
            "--runs",
            "3",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("| sqlite"))
        .map(|row| row.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), 4, "three runs and their median:\n{stdout}");
    assert_eq!(rows[3][1], "sqlite (median)");
    for cells in &rows {
        assert_eq!((cells[2], cells[3], cells[4]), ("200", "4", "16"));
        for rate in [cells[5], cells[6]] {
            assert!(rate.parse::<f64>().is_ok_and(|r| r > 0.0), "{cells:?}");
        }
    }
    let out = drover(dir.path(), &["bench", "--jobs", "0"]);
    assert!(text(&out.stderr).contains("--jobs"));
}

#[test]
fn bad_input_is_refused_naming_the_flag_or_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases: &[(&[&str], &str)] = &[
        (
            &["submit", "noop", "x", "--max-attempts", "0"],
            "--max-attempts",
        ),
        (&["submit", "noop", "x", "--config", "{nope"], "--config"),
        (
            &["submit", "noop", "x", "--config", "[1]"],
            "--config: must be a JSON object",
        ),
        (
            &["submit", "sleep", "x", "--config", "{\"ms\": -1}"],
            "config.ms",
        ),
        (&["submit", "nosuchkind", "x"], "unknown kind `nosuchkind`"),
        (&["submit", "noop", "x", "--run-at", "someday"], "--run-at"),
        (
            &["submit", "noop", "x", "--priority", "urgent"],
            "--priority",
        ),
        (&["jobs", "show", "not-a-uuid"], "<ID>"),
        (&["--store", "mysql://x", "jobs", "list"], "queue.url"),
    ];
    for (args, want) in cases {
        let out = drover(dir.path(), args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(
            stderr.contains(want),
            "{args:?}: expected {want:?} in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    }
    std::fs::write(dir.path().join("drover.yaml"), "workers:\n  pool_sise: 3\n").unwrap();
    let out = drover(dir.path(), &["jobs", "list"]);
    assert!(
        text(&out.stderr).contains("workers.pool_sise"),
        "{}",
        text(&out.stderr)
    );
    // Nothing was stored by any of the refused submissions.
    std::fs::remove_file(dir.path().join("drover.yaml")).unwrap();
    let out = drover(dir.path(), &["jobs", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(listed["jobs"], serde_json::json!([]));
}

#[test]
fn jobs_and_queues_are_managed_from_the_cli() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = drover(
        dir.path(),
        &["submit", "noop", "manage me", "--json", "--priority", "low"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).expect("job json");
    let id = job["id"].as_str().expect("id").to_string();
    assert_eq!(job["priority"], "low");

    let step = |args: &[&str], want: &str| {
        let out = drover(dir.path(), args);
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(all.contains(want), "{args:?}: expected {want:?} in {all}");
        out.status.success()
    };
    assert!(step(&["jobs", "pause", &id], "paused"));
    assert!(step(&["jobs", "show", &id], "status:      paused"));
    assert!(step(&["jobs", "resume", &id], "queued"));
    assert!(step(&["jobs", "cancel", &id], "cancelled"));
    assert!(!step(
        &["jobs", "resume", &id],
        "cannot resume a job that is cancelled"
    ));
    assert!(step(&["jobs", "events", &id], "cancelled"));
    assert!(step(&["queues", "pause", "default"], "paused"));
    assert!(step(&["queues", "list"], "default"));
    assert!(step(&["queues", "resume", "default"], "resumed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_follow_sees_a_separate_serve_process_finish_the_job() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("shared.db").display());
    // Port 0: never collide with another `serve` on this machine.
    let mut serve = Command::new(env!("CARGO_BIN_EXE_drover"))
        .current_dir(dir.path())
        .args([
            "serve",
            "--store",
            &store,
            "--slots",
            "2",
            "--bind",
            "127.0.0.1:0",
            "--enable-test-kinds",
        ])
        .env("DROVER_WORKERS__POLL_INTERVAL", "100ms")
        .env("DROVER_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut follow = Command::new(env!("CARGO_BIN_EXE_drover"))
        .current_dir(dir.path())
        .args([
            "submit",
            "sleep",
            "follow me",
            "--config",
            "{\"ms\": 200}",
            "--follow",
            "--store",
            &store,
        ])
        .env_remove("DROVER_API")
        .env("DROVER_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn submit --follow");
    // Never hang: if the job does not finish in time, say what the server did.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while follow.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = follow.kill();
            let serve_status = serve.try_wait().ok().flatten();
            let _ = serve.kill();
            panic!("submit --follow did not finish; serve: {serve_status:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = follow.wait_with_output().expect("output");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("completed on"), "{stdout}");
    // SIGTERM: serve exits cleanly.
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(serve.id() as i32, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = serve.try_wait().expect("wait") {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "serve did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_events_prints_a_log_longer_than_one_store_read() {
    use drover_queue::{ClaimRequest, NewJob, StoreOptions, MAX_EVENTS_PER_READ};

    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("events.db").display());
    let store = drover_queue::connect(&url, StoreOptions::default())
        .await
        .expect("open store");
    store.migrate().await.expect("migrate");
    let id = store
        .enqueue(NewJob::new("noop", "chatty"))
        .await
        .expect("enqueue")
        .job()
        .id;
    let lease = store
        .claim(&ClaimRequest {
            worker_id: "test".into(),
            limit: 1,
            lease_ttl: Duration::from_secs(60),
            queues: Vec::new(),
        })
        .await
        .expect("claim")
        .pop()
        .expect("a lease");
    let extra = MAX_EVENTS_PER_READ + 5;
    for i in 0..extra {
        store
            .append_event(lease.fence(), "progress", serde_json::json!({ "i": i }))
            .await
            .expect("append");
    }
    let total = store.get(id).await.expect("job").event_seq as usize;
    assert!(total > MAX_EVENTS_PER_READ, "{total} events");

    let id = id.to_string();
    let out = drover(dir.path(), &["jobs", "events", &id, "--store", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout).lines().count();
    assert_eq!(
        printed, total,
        "every event of the log, not one read's worth"
    );
}

/// `drover <args> --help`, as text.
fn help(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut all = args.to_vec();
    all.push("--help");
    let out = drover(dir.path(), &all);
    assert!(out.status.success(), "{all:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn each_command_shows_only_the_flags_it_uses() {
    let cases: &[(&[&str], &[&str], &[&str])] = &[
        (
            &["api"],
            &[
                "--bind",
                "--token",
                "--enable-test-kinds",
                "--store",
                "PostgreSQL or Redis",
            ],
            &["--slots", "--queues", "--worker-id", "--api"],
        ),
        (
            &["worker"],
            &[
                "--slots",
                "--queues",
                "--worker-id",
                "--enable-test-kinds",
                "--bind",
                "PostgreSQL or Redis",
            ],
            &["--token", "--api"],
        ),
        (
            &["serve"],
            &["--slots", "--bind", "--token", "--enable-test-kinds"],
            &["--api"],
        ),
        (&["demo"], &["--slots"], &["--token", "--bind", "--api"]),
        (
            &["migrate"],
            &["--store"],
            &["--token", "--bind", "--api", "--slots"],
        ),
        (
            &["submit"],
            &["--api", "--token", "--max-attempts", "--created-by"],
            &["--slots", "--bind"],
        ),
        (
            &["jobs", "list"],
            &["--api", "--token", "--status"],
            &["--slots", "--bind"],
        ),
        (
            &["queues", "pause"],
            &["--api", "--token"],
            &["--slots", "--bind"],
        ),
    ];
    // A flag is listed when an option line starts with it; other words anywhere.
    let lists = |text: &str, what: &str| match what.starts_with("--") {
        true => text.lines().any(|l| l.trim_start().starts_with(what)),
        false => text.contains(what),
    };
    for (command, shown, hidden) in cases {
        let text = help(command);
        for flag in *shown {
            assert!(
                lists(&text, flag),
                "{command:?} --help lacks {flag}:\n{text}"
            );
        }
        for flag in *hidden {
            assert!(
                !lists(&text, flag),
                "{command:?} --help shows {flag}:\n{text}"
            );
        }
    }
    let store = help(&["migrate"]);
    for scheme in ["sqlite://", "postgres://", "redis://"] {
        assert!(
            store.contains(scheme),
            "--store help lacks {scheme}:\n{store}"
        );
    }
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    for command in ["serve", "api"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_drover"))
            .current_dir(dir.path())
            .args([command, "--bind", "0.0.0.0:0"])
            .env_remove("DROVER_TOKEN")
            .env_remove("DROVER_API__TOKEN")
            .env("DROVER_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn drover");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while child.try_wait().expect("wait").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{command} started on 0.0.0.0 without a token");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().expect("output");
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{command}: {stderr}");
        for want in ["without a token", "api.token", "--token"] {
            assert!(stderr.contains(want), "{command}: {want:?} not in {stderr}");
        }
    }
}

#[test]
fn client_commands_with_api_do_not_read_drover_yaml() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("drover.yaml"), "workers:\n  pool_sise: 3\n").expect("write");
    // Nothing listens on this port: the command fails talking to it, not on the file.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let api = format!("http://127.0.0.1:{port}");
    for args in [
        vec!["jobs", "list", "--api", &api],
        vec!["queues", "list", "--api", &api],
        vec!["submit", "noop", "x", "--api", &api],
    ] {
        let out = drover(dir.path(), &args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            !stderr.contains("pool_sise"),
            "{args:?} read drover.yaml: {stderr}"
        );
        assert!(stderr.contains(&port.to_string()), "{args:?}: {stderr}");
    }
    // Without --api the file is read, and refused.
    let out = drover(dir.path(), &["jobs", "list"]);
    assert!(text(&out.stderr).contains("workers.pool_sise"));
}

/// A `drover serve` on a fresh SQLite file with stderr piped; returns the child, its API's
/// base URL and everything it wrote to stderr up to the "API listening" line.
fn serve_piped(dir: &Path, extra_env: &[(&str, &str)]) -> (std::process::Child, String, String) {
    use std::io::BufRead as _;
    let store = format!("sqlite://{}", dir.join("s.db").display());
    let mut command = Command::new(env!("CARGO_BIN_EXE_drover"));
    command
        .current_dir(dir)
        .args(["serve", "--store", &store, "--bind", "127.0.0.1:0"])
        .env_remove("NO_COLOR")
        .env_remove("DROVER_ENABLE_TEST_KINDS")
        .env("DROVER_LOG", "info,sqlx=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let (lines, got) = std::sync::mpsc::channel();
    let to_stderr = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = to_stderr.send((false, line));
        }
    });
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send((true, line));
        }
    });
    let (mut base, mut log, mut listening) = (None, String::new(), false);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while base.is_none() || !listening {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok((is_stdout, line)) = got.recv_timeout(left) else {
            let _ = child.kill();
            panic!("serve did not start; stderr so far:\n{log}");
        };
        if is_stdout {
            let url = line
                .strip_prefix("drover API on ")
                .and_then(|l| l.split(' ').next());
            base = base.or(url.map(str::to_string));
        } else {
            listening |= line.contains("API listening");
            log.push_str(&line);
            log.push('\n');
        }
    }
    (child, base.expect("the API's address"), log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_plain_off_a_terminal_and_test_kinds_need_the_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let http = reqwest::Client::new();
    let demo = serde_json::json!({"kind": "demo", "goal": "x"});

    let (mut child, base, log) = serve_piped(dir.path(), &[]);
    assert!(
        !log.contains('\x1b'),
        "escape codes in a piped log:\n{log:?}"
    );
    let res = http
        .post(format!("{base}/v1/jobs"))
        .json(&demo)
        .send()
        .await;
    let res = res.expect("POST /v1/jobs");
    assert_eq!(res.status().as_u16(), 422);
    let body = res.text().await.expect("body");
    assert!(body.contains("--enable-test-kinds"), "{body}");
    let _ = child.kill();
    let _ = child.wait();

    let flag = [("DROVER_ENABLE_TEST_KINDS", "1")];
    let (mut child, base, _) = serve_piped(dir.path(), &flag);
    let res = http
        .post(format!("{base}/v1/jobs"))
        .json(&demo)
        .send()
        .await;
    assert_eq!(res.expect("POST /v1/jobs").status().as_u16(), 201);
    let _ = child.kill();
    let _ = child.wait();
}

/// `drover migrate` names what it applied, then says the store is up to date; a worker
/// with `workers.migrate: false` does not migrate, and refuses a schema that is behind.
#[test]
fn migrate_reports_and_workers_can_leave_it_to_migrate() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("drover.yaml"),
        "workers:\n  migrate: false\nqueue:\n  url: sqlite://fleet.db\n",
    )
    .expect("config");
    let out = drover(dir.path(), &["worker", "--enable-test-kinds"]);
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "a worker started on an unmigrated store"
    );
    for want in [
        "schema is at version 0",
        "workers.migrate is false",
        "drover migrate",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }

    let out = drover(dir.path(), &["migrate"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let latest = drover_queue::migrate::latest(drover_queue::migrate::SQLITE);
    assert!(stdout.contains("applied migration 0001 init"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "applied {latest} migrations to the sqlite store (schema version {latest})"
        )),
        "{stdout}"
    );
    let out = drover(dir.path(), &["migrate"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "the sqlite store is up to date (schema version {latest})"
        )),
        "{stdout}"
    );
}

/// A job paused in its first run shows attempt 1, not the 0 its counter holds after the
/// pause handed the attempt back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_job_shows_the_attempt_it_resumes_as() {
    use drover_queue::{ClaimRequest, JobStatus, NewJob, Release, StoreOptions};

    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("paused.db").display());
    let store = drover_queue::connect(&url, StoreOptions::default())
        .await
        .expect("open store");
    store.migrate().await.expect("migrate");
    let job = NewJob::new("sleep", "paused").max_attempts(3);
    let id = store.enqueue(job).await.expect("enqueue").job().id;
    let lease = store
        .claim(&ClaimRequest {
            worker_id: "test".into(),
            limit: 1,
            lease_ttl: Duration::from_secs(60),
            queues: Vec::new(),
        })
        .await
        .expect("claim")
        .pop()
        .expect("a lease");
    assert_eq!(lease.job.attempt, 1);
    store.pause(id).await.expect("pause requested");
    let paused = store
        .release(lease.fence(), Release::Pause)
        .await
        .expect("paused at a safe point");
    assert_eq!(paused.status, JobStatus::Paused);
    assert_eq!(
        paused.shown_attempt(),
        1,
        "stored attempt {}",
        paused.attempt
    );

    let id = id.to_string();
    let out = drover(dir.path(), &["jobs", "show", &id, "--store", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("attempt:     1/3"), "{stdout}");
    let out = drover(dir.path(), &["jobs", "list", "--store", &url]);
    assert!(text(&out.stdout).contains(" 1/3 "), "{}", text(&out.stdout));
}
