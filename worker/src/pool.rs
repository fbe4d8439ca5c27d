//! The worker pool: claims as many jobs as it has free slots (plus `prefetch` leased jobs
//! waiting for a slot, when asked; nothing ever waits locally unleased), runs each on its
//! own task, records successes in batches through the completer, and shuts down gracefully.
//!
//! It wakes to claim when the notifier says jobs arrived, when a slot frees, when the next
//! scheduled `run_at` comes due, and on a poll interval as the fallback. A store outage is
//! retried with backoff; it never stops the pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use drover_queue::{ClaimRequest, Lease, Release, Retention, Signal, Store, WorkerInfo};
use tokio::sync::{broadcast, watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::completer::Completer;
use crate::context::{Control, Interrupt, RunSettings};
use crate::heartbeat::{Heartbeat, Running, RunningJobs};
use crate::kind::Registry;
use crate::maintenance::{self, gates::GateKeeper, pruner::Pruner, reaper::Reaper};
use crate::retry::store_call;
use crate::runner::{self, Outcome, RunnerEnv};

/// How a worker pool behaves.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Unique per process; shows up as the lease owner.
    pub worker_id: String,
    /// Jobs run at once.
    pub slots: usize,
    /// Leased jobs a worker may hold waiting for a free slot, so that one claim takes a
    /// batch. Raises the throughput of short jobs; in a fleet it keeps those jobs from idle
    /// workers meanwhile, so it is 0 (claim only for free slots) unless asked for.
    pub prefetch: usize,
    /// Stop claiming (and exit once idle) after this many jobs.
    pub max_jobs: Option<u64>,
    pub lease_ttl: Duration,
    pub heartbeat_interval: Duration,
    pub poll_interval: Duration,
    /// How long running jobs get to reach a safe point on shutdown.
    pub graceful_shutdown: Duration,
    /// How long a running job gets to honour a cancel before its future is dropped.
    pub cancel_grace: Duration,
    /// Base and cap of the retry backoff.
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    /// Default job timeout for jobs that set none.
    pub job_timeout: Option<Duration>,
    /// Only these queues (empty: all).
    pub queues: Vec<String>,
    /// Run the lease reaper when this worker holds the leadership.
    pub reaper: bool,
    /// Evaluate due schedules when this worker holds their leadership.
    pub schedules: bool,
    /// Delete finished jobs past their retention (when this worker holds the leadership);
    /// `None` keeps everything.
    pub retention: Option<Retention>,
    /// How often the pruner looks for jobs past their retention.
    pub prune_interval: Duration,
    pub run: RunSettings,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            worker_id: default_worker_id(),
            slots: 8,
            prefetch: 0,
            max_jobs: None,
            lease_ttl: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            graceful_shutdown: Duration::from_secs(30),
            cancel_grace: Duration::from_secs(10),
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(300),
            job_timeout: None,
            queues: Vec::new(),
            reaper: true,
            schedules: true,
            retention: Some(Retention::default()),
            prune_interval: Duration::from_secs(60),
            run: RunSettings::default(),
        }
    }
}

/// `host-pid-random`: unique per process, readable in `drover jobs show`.
pub fn default_worker_id() -> String {
    format!(
        "{}-{}-{:04x}",
        hostname(),
        std::process::id(),
        fastrand::u16(..)
    )
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
    // or truncates, and we stop at the first NUL either way.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The most successes one store call records.
const COMPLETION_BATCH: usize = 1_000;

/// A running pool. Dropping the handle does not stop it; call [`WorkerHandle::shutdown`].
pub struct WorkerHandle {
    shutdown: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
    worker_id: String,
}

impl WorkerHandle {
    /// Stop claiming, ask running jobs to stop at a safe point, hand their leases back,
    /// and finish within `graceful_shutdown`.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// A handle that can ask for the shutdown from elsewhere (a signal handler, say).
    pub fn stopper(&self) -> Stopper {
        Stopper(self.shutdown.clone())
    }

    /// Waits until the pool has stopped (after `shutdown`, or after `max_jobs`).
    pub async fn wait(self) {
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "worker pool task failed");
        }
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }
}

/// Asks a pool to shut down gracefully; see [`WorkerHandle::shutdown`].
#[derive(Clone)]
pub struct Stopper(Arc<watch::Sender<bool>>);

impl Stopper {
    pub fn shutdown(&self) {
        let _ = self.0.send(true);
    }
}

/// Starts a pool on the current tokio runtime.
pub fn start(store: Arc<dyn Store>, registry: Registry, options: WorkerOptions) -> WorkerHandle {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let worker_id = options.worker_id.clone();
    let pool = Pool {
        env: Arc::new(RunnerEnv {
            store: store.clone(),
            registry,
            worker_id: worker_id.clone(),
            settings: Arc::new(options.run.clone()),
            job_timeout: options.job_timeout,
            cancel_grace: options.cancel_grace,
            retry_delay: options.retry_delay,
            max_retry_delay: options.max_retry_delay,
            completer: Completer::start(store.clone(), COMPLETION_BATCH),
        }),
        store,
        options,
        running: Arc::new(Mutex::new(HashMap::new())),
        slots: Arc::new(Semaphore::new(0)),
        capacity: Arc::new(Semaphore::new(0)),
        slot_freed: Arc::new(Notify::new()),
    };
    let task = tokio::spawn(pool.run(shutdown_rx));
    WorkerHandle {
        shutdown: Arc::new(shutdown),
        task,
        worker_id,
    }
}

struct Pool {
    env: Arc<RunnerEnv>,
    store: Arc<dyn Store>,
    options: WorkerOptions,
    running: RunningJobs,
    /// Permits to run: `slots`.
    slots: Arc<Semaphore>,
    /// Permits to hold a lease until the job's code has run: `slots + prefetch`.
    capacity: Arc<Semaphore>,
    slot_freed: Arc<Notify>,
}

impl Pool {
    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let options = &self.options;
        self.slots.add_permits(options.slots.max(1));
        self.capacity
            .add_permits(options.slots.max(1).saturating_add(options.prefetch));
        let poke = Arc::new(Notify::new());
        let started_at = Utc::now();
        let heartbeat = Heartbeat {
            store: self.store.clone(),
            running: self.running.clone(),
            info: WorkerInfo {
                id: options.worker_id.clone(),
                host: hostname(),
                pid: std::process::id(),
                slots: options.slots as u32,
                busy: 0,
                started_at,
                last_heartbeat: started_at,
            },
            interval: options.heartbeat_interval,
            lease_ttl: options.lease_ttl,
            poke: poke.clone(),
        };
        // The heartbeat outlives `shutdown`: draining jobs still need their leases renewed.
        let (stop_background, background_stop) = watch::channel(false);
        let mut background = JoinSet::new();
        background.spawn(heartbeat.run(background_stop.clone()));
        if options.reaper {
            let reaper = Reaper {
                interval: (options.lease_ttl / 4)
                    .clamp(Duration::from_millis(100), Duration::from_secs(5)),
            };
            background.spawn(maintenance::run(
                reaper,
                self.store.clone(),
                options.worker_id.clone(),
                background_stop.clone(),
            ));
            background.spawn(maintenance::run(
                GateKeeper,
                self.store.clone(),
                options.worker_id.clone(),
                background_stop.clone(),
            ));
        }
        if options.schedules {
            background.spawn(maintenance::run(
                maintenance::schedules::Evaluator,
                self.store.clone(),
                options.worker_id.clone(),
                background_stop.clone(),
            ));
        }
        if let Some(retention) = options.retention {
            let pruner = Pruner {
                interval: options.prune_interval,
                retention,
            };
            background.spawn(maintenance::run(
                pruner,
                self.store.clone(),
                options.worker_id.clone(),
                background_stop,
            ));
        }
        tracing::info!(worker_id = %options.worker_id, slots = options.slots,
            backend = self.store.backend(), "worker started");

        let refill_at = (options.prefetch / 2).max(1);
        let mut signals = self.store.notifier().subscribe();
        let mut jobs = JoinSet::new();
        let mut claimed: u64 = 0;
        let mut outage = Duration::from_millis(50);
        loop {
            while jobs.try_join_next().is_some() {}
            if *shutdown.borrow() {
                break;
            }
            let budget = options.max_jobs.map(|max| max.saturating_sub(claimed));
            if budget == Some(0) {
                if jobs.is_empty() {
                    tracing::info!(claimed, "max_jobs_per_worker reached; stopping");
                    break;
                }
                tokio::select! {
                    _ = jobs.join_next() => {}
                    _ = shutdown.wait_for(|stop| *stop) => {}
                }
                continue;
            }
            // Let jobs that are ready to finish do so first: one claim then feeds every
            // slot freed meanwhile instead of one commit per freed slot.
            tokio::task::yield_now().await;
            let free = self
                .capacity
                .available_permits()
                .min(budget.unwrap_or(u64::MAX).min(usize::MAX as u64) as usize);
            // Claim when a slot is idle (feed it now), else refill the prefetched jobs in
            // batches of at least half the prefetch, not one commit per freed slot.
            let idle = self.slots.available_permits() > 0;
            let worth_claiming = free > 0 && (idle || free >= refill_at);
            let mut full_batch = false;
            if worth_claiming {
                let request = ClaimRequest {
                    worker_id: options.worker_id.clone(),
                    limit: free,
                    lease_ttl: options.lease_ttl,
                    queues: options.queues.clone(),
                };
                match self.store.claim(&request).await {
                    Ok(leases) => {
                        outage = Duration::from_millis(50);
                        full_batch = leases.len() == free;
                        claimed += leases.len() as u64;
                        for lease in leases {
                            self.spawn(&mut jobs, lease);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, retry_in = ?outage, "claim failed");
                        tokio::select! {
                            _ = tokio::time::sleep(outage) => {}
                            _ = shutdown.wait_for(|stop| *stop) => {}
                        }
                        outage = (outage * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            if full_batch {
                continue; // there may be more waiting
            }
            let due = if worth_claiming {
                self.store.next_run_at().await.ok().flatten()
            } else {
                None
            };
            let until_due = due
                .map(|at| (at - Utc::now()).to_std().unwrap_or_default())
                .unwrap_or(options.poll_interval)
                .min(options.poll_interval);
            let deadline = tokio::time::Instant::now() + until_due;
            // Wait for a reason to claim again.
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = self.slot_freed.notified() => break,
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    signal = signals.recv(), if worth_claiming => match signal {
                        Ok(Signal::JobsAvailable { queue }) => {
                            let ours = match &queue {
                                Some(q) => options.queues.is_empty() || options.queues.contains(q),
                                None => true,
                            };
                            if ours {
                                break;
                            }
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => {
                            signals = self.store.notifier().subscribe();
                        }
                    },
                }
            }
        }

        self.drain(jobs).await;
        let _ = stop_background.send(true);
        while background.join_next().await.is_some() {}
        let _ = self.store.remove_worker(&options.worker_id).await;
        tracing::info!(worker_id = %options.worker_id, "worker stopped");
    }

    fn spawn(&self, jobs: &mut JoinSet<()>, lease: Lease) {
        let Ok(reserved) = self.capacity.clone().try_acquire_owned() else {
            // Cannot happen: we claim at most the free permits and only this task takes them.
            tracing::error!(job_id = %lease.job.id, "no capacity for a claimed job; handing it back");
            let store = self.store.clone();
            let fence = lease.fence();
            jobs.spawn(async move {
                let _ = store.release(fence, Release::Shutdown).await;
            });
            return;
        };
        let (control, control_rx) = watch::channel(Control::default());
        let id = lease.job.id;
        if let Ok(mut running) = self.running.lock() {
            running.insert(
                id,
                Running {
                    fence: lease.fence(),
                    control,
                    renewed_at: Instant::now(),
                    settling: false,
                },
            );
        }
        let env = self.env.clone();
        let running = self.running.clone();
        let slots = self.slots.clone();
        let slot_freed = self.slot_freed.clone();
        jobs.spawn(async move {
            let fence = lease.fence();
            let span = runner::span(&env, &lease.job);
            async {
                // A prefetched job waits here for a slot; a pause, cancel, shutdown or lost
                // lease meanwhile settles it without running it.
                let slot = tokio::select! {
                    biased;
                    interrupt = runner::interrupted(control_rx.clone()) => Err(interrupt),
                    slot = slots.acquire_owned() => slot.map_err(|_| Interrupt::Shutdown),
                };
                let outcome = match slot {
                    Ok(_slot) => runner::execute(&env, &lease.job, fence, control_rx.clone()).await,
                    Err(interrupt) => Outcome::Stopped(interrupt),
                };
                // The slot is free once the code has run: recording the outcome (batched
                // for successes) overlaps the next jobs. The lease stays ours, and renewed,
                // until the outcome is recorded.
                drop(reserved);
                slot_freed.notify_one();
                if let Ok(mut running) = running.lock() {
                    if let Some(job) = running.get_mut(&id) {
                        job.settling = true;
                    }
                }
                runner::settle(&env, fence, lease.job.attempt, outcome, control_rx).await;
            }
            .instrument(span)
            .await;
            if let Ok(mut running) = running.lock() {
                running.remove(&id);
            }
        });
    }

    /// Shutdown: ask every running job to stop at a safe point; after `graceful_shutdown`,
    /// drop the stragglers and hand their leases back ourselves.
    async fn drain(&self, mut jobs: JoinSet<()>) {
        if jobs.is_empty() {
            return;
        }
        if let Ok(running) = self.running.lock() {
            tracing::info!(
                running = running.len(),
                "shutting down: asking jobs to stop"
            );
            for job in running.values() {
                job.control.send_modify(|c| c.shutdown = true);
            }
        }
        let limit = self.options.graceful_shutdown;
        let drained =
            tokio::time::timeout(limit, async { while jobs.join_next().await.is_some() {} }).await;
        if drained.is_ok() {
            return;
        }
        jobs.abort_all();
        while jobs.join_next().await.is_some() {}
        let leftovers: Vec<_> = match self.running.lock() {
            Ok(mut running) => running.drain().map(|(_, r)| r.fence).collect(),
            Err(_) => Vec::new(),
        };
        for fence in leftovers {
            tracing::warn!(job_id = %fence.job, "job did not stop in time; handing it back");
            let deadline = Instant::now() + Duration::from_secs(5);
            let result = store_call(
                "release",
                || self.store.release(fence, Release::Shutdown),
                || Instant::now() > deadline,
            )
            .await;
            if let Err(err) = result {
                tracing::warn!(job_id = %fence.job, error = %err, "could not hand the job back; its lease will expire");
            }
        }
    }
}
