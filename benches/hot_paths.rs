//! Issue 6's hot paths under criterion, each on SQLite, PostgreSQL and Redis:
//!
//! - `claim/<backend>/<n>`: one `Store::claim` of `n` jobs from a queue holding a backlog of
//!   [`BACKLOG`] due jobs. `n` new jobs are enqueued before each claim, outside the timing,
//!   so every claim sees the same depth.
//! - `complete/<backend>/single`: one `Store::complete`; `complete/<backend>/many_<n>`: one
//!   `Store::complete_many` of `n` completions. The jobs are enqueued and claimed outside
//!   the timing.
//! - `checkpoint_write/<backend>`: what a worker does per checkpoint of a 10 kB state:
//!   `encode_checkpoint` (JSON, zstd) and one fenced `Store::checkpoint` keeping the newest
//!   10. `checkpoint_write/encode` is the encoding alone, to tell the two apart.
//! - `event_fanout/<backend>/<k>`: from the call to `Store::append_event` until the last of
//!   `k` subscribers of the job (receivers of the API's `EventHub`, each its own task) holds
//!   the event; `k = 0` is the append alone. `event_fanout_sse/<backend>/<k>` is the same
//!   through the SSE response bodies the API serves (`drover_api::sse::stream`), so it
//!   adds each client's own work: the per-client follow logic and the SSE framing. After
//!   each fan-out benchmark a line on stderr tells how many store reads the hub's feed made
//!   for how many events.
//!
//! ```sh
//! cargo bench --bench hot_paths                 # everything (a few minutes)
//! cargo bench --bench hot_paths -- claim        # a criterion filter: one group,
//! cargo bench --bench hot_paths -- redis        # one backend, or one id
//! ```
//!
//! Criterion prints a mean estimate per id; the median is in
//! `target/criterion/<group>/<backend>/<param>/new/estimates.json`.
//!
//! `DROVER_TEST_PG` / `DROVER_TEST_REDIS` select the servers, as for the tests. Every
//! benchmark gets a private store (a temporary SQLite file, a fresh schema, a fresh key
//! prefix), opened on its first sample and removed when it ends; a filtered-out benchmark
//! touches no server.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use criterion::measurement::WallTime;
use criterion::{Bencher, BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use drover_api::EventHub;
use drover_queue::testing::Backend;
use drover_queue::{ClaimRequest, Completed, Completion, Fence, Lease, NewCheckpoint, NewJob};
use drover_queue::{Store, StoreError};
use drover_worker::context::{encode_checkpoint, RunSettings};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use tokio::sync::{broadcast, Notify};
use tokio::task::JoinHandle;

/// Due jobs waiting in the queue while claims are measured: a claim has to pick its jobs
/// out of a real backlog, not an empty table.
const BACKLOG: usize = 1000;
/// Long enough that no lease expires during a benchmark (no reaper runs here anyway).
const LEASE_TTL: Duration = Duration::from_secs(600);

/// A fresh private backend of one kind (`Backend::sqlite` …).
type MakeBackend = fn() -> Backend;

const BACKENDS: [(&str, MakeBackend); 3] = [
    ("sqlite", Backend::sqlite),
    ("postgres", Backend::postgres),
    ("redis", Backend::redis),
];

/// Short runs: the whole file should take minutes on the 2-core machine, and the store
/// round trips measured here are long enough for 20 samples to give a stable median.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

/// One benchmark whose state is built on its first sample and torn down after its last.
/// Criterion calls the closure once per sample and warm-up round, and not at all for an
/// id the filter excludes, so the state cannot be built inside it unconditionally.
fn bench_with<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    setup: impl FnOnce() -> S,
    mut routine: impl FnMut(&mut Bencher<'_, WallTime>, &S),
    teardown: impl FnOnce(S),
) {
    let mut setup = Some(setup);
    let mut state = None;
    group.bench_function(id, |b| {
        let state = state.get_or_insert_with(|| setup.take().expect("set up once")());
        routine(b, state);
    });
    if let Some(state) = state {
        teardown(state);
    }
}

/// A benchmark's private store.
struct Fixture {
    backend: Backend,
    store: Arc<dyn Store>,
}

impl Fixture {
    async fn open(make: MakeBackend) -> Fixture {
        let backend = make();
        let store = backend.open().await;
        Fixture { backend, store }
    }

    async fn close(self) {
        // The store's pool and listener go first, so nothing is left using the schema or
        // prefix being dropped.
        drop(self.store);
        self.backend.cleanup().await;
    }
}

fn claim_request(limit: usize) -> ClaimRequest {
    ClaimRequest {
        worker_id: "bench".into(),
        limit,
        lease_ttl: LEASE_TTL,
        // Every queue, as a worker started without `--queues` asks.
        queues: vec![],
    }
}

async fn enqueue(store: &dyn Store, n: usize) {
    let jobs = (0..n)
        .map(|i| NewJob::new("noop", format!("bench {i}")))
        .collect();
    let stored = store.enqueue_batch(jobs).await.expect("enqueue");
    assert_eq!(stored.len(), n);
}

/// Claims exactly `request.limit` jobs (there must be that many due).
async fn claim(store: &dyn Store, request: &ClaimRequest) -> Vec<Lease> {
    let leases = store.claim(request).await.expect("claim");
    assert_eq!(leases.len(), request.limit, "the claim found too few jobs");
    leases
}

/// A job leased to the bench, for the fenced writes.
async fn leased_job(store: &dyn Store) -> Fence {
    enqueue(store, 1).await;
    claim(store, &claim_request(1)).await[0].fence()
}

fn bench_claim(c: &mut Criterion, rt: &Runtime) {
    let mut group = c.benchmark_group("claim");
    configure(&mut group);
    for (name, make) in BACKENDS {
        for n in [1, 100] {
            group.throughput(Throughput::Elements(n as u64));
            bench_with(
                &mut group,
                BenchmarkId::new(name, n),
                || {
                    rt.block_on(async {
                        let fixture = Fixture::open(make).await;
                        for _ in 0..BACKLOG / 500 {
                            enqueue(&*fixture.store, 500).await;
                        }
                        fixture
                    })
                },
                |b, fixture| {
                    let request = claim_request(n);
                    b.to_async(rt).iter_custom(|iters| {
                        let (store, request) = (fixture.store.clone(), request.clone());
                        async move {
                            let mut timed = Duration::ZERO;
                            for _ in 0..iters {
                                // New jobs join the back of the queue; the claim takes the
                                // oldest, so the depth stays at BACKLOG.
                                enqueue(&*store, n).await;
                                let started = Instant::now();
                                let leases = store.claim(&request).await;
                                timed += started.elapsed();
                                assert_eq!(leases.expect("claim").len(), n);
                            }
                            timed
                        }
                    });
                },
                |fixture| rt.block_on(fixture.close()),
            );
        }
    }
    group.finish();
}

fn bench_complete(c: &mut Criterion, rt: &Runtime) {
    let mut group = c.benchmark_group("complete");
    configure(&mut group);
    // What the noop kind returns: the smallest real result.
    let result = json!({});
    for (name, make) in BACKENDS {
        group.throughput(Throughput::Elements(1));
        bench_with(
            &mut group,
            BenchmarkId::new(name, "single"),
            || rt.block_on(Fixture::open(make)),
            |b, fixture| {
                let request = claim_request(1);
                b.to_async(rt).iter_custom(|iters| {
                    let (store, request, result) =
                        (fixture.store.clone(), request.clone(), result.clone());
                    async move {
                        let mut timed = Duration::ZERO;
                        for _ in 0..iters {
                            enqueue(&*store, 1).await;
                            let fence = claim(&*store, &request).await[0].fence();
                            let result = result.clone();
                            let started = Instant::now();
                            let job = store.complete(fence, result).await;
                            timed += started.elapsed();
                            black_box(job.expect("complete"));
                        }
                        timed
                    }
                });
            },
            |fixture| rt.block_on(fixture.close()),
        );
        for n in [1, 100] {
            group.throughput(Throughput::Elements(n as u64));
            bench_with(
                &mut group,
                BenchmarkId::new(name, format!("many_{n}")),
                || rt.block_on(Fixture::open(make)),
                |b, fixture| {
                    let request = claim_request(n);
                    b.to_async(rt).iter_custom(|iters| {
                        let (store, request, result) =
                            (fixture.store.clone(), request.clone(), result.clone());
                        async move {
                            let mut timed = Duration::ZERO;
                            for _ in 0..iters {
                                enqueue(&*store, n).await;
                                let completions: Vec<Completion> = claim(&*store, &request)
                                    .await
                                    .iter()
                                    .map(|lease| Completion {
                                        fence: lease.fence(),
                                        result: result.clone(),
                                    })
                                    .collect();
                                let started = Instant::now();
                                let answers = store.complete_many(&completions).await;
                                timed += started.elapsed();
                                let answers = answers.expect("complete_many");
                                assert!(answers.iter().all(|a| *a == Completed::Done));
                            }
                            timed
                        }
                    });
                },
                |fixture| rt.block_on(fixture.close()),
            );
        }
    }
    group.finish();
}

/// A campaign's state of about 10 kB: leads with a few fields each. The same shape as
/// `benches/runtime.rs` writes, so the figures can be compared with the README's.
fn campaign_state() -> Value {
    let leads: Vec<Value> = (0..150)
        .map(|i| {
            json!({
                "login": format!("dev{i:04}"),
                "repo": format!("org/project-{i}"),
                "score": i * 7 % 100,
                "sent": i % 3 == 0,
            })
        })
        .collect();
    json!({ "cursor": 1234, "leads": leads })
}

fn bench_checkpoint(c: &mut Criterion, rt: &Runtime) {
    let mut group = c.benchmark_group("checkpoint_write");
    configure(&mut group);
    // The worker's defaults: zstd above 4 kB, the newest 10 kept.
    let settings = RunSettings::default();
    let state = campaign_state();
    group.bench_function("encode", |b| {
        b.iter(|| encode_checkpoint(black_box(&state), &settings).expect("encode"))
    });
    for (name, make) in BACKENDS {
        bench_with(
            &mut group,
            BenchmarkId::from_parameter(name),
            || {
                rt.block_on(async {
                    let fixture = Fixture::open(make).await;
                    let fence = leased_job(&*fixture.store).await;
                    (fixture, fence)
                })
            },
            |b, (fixture, fence)| {
                b.to_async(rt).iter_custom(|iters| {
                    let (store, fence) = (fixture.store.clone(), *fence);
                    let (state, settings) = (&state, &settings);
                    async move {
                        let mut timed = Duration::ZERO;
                        for _ in 0..iters {
                            let started = Instant::now();
                            let (bytes, compressed) =
                                encode_checkpoint(state, settings).expect("encode");
                            let checkpoint = NewCheckpoint {
                                step: "leads".into(),
                                state: bytes,
                                compressed,
                                items: Vec::new(),
                            };
                            let seq = store
                                .checkpoint(fence, checkpoint, settings.max_checkpoints)
                                .await;
                            timed += started.elapsed();
                            black_box(seq.expect("checkpoint"));
                        }
                        timed
                    }
                });
            },
            |(fixture, _)| rt.block_on(fixture.close()),
        );
    }
    group.finish();
}

/// Counts a round's deliveries down; the subscriber that brings it to zero wakes the bench.
struct Arrivals {
    left: AtomicUsize,
    all_in: Notify,
}

impl Arrivals {
    fn arrived(&self, events: usize) {
        if events > 0 && self.left.fetch_sub(events, Ordering::AcqRel) == events {
            // `notify_one` keeps the wake-up if the bench is not waiting yet.
            self.all_in.notify_one();
        }
    }
}

/// How a subscriber follows the job.
#[derive(Clone, Copy)]
enum Client {
    /// A receiver of the hub's feed, as each SSE connection holds one.
    Hub,
    /// The whole SSE response body a client reads.
    Sse,
}

struct FanOut {
    fixture: Fixture,
    hub: Arc<EventHub>,
    fence: Fence,
    arrivals: Arc<Arrivals>,
    subscribers: Vec<JoinHandle<()>>,
    /// Events appended, warm-up included: with the hub's feed reads, it shows what one
    /// event costs the store whatever the number of subscribers.
    appended: Arc<AtomicU64>,
}

impl FanOut {
    async fn open(make: MakeBackend, client: Client, k: usize) -> FanOut {
        let fixture = Fixture::open(make).await;
        let store = fixture.store.clone();
        let fence = leased_job(&*store).await;
        // Subscribe after the job's newest event (its `running`), so the first thing every
        // subscriber gets is a measured event.
        let newest = store
            .events(fence.job, 0, 1000)
            .await
            .expect("events")
            .last()
            .map_or(0, |e| e.seq);
        let hub = EventHub::start(store.clone());
        let arrivals = Arc::new(Arrivals {
            left: AtomicUsize::new(0),
            all_in: Notify::new(),
        });
        let subscribers = (0..k)
            .map(|_| {
                let arrivals = arrivals.clone();
                match client {
                    Client::Hub => {
                        let mut events = hub.subscribe(fence.job, newest);
                        tokio::spawn(async move {
                            loop {
                                match events.recv().await {
                                    Ok(event) => {
                                        black_box(event);
                                        arrivals.arrived(1);
                                    }
                                    Err(broadcast::error::RecvError::Lagged(n)) => {
                                        panic!("a subscriber lagged by {n}: the figure is void")
                                    }
                                    Err(broadcast::error::RecvError::Closed) => return,
                                }
                            }
                        })
                    }
                    Client::Sse => {
                        let response =
                            drover_api::sse::stream(&hub, store.clone(), fence.job, newest, newest)
                                .into_response();
                        let mut body = response.into_body().into_data_stream();
                        tokio::spawn(async move {
                            while let Some(chunk) = body.next().await {
                                let chunk = chunk.expect("SSE body");
                                // Keep-alive comments carry no event.
                                let events = chunk
                                    .windows(b"event: progress".len())
                                    .filter(|w| *w == b"event: progress")
                                    .count();
                                arrivals.arrived(events);
                            }
                        })
                    }
                }
            })
            .collect();
        FanOut {
            fixture,
            hub,
            fence,
            arrivals,
            subscribers,
            appended: Arc::new(AtomicU64::new(0)),
        }
    }

    async fn close(self, id: &str) {
        let (reads, appended) = (self.hub.feed_reads(), self.appended.load(Ordering::Relaxed));
        if !self.subscribers.is_empty() && appended > 0 {
            eprintln!("{id}: the hub's feed read the store {reads} times for {appended} events");
        }
        for subscriber in &self.subscribers {
            subscriber.abort();
        }
        self.hub.close();
        drop(self.hub);
        self.fixture.close().await;
    }
}

/// The kind of event SSE clients mostly follow: a job's progress.
fn progress(i: u64) -> Value {
    json!({"step": "walk", "items_processed": i, "items_total": 1_000_000, "current_item": i})
}

/// One round: append, then wait for all `k` subscribers to hold the event.
async fn deliver(
    store: &dyn Store,
    fence: Fence,
    arrivals: &Arrivals,
    k: usize,
    i: u64,
) -> Result<Duration, StoreError> {
    arrivals.left.store(k, Ordering::Release);
    let data = progress(i);
    let started = Instant::now();
    store.append_event(fence, "progress", data).await?;
    if k > 0 {
        arrivals.all_in.notified().await;
    }
    Ok(started.elapsed())
}

fn bench_fanout(c: &mut Criterion, rt: &Runtime, group_name: &str, client: Client) {
    let mut group = c.benchmark_group(group_name);
    configure(&mut group);
    let ks: &[usize] = match client {
        Client::Hub => &[0, 1, 100, 1000],
        // The append alone is measured once, in `event_fanout`.
        Client::Sse => &[1, 100, 1000],
    };
    for (name, make) in BACKENDS {
        for &k in ks {
            bench_with(
                &mut group,
                BenchmarkId::new(name, k),
                || rt.block_on(FanOut::open(make, client, k)),
                |b, fan| {
                    b.to_async(rt).iter_custom(|iters| {
                        let (store, fence, arrivals, appended) = (
                            fan.fixture.store.clone(),
                            fan.fence,
                            fan.arrivals.clone(),
                            fan.appended.clone(),
                        );
                        async move {
                            let mut timed = Duration::ZERO;
                            for i in 0..iters {
                                timed += deliver(&*store, fence, &arrivals, k, i)
                                    .await
                                    .expect("append_event");
                            }
                            appended.fetch_add(iters, Ordering::Relaxed);
                            timed
                        }
                    });
                },
                |fan| rt.block_on(fan.close(&format!("{group_name}/{name}/{k}"))),
            );
        }
    }
    group.finish();
}

fn main() {
    // Multi-threaded like the API and the worker; the stores spawn their listeners on it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut c = Criterion::default().configure_from_args();
    bench_claim(&mut c, &rt);
    bench_complete(&mut c, &rt);
    bench_checkpoint(&mut c, &rt);
    bench_fanout(&mut c, &rt, "event_fanout", Client::Hub);
    bench_fanout(&mut c, &rt, "event_fanout_sse", Client::Sse);
    c.final_summary();
}
