//! The one listen loop behind every cross-process notifier: connect, subscribe to the
//! store's three channels, turn each message into a [`Signal`] for this process, and
//! reconnect with backoff when the connection breaks. Backends give only the transport
//! ([`Transport`]): PostgreSQL LISTEN/NOTIFY, Redis SUBSCRIBE.
//!
//! Messages are hints (see [`super`]): after every (re)connect the loop tells everyone to
//! look, because anything sent while it was not listening is lost.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::task::JoinHandle;

use super::{LocalNotifier, Signal};

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The names of a store's channels: `jobs` (payload: a queue name), `control` (a job id),
/// `events` (`job:seq[,job:seq…]`, one entry per job a statement or script wrote to).
#[derive(Debug, Clone)]
pub(crate) struct Channels {
    pub jobs: String,
    pub control: String,
    pub events: String,
}

impl Channels {
    /// The three channels, named by `name("jobs")` and so on.
    pub fn named(name: impl Fn(&str) -> String) -> Self {
        Channels {
            jobs: name("jobs"),
            control: name("control"),
            events: name("events"),
        }
    }

    pub fn all(&self) -> [&str; 3] {
        [&self.jobs, &self.control, &self.events]
    }

    /// The signals one message carries (none when it is malformed).
    pub fn signals(&self, channel: &str, payload: &str) -> Vec<Signal> {
        if channel == self.jobs {
            vec![Signal::JobsAvailable {
                queue: Some(payload.to_string()),
            }]
        } else if channel == self.control {
            payload
                .parse()
                .map(|job| Signal::Control { job })
                .into_iter()
                .collect()
        } else if channel == self.events {
            payload
                .split(',')
                .filter_map(|entry| {
                    let (job, seq) = entry.split_once(':')?;
                    Some(Signal::Event {
                        job: job.parse().ok()?,
                        seq: seq.parse().ok()?,
                    })
                })
                .collect()
        } else {
            Vec::new()
        }
    }
}

/// How a backend subscribes and receives: the only part of a notifier that differs.
#[async_trait]
pub(crate) trait Transport: Send + Sync + 'static {
    /// A live subscription.
    type Subscription: Send;

    /// Connects and subscribes to `channels`.
    async fn subscribe(&self, channels: &Channels) -> Result<Self::Subscription, String>;

    /// The next message as (channel, payload); `Ok(None)` when the connection closed.
    async fn next(
        subscription: &mut Self::Subscription,
    ) -> Result<Option<(String, String)>, String>;
}

/// Runs the listen loop for `transport` until the task is aborted.
fn listen<T: Transport>(
    transport: T,
    channels: Channels,
    notifier: Arc<LocalNotifier>,
) -> JoinHandle<()> {
    let backend = std::any::type_name::<T>();
    tokio::spawn(async move {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let mut subscription = match transport.subscribe(&channels).await {
                Ok(subscription) => subscription,
                Err(error) => {
                    tracing::warn!(%error, backend, "notifier subscription failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            backoff = FIRST_BACKOFF;
            // Anything sent while we were not listening is lost: make everyone look.
            notifier.publish(Signal::JobsAvailable { queue: None });
            loop {
                match T::next(&mut subscription).await {
                    Ok(Some((channel, payload))) => {
                        for signal in channels.signals(&channel, &payload) {
                            notifier.publish(signal);
                        }
                    }
                    Ok(None) => {
                        tracing::warn!(backend, "notifier connection lost; reconnecting");
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, backend, "notifier failed; reconnecting");
                        tokio::time::sleep(backoff).await;
                        break;
                    }
                }
            }
        }
    })
}

/// The listen task of a store, started on first use and stopped with the last clone of
/// the store.
#[derive(Default)]
pub(crate) struct ListenerTask(OnceLock<JoinHandle<()>>);

impl ListenerTask {
    /// Starts the loop once; later calls do nothing.
    pub fn start<T: Transport>(
        &self,
        transport: impl FnOnce() -> T,
        channels: impl FnOnce() -> Channels,
        notifier: &Arc<LocalNotifier>,
    ) {
        self.0
            .get_or_init(|| listen(transport(), channels(), notifier.clone()));
    }
}

impl Drop for ListenerTask {
    fn drop(&mut self) {
        if let Some(handle) = self.0.get() {
            handle.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_become_signals() {
        let channels = Channels::named(|name| format!("drover.t.{name}"));
        let job = uuid::Uuid::now_v7();
        assert_eq!(
            channels.signals("drover.t.jobs", "mail"),
            vec![Signal::JobsAvailable {
                queue: Some("mail".into())
            }]
        );
        assert_eq!(
            channels.signals("drover.t.control", &job.to_string()),
            vec![Signal::Control { job }]
        );
        assert_eq!(
            channels.signals("drover.t.events", &format!("{job}:3,{job}:4,bad,{job}:x")),
            vec![Signal::Event { job, seq: 3 }, Signal::Event { job, seq: 4 }]
        );
        assert!(channels
            .signals("drover.t.control", "not-a-uuid")
            .is_empty());
        assert!(channels.signals("elsewhere", "mail").is_empty());
    }
}
