//! Shared by the process-level tests: isolated stores, `drover` child processes, waiting.

#![allow(dead_code)]

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use drover_queue::{JobId, JobStatus, PgStore, Store, StoreOptions};

/// The shared PostgreSQL server (`DROVER_TEST_PG` overrides).
pub fn pg_url() -> String {
    std::env::var("DROVER_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A fresh schema on `server` (a `postgres://` URL), as a store URL.
pub fn pg_schema_url(server: &str) -> String {
    format!("{server}?schema=t_{}", uuid::Uuid::now_v7().simple())
}

pub async fn open(url: &str) -> Arc<dyn Store> {
    let store = drover_queue::connect(url, StoreOptions::default())
        .await
        .expect("open store");
    store.migrate().await.expect("migrate");
    store
}

/// Drops a test schema.
pub async fn drop_schema(url: &str) {
    let Some((server, schema)) = url.split_once("?schema=") else {
        return;
    };
    if let Ok(store) = PgStore::connect(server, StoreOptions::default()).await {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(store.pool())
            .await;
    }
}

/// A `drover worker` child process; killed when dropped.
pub struct WorkerProcess {
    pub id: String,
    child: Child,
}

/// Starts `drover worker` on `store_url` with short leases so tests see crashes quickly.
pub fn spawn_worker(store_url: &str, id: &str, slots: u32, log_dir: &std::path::Path) -> WorkerProcess {
    let log = std::fs::File::create(log_dir.join(format!("{id}.log"))).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["worker", "--store", store_url, "--worker-id", id])
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

/// Polls `check` every 50 ms until it returns `Some`, or panics after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
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
