//! Browser test of the dashboard (`GET /`): a `drover serve` child process, ChromeDriver
//! driving headless Debian Chromium, and one demo job watched live, paused from its row
//! and opened in the detail panel. Assertions are on the DOM; the screenshot is a by-product
//! (`target/dashboard-test.png`; also `api/docs/dashboard.png` with `DROVER_SAVE_SCREENSHOT`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

const POLL: Duration = Duration::from_millis(100);
const DEADLINE: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr of the ephemeral port")
        .port()
}

/// A child process (and its process group) stopped on drop: SIGTERM, then SIGKILL.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command) -> Proc {
        // Own process group, so Chromium started by ChromeDriver goes down with it.
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Proc { name, child }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the process group of our own child (its pid is the pgid).
        unsafe { libc::kill(-(self.child.id() as i32), sig) };
    }

    fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early: {status}", self.name);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal(libc::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                self.signal(libc::SIGKILL); // stragglers in the group, if any
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Polls `url` until it answers 200, or panics after the deadline.
async fn wait_http_ok(http: &reqwest::Client, url: &str, proc: &mut Proc) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        proc.assert_alive();
        if let Ok(res) = http.get(url).send().await {
            if res.status().is_success() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} did not answer 200 at {url} within {DEADLINE:?}",
            proc.name
        );
        sleep(POLL).await;
    }
}

/// The outerHTML of `selector` (or of the job table when it is absent), plus banner and toast.
async fn dump(client: &Client, selector: &str) -> String {
    let script = "const s = arguments[0], e = document.querySelector(s), t = document.getElementById('jobs');
        return (e ? e.outerHTML : '(no element matches ' + s + ')\\n#jobs: ' + (t ? t.outerHTML : '(none)'))
            + '\\n#banner: ' + document.getElementById('banner').outerHTML
            + '\\n#toast: ' + document.getElementById('toast').outerHTML;";
    match client.execute(script, vec![json!(selector)]).await {
        Ok(Value::String(html)) => html,
        other => format!("(could not read the page: {other:?})"),
    }
}

/// Polls `probe` every 100ms until it returns `Some`; on timeout panics with `what` and the
/// outerHTML of `selector`.
async fn wait_for<T>(
    client: &Client,
    what: &str,
    selector: &str,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {DEADLINE:?} waiting for {what}\n{selector}:\n{}",
                dump(client, selector).await
            );
        }
        sleep(POLL).await;
    }
}

async fn attr_of(client: &Client, selector: &str, attr: &str) -> Option<String> {
    client
        .find(Locator::Css(selector))
        .await
        .ok()?
        .attr(attr)
        .await
        .ok()?
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn write_png(path: &Path, png: &[u8]) {
    let dir = path.parent().expect("screenshot path has a parent");
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_live_progress_and_pauses_a_job() {
    let started = std::time::Instant::now();
    let tmp = tempfile::tempdir().expect("temp dir");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client");

    // 1. The app, ChromeDriver and a demo job.
    let app_port = free_port();
    let base = format!("http://127.0.0.1:{app_port}");
    let store = format!("sqlite://{}", tmp.path().join("d.db").display());
    let mut app = Proc::spawn(
        "drover serve",
        Command::new(env!("CARGO_BIN_EXE_drover"))
            .args([
                "serve",
                "--store",
                &store,
                "--bind",
                &format!("127.0.0.1:{app_port}"),
                "--slots",
                "2",
            ])
            .env("DROVER_LOG", "warn")
            .env("DROVER_WORKERS__POLL_INTERVAL", "100ms"),
    );
    let driver_port = free_port();
    let driver_url = format!("http://127.0.0.1:{driver_port}");
    let mut driver = Proc::spawn(
        "chromedriver",
        Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null()),
    );
    wait_http_ok(&http, &format!("{base}/healthz"), &mut app).await;
    wait_http_ok(&http, &format!("{driver_url}/status"), &mut driver).await;

    let res = http
        .post(format!("{base}/v1/jobs"))
        .json(&json!({"kind": "demo", "goal": "dashboard browser test",
                      "config": {"items": 200, "item_ms": 150, "checkpoint_every": 5}}))
        .send()
        .await
        .expect("POST /v1/jobs");
    assert_eq!(
        res.status(),
        reqwest::StatusCode::CREATED,
        "submit the demo job"
    );
    let job: Value = res.json().await.expect("job JSON from POST /v1/jobs");
    let id = job["id"]
        .as_str()
        .expect("submitted job has a string id")
        .to_string();

    // 2. Headless Chromium on the page, until the job's row shows it running.
    let profile = tmp.path().join("chromium-profile");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": "/usr/bin/chromium", "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", format!("--user-data-dir={}", profile.display()),
        ]}),
    );
    let client = ClientBuilder::rustls()
        .expect("rustls connector for fantoccini")
        .capabilities(caps)
        .connect(&driver_url)
        .await
        .expect("start a Chromium session through chromedriver");
    client
        .goto(&format!("{base}/"))
        .await
        .expect("open the dashboard");

    let row = format!(r#"tr.job-row[data-job-id="{id}"]"#);
    let progress = format!("{row} .progress");
    wait_for(
        &client,
        "the job row with data-status=running",
        &row,
        async || {
            (attr_of(&client, &row, "data-status").await.as_deref() == Some("running"))
                .then_some(())
        },
    )
    .await;

    // 3. Progress advances live: data-items increases at least twice.
    let items = async || {
        attr_of(&client, &progress, "data-items")
            .await
            .and_then(|v| v.parse::<u64>().ok())
    };
    let first = wait_for(
        &client,
        "a numeric data-items on the row's .progress",
        &row,
        items,
    )
    .await;
    let (mut last, mut increases) = (first, 0);
    wait_for(&client, "data-items to increase twice", &row, async || {
        let now = items().await?;
        if now > last {
            increases += 1;
            last = now;
        }
        (increases >= 2).then_some(())
    })
    .await;
    assert!(last > first, "progress went from {first} to {last}");

    // 4. Pause from the row; the row and the API both report `paused`.
    client
        .set_window_size(1400, 900)
        .await
        .expect("set the window size to 1400x900");
    let pause = client
        .find(Locator::Css(&format!("{row} button.pause")))
        .await
        .expect("the running job's row has a Pause button");
    pause.click().await.expect("click Pause");
    let job_url = format!("{base}/v1/jobs/{id}");
    wait_for(
        &client,
        "data-status=paused on the row and status=paused from the API",
        &row,
        async || {
            if attr_of(&client, &row, "data-status").await.as_deref() != Some("paused") {
                return None;
            }
            let job: Value = http.get(&job_url).send().await.ok()?.json().await.ok()?;
            (job["status"] == "paused").then_some(())
        },
    )
    .await;

    // 5. Click the row itself (not one of its buttons): the detail panel's event log fills.
    client
        .find(Locator::Css(&row))
        .await
        .expect("the job row is still listed")
        .click()
        .await
        .expect("click the job row");
    wait_for(
        &client,
        "status and progress events in #event-log",
        "#detail",
        async || {
            let log = client.find(Locator::Css("#event-log")).await.ok()?;
            log.find(Locator::Css(r#"div.event[data-kind="status"]"#))
                .await
                .ok()?;
            log.find(Locator::Css(r#"div.event[data-kind="progress"]"#))
                .await
                .ok()?;
            Some(())
        },
    )
    .await;

    // 6. Screenshot.
    let png = client.screenshot().await.expect("take a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    write_png(&target_dir().join("dashboard-test.png"), &png);
    if std::env::var_os("DROVER_SAVE_SCREENSHOT").is_some() {
        write_png(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("api/docs/dashboard.png"),
            &png,
        );
    }

    // 7. Done.
    client.close().await.expect("close the browser session");
    eprintln!("dashboard test took {:?}", started.elapsed());
}
