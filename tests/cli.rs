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
fn quick_start_demo_runs_a_job_to_completion() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = drover(dir.path(), &["demo"]);
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
