//! The store conformance suite: every backend must pass every test here. One file per
//! concern, like the `Store` traits: enqueue, leases, transitions, run log, maintenance,
//! waiting (gates and snooze), map item outputs, schedules, rate limits, suppressions, and profiles with the applications ledger.

mod enqueue;
mod item_outputs;
mod leases;
mod limits;
mod maintenance;
mod profiles;
mod runlog;
mod schedules;
mod suppressions;
mod transitions;
mod waiting;

pub use enqueue::*;
pub use item_outputs::*;
pub use leases::*;
pub use limits::*;
pub use maintenance::*;
pub use profiles::*;
pub use runlog::*;
pub use schedules::*;
pub use suppressions::*;
pub use transitions::*;
pub use waiting::*;

use std::sync::Arc;
use std::time::Duration;

use drover_queue::*;

pub(crate) const TTL: Duration = Duration::from_secs(30);

pub(crate) fn claim_req(worker: &str, limit: usize) -> ClaimRequest {
    ClaimRequest {
        worker_id: worker.to_string(),
        limit,
        lease_ttl: TTL,
        queues: Vec::new(),
    }
}

pub(crate) async fn claim_one(store: &Arc<dyn Store>, worker: &str) -> Lease {
    let mut leases = store.claim(&claim_req(worker, 1)).await.expect("claim");
    assert_eq!(leases.len(), 1, "expected one job to claim");
    leases.remove(0)
}

pub(crate) async fn enqueue(store: &Arc<dyn Store>, job: NewJob) -> Job {
    store.enqueue(job).await.expect("enqueue").into_job()
}

pub(crate) async fn statuses(store: &Arc<dyn Store>, id: JobId) -> Vec<String> {
    store
        .events(id, 0, 1000)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.kind == "status")
        .map(|e| e.data["status"].as_str().unwrap_or("?").to_string())
        .collect()
}

pub(crate) fn assert_illegal(result: StoreResult<Job>, from: JobStatus, transition: Transition) {
    match result {
        Err(StoreError::IllegalTransition { illegal, .. }) => {
            assert_eq!((illegal.from, illegal.transition), (from, transition));
        }
        other => panic!("expected illegal {transition} from {from}, got {other:?}"),
    }
}

pub(crate) fn assert_fenced<T: std::fmt::Debug>(result: StoreResult<T>) {
    assert!(
        matches!(result, Err(StoreError::Fenced { .. })),
        "expected a fenced write, got {result:?}"
    );
}
