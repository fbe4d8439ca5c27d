//! The fleet: hosts (network namespaces) each running one `drover worker` process, every
//! host reaching PostgreSQL through its own proxy on the bridge, `demo` jobs whose effects
//! land on the counting server, and the checker that turns a run into a [`Report`].

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_queue::{Job, JobFilter, JobId, JobStatus, NewJob, Store};
use serde_json::json;

use crate::common::{eventually, open, status_count, worker_command, WorkerProcess};
use crate::effects::EffectServer;
use crate::netns::Net;
use crate::proxy::Proxy;

/// The workers' lease: short, so a run sees several takeovers in seconds.
pub const LEASE_TTL: Duration = Duration::from_secs(2);
/// What a takeover may take, from the fault to another worker holding the job.
pub const RECOVERY_TARGET: Duration = Duration::from_millis(LEASE_TTL.as_millis() as u64 + 1000);
/// What the test asserts: a takeover within three leases (see `Report::assert_clean`).
pub const RECOVERY_LIMIT: Duration = Duration::from_millis(LEASE_TTL.as_millis() as u64 * 3);
/// Slots per worker: the fleet runs below capacity, so a job taken back is claimed at once
/// and the recovery measured is the takeover, not a wait for a free slot.
pub const SLOTS: u32 = 4;

/// Fleet tests take turns (also across worktrees): a takeover measured against
/// `RECOVERY_TARGET` on a 2-core machine should not share it with three other fleets.
pub struct Turn {
    _lock: std::fs::File,
}

impl Turn {
    pub fn take() -> Turn {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/tmp/drover-fleet-test.lock")
            .expect("open /tmp/drover-fleet-test.lock");
        // SAFETY: flock(2) on a descriptor we own; released when the file is closed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
        Turn { _lock: file }
    }
}

/// `url` with its `host:port` replaced by `addr`.
fn with_authority(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (authority, path) = rest.split_once('/').expect("a URL with a database");
    let userinfo = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{userinfo}{addr}/{path}")
}

/// The `host:port` of `url`, resolved.
fn upstream(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("a URL with a scheme").1;
    let authority = rest.split('/').next().expect("an authority");
    let hostport = authority.rsplit('@').next().expect("host:port");
    hostport
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("resolve {hostport}"))
}

fn demo_job(i: usize, items: u64, item_ms: u64, effect_url: &str) -> NewJob {
    NewJob::new("demo", format!("fleet {i}"))
        .config(json!({
            "items": items, "item_ms": item_ms, "checkpoint_every": 4, "effect_url": effect_url,
        }))
        // Faults cost attempts (a takeover is one): none of them may fail a job.
        .max_attempts(50)
}

async fn enqueue(store: &dyn Store, jobs: Vec<NewJob>) -> Vec<JobId> {
    store
        .enqueue_batch(jobs)
        .await
        .expect("enqueue")
        .iter()
        .map(|e| e.job().id)
        .collect()
}

/// A task keeping the fleet busy (see [`Fleet::feed`]).
pub struct Feeder {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<JobId>>,
}

/// A fault, as the checker needs it.
pub struct Fault {
    pub what: String,
    /// The worker hit (None: every host, as a store restart hits them all).
    pub victim: Option<String>,
    /// True when the victim lives on and must be fenced (SIGSTOP, partition).
    pub zombie: bool,
    pub at: Instant,
    /// The victim's running jobs at the fault, with their lease epoch.
    pub held: Vec<(JobId, i64)>,
    /// Per job, the effects that may repeat: the item in flight when the fault hit (the
    /// last delivered before it, whose result may not be recorded, and the next).
    pub window: HashMap<String, [u64; 2]>,
    /// Per held job, when another worker held it (the recovery).
    pub taken_over: HashMap<JobId, Duration>,
    /// Held jobs the victim itself completed, at the epoch it held, while that lease was
    /// still valid: its completion was already on the wire when the fault hit (a SIGKILLed
    /// worker's last write still reaches PostgreSQL through the socket and the proxy, after
    /// `held` was read). Not a takeover, and not a fence violation.
    pub finished_in_flight: Vec<JobId>,
}

pub struct Fleet {
    // Fields drop in order: the workers go before their namespaces.
    pub workers: BTreeMap<String, WorkerProcess>,
    incarnations: HashMap<String, u32>,
    pub effects: EffectServer,
    proxies: BTreeMap<String, Proxy>,
    pub store: Arc<dyn Store>,
    /// The test's own store URL (not through a proxy).
    pub url: String,
    logs: Option<tempfile::TempDir>,
    pub net: Net,
    pub jobs: Vec<JobId>,
    pub items: u64,
    pub faults: Vec<Fault>,
    started: Instant,
    _turn: Turn,
}

impl Fleet {
    /// `hosts` hosts on the store at `url` (a schema URL); no worker runs yet.
    pub async fn new(hosts: usize, url: String) -> Fleet {
        crate::netns::require_namespaces();
        let turn = Turn::take();
        let net = Net::create(hosts);
        let store = open(&url).await;
        let gateway = IpAddr::V4(net.gateway());
        let effects = EffectServer::start(gateway).await;
        let mut proxies = BTreeMap::new();
        for host in &net.hosts {
            proxies.insert(
                host.name.clone(),
                Proxy::start(gateway, upstream(&url)).await,
            );
        }
        Fleet {
            workers: BTreeMap::new(),
            incarnations: HashMap::new(),
            effects,
            proxies,
            store,
            url,
            logs: Some(tempfile::tempdir().expect("temp dir")),
            net,
            jobs: Vec::new(),
            items: 0,
            faults: Vec::new(),
            started: Instant::now(),
            _turn: turn,
        }
    }

    pub fn hosts(&self) -> Vec<String> {
        self.net.hosts.iter().map(|h| h.name.clone()).collect()
    }

    fn logs(&self) -> &std::path::Path {
        self.logs.as_ref().expect("logs").path()
    }

    /// Starts (or restarts) `host`'s worker, inside its namespace, on its proxy. A restart
    /// is a new worker id, `<host>.<n>`.
    pub fn start_worker(&mut self, host: &str) -> String {
        let n = self.incarnations.entry(host.to_string()).or_default();
        *n += 1;
        let id = if *n == 1 {
            host.to_string()
        } else {
            format!("{host}.{n}")
        };
        let url = with_authority(&self.url, self.proxies[host].addr);
        let mut command = worker_command(&url, &id, SLOTS, self.logs());
        command.env(
            "DROVER_WORKERS__LEASE_TTL",
            format!("{}ms", LEASE_TTL.as_millis()),
        );
        self.net.host(host).enter(&mut command);
        self.workers
            .insert(host.to_string(), WorkerProcess::spawn(&id, command));
        id
    }

    pub fn start_all(&mut self) {
        for host in self.hosts() {
            self.start_worker(&host);
        }
    }

    pub fn worker(&mut self, host: &str) -> &mut WorkerProcess {
        self.workers.get_mut(host).expect("a worker on that host")
    }

    pub fn host_addr(&self, host: &str) -> IpAddr {
        IpAddr::V4(self.net.host(host).addr)
    }

    /// The host a worker id runs on.
    fn host_of(id: &str) -> &str {
        id.split('.').next().unwrap_or(id)
    }

    /// Enqueues `count` demo jobs of `items` items, `item_ms` each, with effects.
    pub async fn enqueue(&mut self, count: usize, items: u64, item_ms: u64) -> Vec<JobId> {
        self.items = items;
        let jobs = (0..count)
            .map(|i| demo_job(i, items, item_ms, &self.effects.url))
            .collect();
        let ids = enqueue(&*self.store, jobs).await;
        self.jobs.extend(&ids);
        ids
    }

    /// Keeps `active` demo jobs queued or running until [`Fleet::stop_feeding`].
    pub fn feed(&mut self, active: usize, items: u64, item_ms: u64) -> Feeder {
        self.items = items;
        let store = self.store.clone();
        let url = self.effects.url.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut ids = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let mut n = 0;
                for status in [JobStatus::Queued, JobStatus::Running] {
                    n += store
                        .list(&JobFilter {
                            status: Some(status),
                            limit: 100,
                            ..Default::default()
                        })
                        .await
                        .map(|page| page.jobs.len())
                        .unwrap_or(active);
                }
                if n < active {
                    let jobs = (n..active)
                        .map(|i| demo_job(ids.len() + i, items, item_ms, &url))
                        .collect();
                    ids.extend(enqueue(&*store, jobs).await);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            ids
        });
        Feeder { stop, task }
    }

    pub async fn stop_feeding(&mut self, feeder: Feeder) {
        feeder.stop.store(true, Ordering::Relaxed);
        self.jobs.extend(feeder.task.await.expect("feeder"));
    }

    pub async fn running(&self) -> Vec<Job> {
        let mut jobs = Vec::new();
        let mut before = None;
        loop {
            let page = self
                .store
                .list(&JobFilter {
                    status: Some(JobStatus::Running),
                    before,
                    limit: 500,
                    ..Default::default()
                })
                .await
                .expect("list running");
            jobs.extend(page.jobs);
            match page.next {
                Some(next) => before = Some(next),
                None => return jobs,
            }
        }
    }

    /// Running jobs held by worker `id`.
    pub async fn held_by(&self, id: &str) -> Vec<Job> {
        self.running()
            .await
            .into_iter()
            .filter(|j| j.lease_owner.as_deref() == Some(id))
            .collect()
    }

    /// Waits until worker `id` holds a job it has delivered at least `delivered` effects
    /// of (so a fault falls in the middle of a run), and returns it.
    pub async fn mid_run(&self, id: &str, delivered: usize) -> Job {
        let from = self.host_addr(Self::host_of(id));
        eventually(
            Duration::from_secs(30),
            &format!("{id} to be in the middle of a job"),
            || async {
                let held = self.held_by(id).await;
                let log = self.effects.deliveries();
                held.into_iter().find(|job| {
                    let key = job.id.to_string();
                    log.iter()
                        .filter(|d| d.job == key && d.from == from)
                        .count()
                        >= delivered
                })
            },
        )
        .await
    }

    /// The effects in flight for each job at `at` (see [`Fault::window`]).
    fn window_at(&self, jobs: &[JobId], at: Instant) -> HashMap<String, [u64; 2]> {
        let log = self.effects.deliveries();
        jobs.iter()
            .map(|id| {
                let key = id.to_string();
                let last = log
                    .iter()
                    .filter(|d| d.job == key && d.at <= at)
                    .map(|d| d.item)
                    .max();
                let window = match last {
                    Some(k) => [k, k + 1],
                    None => [0, 0],
                };
                (key, window)
            })
            .collect()
    }

    /// Records a fault that just hit worker `victim` (or every host when `None`), with the
    /// jobs it held; `held` overrides the store's view (a store restart is recorded before
    /// the store goes away).
    pub async fn record_fault(
        &mut self,
        what: &str,
        victim: Option<&str>,
        zombie: bool,
        at: Instant,
    ) -> usize {
        let held: Vec<(JobId, i64)> = match victim {
            Some(id) => self
                .held_by(id)
                .await
                .iter()
                .map(|j| (j.id, j.lease_epoch))
                .collect(),
            None => Vec::new(),
        };
        let window_jobs: Vec<JobId> = match victim {
            Some(_) => held.iter().map(|(id, _)| *id).collect(),
            None => self.jobs.clone(),
        };
        let window = self.window_at(&window_jobs, at);
        self.faults.push(Fault {
            what: what.to_string(),
            victim: victim.map(String::from),
            zombie,
            at,
            held,
            window,
            taken_over: HashMap::new(),
            finished_in_flight: Vec::new(),
        });
        self.faults.len() - 1
    }

    /// Waits until every job the fault's victim held is held (or finished) by another
    /// worker, recording when, or was completed by the victim's own write in flight at the
    /// fault (see [`Fault::finished_in_flight`]); returns the longest takeover.
    pub async fn await_takeover(&mut self, fault: usize) -> Duration {
        let victim = self.faults[fault]
            .victim
            .clone()
            .expect("a fault with a victim");
        let held = self.faults[fault].held.clone();
        let at = self.faults[fault].at;
        let deadline = at + Duration::from_secs(30);
        let mut taken: HashMap<JobId, Duration> = HashMap::new();
        let mut in_flight: Vec<JobId> = Vec::new();
        while taken.len() + in_flight.len() < held.len() {
            assert!(
                Instant::now() < deadline,
                "{}: jobs of {victim} not taken over in 30 s: {:?}",
                self.faults[fault].what,
                held.iter()
                    .filter(|(id, _)| !taken.contains_key(id) && !in_flight.contains(id))
                    .collect::<Vec<_>>()
            );
            for (id, epoch) in &held {
                if taken.contains_key(id) || in_flight.contains(id) {
                    continue;
                }
                let Ok(job) = self.store.get(*id).await else {
                    continue;
                };
                let own_completion = job.status == JobStatus::Completed
                    && job.lease_epoch == *epoch
                    && job.lease_owner.as_deref() == Some(victim.as_str());
                if own_completion {
                    // Seen within the lease the victim held: its last write, sent before
                    // the fault. Later, it would be a completion past the lease, which the
                    // report flags (`finished_by_victim`).
                    assert!(
                        at.elapsed() < LEASE_TTL,
                        "{}: {id} completed by {victim} at epoch {epoch} after its lease ran out",
                        self.faults[fault].what
                    );
                    in_flight.push(*id);
                    continue;
                }
                let elsewhere = job.lease_epoch > *epoch
                    && job.lease_owner.as_deref() != Some(victim.as_str())
                    && (job.status == JobStatus::Running || job.status.is_terminal());
                if elsewhere {
                    taken.insert(*id, at.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let longest = taken.values().max().copied().unwrap_or_default();
        self.faults[fault].taken_over = taken;
        self.faults[fault].finished_in_flight = in_flight;
        longest
    }

    /// Waits for every job to finish (within `within`).
    pub async fn drain(&self, within: Duration) {
        eventually(within, "every fleet job to finish", || async {
            for id in &self.jobs {
                match self.store.get(*id).await {
                    Ok(job) if job.status.is_terminal() => {}
                    _ => return None,
                }
            }
            Some(())
        })
        .await;
    }

    /// The last `lines` lines of worker `id`'s log, without colours.
    pub fn log_tail(&self, id: &str, lines: usize) -> String {
        let raw =
            std::fs::read_to_string(self.logs().join(format!("{id}.log"))).unwrap_or_default();
        let mut log = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // ESC [ … m
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                log.push(c);
            }
        }
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Checks the run and prints its report: every job completed exactly once with all its
    /// effects, no effect repeated outside a fault's window, no effect by a fenced worker
    /// after its fault other than the one in flight.
    pub async fn report(&self, scenario: &str) -> Report {
        let mut report = Report {
            scenario: scenario.to_string(),
            jobs: self.jobs.len(),
            wall: self.started.elapsed(),
            ..Report::default()
        };
        let mut finisher: HashMap<JobId, Option<String>> = HashMap::new();
        for id in &self.jobs {
            let job = self.store.get(*id).await.expect("get");
            let done = job.status == JobStatus::Completed
                && job.result == Some(json!({ "items_processed": self.items }));
            if !done {
                report
                    .lost
                    .push(format!("{id}: {:?} {:?}", job.status, job.error));
            }
            if status_count(&*self.store, *id, JobStatus::Completed).await > 1 {
                report.completed_twice.push(id.to_string());
            }
            let events = self.store.events(*id, 0, 100_000).await.expect("events");
            finisher.insert(
                *id,
                events
                    .iter()
                    .rev()
                    .find(|e| e.kind == "status" && e.data["status"] == "completed")
                    .and_then(|e| e.data["worker"].as_str().map(String::from)),
            );
        }
        let log = self.effects.deliveries();
        report.effects = log.len();
        let counts = self.effects.counts();
        for id in &self.jobs {
            for item in 0..self.items {
                if !counts.contains_key(&format!("{id}/{item}")) {
                    report.effects_missing.push(format!("{id}/{item}"));
                }
            }
        }
        for (key, n) in &counts {
            if *n < 2 {
                continue;
            }
            report.effects_repeated.push(key.clone());
            let (job, item) = key.split_once('/').expect("job/item");
            let item: u64 = item.parse().expect("item");
            let in_window = self
                .faults
                .iter()
                .any(|f| f.window.get(job).is_some_and(|w| w.contains(&item)));
            if *n > 2 || !in_window {
                report
                    .effects_outside_window
                    .push(format!("{key} ×{n} (in a fault's window: {in_window})"));
            }
        }
        for fault in &self.faults {
            report.recovery.extend(fault.taken_over.values().copied());
            let Some(victim) = &fault.victim else {
                continue;
            };
            report.finished_in_flight += fault.finished_in_flight.len();
            for (id, _) in &fault.held {
                if fault.finished_in_flight.contains(id) {
                    continue;
                }
                if finisher.get(id).cloned().flatten().as_deref() == Some(victim.as_str()) {
                    report
                        .finished_by_victim
                        .push(format!("{id} ({})", fault.what));
                }
            }
            if !fault.zombie {
                continue;
            }
            // The zombie's host sent nothing for the jobs it lost after the fault but the
            // effect that was in flight.
            let from = self.host_addr(Self::host_of(victim));
            for (id, _) in &fault.held {
                let key = id.to_string();
                let late: Vec<u64> = log
                    .iter()
                    .filter(|d| d.job == key && d.from == from && d.at > fault.at)
                    .map(|d| d.item)
                    .collect();
                let in_flight = fault.window.get(&key).map(|w| w[1]);
                report.zombie_in_flight += late.iter().filter(|i| Some(**i) == in_flight).count();
                let outside: Vec<u64> = late
                    .iter()
                    .copied()
                    .filter(|i| Some(*i) != in_flight)
                    .collect();
                if !outside.is_empty() || late.len() > 1 {
                    report.zombie_effects.push(format!(
                        "{id}: items {late:?} after {}, in flight {in_flight:?}",
                        fault.what
                    ));
                }
            }
        }
        report
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(logs) = self.logs.take() {
                let path = logs.keep();
                eprintln!("fleet: worker logs kept in {}", path.display());
            }
        }
    }
}

/// What a scenario measured.
#[derive(Debug, Default)]
pub struct Report {
    pub scenario: String,
    pub jobs: usize,
    pub effects: usize,
    pub wall: Duration,
    /// Jobs not completed with every item processed.
    pub lost: Vec<String>,
    pub completed_twice: Vec<String>,
    /// Items never delivered.
    pub effects_missing: Vec<String>,
    /// Keys delivered more than once.
    pub effects_repeated: Vec<String>,
    /// Repeats not explained by a fault's in-flight window, or more than two deliveries.
    pub effects_outside_window: Vec<String>,
    /// Effects a fenced (stopped or cut off) worker sent after its fault beyond the one
    /// in flight.
    pub zombie_effects: Vec<String>,
    /// In-flight effects a fenced worker's POST delivered after its fault (allowed).
    pub zombie_in_flight: usize,
    /// Held jobs the faulted worker still completed, other than by a write in flight at
    /// the fault.
    pub finished_by_victim: Vec<String>,
    /// Held jobs completed by the victim's write in flight at the fault (allowed).
    pub finished_in_flight: usize,
    /// Per taken-over job, from the fault to another worker holding it.
    pub recovery: Vec<Duration>,
    /// Extra figures a scenario adds.
    pub notes: Vec<String>,
}

impl Report {
    pub fn max_recovery(&self) -> Duration {
        self.recovery.iter().max().copied().unwrap_or_default()
    }

    /// Prints the report, then makes the assertions every scenario makes.
    pub fn assert_clean(&self) {
        println!("{self}");
        assert!(
            self.lost.is_empty(),
            "{}: jobs lost {:?}",
            self.scenario,
            self.lost
        );
        assert!(
            self.completed_twice.is_empty(),
            "{}: jobs completed twice {:?}",
            self.scenario,
            self.completed_twice
        );
        assert!(
            self.effects_missing.is_empty(),
            "{}: effects never performed {:?}",
            self.scenario,
            self.effects_missing
        );
        assert!(
            self.effects_outside_window.is_empty(),
            "{}: effects repeated outside the documented window {:?}",
            self.scenario,
            self.effects_outside_window
        );
        assert!(
            self.zombie_effects.is_empty(),
            "{}: effects by a worker after it lost its lease {:?}",
            self.scenario,
            self.zombie_effects
        );
        assert!(
            self.finished_by_victim.is_empty(),
            "{}: jobs finished by the worker that lost them {:?}",
            self.scenario,
            self.finished_by_victim
        );
        // The target (lease + 1 s) is reported by `line`; the assertion allows three leases so
        // that the rest of the suite sharing these 2 cores in CI cannot turn a scheduling
        // delay into a red run, while a takeover that does not happen still fails it.
        assert!(
            self.max_recovery() <= RECOVERY_LIMIT,
            "{}: recovery {:?} over {RECOVERY_LIMIT:?} (target {RECOVERY_TARGET:?}: lease {LEASE_TTL:?} + 1 s): {:?}",
            self.scenario,
            self.max_recovery(),
            self.recovery
        );
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut recovery: Vec<f64> = self.recovery.iter().map(|d| d.as_secs_f64()).collect();
        recovery.sort_by(f64::total_cmp);
        let recovery: Vec<String> = recovery.iter().map(|s| format!("{s:.2}")).collect();
        write!(
            f,
            "fleet[{}]: {} jobs, {} effects, wall {:.1} s | lost {} | completed twice {} | \
             effects missing {} | effects repeated {} (outside the window {}) | zombie effects \
             {} (in flight, allowed: {}) | held jobs the victim's in-flight write completed {} | \
             recovery s [{}] max {:.2} (target {:.1})",
            self.scenario,
            self.jobs,
            self.effects,
            self.wall.as_secs_f64(),
            self.lost.len(),
            self.completed_twice.len(),
            self.effects_missing.len(),
            self.effects_repeated.len(),
            self.effects_outside_window.len(),
            self.zombie_effects.len(),
            self.zombie_in_flight,
            self.finished_in_flight,
            recovery.join(", "),
            self.max_recovery().as_secs_f64(),
            RECOVERY_TARGET.as_secs_f64(),
        )?;
        for note in &self.notes {
            write!(f, " | {note}")?;
        }
        Ok(())
    }
}
