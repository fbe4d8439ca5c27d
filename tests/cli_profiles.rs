//! `drover profiles …` end to end through a real `drover api` (with a `secrets` key): put a
//! profile from a file, show it, upload a résumé, store a session (sealed, never printed),
//! list sessions and the applications ledger; bad ids are named before anything is sent.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const COOKIE_VALUE: &str = "cli-c00kie-never-printed-5d1";

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
    assert!(!stdout.contains(COOKIE_VALUE) && !stderr.contains(COOKIE_VALUE));
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

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn profiles_are_managed_from_the_cli_through_the_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("a.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let bind = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_drover"))
        .current_dir(dir.path())
        .args(["api", "--store", &store, "--bind", &bind, "--token", "tok"])
        .env("DROVER_LOG", "warn")
        .env(
            "DROVER_SECRETS__KEY",
            "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=",
        )
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
    let api = format!("http://{bind}");
    let run = |args: &[&str]| {
        drover(
            dir.path(),
            &[args, &["--api", &api, "--token", "tok"]].concat(),
        )
    };

    let profile = dir.path().join("ann.json");
    std::fs::write(
        &profile,
        r#"{"name": "Ann Lee", "email": "Ann@Example.com", "titles": ["Backend Engineer"],
            "caps": {"daily": 3, "monthly": 30}, "nightly": true,
            "sources": [{"type": "lever", "board": "acme"}]}"#,
    )
    .expect("write");
    let put = ok(run(&[
        "profiles",
        "put",
        "ann",
        "--file",
        profile.to_str().expect("path"),
    ]));
    assert!(put.contains("Ann Lee <ann@example.com>"), "{put}");
    assert!(put.contains("3 a day, 30 a month"), "{put}");
    assert!(put.contains("nightly:    yes (lever:acme)"), "{put}");

    let pdf = dir.path().join("cv.pdf");
    std::fs::write(&pdf, b"%PDF-1.4\n%%EOF\n").expect("write");
    let stored = ok(run(&[
        "profiles",
        "resume",
        "ann",
        pdf.to_str().expect("path"),
    ]));
    assert!(
        stored.contains("résumé cv.pdf stored (15 bytes)"),
        "{stored}"
    );
    let not_pdf = dir.path().join("cv.txt");
    std::fs::write(&not_pdf, b"hello").expect("write");
    let err = refused(run(&[
        "profiles",
        "resume",
        "ann",
        not_pdf.to_str().expect("path"),
    ]));
    assert!(
        err.contains("not a PDF") && err.contains("HTTP 422"),
        "{err}"
    );

    let cookies = dir.path().join("cookies.json");
    std::fs::write(
        &cookies,
        format!(r#"[{{"name": "sid", "value": "{COOKIE_VALUE}", "domain": ".lever.co"}}]"#),
    )
    .expect("write");
    let sealed = ok(run(&[
        "profiles",
        "session",
        "ann",
        "lever",
        "--file",
        cookies.to_str().expect("path"),
    ]));
    assert!(
        sealed.contains("session of ann for lever stored, sealed"),
        "{sealed}"
    );
    let sessions = ok(run(&["profiles", "sessions", "ann"]));
    assert!(sessions.contains("session:    lever"), "{sessions}");
    let shown: serde_json::Value =
        serde_json::from_str(&ok(run(&["profiles", "show", "ann", "--json"]))).expect("json");
    assert_eq!(shown["resume"]["filename"], "cv.pdf");
    assert_eq!(shown["sessions"][0]["site"], "lever");

    let ledger = ok(run(&["profiles", "applications", "ann"]));
    assert!(
        ledger.contains("today 0 of 3, this month 0 of 30"),
        "{ledger}"
    );
    assert!(ledger.contains("no applications"), "{ledger}");

    let err = refused(run(&["profiles", "show", "a/b"]));
    assert!(err.contains("user_id:"), "{err}");
    let err = refused(run(&["profiles", "session", "ann", "a b", "--delete"]));
    assert!(err.contains("site:"), "{err}");
    ok(run(&["profiles", "session", "ann", "lever", "--delete"]));
    ok(run(&["profiles", "delete", "ann"]));
    let err = refused(run(&["profiles", "show", "ann"]));
    assert!(
        err.contains("no profile") && err.contains("HTTP 404"),
        "{err}"
    );
    let err = refused(drover(dir.path(), &["profiles", "show", "ann"]));
    assert!(err.contains("--api"), "{err}");
}
