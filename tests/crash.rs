//! Crash safety of the worker fleet, by crashing real `drover worker` processes on
//! PostgreSQL: nothing is lost, nothing is done twice.

mod common;

use std::time::Duration;

use common::*;
use drover_queue::{JobFilter, JobId, JobStatus, NewJob};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_worker_jobs_complete_exactly_once() {
    let url = pg_schema_url(&pg_url());
    let store = open(&url).await;
    let logs = tempfile::tempdir().expect("temp dir");
    let jobs: Vec<NewJob> = (0..60)
        .map(|i| NewJob::new("sleep", format!("crash test {i}")).config(json!({"ms": 300})))
        .collect();
    let jobs: Vec<JobId> = enqueue_all(&*store, jobs).await;

    let mut victim = spawn_worker(&url, "victim", 4, logs.path());
    let _a = spawn_worker(&url, "survivor-a", 4, logs.path());
    let _b = spawn_worker(&url, "survivor-b", 4, logs.path());

    // Kill the victim while it holds jobs.
    let held: Vec<JobId> = eventually(
        Duration::from_secs(30),
        "the victim to hold jobs",
        || async {
            let running = store
                .list(&JobFilter {
                    status: Some(JobStatus::Running),
                    limit: 100,
                    ..Default::default()
                })
                .await
                .expect("list");
            let held: Vec<JobId> = running
                .jobs
                .iter()
                .filter(|j| j.lease_owner.as_deref() == Some("victim"))
                .map(|j| j.id)
                .collect();
            (held.len() >= 2).then_some(held)
        },
    )
    .await;
    victim.kill9();

    eventually(Duration::from_secs(90), "every job to finish", || async {
        all_finished(&*store, &jobs).await.then_some(())
    })
    .await;
    assert_each_completed_once(&*store, &jobs).await;

    // The victim's jobs came back through the reaper and were finished by a survivor.
    let mut taken_back = 0;
    for id in &held {
        let job = store.get(*id).await.expect("get");
        let events = store.events(*id, 0, 1000).await.expect("events");
        let reaped = events
            .iter()
            .any(|e| e.kind == "status" && e.data["reason"] == "lease_expired");
        let finisher = events
            .iter()
            .rev()
            .find(|e| e.data["status"] == "completed")
            .and_then(|e| e.data["worker"].as_str().map(String::from));
        if reaped {
            taken_back += 1;
            assert_eq!(
                job.attempt, 2,
                "job {id}: one crashed attempt, one good one"
            );
            assert_ne!(finisher.as_deref(), Some("victim"));
        }
    }
    assert!(
        taken_back >= 1,
        "at least one held job was taken back: {held:?}"
    );
    drop_schema(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_running_jobs_back_to_other_workers() {
    let url = pg_schema_url(&pg_url());
    let store = open(&url).await;
    let logs = tempfile::tempdir().expect("temp dir");
    // Long jobs: they can only finish elsewhere if the first worker hands them back.
    let jobs: Vec<JobId> = enqueue_all(
        &*store,
        (0..3)
            .map(|i| {
                NewJob::new("sleep", format!("long {i}"))
                    .config(json!({"ms": 1500}))
                    .max_attempts(1)
            })
            .collect(),
    )
    .await;
    let mut first = spawn_worker(&url, "first", 3, logs.path());
    eventually(
        Duration::from_secs(30),
        "the first worker to run all jobs",
        || async {
            let mut all = true;
            for id in &jobs {
                let job = store.get(*id).await.expect("get");
                all &=
                    job.status == JobStatus::Running && job.lease_owner.as_deref() == Some("first");
            }
            all.then_some(())
        },
    )
    .await;
    first.signal(libc::SIGTERM);
    let status = first
        .exited(Duration::from_secs(15))
        .await
        .expect("exits within graceful_shutdown");
    assert!(status.success(), "clean exit: {status:?}");
    for id in &jobs {
        let job = store.get(*id).await.expect("get");
        // Handed back at once, with the attempt not counted, though max_attempts is 1.
        assert_eq!((job.status, job.attempt), (JobStatus::Queued, 0), "{job:?}");
        assert_eq!(status_count(&*store, *id, JobStatus::Queued).await, 2);
    }
    assert!(store
        .workers(Duration::from_secs(60))
        .await
        .expect("workers")
        .is_empty());

    let _second = spawn_worker(&url, "second", 3, logs.path());
    eventually(
        Duration::from_secs(60),
        "the second worker to finish them",
        || async { all_finished(&*store, &jobs).await.then_some(()) },
    )
    .await;
    assert_each_completed_once(&*store, &jobs).await;
    drop_schema(&url).await;
}
