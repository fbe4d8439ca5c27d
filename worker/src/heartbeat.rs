//! The heartbeat: on its own task, renews every lease this worker holds in one batched call,
//! delivers pause/cancel requests to the running jobs, and reports the worker as alive.
//! A control notification for one of our jobs triggers a renewal at once, so requests reach
//! a job without waiting for the next beat; the beat itself is the fallback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use drover_queue::{Fence, JobId, Renewal, Signal, Store, WorkerInfo};
use tokio::sync::{broadcast, watch, Notify};

use crate::context::Control;

/// A job this worker is running.
pub(crate) struct Running {
    pub fence: Fence,
    pub control: watch::Sender<Control>,
    /// When the store last confirmed the lease.
    pub renewed_at: Instant,
    /// The code has run and its outcome is being recorded.
    pub settling: bool,
}

/// The jobs this worker is running, shared by the pool, the runners and the heartbeat.
pub(crate) type RunningJobs = Arc<Mutex<HashMap<JobId, Running>>>;

pub(crate) struct Heartbeat {
    pub store: Arc<dyn Store>,
    pub running: RunningJobs,
    pub info: WorkerInfo,
    pub interval: Duration,
    pub lease_ttl: Duration,
    pub poke: Arc<Notify>,
}

impl Heartbeat {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut signals = self.store.notifier().subscribe();
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let beat = tokio::select! {
                _ = ticker.tick() => true,
                _ = self.poke.notified() => false,
                signal = signals.recv() => match signal {
                    Ok(Signal::Control { job }) => {
                        if !self.holds(job) {
                            continue;
                        }
                        false
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => false,
                    Err(broadcast::error::RecvError::Closed) => {
                        signals = self.store.notifier().subscribe();
                        continue;
                    }
                },
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            self.renew().await;
            if beat {
                self.report().await;
            }
        }
    }

    fn holds(&self, job: JobId) -> bool {
        self.running
            .lock()
            .map(|running| running.contains_key(&job))
            .unwrap_or(false)
    }

    /// Renew every lease in one call and pass what the store says to each job.
    async fn renew(&self) {
        let fences: Vec<Fence> = match self.running.lock() {
            Ok(running) => running.values().map(|r| r.fence).collect(),
            Err(_) => return,
        };
        if fences.is_empty() {
            return;
        }
        let renewals = self.store.renew(&fences, self.lease_ttl).await;
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        match renewals {
            Ok(renewals) => {
                for (fence, renewal) in fences.iter().zip(renewals) {
                    let Some(job) = running.get_mut(&fence.job) else {
                        continue;
                    };
                    if job.fence != *fence {
                        continue;
                    }
                    match renewal {
                        Renewal::Held {
                            pause_requested,
                            cancel_requested,
                        } => {
                            job.renewed_at = Instant::now();
                            job.control.send_if_modified(|c| {
                                let changed =
                                    c.pause != pause_requested || c.cancel != cancel_requested;
                                c.pause = pause_requested;
                                c.cancel = cancel_requested;
                                changed
                            });
                        }
                        Renewal::Lost => {
                            // A settling job's renewal races its own completion; the
                            // settle's fenced write tells which it was.
                            if !job.settling {
                                tracing::warn!(job_id = %fence.job, "lease lost");
                            }
                            job.control.send_modify(|c| c.lost = true);
                        }
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "lease renewal failed; retrying on the next beat");
                // Past the lease's expiry the job may be someone else's: stop writing.
                for job in running.values_mut() {
                    if job.renewed_at.elapsed() >= self.lease_ttl {
                        job.control.send_modify(|c| c.lost = true);
                    }
                }
            }
        }
    }

    async fn report(&mut self) {
        self.info.busy = self.running.lock().map(|r| r.len() as u32).unwrap_or(0);
        self.info.last_heartbeat = Utc::now();
        metrics::gauge!("drover_worker_slots_busy", "worker" => self.info.id.clone())
            .set(f64::from(self.info.busy));
        metrics::gauge!("drover_worker_slots", "worker" => self.info.id.clone())
            .set(f64::from(self.info.slots));
        if let Err(err) = self.store.heartbeat_worker(&self.info).await {
            tracing::warn!(error = %err, "worker heartbeat failed");
        }
    }
}
