//! The browser pool: WebDriver sessions on headless Chromium for tier-1 applications
//! (SPEC §7.3), sized on their own (`browser.max_sessions`, default 2 per worker process):
//! Chromium is what costs memory, not the job, so a worker with 8 slots still runs at most
//! two browsers and the other applications wait for a session.
//!
//! - The WebDriver is an external one (`browser.webdriver_url`) or a chromedriver this
//!   process spawns on a free port of 127.0.0.1 at first use (`browser.chromedriver`), and
//!   kills when the pool is dropped.
//! - Each session slot keeps its Chromium between applications and opens a new tab for each
//!   one, closing it after. A Chromium is reused only for the same user: cookies belong to
//!   the browser profile, and WebDriver deletes them only for the current page's domain, so
//!   a session that served another user is closed and a fresh one started instead.
//! - chromedriver speaks plain HTTP on localhost, so the WebDriver client is built on a
//!   plain connector: fantoccini's TLS features (which bring a second TLS stack, aws-lc) are
//!   off.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::wd::WindowHandle;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Chromium's flags: headless, no sandbox (root in containers), nothing phoning home.
const CHROMIUM_ARGS: [&str; 8] = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
];

/// The `browser` configuration.
#[derive(Debug, Clone)]
pub struct BrowserSettings {
    /// An external WebDriver (`http://host:port`); when set, no chromedriver is spawned.
    pub webdriver_url: Option<String>,
    /// The chromedriver to spawn when there is no `webdriver_url`.
    pub chromedriver: PathBuf,
    /// The Chromium binary; `None` leaves it to chromedriver.
    pub chromium: Option<PathBuf>,
    pub headless: bool,
    /// Browser sessions this process runs at once.
    pub max_sessions: usize,
    /// How long a spawned chromedriver may take to answer `/status`.
    pub start_timeout: Duration,
}

impl Default for BrowserSettings {
    fn default() -> Self {
        BrowserSettings {
            webdriver_url: None,
            chromedriver: PathBuf::from("chromedriver"),
            chromium: None,
            headless: true,
            max_sessions: 2,
            start_timeout: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BrowserError {
    #[error("browser.chromedriver: cannot start `{path}`: {message}")]
    Spawn { path: String, message: String },
    #[error("browser: the WebDriver at {url} did not answer /status within {waited:?}")]
    NotReady { url: String, waited: Duration },
    #[error("browser: cannot open a Chromium session: {0}")]
    Session(String),
    #[error("browser: {0}")]
    Command(String),
}

impl From<fantoccini::error::CmdError> for BrowserError {
    fn from(e: fantoccini::error::CmdError) -> Self {
        BrowserError::Command(e.to_string())
    }
}

/// A pool of browser sessions, shared by every job of the process.
#[derive(Clone)]
pub struct Browsers {
    inner: Arc<Inner>,
}

struct Inner {
    settings: BrowserSettings,
    slots: Arc<Semaphore>,
    /// The WebDriver's URL once known (and the chromedriver child when spawned).
    driver: tokio::sync::Mutex<Option<Driver>>,
    /// Sessions not in use, with the user they last served.
    idle: Mutex<Vec<(String, Client)>>,
}

struct Driver {
    url: String,
    child: Option<Child>,
}

impl Drop for Driver {
    /// Kills the spawned chromedriver and the Chromiums it started: they share its process
    /// group (chromedriver killed alone leaves its browsers running).
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: kill(2) with a negative pid signals that process group; no memory
                // is touched.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = child.wait();
        }
    }
}

impl Browsers {
    pub fn new(settings: BrowserSettings) -> Browsers {
        let slots = Arc::new(Semaphore::new(settings.max_sessions.max(1)));
        Browsers {
            inner: Arc::new(Inner {
                settings,
                slots,
                driver: tokio::sync::Mutex::new(None),
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn settings(&self) -> &BrowserSettings {
        &self.inner.settings
    }

    /// Sessions free right now.
    pub fn available(&self) -> usize {
        self.inner.slots.available_permits()
    }

    /// A session for `user` in a new tab, waiting for a free slot.
    pub async fn session(&self, user: &str) -> Result<Session, BrowserError> {
        let permit = self
            .inner
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| BrowserError::Session("the browser pool is closed".into()))?;
        let client = match self.idle_for(user).await {
            Some(client) => client,
            None => self.connect().await?,
        };
        let home = client.window().await?;
        // A window rather than a background tab: headless Chromium throttles a tab it does not
        // show, and a click there can be lost.
        let tab = client.new_window(false).await?;
        client.switch_to_window(tab.handle.clone()).await?;
        Ok(Session {
            client: Some(client),
            home: Some(home),
            user: user.to_string(),
            pool: self.inner.clone(),
            _permit: permit,
        })
    }

    /// An idle session that served `user` and still answers. Idle sessions of other users
    /// are closed as far as needed to keep this process at `max_sessions` Chromiums, the
    /// one about to start included.
    async fn idle_for(&self, user: &str) -> Option<Client> {
        let mut idle: Vec<(String, Client)> = {
            let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *idle)
        };
        let mut found = None;
        if let Some(at) = idle.iter().position(|(owner, _)| owner == user) {
            let (_, client) = idle.remove(at);
            if client.windows().await.is_ok() {
                found = Some(client);
            } else {
                let _ = client.close().await;
            }
        }
        // Sessions in use, this one included (its permit is held).
        let max = self.inner.settings.max_sessions.max(1);
        let in_use = max - self.inner.slots.available_permits();
        while in_use + idle.len() > max {
            if let Some((_, client)) = idle.pop() {
                let _ = client.close().await;
            }
        }
        let mut back = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        back.extend(idle);
        found
    }

    async fn connect(&self) -> Result<Client, BrowserError> {
        let url = self.driver_url().await?;
        let settings = &self.inner.settings;
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        // Marks the Chromium as this process's, so that a successor can end it if this
        // process is killed (see `reap_orphans`).
        args.push(format!("{OWNER_SWITCH}{}", std::process::id()));
        if settings.headless {
            args.push("--headless=new".into());
        }
        let mut options = json!({ "args": args });
        if let Some(binary) = &settings.chromium {
            options["binary"] = Value::String(binary.display().to_string());
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .map_err(|e| BrowserError::Session(e.to_string()))
    }

    /// The WebDriver's URL, spawning chromedriver the first time when there is no external
    /// one.
    async fn driver_url(&self) -> Result<String, BrowserError> {
        let mut driver = self.inner.driver.lock().await;
        if let Some(d) = driver.as_mut() {
            let exited = match &mut d.child {
                Some(child) => !matches!(child.try_wait(), Ok(None)),
                None => false,
            };
            if !exited {
                return Ok(d.url.clone());
            }
            tracing::warn!("chromedriver exited; starting another");
        }
        let settings = &self.inner.settings;
        let fresh = match &settings.webdriver_url {
            Some(url) => Driver {
                url: url.trim_end_matches('/').to_string(),
                child: None,
            },
            None => {
                reap_orphans();
                spawn_chromedriver(settings)?
            }
        };
        wait_ready(&fresh.url, settings.start_timeout).await?;
        let url = fresh.url.clone();
        *driver = Some(fresh);
        Ok(url)
    }
}

/// The switch that names the drover process a Chromium belongs to (Chromium ignores
/// switches it does not know).
const OWNER_SWITCH: &str = "--drover-owner-pid=";

/// Ends the Chromiums of drover processes that are gone. A worker killed with SIGKILL
/// takes its chromedriver with it (PR_SET_PDEATHSIG) but not the browsers chromedriver
/// started, which would live on holding memory; the next pool on the machine ends them.
pub fn reap_orphans() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut reaped = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let owner = cmdline
            .split(|b| *b == 0)
            .filter_map(|arg| std::str::from_utf8(arg).ok())
            .find_map(|arg| arg.strip_prefix(OWNER_SWITCH))
            .and_then(|owner| owner.parse::<u32>().ok());
        let Some(owner) = owner else { continue };
        if owner != std::process::id() && !Path::new(&format!("/proc/{owner}")).exists() {
            // SAFETY: kill(2) on a pid; no memory is touched.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            reaped += 1;
        }
    }
    if reaped > 0 {
        tracing::info!(
            reaped,
            "ended Chromiums left by a drover process that is gone"
        );
    }
    reaped
}

fn spawn_chromedriver(settings: &BrowserSettings) -> Result<Driver, BrowserError> {
    let spawn_error = |message: String| BrowserError::Spawn {
        path: settings.chromedriver.display().to_string(),
        message,
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| spawn_error(format!("no free port: {e}")))?
        .port();
    let mut command = Command::new(&settings.chromedriver);
    // Its own process group, so that dropping the pool ends its Chromiums with it; and it
    // dies with this process (a SIGKILLed worker must not leave a chromedriver behind).
    command.process_group(0);
    // SAFETY: the closure runs in the child between fork and exec and calls only prctl(2),
    // which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = command
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| spawn_error(e.to_string()))?;
    Ok(Driver {
        url: format!("http://127.0.0.1:{port}"),
        child: Some(child),
    })
}

/// Polls the WebDriver's `/status` until it says it is ready.
async fn wait_ready(url: &str, within: Duration) -> Result<(), BrowserError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| BrowserError::Session(e.to_string()))?;
    let started = Instant::now();
    loop {
        if let Ok(reply) = http.get(format!("{url}/status")).send().await {
            if let Ok(status) = reply.json::<Value>().await {
                if status["value"]["ready"].as_bool().unwrap_or(false) {
                    return Ok(());
                }
            }
        }
        if started.elapsed() > within {
            return Err(BrowserError::NotReady {
                url: url.to_string(),
                waited: within,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One application's browser: a new tab of a pooled Chromium. [`Session::done`] closes the
/// tab and hands the Chromium back; [`Session::discard`] (or dropping it) ends the Chromium.
pub struct Session {
    client: Option<Client>,
    home: Option<WindowHandle>,
    user: String,
    pool: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl Session {
    pub fn client(&self) -> &Client {
        // Only `done` and `discard`, which consume the session, take it out.
        self.client
            .as_ref()
            .expect("a session holds its client until it ends")
    }

    /// Closes this application's tab and returns the Chromium to the pool; a Chromium that
    /// does not answer is ended instead.
    pub async fn done(mut self) {
        let (Some(client), Some(home)) = (self.client.take(), self.home.take()) else {
            return;
        };
        let back = async {
            client.close_window().await?;
            client.switch_to_window(home).await
        };
        match back.await {
            Ok(()) => {
                let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.push((std::mem::take(&mut self.user), client));
            }
            Err(_) => {
                let _ = client.close().await;
            }
        }
    }

    /// Ends the Chromium (after a failure that may have left it in a bad state).
    pub async fn discard(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}
