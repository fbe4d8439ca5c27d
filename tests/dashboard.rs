//! Browser test of the dashboard (`GET /`): a `drover serve` child process, ChromeDriver
//! driving headless Debian Chromium, and one demo job watched live, paused from its row
//! and opened in the detail panel. Assertions are on the DOM; the screenshot is a by-product
//! (`target/dashboard-test.png`; also `api/docs/dashboard.png` with `DROVER_SAVE_SCREENSHOT`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

const POLL: Duration = Duration::from_millis(100);
const DEADLINE: Duration = Duration::from_secs(30);
const CHROMIUM_ARGS: &str = "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --disable-background-networking --disable-component-update --disable-sync --no-first-run";

fn free_port() -> u16 {
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
    addr.expect("an ephemeral port").port()
}

/// A child process in its own process group (so the Chromium that ChromeDriver starts goes
/// down with it), stopped on drop: SIGTERM to the group, then SIGKILL after 5s.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command) -> Proc {
        let child = cmd.process_group(0).stdin(Stdio::null()).spawn();
        let child = child.unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Proc { name, child }
    }

    fn signal_group(&self, sig: i32) {
        // SAFETY: kill(2) on the process group led by our own, not yet reaped, child.
        unsafe { libc::kill(-(self.child.id() as i32), sig) };
    }

    /// Polls `url` until it answers 200; panics if the process exits or the deadline passes.
    async fn wait_ready(&mut self, http: &reqwest::Client, url: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited before answering {url}: {status}", self.name);
            }
            if let Ok(res) = http.get(url).send().await {
                if res.status().is_success() {
                    return;
                }
            }
            let (name, late) = (self.name, Instant::now() > deadline);
            assert!(!late, "{name}: no 200 from {url} in {DEADLINE:?}");
            sleep(POLL).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        self.signal_group(libc::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal_group(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The outerHTML of `selector` (or of the job table when nothing matches), banner and toast.
async fn dump(client: &Client, selector: &str) -> String {
    let script = "const s = arguments[0], e = document.querySelector(s), $ = id => document.getElementById(id);
        return (e ? e.outerHTML : '(nothing matches ' + s + ')\\n#jobs: ' + ($('jobs') || {}).outerHTML)
            + '\\n#banner: ' + $('banner').outerHTML + '\\n#toast: ' + $('toast').outerHTML;";
    match client.execute(script, vec![json!(selector)]).await {
        Ok(Value::String(html)) => html,
        other => format!("(could not read the page: {other:?})"),
    }
}

/// Polls `probe` every 100ms until it returns `Some`; after 30s panics with `what` and the
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
            let html = dump(client, selector).await;
            panic!("timed out after {DEADLINE:?} waiting for {what}; {selector}:\n{html}");
        }
        sleep(POLL).await;
    }
}

async fn attr_of(client: &Client, selector: &str, attr: &str) -> Option<String> {
    let el = client.find(Locator::Css(selector)).await.ok()?;
    el.attr(attr).await.ok()?
}

fn write_png(path: &Path, png: &[u8]) {
    let dir = path.parent().expect("screenshot path has a parent");
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A headless Chromium session through the chromedriver at `driver_url`.
async fn chromium(driver_url: &str, profile: &Path, extra_args: &[String]) -> Client {
    let mut args: Vec<String> = CHROMIUM_ARGS.split_whitespace().map(String::from).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.extend_from_slice(extra_args);
    let mut caps = serde_json::Map::new();
    let options = json!({"binary": "/usr/bin/chromium", "args": args});
    caps.insert("goog:chromeOptions".into(), options);
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(driver_url)
        .await
        .expect("start a Chromium session through chromedriver")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_live_progress_and_pauses_a_job() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5));
    let http = http.build().expect("reqwest client");

    // 1. The app, ChromeDriver and a demo job.
    let (app_port, driver_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{app_port}");
    let store = format!("sqlite://{}", tmp.path().join("d.db").display());
    let bind = format!("127.0.0.1:{app_port}");
    let mut app = Proc::spawn(
        "drover serve",
        Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(["serve", "--store", &store, "--bind", &bind, "--slots", "2"])
            .arg("--enable-test-kinds")
            .env("DROVER_LOG", "warn")
            .env("DROVER_WORKERS__POLL_INTERVAL", "100ms"),
    );
    let driver_url = format!("http://127.0.0.1:{driver_port}");
    let mut driver = Proc::spawn(
        "chromedriver",
        Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null()),
    );
    app.wait_ready(&http, &format!("{base}/healthz")).await;
    let status_url = format!("{driver_url}/status");
    driver.wait_ready(&http, &status_url).await;

    let config = json!({"items": 200, "item_ms": 150, "checkpoint_every": 5});
    let body = json!({"kind": "demo", "goal": "dashboard browser test", "config": config});
    let post = http.post(format!("{base}/v1/jobs")).json(&body);
    let res = post.send().await.expect("POST /v1/jobs");
    assert_eq!(res.status().as_u16(), 201, "submit the demo job");
    let job: Value = res.json().await.expect("job JSON from POST /v1/jobs");
    let id = job["id"].as_str().expect("submitted job has a string id");

    // 2. Headless Chromium on the page, until the job's row shows it running.
    let client = chromium(&driver_url, &tmp.path().join("chromium"), &[]).await;
    let resized = client.set_window_size(1400, 900).await;
    resized.expect("set the window to 1400x900");
    let opened = client.goto(&format!("{base}/")).await;
    opened.expect("open the dashboard");

    let row = format!(r#"tr.job-row[data-job-id="{id}"]"#);
    let status = async || attr_of(&client, &row, "data-status").await;
    let what = "the job's row with data-status=running";
    wait_for(&client, what, &row, async || {
        (status().await? == "running").then_some(())
    })
    .await;

    // 3. Progress advances live: the row's data-items increases at least twice.
    let progress = format!("{row} .progress");
    let items = async || {
        attr_of(&client, &progress, "data-items")
            .await?
            .parse::<u64>()
            .ok()
    };
    let what = "a numeric data-items on the row's .progress";
    let first = wait_for(&client, what, &row, items).await;
    let (mut last, mut increases) = (first, 0);
    wait_for(&client, "data-items to increase twice", &row, async || {
        let now = items().await?;
        if now > last {
            (last, increases) = (now, increases + 1);
        }
        (increases >= 2).then_some(())
    })
    .await;
    assert!(last > first, "data-items went from {first} to {last}");

    // 4. Pause from the row; both the row and the API report `paused`.
    let pause = format!("{row} button.pause");
    let what = "a clickable Pause button in the row";
    wait_for(&client, what, &row, async || {
        let button = client.find(Locator::Css(&pause)).await.ok()?;
        button.click().await.ok()
    })
    .await;
    let job_url = format!("{base}/v1/jobs/{id}");
    let what = "data-status=paused on the row and status=paused from the API";
    wait_for(&client, what, &row, async || {
        if status().await? != "paused" {
            return None;
        }
        let job: Value = http.get(&job_url).send().await.ok()?.json().await.ok()?;
        (job["status"] == "paused").then_some(())
    })
    .await;

    // 5. Click the row itself (its centre is a plain cell, not a button): the detail
    // panel opens and its event log fills from the job's event stream.
    let tr = client.find(Locator::Css(&row)).await;
    let tr = tr.expect("the job's row");
    tr.click().await.expect("click the job's row");
    let what = "status and progress events in #event-log";
    wait_for(&client, what, "#detail", async || {
        let log = client.find(Locator::Css("#event-log")).await.ok()?;
        for kind in ["status", "progress"] {
            let event = format!(r#"div.event[data-kind="{kind}"]"#);
            log.find(Locator::Css(&event)).await.ok()?;
        }
        Some(())
    })
    .await;

    // 6. Screenshot, for people; the assertions above are on the DOM.
    let png = client.screenshot().await.expect("take a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from);
    let target = target.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    write_png(&target.join("dashboard-test.png"), &png);
    if std::env::var_os("DROVER_SAVE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("api/docs/dashboard.png");
        write_png(&docs, &png);
    }

    // 7. Close the browser session; the child processes stop when dropped.
    client.close().await.expect("close the browser session");
}

/// The attacker's page: on load it fires every write a page on another origin can send
/// without a CORS preflight at the API (a text/plain `fetch` submitting a job, a body-less
/// cancel, a form posting JSON-looking text/plain), waits for each to be sent and answered,
/// then sets `window.attackDone`.
fn attack_page(api: &str, victim: &str) -> String {
    format!(
        r#"<!doctype html><html><body>
<form id="f" method="POST" action="{api}/v1/jobs" enctype="text/plain" target="sink">
<input name='{{"kind":"noop","goal":"csrf form","created_by":"' value='x"}}'></form>
<iframe name="sink" id="sink"></iframe>
<script>
window.attackDone = false;
const sent = [
  fetch('{api}/v1/jobs', {{method: 'POST', mode: 'no-cors', body: JSON.stringify({{kind: 'noop', goal: 'csrf fetch'}})}}),
  fetch('{api}/v1/jobs/batch', {{method: 'POST', mode: 'no-cors', body: JSON.stringify([{{kind: 'noop', goal: 'csrf batch'}}])}}),
  fetch('{api}/v1/jobs/{victim}/cancel', {{method: 'POST', mode: 'no-cors'}}),
  fetch('{api}/v1/queues/held/resume', {{method: 'POST', mode: 'no-cors'}}),
  // The form's answer is on the API's origin: once it has loaded in the frame, reading
  // the frame's address throws.
  new Promise(done => {{
    const sink = document.getElementById('sink');
    document.getElementById('f').submit();
    const poll = setInterval(() => {{
      try {{ void sink.contentWindow.location.href; }} catch (e) {{ clearInterval(poll); done(); }}
    }}, 20);
  }}),
];
Promise.allSettled(sent).then(() => {{ window.attackDone = true; }});
</script></body></html>"#
    )
}

/// Pages on other origins (another site, and another port of 127.0.0.1, which browsers
/// call the same site) fire every write they can at a tokenless `drover serve`; a page on
/// a name that resolves to 127.0.0.1 (DNS rebinding, simulated with Chromium's resolver
/// rules) tries to read and write through its own origin. Nothing is stored, cancelled or
/// resumed, and the rebinding page gets 403s. The dashboard itself still works under its
/// CSP, takes `?token=` out of the address bar, and runs no injected inline script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_on_other_origins_cannot_change_anything() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5));
    let http = http.build().expect("reqwest client");

    // 1. A tokenless server (the default), a job held in a paused queue, ChromeDriver.
    let (app_port, driver_port, page_port) = (free_port(), free_port(), free_port());
    let api = format!("http://127.0.0.1:{app_port}");
    let store = format!("sqlite://{}", tmp.path().join("c.db").display());
    let bind = format!("127.0.0.1:{app_port}");
    let mut app = Proc::spawn(
        "drover serve",
        Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(["serve", "--store", &store, "--bind", &bind, "--slots", "1"])
            .arg("--enable-test-kinds")
            .env("DROVER_LOG", "warn")
            .env("DROVER_WORKERS__POLL_INTERVAL", "100ms"),
    );
    let driver_url = format!("http://127.0.0.1:{driver_port}");
    let mut driver = Proc::spawn(
        "chromedriver",
        Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null()),
    );
    app.wait_ready(&http, &format!("{api}/healthz")).await;
    driver
        .wait_ready(&http, &format!("{driver_url}/status"))
        .await;
    let paused = http
        .post(format!("{api}/v1/queues/held/pause"))
        .send()
        .await;
    assert_eq!(paused.expect("pause queue held").status().as_u16(), 202);
    let body = json!({"kind": "noop", "goal": "victim", "queue": "held"});
    let res = http.post(format!("{api}/v1/jobs")).json(&body).send().await;
    let res = res.expect("POST /v1/jobs");
    assert_eq!(res.status().as_u16(), 201, "submit the victim job");
    let victim: Value = res.json().await.expect("job JSON");
    let victim = victim["id"].as_str().expect("a job id").to_string();

    // 2. The attacker's page, served on another port.
    let page = attack_page(&api, &victim);
    let site = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(page) }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", page_port)).await;
    let listener = listener.expect("bind the attacker's page");
    tokio::spawn(async move { axum::serve(listener, site).await });

    let rules = "--host-resolver-rules=MAP rebind.test 127.0.0.1".to_string();
    let client = chromium(&driver_url, &tmp.path().join("chromium"), &[rules]).await;
    for origin in [
        format!("http://localhost:{page_port}"),
        format!("http://127.0.0.1:{page_port}"),
    ] {
        client
            .goto(&format!("{origin}/"))
            .await
            .expect("open the attacker's page");
        let what = format!("the attack from {origin} to finish");
        wait_for(&client, &what, "body", async || {
            let done = client
                .execute("return window.attackDone === true;", vec![])
                .await;
            (done.ok()? == Value::Bool(true)).then_some(())
        })
        .await;
    }

    // 3. DNS rebinding: a page whose own name now points at the API.
    let rebound = format!("http://rebind.test:{app_port}");
    client
        .goto(&format!("{rebound}/"))
        .await
        .expect("open the rebound name");
    let script = "const done = arguments[arguments.length - 1];
        const post = {method: 'POST', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({kind: 'noop', goal: 'rebound'})};
        Promise.all([fetch('/v1/jobs'), fetch('/v1/jobs', post), fetch('/')])
            .then(rs => done(rs.map(r => r.status)), e => done(String(e)));";
    let statuses = client.execute_async(script, vec![]).await;
    let statuses = statuses.expect("the rebound page's requests");
    assert_eq!(
        statuses,
        json!([403, 403, 403]),
        "reads and writes through a rebound name"
    );

    // 4. Nothing changed: one job, still queued; the queue still paused.
    let list = http
        .get(format!("{api}/v1/jobs"))
        .send()
        .await
        .expect("list");
    let list: Value = list.json().await.expect("list JSON");
    let jobs = list["jobs"].as_array().expect("jobs");
    let goals: Vec<&Value> = jobs.iter().map(|j| &j["goal"]).collect();
    assert_eq!(goals, [&json!("victim")], "jobs after the attacks");
    assert_eq!(jobs[0]["status"], "queued");
    let queues = http
        .get(format!("{api}/v1/queues"))
        .send()
        .await
        .expect("queues");
    let queues: Value = queues.json().await.expect("queues JSON");
    let held = queues["queues"]
        .as_array()
        .and_then(|q| q.iter().find(|q| q["name"] == "held"));
    assert_eq!(held.expect("queue held")["paused"], true);

    // 5. The dashboard under its CSP: it runs, drops ?token= from the address bar, and an
    // injected inline script does not run.
    client
        .goto(&format!("{api}/?token=t0ken-for-this-tab"))
        .await
        .expect("open the dashboard");
    let row = format!(r#"tr.job-row[data-job-id="{victim}"]"#);
    wait_for(
        &client,
        "the victim's row on the dashboard",
        &row,
        async || client.find(Locator::Css(&row)).await.ok().map(|_| ()),
    )
    .await;
    let url = client.current_url().await.expect("the page's URL");
    assert_eq!(
        url.query(),
        None,
        "the token stays in the address bar: {url}"
    );
    let kept = "return sessionStorage.getItem('drover.token');";
    let kept = client.execute(kept, vec![]).await.expect("sessionStorage");
    assert_eq!(kept, json!("t0ken-for-this-tab"));
    let injected = "const s = document.createElement('script');
        s.textContent = 'window.injected = true;';
        document.body.appendChild(s);
        return window.injected === true;";
    let ran = client
        .execute(injected, vec![])
        .await
        .expect("inject a script");
    assert_eq!(
        ran,
        Value::Bool(false),
        "an inline script outside the CSP ran"
    );

    client.close().await.expect("close the browser session");
}

/// A `drover serve` on a SQLite file in `tmp` with the test kinds, and a ChromeDriver, both
/// answering: (app, driver, the app's base URL, the driver's URL).
async fn serve_with_driver(
    tmp: &Path,
    http: &reqwest::Client,
    slots: &str,
) -> (Proc, Proc, String, String) {
    let (app_port, driver_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{app_port}");
    let store = format!("sqlite://{}", tmp.join("d.db").display());
    let bind = format!("127.0.0.1:{app_port}");
    let mut app = Proc::spawn(
        "drover serve",
        Command::new(env!("CARGO_BIN_EXE_drover"))
            .args([
                "serve", "--store", &store, "--bind", &bind, "--slots", slots,
            ])
            .arg("--enable-test-kinds")
            .env("DROVER_LOG", "warn")
            .env("DROVER_WORKERS__POLL_INTERVAL", "100ms"),
    );
    let driver_url = format!("http://127.0.0.1:{driver_port}");
    let mut driver = Proc::spawn(
        "chromedriver",
        Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null()),
    );
    app.wait_ready(http, &format!("{base}/healthz")).await;
    driver
        .wait_ready(http, &format!("{driver_url}/status"))
        .await;
    (app, driver, base, driver_url)
}

async fn get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    http.get(url).send().await.ok()?.json().await.ok()
}

async fn post_json(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    let res = http.post(url).json(body).send().await;
    let res = res.unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = res.status().as_u16();
    let body: Value = res
        .json()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    assert!(status < 300, "POST {url} answered {status}: {body}");
    body
}

async fn click(client: &Client, selector: &str, what: &str, dump_of: &str) {
    wait_for(client, what, dump_of, async || {
        let el = client.find(Locator::Css(selector)).await.ok()?;
        el.click().await.ok()
    })
    .await;
}

/// The "needs you" inbox and the schedules view, in real Chromium: a demo job that opens a
/// gate shows in the inbox with its prompt and decision buttons and in its row as waiting;
/// a click on `approve` decides the gate (the API shows who won: the decision, the note) and
/// the job completes. A schedule shows its next run in its own zone, and is paused, resumed
/// and triggered from its row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_decides_gates_and_the_schedules_view_controls_schedules() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5));
    let http = http.build().expect("reqwest client");
    let (_app, _driver, base, driver_url) = serve_with_driver(tmp.path(), &http, "2").await;

    // 1. A demo job that waits on `approve-2`, and a nightly schedule in Asia/Kolkata.
    let config = json!({"items": 4, "item_ms": 20, "gate_at": 2});
    let body = json!({"kind": "demo", "goal": "needs a decision", "config": config});
    let job = post_json(&http, &format!("{base}/v1/jobs"), &body).await;
    let id = job["id"].as_str().expect("a job id").to_string();
    let schedule = json!({"id": "nightly-demo", "cron": "0 20 * * *", "timezone": "Asia/Kolkata",
        "job": {"kind": "noop", "goal": "nightly"}});
    post_json(&http, &format!("{base}/v1/schedules"), &schedule).await;

    let client = chromium(&driver_url, &tmp.path().join("chromium"), &[]).await;
    client
        .set_window_size(1400, 900)
        .await
        .expect("window size");
    client
        .goto(&format!("{base}/"))
        .await
        .expect("open the dashboard");

    // 2. The gate in the inbox, with its prompt; the job's row waiting with the gate named.
    let card = format!(r#"#inbox .gate[data-job-id="{id}"][data-key="approve-2"]"#);
    let prompt = format!("{card} .gprompt");
    let text = wait_for(
        &client,
        "the gate's card in the inbox",
        "#inbox",
        async || {
            client
                .find(Locator::Css(&prompt))
                .await
                .ok()?
                .text()
                .await
                .ok()
        },
    )
    .await;
    assert_eq!(text, "Continue the demo after item 2?");
    let row = format!(r#"tr.job-row[data-job-id="{id}"]"#);
    let flag = format!("{row} .gateflag");
    wait_for(
        &client,
        "the row waiting, naming its gate",
        &row,
        async || {
            let status = attr_of(&client, &row, "data-status").await?;
            let flag = client
                .find(Locator::Css(&flag))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            (status == "waiting" && flag.contains("approve-2")).then_some(())
        },
    )
    .await;
    // The row's id is the random tail, not the timestamp prefix every new job shares.
    let cell = client.find(Locator::Css(&format!("{row} td.id"))).await;
    let shown = cell.expect("id cell").text().await.expect("id text");
    assert_eq!(
        shown,
        id[id.len() - 8..],
        "the id column shows the id's tail"
    );

    // A screenshot of the inbox, for people (`target/dashboard-inbox.png`).
    let png = client.screenshot().await.expect("take a screenshot");
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from);
    let target = target.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    write_png(&target.join("dashboard-inbox.png"), &png);

    // 3. A note, then `approve`: the gate is decided with both, the card goes, the job ends.
    let note = format!("{card} input.gnote");
    let input = client
        .find(Locator::Css(&note))
        .await
        .expect("the note input");
    input.send_keys("looks fine").await.expect("type a note");
    let approve = format!(r#"{card} button.decide[data-decision="approve"]"#);
    click(&client, &approve, "the approve button", &card).await;
    let gates_url = format!("{base}/v1/jobs/{id}/gates");
    wait_for(
        &client,
        "the gate decided through the API",
        &card,
        async || {
            let gates = get_json(&http, &gates_url).await?;
            let gate = &gates["gates"][0];
            (gate["status"] == "decided").then_some(())?;
            assert_eq!(gate["decision"], "approve");
            assert_eq!(gate["note"], "looks fine");
            Some(())
        },
    )
    .await;
    let job_url = format!("{base}/v1/jobs/{id}");
    wait_for(
        &client,
        "the job completed and its card gone",
        "#inbox",
        async || {
            let job = get_json(&http, &job_url).await?;
            (job["status"] == "completed").then_some(())?;
            let left = client.find_all(Locator::Css(&card)).await.ok()?;
            left.is_empty().then_some(())
        },
    )
    .await;

    // 4. The schedules view: the next run in the schedule's zone, then pause, resume, trigger.
    click(
        &client,
        "#sched > summary",
        "the schedules view's summary",
        "#sched",
    )
    .await;
    let srow = r#"tr.sched-row[data-schedule-id="nightly-demo"]"#;
    let next = format!("{srow} .next-zone");
    let shown = wait_for(&client, "the schedule's next run", "#sched", async || {
        client
            .find(Locator::Css(&next))
            .await
            .ok()?
            .text()
            .await
            .ok()
    })
    .await;
    assert!(
        shown.ends_with("Asia/Kolkata"),
        "next run shown in its zone: {shown}"
    );
    assert!(shown.contains("20:00"), "the 20:00 tick: {shown}");
    let schedule_url = format!("{base}/v1/schedules/nightly-demo");
    for (act, paused) in [("pause", true), ("resume", false)] {
        let button = format!(r#"{srow} button[data-act="{act}"]"#);
        click(&client, &button, &format!("the {act} button"), "#sched").await;
        let what = format!("paused={paused} in the API and the row");
        wait_for(&client, &what, "#sched", async || {
            let s = get_json(&http, &schedule_url).await?;
            (s["paused"] == paused).then_some(())?;
            let shown = attr_of(&client, srow, "data-paused").await?;
            (shown == paused.to_string()).then_some(())
        })
        .await;
    }
    let trigger = format!(r#"{srow} button[data-act="trigger"]"#);
    click(&client, &trigger, "the trigger button", "#sched").await;
    let lastrun = format!("{srow} .lastrun");
    let run_job = wait_for(
        &client,
        "the triggered run in the row",
        "#sched",
        async || attr_of(&client, &lastrun, "data-job-id").await,
    )
    .await;
    let s = get_json(&http, &schedule_url).await.expect("the schedule");
    assert_eq!(s["last_runs"][0]["job_id"], run_job.as_str(), "{s}");
    assert_eq!(s["runs"], 1, "one run, the triggered one: {s}");

    client.close().await.expect("close the browser session");
}
