//! The `Notifier` seam: how processes wake each other. Workers wake at once when jobs
//! arrive and learn of pause/cancel requests without waiting for their next heartbeat.
//! Notifications are hints: losing one only costs latency, because workers also poll and
//! the heartbeat carries every request too.

use tokio::sync::broadcast;

use crate::job::JobId;

/// A wake-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Jobs became available in this queue (or in some queue, when `None`: after a
    /// reconnect, say, when notifications may have been missed).
    JobsAvailable { queue: Option<String> },
    /// An operator asked for a pause or cancel of this job.
    Control { job: JobId },
    /// A job's event log grew.
    Event { job: JobId, seq: i64 },
}

/// Fans signals out to every subscriber in this process.
pub trait Notifier: Send + Sync {
    /// A receiver of every signal from now on. A slow receiver may see `Lagged`; it should
    /// then act as if every kind of signal arrived.
    fn subscribe(&self) -> broadcast::Receiver<Signal>;
}

/// The in-process notifier: what the SQLite store uses (one machine, and the store
/// publishes after each commit), and what the PostgreSQL listener feeds.
#[derive(Debug, Clone)]
pub struct LocalNotifier {
    sender: broadcast::Sender<Signal>,
}

impl Default for LocalNotifier {
    fn default() -> Self {
        LocalNotifier {
            sender: broadcast::channel(1024).0,
        }
    }
}

impl LocalNotifier {
    /// Deliver `signal` to every current subscriber.
    pub fn publish(&self, signal: Signal) {
        // No subscribers is fine: nobody is waiting.
        let _ = self.sender.send(signal);
    }
}

impl Notifier for LocalNotifier {
    fn subscribe(&self) -> broadcast::Receiver<Signal> {
        self.sender.subscribe()
    }
}

pub(crate) mod listen;
