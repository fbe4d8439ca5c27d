//! The store conformance suite: every backend must pass every test here.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use drover_queue::job::FailureKind;
use drover_queue::*;
use serde_json::json;

use drover_queue::testing::{eventually, Backend};

const TTL: Duration = Duration::from_secs(30);

fn claim_req(worker: &str, limit: usize) -> ClaimRequest {
    ClaimRequest {
        worker_id: worker.to_string(),
        limit,
        lease_ttl: TTL,
        queues: Vec::new(),
    }
}

async fn claim_one(store: &Arc<dyn Store>, worker: &str) -> Lease {
    let mut leases = store.claim(&claim_req(worker, 1)).await.expect("claim");
    assert_eq!(leases.len(), 1, "expected one job to claim");
    leases.remove(0)
}

async fn enqueue(store: &Arc<dyn Store>, job: NewJob) -> Job {
    store.enqueue(job).await.expect("enqueue").into_job()
}

async fn statuses(store: &Arc<dyn Store>, id: JobId) -> Vec<String> {
    store
        .events(id, 0, 1000)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.kind == "status")
        .map(|e| e.data["status"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn assert_illegal(result: StoreResult<Job>, from: JobStatus, transition: Transition) {
    match result {
        Err(StoreError::IllegalTransition { illegal, .. }) => {
            assert_eq!((illegal.from, illegal.transition), (from, transition));
        }
        other => panic!("expected illegal {transition} from {from}, got {other:?}"),
    }
}

fn assert_fenced<T: std::fmt::Debug>(result: StoreResult<T>) {
    assert!(
        matches!(result, Err(StoreError::Fenced { .. })),
        "expected a fenced write, got {result:?}"
    );
}

pub async fn migrations_are_idempotent_and_concurrent(b: &Backend) {
    let store = b.open().await;
    store.migrate().await.expect("second migrate");
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let url = b.url();
            tokio::spawn(async move {
                let store = drover_queue::connect(&url, StoreOptions::default())
                    .await
                    .expect("connect");
                store.migrate().await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("join").expect("concurrent migrate");
    }
    let job = enqueue(&store, NewJob::new("noop", "after migrations")).await;
    assert_eq!(store.get(job.id).await.expect("get").id, job.id);
}

pub async fn enqueue_stores_every_field(b: &Backend) {
    let store = b.open().await;
    let run_at = Utc::now() - chrono::Duration::seconds(5);
    let mut new = NewJob::new("demo", "walk 3 items")
        .config(json!({"items": 3}))
        .priority(Priority::High)
        .queue("campaigns")
        .run_at(run_at)
        .max_attempts(7)
        .idempotency_key("k-1");
    new.created_by = Some("ops@example.com".into());
    new.timeouts.step_timeout = Some(12);
    let job = enqueue(&store, new).await;
    let got = store.get(job.id).await.expect("get");
    assert_eq!(got, job);
    assert_eq!(got.kind, "demo");
    assert_eq!(got.goal, "walk 3 items");
    assert_eq!(got.config, json!({"items": 3}));
    assert_eq!(got.priority, Priority::High);
    assert_eq!(got.queue, "campaigns");
    assert_eq!(got.run_at.timestamp_millis(), run_at.timestamp_millis());
    assert_eq!((got.attempt, got.max_attempts), (0, 7));
    assert_eq!(got.timeouts.step_timeout, Some(12));
    assert_eq!(got.created_by.as_deref(), Some("ops@example.com"));
    assert_eq!(got.status, JobStatus::Queued);
    assert_eq!(got.lease_epoch, 0);
    assert_eq!(statuses(&store, job.id).await, ["queued"]);
    assert!(matches!(
        store.get(uuid::Uuid::now_v7()).await,
        Err(StoreError::NotFound(_))
    ));
    let defaulted = enqueue(&store, NewJob::new("noop", "defaults")).await;
    assert_eq!(defaulted.max_attempts, 3);
    assert_eq!(defaulted.queue, "default");
    assert_eq!(defaulted.config, json!({}));
}

pub async fn invalid_jobs_are_refused_naming_the_field(b: &Backend) {
    let store = b.open().await;
    let err = store
        .enqueue(NewJob::new("noop", "x").config(json!("not an object")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(e) if e.field == "config"),
        "{err:?}"
    );
    // A batch with one bad job stores none of it.
    let batch = vec![
        NewJob::new("noop", "good"),
        NewJob::new("noop", "bad").max_attempts(0),
    ];
    let err = store.enqueue_batch(batch).await.unwrap_err();
    assert!(matches!(&err, StoreError::Invalid(e) if e.field == "max_attempts"));
    let page = store
        .list(&JobFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(page.jobs.is_empty());
}

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

pub async fn claim_order_is_priority_then_run_at_then_id(b: &Backend) {
    let store = b.open().await;
    let base = Utc::now() - chrono::Duration::seconds(60);
    let at = |s: i64| base + chrono::Duration::seconds(s);
    let low = enqueue(
        &store,
        NewJob::new("noop", "low")
            .priority(Priority::Low)
            .run_at(at(0)),
    )
    .await;
    let normal_late = enqueue(&store, NewJob::new("noop", "n2").run_at(at(20))).await;
    let normal_early = enqueue(&store, NewJob::new("noop", "n1").run_at(at(10))).await;
    let high_a = enqueue(
        &store,
        NewJob::new("noop", "ha")
            .priority(Priority::High)
            .run_at(at(30)),
    )
    .await;
    let high_b = enqueue(
        &store,
        NewJob::new("noop", "hb")
            .priority(Priority::High)
            .run_at(at(30)),
    )
    .await;
    let future = enqueue(
        &store,
        NewJob::new("noop", "later")
            .priority(Priority::High)
            .run_at(Utc::now() + chrono::Duration::hours(1)),
    )
    .await;

    // One at a time...
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(claim_one(&store, "w").await.job.id);
    }
    // ...and the rest in one batch, returned in claim order.
    let rest = store.claim(&claim_req("w", 10)).await.expect("claim");
    order.extend(rest.iter().map(|l| l.job.id));
    assert_eq!(
        order,
        [
            high_a.id,
            high_b.id,
            normal_early.id,
            normal_late.id,
            low.id
        ],
        "claim order"
    );
    assert!(store
        .claim(&claim_req("w", 10))
        .await
        .expect("claim")
        .is_empty());
    let next = store
        .next_run_at()
        .await
        .expect("next_run_at")
        .expect("a future job");
    assert_eq!(next.timestamp_millis(), future.run_at.timestamp_millis());
}

pub async fn claim_takes_at_most_the_free_slots(b: &Backend) {
    let store = b.open().await;
    let jobs: Vec<NewJob> = (0..5)
        .map(|i| NewJob::new("noop", format!("j{i}")))
        .collect();
    store.enqueue_batch(jobs).await.expect("batch");
    assert!(store
        .claim(&claim_req("w", 0))
        .await
        .expect("claim")
        .is_empty());
    assert_eq!(
        store.claim(&claim_req("w", 2)).await.expect("claim").len(),
        2
    );
    assert_eq!(
        store.claim(&claim_req("w", 10)).await.expect("claim").len(),
        3
    );
}

pub async fn no_job_is_claimed_twice_by_concurrent_claimers(b: &Backend) {
    const JOBS: usize = 2000;
    const CLAIMERS: usize = 8;
    let store = b.open().await;
    for chunk in 0..(JOBS / 500) {
        let batch = (0..500)
            .map(|i| NewJob::new("noop", format!("job {}", chunk * 500 + i)))
            .collect();
        store.enqueue_batch(batch).await.expect("batch");
    }
    let mut tasks = Vec::new();
    for c in 0..CLAIMERS {
        // Each claimer has its own store (its own connections), like separate processes.
        let store = b.open().await;
        tasks.push(tokio::spawn(async move {
            let worker = format!("claimer-{c}");
            let mut mine = Vec::new();
            let mut empty = 0;
            while empty < 3 {
                let leases = store
                    .claim(&claim_req(&worker, 1 + c % 4))
                    .await
                    .expect("claim");
                if leases.is_empty() {
                    empty += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                empty = 0;
                for lease in leases {
                    store
                        .complete(lease.fence(), json!({ "by": worker }))
                        .await
                        .expect("complete");
                    mine.push(lease.job.id);
                }
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for task in tasks {
        for id in task.await.expect("join") {
            total += 1;
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(total, JOBS);
    let completed = store
        .list(&JobFilter {
            status: Some(JobStatus::Completed),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(completed.jobs.len(), 1000);
    for job in &completed.jobs {
        assert_eq!(job.attempt, 1);
        assert_eq!(job.lease_epoch, 1);
    }
}

pub async fn stale_epochs_are_fenced(b: &Backend) {
    let store = b.open().await;
    let job = enqueue(&store, NewJob::new("noop", "fenced")).await;
    let mut first = store
        .claim(&ClaimRequest {
            lease_ttl: Duration::from_millis(50),
            ..claim_req("slow", 1)
        })
        .await
        .expect("claim");
    let first = first.remove(0);
    assert_eq!(first.epoch, 1);
    // The first worker checkpoints while it holds the lease.
    let checkpoint = |step: &str| NewCheckpoint {
        step: step.into(),
        state: b"{\"item\":1}".to_vec(),
        compressed: false,
    };
    store
        .checkpoint(first.fence(), checkpoint("a"), 5)
        .await
        .expect("checkpoint while leased");
    let reaped = eventually(Duration::from_secs(10), "the lease to expire", || async {
        let reaped = store.reap_expired(100).await.expect("reap");
        (!reaped.is_empty()).then_some(reaped)
    })
    .await;
    assert_eq!(reaped[0].job, job.id);
    assert_eq!(reaped[0].previous_owner.as_deref(), Some("slow"));
    let second = claim_one(&store, "fast").await;
    assert_eq!(second.epoch, 2);

    // Every write of the stale epoch is refused...
    assert_fenced(
        store
            .checkpoint(first.fence(), checkpoint("stale"), 5)
            .await,
    );
    assert_fenced(
        store
            .append_event(first.fence(), "progress", json!({"items_processed": 9}))
            .await,
    );
    assert_fenced(store.complete(first.fence(), json!({"stale": true})).await);
    assert_fenced(
        store
            .fail(
                first.fence(),
                JobFailure::transient("late"),
                Some(Duration::ZERO),
            )
            .await,
    );
    assert_fenced(store.release(first.fence(), Release::Shutdown).await);
    assert_eq!(
        store
            .renew(&[first.fence(), second.fence()], TTL)
            .await
            .expect("renew"),
        [
            Renewal::Lost,
            Renewal::Held {
                pause_requested: false,
                cancel_requested: false
            }
        ]
    );
    // ...and changed nothing.
    let latest = store
        .latest_checkpoint(job.id)
        .await
        .expect("latest")
        .expect("one");
    assert_eq!(latest.step, "a");
    let current = store.get(job.id).await.expect("get");
    assert_eq!(
        (current.status, current.lease_epoch),
        (JobStatus::Running, 2)
    );
    assert_eq!(current.progress, None);

    // The current holder's writes land; a repeated completion is idempotent.
    store
        .append_event(second.fence(), "progress", json!({"items_processed": 1}))
        .await
        .expect("progress");
    let done = store
        .complete(second.fence(), json!({"n": 1}))
        .await
        .expect("complete");
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.progress, Some(json!({"items_processed": 1})));
    let again = store
        .complete(second.fence(), json!({"n": 1}))
        .await
        .expect("repeat");
    assert_eq!(again.result, Some(json!({"n": 1})));
    assert_fenced(store.complete(first.fence(), json!({})).await);
    let fence_of_nothing = Fence {
        job: uuid::Uuid::now_v7(),
        epoch: 1,
    };
    assert!(matches!(
        store.complete(fence_of_nothing, json!({})).await,
        Err(StoreError::NotFound(_))
    ));
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

pub async fn idempotency_keys_dedupe_or_conflict(b: &Backend) {
    let store = b.open().await;
    let body = || {
        NewJob::new("campaign", "find rust maintainers")
            .config(json!({"count": 10}))
            .idempotency_key("campaign-42")
    };
    let first = store.enqueue(body()).await.expect("first");
    assert!(first.is_created());
    let second = store.enqueue(body()).await.expect("same body");
    assert!(!second.is_created());
    assert_eq!(second.job().id, first.job().id);
    let different = body().config(json!({"count": 11}));
    match store.enqueue(different).await {
        Err(StoreError::IdempotencyConflict { key, existing }) => {
            assert_eq!((key.as_str(), existing), ("campaign-42", first.job().id));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Within one batch, and against stored jobs.
    let batch = vec![
        NewJob::new("noop", "a").idempotency_key("b-1"),
        NewJob::new("noop", "a").idempotency_key("b-1"),
        body(),
        NewJob::new("noop", "plain"),
    ];
    let results = store.enqueue_batch(batch).await.expect("batch");
    assert_eq!(
        results.iter().map(Enqueued::is_created).collect::<Vec<_>>(),
        [true, false, false, true]
    );
    assert_eq!(results[0].job().id, results[1].job().id);
    assert_eq!(results[2].job().id, first.job().id);
    // Answers come in submission order, keyed and unkeyed jobs interleaved.
    let mixed = vec![
        NewJob::new("noop", "m0"),
        NewJob::new("noop", "m1").idempotency_key("m-1"),
        NewJob::new("noop", "m2"),
        NewJob::new("noop", "m3").idempotency_key("m-3"),
    ];
    let results = store.enqueue_batch(mixed).await.expect("mixed batch");
    let goals: Vec<&str> = results.iter().map(|r| r.job().goal.as_str()).collect();
    assert_eq!(goals, ["m0", "m1", "m2", "m3"]);
    let conflicting = vec![
        NewJob::new("noop", "fresh"),
        NewJob::new("noop", "a")
            .idempotency_key("b-1")
            .config(json!({"x": 1})),
    ];
    assert!(matches!(
        store.enqueue_batch(conflicting).await,
        Err(StoreError::IdempotencyConflict { .. })
    ));

    // Racing submitters with one key: exactly one job.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let url = b.url();
            tokio::spawn(async move {
                let store = drover_queue::connect(&url, StoreOptions::default())
                    .await
                    .expect("connect");
                store
                    .enqueue(NewJob::new("noop", "race").idempotency_key("race"))
                    .await
                    .expect("enqueue")
            })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut created = 0;
    for task in tasks {
        let result = task.await.expect("join");
        created += usize::from(result.is_created());
        ids.insert(result.job().id);
    }
    assert_eq!((created, ids.len()), (1, 1));
}

pub async fn full_queues_refuse_enqueues(b: &Backend) {
    let store = b
        .open_with(StoreOptions {
            max_queue_size: Some(3),
            ..Default::default()
        })
        .await;
    for i in 0..3 {
        enqueue(&store, NewJob::new("noop", format!("{i}"))).await;
    }
    match store.enqueue(NewJob::new("noop", "one too many")).await {
        Err(StoreError::QueueFull { queue, max }) => {
            assert_eq!((queue.as_str(), max), ("default", 3))
        }
        other => panic!("expected QueueFull, got {other:?}"),
    }
    // Other queues have their own room; a batch that does not fit is refused whole.
    enqueue(&store, NewJob::new("noop", "elsewhere").queue("other")).await;
    let batch = vec![
        NewJob::new("noop", "o1").queue("other"),
        NewJob::new("noop", "o2").queue("other"),
        NewJob::new("noop", "o3").queue("other"),
    ];
    assert!(matches!(
        store.enqueue_batch(batch).await,
        Err(StoreError::QueueFull { .. })
    ));
    let page = store
        .list(&JobFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.jobs.len(), 4);
    // Finishing a job makes room.
    let lease = claim_one(&store, "w").await;
    store
        .complete(lease.fence(), json!({}))
        .await
        .expect("complete");
    enqueue(&store, NewJob::new("noop", "room again")).await;
}

pub async fn paused_queues_are_not_leased(b: &Backend) {
    let store = b.open().await;
    let mail = enqueue(&store, NewJob::new("noop", "mail").queue("mail")).await;
    let other = enqueue(&store, NewJob::new("noop", "other").priority(Priority::Low)).await;
    store.pause_queue("mail").await.expect("pause queue");
    let stats = store.queues().await.expect("queues");
    let mail_stats = stats.iter().find(|q| q.name == "mail").expect("mail queue");
    assert!(mail_stats.paused);
    assert_eq!(mail_stats.by_status.get("queued"), Some(&1));
    assert_eq!(mail_stats.queued_by_priority.get("normal"), Some(&1));
    assert!(mail_stats.oldest_waiting_secs.is_some());
    let leases = store.claim(&claim_req("w", 10)).await.expect("claim");
    assert_eq!(
        leases.iter().map(|l| l.job.id).collect::<Vec<_>>(),
        [other.id]
    );
    store.resume_queue("mail").await.expect("resume queue");
    let leases = store.claim(&claim_req("w", 10)).await.expect("claim");
    assert_eq!(
        leases.iter().map(|l| l.job.id).collect::<Vec<_>>(),
        [mail.id]
    );
    assert!(!store
        .queues()
        .await
        .expect("queues")
        .iter()
        .any(|q| q.paused));

    // A worker restricted to some queues claims only from them.
    let a = enqueue(&store, NewJob::new("noop", "a").queue("a")).await;
    enqueue(&store, NewJob::new("noop", "b").queue("b")).await;
    let leases = store
        .claim(&ClaimRequest {
            queues: vec!["a".into()],
            ..claim_req("w", 10)
        })
        .await
        .expect("claim");
    assert_eq!(leases.iter().map(|l| l.job.id).collect::<Vec<_>>(), [a.id]);
}

pub async fn checkpoints_keep_the_newest(b: &Backend) {
    let store = b.open().await;
    let job = enqueue(&store, NewJob::new("noop", "cp")).await;
    let lease = claim_one(&store, "w").await;
    assert_eq!(
        store.latest_checkpoint(job.id).await.expect("none yet"),
        None
    );
    for i in 1..=5u8 {
        let seq = store
            .checkpoint(
                lease.fence(),
                NewCheckpoint {
                    step: format!("step-{i}"),
                    state: vec![i; 100 * i as usize],
                    compressed: i % 2 == 0,
                },
                3,
            )
            .await
            .expect("checkpoint");
        assert_eq!(seq, i as i64);
    }
    let kept = store.checkpoints(job.id).await.expect("checkpoints");
    assert_eq!(kept.iter().map(|c| c.seq).collect::<Vec<_>>(), [3, 4, 5]);
    let latest = store
        .latest_checkpoint(job.id)
        .await
        .expect("latest")
        .expect("some");
    assert_eq!(
        (latest.seq, latest.step.as_str(), latest.size),
        (5, "step-5", 500)
    );
    assert_eq!(latest.state, vec![5u8; 500]);
    assert!(!latest.compressed);
    assert!(kept[1].compressed);
    let events = store.events(job.id, 0, 100).await.expect("events");
    let checkpoint_events = events.iter().filter(|e| e.kind == "checkpoint").count();
    assert_eq!(checkpoint_events, 5);
}

pub async fn event_log_is_sequenced_without_gaps(b: &Backend) {
    let store = b.open().await;
    let job = enqueue(&store, NewJob::new("noop", "events")).await;
    let lease = claim_one(&store, "w").await;
    for i in 0..10 {
        store
            .append_event(lease.fence(), "progress", json!({ "items_processed": i }))
            .await
            .expect("event");
    }
    store
        .append_event(lease.fence(), "log", json!({"message": "hi"}))
        .await
        .expect("log");
    store
        .complete(lease.fence(), json!({}))
        .await
        .expect("complete");
    let events = store.events(job.id, 0, 1000).await.expect("events");
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=14).collect::<Vec<_>>());
    assert_eq!(events[0].data["status"], "queued");
    assert_eq!(events[1].data["status"], "running");
    assert_eq!(events[1].data["worker"], "w");
    assert_eq!(events[13].data["status"], "completed");
    let tail = store.events(job.id, 12, 1000).await.expect("tail");
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [13, 14]);
    let got = store.get(job.id).await.expect("get");
    assert_eq!(got.progress, Some(json!({"items_processed": 9})));
}

pub async fn list_filters_and_pages_newest_first(b: &Backend) {
    let store = b.open().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut job = NewJob::new(if i % 2 == 0 { "noop" } else { "demo" }, format!("{i}"));
        job.created_by = Some(if i < 3 { "ana" } else { "bo" }.into());
        ids.push(enqueue(&store, job).await.id);
    }
    let newest_first: Vec<_> = ids.iter().rev().copied().collect();
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list(&JobFilter {
                before,
                limit: 3,
                ..Default::default()
            })
            .await
            .expect("list");
        seen.extend(page.jobs.iter().map(|j| j.id));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, newest_first);
    let demos = store
        .list(&JobFilter {
            kind: Some("demo".into()),
            created_by: Some("bo".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        demos.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        [ids[5], ids[3]]
    );
    store.cancel(ids[0]).await.expect("cancel");
    let cancelled = store
        .list(&JobFilter {
            status: Some(JobStatus::Cancelled),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        cancelled.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        [ids[0]]
    );
}

pub async fn one_leader_at_a_time(b: &Backend) {
    let store = b.open().await;
    let ttl = Duration::from_millis(300);
    assert!(store.try_lead("reaper", "a", ttl).await.expect("lead"));
    assert!(!store.try_lead("reaper", "b", ttl).await.expect("lead"));
    assert!(store.try_lead("reaper", "a", ttl).await.expect("renew"));
    assert!(store
        .try_lead("pruner", "b", ttl)
        .await
        .expect("other name"));
    // When the holder stops renewing, another takes over.
    eventually(Duration::from_secs(10), "leadership to pass", || async {
        store
            .try_lead("reaper", "b", ttl)
            .await
            .expect("lead")
            .then_some(())
    })
    .await;
    assert!(!store.try_lead("reaper", "a", ttl).await.expect("lead"));
    store.resign("reaper", "b").await.expect("resign");
    assert!(store.try_lead("reaper", "a", ttl).await.expect("lead"));
}

pub async fn workers_report_their_heartbeat(b: &Backend) {
    let store = b.open().await;
    let info = WorkerInfo {
        id: "w-1".into(),
        host: "box".into(),
        pid: 42,
        slots: 8,
        busy: 3,
        started_at: Utc::now(),
        last_heartbeat: Utc::now(),
    };
    store.heartbeat_worker(&info).await.expect("heartbeat");
    store
        .heartbeat_worker(&WorkerInfo {
            busy: 5,
            ..info.clone()
        })
        .await
        .expect("heartbeat");
    let workers = store
        .workers(Duration::from_secs(60))
        .await
        .expect("workers");
    assert_eq!(workers.len(), 1);
    assert_eq!(
        (workers[0].id.as_str(), workers[0].slots, workers[0].busy),
        ("w-1", 8, 5)
    );
    store.remove_worker("w-1").await.expect("remove");
    assert!(store
        .workers(Duration::from_secs(60))
        .await
        .expect("workers")
        .is_empty());
}

pub async fn notifier_wakes_on_enqueue_and_control(b: &Backend) {
    let store = b.open().await;
    let mut signals = store.notifier().subscribe();
    let wait_for = |want: fn(&Signal) -> bool| {
        let mut rx = signals.resubscribe();
        async move {
            tokio::time::timeout(Duration::from_secs(10), async move {
                loop {
                    match rx.recv().await {
                        Ok(signal) if want(&signal) => return signal,
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(e) => panic!("notifier closed: {e}"),
                    }
                }
            })
            .await
            .expect("signal in time")
        }
    };
    let available = tokio::spawn(wait_for(
        |s| matches!(s, Signal::JobsAvailable { queue: Some(q) } if q == "wake"),
    ));
    // Another process (its own store) enqueues. Until this store's LISTEN/SUBSCRIBE is up
    // a notification can be missed, so it keeps enqueueing until one arrives (the waiter
    // fails the test after 10 s).
    let other = b.open().await;
    let mut first = None;
    while !available.is_finished() {
        let job = other
            .enqueue(NewJob::new("noop", "wake up").queue("wake"))
            .await
            .expect("enqueue")
            .into_job();
        first.get_or_insert(job);
        if store.backend() == "sqlite" {
            // SQLite notifies within the process that wrote; other processes poll.
            store
                .enqueue(NewJob::new("noop", "local").queue("wake"))
                .await
                .expect("enqueue");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    available.await.expect("join");
    let job = first.expect("at least one enqueue");
    let lease = claim_one(&store, "w").await;
    assert_eq!(lease.job.id, job.id);
    let control = tokio::spawn(wait_for(|s| matches!(s, Signal::Control { .. })));
    store.pause(job.id).await.expect("pause request");
    assert_eq!(
        control.await.expect("join"),
        Signal::Control { job: job.id }
    );
    let _ = signals.try_recv();
}

pub async fn effects_are_recorded_once_and_fenced(b: &Backend) {
    let store = b.open().await;
    let job = enqueue(&store, NewJob::new("noop", "effects")).await;
    let first = store
        .claim(&ClaimRequest {
            lease_ttl: Duration::from_millis(30),
            ..claim_req("w1", 1)
        })
        .await
        .expect("claim")
        .remove(0);
    let stored = store
        .record_effect(first.fence(), "email:ana", json!({"message_id": "m-1"}))
        .await
        .expect("record");
    assert_eq!(stored, json!({"message_id": "m-1"}));
    // The first record wins: a repeat returns what was stored.
    let again = store
        .record_effect(first.fence(), "email:ana", json!({"message_id": "m-2"}))
        .await
        .expect("repeat");
    assert_eq!(again, json!({"message_id": "m-1"}));

    eventually(Duration::from_secs(10), "the lease to expire", || async {
        (!store.reap_expired(10).await.expect("reap").is_empty()).then_some(())
    })
    .await;
    let second = claim_one(&store, "w2").await;
    assert_fenced(
        store
            .record_effect(first.fence(), "email:bo", json!({"message_id": "late"}))
            .await,
    );
    store
        .record_effect(second.fence(), "email:bo", json!({"message_id": "m-3"}))
        .await
        .expect("record");
    let effects = store.effects(job.id).await.expect("effects");
    let mut keys: Vec<(&str, i64)> = effects.iter().map(|e| (e.key.as_str(), e.epoch)).collect();
    keys.sort();
    assert_eq!(keys, [("email:ana", 1), ("email:bo", 2)]);
    assert!(store
        .effects(uuid::Uuid::now_v7())
        .await
        .expect("none")
        .is_empty());
}

pub async fn artifacts_are_stored_listed_and_fenced(b: &Backend) {
    let store = b.open().await;
    let job = enqueue(&store, NewJob::new("noop", "artifacts")).await;
    let lease = claim_one(&store, "w").await;
    let put = |name: &str, data: &[u8]| NewArtifact {
        name: name.into(),
        content_type: "text/csv".into(),
        data: data.to_vec(),
    };
    let meta = store
        .put_artifact(lease.fence(), put("report.csv", b"a,b\n1,2\n"))
        .await
        .expect("put");
    assert_eq!((meta.name.as_str(), meta.size), ("report.csv", 8));
    store
        .put_artifact(lease.fence(), put("report.csv", b"a,b\n1,2\n3,4\n"))
        .await
        .expect("replace");
    store
        .put_artifact(lease.fence(), put("leads.csv", b"x"))
        .await
        .expect("put");
    let listed = store.artifacts(job.id).await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|a| (a.name.as_str(), a.size))
            .collect::<Vec<_>>(),
        [("leads.csv", 1), ("report.csv", 12)]
    );
    let report = store
        .artifact(job.id, "report.csv")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(report.data, b"a,b\n1,2\n3,4\n");
    assert_eq!(report.meta.content_type, "text/csv");
    assert_eq!(store.artifact(job.id, "nope").await.expect("get"), None);
    assert_eq!(
        store.get(job.id).await.expect("get").artifacts,
        ["report.csv", "leads.csv"]
    );
    let events = store.events(job.id, 0, 100).await.expect("events");
    assert_eq!(events.iter().filter(|e| e.kind == "artifact").count(), 3);
    store
        .complete(lease.fence(), json!({}))
        .await
        .expect("complete");
    assert_fenced(
        store
            .put_artifact(lease.fence(), put("late.csv", b""))
            .await,
    );
}

pub async fn finished_jobs_are_pruned_after_their_retention(b: &Backend) {
    let store = b.open().await;
    let finish = |status: &'static str| {
        let store = store.clone();
        async move {
            let job = enqueue(&store, NewJob::new("noop", status)).await;
            if status == "cancelled" {
                store.cancel(job.id).await.expect("cancel");
                return job.id;
            }
            let lease = claim_one(&store, "w").await;
            store
                .checkpoint(
                    lease.fence(),
                    NewCheckpoint {
                        step: "s".into(),
                        state: vec![1],
                        compressed: false,
                    },
                    5,
                )
                .await
                .expect("checkpoint");
            store
                .record_effect(lease.fence(), "e", json!(1))
                .await
                .expect("effect");
            store
                .put_artifact(
                    lease.fence(),
                    NewArtifact {
                        name: "a".into(),
                        content_type: "text/plain".into(),
                        data: vec![2],
                    },
                )
                .await
                .expect("artifact");
            if status == "completed" {
                store
                    .complete(lease.fence(), json!({}))
                    .await
                    .expect("complete");
            } else {
                store
                    .fail(lease.fence(), JobFailure::permanent("no"), None)
                    .await
                    .expect("fail");
            }
            job.id
        }
    };
    let completed = finish("completed").await;
    let failed = finish("failed").await;
    let cancelled = finish("cancelled").await;
    let waiting = enqueue(&store, NewJob::new("noop", "still queued"))
        .await
        .id;
    let retention = Retention {
        completed: Duration::ZERO,
        failed: Duration::from_secs(86_400),
        cancelled: Duration::ZERO,
    };
    // One at a time (the pruner works in bounded batches), then nothing left to do.
    assert_eq!(store.prune(&retention, 1).await.expect("prune"), 1);
    assert_eq!(store.prune(&retention, 10).await.expect("prune"), 1);
    assert_eq!(store.prune(&retention, 10).await.expect("prune"), 0);
    for gone in [completed, cancelled] {
        assert!(matches!(
            store.get(gone).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(store.events(gone, 0, 100).await.expect("events").is_empty());
        assert!(store.checkpoints(gone).await.expect("cps").is_empty());
        assert!(store.effects(gone).await.expect("effects").is_empty());
        assert!(store.artifacts(gone).await.expect("artifacts").is_empty());
    }
    for kept in [failed, waiting] {
        assert!(store.get(kept).await.is_ok());
        assert!(!store.events(kept, 0, 100).await.expect("events").is_empty());
    }
    assert_eq!(store.artifacts(failed).await.expect("artifacts").len(), 1);
}

pub async fn batch_completion_fences_each_job(b: &Backend) {
    let store = b.open().await;
    let mut jobs = Vec::new();
    for (i, queue) in ["default", "default", "default", "other"]
        .iter()
        .enumerate()
    {
        jobs.push(
            enqueue(
                &store,
                NewJob::new("noop", format!("batch {i}")).queue(*queue),
            )
            .await,
        );
    }
    let leases = store.claim(&claim_req("w1", 4)).await.expect("claim");
    assert_eq!(leases.len(), 4);
    // Job 1's lease expires and another worker takes it: w1's fence for it is stale.
    let stolen = leases[1].fence();
    // A zero-TTL renewal makes the lease expire now.
    store.renew(&[stolen], Duration::ZERO).await.expect("renew");
    eventually(Duration::from_secs(10), "stolen job reaped", || async {
        let reaped = store.reap_expired(10).await.expect("reap");
        (!reaped.is_empty()).then_some(reaped)
    })
    .await;
    let thief = claim_one(&store, "w2").await;
    assert_eq!(thief.job.id, stolen.job);

    let missing = Fence {
        job: JobId::now_v7(),
        epoch: 1,
    };
    let mut batch: Vec<Completion> = leases
        .iter()
        .enumerate()
        .map(|(i, lease)| Completion {
            fence: lease.fence(),
            result: json!({ "n": i }),
        })
        .collect();
    batch.push(Completion {
        fence: missing,
        result: json!({}),
    });
    let answers = store.complete_many(&batch).await.expect("complete_many");
    use Completed::{Done, Fenced};
    assert_eq!(answers, vec![Done, Fenced, Done, Done, Fenced]);

    for (i, lease) in leases.iter().enumerate() {
        let job = store.get(lease.job.id).await.expect("get");
        if i == 1 {
            assert_eq!(
                job.status,
                JobStatus::Running,
                "the thief's run is untouched"
            );
            assert_eq!(job.lease_owner.as_deref(), Some("w2"));
            continue;
        }
        assert_eq!(job.status, JobStatus::Completed);
        assert_eq!(job.result, Some(json!({ "n": i })));
        assert!(job.finished_at.is_some());
        assert_eq!(
            statuses(&store, job.id).await,
            vec!["queued", "running", "completed"]
        );
    }
    // A retried batch whose first try landed answers the same, and writes nothing again.
    let again = store.complete_many(&batch).await.expect("retry");
    assert_eq!(again, vec![Done, Fenced, Done, Done, Fenced]);
    assert_eq!(
        statuses(&store, leases[0].job.id).await,
        vec!["queued", "running", "completed"]
    );
    // The thief completes its run normally.
    let thief_done = store
        .complete_many(&[Completion {
            fence: thief.fence(),
            result: json!("mine"),
        }])
        .await
        .expect("thief completes");
    assert_eq!(thief_done, vec![Done]);
    assert_eq!(
        store.get(stolen.job).await.expect("get").result,
        Some(json!("mine"))
    );
    assert!(store.complete_many(&[]).await.expect("empty").is_empty());
}

/// Batches larger than one multi-row statement (SQLite writes 1,000 rows a statement):
/// every job is stored, leased and completed once, each with its three status events.
pub async fn batches_larger_than_one_statement_keep_every_job(b: &Backend) {
    const JOBS: usize = 2_500;
    let store = b.open().await;
    let batch = (0..JOBS)
        .map(|i| NewJob::new("noop", format!("big {i}")))
        .collect();
    let created = store.enqueue_batch(batch).await.expect("enqueue");
    let goals: Vec<String> = created.iter().map(|r| r.job().goal.clone()).collect();
    let expected: Vec<String> = (0..JOBS).map(|i| format!("big {i}")).collect();
    assert_eq!(goals, expected, "answers in submission order");

    let leases = store.claim(&claim_req("w", JOBS)).await.expect("claim");
    assert_eq!(leases.len(), JOBS);
    let completions: Vec<Completion> = leases
        .iter()
        .map(|lease| Completion {
            fence: lease.fence(),
            result: json!({ "n": lease.job.goal }),
        })
        .collect();
    let answers = store.complete_many(&completions).await.expect("complete");
    assert!(answers.iter().all(|a| *a == Completed::Done), "all landed");

    for lease in leases.iter().step_by(97).chain(leases.last()) {
        let job = store.get(lease.job.id).await.expect("get");
        assert_eq!(job.status, JobStatus::Completed);
        assert_eq!(job.result, Some(json!({ "n": lease.job.goal })));
        let statuses: Vec<String> = store
            .events(job.id, 0, 10)
            .await
            .expect("events")
            .iter()
            .map(|e| e.data["status"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(statuses, ["queued", "running", "completed"]);
    }
}
