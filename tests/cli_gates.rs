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
