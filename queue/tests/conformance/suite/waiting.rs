//! Waiting without a slot: gates (open, park, decide, deadlines, the inbox) and snooze.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use drover_queue::testing::{eventually, Backend};
use drover_queue::*;
use serde_json::{json, Value};

use super::*;

fn approve(key: &str) -> NewGate {
    NewGate::new(key, format!("Continue after {key}?"))
        .decisions(["approve", "reject"])
        .default_decision("reject")
        .context(json!({ "posting": key }))
}

fn decision(key: &str, value: &str) -> Decision {
    Decision {
        key: key.into(),
        decision: json!(value),
        note: Some(format!("{value}d by the test")),
    }
}

/// A new job, leased (other queued jobs the claim takes along stay running).
async fn running(store: &Arc<dyn Store>) -> Lease {
    let job = enqueue(store, NewJob::new("noop", "gated")).await;
    store
        .claim(&claim_req("w", 100))
        .await
        .expect("claim")
        .into_iter()
        .find(|l| l.job.id == job.id)
        .expect("the new job is claimed")
}

/// A running job with `keys` opened as gates (not parked yet).
async fn running_with_gates(store: &Arc<dyn Store>, keys: &[&str]) -> Lease {
    let lease = running(store).await;
    let opened = store
        .open_gates(lease.fence(), keys.iter().map(|k| approve(k)).collect())
        .await
        .expect("open gates");
    assert!(opened.iter().all(|g| g.status == GateStatus::Open));
    lease
}

fn gate_events(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e.kind == "gate")
        .map(|e| {
            (
                e.data["key"].as_str().unwrap_or("?").to_string(),
                e.data["action"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

pub async fn gates_park_a_job_until_every_one_is_decided(b: &Backend) {
    let store = b.open().await;
    let lease = running_with_gates(&store, &["approve-1", "approve-2"]).await;
    let id = lease.job.id;

    // The gates are visible while the job still runs, and in the inbox with their job.
    let inbox = store
        .gate_inbox(&GateFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("inbox");
    let keys: Vec<(JobId, &str)> = inbox
        .gates
        .iter()
        .map(|g| (g.job_id, g.key.as_str()))
        .collect();
    assert_eq!(keys, [(id, "approve-1"), (id, "approve-2")]);
    assert_eq!(inbox.gates[0].context, json!({ "posting": "approve-1" }));
    assert_eq!(inbox.gates[0].prompt, "Continue after approve-1?");

    // Parking: waiting, no lease, the attempt handed back, nothing to claim.
    let parked = store.park(lease.fence()).await.expect("park");
    assert_eq!(parked.status, JobStatus::Waiting);
    assert_eq!(parked.lease_owner, None);
    assert_eq!(parked.lease_expires_at, None);
    assert_eq!(parked.attempt, 0, "waiting uses no attempt");
    assert!(store
        .claim(&claim_req("w", 10))
        .await
        .expect("claim")
        .is_empty());
    assert_eq!(
        store.renew(&[lease.fence()], TTL).await.expect("renew"),
        [Renewal::Lost]
    );

    // Deciding: the same decision again answers the gate; another conflicts; a decision the
    // gate does not accept is invalid; an unknown key is not found.
    let first = store
        .decide(id, decision("approve-1", "approve"))
        .await
        .expect("decide");
    assert_eq!(first.status, GateStatus::Decided);
    assert_eq!(first.decision, Some(json!("approve")));
    assert_eq!(first.note.as_deref(), Some("approved by the test"));
    assert!(first.decided_at.is_some());
    let again = store
        .decide(id, decision("approve-1", "approve"))
        .await
        .expect("same again");
    assert_eq!(again, first);
    assert!(matches!(
        store.decide(id, decision("approve-1", "reject")).await,
        Err(StoreError::GateConflict { .. })
    ));
    assert!(matches!(
        store.decide(id, decision("approve-2", "maybe")).await,
        Err(StoreError::Invalid(invalid)) if invalid.field == "decision"
    ));
    assert!(matches!(
        store.decide(id, decision("approve-9", "approve")).await,
        Err(StoreError::NoGate { key, .. }) if key == "approve-9"
    ));
    assert!(matches!(
        store
            .decide(JobId::now_v7(), decision("approve-1", "approve"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.get(id).await.expect("get").status, JobStatus::Waiting);

    // The last decision queues the job, due now, and a worker leases it again; the step
    // that opens the same gates finds them decided.
    store
        .decide(id, decision("approve-2", "reject"))
        .await
        .expect("decide");
    let job = store.get(id).await.expect("get");
    assert_eq!(job.status, JobStatus::Queued);
    assert!(job.run_at <= Utc::now() + chrono::Duration::seconds(1));
    let again = claim_one(&store, "w2").await;
    assert_eq!(again.job.id, id);
    let answers = store
        .open_gates(
            again.fence(),
            vec![approve("approve-1"), approve("approve-2")],
        )
        .await
        .expect("reopen");
    let decisions: Vec<Option<Value>> = answers.iter().map(|g| g.decision.clone()).collect();
    assert_eq!(decisions, [Some(json!("approve")), Some(json!("reject"))]);
    let gates = store.gates(id).await.expect("gates");
    assert_eq!(gates.len(), 2);
    assert!(store
        .gate_inbox(&GateFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("inbox")
        .gates
        .is_empty());

    let events = store.events(id, 0, 1000).await.expect("events");
    assert_eq!(
        gate_events(&events),
        [
            ("approve-1".into(), "opened".into()),
            ("approve-2".into(), "opened".into()),
            ("approve-1".into(), "decided".into()),
            ("approve-2".into(), "decided".into()),
        ]
    );
    assert_eq!(
        statuses(&store, id).await,
        ["queued", "running", "waiting", "queued", "running"]
    );
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "no gaps in the log"
    );
}

pub async fn a_decision_made_while_the_job_parks_is_kept(b: &Backend) {
    let store = b.open().await;
    let lease = running_with_gates(&store, &["k"]).await;
    let id = lease.job.id;
    // Decided while the step is still running (a map's other items, say).
    store
        .decide(id, decision("k", "approve"))
        .await
        .expect("decide");
    assert_eq!(store.get(id).await.expect("get").status, JobStatus::Running);
    // Parking then finds nothing open: the job goes straight back to the queue.
    let parked = store.park(lease.fence()).await.expect("park");
    assert_eq!(parked.status, JobStatus::Queued);
    let events = store.events(id, 0, 100).await.expect("events");
    let last = events
        .iter()
        .rev()
        .find(|e| e.kind == "status")
        .expect("status");
    assert_eq!(last.data["reason"], "gates_decided");
    let again = claim_one(&store, "w").await;
    let answers = store
        .open_gates(again.fence(), vec![approve("k")])
        .await
        .expect("reopen");
    assert_eq!(answers[0].decision, Some(json!("approve")));
}

pub async fn gates_past_their_deadline_take_their_default(b: &Backend) {
    let store = b.open().await;
    // Past its deadline already when parked: timed out on the way, the job queued.
    let lease = running(&store).await;
    let job = lease.job.clone();
    let late = approve("late").deadline(Utc::now() - chrono::Duration::seconds(1));
    store
        .open_gates(lease.fence(), vec![late])
        .await
        .expect("open");
    assert_eq!(
        store.park(lease.fence()).await.expect("park").status,
        JobStatus::Queued
    );
    let gates = store.gates(job.id).await.expect("gates");
    assert_eq!(gates[0].status, GateStatus::TimedOut);
    assert_eq!(gates[0].decision, Some(json!("reject")));

    // Parked with a deadline ahead: the deadline loop times it out once it passes.
    let lease = running(&store).await;
    let job = lease.job.clone();
    let soon = approve("soon").deadline(Utc::now() + chrono::Duration::milliseconds(300));
    store
        .open_gates(lease.fence(), vec![soon, approve("later")])
        .await
        .expect("open");
    assert_eq!(
        store.park(lease.fence()).await.expect("park").status,
        JobStatus::Waiting
    );
    assert_eq!(store.time_out_gates(100).await.expect("nothing due yet"), 0);
    eventually(Duration::from_secs(10), "the deadline to pass", || {
        let store = store.clone();
        async move { (store.time_out_gates(100).await.expect("time out") == 1).then_some(()) }
    })
    .await;
    let gates = store.gates(job.id).await.expect("gates");
    let soon = gates.iter().find(|g| g.key == "soon").expect("soon");
    assert_eq!(soon.status, GateStatus::TimedOut);
    assert_eq!(soon.decision, Some(json!("reject")));
    // One gate is still open: the job waits on.
    assert_eq!(
        store.get(job.id).await.expect("get").status,
        JobStatus::Waiting
    );
    // A decision after the deadline conflicts with the default.
    assert!(matches!(
        store.decide(job.id, decision("soon", "approve")).await,
        Err(StoreError::GateConflict { .. })
    ));
    store
        .decide(job.id, decision("later", "approve"))
        .await
        .expect("decide");
    assert_eq!(
        store.get(job.id).await.expect("get").status,
        JobStatus::Queued
    );
    let events = store.events(job.id, 0, 100).await.expect("events");
    assert!(gate_events(&events).contains(&("soon".into(), "timed_out".into())));
}

pub async fn waiting_jobs_can_be_paused_resumed_and_cancelled(b: &Backend) {
    let store = b.open().await;
    let lease = running_with_gates(&store, &["k"]).await;
    let id = lease.job.id;
    store.park(lease.fence()).await.expect("park");
    // Paused at once, gates kept; resumed while the gate is open: waiting again.
    assert_eq!(
        store.pause(id).await.expect("pause").status,
        JobStatus::Paused
    );
    assert_eq!(
        store.gates(id).await.expect("gates")[0].status,
        GateStatus::Open
    );
    assert_eq!(
        store.resume(id).await.expect("resume").status,
        JobStatus::Waiting
    );
    // Decided while paused: it stays paused, and resuming queues it.
    store.pause(id).await.expect("pause");
    store
        .decide(id, decision("k", "approve"))
        .await
        .expect("decide");
    assert_eq!(store.get(id).await.expect("get").status, JobStatus::Paused);
    assert_eq!(
        store.resume(id).await.expect("resume").status,
        JobStatus::Queued
    );
    assert_eq!(
        statuses(&store, id).await,
        ["queued", "running", "waiting", "paused", "waiting", "paused", "queued"]
    );

    // Cancelled while waiting: its gates leave the inbox and can no longer be decided.
    let lease = running_with_gates(&store, &["k"]).await;
    let id = lease.job.id;
    store.park(lease.fence()).await.expect("park");
    assert_eq!(
        store.cancel(id).await.expect("cancel").status,
        JobStatus::Cancelled
    );
    assert!(matches!(
        store.decide(id, decision("k", "approve")).await,
        Err(StoreError::GateConflict { .. })
    ));
    let inbox = store
        .gate_inbox(&GateFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("inbox");
    assert!(inbox.gates.iter().all(|g| g.job_id != id));
    // A waiting job has no lease for the reaper to take.
    assert!(store.reap_expired(100).await.expect("reap").is_empty());
}

pub async fn only_the_lease_holder_opens_gates_or_parks(b: &Backend) {
    let store = b.open().await;
    let lease = running_with_gates(&store, &["k"]).await;
    let stale = Fence {
        job: lease.job.id,
        epoch: lease.epoch - 1,
    };
    assert_fenced(store.open_gates(stale, vec![approve("x")]).await);
    assert_fenced(store.park(stale).await);
    // A bad gate is refused before anything is written, naming the field.
    let bad = NewGate::new("no spaces", "p");
    assert!(matches!(
        store.open_gates(lease.fence(), vec![bad]).await,
        Err(StoreError::Invalid(invalid)) if invalid.field == "key"
    ));
    assert_eq!(store.gates(lease.job.id).await.expect("gates").len(), 1);
}

pub async fn the_inbox_pages_across_jobs_oldest_first(b: &Backend) {
    let store = b.open().await;
    let mut expected = Vec::new();
    for i in 0..5 {
        let lease = running_with_gates(&store, &[&format!("g-{i}")]).await;
        store.park(lease.fence()).await.expect("park");
        expected.push((lease.job.id, format!("g-{i}")));
        // Distinct opening times, so the order is the opening order.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut seen = Vec::new();
    let mut after = None;
    for _ in 0..5 {
        let page = store
            .gate_inbox(&GateFilter {
                status: Some(GateStatus::Open),
                after: after.clone(),
                limit: 2,
            })
            .await
            .expect("inbox");
        seen.extend(page.gates.iter().map(|g| (g.job_id, g.key.clone())));
        after = page.next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(seen, expected);
    // Decided gates are listed by that status.
    store
        .decide(expected[0].0, decision(&expected[0].1, "approve"))
        .await
        .expect("decide");
    let decided = store
        .gate_inbox(&GateFilter {
            status: Some(GateStatus::Decided),
            after: None,
            limit: 10,
        })
        .await
        .expect("inbox");
    assert_eq!(decided.gates.len(), 1);
    assert_eq!(decided.gates[0].job_id, expected[0].0);
}

pub async fn racing_decisions_land_once(b: &Backend) {
    let store = b.open().await;
    // Two operators decide one gate differently at once: one wins, the other conflicts.
    let lease = running_with_gates(&store, &["k"]).await;
    let id = lease.job.id;
    store.park(lease.fence()).await.expect("park");
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = store.clone();
        let value = if i % 2 == 0 { "approve" } else { "reject" };
        racers.spawn(async move { store.decide(id, decision("k", value)).await });
    }
    let mut winners = std::collections::BTreeSet::new();
    while let Some(answer) = racers.join_next().await {
        match answer.expect("task") {
            Ok(gate) => {
                winners.insert(gate.decision.expect("decided").to_string());
            }
            Err(StoreError::GateConflict { .. }) => {}
            Err(err) => panic!("a racing decision failed: {err}"),
        }
    }
    assert_eq!(winners.len(), 1, "one decision wins: {winners:?}");
    assert_eq!(
        statuses(&store, id).await,
        ["queued", "running", "waiting", "queued"]
    );

    // Two gates decided at once by different operators: the job is queued exactly once.
    let lease = running_with_gates(&store, &["a", "b"]).await;
    let id = lease.job.id;
    store.park(lease.fence()).await.expect("park");
    let (a, b2) = tokio::join!(
        store.decide(id, decision("a", "approve")),
        store.decide(id, decision("b", "approve"))
    );
    a.expect("a");
    b2.expect("b");
    assert_eq!(store.get(id).await.expect("get").status, JobStatus::Queued);
    assert_eq!(
        statuses(&store, id).await,
        ["queued", "running", "waiting", "queued"]
    );
}

pub async fn snoozed_jobs_wait_without_using_an_attempt(b: &Backend) {
    let store = b.open().await;
    let job = enqueue(&store, NewJob::new("noop", "snooze")).await;
    let lease = claim_one(&store, "w").await;
    let until = Utc::now() + chrono::Duration::hours(1);
    let stale = Fence {
        job: job.id,
        epoch: lease.epoch - 1,
    };
    assert_fenced(store.snooze(stale, until, "rate limit").await);
    let snoozed = store
        .snooze(lease.fence(), until, "GitHub rate limit resets")
        .await
        .expect("snooze");
    assert_eq!(snoozed.status, JobStatus::Queued);
    assert_eq!(snoozed.attempt, 0);
    assert_eq!(snoozed.lease_owner, None);
    assert!((snoozed.run_at - until).num_milliseconds().abs() < 5);
    assert!(store
        .claim(&claim_req("w", 10))
        .await
        .expect("claim")
        .is_empty());
    let events = store.events(job.id, 0, 100).await.expect("events");
    let status = events
        .iter()
        .rev()
        .find(|e| e.kind == "status")
        .expect("status");
    assert_eq!(status.data["reason"], "snoozed");
    assert_eq!(status.data["note"], "GitHub rate limit resets");
    assert!(status.data["run_at"].is_string());

    // Snoozing into the past is due at once; a pending cancel wins over a snooze.
    let lease = {
        let job = enqueue(&store, NewJob::new("noop", "now")).await;
        let lease = claim_one(&store, "w").await;
        assert_eq!(lease.job.id, job.id);
        lease
    };
    store
        .snooze(
            lease.fence(),
            Utc::now() - chrono::Duration::hours(1),
            "window open",
        )
        .await
        .expect("snooze");
    let lease = claim_one(&store, "w").await;
    store.cancel(lease.job.id).await.expect("cancel request");
    let cancelled = store
        .snooze(lease.fence(), until, "rate limit")
        .await
        .expect("snooze");
    assert_eq!(cancelled.status, JobStatus::Cancelled);
}
