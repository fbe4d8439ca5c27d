//! A counting HTTP server for effect tests: records every POST's `Idempotency-Key`,
//! `X-Drover-Attempt` and body, in arrival order. Real HTTP/1.1 (axum) on 127.0.0.1.
//!
//! It can also *hold* requests: while [`EffectServer::hold`] is on, a POST is recorded on
//! arrival and answered only once [`EffectServer::release`] is called, so a test can crash
//! a worker with its request in flight. [`EffectServer::arrived`] awaits arrivals.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::watch;

/// One POST the server received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub key: String,
    /// The sender's `X-Drover-Attempt` (0 when absent).
    pub attempt: u32,
    pub body: Value,
    pub at: Instant,
    /// Whether the server has answered it (false while it is held).
    pub answered: bool,
}

#[derive(Clone)]
struct Shared {
    log: Arc<Mutex<Vec<Delivery>>>,
    /// Bumped at every arrival and every answer.
    changed: watch::Sender<u64>,
    /// True while requests are held.
    hold: watch::Sender<bool>,
}

pub struct EffectServer {
    pub url: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl EffectServer {
    pub async fn start() -> EffectServer {
        let shared = Shared {
            log: Arc::default(),
            changed: watch::channel(0).0,
            hold: watch::channel(false).0,
        };
        let app = Router::new()
            .route("/effect", post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/effect", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        EffectServer { url, shared, task }
    }

    /// From now on, requests are recorded on arrival and not answered until [`Self::release`].
    pub fn hold(&self) {
        self.shared.hold.send_replace(true);
    }

    /// Answers every held request, and the later ones at once.
    pub fn release(&self) {
        self.shared.hold.send_replace(false);
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.log.lock().expect("log").clone()
    }

    /// Waits (up to `within`) until `done` holds for the deliveries; panics with `what` if not.
    pub async fn until(
        &self,
        within: Duration,
        what: &str,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
        let mut changed = self.shared.changed.subscribe();
        let wait = async {
            loop {
                let deliveries = self.deliveries();
                if done(&deliveries) {
                    return deliveries;
                }
                if changed.changed().await.is_err() {
                    panic!("effect server gone while waiting for {what}");
                }
            }
        };
        match tokio::time::timeout(within, wait).await {
            Ok(deliveries) => deliveries,
            Err(_) => panic!(
                "timed out after {within:?} waiting for {what}; deliveries: {:?}",
                self.deliveries()
            ),
        }
    }

    /// Waits until a request with `key` from `attempt` has arrived (answered or not).
    pub async fn arrived(&self, key: &str, attempt: u32) -> Delivery {
        let what = format!("{key} from attempt {attempt}");
        let deliveries = self
            .until(Duration::from_secs(20), &what, |ds| {
                ds.iter().any(|d| d.key == key && d.attempt == attempt)
            })
            .await;
        deliveries
            .into_iter()
            .find(|d| d.key == key && d.attempt == attempt)
            .expect("found above")
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
    State(shared): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let key = header("idempotency-key");
    let attempt = header("x-drover-attempt").parse().unwrap_or(0);
    let index = {
        let mut log = shared.log.lock().expect("log");
        log.push(Delivery {
            key,
            attempt,
            body,
            at: Instant::now(),
            answered: false,
        });
        log.len() - 1
    };
    shared.changed.send_modify(|n| *n += 1);
    let mut hold = shared.hold.subscribe();
    let _ = hold.wait_for(|held| !*held).await;
    shared.log.lock().expect("log")[index].answered = true;
    shared.changed.send_modify(|n| *n += 1);
    Json(json!({ "ok": true }))
}
