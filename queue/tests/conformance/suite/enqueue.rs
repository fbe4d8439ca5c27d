//! Enqueue, validation, idempotency, backpressure, batches and listing.

use std::collections::HashSet;

use chrono::Utc;
use drover_queue::*;
use serde_json::json;

use drover_queue::testing::Backend;

use super::*;

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
    // U+0000 is refused alike by every backend (PostgreSQL cannot store it), by field.
    let nul_cases = [
        (NewJob::new("noop", "goal\0"), "goal"),
        (NewJob::new("noop\0", "x"), "kind"),
        (
            NewJob::new("noop", "x").config(json!({"a": ["b\0"]})),
            "config",
        ),
        (NewJob::new("noop", "x").config(json!({"k\0": 1})), "config"),
        (
            NewJob::new("noop", "x").idempotency_key("k\0"),
            "idempotency_key",
        ),
        (NewJob::new("noop", "x").queue("q\0"), "queue"),
    ];
    for (job, field) in nul_cases {
        let err = store.enqueue(job).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid(e) if e.field == field),
            "{field}: {err:?}"
        );
    }
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
    // `run_at` is when, not what: a relative time resolved again is the same job.
    let later = body().run_at(Utc::now() + chrono::Duration::minutes(10));
    let again = store
        .enqueue(later)
        .await
        .expect("same body, another run_at");
    assert_eq!(again.job().id, first.job().id);
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
