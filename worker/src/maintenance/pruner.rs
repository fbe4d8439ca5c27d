//! The pruner: deletes finished jobs (with their events, checkpoints, effects and
//! artifacts) once their retention has passed, in bounded batches.

use std::time::Duration;

use async_trait::async_trait;
use drover_queue::{Retention, Store};
use tokio::sync::watch;

use super::Plugin;

/// The leadership name the pruner holds.
pub const LEADERSHIP: &str = "pruner";
const BATCH: usize = 500;

pub(crate) struct Pruner {
    pub interval: Duration,
    pub retention: Retention,
}

#[async_trait]
impl Plugin for Pruner {
    fn leadership(&self) -> &'static str {
        LEADERSHIP
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    async fn round(&self, store: &dyn Store, shutdown: &watch::Receiver<bool>) {
        let mut total = 0;
        while !*shutdown.borrow() {
            match store.prune(&self.retention, BATCH).await {
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
