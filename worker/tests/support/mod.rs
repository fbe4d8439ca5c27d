//! Shared by the worker tests: a store on a private backend with a worker pool on it.

#![allow(dead_code)]

pub mod effect_server;

use std::sync::Arc;
use std::time::Duration;

use drover_queue::testing::{eventually, Backend};
use drover_queue::{Job, JobId, JobStatus, NewJob, Store};
use drover_worker::{Registry, WorkerHandle, WorkerOptions};

/// Fast timings so tests see leases, retries and cancels quickly.
pub fn options(slots: usize) -> WorkerOptions {
    WorkerOptions {
        slots,
        lease_ttl: Duration::from_secs(5),
        heartbeat_interval: Duration::from_millis(100),
        poll_interval: Duration::from_millis(100),
        graceful_shutdown: Duration::from_secs(5),
        cancel_grace: Duration::from_millis(200),
        retry_delay: Duration::from_millis(50),
        max_retry_delay: Duration::from_millis(200),
        ..WorkerOptions::default()
    }
}

pub struct Setup {
    pub backend: Backend,
    pub store: Arc<dyn Store>,
    pub worker: WorkerHandle,
}

pub async fn setup(backend: Backend, registry: Registry, options: WorkerOptions) -> Setup {
    let store = backend.open().await;
    let worker = drover_worker::start(store.clone(), registry, options);
    Setup {
        backend,
        store,
        worker,
    }
}

impl Setup {
    pub async fn submit(&self, job: NewJob) -> JobId {
        self.store.enqueue(job).await.expect("enqueue").job().id
    }

    /// Enqueues `jobs` in one batch; their ids, in order.
    pub async fn submit_all(&self, jobs: Vec<NewJob>) -> Vec<JobId> {
        self.store
            .enqueue_batch(jobs)
            .await
            .expect("batch")
            .iter()
            .map(|e| e.job().id)
            .collect()
    }

    pub async fn until(&self, id: JobId, what: &str, done: impl Fn(&Job) -> bool) -> Job {
        eventually(Duration::from_secs(30), what, || async {
            let job = self.store.get(id).await.expect("get");
            done(&job).then_some(job)
        })
        .await
    }

    pub async fn finished(&self, id: JobId) -> Job {
        self.until(id, "the job to finish", |j| j.status.is_terminal())
            .await
    }

    pub async fn status_events(&self, id: JobId) -> Vec<String> {
        self.store
            .events(id, 0, 10_000)
            .await
            .expect("events")
            .into_iter()
            .filter(|e| e.kind == "status")
            .map(|e| e.data["status"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    pub async fn stop(self) {
        self.worker.shutdown();
        self.worker.wait().await;
        self.backend.cleanup().await;
    }
}

/// `job.status == status`, for `until`.
pub fn is(status: JobStatus) -> impl Fn(&Job) -> bool {
    move |job| job.status == status
}
