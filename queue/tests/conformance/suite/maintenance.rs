//! Migrations, queue pause, retention, leadership, the worker registry and the notifier.

use std::time::Duration;

use chrono::Utc;
use drover_queue::*;
use serde_json::json;

use drover_queue::testing::{eventually, Backend};

use super::*;

pub async fn migrations_are_idempotent_and_concurrent(b: &Backend) {
    // A fresh store, migrated by four processes at once: each migration is applied once,
    // by one of them, and the reports say which.
    let handles: Vec<_> = {
        let mut handles = Vec::new();
        for _ in 0..4 {
            handles.push(
                drover_queue::connect(&b.url(), StoreOptions::default())
                    .await
                    .expect("connect"),
            );
        }
        handles
    };
    let before = handles[0].schema_status().await.expect("status");
    assert_eq!(before.version, 0, "nothing applied yet");
    assert_eq!(before.is_current(), before.latest == 0);
    let tasks: Vec<_> = handles
        .iter()
        .cloned()
        .map(|store| tokio::spawn(async move { store.migrate().await }))
        .collect();
    let mut applied = Vec::new();
    for task in tasks {
        let report = task.await.expect("join").expect("concurrent migrate");
        assert_eq!(report.version, before.latest);
        applied.extend(report.applied);
    }
    applied.sort();
    let versions: Vec<i64> = applied.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        versions,
        (1..=before.latest).collect::<Vec<_>>(),
        "each once"
    );
    // Up to date now: another migrate applies nothing and says so.
    let store = b.open().await;
    let again = store.migrate().await.expect("second migrate");
    assert!(again.applied.is_empty(), "{again:?}");
    assert!(store.schema_status().await.expect("status").is_current());
    let job = enqueue(&store, NewJob::new("noop", "after migrations")).await;
    assert_eq!(store.get(job.id).await.expect("get").id, job.id);
}

pub async fn server_health_reads_what_the_backend_has(b: &Backend) {
    let store = b.open().await;
    let health = store.server_health().await.expect("server health");
    match store.backend() {
        "sqlite" => {
            let file = health.file.expect("the database file");
            assert!(file.exists(), "{}", file.display());
            assert_eq!((health.clock, health.append_only), (None, None));
        }
        "postgres" => {
            // The test server runs on this host: one clock.
            let skew = (health.clock.expect("now()") - Utc::now())
                .num_seconds()
                .abs();
            assert!(skew < 5, "{skew} s apart");
            assert_eq!((health.file, health.append_only), (None, None));
        }
        _ => {
            // The test Redis may run with or without AOF; it answers CONFIG GET.
            assert!(health.append_only.is_some(), "{health:?}");
            assert_eq!((health.file, health.clock), (None, None));
        }
    }
}

pub async fn paused_queues_are_not_leased(b: &Backend) {
    let store = b.open().await;
    // A queue name becomes key and channel names: the store checks it too, not only the API.
    for bad in ["}", "", "a b", "q\u{0}"] {
        for result in [store.pause_queue(bad).await, store.resume_queue(bad).await] {
            assert!(
                matches!(&result, Err(StoreError::Invalid(e)) if e.field == "queue"),
                "{bad:?}: {result:?}"
            );
        }
    }
    let names: Vec<String> = store
        .queues()
        .await
        .expect("queues")
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert!(!names.iter().any(|n| n == "}" || n.is_empty()), "{names:?}");
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
                        items: Vec::new(),
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
