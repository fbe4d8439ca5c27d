//! Shared by the process-level tests: isolated stores, `drover` child processes, waiting.

#![allow(dead_code, unused_imports)]

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use drover_queue::{JobId, JobStatus, Store, StoreOptions};

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
    let log = std::fs::File::create(log_dir.join(format!("{id}.log"))).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_drover"))
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
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn drover worker");
    WorkerProcess {
        id: id.to_string(),
        child,
    }
}

impl WorkerProcess {
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
