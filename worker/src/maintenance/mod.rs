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
            leading = lead_through_round(&plugin, store.as_ref(), &holder, &shutdown).await;
        }
    }
    if leading {
        if let Err(err) = store.resign(name, &holder).await {
            tracing::debug!(plugin = name, error = %err, "resigning leadership failed");
        }
    }
}

/// Does one round of `plugin` while renewing its leadership every interval, so that a round
/// longer than the leadership's three intervals (10,000 due schedules on a slow disk) does
/// not hand the work to a second process halfway through. Answers whether the leadership is
/// still held. A round whose leadership lapses is let finish: every write it makes is a
/// compare-and-set or keyed, so two processes that both believe they lead waste work but
/// never do it twice.
async fn lead_through_round(
    plugin: &impl Plugin,
    store: &dyn Store,
    holder: &str,
    shutdown: &watch::Receiver<bool>,
) -> bool {
    let name = plugin.leadership();
    let renew = async {
        loop {
            tokio::time::sleep(plugin.interval()).await;
            match store.try_lead(name, holder, plugin.interval() * 3).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(plugin = name, "leadership lapsed during a round");
                    return;
                }
                Err(err) => {
                    tracing::warn!(plugin = name, error = %err, "renewing leadership failed")
                }
            }
        }
    };
    let round = plugin.round(store, shutdown);
    tokio::pin!(round);
    tokio::select! {
        _ = &mut round => true,
        () = renew => {
            round.await;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use drover_queue::testing::Backend;
    use tokio::sync::{mpsc, oneshot, Mutex};

    use super::*;

    /// A plugin whose one round lasts until the test lets it end, telling the test when
    /// it started.
    struct Long {
        started: mpsc::Sender<()>,
        finish: Mutex<Option<oneshot::Receiver<()>>>,
    }

    #[async_trait]
    impl Plugin for Long {
        fn leadership(&self) -> &'static str {
            "long-rounds"
        }

        fn interval(&self) -> Duration {
            Duration::from_millis(50)
        }

        async fn round(&self, _: &dyn Store, _: &watch::Receiver<bool>) {
            let Some(finish) = self.finish.lock().await.take() else {
                return;
            };
            let _ = self.started.send(()).await;
            let _ = finish.await;
        }
    }

    #[tokio::test]
    async fn a_round_longer_than_the_leadership_keeps_it() {
        let backend = Backend::sqlite();
        let store = backend.open().await;
        let (started, mut has_started) = mpsc::channel(1);
        let (finish, finished) = oneshot::channel();
        let plugin = Long {
            started,
            finish: Mutex::new(Some(finished)),
        };
        let (stop, shutdown) = watch::channel(false);
        let runner = tokio::spawn(run(plugin, store.clone(), "first".into(), shutdown));
        has_started.recv().await.expect("the round starts");

        // Ten leadership lifetimes (3 intervals each) into the round, a second process
        // still cannot take the work over.
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let taken = store
                .try_lead("long-rounds", "second", Duration::from_millis(150))
                .await
                .expect("try_lead");
            assert!(
                !taken,
                "the leadership lapsed while its holder was mid-round"
            );
        }

        let _ = finish.send(());
        stop.send(true).expect("stop");
        runner.await.expect("the runner stops");
        assert!(
            store
                .try_lead("long-rounds", "second", Duration::from_secs(1))
                .await
                .expect("try_lead"),
            "a clean stop resigns"
        );
        backend.cleanup().await;
    }
}
