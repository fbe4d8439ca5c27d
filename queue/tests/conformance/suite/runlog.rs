//! What a run leaves behind: checkpoints, events, effects, artifacts.

use std::time::Duration;

use drover_queue::*;
use serde_json::json;

use drover_queue::testing::{eventually, Backend};

use super::*;

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
                    items: Vec::new(),
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

/// Artifact names are checked by the store, on every backend alike: a name becomes a file
/// name and a URL path segment.
pub async fn artifact_names_are_checked_by_the_store(b: &Backend) {
    let store = b.open().await;
    let job = enqueue(&store, NewJob::new("noop", "artifact names")).await;
    let lease = claim_one(&store, "w").await;
    let put = |name: &str| NewArtifact {
        name: name.into(),
        content_type: "text/plain".into(),
        data: b"x".to_vec(),
    };
    let too_long = "a".repeat(MAX_ARTIFACT_NAME_LEN + 1);
    for bad in [
        "",
        ".",
        "..",
        "../etc",
        "a/b",
        "a b",
        "ré.txt",
        "a\0b",
        "}",
        too_long.as_str(),
    ] {
        match store.put_artifact(lease.fence(), put(bad)).await {
            Err(StoreError::Invalid(invalid)) => assert_eq!(invalid.field, "name", "{bad:?}"),
            other => panic!("{bad:?}: expected Invalid(name), got {other:?}"),
        }
    }
    let longest = "a".repeat(MAX_ARTIFACT_NAME_LEN);
    for good in ["report.csv", "a", "...", "v1.2_final-B", longest.as_str()] {
        store
            .put_artifact(lease.fence(), put(good))
            .await
            .unwrap_or_else(|e| panic!("{good:?}: {e}"));
    }
    let stored = store.artifacts(job.id).await.expect("list");
    assert_eq!(stored.len(), 5, "only the valid names were stored");
}

/// U+0000 cannot be stored by PostgreSQL, so every backend refuses it alike wherever a
/// runner writes JSON or a name: a completion's result, an event, an effect. A refused
/// completion batch is refused whole (the worker splits it) and leaves its jobs running.
pub async fn nul_characters_are_refused_alike(b: &Backend) {
    let store = b.open().await;
    let job = enqueue(&store, NewJob::new("noop", "nul")).await;
    let lease = claim_one(&store, "w1").await;
    assert_eq!(lease.job.id, job.id);
    let fence = lease.fence();
    let invalid = |result: StoreResult<_>, field: &str| match result {
        Err(StoreError::Invalid(e)) => assert_eq!(e.field, field, "{e}"),
        other => panic!("expected {field} to be refused, got {other:?}"),
    };
    invalid(
        store
            .append_event(fence, "log", json!({"message": "a\u{0}b"}))
            .await
            .map(|_| ()),
        "data",
    );
    invalid(
        store
            .append_event(fence, "lo\u{0}g", json!({}))
            .await
            .map(|_| ()),
        "kind",
    );
    invalid(
        store
            .record_effect(fence, "mail", json!({"id": "\u{0}"}))
            .await
            .map(|_| ()),
        "result",
    );
    invalid(
        store
            .record_effect(fence, "ma\u{0}il", json!({}))
            .await
            .map(|_| ()),
        "key",
    );
    let other = enqueue(&store, NewJob::new("noop", "fine")).await;
    let other_lease = claim_one(&store, "w1").await;
    assert_eq!(other_lease.job.id, other.id);
    let batch = [
        Completion {
            fence: other_lease.fence(),
            result: json!({"ok": true}),
        },
        Completion {
            fence,
            result: json!({"text": "x\u{0}y"}),
        },
    ];
    invalid(store.complete_many(&batch).await.map(|_| ()), "result");
    for id in [job.id, other.id] {
        assert_eq!(store.get(id).await.expect("get").status, JobStatus::Running);
    }
    // Nothing was written by the refused calls: the log holds the two status events.
    assert_eq!(statuses(&store, job.id).await, ["queued", "running"]);
    assert_eq!(store.effects(job.id).await.expect("effects"), vec![]);
}
