//! The pruner: deletes finished jobs (with their events, checkpoints, effects and
//! artifacts) once their retention has passed, in bounded batches, on one worker at a time
//! (the holder of the store's `pruner` leadership).

use std::sync::Arc;
use std::time::Duration;

use drover_queue::{Retention, Store};
use tokio::sync::watch;

/// The leadership name the pruner holds.
pub const LEADERSHIP: &str = "pruner";
const BATCH: usize = 500;

pub(crate) struct Pruner {
    pub store: Arc<dyn Store>,
    pub holder: String,
    pub interval: Duration,
    pub retention: Retention,
}

impl Pruner {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut leading = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
            leading = match self
                .store
                .try_lead(LEADERSHIP, &self.holder, self.interval * 3)
                .await
            {
                Ok(leading) => leading,
                Err(err) => {
                    tracing::warn!(error = %err, "pruner leadership check failed");
                    continue;
                }
            };
            if leading {
                self.prune(&mut shutdown).await;
            }
        }
        if leading {
            let _ = self.store.resign(LEADERSHIP, &self.holder).await;
        }
    }

    async fn prune(&self, shutdown: &mut watch::Receiver<bool>) {
        let mut total = 0;
        while !*shutdown.borrow() {
            match self.store.prune(&self.retention, BATCH).await {
                Ok(n) => {
                    total += n;
                    if (n as usize) < BATCH {
                        break;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "pruning finished jobs failed");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(deleted = total, "pruned finished jobs past their retention");
        }
    }
}
