//! A PostgreSQL restart in the middle of a run: workers reconnect by themselves and every
//! job completes exactly once. The test starts its own server (Debian's `pg_ctl`) on its
//! own port, so the shared one is untouched.

mod common;

use std::time::Duration;

use common::pg_server::PgServer;
use common::*;
use drover_queue::{JobFilter, JobId, JobStatus, NewJob};
use serde_json::json;

async fn completed(store: &dyn drover_queue::Store) -> usize {
    let mut n = 0;
    let mut before = None;
    loop {
        let page = match store
            .list(&JobFilter {
                status: Some(JobStatus::Completed),
                before,
                limit: 1000,
                ..Default::default()
            })
            .await
        {
            Ok(page) => page,
            Err(_) => return n,
        };
        n += page.jobs.len();
        match page.next {
            Some(next) => before = Some(next),
            None => return n,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_postgres_restart() {
    let server = PgServer::start();
    let url = pg_schema_url(&server.url());
    let store = open(&url).await;
    let logs = tempfile::tempdir().expect("temp dir");
    let jobs: Vec<JobId> = enqueue_all(
        &*store,
        (0..400)
            .map(|i| NewJob::new("sleep", format!("restart {i}")).config(json!({"ms": 40})))
            .collect(),
    )
    .await;
    let mut a = spawn_worker(&url, "a", 4, logs.path());
    let mut b = spawn_worker(&url, "b", 4, logs.path());

    eventually(Duration::from_secs(60), "the run to get going", || async {
        (completed(&*store).await >= 40).then_some(())
    })
    .await;
    server.stop("fast");
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
    server.pg_ctl_start();

    let finished_before_restart = completed(&*store).await;
    assert!(
        finished_before_restart < jobs.len(),
        "the restart fell mid-run"
    );
    eventually(
        Duration::from_secs(120),
        "every job to finish after the restart",
        || async { all_finished(&*store, &jobs).await.then_some(()) },
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
