//! What the sandbox saw: every request (service, method, path, token fingerprint, status) and
//! counters per endpoint, per token, per recipient and per application outcome, for tests and benchmarks to read
//! (in process, or over `GET /_sandbox/stats`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One request as logged. Tokens are never kept: only a fingerprint that tells them apart.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub at: DateTime<Utc>,
    pub service: &'static str,
    pub method: String,
    pub path: String,
    pub token: Option<String>,
    pub status: u16,
}

/// The counters, as `GET /_sandbox/stats` shows them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// `"<service> <METHOD> <route>"` → requests.
    pub endpoints: BTreeMap<String, u64>,
    /// Token fingerprint → requests counted against its budget.
    pub tokens: BTreeMap<String, u64>,
    /// Recipient → messages accepted (SMTP sink and mail API together).
    pub recipients: BTreeMap<String, u64>,
    /// Requests that arrived while their token's budget was spent (a well-behaved client
    /// makes none).
    pub over_budget: u64,
    /// Answers of 403/429 for a primary or secondary rate limit.
    pub rate_limited: u64,
    /// Conditional requests answered 304 (not counted against the budget).
    pub not_modified: u64,
    pub requests: u64,
    /// Application-form submissions by outcome (`accepted`, `invalid`, `captcha`,
    /// `login_required`, `verification_required`).
    pub applications: BTreeMap<String, u64>,
}

#[derive(Default)]
pub struct Log {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Request>,
    stats: Stats,
}

/// How many requests are kept in full; the counters keep counting after.
const KEPT: usize = 100_000;

/// A fingerprint of a token: enough to tell tokens apart, nothing to reuse.
pub fn fingerprint(token: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in token.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("tok-{:08x}", h as u32)
}

impl Log {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn record(&self, request: Request, route: &str) {
        let mut inner = self.lock();
        let key = format!("{} {} {route}", request.service, request.method);
        *inner.stats.endpoints.entry(key).or_default() += 1;
        inner.stats.requests += 1;
        if inner.requests.len() < KEPT {
            inner.requests.push(request);
        }
    }

    pub fn count_token(&self, token: &str) {
        *self
            .lock()
            .stats
            .tokens
            .entry(token.to_string())
            .or_default() += 1;
    }

    pub fn count_recipient(&self, recipient: &str) {
        let mut inner = self.lock();
        *inner
            .stats
            .recipients
            .entry(recipient.to_lowercase())
            .or_default() += 1;
    }

    pub fn over_budget(&self) {
        self.lock().stats.over_budget += 1;
    }

    pub fn rate_limited(&self) {
        self.lock().stats.rate_limited += 1;
    }

    pub fn count_application(&self, outcome: &str) {
        *self
            .lock()
            .stats
            .applications
            .entry(outcome.to_string())
            .or_default() += 1;
    }

    pub fn not_modified(&self) {
        self.lock().stats.not_modified += 1;
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }
}
