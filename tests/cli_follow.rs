//! `drover submit --follow` when nothing will run the job: it says so after a few seconds,
//! with how to start a worker, instead of waiting in silence.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn follow_without_a_live_worker_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("drover.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_drover"))
        .current_dir(dir.path())
        .args([
            "submit",
            "noop",
            "nobody runs me",
            "--follow",
            "--store",
            &url,
        ])
        .env_remove("DROVER_STORE")
        .env_remove("DROVER_CONFIG")
        .env("DROVER_LOG", "warn")
        .env("DROVER_ENABLE_TEST_KINDS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run drover");
    let stderr = child.stderr.take().expect("stderr");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let hint = loop {
        match received.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains("no worker is alive") => break line,
            Ok(line) => seen.push(line),
            Err(err) => {
                let _ = child.kill();
                panic!("no hint about the missing worker ({err}); stderr was: {seen:?}");
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(hint.contains("drover worker --store"), "{hint}");
    assert!(hint.contains("`default`"), "names the job's queue: {hint}");
}
