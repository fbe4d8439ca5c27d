//! An OpenAI-compatible `POST /v1/chat/completions`: a short, deterministic note built from the
//! last user message, with the rate-limit headers OpenAI sends, a configurable share of 429s
//! (with `retry-after-ms`), and `insufficient_quota` on demand.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use serde_json::{json, Value};

use crate::log::{fingerprint, Log, Request};

pub struct Llm {
    /// Every `n`-th request answers 429 `rate_limit_exceeded` (0: never).
    pub rate_limit_every: AtomicU64,
    /// The `retry-after-ms` of those 429s.
    pub retry_after_ms: AtomicU64,
    /// Answer every request 429 `insufficient_quota` (a permanent error for the client).
    pub out_of_quota: AtomicBool,
    seen: AtomicU64,
    log: Arc<Log>,
}

impl Llm {
    pub fn new(log: Arc<Log>) -> Llm {
        Llm {
            rate_limit_every: AtomicU64::new(0),
            retry_after_ms: AtomicU64::new(50),
            out_of_quota: AtomicBool::new(false),
            seen: AtomicU64::new(0),
            log,
        }
    }
}

fn error(status: StatusCode, kind: &str, code: &str, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (status, axum::Json(body)).into_response()
}

async fn completions(
    State(llm): State<Arc<Llm>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let response = answer(&llm, token.as_deref(), &body);
    let request = Request {
        at: Utc::now(),
        service: "llm",
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        token: token.as_deref().map(fingerprint),
        status: response.status().as_u16(),
    };
    llm.log.record(request, "/v1/chat/completions");
    if let Some(token) = &token {
        llm.log.count_token(&fingerprint(token));
    }
    response
}

fn answer(llm: &Llm, token: Option<&str>, body: &[u8]) -> Response {
    if token.is_none_or(str::is_empty) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "You didn't provide an API key.",
        );
    }
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_json",
                &format!("We could not parse the JSON body of your request: {e}"),
            )
        }
    };
    let Some(model) = request["model"].as_str() else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "missing_model",
            "you must provide a model parameter",
        );
    };
    let Some(messages) = request["messages"].as_array().filter(|m| !m.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "missing_messages",
            "'messages' must be a non-empty array",
        );
    };
    if llm.out_of_quota.load(Ordering::Relaxed) {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
        );
    }
    let n = llm.seen.fetch_add(1, Ordering::Relaxed) + 1;
    let every = llm.rate_limit_every.load(Ordering::Relaxed);
    if every > 0 && n % every == 0 {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "requests",
            "rate_limit_exceeded",
            "Rate limit reached for requests per min. Please try again shortly.",
        );
        let ms = llm.retry_after_ms.load(Ordering::Relaxed);
        let h = response.headers_mut();
        h.insert("retry-after-ms", ms.into());
        h.insert("retry-after", ms.div_ceil(1000).into());
        return response;
    }
    let user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let subject = user
        .split_whitespace()
        .take(12)
        .collect::<Vec<_>>()
        .join(" ");
    let content = format!("Hi — I came across your work ({subject}). Thank you for it; I'd love to hear how you approach maintaining it.");
    let prompt_tokens = messages
        .iter()
        .filter_map(|m| m["content"].as_str())
        .map(|c| c.split_whitespace().count())
        .sum::<usize>();
    let completion_tokens = content.split_whitespace().count();
    let mut response = axum::Json(json!({
        "id": format!("chatcmpl-{n:012}"),
        "object": "chat.completion",
        "created": Utc::now().timestamp(),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
    }))
    .into_response();
    let h = response.headers_mut();
    h.insert("x-ratelimit-limit-requests", 10_000.into());
    h.insert("x-ratelimit-remaining-requests", 9_999.into());
    h.insert("x-request-id", n.into());
    response
}

pub fn routes(llm: Arc<Llm>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(llm)
}
