//! Shared by the process-level tests: isolated stores, `drover` child processes, waiting.

#![allow(dead_code, unused_imports)]

pub mod pg_server;
pub mod redis_server;

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use drover_queue::{JobId, JobStatus, NewJob, Store, StoreOptions};

pub use drover_queue::testing::{eventually, pg_schema_url, pg_url};

pub async fn open(url: &str) -> Arc<dyn Store> {
    let store = drover_queue::connect(url, StoreOptions::default())
        .await
        .expect("open store");
    store.migrate().await.expect("migrate");
    store
}

/// Drops the schema of a store URL made by `pg_schema_url`.
pub async fn drop_schema(url: &str) {
    if let Some((server, schema)) = url.split_once("?schema=") {
        drover_queue::testing::drop_schema(server, schema).await;
    }
}

/// A `drover worker` child process; killed when dropped.
pub struct WorkerProcess {
    pub id: String,
    child: Child,
}

/// Starts `drover worker` on `store_url` with short leases so tests see crashes quickly.
pub fn spawn_worker(
    store_url: &str,
    id: &str,
    slots: u32,
    log_dir: &std::path::Path,
) -> WorkerProcess {
    let child = worker_command(store_url, id, slots, log_dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn drover worker");
    WorkerProcess {
        id: id.to_string(),
        child,
    }
}

/// Starts `drover worker` as [`spawn_worker`] does, with `env` on top, serving its health
/// and metrics endpoints on a port of its choosing; returns it with their base URL
/// (`http://127.0.0.1:<port>`), read from the line the worker prints when it listens.
pub fn spawn_serving_worker(
    store_url: &str,
    id: &str,
    slots: u32,
    log_dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (WorkerProcess, String) {
    use std::io::BufRead as _;

    let mut command = worker_command(store_url, id, slots, log_dir);
    command
        .args(["--bind", "127.0.0.1:0"])
        .envs(env.iter().copied());
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn drover worker");
    let stdout = child.stdout.take().expect("piped stdout");
    let (found, address) = std::sync::mpsc::channel();
    // Reads until the process closes its stdout, so it never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let url = line
                .strip_prefix("drover worker endpoints on ")
                .and_then(|rest| rest.split_whitespace().next());
            if let (Some(url), Some(tx)) = (url, found.take()) {
                let _ = tx.send(url.to_string());
            }
        }
    });
    let process = WorkerProcess {
        id: id.to_string(),
        child,
    };
    let url = address
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("worker {id} did not say where it listens; see its log"));
    (process, url)
}

/// The `drover worker` command [`spawn_worker`] runs (short leases, stderr to
/// `log_dir/<id>.log`), for callers that adjust it before [`WorkerProcess::spawn`].
pub fn worker_command(store_url: &str, id: &str, slots: u32, log_dir: &std::path::Path) -> Command {
    let log = std::fs::File::create(log_dir.join(format!("{id}.log"))).expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_drover"));
    command
        .args(["worker", "--store", store_url, "--worker-id", id])
        .arg("--enable-test-kinds")
        .args(["--slots", &slots.to_string()])
        .env("DROVER_WORKERS__LEASE_TTL", "2s")
        .env("DROVER_WORKERS__HEARTBEAT_INTERVAL", "300ms")
        .env("DROVER_WORKERS__POLL_INTERVAL", "250ms")
        .env("DROVER_WORKERS__GRACEFUL_SHUTDOWN", "10s")
        .env("DROVER_QUEUE__RETRY_DELAY", "100ms")
        .env("DROVER_LOG", "info,sqlx=warn")
        .stdin(Stdio::null())
        .stderr(log);
    command
}

impl WorkerProcess {
    /// Spawns `command` (one made by [`worker_command`]) as worker `id`, stdout discarded.
    pub fn spawn(id: &str, mut command: Command) -> WorkerProcess {
        let child = command
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn drover worker {id}: {e}"));
        WorkerProcess {
            id: id.to_string(),
            child,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// SIGKILL, and reap the process.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// True while the process has not exited.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit, up to `within`.
    pub async fn exited(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}

/// How many times the store recorded each status for `job`.
/// Enqueues `jobs` in one batch; their ids, in order.
pub async fn enqueue_all(store: &dyn Store, jobs: Vec<NewJob>) -> Vec<JobId> {
    store
        .enqueue_batch(jobs)
        .await
        .expect("enqueue")
        .iter()
        .map(|e| e.job().id)
        .collect()
}

pub async fn status_count(store: &dyn Store, job: JobId, status: JobStatus) -> usize {
    store
        .events(job, 0, 10_000)
        .await
        .expect("events")
        .iter()
        .filter(|e| e.kind == "status" && e.data["status"] == status.as_str())
        .count()
}

/// Asserts every job completed, and that the store recorded exactly one completion each.
pub async fn assert_each_completed_once(store: &dyn Store, jobs: &[JobId]) {
    for id in jobs {
        let job = store.get(*id).await.expect("get");
        assert_eq!(job.status, JobStatus::Completed, "job {id}: {job:?}");
        assert_eq!(
            status_count(store, *id, JobStatus::Completed).await,
            1,
            "job {id} must complete exactly once"
        );
    }
}

/// True when every job is in a terminal status.
pub async fn all_finished(store: &dyn Store, jobs: &[JobId]) -> bool {
    for id in jobs {
        match store.get(*id).await {
            Ok(job) if job.status.is_terminal() => {}
            _ => return false,
        }
    }
    true
}
