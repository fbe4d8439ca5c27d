//! The fleet test: `drover worker` processes on separate network hosts (Linux network
//! namespaces on a bridge), sharing one store — PostgreSQL, then the same scenarios on
//! Redis — through a proxy per host, running `demo` jobs whose effects land on a counting
//! server. Each scenario injects one kind of fault — a partition (link down) past the lease,
//! a SIGSTOP past the lease, a store restart (PostgreSQL fast stop; Redis with AOF, a clean
//! shutdown), repeated SIGKILLs — and reports jobs lost, jobs completed twice, effects repeated (only the
//! one in flight when a fault hit may be) and recovery time (fault → another worker holds
//! the job; target lease TTL + 1 s). It needs root; without it, it fails saying so.
//!
//! The scenarios take turns (a lock file), so each measures recovery on an otherwise idle
//! fleet: run them with `cargo nextest run -p drover --test fleet --no-capture` to see the
//! reports.

mod common;
#[path = "fleet/effects.rs"]
mod effects;
#[path = "fleet/harness.rs"]
mod harness;
#[path = "fleet/netns.rs"]
mod netns;
#[path = "fleet/proxy.rs"]
mod proxy;

use std::time::{Duration, Instant};

use common::pg_server::PgServer;
use common::redis_server::RedisServer;
use common::*;
use drover_queue::testing::Backend;
use harness::{Fleet, LEASE_TTL};

/// The store a scenario runs on.
#[derive(Clone, Copy)]
enum Kind {
    Postgres,
    Redis,
}

impl Kind {
    /// A private schema (PostgreSQL) or key prefix (Redis) on the shared server.
    fn shared(self) -> Backend {
        match self {
            Kind::Postgres => Backend::postgres(),
            Kind::Redis => Backend::redis(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::Redis => "redis",
        }
    }
}

/// A store server of the test's own, to stop and start.
enum Private {
    Postgres(PgServer),
    Redis(RedisServer),
}

impl Private {
    async fn start(kind: Kind) -> Private {
        match kind {
            Kind::Postgres => Private::Postgres(PgServer::start()),
            Kind::Redis => {
                let server = Private::Redis(RedisServer::start());
                server.await_accepting().await;
                server
            }
        }
    }

    fn url(&self) -> String {
        match self {
            Private::Postgres(server) => pg_schema_url(&server.url()),
            Private::Redis(server) => server.url("fleet"),
        }
    }

    async fn await_accepting(&self) {
        let url = self.url();
        eventually(
            Duration::from_secs(30),
            "the store server to accept connections",
            || async {
                drover_queue::connect(&url, Default::default())
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
    }

    /// PostgreSQL: a fast stop. Redis: a clean shutdown, which flushes the AOF.
    async fn stop(&mut self) {
        match self {
            Private::Postgres(server) => server.stop("fast"),
            Private::Redis(server) => server.shutdown().await,
        }
    }

    /// Starts the server again, on the same port and data, and waits until it accepts.
    async fn restart(&mut self) {
        match self {
            Private::Postgres(server) => server.pg_ctl_start(),
            Private::Redis(server) => server.launch(),
        }
        self.await_accepting().await;
    }
}

/// Partition or SIGSTOP: the victim lives on, cut off or frozen, past its lease.
#[derive(Clone, Copy, PartialEq)]
enum Zombie {
    Partition,
    Stop,
}

async fn zombie_is_fenced(kind: Kind, nemesis: Zombie) {
    let (scenario, what) = match nemesis {
        Zombie::Partition => ("partition", "link down on h1"),
        Zombie::Stop => ("sigstop", "SIGSTOP to h1's worker"),
    };
    let scenario = format!("{}/{scenario}", kind.name());
    let backend = kind.shared();
    let mut fleet = Fleet::new(3, backend.url()).await;
    // 8 jobs on 12 slots: the survivors have room for h1's jobs. h1 starts first, so it
    // holds some.
    fleet.enqueue(8, 20, 100).await;
    fleet.start_worker("h1");
    fleet.mid_run("h1", 3).await;
    fleet.start_worker("h2");
    fleet.start_worker("h3");
    fleet.mid_run("h1", 5).await;
    let log_at_fault = fleet.log_tail("h1", usize::MAX).len();

    match nemesis {
        Zombie::Partition => fleet.net.partition("h1"),
        Zombie::Stop => fleet.worker("h1").signal(libc::SIGSTOP),
    }
    let at = Instant::now();
    let fault = fleet.record_fault(what, Some("h1"), true, at).await;
    assert!(
        !fleet.faults[fault].held.is_empty(),
        "h1 held jobs at the fault"
    );
    fleet.await_takeover(fault).await;
    // Keep the fault for twice the lease, then end it.
    tokio::time::sleep_until((at + 2 * LEASE_TTL).into()).await;
    assert!(fleet.worker("h1").running(), "h1's worker is alive");
    match nemesis {
        Zombie::Partition => fleet.net.heal("h1"),
        Zombie::Stop => fleet.worker("h1").signal(libc::SIGCONT),
    }
    let ended = Instant::now();

    // h1 learns it lost its leases: from the store, which refuses its renewal (the fence),
    // or by itself, when no renewal landed for a whole lease (it then stops writing).
    let how = eventually(
        Duration::from_secs(30),
        "h1 to know it lost its leases",
        || async {
            let log = fleet.log_tail("h1", usize::MAX);
            let new = log.get(log_at_fault..).unwrap_or("");
            if new.contains("heartbeat: lease lost") {
                Some(format!(
                    "the store refused its renewal ({:.2} s after the fault ended)",
                    ended.elapsed().as_secs_f64()
                ))
            } else if new.contains("lease lost") {
                Some(
                    "it stopped its runs by itself (no renewal landed for a whole lease)"
                        .to_string(),
                )
            } else {
                None
            }
        },
    )
    .await;

    // It rejoins: more work than the other two hosts have slots for (the first 8 jobs are
    // done by now), so h1 must claim some. With 6, h2 and h3 could take them all at once
    // (seen on Redis, where their wake-ups come by pub/sub) and h1 none.
    let more = fleet.enqueue(12, 20, 100).await;
    fleet.drain(Duration::from_secs(90)).await;
    let mut rejoined = 0;
    for id in &more {
        let events = fleet.store.events(*id, 0, 10_000).await.expect("events");
        rejoined += events.iter().any(|e| {
            e.kind == "status" && e.data["status"] == "completed" && e.data["worker"] == "h1"
        }) as usize;
    }
    let mut report = fleet.report(&scenario).await;
    report.notes.push(format!(
        "fault lasted {:.1} s; h1 learnt it lost its leases: {how}; h1 finished {rejoined} of {} \
         jobs enqueued after",
        (ended - at).as_secs_f64(),
        more.len()
    ));
    report.assert_clean();
    assert!(rejoined >= 1, "h1 took work again after the fault ended");
    assert!(fleet.worker("h1").running(), "h1's worker is alive");
    drop(fleet);
    backend.cleanup().await;
}

async fn fleet_rides_out_a_store_restart(kind: Kind) {
    let mut server = Private::start(kind).await;
    let mut fleet = Fleet::new(3, server.url()).await;
    fleet.enqueue(24, 20, 100).await;
    fleet.start_all();
    eventually(
        Duration::from_secs(30),
        "every host to be at work",
        || async {
            let log = fleet.effects.deliveries();
            fleet
                .hosts()
                .iter()
                .all(|h| log.iter().any(|d| d.from == fleet.host_addr(h)))
                .then_some(())
        },
    )
    .await;

    server.stop().await;
    let down = Instant::now();
    // Every job is hit: any effect in flight now may be performed again.
    fleet
        .record_fault(&format!("{} stopped", kind.name()), None, false, down)
        .await;
    // The outage: workers see connections refused.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for host in fleet.hosts() {
        assert!(fleet.worker(&host).running(), "{host} survived the outage");
    }
    server.restart().await;
    let up = Instant::now();

    // Recovery: from the store accepting again to each host delivering a new effect.
    let recovery = eventually(
        Duration::from_secs(30),
        "every host to deliver effects again",
        || async {
            let log = fleet.effects.deliveries();
            let mut per_host = Vec::new();
            for host in fleet.hosts() {
                let from = fleet.host_addr(&host);
                let first = log.iter().find(|d| d.from == from && d.at > up)?;
                per_host.push(first.at - up);
            }
            Some(per_host)
        },
    )
    .await;
    fleet.drain(Duration::from_secs(90)).await;
    for host in fleet.hosts() {
        assert!(fleet.worker(&host).running(), "{host} still running");
    }
    let mut report = fleet.report(&format!("{}/restart", kind.name())).await;
    report.notes.push(format!(
        "outage {:.2} s (stop to accepting again); recovery here is from accepting again to \
         each host's next effect",
        (up - down).as_secs_f64()
    ));
    report.recovery.extend(recovery);
    report.assert_clean();
    drop(fleet);
    drop(server);
}

async fn repeatedly_killed_worker_loses_and_repeats_nothing(kind: Kind) {
    let backend = kind.shared();
    let mut fleet = Fleet::new(3, backend.url()).await;
    // 9 jobs queued or running at all times, on 12 slots.
    let feeder = fleet.feed(9, 16, 100);
    fleet.start_all();

    let until = Instant::now() + Duration::from_secs(36);
    let mut kills = 0;
    while Instant::now() < until {
        let id = fleet.worker("h3").id.clone();
        fleet.mid_run(&id, 1).await;
        // Somewhere in an item: before, during or after its effect.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..700))).await;
        fleet.worker("h3").kill9();
        let at = Instant::now();
        let fault = fleet
            .record_fault(&format!("SIGKILL of {id}"), Some(&id), false, at)
            .await;
        fleet.start_worker("h3");
        fleet.await_takeover(fault).await;
        kills += 1;
    }
    fleet.stop_feeding(feeder).await;
    fleet.drain(Duration::from_secs(120)).await;
    let mut report = fleet
        .report(&format!("{}/repeated-kills", kind.name()))
        .await;
    let held: usize = fleet.faults.iter().map(|f| f.held.len()).sum();
    report.notes.push(format!(
        "{kills} SIGKILLs of h3 in {:.0} s, {held} held jobs taken over",
        report.wall.as_secs_f64()
    ));
    report.assert_clean();
    assert!(kills >= 6, "only {kills} kills: the fleet ran out of work");
    drop(fleet);
    backend.cleanup().await;
}

/// The scenarios, once per store: `postgres::…` and `redis::…`.
macro_rules! scenarios {
    ($store:ident, $kind:expr) => {
        mod $store {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn partitioned_host_is_fenced_and_its_jobs_finish_elsewhere() {
                zombie_is_fenced($kind, Zombie::Partition).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sigstopped_host_is_fenced_and_its_jobs_finish_elsewhere() {
                zombie_is_fenced($kind, Zombie::Stop).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fleet_rides_out_a_store_restart() {
                super::fleet_rides_out_a_store_restart($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn repeatedly_killed_worker_loses_and_repeats_nothing() {
                super::repeatedly_killed_worker_loses_and_repeats_nothing($kind).await;
            }
        }
    };
}

scenarios!(postgres, Kind::Postgres);
scenarios!(redis, Kind::Redis);
