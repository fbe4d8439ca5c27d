//! Server-Sent Events for a job's event log, across processes.
//!
//! One [`EventHub`] per API process. For each job with at least one subscriber it keeps
//! one feed: when the notifier says the job's log grew (PostgreSQL NOTIFY from whichever
//! process wrote it; the in-process notifier for SQLite), the feed reads the new rows once
//! and broadcasts them to every subscriber. 1,000 clients on one job cost one read per
//! event, not 1,000. A client first replays from the store after its `Last-Event-ID`, then
//! follows the feed, skipping what it has seen; a gap (a lagging client) is filled from
//! the store, so nothing is missed and nothing is sent twice.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use drover_queue::{Event, JobId, Signal, Store};
use futures_util::Stream;
use tokio::sync::{broadcast, Notify};

/// How often a feed re-reads its job's log when no notification came (a safety net for
/// lost notifications).
const FEED_POLL: Duration = Duration::from_secs(2);
const READ_BATCH: usize = 500;

struct Feed {
    sender: broadcast::Sender<Arc<Event>>,
    wake: Notify,
    /// The newest seq a notification announced. A wake-up for events the feed has already
    /// read (the same event signalled in-process and echoed by NOTIFY or pub/sub) reads
    /// nothing.
    announced: AtomicI64,
    /// Set when notifications may have been lost: the next wake-up reads regardless.
    reread: AtomicBool,
}

/// Fans a job's new events out to all of this process's subscribers.
pub struct EventHub {
    store: Arc<dyn Store>,
    feeds: Mutex<HashMap<JobId, Arc<Feed>>>,
    /// Set on shutdown: every open stream ends (clients reconnect with Last-Event-ID).
    closing: tokio::sync::watch::Sender<bool>,
    /// Store reads made by feeds (one per wake-up, whatever the number of subscribers).
    feed_reads: std::sync::atomic::AtomicU64,
}

impl EventHub {
    /// Starts the hub's dispatcher on the current runtime.
    pub fn start(store: Arc<dyn Store>) -> Arc<EventHub> {
        let hub = Arc::new(EventHub {
            store,
            feeds: Mutex::new(HashMap::new()),
            closing: tokio::sync::watch::channel(false).0,
            feed_reads: std::sync::atomic::AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&hub);
        let mut signals = hub.store.notifier().subscribe();
        tokio::spawn(async move {
            loop {
                let signal = signals.recv().await;
                let Some(hub) = weak.upgrade() else { return };
                match signal {
                    Ok(Signal::Event { job, seq }) => hub.wake(Some((job, seq))),
                    // After a reconnect notifications may have been lost: everyone re-reads.
                    Ok(Signal::JobsAvailable { queue: None }) => hub.wake(None),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => hub.wake(None),
                    Err(broadcast::error::RecvError::Closed) => {
                        signals = hub.store.notifier().subscribe();
                    }
                }
            }
        });
        hub
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Arc<Feed>>> {
        self.feeds.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self, job: Option<(JobId, i64)>) {
        let feeds = self.lock();
        match job {
            Some((job, seq)) => {
                if let Some(feed) = feeds.get(&job) {
                    feed.announced.fetch_max(seq, Ordering::Relaxed);
                    feed.wake.notify_one();
                }
            }
            None => feeds.values().for_each(|f| {
                f.reread.store(true, Ordering::Relaxed);
                f.wake.notify_one();
            }),
        }
    }

    /// A receiver of the job's events from now on (`after` is where the caller's replay
    /// will start; the feed begins there if it is new).
    pub fn subscribe(self: &Arc<Self>, job: JobId, after: i64) -> broadcast::Receiver<Arc<Event>> {
        let mut feeds = self.lock();
        if let Some(feed) = feeds.get(&job) {
            return feed.sender.subscribe();
        }
        let feed = Arc::new(Feed {
            sender: broadcast::channel(1024).0,
            wake: Notify::new(),
            announced: AtomicI64::new(after),
            reread: AtomicBool::new(false),
        });
        let receiver = feed.sender.subscribe();
        feeds.insert(job, feed.clone());
        drop(feeds);
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut last = after;
            loop {
                let polled = tokio::select! {
                    _ = feed.wake.notified() => false,
                    _ = tokio::time::sleep(FEED_POLL) => true,
                };
                let Some(hub) = hub.upgrade() else { return };
                if feed.sender.receiver_count() == 0 {
                    let mut feeds = hub.lock();
                    if feed.sender.receiver_count() == 0 {
                        feeds.remove(&job);
                        return;
                    }
                }
                let reread = feed.reread.swap(false, Ordering::Relaxed);
                if !polled && !reread && feed.announced.load(Ordering::Relaxed) <= last {
                    continue; // already read: an echo of a signal this feed acted on
                }
                loop {
                    hub.feed_reads.fetch_add(1, Ordering::Relaxed);
                    let events = match hub.store.events(job, last, READ_BATCH).await {
                        Ok(events) => events,
                        Err(err) => {
                            tracing::warn!(job_id = %job, error = %err, "reading events failed");
                            break;
                        }
                    };
                    let full = events.len() == READ_BATCH;
                    for event in events {
                        last = event.seq;
                        let _ = feed.sender.send(Arc::new(event));
                    }
                    if !full {
                        break;
                    }
                }
            }
        });
        receiver
    }

    /// Ends every open stream (on shutdown, so the server can drain).
    pub fn close(&self) {
        let _ = self.closing.send(true);
    }

    /// How many store reads the feeds have made (for metrics and tests).
    pub fn feed_reads(&self) -> u64 {
        self.feed_reads.load(Ordering::Relaxed)
    }

    /// Jobs with a live feed (for metrics and tests).
    pub fn feeds(&self) -> usize {
        self.lock().len()
    }
}

fn is_terminal(event: &Event) -> bool {
    event.kind == "status"
        && matches!(
            event.data["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        )
}

/// Counts open SSE connections in the `drover_sse_clients` gauge.
struct ClientGauge;

impl ClientGauge {
    fn new() -> Self {
        metrics::gauge!("drover_sse_clients").increment(1.0);
        ClientGauge
    }
}

impl Drop for ClientGauge {
    fn drop(&mut self) {
        metrics::gauge!("drover_sse_clients").decrement(1.0);
    }
}

struct Follow {
    store: Arc<dyn Store>,
    job: JobId,
    last: i64,
    live: broadcast::Receiver<Arc<Event>>,
    pending: VecDeque<Event>,
    closing: tokio::sync::watch::Receiver<bool>,
    replaying: bool,
    ending: bool,
    done: bool,
    _gauge: ClientGauge,
}

impl Follow {
    async fn fill(&mut self) -> Result<(), drover_queue::StoreError> {
        let events = self.store.events(self.job, self.last, READ_BATCH).await?;
        self.replaying = events.len() == READ_BATCH;
        self.pending.extend(events);
        Ok(())
    }

    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                if event.seq <= self.last {
                    continue;
                }
                self.last = event.seq;
                self.ending = is_terminal(&event);
                return Some(to_sse(&event));
            }
            if self.ending {
                self.done = true;
                return Some(SseEvent::default().event("end").data("{}"));
            }
            if self.replaying {
                if let Err(err) = self.fill().await {
                    tracing::warn!(job_id = %self.job, error = %err, "event replay failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                continue;
            }
            let received = tokio::select! {
                received = self.live.recv() => received,
                _ = self.closing.wait_for(|closing| *closing) => return None,
            };
            match received {
                Ok(event) if event.seq <= self.last => {}
                Ok(event) if event.seq == self.last + 1 => self.pending.push_back((*event).clone()),
                // A gap or a lag: read what is missing from the store.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => self.replaying = true,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

fn to_sse(event: &Event) -> SseEvent {
    SseEvent::default()
        .id(event.seq.to_string())
        .event(event.kind.clone())
        .data(event.data.to_string())
}

/// The SSE response for `job`'s events after `after`.
///
/// `feed_start` is the job's newest seq when the request came in: a feed this request
/// creates broadcasts from there (the client replays what came before from the store).
pub fn stream(
    hub: &Arc<EventHub>,
    store: Arc<dyn Store>,
    job: JobId,
    after: i64,
    feed_start: i64,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let follow = Follow {
        live: hub.subscribe(job, feed_start),
        closing: hub.closing.subscribe(),
        store,
        job,
        last: after,
        pending: VecDeque::new(),
        replaying: true,
        ending: false,
        done: false,
        _gauge: ClientGauge::new(),
    };
    let events = futures_util::stream::unfold(follow, |mut follow| async move {
        follow.next().await.map(|event| (Ok(event), follow))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
