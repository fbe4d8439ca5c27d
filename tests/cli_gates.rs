//! `drover gates`, `drover jobs gates` and `drover jobs decide` end to end: a `serve`
//! process runs a demo job to its review gate, and the CLI answers it.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn drover(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drover"))
        .current_dir(cwd)
        .args(args)
        .env_remove("DROVER_STORE")
        .env_remove("DROVER_CONFIG")
        .env_remove("DROVER_API")
        .env("DROVER_LOG", "warn")
        .output()
        .expect("run drover")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `args` until its output contains `want` (the server works meanwhile), at most 60 s.
fn until(dir: &Path, args: &[&str], want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = drover(dir, args);
        let stdout = text(&out.stdout);
        if stdout.contains(want) {
            return stdout;
        }
        assert!(
            Instant::now() < deadline,
            "`drover {}` never printed {want:?}; last: {stdout}{}",
            args.join(" "),
            text(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_operator_answers_a_gate_from_the_cli() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("gates.db").display());
    let _serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_drover"))
            .current_dir(dir.path())
            .args([
                "serve",
                "--store",
                &store,
                "--bind",
                "127.0.0.1:0",
                "--enable-test-kinds",
            ])
            .env("DROVER_WORKERS__POLL_INTERVAL", "100ms")
            .env("DROVER_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn serve"),
    );
    let config = r#"{"items": 3, "item_ms": 0, "gate_at": 1}"#;
    let out = drover(
        dir.path(),
        &[
            "submit",
            "demo",
            "review me",
            "--config",
            config,
            "--store",
            &store,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = drover(dir.path(), &["jobs", "list", "--json", "--store", &store]);
    let jobs: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json list");
    let id = jobs["jobs"][0]["id"]
        .as_str()
        .or_else(|| jobs[0]["id"].as_str())
        .expect("the job's id")
        .to_string();

    let gates = until(
        dir.path(),
        &["jobs", "gates", &id, "--store", &store],
        "open",
    );
    assert!(gates.contains("approve-1"), "{gates}");
    assert!(gates.contains("Continue the demo after item 1?"), "{gates}");
    assert!(gates.contains("approve / reject"), "{gates}");
    let inbox = drover(dir.path(), &["gates", "--store", &store]);
    assert!(text(&inbox.stdout).contains(&id), "{}", text(&inbox.stdout));

    let bad = drover(
        dir.path(),
        &[
            "jobs",
            "decide",
            &id,
            "approve-1",
            "maybe",
            "--store",
            &store,
        ],
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("decision"),
        "{}",
        text(&bad.stderr)
    );
    let bad = drover(
        dir.path(),
        &["gates", "--status", "later", "--store", &store],
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("--status"),
        "{}",
        text(&bad.stderr)
    );

    let ok = drover(
        dir.path(),
        &[
            "jobs",
            "decide",
            &id,
            "approve-1",
            "approve",
            "--note",
            "fine",
            "--store",
            &store,
        ],
    );
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).contains("approve (decided)"),
        "{}",
        text(&ok.stdout)
    );
    until(
        dir.path(),
        &["jobs", "show", &id, "--store", &store],
        "completed",
    );
    let json = drover(
        dir.path(),
        &["jobs", "gates", &id, "--json", "--store", &store],
    );
    let gates: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json gates");
    assert_eq!(gates[0]["note"], "fine");
}

fn free_port() -> u16 {
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
    addr.expect("an ephemeral port").port()
}

fn spawn(dir: &Path, args: &[&str]) -> Serve {
    let child = Command::new(env!("CARGO_BIN_EXE_drover"))
        .current_dir(dir)
        .args(args)
        .env("DROVER_WORKERS__POLL_INTERVAL", "100ms")
        .env("DROVER_LOG", "warn")
        .stdout(Stdio::null())
        .spawn();
    Serve(child.expect("spawn drover"))
}

fn submit(dir: &Path, store: &str, goal: &str, config: &str) -> String {
    let out = drover(
        dir,
        &["submit", "demo", goal, "--config", config, "--store", store],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let id = stdout
        .split_whitespace()
        .find(|w| uuid::Uuid::parse_str(w).is_ok());
    id.unwrap_or_else(|| panic!("no job id in {stdout:?}"))
        .to_string()
}

/// A Prometheus sample `name` (no labels) from `drover api`'s `/metrics`.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    let line = metrics
        .lines()
        .find(|l| l.split(' ').next() == Some(name))?;
    line.split(' ').nth(1)?.parse().ok()
}

/// With every worker gone, `drover api` alone enforces gate deadlines: a waiting job's gate
/// past its deadline takes its default and the job is queued again, while a gate whose
/// deadline is far off stays open; `/metrics` counts both.
#[test]
fn the_api_process_times_out_gates_with_every_worker_gone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("keeper.db").display());
    let worker = spawn(
        dir.path(),
        &["worker", "--store", &store, "--enable-test-kinds"],
    );
    let soon = submit(
        dir.path(),
        &store,
        "times out",
        r#"{"items": 2, "item_ms": 0, "gate_at": 0, "gate_deadline_s": 3}"#,
    );
    let later = submit(
        dir.path(),
        &store,
        "stays open",
        r#"{"items": 2, "item_ms": 0, "gate_at": 0}"#,
    );
    for id in [&soon, &later] {
        until(
            dir.path(),
            &["jobs", "show", id, "--store", &store],
            "waiting",
        );
    }
    drop(worker); // SIGKILL: no worker, and so no gate keeper, is left.

    let port = free_port().to_string();
    let bind = format!("127.0.0.1:{port}");
    let _api = spawn(dir.path(), &["api", "--store", &store, "--bind", &bind]);
    let gates = until(
        dir.path(),
        &["jobs", "gates", &soon, "--json", "--store", &store],
        "timed_out",
    );
    let gates: serde_json::Value = serde_json::from_str(&gates).expect("json gates");
    assert_eq!(
        gates[0]["decision"], "reject",
        "the default applied: {gates}"
    );
    until(
        dir.path(),
        &["jobs", "show", &soon, "--store", &store],
        "queued",
    );
    let open = drover(dir.path(), &["jobs", "gates", &later, "--store", &store]);
    assert!(
        text(&open.stdout).contains("open"),
        "{}",
        text(&open.stdout)
    );

    let url = format!("http://{bind}/metrics");
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let text = std::net::TcpStream::connect(&bind).ok().and_then(|mut s| {
            use std::io::{Read, Write};
            let get = format!("GET /metrics HTTP/1.0\r\nHost: {bind}\r\n\r\n");
            s.write_all(get.as_bytes()).ok()?;
            let mut body = String::new();
            s.read_to_string(&mut body).ok()?;
            Some(body)
        });
        match text {
            Some(text) if text.contains("drover_gates_open") => break text,
            _ => assert!(Instant::now() < deadline, "no metrics from {url}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        sample(&metrics, "drover_gates_open"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "drover_gates_timed_out_total"),
        Some(1.0),
        "{metrics}"
    );
}
