//! The deploy files against the real code: the queue-depth query KEDA runs
//! (`deploy/k8s/scaledobject.yaml`) counts what a worker has to do on a real PostgreSQL
//! store, and the flags the manifests and units pass are ones `drover` accepts.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use drover_queue::{ClaimRequest, NewJob};

fn deploy_file(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The PostgreSQL trigger's query, as KEDA reads it.
fn keda_query() -> String {
    let scaled: serde_yaml::Value =
        serde_yaml::from_str(&deploy_file("k8s/scaledobject.yaml")).expect("scaledobject.yaml");
    let triggers = scaled["spec"]["triggers"]
        .as_sequence()
        .expect("spec.triggers");
    let postgres = triggers
        .iter()
        .find(|t| t["type"] == "postgresql")
        .expect("a postgresql trigger");
    postgres["metadata"]["query"]
        .as_str()
        .expect("metadata.query")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_query_counts_running_and_due_jobs_outside_paused_queues() {
    let url = pg_schema_url(&pg_url());
    let schema = url.rsplit_once("?schema=").expect("a schema URL").1;
    let store = open(&url).await;
    let query = keda_query();
    assert!(query.contains("drover.jobs"), "{query}");
    // The manifest's store lives in schema `drover`; this test's in its own.
    let query = query.replace("drover.", &format!("{schema}."));
    let db = sqlx::PgPool::connect(&pg_url()).await.expect("connect");
    let count = || async {
        sqlx::query_scalar::<_, i64>(&query)
            .fetch_one(&db)
            .await
            .expect("the KEDA query runs")
    };
    assert_eq!(count().await, 0, "an idle store needs no worker");

    let job = |goal: &str, queue: &str, delay: Option<chrono::Duration>| {
        let mut job = NewJob::new("noop", goal);
        job.queue = Some(queue.to_string());
        job.run_at = delay.map(|d| chrono::Utc::now() + d);
        job
    };
    let hour = Some(chrono::Duration::hours(1));
    let ids: Vec<_> = store
        .enqueue_batch(vec![
            job("due 1", "default", None),
            job("due 2", "default", None),
            job("due 3", "default", None),
            job("later", "default", hour),
            job("held 1", "held", None),
            job("held 2", "held", None),
        ])
        .await
        .expect("enqueue")
        .iter()
        .map(|e| e.job().id)
        .collect();
    assert_eq!(
        count().await,
        5,
        "every due job counts while no queue is paused"
    );

    store.pause_queue("held").await.expect("pause queue");
    assert_eq!(count().await, 3, "a paused queue's jobs need no worker");

    // One running job (leased from `default`) still counts; so would one of a queue paused
    // while it runs, so that its pod is not scaled away under it.
    let leases = store
        .claim(&ClaimRequest {
            worker_id: "keda-test".into(),
            limit: 1,
            lease_ttl: Duration::from_secs(60),
            queues: vec!["default".into()],
        })
        .await
        .expect("claim");
    assert_eq!(leases.len(), 1);
    assert_eq!(count().await, 3, "two due and one running");
    store.pause_queue("default").await.expect("pause queue");
    assert_eq!(count().await, 1, "the running job, in a now paused queue");

    // A job paused by an operator waits for a resume, not for a worker.
    store.resume_queue("default").await.expect("resume queue");
    let due = ids[..3]
        .iter()
        .find(|id| **id != leases[0].job.id)
        .expect("a due job not leased");
    store.pause(*due).await.expect("pause job");
    assert_eq!(count().await, 2, "one due and one running");
    drop_schema(&url).await;
}

/// Every `drover` command line in the manifests, the Compose file and the units parses:
/// `drover <args> --help` exits 0 only when each flag before it is known.
#[test]
fn deploy_command_lines_use_flags_drover_accepts() {
    let lines = [
        vec!["api", "--config-file", "/etc/drover/drover.yaml"],
        vec![
            "worker",
            "--config-file",
            "/etc/drover/drover.yaml",
            "--bind",
            "0.0.0.0:9090",
        ],
        vec!["migrate", "--config-file", "/etc/drover/drover.yaml"],
        vec!["api", "--bind", "0.0.0.0:8080"],
        vec!["worker", "--bind", "0.0.0.0:9090"],
        vec!["serve", "--bind", "0.0.0.0:8080"],
        vec![
            "worker",
            "--config-file",
            "/etc/drover/drover.yaml",
            "--bind",
            "127.0.0.1:9090",
            "--log-format",
            "json",
        ],
        vec![
            "api",
            "--config-file",
            "/etc/drover/drover.yaml",
            "--log-format",
            "json",
        ],
    ];
    let files = [
        deploy_file("k8s/api.yaml"),
        deploy_file("k8s/worker.yaml"),
        deploy_file("k8s/migrate-job.yaml"),
        deploy_file("compose.yaml"),
        deploy_file("Dockerfile"),
        deploy_file("systemd/drover-worker.service"),
        deploy_file("systemd/drover-api.service"),
    ]
    .join("\n");
    for args in lines {
        // Each line here is one the deploy files really use (as a JSON list or a shell line).
        let json = format!("[\"{}\"]", args.join("\", \""));
        let shell = args.join(" ");
        assert!(
            files.contains(&json) || files.contains(&shell),
            "`{shell}` is not in deploy/ any more: update this test"
        );
        let out = Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(&args)
            .arg("--help")
            .output()
            .expect("run drover");
        assert!(
            out.status.success(),
            "drover {shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
