//! The lease reaper: how a crashed worker's job comes back.
//!
//! # The life of a lease
//! A job whose worker crashed, froze or was cut off passes through five places, in order:
//! 1. **Heartbeat loss** (`crate::heartbeat`): the worker renews every lease it holds in one
//!    batched call. A renewal answered `Lost` — or none landing within `lease_ttl` — marks
//!    the run lost, and the runner stops writing and drops it.
//! 2. **The reaper** (this module): the holder of the `reaper` leadership lists running jobs
//!    whose lease expired.
//! 3. **The reap transition** (`drover_queue::transitions::reap_expired`, deciding with
//!    `drover_queue::operator::Settle::LeaseExpired`): under the job's lock, queued again
//!    while attempts remain, or paused/cancelled when an operator asked for it, or failed
//!    when attempts ran out.
//! 4. **The claim epoch bump** (each backend's claim): the next claim increments
//!    `lease_epoch`, so every write of the old worker — checkpoint, event, effect,
//!    completion — is refused from then on (`StoreError::Fenced`).
//! 5. **Resume** (`crate::graph::exec`, `crate::graph::step`): the new run reads the last
//!    checkpoint back and skips the items it records as done; effects recorded in the
//!    ledger return their stored result instead of running again.

use std::time::Duration;

use async_trait::async_trait;
use drover_queue::Store;
use tokio::sync::watch;

use super::Plugin;

/// The leadership name the reaper holds.
pub const LEADERSHIP: &str = "reaper";
const BATCH: usize = 500;

/// Takes back jobs whose lease expired, `BATCH` at a time until none is left.
pub(crate) struct Reaper {
    pub interval: Duration,
}

#[async_trait]
impl Plugin for Reaper {
    fn leadership(&self) -> &'static str {
        LEADERSHIP
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    async fn round(&self, store: &dyn Store, _shutdown: &watch::Receiver<bool>) {
        loop {
            match store.reap_expired(BATCH).await {
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
