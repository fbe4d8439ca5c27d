//! The access log: one `info` line per request (target `drover_api::access`) with the
//! method, the matched route, the path (its `token` query value and an unsubscribe token
//! redacted), the status,
//! the latency and a request id. The id is the client's `x-request-id` when it sent a
//! sensible one, a new UUID otherwise, and is returned in `x-request-id` either way.
//!
//! For an event stream the line is written when the response starts, not when the stream
//! ends.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub async fn log(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| acceptable_id(v))
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
                .expect("a UUID is a valid header value")
        });
    request.headers_mut().insert(REQUEST_ID, id.clone());
    let method = request.method().clone();
    let path = redacted(request.uri().path(), request.uri().query());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "-".to_owned(), |m| m.as_str().to_owned());
    let mut response = next.run(request).await;
    tracing::info!(
        target: "drover_api::access",
        method = %method,
        route = %route,
        path = %path,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id = %id.to_str().unwrap_or("-"),
        "request"
    );
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// 1 to 128 visible ASCII characters: anything else is replaced, so the log cannot be
/// forged with line breaks or flooded.
fn acceptable_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=128).contains(&bytes.len()) && bytes.iter().all(|b| b.is_ascii_graphic())
}

/// `path?query` with the value of every `token` parameter replaced by `[redacted]`.
/// An unsubscribe link's token (`/u/{token}`, which carries the address) is replaced too.
pub(crate) fn redacted(path: &str, query: Option<&str>) -> String {
    let path = if path.starts_with("/u/") {
        "/u/[redacted]"
    } else {
        path
    };
    let Some(query) = query else {
        return path.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("token", _)) => "token=[redacted]".to_owned(),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_redacted_from_the_query() {
        assert_eq!(
            super::redacted("/v1/jobs/x/events", Some("after=3&token=s3cret")),
            "/v1/jobs/x/events?after=3&token=[redacted]"
        );
        assert_eq!(super::redacted("/v1/jobs", None), "/v1/jobs");
        assert_eq!(
            super::redacted("/u/YW5uQGV4YW1wbGUuY29t.mac", None),
            "/u/[redacted]"
        );
    }
}
