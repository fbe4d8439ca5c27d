//! The gate keeper: gives open gates past their deadline their default decision, so a
//! waiting job wakes within a second of its deadline even when nobody decides.

use std::time::Duration;

use async_trait::async_trait;
use drover_queue::Store;
use tokio::sync::watch;

use super::Plugin;

/// The leadership name the gate keeper holds.
pub const LEADERSHIP: &str = "gates";
const BATCH: usize = 500;

/// Wakes every 500 ms, so a deadline is honoured within a second.
pub(crate) struct GateKeeper;

#[async_trait]
impl Plugin for GateKeeper {
    fn leadership(&self) -> &'static str {
        LEADERSHIP
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(500)
    }

    async fn round(&self, store: &dyn Store, shutdown: &watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            match store.time_out_gates(BATCH).await {
                Ok(0) => break,
                Ok(n) => {
                    metrics::counter!("drover_gates_timed_out_total").increment(n as u64);
                    tracing::info!(gates = n, "gates past their deadline took their default");
                    if n < BATCH {
                        break;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "timing out gates failed");
                    break;
                }
            }
        }
    }
}

/// Runs the gate keeper for `holder` until `shutdown` turns true: for processes other than
/// workers (the API), so deadlines pass on time with every worker scaled to zero.
pub async fn run(
    store: std::sync::Arc<dyn Store>,
    holder: String,
    shutdown: watch::Receiver<bool>,
) {
    super::run(GateKeeper, store, holder, shutdown).await
}
