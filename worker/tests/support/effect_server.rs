//! A counting HTTP server for effect tests: records every POST's `Idempotency-Key` and body,
//! in arrival order. Real HTTP/1.1 (axum) on 127.0.0.1.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// One POST the server received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub key: String,
    pub body: Value,
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
    pub async fn start() -> EffectServer {
        let log = Log::default();
        let app = Router::new()
            .route("/effect", post(receive))
            .with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/effect", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        EffectServer { url, log, task }
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.log.0.lock().expect("log").clone()
    }

    /// How many times each key arrived.
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
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    log.0.lock().expect("log").push(Delivery {
        key,
        body,
        at: Instant::now(),
    });
    Json(json!({ "ok": true }))
}
