//! The SSE fan-out: many clients on one job cost one store read per new event (per
//! notification), not one per client, and every client gets every event once, in order.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use drover_api::{router, ApiConfig, AppState};
use drover_queue::testing::Backend;
use drover_queue::{ClaimRequest, NewJob};
use drover_worker::Registry;
use futures_util::StreamExt;
use serde_json::json;
use tower::ServiceExt;

const CLIENTS: usize = 200;
const EVENTS: i64 = 30;

async fn many_clients_share_one_read_per_event(backend: Backend) {
    let store = backend.open().await;
    let state = AppState::new(
        store.clone(),
        Registry::with_test_kinds(),
        ApiConfig::default(),
    );
    let hub = state.hub.clone();
    let app = router(state);
    let job = store
        .enqueue(NewJob::new("noop", "watched"))
        .await
        .expect("enqueue")
        .into_job();
    let lease = store
        .claim(&ClaimRequest {
            worker_id: "w".into(),
            limit: 1,
            lease_ttl: Duration::from_secs(60),
            queues: vec![],
        })
        .await
        .expect("claim")
        .pop()
        .expect("lease");
    // Every client connects and reads the replay (queued, running) before anything new.
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(CLIENTS);
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let app = app.clone();
        let ready = ready_tx.clone();
        let uri = format!("/v1/jobs/{}/events", job.id);
        clients.push(tokio::spawn(async move {
            let response = app
                .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
                .await
                .expect("response");
            let mut body = response.into_body().into_data_stream();
            let mut text = String::new();
            let mut signalled = false;
            while let Some(chunk) = body.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
                if !signalled && text.matches("id: ").count() >= 2 {
                    signalled = true;
                    let _ = ready.send(()).await;
                }
                if text.contains("event: end") {
                    break;
                }
            }
            text.lines()
                .filter_map(|l| l.strip_prefix("id: "))
                .filter_map(|s| s.parse::<i64>().ok())
                .collect::<Vec<_>>()
        }));
    }
    for _ in 0..CLIENTS {
        ready_rx.recv().await.expect("a client ready");
    }
    let reads_before = hub.feed_reads();
    for i in 0..EVENTS {
        store
            .append_event(lease.fence(), "progress", json!({ "items_processed": i }))
            .await
            .expect("event");
    }
    store
        .complete(lease.fence(), json!({}))
        .await
        .expect("complete");
    let expected: Vec<i64> = (1..=EVENTS + 3).collect();
    for client in clients {
        let ids = tokio::time::timeout(Duration::from_secs(60), client)
            .await
            .expect("client ends")
            .expect("client ran");
        assert_eq!(ids, expected, "every event once, in order");
    }
    let reads = hub.feed_reads() - reads_before;
    eprintln!(
        "{}: {CLIENTS} clients, {} events: {reads} feed reads",
        backend.name(),
        EVENTS + 1
    );
    // One read per new event at most (notifications may coalesce): never per client, and
    // not again for the echo of an event already read (the in-process signal and the
    // NOTIFY or pub/sub message of the same event). Two spare: the 2 s safety-net poll.
    assert!(
        reads <= EVENTS as u64 + 1 + 2,
        "{reads} feed reads for {EVENTS} events and {CLIENTS} clients"
    );
    backend.cleanup().await;
}

drover_queue::on_every_backend!(many_clients_share_one_read_per_event);
