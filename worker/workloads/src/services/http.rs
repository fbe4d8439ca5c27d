//! The HTTP client layer every workload calls external services through.
//!
//! One [`Service`] per external service (GitHub, the LLM, the mail API): its base URL, its
//! credential (never printed), `timeouts.api_timeout` on every request, and:
//! - **classification** of each answer ([`CallError`]): 429, 5xx and 408 are transient; a
//!   403 that is GitHub's rate limit (`x-ratelimit-remaining: 0`, a `retry-after`, or a
//!   message saying so) is a rate limit; an OpenAI `insufficient_quota` 429 is permanent
//!   (more tries cannot help until someone pays); 404 is its own case (a lead's profile that
//!   vanished is skipped, not fatal); any other 4xx is permanent;
//! - **waits from the answer**: `retry-after-ms`, then `retry-after` (seconds or an HTTP
//!   date), then `x-ratelimit-reset` (epoch seconds, truncated: read as the end of that
//!   second);
//! - **transient retries** in the call (3 tries, backoff doubled from 250 ms, a server's wait
//!   honoured up to 10 s; a longer wait is the caller's to snooze on);
//! - **conditional GETs**: an ETag cache keyed by URL sends `If-None-Match` and answers a
//!   304 from the cached body (a 304 costs GitHub no rate limit);
//! - `drover_external_calls_total{tool, outcome}`;
//! - errors that name the tool and the status, never a URL, query or credential.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A credential: shown as `[redacted]` by `Debug` and `Display`, so it cannot leak through a
/// log line or an error.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A short stable name for the credential (hex of a SHA-256 prefix): what rate-limit
    /// rows and logs use instead of the credential itself.
    pub fn fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.0.as_bytes());
        digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How a credential is sent.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// `Authorization: Bearer <secret>`.
    Bearer(Secret),
}

/// Why a call did not give an answer to use. Messages name the tool and the status only.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// Worth trying again later (a 5xx, a 408, a plain 429, a timeout, a refused connection).
    #[error("{tool}: {message}")]
    Transient {
        tool: &'static str,
        message: String,
        /// When the server said to come back.
        retry_at: Option<DateTime<Utc>>,
    },
    /// The service's rate limit: no call before `until`.
    #[error("{tool}: rate limited until {until}")]
    RateLimited {
        tool: &'static str,
        until: DateTime<Utc>,
    },
    /// 404: what was asked for does not exist.
    #[error("{tool}: not found")]
    NotFound { tool: &'static str },
    /// More tries cannot help (a 4xx, a quota, an answer that does not parse).
    #[error("{tool}: {message}")]
    Permanent {
        tool: &'static str,
        status: Option<u16>,
        message: String,
    },
}

impl CallError {
    pub fn is_transient(&self) -> bool {
        matches!(self, CallError::Transient { .. })
    }
}

/// A usable answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The body came from the ETag cache after a 304.
    pub not_modified: bool,
}

impl Reply {
    pub fn json<T: serde::de::DeserializeOwned>(&self, tool: &'static str) -> Result<T, CallError> {
        serde_json::from_slice(&self.body).map_err(|e| CallError::Permanent {
            tool,
            status: Some(self.status),
            message: format!("the answer does not parse: {e}"),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// GitHub's `Link: <…>; rel="next"` target, as a path and query below the service's
    /// base URL (`None` when there is no next page or it points elsewhere).
    pub fn next_link(&self, base: &str) -> Option<String> {
        let link = self.header("link")?;
        link.split(',').find_map(|part| {
            let (url, params) = part.split_once(';')?;
            if !params.split(';').any(|p| p.trim() == "rel=\"next\"") {
                return None;
            }
            let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
            url.strip_prefix(base).map(str::to_string)
        })
    }
}

/// The cached body of a GET, by URL.
struct Cached {
    etag: String,
    body: Vec<u8>,
    status: u16,
}

/// URLs → their last ETag and body, the oldest dropped past `capacity` bytes (bodies and
/// URLs), so a long campaign's cache stays a bounded share of the process's memory.
struct EtagCache {
    capacity: usize,
    bytes: usize,
    entries: HashMap<String, Cached>,
    order: VecDeque<String>,
}

impl EtagCache {
    fn cost(url: &str, cached: &Cached) -> usize {
        url.len() + cached.etag.len() + cached.body.len() + 64
    }

    fn insert(&mut self, url: String, cached: Cached) {
        let cost = Self::cost(&url, &cached);
        if cost > self.capacity / 8 {
            return; // one answer may not crowd out the rest
        }
        self.bytes += cost;
        match self.entries.insert(url.clone(), cached) {
            Some(old) => self.bytes -= Self::cost(&url, &old),
            None => self.order.push_back(url),
        }
        while self.bytes > self.capacity {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.entries.remove(&old) {
                self.bytes -= Self::cost(&old, &gone);
            }
        }
    }
}

/// A request beyond the method and path.
#[derive(Debug, Default)]
pub struct Request {
    pub body: Option<Value>,
    pub headers: Vec<(&'static str, String)>,
}

/// One external service.
#[derive(Clone)]
pub struct Service {
    tool: &'static str,
    base: String,
    auth: Auth,
    client: reqwest::Client,
    default_headers: Vec<(&'static str, &'static str)>,
    etags: Arc<Mutex<EtagCache>>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("tool", &self.tool)
            .field("base", &self.base)
            .field("auth", &self.auth)
            .finish()
    }
}

const TRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait a call sits through itself; a longer one is returned to the caller.
pub const MAX_INLINE_WAIT: Duration = Duration::from_secs(10);
/// The ETag cache's budget per service and process.
pub const ETAG_CAPACITY_BYTES: usize = 16 * 1024 * 1024;

impl Service {
    /// `tool` names the service in metrics and errors (`github`, `llm`, `mail`).
    pub fn new(
        tool: &'static str,
        base_url: &str,
        auth: Auth,
        timeout: Duration,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("drover/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("{tool}: cannot build an HTTP client: {e}"))?;
        Ok(Service {
            tool,
            base: base_url.trim_end_matches('/').to_string(),
            auth,
            client,
            default_headers: Vec::new(),
            etags: Arc::new(Mutex::new(EtagCache {
                capacity: ETAG_CAPACITY_BYTES,
                bytes: 0,
                entries: HashMap::new(),
                order: VecDeque::new(),
            })),
        })
    }

    /// Headers every request carries (GitHub's `Accept` and API version).
    pub fn with_headers(mut self, headers: &[(&'static str, &'static str)]) -> Self {
        self.default_headers.extend_from_slice(headers);
        self
    }

    pub fn tool(&self) -> &'static str {
        self.tool
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A conditional GET of `path` (with its query) below the base URL.
    pub async fn get(&self, path: &str) -> Result<Reply, CallError> {
        self.call(Method::GET, path, Request::default()).await
    }

    pub async fn post(&self, path: &str, request: Request) -> Result<Reply, CallError> {
        self.call(Method::POST, path, request).await
    }

    /// Sends the request, retrying transient failures (see the module's description).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        request: Request,
    ) -> Result<Reply, CallError> {
        let mut backoff = FIRST_BACKOFF;
        let mut tries = 0;
        loop {
            tries += 1;
            match self.once(method.clone(), path, &request).await {
                Err(CallError::Transient {
                    tool,
                    message,
                    retry_at,
                }) if tries < TRIES => {
                    let wait = retry_at
                        .and_then(|at| (at - Utc::now()).to_std().ok())
                        .unwrap_or(backoff);
                    if wait > MAX_INLINE_WAIT {
                        return Err(CallError::Transient {
                            tool,
                            message,
                            retry_at,
                        });
                    }
                    tokio::time::sleep(wait).await;
                    backoff *= 2;
                }
                other => return other,
            }
        }
    }

    async fn once(
        &self,
        method: Method,
        path: &str,
        request: &Request,
    ) -> Result<Reply, CallError> {
        let url = format!("{}{}", self.base, path);
        let mut builder = self.client.request(method.clone(), &url);
        for (name, value) in &self.default_headers {
            builder = builder.header(*name, *value);
        }
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Auth::Bearer(secret) = &self.auth {
            builder = builder.bearer_auth(secret.expose());
        }
        let cached_etag = (method == Method::GET)
            .then(|| {
                let cache = self.etags.lock().unwrap_or_else(|p| p.into_inner());
                cache.entries.get(&url).map(|c| c.etag.clone())
            })
            .flatten();
        if let Some(etag) = &cached_etag {
            builder = builder.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let response = match builder.send().await {
            Ok(response) => response,
            Err(err) => {
                count(self.tool, "transient");
                return Err(CallError::Transient {
                    tool: self.tool,
                    message: transport_error(err),
                    retry_at: None,
                });
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.bytes().await {
            Ok(body) => body.to_vec(),
            Err(err) => {
                count(self.tool, "transient");
                return Err(CallError::Transient {
                    tool: self.tool,
                    message: transport_error(err),
                    retry_at: None,
                });
            }
        };
        if status == StatusCode::NOT_MODIFIED {
            let cache = self.etags.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(cached) = cache.entries.get(&url) {
                count(self.tool, "not_modified");
                return Ok(Reply {
                    status: cached.status,
                    headers,
                    body: cached.body.clone(),
                    not_modified: true,
                });
            }
            count(self.tool, "permanent");
            return Err(CallError::Permanent {
                tool: self.tool,
                status: Some(304),
                message: "HTTP 304 without a cached answer".into(),
            });
        }
        match classify(self.tool, status, &headers, &body, Utc::now()) {
            Ok(()) => {
                count(self.tool, "ok");
                if method == Method::GET {
                    if let Some(etag) = headers.get(reqwest::header::ETAG).and_then(header_str) {
                        let mut cache = self.etags.lock().unwrap_or_else(|p| p.into_inner());
                        cache.insert(
                            url,
                            Cached {
                                etag: etag.to_string(),
                                body: body.clone(),
                                status: status.as_u16(),
                            },
                        );
                    }
                }
                Ok(Reply {
                    status: status.as_u16(),
                    headers,
                    body,
                    not_modified: false,
                })
            }
            Err(err) => {
                count(
                    self.tool,
                    match &err {
                        CallError::Transient { .. } => "transient",
                        CallError::RateLimited { .. } => "rate_limited",
                        CallError::NotFound { .. } => "not_found",
                        CallError::Permanent { .. } => "permanent",
                    },
                );
                Err(err)
            }
        }
    }
}

fn header_str(value: &HeaderValue) -> Option<&str> {
    value.to_str().ok()
}

fn count(tool: &'static str, outcome: &'static str) {
    metrics::counter!("drover_external_calls_total", "tool" => tool, "outcome" => outcome)
        .increment(1);
}

/// A reqwest error without its URL (which may carry a query or a key).
fn transport_error(err: reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        "cannot connect".into()
    } else {
        format!("transport error: {}", err.without_url())
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(HeaderName::from_bytes(name.as_bytes()).ok()?)
        .and_then(header_str)
}

/// When the server said to come back: `retry-after-ms`, then `retry-after` (seconds or an
/// HTTP date), then `x-ratelimit-reset` (epoch seconds).
pub fn retry_at(headers: &HeaderMap, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Some(ms) = header(headers, "retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(now + chrono::Duration::milliseconds(ms as i64));
        }
    }
    if let Some(value) = header(headers, "retry-after") {
        let value = value.trim();
        if let Ok(secs) = value.parse::<f64>() {
            if secs.is_finite() && secs >= 0.0 {
                return Some(now + chrono::Duration::milliseconds((secs * 1000.0) as i64));
            }
        }
        if let Ok(at) = DateTime::parse_from_rfc2822(value) {
            return Some(at.with_timezone(&Utc));
        }
    }
    reset_at(headers)
}

/// `x-ratelimit-reset` as a time: the end of the second it names. The header is whole
/// epoch seconds, truncated, so the window may still be open for most of that second;
/// trusting the second's start sends a burst the server counts against the old window.
pub fn reset_at(headers: &HeaderMap) -> Option<DateTime<Utc>> {
    header(headers, "x-ratelimit-reset")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .and_then(|secs| DateTime::from_timestamp(secs.checked_add(1)?, 0))
}

/// A header as a number.
pub fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header(headers, name).and_then(|v| v.trim().parse().ok())
}

/// What an answer means (see the module's description).
pub fn classify(
    tool: &'static str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), CallError> {
    if status.is_success() {
        return Ok(());
    }
    let code = status.as_u16();
    let text = String::from_utf8_lossy(&body[..body.len().min(2048)]).to_lowercase();
    let error_code = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.pointer("/error/code")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    if error_code.as_deref() == Some("insufficient_quota") {
        return Err(CallError::Permanent {
            tool,
            status: Some(code),
            message: format!("HTTP {code}: insufficient_quota (the account's quota is used up)"),
        });
    }
    let remaining_zero = header_u64(headers, "x-ratelimit-remaining") == Some(0);
    let said_rate_limit = text.contains("rate limit");
    let has_retry_after =
        header(headers, "retry-after").is_some() || header(headers, "retry-after-ms").is_some();
    let limited =
        code == 429 || (code == 403 && (remaining_zero || said_rate_limit || has_retry_after));
    if limited && (remaining_zero || said_rate_limit || has_retry_after) && tool == "github" {
        // GitHub: primary (remaining 0, wait for the reset) or secondary (retry-after, else
        // at least a minute, as its documentation asks).
        let until = retry_at(headers, now).unwrap_or(now + chrono::Duration::seconds(60));
        return Err(CallError::RateLimited {
            tool,
            until: until.max(now),
        });
    }
    if limited || code == 408 || status.is_server_error() {
        return Err(CallError::Transient {
            tool,
            message: format!("HTTP {code}"),
            retry_at: retry_at(headers, now),
        });
    }
    if code == 404 {
        return Err(CallError::NotFound { tool });
    }
    Err(CallError::Permanent {
        tool,
        status: Some(code),
        message: format!("HTTP {code}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn answers_are_classified_as_the_protocols_say() {
        let now = at(1_000_000);
        let s = |c| StatusCode::from_u16(c).unwrap();
        assert_eq!(
            classify("github", s(200), &HeaderMap::new(), b"", now),
            Ok(())
        );
        // GitHub's primary limit: 403 with remaining 0 waits for the reset (the end of
        // the truncated second the header names).
        let primary = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1000600"),
        ]);
        assert_eq!(
            classify("github", s(403), &primary, b"{}", now),
            Err(CallError::RateLimited {
                tool: "github",
                until: at(1_000_601)
            })
        );
        assert_eq!(reset_at(&primary), Some(at(1_000_601)));
        // Secondary: retry-after wins over the reset.
        let secondary = headers(&[("retry-after", "30"), ("x-ratelimit-remaining", "12")]);
        assert_eq!(
            classify("github", s(429), &secondary, b"{}", now),
            Err(CallError::RateLimited {
                tool: "github",
                until: at(1_000_030)
            })
        );
        // Secondary without any header: a minute.
        let body = br#"{"message":"You have exceeded a secondary rate limit"}"#;
        assert_eq!(
            classify("github", s(403), &HeaderMap::new(), body, now),
            Err(CallError::RateLimited {
                tool: "github",
                until: at(1_000_060)
            })
        );
        // A plain 403 is a permission error.
        assert!(matches!(
            classify(
                "github",
                s(403),
                &HeaderMap::new(),
                br#"{"message":"Forbidden"}"#,
                now
            ),
            Err(CallError::Permanent {
                status: Some(403),
                ..
            })
        ));
        assert_eq!(
            classify("github", s(404), &HeaderMap::new(), b"", now),
            Err(CallError::NotFound { tool: "github" })
        );
        // OpenAI: 429 rate_limit_exceeded is transient with retry-after-ms; quota is permanent.
        let llm_429 = headers(&[("retry-after-ms", "1500")]);
        assert_eq!(
            classify(
                "llm",
                s(429),
                &llm_429,
                br#"{"error":{"code":"rate_limit_exceeded"}}"#,
                now
            ),
            Err(CallError::Transient {
                tool: "llm",
                message: "HTTP 429".into(),
                retry_at: Some(now + chrono::Duration::milliseconds(1500)),
            })
        );
        assert!(matches!(
            classify(
                "llm",
                s(429),
                &HeaderMap::new(),
                br#"{"error":{"code":"insufficient_quota"}}"#,
                now
            ),
            Err(CallError::Permanent {
                status: Some(429),
                ..
            })
        ));
        for code in [408, 500, 502, 503] {
            assert!(classify("mail", s(code), &HeaderMap::new(), b"", now)
                .unwrap_err()
                .is_transient());
        }
        for code in [400, 401, 409, 422] {
            assert!(matches!(
                classify("mail", s(code), &HeaderMap::new(), b"", now),
                Err(CallError::Permanent { .. })
            ));
        }
    }

    #[test]
    fn retry_after_takes_milliseconds_seconds_and_dates() {
        let now = at(1_000_000);
        assert_eq!(
            retry_at(
                &headers(&[("retry-after", "Thu, 01 Jan 1970 00:00:10 GMT")]),
                now
            ),
            Some(at(10))
        );
        assert_eq!(
            retry_at(&headers(&[("retry-after", "2")]), now),
            Some(at(1_000_002))
        );
        assert_eq!(
            retry_at(
                &headers(&[("retry-after", "2"), ("retry-after-ms", "500")]),
                now
            ),
            Some(now + chrono::Duration::milliseconds(500))
        );
        assert_eq!(retry_at(&HeaderMap::new(), now), None);
    }

    #[test]
    fn next_links_are_followed_below_the_base_only() {
        let reply = Reply {
            status: 200,
            headers: headers(&[(
                "link",
                r#"<http://127.0.0.1:9/search/repositories?q=x&page=2>; rel="next", <http://127.0.0.1:9/search/repositories?q=x&page=5>; rel="last""#,
            )]),
            body: Vec::new(),
            not_modified: false,
        };
        assert_eq!(
            reply.next_link("http://127.0.0.1:9").as_deref(),
            Some("/search/repositories?q=x&page=2")
        );
        assert_eq!(reply.next_link("http://elsewhere"), None);
    }

    #[test]
    fn the_etag_cache_keeps_to_its_byte_budget() {
        let mut cache = EtagCache {
            capacity: 10_000,
            bytes: 0,
            entries: HashMap::new(),
            order: VecDeque::new(),
        };
        let cached = |n: usize| Cached {
            etag: "W/\"x\"".into(),
            body: vec![b'a'; n],
            status: 200,
        };
        for i in 0..100 {
            cache.insert(format!("/users/u{i}"), cached(500));
        }
        assert!(
            cache.bytes <= 10_000 && cache.entries.len() < 20,
            "{}",
            cache.bytes
        );
        assert!(cache.entries.contains_key("/users/u99"), "the newest stay");
        assert!(!cache.entries.contains_key("/users/u0"), "the oldest go");
        cache.insert("/users/u99".into(), cached(100));
        let recount: usize = cache
            .entries
            .iter()
            .map(|(u, c)| EtagCache::cost(u, c))
            .sum();
        assert_eq!(cache.bytes, recount, "a replaced entry is accounted once");
        cache.insert("/big".into(), cached(5_000));
        assert!(!cache.entries.contains_key("/big"), "too big to cache");
    }

    #[tokio::test]
    async fn errors_name_the_tool_and_never_the_url_or_the_credential() {
        // A port nothing listens on: the call fails to connect.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let service = Service::new(
            "github",
            &format!("http://127.0.0.1:{port}"),
            Auth::Bearer(Secret::new("ghp_do_not_print")),
            Duration::from_secs(2),
        )
        .unwrap();
        let err = service
            .get("/users/someone?access_token=ghp_in_query")
            .await
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(err.is_transient(), "{shown}");
        assert!(shown.contains("github"), "{shown}");
        for secret in [
            "ghp_do_not_print",
            "ghp_in_query",
            "/users/someone",
            "127.0.0.1",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn secrets_never_show() {
        let secret = Secret::new("ghp_topsecret");
        assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
        let auth = Auth::Bearer(secret.clone());
        assert!(!format!("{auth:?}").contains("topsecret"));
        assert_eq!(secret.fingerprint().len(), 12);
        assert_ne!(secret.fingerprint(), Secret::new("other").fingerprint());
    }
}
