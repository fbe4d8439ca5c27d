//! Redis Cluster, for real: the test starts a local 3-master cluster (`redis-server
//! --cluster-enabled yes` on three free ports in a temp dir, `redis-cli --cluster create`),
//! waits for `cluster_state:ok` on every node, then runs the core of the store conformance
//! suite (`queue/tests/conformance/suite/`) on a `redis+cluster://` URL naming one node
//! only (the others are discovered), and a pool of two `drover worker` processes. The
//! servers are killed when the test ends, also when it fails.

mod common;
#[path = "../queue/tests/conformance/suite/mod.rs"]
#[allow(dead_code, unused_imports)]
mod suite;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use drover_queue::testing::Backend;
use drover_queue::NewJob;
use serde_json::json;

/// Three masters, no replicas; killed on drop.
struct Cluster {
    _dir: tempfile::TempDir,
    ports: Vec<u16>,
    servers: Vec<Child>,
}

/// A port free for Redis and for its cluster bus (the port + 10000).
fn free_port(taken: &[u16]) -> u16 {
    loop {
        let port = fastrand::u16(20_000..40_000);
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if !taken.contains(&port) && free(port) && free(port + 10_000) {
            return port;
        }
    }
}

fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

impl Cluster {
    async fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = Cluster {
            _dir: dir,
            ports: Vec::new(),
            servers: Vec::new(),
        };
        for _ in 0..3 {
            let port = free_port(&cluster.ports);
            let server = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .args(["--appendonly", "no", "--save", ""])
                .arg("--dir")
                .arg(cluster._dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server (Debian's redis-server package)");
            cluster.ports.push(port);
            cluster.servers.push(server);
        }
        for port in cluster.ports.clone() {
            eventually(
                Duration::from_secs(30),
                &format!("redis-server on {port} to answer"),
                || async { redis_cli(port, &["ping"]).filter(|r| r.trim() == "PONG") },
            )
            .await;
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli");
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        for port in cluster.ports.clone() {
            eventually(
                Duration::from_secs(30),
                &format!("cluster_state:ok on {port}"),
                || async {
                    redis_cli(port, &["cluster", "info"])
                        .filter(|info| info.contains("cluster_state:ok"))
                        .map(|_| ())
                },
            )
            .await;
        }
        cluster
    }

    /// The node list a `redis+cluster://` URL takes: one node; the client finds the rest.
    fn seed(&self) -> String {
        format!("127.0.0.1:{}", self.ports[0])
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

/// Runs suite tests one after the other, each on a fresh prefix of the cluster.
macro_rules! run_suite {
    ($cluster:expr, $($test:ident),* $(,)?) => {
        $(
            let backend = Backend::redis_cluster(&$cluster.seed());
            suite::$test(&backend).await;
            println!("redis cluster: {} ok", stringify!($test));
        )*
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_conformance_and_a_worker_pool_on_a_three_master_cluster() {
    let cluster = Cluster::start().await;

    // The prefix's slot is on one of the three masters; which one varies by prefix, so
    // across these tests all three serve some.
    run_suite!(
        cluster,
        migrations_are_idempotent_and_concurrent,
        enqueue_stores_every_field,
        invalid_jobs_are_refused_naming_the_field,
        operator_transitions_follow_the_status_machine,
        claim_order_is_priority_then_run_at_then_id,
        claim_takes_at_most_the_free_slots,
        no_job_is_claimed_twice_by_concurrent_claimers,
        stale_epochs_are_fenced,
        batch_completion_fences_each_job,
        batches_larger_than_one_statement_keep_every_job,
        expired_leases_are_requeued_or_settled,
        racing_transitions_each_land_once,
        transient_failures_retry_after_backoff,
        idempotency_keys_dedupe_or_conflict,
        full_queues_refuse_enqueues,
        paused_queues_are_not_leased,
        checkpoints_keep_the_newest,
        event_log_is_sequenced_without_gaps,
        list_filters_and_pages_newest_first,
        one_leader_at_a_time,
        workers_report_their_heartbeat,
        notifier_wakes_on_enqueue_and_control,
        effects_are_recorded_once_and_fenced,
        artifacts_are_stored_listed_and_fenced,
        nul_characters_are_refused_alike,
        rate_limits_are_written_by_compare_and_set,
        concurrent_takers_share_one_budget_per_window,
        a_spent_budget_waits_until_the_reset,
        observations_fold_in_any_order,
        rate_limits_of_resources_are_independent,
        suppressions_are_kept_once_and_paged_by_address,
        batched_lookups_take_any_number_of_addresses,
        contacts_keep_the_latest,
        suppressions_take_normalised_addresses,
        profiles_resumes_and_sessions_are_stored_replaced_and_deleted,
        a_posting_is_claimed_once_and_settled_along_its_life,
        caps_close_the_ist_day_and_month,
        concurrent_claims_never_exceed_the_caps,
        the_ledger_pages_by_posting_key,
    );

    // A worker pool: two `drover worker` processes, 4 slots each, on two queues.
    let backend = Backend::redis_cluster(&cluster.seed());
    let url = backend.url();
    let store = open(&url).await;
    let jobs: Vec<NewJob> = (0..200)
        .map(|i| {
            NewJob::new("demo", format!("cluster {i}"))
                .config(json!({"items": 2, "item_ms": 5}))
                .queue(if i % 2 == 0 { "default" } else { "other" })
        })
        .collect();
    let ids = enqueue_all(&*store, jobs).await;
    let logs = tempfile::tempdir().expect("temp dir");
    let mut workers = Vec::new();
    for id in ["a", "b"] {
        let mut command = worker_command(&url, id, 4, logs.path());
        command.env("DROVER_WORKERS__QUEUES", "default,other");
        workers.push(WorkerProcess::spawn(id, command));
    }
    eventually(
        Duration::from_secs(120),
        "every job on the cluster to finish",
        || async { all_finished(&*store, &ids).await.then_some(()) },
    )
    .await;
    assert_each_completed_once(&*store, &ids).await;
    for id in ["a", "b"] {
        let log =
            std::fs::read_to_string(logs.path().join(format!("{id}.log"))).unwrap_or_default();
        assert!(
            !log.contains("CROSSSLOT") && !log.contains("crossed slots"),
            "worker {id} hit a cross-slot error: {log}"
        );
    }
    // The cluster, not some other server, holds the data, spread over its masters by prefix.
    let keys: Vec<u64> = cluster
        .ports
        .iter()
        .map(|port| {
            redis_cli(*port, &["dbsize"])
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0)
        })
        .collect();
    println!("redis cluster: keys per master {keys:?}");
    assert!(
        keys.iter().filter(|n| **n > 0).count() >= 2,
        "the stores' keys sit on fewer than two masters: {keys:?}"
    );
    drop(workers);
    drop(cluster);
}
