//! Map item outputs: written with a checkpoint under its fence, read back per step in index
//! order a page at a time, rewritten in place, deleted with the job.

use std::time::Duration;

use drover_queue::testing::Backend;
use drover_queue::*;
use serde_json::json;

use super::*;

fn output(step: &str, index: u64, visit: u64, text: &str) -> NewItemOutput {
    NewItemOutput {
        step: step.into(),
        index,
        visit,
        output: json!({ "item": index, "text": text })
            .to_string()
            .into_bytes(),
    }
}

fn checkpoint(items: Vec<NewItemOutput>) -> NewCheckpoint {
    NewCheckpoint {
        step: "map".into(),
        state: b"{}".to_vec(),
        compressed: false,
        items,
    }
}

/// Every output of `step`, paging with `page` per read.
async fn read_all(store: &Arc<dyn Store>, id: JobId, step: &str, page: usize) -> Vec<ItemOutput> {
    let mut all = Vec::new();
    let mut from = 0;
    loop {
        let rows = store
            .item_outputs(id, step, from, page)
            .await
            .expect("item outputs");
        assert!(rows.len() <= page);
        let Some(last) = rows.last().map(|r| r.index) else {
            break;
        };
        let full = rows.len() == page;
        all.extend(rows);
        if !full {
            break;
        }
        from = last + 1;
    }
    all
}

pub async fn item_outputs_are_fenced_paged_and_rewritten(b: &Backend) {
    let store = b.open().await;
    let job = enqueue(&store, NewJob::new("noop", "items")).await;
    let lease = claim_one(&store, "w").await;
    // A large batch: every even index of 0..5000 (odd ones were skipped), and another step's
    // outputs that must not mix in. Written in reverse: the read order is the index order.
    let mut items: Vec<NewItemOutput> = (0..5000u64)
        .rev()
        .filter(|i| i % 2 == 0)
        .map(|i| output("map", i, 1, "first"))
        .collect();
    items.push(output("other", 3, 1, "other"));
    store
        .checkpoint(lease.fence(), checkpoint(items), 3)
        .await
        .expect("checkpoint with items");
    let rows = read_all(&store, job.id, "map", 333).await;
    assert_eq!(rows.len(), 2500);
    assert!(rows
        .iter()
        .enumerate()
        .all(|(n, r)| r.index == 2 * n as u64));
    assert!(rows.iter().all(|r| r.step == "map" && r.visit == 1));
    assert_eq!(rows[7], output("map", 14, 1, "first"));
    // One read never answers more than the maximum.
    let capped = store
        .item_outputs(job.id, "map", 0, usize::MAX)
        .await
        .expect("capped read");
    assert_eq!(capped.len(), MAX_ITEM_OUTPUTS_PER_READ);
    // From an index between rows, and past the end.
    let from = store
        .item_outputs(job.id, "map", 11, 2)
        .await
        .expect("from");
    assert_eq!(from.iter().map(|r| r.index).collect::<Vec<_>>(), [12, 14]);
    assert!(store
        .item_outputs(job.id, "map", 5000, 10)
        .await
        .expect("past the end")
        .is_empty());
    let other = read_all(&store, job.id, "other", 10).await;
    assert_eq!(other, [output("other", 3, 1, "other")]);

    // Rewriting an index replaces its row (twice: idempotent); the count stays.
    for _ in 0..2 {
        store
            .checkpoint(
                lease.fence(),
                checkpoint(vec![output("map", 14, 2, "second")]),
                3,
            )
            .await
            .expect("rewrite");
    }
    let rows = read_all(&store, job.id, "map", 1000).await;
    assert_eq!(rows.len(), 2500);
    assert_eq!(rows[7], output("map", 14, 2, "second"));

    // A stale fence writes neither the checkpoint nor the outputs.
    let seq = store
        .latest_checkpoint(job.id)
        .await
        .expect("latest")
        .expect("some")
        .seq;
    let stale = Fence {
        job: job.id,
        epoch: lease.fence().epoch + 1,
    };
    let refused = store
        .checkpoint(
            stale,
            checkpoint(vec![
                output("map", 14, 3, "stale"),
                output("map", 1, 3, "stale"),
            ]),
            3,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { .. })),
        "{refused:?}"
    );
    let rows = read_all(&store, job.id, "map", 1000).await;
    assert_eq!(rows.len(), 2500);
    assert_eq!(rows[7], output("map", 14, 2, "second"));
    let latest = store.latest_checkpoint(job.id).await.expect("latest");
    assert_eq!(latest.map(|c| c.seq), Some(seq));
}

pub async fn item_outputs_are_deleted_with_the_job(b: &Backend) {
    let store = b.open().await;
    let done = enqueue(&store, NewJob::new("noop", "pruned")).await;
    let lease = claim_one(&store, "w").await;
    let items = (0..10).map(|i| output("map", i, 0, "x")).collect();
    store
        .checkpoint(lease.fence(), checkpoint(items), 3)
        .await
        .expect("checkpoint");
    store
        .complete(lease.fence(), json!({}))
        .await
        .expect("complete");
    let kept = enqueue(&store, NewJob::new("noop", "kept")).await;
    let lease = claim_one(&store, "w").await;
    let items = (0..10).map(|i| output("map", i, 0, "y")).collect();
    store
        .checkpoint(lease.fence(), checkpoint(items), 3)
        .await
        .expect("checkpoint");
    assert_eq!(read_all(&store, done.id, "map", 100).await.len(), 10);
    let retention = Retention {
        completed: Duration::ZERO,
        failed: Duration::from_secs(86_400),
        cancelled: Duration::from_secs(86_400),
    };
    assert_eq!(store.prune(&retention, 10).await.expect("prune"), 1);
    assert!(read_all(&store, done.id, "map", 100).await.is_empty());
    assert_eq!(read_all(&store, kept.id, "map", 100).await.len(), 10);
}
