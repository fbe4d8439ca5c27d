//! Claims, fencing and completion.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use drover_queue::*;
use serde_json::json;

use drover_queue::testing::{eventually, Backend};

use super::*;

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
        items: Vec::new(),
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
