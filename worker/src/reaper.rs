//! The lease reaper: how a crashed worker's job comes back. One worker at a time (the holder
//! of the store's `reaper` leadership) takes back jobs whose lease expired: queued again to
//! continue from their last checkpoint, or settled as an operator asked, or failed when
//! their attempts ran out (see `drover_queue::operator::Settle`).

use std::sync::Arc;
use std::time::Duration;

use drover_queue::Store;
use tokio::sync::watch;

/// The leadership name the reaper holds.
pub const LEADERSHIP: &str = "reaper";
const BATCH: usize = 500;

pub(crate) struct Reaper {
    pub store: Arc<dyn Store>,
    pub holder: String,
    pub interval: Duration,
}

impl Reaper {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut leading = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
            match self
                .store
                .try_lead(LEADERSHIP, &self.holder, self.interval * 3)
                .await
            {
                Ok(now_leading) => {
                    if now_leading != leading {
                        tracing::info!(leading = now_leading, "reaper leadership changed");
                        leading = now_leading;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "reaper leadership check failed");
                    continue;
                }
            }
            if leading {
                self.reap().await;
            }
        }
        if leading {
            let _ = self.store.resign(LEADERSHIP, &self.holder).await;
        }
    }

    async fn reap(&self) {
        loop {
            match self.store.reap_expired(BATCH).await {
                Ok(reaped) => {
                    for job in &reaped {
                        tracing::warn!(job_id = %job.job, previous_owner = ?job.previous_owner,
                            status = %job.status, "lease expired; job taken back");
                    }
                    if reaped.len() < BATCH {
                        return;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "reaping expired leases failed");
                    return;
                }
            }
        }
    }
}
