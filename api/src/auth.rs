//! Bearer-token auth for `/v1` when a token is configured.
//!
//! The token comes in `Authorization: Bearer <token>` (the scheme in any case, RFC 7235).
//! `?token=` is accepted only where a browser cannot set a header: `GET` of a job's event
//! stream (EventSource) and of an artifact download (a link). Anywhere else a query token
//! would land in proxies' access logs and browser history for nothing.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{ApiError, AppState};

pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(expected) = state.config.token.as_deref() else {
        return Ok(next.run(request).await);
    };
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    let query_token = query_token(request.uri().query());
    let given = match (from_header, query_token) {
        (Some(given), _) => Some(given),
        (None, Some(given)) if takes_query_token(request.method(), request.uri().path()) => {
            Some(given)
        }
        (None, Some(_)) => {
            return Err(unauthorized(
                "?token= is accepted only on GET of /v1/jobs/{id}/events and of artifact \
                 downloads; send Authorization: Bearer <token>",
            ))
        }
        (None, None) => None,
    };
    match given {
        Some(given) if token_matches(given, expected) => Ok(next.run(request).await),
        Some(_) => Err(unauthorized("the bearer token is not valid")),
        None => Err(unauthorized("missing Authorization: Bearer <token>")),
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// The credentials of an `Authorization` value whose scheme is `Bearer`, in any case.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim_matches(' '))
}

/// The value of the first `token` query parameter, as sent (tokens are URL-safe text; a
/// percent-encoded one simply does not match).
fn query_token(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v)
}

/// `GET …/jobs/{id}/events` and `GET …/jobs/{id}/artifacts/{name}` (the path as the `/v1`
/// router sees it, with or without its prefix).
fn takes_query_token(method: &Method, path: &str) -> bool {
    if method != Method::GET {
        return false;
    }
    let path = path.strip_prefix("/v1").unwrap_or(path);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(
        segments[..],
        ["jobs", id, "events"] | ["jobs", id, "artifacts", _] if !id.is_empty()
    )
}

/// Compares SHA-256 digests in constant time: neither the content nor the length of the
/// token shows in how long a wrong guess takes.
fn token_matches(given: &str, expected: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    given.ct_eq(&expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearerabc"), None);
    }

    #[test]
    fn tokens_compare_by_digest() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cre", "s3cret"));
        assert!(!token_matches("", "s3cret"));
        assert!(!token_matches("s3cret-and-more", "s3cret"));
    }

    #[test]
    fn only_event_streams_and_downloads_take_a_query_token() {
        let get = &Method::GET;
        assert!(takes_query_token(get, "/jobs/abc/events"));
        assert!(takes_query_token(get, "/v1/jobs/abc/events"));
        assert!(takes_query_token(get, "/v1/jobs/abc/artifacts/report.csv"));
        assert!(!takes_query_token(get, "/v1/jobs"));
        assert!(!takes_query_token(get, "/v1/jobs/abc"));
        assert!(!takes_query_token(get, "/v1/jobs/abc/artifacts"));
        assert!(!takes_query_token(&Method::POST, "/v1/jobs/abc/events"));
    }
}
