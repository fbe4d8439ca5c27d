//! The status machine: operator actions, failures and retries, expired leases.

use std::time::Duration;

use chrono::Utc;
use drover_queue::job::FailureKind;
use drover_queue::*;
use serde_json::json;

use drover_queue::testing::{eventually, Backend};

use super::*;

pub async fn operator_transitions_follow_the_status_machine(b: &Backend) {
    let store = b.open().await;
    use JobStatus::*;
    use Transition as T;

    // queued: pause → paused, resume → queued, cancel → cancelled; resume of queued refused.
    let job = enqueue(&store, NewJob::new("noop", "q")).await;
    assert_illegal(store.resume(job.id).await, Queued, T::Resume);
    assert_eq!(store.pause(job.id).await.expect("pause").status, Paused);
    assert_illegal(store.pause(job.id).await, Paused, T::Pause);
    assert_eq!(store.resume(job.id).await.expect("resume").status, Queued);
    assert_eq!(store.pause(job.id).await.expect("pause").status, Paused);
    assert_eq!(
        store.cancel(job.id).await.expect("cancel").status,
        Cancelled
    );
    for result in [
        store.pause(job.id).await,
        store.resume(job.id).await,
        store.cancel(job.id).await,
    ] {
        assert!(matches!(
            result,
            Err(StoreError::IllegalTransition { illegal, .. }) if illegal.from == Cancelled
        ));
    }
    assert_eq!(
        statuses(&store, job.id).await,
        ["queued", "paused", "queued", "paused", "cancelled"]
    );
    let cancelled = store.get(job.id).await.expect("get");
    assert!(cancelled.finished_at.is_some());

    // queued → cancelled directly; a paused job cannot be leased.
    let job = enqueue(&store, NewJob::new("noop", "c")).await;
    assert_eq!(
        store.cancel(job.id).await.expect("cancel").status,
        Cancelled
    );
    let paused = enqueue(&store, NewJob::new("noop", "p")).await;
    store.pause(paused.id).await.expect("pause");
    assert!(store
        .claim(&claim_req("w", 10))
        .await
        .expect("claim")
        .is_empty());

    // running: pause and cancel are requests; resume withdraws a pending pause.
    store.resume(paused.id).await.expect("resume");
    let lease = claim_one(&store, "w").await;
    assert_eq!(lease.job.status, Running);
    assert_illegal(store.resume(lease.job.id).await, Running, T::Resume);
    let requested = store.pause(lease.job.id).await.expect("pause running");
    assert_eq!(requested.status, Running);
    assert!(requested.pause_requested);
    let withdrawn = store.resume(lease.job.id).await.expect("withdraw pause");
    assert!(!withdrawn.pause_requested);
    assert_eq!(withdrawn.status, Running);
    let requested = store.cancel(lease.job.id).await.expect("cancel running");
    assert!(requested.cancel_requested);
    assert_eq!(requested.status, Running);
    assert_eq!(
        store.renew(&[lease.fence()], TTL).await.expect("renew"),
        [Renewal::Held {
            pause_requested: false,
            cancel_requested: true
        }]
    );
    let cancelled = store
        .release(lease.fence(), Release::Cancel)
        .await
        .expect("settle cancel");
    assert_eq!(cancelled.status, Cancelled);
    assert!(cancelled.finished_at.is_some());

    // running → paused at a safe point, then resume → queued → leased again with a new epoch.
    let job = enqueue(&store, NewJob::new("noop", "r")).await;
    let lease = claim_one(&store, "w").await;
    assert_eq!(lease.job.id, job.id);
    store.pause(job.id).await.expect("pause running");
    let paused = store
        .release(lease.fence(), Release::Pause)
        .await
        .expect("settle pause");
    assert_eq!(paused.status, Paused);
    assert!(!paused.pause_requested);
    assert_fenced(store.complete(lease.fence(), json!({})).await);
    store.resume(job.id).await.expect("resume");
    let again = claim_one(&store, "w2").await;
    assert_eq!(again.job.id, job.id);
    assert!(again.epoch > lease.epoch);
    assert_eq!(again.job.attempt, 1, "a pause does not use up an attempt");
    let done = store
        .complete(again.fence(), json!({"ok": true}))
        .await
        .expect("complete");
    assert_eq!(done.status, Completed);
    assert_eq!(done.result, Some(json!({"ok": true})));
    assert!(done.finished_at.is_some());
    for result in [
        store.pause(job.id).await,
        store.resume(job.id).await,
        store.cancel(job.id).await,
    ] {
        assert!(matches!(
            result,
            Err(StoreError::IllegalTransition { illegal, .. }) if illegal.from == Completed
        ));
    }
    assert_eq!(
        statuses(&store, job.id).await,
        [
            "queued",
            "running",
            "paused",
            "queued",
            "running",
            "completed"
        ]
    );

    // failed is terminal too.
    let job = enqueue(&store, NewJob::new("noop", "f")).await;
    let lease = claim_one(&store, "w").await;
    let failed = store
        .fail(lease.fence(), JobFailure::permanent("bad input"), None)
        .await
        .expect("fail");
    assert_eq!(failed.status, Failed);
    assert_eq!(
        failed.error.as_ref().map(|e| e.kind),
        Some(FailureKind::Permanent)
    );
    assert_illegal(store.resume(job.id).await, Failed, T::Resume);
    assert_illegal(store.cancel(job.id).await, Failed, T::Cancel);
    assert_illegal(store.pause(job.id).await, Failed, T::Pause);
    assert!(matches!(
        store.pause(uuid::Uuid::now_v7()).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn transient_failures_retry_after_backoff(b: &Backend) {
    let store = b.open().await;
    let job = enqueue(&store, NewJob::new("noop", "flaky").max_attempts(3)).await;
    let lease = claim_one(&store, "w").await;
    let before = Utc::now();
    let retried = store
        .fail(
            lease.fence(),
            JobFailure::transient("HTTP 503"),
            Some(Duration::from_millis(300)),
        )
        .await
        .expect("fail");
    assert_eq!(retried.status, JobStatus::Queued);
    assert_eq!(retried.attempt, 1);
    assert_eq!(
        retried.error.as_ref().map(|e| e.message.as_str()),
        Some("HTTP 503")
    );
    assert!(retried.run_at >= before + chrono::Duration::milliseconds(250));
    // Not due yet: nobody can lease it, and the wake-up timer knows when it will be.
    assert!(store
        .claim(&claim_req("w", 5))
        .await
        .expect("claim")
        .is_empty());
    let next = store
        .next_run_at()
        .await
        .expect("next")
        .expect("scheduled retry");
    assert_eq!(next.timestamp_millis(), retried.run_at.timestamp_millis());
    let lease = eventually(Duration::from_secs(10), "the retry to come due", || async {
        store.claim(&claim_req("w", 1)).await.expect("claim").pop()
    })
    .await;
    assert_eq!((lease.job.id, lease.job.attempt), (job.id, 2));
    let retried = store
        .fail(
            lease.fence(),
            JobFailure::transient("again"),
            Some(Duration::ZERO),
        )
        .await
        .expect("fail");
    assert_eq!(retried.status, JobStatus::Queued);
    // The last attempt's transient failure is final.
    let lease = claim_one(&store, "w").await;
    assert_eq!(lease.job.attempt, 3);
    let failed = store
        .fail(
            lease.fence(),
            JobFailure::transient("third"),
            Some(Duration::ZERO),
        )
        .await
        .expect("fail");
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error.map(|e| e.message), Some("third".into()));
    assert!(failed.finished_at.is_some());

    // A permanent failure (no retry) fails at once, attempts left or not.
    let job = enqueue(&store, NewJob::new("noop", "bad").max_attempts(5)).await;
    let lease = claim_one(&store, "w").await;
    let failed = store
        .fail(
            lease.fence(),
            JobFailure::permanent("invalid credentials"),
            None,
        )
        .await
        .expect("fail");
    assert_eq!(
        (failed.id, failed.status, failed.attempt),
        (job.id, JobStatus::Failed, 1)
    );

    // A shutdown hands the attempt back.
    let job = enqueue(&store, NewJob::new("noop", "interrupted").max_attempts(1)).await;
    let lease = claim_one(&store, "w").await;
    let released = store
        .release(lease.fence(), Release::Shutdown)
        .await
        .expect("release");
    assert_eq!((released.status, released.attempt), (JobStatus::Queued, 0));
    let lease = claim_one(&store, "w").await;
    assert_eq!((lease.job.id, lease.job.attempt), (job.id, 1));
}

pub async fn expired_leases_are_requeued_or_settled(b: &Backend) {
    let store = b.open().await;
    let short = |worker: &str| ClaimRequest {
        lease_ttl: Duration::from_millis(30),
        ..claim_req(worker, 1)
    };
    let reap_all = || async {
        eventually(Duration::from_secs(10), "expired leases", || async {
            let reaped = store.reap_expired(100).await.expect("reap");
            (!reaped.is_empty()).then_some(reaped)
        })
        .await
    };

    // Attempts left: back to queued, attempt kept, resumable by anyone.
    let job = enqueue(&store, NewJob::new("noop", "crashy").max_attempts(2)).await;
    store.claim(&short("dead-1")).await.expect("claim");
    let reaped = reap_all().await;
    assert_eq!(reaped[0].status, JobStatus::Queued);
    let queued = store.get(job.id).await.expect("get");
    assert_eq!((queued.status, queued.attempt), (JobStatus::Queued, 1));
    assert_eq!(queued.lease_owner, None);

    // Attempts exhausted: failed with the reason recorded.
    store.claim(&short("dead-2")).await.expect("claim");
    let reaped = reap_all().await;
    assert_eq!(reaped[0].status, JobStatus::Failed);
    let failed = store.get(job.id).await.expect("get");
    assert_eq!(
        failed.error.map(|e| e.kind),
        Some(FailureKind::LeaseExpired)
    );

    // A pause asked of a job whose worker died is honoured, not forgotten.
    let job = enqueue(&store, NewJob::new("noop", "pause me")).await;
    store.claim(&short("dead-3")).await.expect("claim");
    store.pause(job.id).await.expect("pause request");
    assert_eq!(reap_all().await[0].status, JobStatus::Paused);

    // A renewed lease is not reaped: renewal moves the expiry forward.
    let job = enqueue(&store, NewJob::new("noop", "alive")).await;
    let lease = store.claim(&short("alive")).await.expect("claim").remove(0);
    let before = store
        .get(job.id)
        .await
        .expect("get")
        .lease_expires_at
        .expect("leased");
    store.renew(&[lease.fence()], TTL).await.expect("renew");
    let after = store
        .get(job.id)
        .await
        .expect("get")
        .lease_expires_at
        .expect("leased");
    assert!(
        after - before >= chrono::Duration::seconds(25),
        "{before} -> {after}"
    );
    assert!(store.reap_expired(100).await.expect("reap").is_empty());
}

/// Transitions that race on one job each read, decide and write it under its lock (or,
/// on Redis, retry when the job's version moved): every write lands once, and none is
/// decided on a job that had already changed.
pub async fn racing_transitions_each_land_once(b: &Backend) {
    let store = b.open().await;

    // Twelve operators cancel one queued job at once: one cancel lands, the others find
    // it cancelled already.
    let job = enqueue(&store, NewJob::new("noop", "race")).await;
    let mut cancels = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let store = store.clone();
        cancels.spawn(async move { store.cancel(job.id).await });
    }
    let mut landed = 0;
    while let Some(answer) = cancels.join_next().await {
        match answer.expect("cancel task") {
            Ok(job) => {
                assert_eq!(job.status, JobStatus::Cancelled);
                landed += 1;
            }
            Err(StoreError::IllegalTransition { illegal, .. }) => {
                assert_eq!(illegal.from, JobStatus::Cancelled)
            }
            Err(err) => panic!("a racing cancel failed: {err}"),
        }
    }
    assert_eq!(landed, 1, "exactly one of the racing cancels lands");
    assert_eq!(statuses(&store, job.id).await, ["queued", "cancelled"]);

    // A runner fails its job while operators pause it: the failure lands (its fence
    // holds), each pause either sets the request on the running job or finds it failed,
    // and the log holds one status event per change.
    let job = enqueue(&store, NewJob::new("noop", "race").max_attempts(1)).await;
    let lease = claim_one(&store, "w1").await;
    assert_eq!(lease.job.id, job.id);
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        racers.spawn(async move { store.pause(job.id).await.map(|j| j.status) });
    }
    let failed = store
        .fail(lease.fence(), JobFailure::permanent("boom"), None)
        .await
        .expect("the runner's failure lands while operators race it");
    assert_eq!(failed.status, JobStatus::Failed);
    while let Some(answer) = racers.join_next().await {
        match answer.expect("pause task") {
            Ok(status) => assert_eq!(status, JobStatus::Running),
            Err(StoreError::IllegalTransition { illegal, .. }) => {
                assert_eq!(illegal.from, JobStatus::Failed)
            }
            Err(err) => panic!("a racing pause failed: {err}"),
        }
    }
    assert_eq!(
        statuses(&store, job.id).await,
        ["queued", "running", "failed"]
    );
    let job = store.get(job.id).await.expect("get");
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error.map(|e| e.message).as_deref(), Some("boom"));
}
