//! `drover schedules …` end to end, on the store and through the API: create from flags, show
//! the next and last runs, pause, resume, trigger and delete; bad flags are named.

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

fn ok(out: Output) -> String {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "failed: {stdout}{stderr}");
    stdout.into_owned()
}

fn refused(out: Output) -> String {
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The commands, against `target` (`--store URL` or `--api URL`).
fn round_trip(dir: &Path, target: &[&str]) {
    let run = |args: &[&str]| drover(dir, &[args, target].concat());
    let created = ok(run(&[
        "schedules",
        "create",
        "--id",
        "nightly",
        "--cron",
        "0 20 * * *",
        "--timezone",
        "Asia/Kolkata",
        "--kind",
        "noop",
        "--goal",
        "nightly run",
        "--spread-window",
        "600m",
        "--spread-key",
        "user-1",
    ]));
    assert!(
        created.contains("cron 0 20 * * * (Asia/Kolkata)"),
        "{created}"
    );
    assert!(created.contains("spread:    600m by user-1"), "{created}");
    let list = ok(run(&["schedules", "list"]));
    assert!(
        list.contains("nightly") && list.contains("Asia/Kolkata"),
        "{list}"
    );
    let shown: serde_json::Value =
        serde_json::from_str(&ok(run(&["schedules", "show", "nightly", "--json"]))).expect("json");
    assert_eq!(
        shown["next_runs"].as_array().map(Vec::len),
        Some(10),
        "{shown}"
    );

    let again = refused(run(&[
        "schedules",
        "create",
        "--id",
        "nightly",
        "--every",
        "1h",
        "--kind",
        "noop",
        "--goal",
        "x",
    ]));
    assert!(again.contains("exists") || again.contains("409"), "{again}");
    let replaced = ok(run(&[
        "schedules",
        "create",
        "--id",
        "nightly",
        "--every",
        "1h",
        "--kind",
        "noop",
        "--goal",
        "x",
        "--replace",
    ]));
    assert!(replaced.contains("every 1h"), "{replaced}");

    ok(run(&["schedules", "pause", "nightly"]));
    let paused = ok(run(&["schedules", "list"]));
    assert!(paused.contains("paused"), "{paused}");
    ok(run(&["schedules", "resume", "nightly"]));
    let fired = ok(run(&["schedules", "trigger", "nightly"]));
    assert!(fired.contains("job "), "{fired}");
    let shown = ok(run(&["schedules", "show", "nightly"]));
    assert!(shown.contains("runs 1"), "{shown}");
    ok(run(&["schedules", "delete", "nightly"]));
    let gone = refused(run(&["schedules", "show", "nightly"]));
    assert!(gone.contains("not found"), "{gone}");

    // Bad input names the flag.
    let zone = refused(run(&[
        "schedules",
        "create",
        "--id",
        "z",
        "--cron",
        "* * * * *",
        "--timezone",
        "Mars/Olympus",
        "--kind",
        "noop",
        "--goal",
        "g",
    ]));
    assert!(zone.contains("--timezone"), "{zone}");
    let kind = refused(run(&[
        "schedules",
        "create",
        "--id",
        "k",
        "--every",
        "1m",
        "--kind",
        "nope",
        "--goal",
        "g",
    ]));
    assert!(kind.contains("--kind"), "{kind}");
    let cron = refused(run(&[
        "schedules",
        "create",
        "--id",
        "c",
        "--cron",
        "every tuesday",
        "--kind",
        "noop",
        "--goal",
        "g",
    ]));
    assert!(cron.contains("--cron"), "{cron}");
    let spread = refused(run(&[
        "schedules",
        "create",
        "--id",
        "s",
        "--every",
        "1m",
        "--kind",
        "noop",
        "--goal",
        "g",
        "--spread-key",
        "u",
    ]));
    assert!(spread.contains("--spread-window"), "{spread}");
}

#[test]
fn schedules_are_managed_from_the_cli_on_the_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("s.db").display());
    round_trip(dir.path(), &["--store", &store]);
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn schedules_are_managed_from_the_cli_through_the_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("a.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let bind = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_drover"))
        .current_dir(dir.path())
        .args([
            "api",
            "--store",
            &store,
            "--bind",
            &bind,
            "--enable-test-kinds",
        ])
        .env("DROVER_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn drover api");
    let _api = Kill(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&bind).is_err() {
        assert!(
            Instant::now() < deadline,
            "drover api never listened on {bind}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    round_trip(dir.path(), &["--api", &format!("http://{bind}")]);
}

/// Starts a long-running `drover` command in `dir` and waits for the line it prints once it
/// serves (after the config's schedules were applied).
fn start(dir: &Path, args: &[&str], ready: &str) -> Kill {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_drover"))
        .current_dir(dir)
        .args(args)
        .env_remove("DROVER_STORE")
        .env_remove("DROVER_CONFIG")
        .env("DROVER_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn drover");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let prefix = ready.to_string();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with(&prefix) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("drover {args:?} never printed `{ready}`"));
    Kill(child)
}

fn shown(dir: &Path, store: &str, id: &str) -> serde_json::Value {
    let out = ok(drover(
        dir,
        &["schedules", "show", id, "--json", "--store", store],
    ));
    serde_json::from_str(&out).expect("json")
}

#[test]
fn schedules_declared_in_the_config_file_are_applied_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("c.db").display());
    let config = dir.path().join("drover.yaml");
    let file = |entries: &str| std::fs::write(&config, format!("schedules:\n{entries}")).unwrap();
    let tick =
        "- id: tick\n  every: 1s\n  overlap: allow_all\n  job: {kind: noop, goal: from the file}\n";
    let nightly =
        "- id: nightly\n  cron: '0 20 * * *'\n  timezone: Asia/Kolkata\n  job: {kind: noop}\n";
    file(&format!("{tick}{nightly}"));
    let c = config.to_str().expect("utf-8 path");
    let worker = ["worker", "-c", c, "--store", &store, "--enable-test-kinds"];
    let worker = [&worker[..], &["--bind", "127.0.0.1:0"]].concat();
    let api = ["api", "-c", c, "--store", &store, "--enable-test-kinds"];
    let api = [&api[..], &["--bind", "127.0.0.1:0"]].concat();

    // Created at start, marked as the file's, and ticking (this process evaluates it).
    let running = start(dir.path(), &worker, "drover worker endpoints on");
    let s = shown(dir.path(), &store, "tick");
    assert_eq!(s["source"], "config", "{s}");
    assert_eq!(
        shown(dir.path(), &store, "nightly")["timezone"],
        "Asia/Kolkata"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while shown(dir.path(), &store, "tick")["runs"].as_u64() < Some(1) {
        assert!(
            Instant::now() < deadline,
            "the declared schedule never ticked"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Paused at run time; a restart with the same file (an API process this time) keeps it.
    ok(drover(
        dir.path(),
        &["schedules", "pause", "tick", "--store", &store],
    ));
    drop(running);
    let running = start(dir.path(), &api, "drover API on");
    let s = shown(dir.path(), &store, "tick");
    assert_eq!(
        (s["paused"].clone(), s["source"].clone()),
        (true.into(), "config".into()),
        "{s}"
    );
    drop(running);

    // A changed entry wins at the next start; an entry gone from the file is left alone.
    file(&tick.replace("from the file", "changed in the file"));
    let running = start(dir.path(), &worker, "drover worker endpoints on");
    let s = shown(dir.path(), &store, "tick");
    assert_eq!(s["job"]["goal"], "changed in the file", "{s}");
    assert_eq!(s["paused"], false, "{s}");
    let kept = shown(dir.path(), &store, "nightly");
    assert_eq!(kept["source"], "config", "{kept}");
    drop(running);

    // A bad entry is refused at start, naming its key.
    for (entries, key) in [
        (
            format!("{tick}- id: bad\n  cron: 'every tuesday'\n  job: {{kind: noop}}\n"),
            "schedules[1].cron",
        ),
        (
            "- id: nope\n  every: 1m\n  job: {kind: nope}\n".to_string(),
            "schedules[0].job.kind",
        ),
    ] {
        file(&entries);
        let err = refused(drover(dir.path(), &worker));
        assert!(err.contains(key), "{key}: {err}");
    }
}
