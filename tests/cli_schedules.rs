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
