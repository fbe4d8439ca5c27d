//! Background upkeep as plugins (Oban's `plugins/` are the model): each is a small module
//! that does one round of work, and one runner ([`run`]) gives every plugin the same life:
//! wake every `interval`, hold the plugin's leadership in the store so that one process of
//! the fleet does the work at a time, do a round while leading, resign on shutdown.
//!
//! - [`reaper`]: takes back jobs whose worker stopped renewing their lease;
//! - [`pruner`]: deletes finished jobs past their retention;
//! - [`gates`]: gives gates past their deadline their default decision;
//! - [`schedules`]: fires the ticks of due schedules.

pub mod gates;
pub mod pruner;
pub mod reaper;
pub mod schedules;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use drover_queue::Store;
use tokio::sync::watch;

/// One kind of background upkeep.
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// The leadership it holds: at most one process runs it at a time.
    fn leadership(&self) -> &'static str;

    /// How often it wakes. The leadership lasts three intervals, so a leader that died is
    /// replaced within that.
    fn interval(&self) -> Duration;

    /// One round of work, done by the leader. It should return soon after `shutdown` turns
    /// true.
    async fn round(&self, store: &dyn Store, shutdown: &watch::Receiver<bool>);
}

/// Runs `plugin` on behalf of `holder` (the worker id) until `shutdown` turns true.
pub(crate) async fn run(
    plugin: impl Plugin,
    store: Arc<dyn Store>,
    holder: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = plugin.leadership();
    let mut leading = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(plugin.interval()) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        match store.try_lead(name, &holder, plugin.interval() * 3).await {
            Ok(now_leading) => {
                if now_leading != leading {
                    tracing::info!(plugin = name, leading = now_leading, "leadership changed");
                    leading = now_leading;
                }
            }
            Err(err) => {
                tracing::warn!(plugin = name, error = %err, "leadership check failed");
                continue;
            }
        }
        if leading {
            plugin.round(store.as_ref(), &shutdown).await;
        }
    }
    if leading {
        if let Err(err) = store.resign(name, &holder).await {
            tracing::debug!(plugin = name, error = %err, "resigning leadership failed");
        }
    }
}
