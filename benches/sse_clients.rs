//! Issue 6: one API process holds 10,000 concurrent SSE clients on 100 running jobs, every
//! event delivered, under 500 MB resident.
//!
//!     cargo bench --bench sse_clients                      # 10,000 clients, 100 jobs, PostgreSQL
//!     SSE_CLIENTS=1000 SSE_JOBS=10 cargo bench --bench sse_clients        # a quick smoke run
//!     SSE_STORE=sqlite cargo bench --bench sse_clients                   # or redis
//!
//! `SSE_JOIN=late` connects the clients halfway through the jobs instead, so each one
//! replays what it missed from the store and then switches to the live feed.
//!
//! Other knobs: `SSE_ITEMS` (50) and `SSE_ITEM_MS` (200) shape each demo job,
//! `SSE_CONNECT_CONCURRENCY` (256) bounds connections being opened at once; PostgreSQL and
//! Redis are found as the tests find them (`DROVER_TEST_PG`, `DROVER_TEST_REDIS`).
//!
//! It starts `drover serve` (API and workers in one process) on a fresh store, pauses a
//! queue of its own and submits the demo jobs there, so they wait while every client
//! connects: the events then reach the clients live, through the server's per-job feeds,
//! not from a replay. Once all clients are connected it resumes the queue; each client
//! reads until `end` and keeps the seqs it saw. Each client's seqs must equal its job's
//! whole event log as the store holds it: in order, no gap, nothing twice. The server's
//! VmRSS is sampled throughout, and VmHWM (its peak) is read before it is stopped; "KB per
//! client" is (RSS with every client connected - RSS idle) / clients. Exits 1 if any client
//! missed an event.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_queue::testing::Backend;
use drover_queue::Store;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

const QUEUE: &str = "sse_bench";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}: `{value}` is not a valid value")),
        Err(_) => default,
    }
}

/// Raises this process's open-file limit to the hard limit; `drover serve` inherits it.
fn raise_nofile() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        assert_eq!(
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit),
            0,
            "getrlimit"
        );
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0, "setrlimit");
    }
    limit.rlim_cur
}

/// `VmRSS` and `VmHWM` of `pid`, in kB (None once the process is gone).
fn memory_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// `drover serve` as a child process; killed when dropped.
struct Server {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Server {
    async fn start(store: &str, slots: usize, dir: &std::path::Path) -> Server {
        let log = dir.join("serve.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_drover"))
            .current_dir(dir)
            .args(["serve", "--store", store, "--bind", "127.0.0.1:0"])
            .arg("--enable-test-kinds")
            .args(["--slots", &slots.to_string()])
            .env("DROVER_WORKERS__POLL_INTERVAL", "100ms")
            // Every client holds an event stream: lift the default cap of 1,000.
            .env("DROVER_API__MAX_SSE_STREAMS", "1000000")
            .env("DROVER_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("serve log file"))
            .spawn()
            .expect("spawn drover serve");
        // It prints the address port 0 got; the pipe is drained afterwards so a later line
        // never meets a closed pipe.
        let stdout = child.stdout.take().expect("serve stdout");
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let _ = tx.send(lines.find(|line| {
                line.as_ref()
                    .map_or(true, |l| l.starts_with("drover API on "))
            }));
            lines.for_each(drop);
        });
        let line = match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(Some(Ok(line)))) => line,
            other => {
                let _ = child.kill();
                panic!(
                    "drover serve did not announce its address ({other:?}); see {}",
                    log.display()
                )
            }
        };
        let addr = line
            .strip_prefix("drover API on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line from drover serve: {line}"));
        Server {
            child,
            base: addr.to_string(),
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL if it has not stopped within 30 s.
    async fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> Value {
    let response = http.post(&url).json(&body).send().await.expect(&url);
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON answer");
    assert!(status.is_success(), "POST {url}: {status} {body}");
    body
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    seqs: Vec<i64>,
    ended: bool,
    error: Option<String>,
}

/// Follows one job's stream until `end`. `connected` is told once the response headers
/// arrived: the server has subscribed the client to the job's feed by then.
async fn follow(
    http: reqwest::Client,
    url: String,
    connect: Arc<Semaphore>,
    connected: mpsc::UnboundedSender<Result<(), String>>,
) -> Seen {
    let mut seen = Seen::default();
    let permit = connect.acquire_owned().await.expect("semaphore");
    let response = match http.get(&url).send().await {
        Ok(r) if r.status().is_success() => Ok(r),
        Ok(r) => Err(format!("status {}", r.status())),
        Err(err) => Err(format!("connect: {err}")),
    };
    drop(permit);
    let response = match response {
        Ok(r) => r,
        Err(err) => {
            let _ = connected.send(Err(err.clone()));
            seen.error = Some(err);
            return seen;
        }
    };
    let _ = connected.send(Ok(()));
    let mut body = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::new();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => buffer.extend_from_slice(&chunk),
            Err(err) => {
                seen.error = Some(format!("read: {err}"));
                return seen;
            }
        }
        // axum ends every event with a blank line ("\n\n").
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let block = String::from_utf8_lossy(&buffer[..end]).into_owned();
            buffer.drain(..end + 2);
            let (mut id, mut event) = (None, None);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse::<i64>().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_string());
                }
            }
            match (event.as_deref(), id) {
                (Some("end"), _) => {
                    seen.ended = true;
                    return seen;
                }
                (_, Some(seq)) => seen.seqs.push(seq),
                // A keep-alive comment.
                (None, None) => {}
                (Some(other), None) => {
                    seen.error = Some(format!("event `{other}` without an id"));
                    return seen;
                }
            }
        }
    }
    seen.error = Some("the stream closed before `end`".into());
    seen
}

/// Samples the server's VmRSS every 100 ms, keeping the highest value seen.
fn sample_rss(pid: u32, peak: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some((rss, _)) = memory_kb(pid) {
            peak.fetch_max(rss, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// The server's `drover_sse_clients` gauge.
async fn sse_clients_gauge(http: &reqwest::Client, base: &str) -> Option<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("drover_sse_clients "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let clients: usize = env_or("SSE_CLIENTS", 10_000);
    let jobs: usize = env_or("SSE_JOBS", 100);
    let items: u64 = env_or("SSE_ITEMS", 50);
    let item_ms: u64 = env_or("SSE_ITEM_MS", 200);
    let connect_concurrency: usize = env_or("SSE_CONNECT_CONCURRENCY", 256);
    let store_name: String = env_or("SSE_STORE", "postgres".to_string());
    let late = match env_or("SSE_JOIN", "before".to_string()).as_str() {
        "before" => false,
        "late" => true,
        other => panic!("SSE_JOIN: `{other}` is not before or late"),
    };
    assert!(
        jobs > 0 && clients >= jobs,
        "need SSE_CLIENTS >= SSE_JOBS > 0"
    );

    let nofile = raise_nofile();
    // Both ends of every connection live on this machine: the limit must cover the larger
    // side (the server also holds store connections and its own files).
    assert!(
        clients as u64 + 500 <= nofile,
        "RLIMIT_NOFILE hard limit {nofile} is too low for {clients} clients"
    );
    let backend = match store_name.as_str() {
        "postgres" => Backend::postgres(),
        "sqlite" => Backend::sqlite(),
        "redis" => Backend::redis(),
        other => panic!("SSE_STORE: `{other}` is not postgres, sqlite or redis"),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(&backend.url(), jobs, dir.path()).await;
    let base = server.base.clone();
    let pid = server.pid();
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = sample_rss(pid, peak_rss.clone());

    // HTTP/1.1 only: every stream is a connection of its own, as browsers' EventSource are.
    let http = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("HTTP client");
    let ready = Instant::now();
    while !http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            ready.elapsed() < Duration::from_secs(60),
            "the API never became healthy; see {}",
            server.log.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (baseline_kb, _) = memory_kb(pid).expect("server memory");

    // The jobs wait in a paused queue until every client is connected.
    post(&http, format!("{base}/v1/queues/{QUEUE}/pause"), json!({})).await;
    let batch: Vec<Value> = (0..jobs)
        .map(|i| {
            json!({
                "kind": "demo",
                "goal": format!("sse bench job {i}"),
                "queue": QUEUE,
                "config": {"items": items, "item_ms": item_ms, "checkpoint_every": 10},
            })
        })
        .collect();
    let submitted = post(&http, format!("{base}/v1/jobs/batch"), json!(batch)).await;
    let job_ids: Vec<uuid::Uuid> = submitted["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["id"].as_str().expect("id").parse().expect("a uuid"))
        .collect();
    assert_eq!(job_ids.len(), jobs);

    let resume = || post(&http, format!("{base}/v1/queues/{QUEUE}/resume"), json!({}));
    let mut run_started = Instant::now();
    if late {
        resume().await;
        run_started = Instant::now();
        tokio::time::sleep(Duration::from_millis(items * item_ms / 2)).await;
    }

    let connect = Arc::new(Semaphore::new(connect_concurrency));
    let (connected_tx, mut connected_rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let url = format!("{base}/v1/jobs/{}/events", job_ids[i % jobs]);
            tokio::spawn(follow(
                http.clone(),
                url,
                connect.clone(),
                connected_tx.clone(),
            ))
        })
        .collect();
    drop(connected_tx);
    let mut connect_errors = Vec::new();
    for _ in 0..clients {
        match connected_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(err)) => connect_errors.push(err),
            None => break,
        }
    }
    let connect_time = started.elapsed();
    // Let the replays of the first event settle before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (connected_kb, _) = memory_kb(pid).expect("server memory");
    let gauge = sse_clients_gauge(&http, &base).await;
    eprintln!(
        "{} clients connected in {:.1} s ({} failed); server gauge {:?}; RSS {:.0} MB; running the jobs",
        clients - connect_errors.len(),
        connect_time.as_secs_f64(),
        connect_errors.len(),
        gauge,
        mb(connected_kb),
    );

    if !late {
        resume().await;
        run_started = Instant::now();
    }
    let budget = Duration::from_millis(items * item_ms) * 4 + Duration::from_secs(300);
    let mut results = Vec::with_capacity(clients);
    for (i, task) in tasks.into_iter().enumerate() {
        let left = budget.saturating_sub(run_started.elapsed());
        let seen = match tokio::time::timeout(left, task).await {
            Ok(Ok(seen)) => seen,
            Ok(Err(err)) => Seen {
                error: Some(format!("client task: {err}")),
                ..Seen::default()
            },
            Err(_) => Seen {
                error: Some(format!("not finished after {budget:?}")),
                ..Seen::default()
            },
        };
        results.push((i % jobs, seen));
    }
    let run_time = run_started.elapsed();
    let (_, hwm_kb) = memory_kb(pid).expect("server memory");
    server.stop().await;
    sampler.abort();

    // The reference: each job's whole event log, read from the store itself.
    let store: Arc<dyn Store> = backend.open().await;
    let mut logs = Vec::with_capacity(jobs);
    for id in &job_ids {
        let log: Vec<i64> = store
            .events(*id, 0, 1_000_000)
            .await
            .expect("event log")
            .iter()
            .map(|e| e.seq)
            .collect();
        let gapless = log.iter().zip(1..).all(|(seq, want)| *seq == want);
        assert!(gapless, "job {id}: the stored log has a gap: {log:?}");
        logs.push(log);
    }
    let job_status = {
        let mut terminal = 0;
        for id in &job_ids {
            if store.get(*id).await.is_ok_and(|j| j.status.is_terminal()) {
                terminal += 1;
            }
        }
        terminal
    };
    drop(store);

    let mut complete = 0usize;
    let mut delivered = 0usize;
    let mut failures: Vec<String> = Vec::new();
    for (job, seen) in &results {
        delivered += seen.seqs.len();
        if seen.error.is_none() && seen.ended && seen.seqs == logs[*job] {
            complete += 1;
        } else if failures.len() < 10 {
            let missing = logs[*job].len().saturating_sub(seen.seqs.len());
            failures.push(format!(
                "job {}: got {} of {} events ({missing} short), ended {}, error {:?}",
                job_ids[*job],
                seen.seqs.len(),
                logs[*job].len(),
                seen.ended,
                seen.error,
            ));
        }
    }
    let expected: usize = results.iter().map(|(job, _)| logs[*job].len()).sum();
    let per_job: Vec<usize> = logs.iter().map(Vec::len).collect();
    let (min_events, max_events) = (
        per_job.iter().min().copied().unwrap_or(0),
        per_job.iter().max().copied().unwrap_or(0),
    );
    let all = complete == clients;
    let peak_kb = peak_rss.load(Ordering::Relaxed).max(hwm_kb);

    println!();
    println!("| store | join | clients | jobs | events per job | events delivered / expected | all delivered | connect all s | run s | RSS idle MB | RSS connected MB | peak RSS (VmHWM) MB | KB per client |");
    println!("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {store_name} | {} | {clients} | {jobs} | {} | {delivered} / {expected} | {} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {:.1} |",
        if late { "late" } else { "before" },
        if min_events == max_events {
            min_events.to_string()
        } else {
            format!("{min_events}–{max_events}")
        },
        if all { "yes" } else { "NO" },
        connect_time.as_secs_f64(),
        run_time.as_secs_f64(),
        mb(baseline_kb),
        mb(connected_kb),
        mb(peak_kb),
        connected_kb.saturating_sub(baseline_kb) as f64 / clients as f64,
    );
    if job_status != jobs {
        eprintln!("only {job_status} of {jobs} jobs reached a terminal status");
    }
    if !connect_errors.is_empty() {
        eprintln!(
            "first connect errors: {:?}",
            &connect_errors[..connect_errors.len().min(5)]
        );
    }
    for failure in &failures {
        eprintln!("{failure}");
    }
    backend.cleanup().await;
    if !all {
        eprintln!("{} of {clients} clients missed events", clients - complete);
        std::process::exit(1);
    }
}
