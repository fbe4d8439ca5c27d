//! A Redis restart (with AOF) in the middle of a run of 2,000 demo jobs: workers reconnect
//! by themselves, and every job completes exactly once. The test starts its own AOF-backed
//! `redis-server` (appendfsync everysec; a clean shutdown flushes it) on its own port, so
//! the shared one is untouched.

mod common;

use std::time::Duration;

use common::redis_server::RedisServer;
use common::*;
use drover_queue::{JobId, NewJob, Store};
use serde_json::json;

async fn unfinished(store: &dyn Store) -> Option<u64> {
    let queues = store.queues().await.ok()?;
    Some(queues.iter().flat_map(|q| q.by_status.values()).sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_redis_restart() {
    let mut server = RedisServer::start();
    let url = server.url("restart");
    let store = eventually(
        Duration::from_secs(30),
        "redis-server to accept connections",
        || async {
            let store = drover_queue::connect(&url, Default::default()).await.ok()?;
            store.migrate().await.ok().map(|_| store)
        },
    )
    .await;
    let mut jobs: Vec<JobId> = Vec::new();
    for batch in 0..4 {
        let batch: Vec<NewJob> = (0..500)
            .map(|i| {
                NewJob::new("demo", format!("restart {batch}/{i}"))
                    .config(json!({"items": 2, "item_ms": 5}))
            })
            .collect();
        jobs.extend(
            store
                .enqueue_batch(batch)
                .await
                .expect("enqueue")
                .iter()
                .map(|e| e.job().id),
        );
    }
    let logs = tempfile::tempdir().expect("temp dir");
    let mut a = spawn_worker(&url, "a", 8, logs.path());
    let mut b = spawn_worker(&url, "b", 8, logs.path());

    eventually(Duration::from_secs(120), "the run to get going", || async {
        unfinished(&*store).await.filter(|n| *n <= 1700).map(|_| ())
    })
    .await;
    server.shutdown().await;
    // The outage: workers see connections refused for a while.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        a.exited(Duration::ZERO).await.is_none(),
        "worker a survived the outage"
    );
    assert!(
        b.exited(Duration::ZERO).await.is_none(),
        "worker b survived the outage"
    );
    server.launch();

    let left = eventually(
        Duration::from_secs(30),
        "Redis to reload its AOF",
        || async { unfinished(&*store).await },
    )
    .await;
    assert!(left > 0, "the restart fell mid-run");
    eventually(
        Duration::from_secs(240),
        "every job to finish after the restart",
        || async { (unfinished(&*store).await == Some(0)).then_some(()) },
    )
    .await;
    assert_each_completed_once(&*store, &jobs).await;
    assert!(
        a.exited(Duration::ZERO).await.is_none(),
        "worker a still running"
    );
    assert!(
        b.exited(Duration::ZERO).await.is_none(),
        "worker b still running"
    );
}
