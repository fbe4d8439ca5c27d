use super::*;
use crate::job::DEFAULT_QUEUE;
use crate::testing::Backend;
use crate::JobStatus;

/// A job as the layout before issue 6 stored it: every field, defaults included.
async fn put_old_layout_job(store: &RedisStore, id: JobId, at: i64) {
    let base = store.base(DEFAULT_QUEUE);
    let (id, at) = (id.to_string(), at.to_string());
    let mut pipe = redis::pipe();
    pipe.sadd(store.global("queues"), DEFAULT_QUEUE).ignore();
    pipe.hset(store.global("jobq"), &id, DEFAULT_QUEUE).ignore();
    pipe.hset_multiple(
        format!("{base}:job:{id}"),
        &[
            ("id", id.as_str()),
            ("queue", DEFAULT_QUEUE),
            ("kind", "noop"),
            ("goal", "old"),
            ("config", "{}"),
            ("priority", "1"),
            ("max_attempts", "3"),
            ("run_at", &at),
            ("status", "queued"),
            ("attempt", "0"),
            ("lease_epoch", "0"),
            ("event_seq", "1"),
            ("cp_seq", "0"),
            ("ver", "1"),
            ("created_at", &at),
            ("updated_at", &at),
            ("fingerprint", "0000000000000000"),
            ("pause_requested", "0"),
            ("cancel_requested", "0"),
            ("artifacts", "[]"),
        ],
    )
    .ignore();
    pipe.cmd("XADD")
        .arg(format!("{base}:events:{id}"))
        .arg("0-1")
        .arg(&[
            ("kind", "status"),
            ("data", r#"{"attempt":0,"status":"queued"}"#),
        ])
        .arg(&[("at", &at)])
        .ignore();
    pipe.zadd(format!("{base}:ready:1"), &id, &at).ignore();
    pipe.zadd(format!("{base}:status:queued"), &id, 0).ignore();
    pipe.zadd(format!("{base}:all"), &id, 0).ignore();
    pipe.query_async::<()>(&mut store.conn())
        .await
        .expect("write an old-layout job");
}

/// Hashes written before the lean layout (defaults stored) read, lease and complete
/// like new ones: a deployment upgrades in place.
#[tokio::test]
async fn jobs_stored_by_the_previous_layout_still_run() {
    let backend = Backend::redis();
    let store = RedisStore::connect(&backend.url(), StoreOptions::default())
        .await
        .expect("connect");
    let old = uuid::Uuid::now_v7();
    let at = store.server_now().await.expect("time") - 1_000;
    put_old_layout_job(&store, old, at).await;
    let new = store
        .enqueue(NewJob::new("noop", "new"))
        .await
        .expect("enqueue")
        .into_job();

    let (old_job, new_job) = (
        store.get(old).await.expect("get old"),
        store.get(new.id).await.expect("get new"),
    );
    assert_eq!(new_job, new, "a created job reads back as returned");
    let same_but_ids_and_times = |job: &Job| {
        (
            job.kind.clone(),
            job.config.clone(),
            job.priority,
            job.status,
            job.attempt,
            job.max_attempts,
            job.lease_epoch,
            job.event_seq,
            job.artifacts.clone(),
            job.pause_requested,
            job.cancel_requested,
            job.created_at == job.updated_at,
        )
    };
    assert_eq!(
        same_but_ids_and_times(&old_job),
        same_but_ids_and_times(&new_job)
    );

    let request = ClaimRequest {
        worker_id: "w-1".into(),
        limit: 10,
        lease_ttl: Duration::from_secs(30),
        queues: vec![DEFAULT_QUEUE.into()],
    };
    let leases = store.claim(&request).await.expect("claim");
    assert_eq!(
        leases.iter().map(|l| l.job.id).collect::<Vec<_>>(),
        [old, new.id],
        "the older job first"
    );
    for lease in &leases {
        assert_eq!((lease.epoch, lease.job.attempt), (1, 1));
        assert_eq!(lease.job.status, JobStatus::Running);
        assert_eq!(lease.job.lease_owner.as_deref(), Some("w-1"));
        assert!(lease.job.started_at.is_some());
        assert_eq!(lease.job, store.get(lease.job.id).await.expect("get"));
    }
    let fences: Vec<Fence> = leases
        .iter()
        .map(|l| Fence {
            job: l.job.id,
            epoch: l.epoch,
        })
        .collect();
    let renewed = store
        .renew(&fences, Duration::from_secs(30))
        .await
        .expect("renew");
    assert!(renewed.iter().all(|r| matches!(
        r,
        Renewal::Held {
            pause_requested: false,
            cancel_requested: false
        }
    )));
    for &fence in &fences {
        let seq = store
            .append_event(fence, "progress", serde_json::json!({"done": 1}))
            .await
            .expect("append");
        assert_eq!(seq, 3);
    }
    let completions: Vec<Completion> = fences
        .iter()
        .map(|&fence| Completion {
            fence,
            result: serde_json::json!({"ok": true}),
        })
        .collect();
    let done = store.complete_many(&completions).await.expect("complete");
    assert_eq!(done, [Completed::Done, Completed::Done]);
    for id in [old, new.id] {
        let job = store.get(id).await.expect("get");
        assert_eq!(job.status, JobStatus::Completed);
        let events = store.events(id, 0, 10).await.expect("events");
        let seen: Vec<_> = events
            .iter()
            .map(|e| (e.seq, e.kind.as_str(), e.data["status"].clone()))
            .collect();
        assert_eq!(
            seen,
            [
                (1, "status", "queued".into()),
                (2, "status", "running".into()),
                (3, "progress", serde_json::Value::Null),
                (4, "status", "completed".into()),
            ]
        );
        assert_eq!(events[3].data["worker"], "w-1");
        assert_eq!(events[3].data["attempt"], 1);
        let tail = store.events(id, 2, 1).await.expect("events after 2");
        assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
    }
    // Retention deletes both layouts whole.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let zero = Retention {
        completed: Duration::ZERO,
        failed: Duration::ZERO,
        cancelled: Duration::ZERO,
    };
    assert_eq!(store.prune(&zero, 100).await.expect("prune"), 2);
    for id in [old, new.id] {
        assert_eq!(backend.leftovers(id).await, Vec::<String>::new());
    }
    backend.cleanup().await;
}
