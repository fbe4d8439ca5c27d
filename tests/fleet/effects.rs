//! The fleet's counting server: `demo` jobs POST each item's effect here. It listens on the
//! bridge address, so every host reaches it over its own veth, and records who sent each
//! POST (the host's address), what (`job_id`, `item`, the `Idempotency-Key`) and when.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// One POST received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub key: String,
    pub job: String,
    pub item: u64,
    pub from: IpAddr,
    pub at: Instant,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Delivery>>>);

pub struct EffectServer {
    pub url: String,
    log: Log,
    task: tokio::task::JoinHandle<()>,
}

impl EffectServer {
    pub async fn start(bind: IpAddr) -> EffectServer {
        let log = Log::default();
        let app = Router::new()
            .route("/effect", post(receive))
            .with_state(log.clone());
        let listener = tokio::net::TcpListener::bind((bind, 0))
            .await
            .unwrap_or_else(|e| panic!("bind the effect server on {bind}: {e}"));
        let url = format!("http://{}/effect", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let service = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, service).await;
        });
        EffectServer { url, log, task }
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.log.0.lock().expect("log").clone()
    }

    /// How many times each `Idempotency-Key` arrived.
    pub fn counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for d in self.deliveries() {
            *counts.entry(d.key).or_default() += 1;
        }
        counts
    }
}

impl Drop for EffectServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(log): State<Log>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let job = body["job_id"].as_str().unwrap_or("").to_string();
    let item = body["item"].as_u64().unwrap_or(u64::MAX);
    log.0.lock().expect("log").push(Delivery {
        key,
        job,
        item,
        from: peer.ip(),
        at: Instant::now(),
    });
    Json(json!({ "ok": true }))
}
