//! A Resend-shaped mail API: `POST /emails` with a Bearer key, answering `{"id"}`, honouring
//! `Idempotency-Key` as Resend documents (the same key and body within 24 hours answers the
//! same id and sends nothing; the same key with another body is refused with 409).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::log::{fingerprint, Log, Request};

/// A message the API accepted.
#[derive(Debug, Clone, Serialize)]
pub struct Email {
    pub id: String,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: Option<String>,
    pub headers: Value,
    pub idempotency_key: Option<String>,
    pub at: DateTime<Utc>,
}

pub struct MailApi {
    sent: Mutex<Vec<Email>>,
    /// Idempotency key → (the body it came with, the id answered).
    keys: Mutex<HashMap<String, (Value, String)>>,
    log: Arc<Log>,
}

impl MailApi {
    pub fn new(log: Arc<Log>) -> MailApi {
        MailApi {
            sent: Mutex::new(Vec::new()),
            keys: Mutex::new(HashMap::new()),
            log,
        }
    }

    pub fn sent(&self) -> Vec<Email> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn error(status: StatusCode, name: &str, message: &str) -> Response {
    let body = json!({"statusCode": status.as_u16(), "name": name, "message": message});
    (status, axum::Json(body)).into_response()
}

async fn emails(
    State(api): State<Arc<MailApi>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let response = send(&api, token.as_deref(), &headers, &body);
    let request = Request {
        at: Utc::now(),
        service: "mail",
        method: "POST".into(),
        path: "/emails".into(),
        token: token.as_deref().map(fingerprint),
        status: response.status().as_u16(),
    };
    api.log.record(request, "/emails");
    response
}

fn send(api: &MailApi, token: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Response {
    if token.is_none_or(str::is_empty) {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing_api_key",
            "Missing API key in the authorization header",
        );
    }
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                &format!("Invalid JSON: {e}"),
            )
        }
    };
    let to: Vec<String> = match &request["to"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(list) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let (Some(from), Some(subject)) = (request["from"].as_str(), request["subject"].as_str())
    else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            "The `from` and `subject` fields are required",
        );
    };
    if to.is_empty() || to.iter().any(|t| !t.contains('@')) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            "The `to` field must hold e-mail addresses",
        );
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if key.as_ref().is_some_and(|k| k.len() > 256) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_idempotency_key",
            "The key must be between 1-256 chars",
        );
    }
    let mut keys = api.keys.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(key) = &key {
        if let Some((seen, id)) = keys.get(key) {
            if *seen == request {
                return axum::Json(json!({"id": id})).into_response();
            }
            return error(
                StatusCode::CONFLICT,
                "invalid_idempotent_request",
                "Same idempotency key used with a different request payload",
            );
        }
    }
    let mut sent = api.sent.lock().unwrap_or_else(|p| p.into_inner());
    let id = format!("em_{:08}", sent.len() + 1);
    for recipient in &to {
        api.log.count_recipient(recipient);
    }
    sent.push(Email {
        id: id.clone(),
        from: from.to_string(),
        to,
        subject: subject.to_string(),
        text: request["text"].as_str().map(str::to_string),
        headers: request["headers"].clone(),
        idempotency_key: key.clone(),
        at: Utc::now(),
    });
    if let Some(key) = key {
        keys.insert(key, (request, id.clone()));
    }
    axum::Json(json!({"id": id})).into_response()
}

pub fn routes(api: Arc<MailApi>) -> Router {
    Router::new().route("/emails", post(emails)).with_state(api)
}
