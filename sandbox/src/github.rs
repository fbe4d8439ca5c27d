//! A GitHub REST server over the generated [`World`]: repository search with its qualifiers and
//! its 1,000-result cap, contributors, commits and users, `Link` pagination, `ETag`s with free
//! 304s, and the rate limits as GitHub applies them (a budget per token and resource in fixed
//! windows, `x-ratelimit-*` headers on every answer, 403 or 429 when spent, secondary limits
//! with `retry-after`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::log::{fingerprint, Log, Request};
use crate::world::{contributions, rfc3339, Contributor, Repo, User, World, BOTS};

/// The limits the server applies.
#[derive(Debug, Clone)]
pub struct GithubConfig {
    /// Core requests per token per window (GitHub: 5,000 an hour).
    pub core_limit: u64,
    pub core_window: Duration,
    /// Search requests per token per window (GitHub: 30 a minute).
    pub search_limit: u64,
    pub search_window: Duration,
    /// Core requests per window without a token (GitHub: 60 an hour).
    pub unauthenticated_limit: u64,
    /// The status of a primary-limit answer: GitHub sends 403 or 429.
    pub limited_status: u16,
    /// Requests one token may have in flight before the secondary limit answers.
    pub max_concurrent: Option<usize>,
    /// The `retry-after` (seconds) of a secondary-limit answer; `None` sends none, as GitHub
    /// sometimes does.
    pub secondary_retry_after: Option<u64>,
    /// How long each answer takes (server time), so concurrency has an effect.
    pub latency: Duration,
}

impl Default for GithubConfig {
    fn default() -> Self {
        GithubConfig {
            core_limit: 5_000,
            core_window: Duration::from_secs(3600),
            search_limit: 30,
            search_window: Duration::from_secs(60),
            unauthenticated_limit: 60,
            limited_status: 403,
            max_concurrent: None,
            secondary_retry_after: Some(60),
            latency: Duration::ZERO,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Resource {
    Core,
    Search,
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Resource::Core => "core",
            Resource::Search => "search",
        }
    }
}

struct Window {
    start: DateTime<Utc>,
    used: u64,
    refused: u64,
}

/// One budget window of a token and resource as the server counted it, for benchmarks that
/// measure how much of a budget a fleet used ([`Github::windows`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowRecord {
    /// The token's fingerprint (`unauthenticated` without one).
    pub token: String,
    /// `core` or `search`.
    pub resource: &'static str,
    /// When the first request of the window arrived: windows start on demand, as GitHub's do.
    pub start: DateTime<Utc>,
    /// `start` + the window's length (what `x-ratelimit-reset` names, to the second).
    pub end: DateTime<Utc>,
    /// Requests counted against the budget.
    pub counted: u64,
    /// Requests refused because the budget was spent (each also in `Stats.over_budget`).
    pub refused: u64,
}

pub struct Github {
    pub world: World,
    pub config: Mutex<GithubConfig>,
    windows: Mutex<HashMap<(String, Resource), Window>>,
    /// The windows that ended, oldest first.
    closed: Mutex<Vec<WindowRecord>>,
    in_flight: Mutex<HashMap<String, usize>>,
    log: Arc<Log>,
}

const DOCS: &str = "https://docs.github.com/rest";

impl Github {
    pub fn new(world: World, config: GithubConfig, log: Arc<Log>) -> Github {
        Github {
            world,
            config: Mutex::new(config),
            windows: Mutex::new(HashMap::new()),
            closed: Mutex::new(Vec::new()),
            in_flight: Mutex::new(HashMap::new()),
            log,
        }
    }

    fn config(&self) -> GithubConfig {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The budget (limit, window) of `token` for `resource`.
    fn budget(&self, token: Option<&str>, resource: Resource) -> (u64, Duration) {
        let c = self.config();
        match (token, resource) {
            (_, Resource::Search) if token.is_none() => (10, c.search_window),
            (_, Resource::Search) => (c.search_limit, c.search_window),
            (None, Resource::Core) => (c.unauthenticated_limit, c.core_window),
            (Some(_), Resource::Core) => (c.core_limit, c.core_window),
        }
    }

    /// (limit, used, reset) of the current window, counting this request when `take`.
    fn window(
        &self,
        who: &str,
        token: Option<&str>,
        resource: Resource,
        take: bool,
    ) -> (u64, u64, DateTime<Utc>, bool) {
        let (limit, length) = self.budget(token, resource);
        let length = chrono::Duration::from_std(length).unwrap_or(chrono::Duration::hours(1));
        let now = Utc::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let w = windows
            .entry((who.to_string(), resource))
            .or_insert(Window {
                start: now,
                used: 0,
                refused: 0,
            });
        if now >= w.start + length {
            let ended = std::mem::replace(
                w,
                Window {
                    start: now,
                    used: 0,
                    refused: 0,
                },
            );
            let record = record(who, resource, &ended, length);
            self.closed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(record);
        }
        let spent = w.used >= limit;
        if take && !spent {
            w.used += 1;
        }
        (limit, w.used, w.start + length, spent)
    }

    /// Counts a request refused for a spent budget in the current window.
    fn refuse(&self, who: &str, resource: Resource) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = windows.get_mut(&(who.to_string(), resource)) {
            w.refused += 1;
        }
    }

    /// Every budget window so far, ended ones first (oldest first), then the current ones
    /// (whose counts may still grow).
    pub fn windows(&self) -> Vec<WindowRecord> {
        let mut all = self
            .closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let c = self.config();
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let mut current: Vec<WindowRecord> = windows
            .iter()
            .map(|((who, resource), w)| {
                let length = match resource {
                    Resource::Core => c.core_window,
                    Resource::Search => c.search_window,
                };
                let length =
                    chrono::Duration::from_std(length).unwrap_or(chrono::Duration::hours(1));
                record(who, *resource, w, length)
            })
            .collect();
        current.sort_by_key(|r| r.start);
        all.extend(current);
        all
    }
}

fn record(who: &str, resource: Resource, w: &Window, length: chrono::Duration) -> WindowRecord {
    WindowRecord {
        token: who.to_string(),
        resource: resource.name(),
        start: w.start,
        end: w.start + length,
        counted: w.used,
        refused: w.refused,
    }
}

fn rate_headers(
    headers: &mut HeaderMap,
    limit: u64,
    used: u64,
    reset: DateTime<Utc>,
    resource: Resource,
) {
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("x-ratelimit-limit", limit.to_string());
    set(
        "x-ratelimit-remaining",
        limit.saturating_sub(used).to_string(),
    );
    set("x-ratelimit-used", used.to_string());
    set("x-ratelimit-reset", reset.timestamp().to_string());
    set("x-ratelimit-resource", resource.name().to_string());
}

fn message(status: StatusCode, text: &str) -> (StatusCode, Value) {
    (status, json!({"message": text, "documentation_url": DOCS}))
}

fn token_of(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// What a handler answers before rate limiting and caching: a status, a JSON body and the
/// pagination links.
struct Answer {
    status: StatusCode,
    body: Value,
    link: Option<String>,
}

impl Answer {
    fn ok(body: Value) -> Answer {
        Answer {
            status: StatusCode::OK,
            body,
            link: None,
        }
    }

    fn error(status: StatusCode, text: &str) -> Answer {
        let (status, body) = message(status, text);
        Answer {
            status,
            body,
            link: None,
        }
    }
}

/// Runs one request through the limits, the latency, the ETag check and the log.
async fn serve(
    gh: &Github,
    method: &Method,
    headers: &HeaderMap,
    route: &str,
    path: String,
    resource: Resource,
    answer: impl FnOnce() -> Answer,
) -> Response {
    let token = token_of(headers);
    let who = token
        .as_deref()
        .map(fingerprint)
        .unwrap_or_else(|| "unauthenticated".into());
    let log = |status: StatusCode| {
        let request = Request {
            at: Utc::now(),
            service: "github",
            method: method.to_string(),
            path: path.clone(),
            token: token.as_deref().map(fingerprint),
            status: status.as_u16(),
        };
        gh.log.record(request, route);
    };
    if headers.get("user-agent").is_none() {
        let text = "Request forbidden by administrative rules. Please make sure your request has a User-Agent header.";
        log(StatusCode::FORBIDDEN);
        return (
            StatusCode::FORBIDDEN,
            axum::Json(message(StatusCode::FORBIDDEN, text).1),
        )
            .into_response();
    }
    let config = gh.config();
    let (limit, used, reset, spent) = gh.window(&who, token.as_deref(), resource, false);
    if spent {
        gh.refuse(&who, resource);
        gh.log.over_budget();
        gh.log.rate_limited();
        let status = StatusCode::from_u16(config.limited_status).unwrap_or(StatusCode::FORBIDDEN);
        let text = "API rate limit exceeded. (But here's the good news: Authenticated requests get a higher rate limit.)";
        let mut response = (status, axum::Json(message(status, text).1)).into_response();
        rate_headers(response.headers_mut(), limit, used, reset, resource);
        log(status);
        return response;
    }
    // The secondary limit: too many requests of one token in flight at once.
    let concurrent = {
        let mut in_flight = gh.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let n = in_flight.entry(who.clone()).or_default();
        *n += 1;
        *n
    };
    let _release = Release(gh, who.clone());
    if config.max_concurrent.is_some_and(|max| concurrent > max) {
        gh.log.rate_limited();
        let status = StatusCode::from_u16(config.limited_status).unwrap_or(StatusCode::FORBIDDEN);
        let text = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.";
        let mut response = (status, axum::Json(message(status, text).1)).into_response();
        rate_headers(response.headers_mut(), limit, used, reset, resource);
        if let Some(after) = config.secondary_retry_after {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(after));
        }
        log(status);
        return response;
    }
    if !config.latency.is_zero() {
        tokio::time::sleep(config.latency).await;
    }
    let answer = answer();
    let text = answer.body.to_string();
    let etag = format!(
        "W/\"{}\"",
        crate::log::fingerprint(&text).trim_start_matches("tok-")
    );
    let matches = headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if answer.status == StatusCode::OK && matches {
        // Not counted against the budget, as GitHub does.
        gh.log.not_modified();
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        rate_headers(response.headers_mut(), limit, used, reset, resource);
        if let Ok(v) = HeaderValue::from_str(&etag) {
            response.headers_mut().insert("etag", v);
        }
        log(StatusCode::NOT_MODIFIED);
        return response;
    }
    let (limit, used, reset, _) = gh.window(&who, token.as_deref(), resource, true);
    gh.log.count_token(&who);
    let mut response = (
        answer.status,
        [("content-type", "application/json; charset=utf-8")],
        text,
    )
        .into_response();
    let h = response.headers_mut();
    rate_headers(h, limit, used, reset, resource);
    if answer.status == StatusCode::OK {
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert("etag", v);
        }
    }
    if let Some(link) = answer.link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert("link", link);
    }
    log(answer.status);
    response
}

struct Release<'a>(&'a Github, String);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.0.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = in_flight.get_mut(&self.1) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The `Link` header of page `page` of `total` items, `per_page` a page; `url(page)` builds
/// a page's address.
fn link(page: u64, per_page: u64, total: u64, url: impl Fn(u64) -> String) -> Option<String> {
    let last = total.div_ceil(per_page).max(1);
    let mut parts = Vec::new();
    if page > 1 {
        parts.push(format!("<{}>; rel=\"prev\"", url(page - 1)));
    }
    if page < last {
        parts.push(format!("<{}>; rel=\"next\"", url(page + 1)));
        parts.push(format!("<{}>; rel=\"last\"", url(last)));
    }
    if page > 1 {
        parts.push(format!("<{}>; rel=\"first\"", url(1)));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn host(headers: &HeaderMap) -> String {
    headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string()
}

/// `per_page` (default 30, at most 100 as GitHub caps it) and `page` (from 1).
fn paging(q: &HashMap<String, String>) -> Result<(u64, u64), Answer> {
    let number = |name: &str, default: u64| match q.get(name) {
        None => Ok(default),
        Some(v) => v.parse::<u64>().map_err(|_| {
            Answer::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("Validation Failed: `{name}` must be a positive integer"),
            )
        }),
    };
    let per_page = number("per_page", 30)?.clamp(1, 100);
    let page = number("page", 1)?.max(1);
    Ok((per_page, page))
}

// ---------- search ----------

/// A range over numbers or dates, as qualifiers write them.
#[derive(Debug, Clone, Copy)]
struct Range<T> {
    low: Option<(T, bool)>,
    high: Option<(T, bool)>,
}

impl<T: PartialOrd + Copy> Range<T> {
    fn contains(&self, v: T) -> bool {
        let low = self
            .low
            .is_none_or(|(l, inclusive)| if inclusive { v >= l } else { v > l });
        let high = self
            .high
            .is_none_or(|(h, inclusive)| if inclusive { v <= h } else { v < h });
        low && high
    }
}

fn parse_range<T: Copy>(text: &str, parse: impl Fn(&str) -> Option<T>) -> Option<Range<T>> {
    let bound = |s: &str| {
        if s == "*" {
            Some(None)
        } else {
            parse(s).map(Some)
        }
    };
    if let Some((a, b)) = text.split_once("..") {
        return Some(Range {
            low: bound(a)?.map(|v| (v, true)),
            high: bound(b)?.map(|v| (v, true)),
        });
    }
    let (op, rest) = [">=", "<=", ">", "<"]
        .iter()
        .find_map(|op| text.strip_prefix(op).map(|rest| (*op, rest)))
        .unwrap_or(("=", text));
    let v = parse(rest)?;
    Some(match op {
        ">=" => Range {
            low: Some((v, true)),
            high: None,
        },
        ">" => Range {
            low: Some((v, false)),
            high: None,
        },
        "<=" => Range {
            low: None,
            high: Some((v, true)),
        },
        "<" => Range {
            low: None,
            high: Some((v, false)),
        },
        _ => Range {
            low: Some((v, true)),
            high: Some((v, true)),
        },
    })
}

fn parse_day(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

#[derive(Default)]
struct Query_ {
    words: Vec<String>,
    language: Option<String>,
    stars: Option<Range<u64>>,
    pushed: Option<Range<NaiveDate>>,
    created: Option<Range<NaiveDate>>,
    archived: Option<bool>,
    fork: Option<String>,
    owner: Option<String>,
    topic: Option<String>,
}

fn parse_query(q: &str) -> Result<Query_, String> {
    let mut query = Query_::default();
    for term in q.split_whitespace() {
        let Some((name, value)) = term.split_once(':') else {
            query.words.push(term.to_lowercase());
            continue;
        };
        let bad = || format!("the `{name}` qualifier's value `{value}` is not valid");
        match name {
            "language" => query.language = Some(value.to_lowercase()),
            "stars" => query.stars = Some(parse_range(value, |s| s.parse().ok()).ok_or_else(bad)?),
            "pushed" => query.pushed = Some(parse_range(value, parse_day).ok_or_else(bad)?),
            "created" => query.created = Some(parse_range(value, parse_day).ok_or_else(bad)?),
            "archived" => query.archived = Some(value.parse().map_err(|_| bad())?),
            "fork" if ["true", "false", "only"].contains(&value) => query.fork = Some(value.into()),
            "fork" => return Err(bad()),
            "user" | "org" => query.owner = Some(value.to_string()),
            "topic" => query.topic = Some(value.to_lowercase()),
            // Qualifiers every repository here satisfies.
            "is" | "mirror" | "template" | "in" => {}
            _ => query.words.push(term.to_lowercase()),
        }
    }
    Ok(query)
}

impl Query_ {
    fn matches(&self, world: &World, repo: &Repo) -> bool {
        let lang_ok = self
            .language
            .as_ref()
            .is_none_or(|l| repo.language.to_lowercase() == *l);
        let fork_ok = match self.fork.as_deref() {
            Some("true") => true,
            Some("only") => repo.fork,
            _ => !repo.fork,
        };
        lang_ok
            && fork_ok
            && self.stars.is_none_or(|r| r.contains(repo.stars))
            && self
                .pushed
                .is_none_or(|r| r.contains(repo.pushed_at.date_naive()))
            && self
                .created
                .is_none_or(|r| r.contains(repo.created_at.date_naive()))
            && self.archived.is_none_or(|a| repo.archived == a)
            && self
                .topic
                .as_ref()
                .is_none_or(|t| repo.topics.iter().any(|x| x == t))
            && self
                .owner
                .as_ref()
                .is_none_or(|o| world.login(repo.owner) == *o)
            && self.words.iter().all(|w| repo.name.contains(w.as_str()))
    }
}

/// The first 1,000 results are all a search gives, as on GitHub.
const SEARCH_CAP: u64 = 1_000;

fn repo_json(world: &World, repo: &Repo) -> Value {
    let owner = world.login(repo.owner);
    json!({
        "id": repo.id,
        "name": repo.name,
        "full_name": format!("{owner}/{}", repo.name),
        "owner": {"login": owner, "id": 1000 + repo.owner, "type": "User"},
        "html_url": format!("https://github.com/{owner}/{}", repo.name),
        "description": format!("A {} {} in {}", repo.language, repo.name.split('-').nth(1).unwrap_or("tool"), repo.language),
        "fork": repo.fork,
        "archived": repo.archived,
        "language": repo.language,
        "topics": repo.topics,
        "stargazers_count": repo.stars,
        "forks_count": repo.forks,
        "open_issues_count": repo.stars / 40,
        "pushed_at": rfc3339(repo.pushed_at),
        "created_at": rfc3339(repo.created_at),
        "updated_at": rfc3339(repo.pushed_at),
        "license": {"spdx_id": "MIT"},
        "default_branch": "main",
    })
}

fn search(world: &World, headers: &HeaderMap, q: &HashMap<String, String>) -> Answer {
    let Some(text) = q.get("q").filter(|t| !t.trim().is_empty()) else {
        return Answer {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({"message": "Validation Failed", "errors": [{"resource": "Search", "field": "q", "code": "missing"}], "documentation_url": DOCS}),
            link: None,
        };
    };
    let query = match parse_query(text) {
        Ok(query) => query,
        Err(why) => {
            return Answer {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                body: json!({"message": "Validation Failed", "errors": [{"resource": "Search", "field": "q", "code": "invalid", "message": why}], "documentation_url": DOCS}),
                link: None,
            }
        }
    };
    let (per_page, page) = match paging(q) {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    if (page - 1) * per_page >= SEARCH_CAP {
        return Answer::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Only the first 1000 search results are available",
        );
    }
    let mut hits: Vec<Repo> = (0..world.config.repos)
        .filter_map(|i| world.repo(i))
        .filter(|r| query.matches(world, r))
        .collect();
    let key = |r: &Repo| match q.get("sort").map(String::as_str) {
        Some("updated") => r.pushed_at.timestamp() as u64,
        Some("forks") => r.forks,
        _ => r.stars,
    };
    hits.sort_by_key(|r| (std::cmp::Reverse(key(r)), r.id));
    if q.get("order").map(String::as_str) == Some("asc") {
        hits.sort_by_key(|r| (key(r), r.id));
    }
    let total = hits.len() as u64;
    let shown = total.min(SEARCH_CAP);
    let start = ((page - 1) * per_page).min(shown) as usize;
    let end = (page * per_page).min(shown) as usize;
    let items: Vec<Value> = hits[start..end]
        .iter()
        .map(|r| repo_json(world, r))
        .collect();
    let mut rest = String::new();
    for name in ["sort", "order"] {
        if let Some(v) = q.get(name) {
            rest.push_str(&format!("&{name}={}", encode(v)));
        }
    }
    let base = format!(
        "http://{}/search/repositories?q={}{rest}&per_page={per_page}",
        host(headers),
        encode(text)
    );
    Answer {
        status: StatusCode::OK,
        body: json!({"total_count": total, "incomplete_results": false, "items": items}),
        link: link(page, per_page, shown, |p| format!("{base}&page={p}")),
    }
}

// ---------- repositories and users ----------

fn bot_id(login: &str) -> u64 {
    49_699_333 + BOTS.iter().position(|b| *b == login).unwrap_or(0) as u64
}

fn contributors(
    world: &World,
    headers: &HeaderMap,
    owner: &str,
    name: &str,
    q: &HashMap<String, String>,
) -> Answer {
    let Some(repo) = world.repo_named(owner, name) else {
        return Answer::error(StatusCode::NOT_FOUND, "Not Found");
    };
    let (per_page, page) = match paging(q) {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let anon = matches!(q.get("anon").map(String::as_str), Some("1" | "true"));
    let rows: Vec<Value> = world
        .contributors(&repo)
        .iter()
        .filter(|r| anon || !matches!(r, Contributor::Anonymous { .. }))
        .map(|row| match row {
            Contributor::User { user, .. } => {
                let login = world.login(*user);
                json!({"login": login, "id": 1000 + user, "type": "User", "contributions": contributions(row), "html_url": format!("https://github.com/{login}")})
            }
            Contributor::Bot { login, .. } => {
                json!({"login": login, "id": bot_id(login), "type": "Bot", "contributions": contributions(row), "html_url": format!("https://github.com/apps/{}", login.trim_end_matches("[bot]"))})
            }
            Contributor::Anonymous { name, email, .. } => {
                json!({"type": "Anonymous", "name": name, "email": email, "contributions": contributions(row)})
            }
        })
        .collect();
    let total = rows.len() as u64;
    let start = ((page - 1) * per_page).min(total) as usize;
    let end = (page * per_page).min(total) as usize;
    let base = format!(
        "http://{}/repos/{owner}/{name}/contributors?per_page={per_page}{}",
        host(headers),
        if anon { "&anon=1" } else { "" }
    );
    Answer {
        status: StatusCode::OK,
        body: Value::Array(rows[start..end].to_vec()),
        link: link(page, per_page, total, |p| format!("{base}&page={p}")),
    }
}

fn commits(
    world: &World,
    headers: &HeaderMap,
    owner: &str,
    name: &str,
    q: &HashMap<String, String>,
) -> Answer {
    let Some(repo) = world.repo_named(owner, name) else {
        return Answer::error(StatusCode::NOT_FOUND, "Not Found");
    };
    let (per_page, page) = match paging(q) {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let since = match q.get("since").map(|s| DateTime::parse_from_rfc3339(s)) {
        None => None,
        Some(Ok(t)) => Some(t.with_timezone(&Utc)),
        Some(Err(_)) => {
            return Answer::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Validation Failed: `since` must be an ISO 8601 timestamp",
            )
        }
    };
    let authors: Vec<User> = match q.get("author") {
        Some(login) => world.user_named(login).into_iter().collect(),
        None => world
            .contributors(&repo)
            .iter()
            .filter_map(|r| match r {
                Contributor::User { user, .. } => world.user(*user),
                _ => None,
            })
            .collect(),
    };
    let mut all: Vec<Value> = authors
        .iter()
        .flat_map(|u| world.commits(&repo, u))
        .collect();
    all.retain(|c| {
        let date = c["commit"]["author"]["date"]
            .as_str()
            .and_then(|d| DateTime::parse_from_rfc3339(d).ok());
        since.is_none_or(|s| date.is_some_and(|d| d >= s))
    });
    all.sort_by(|a, b| {
        b["commit"]["author"]["date"]
            .as_str()
            .cmp(&a["commit"]["author"]["date"].as_str())
    });
    let total = all.len() as u64;
    let start = ((page - 1) * per_page).min(total) as usize;
    let end = (page * per_page).min(total) as usize;
    let mut rest = String::new();
    for key in ["author", "since"] {
        if let Some(v) = q.get(key) {
            rest.push_str(&format!("&{key}={}", encode(v)));
        }
    }
    let base = format!(
        "http://{}/repos/{owner}/{name}/commits?per_page={per_page}{rest}",
        host(headers)
    );
    Answer {
        status: StatusCode::OK,
        body: Value::Array(all[start..end].to_vec()),
        link: link(page, per_page, total, |p| format!("{base}&page={p}")),
    }
}

fn user(world: &World, login: &str) -> Answer {
    if BOTS.contains(&login) {
        return Answer::ok(
            json!({"login": login, "id": bot_id(login), "type": "Bot", "name": null, "email": null, "site_admin": false}),
        );
    }
    let Some(u) = world.user_named(login) else {
        return Answer::error(StatusCode::NOT_FOUND, "Not Found");
    };
    Answer::ok(json!({
        "login": u.login, "id": 1000 + u.index, "type": "User", "name": u.name,
        "company": u.company, "blog": "", "location": u.location, "email": u.email,
        "hireable": null, "bio": null, "twitter_username": null,
        "public_repos": 1 + u.index % 40, "followers": u.followers, "following": u.index % 30,
        "html_url": format!("https://github.com/{}", u.login),
        "created_at": rfc3339(u.created_at), "updated_at": rfc3339(u.created_at),
    }))
}

// ---------- routes ----------

type Shared = Arc<Github>;
type Params = Query<HashMap<String, String>>;

async fn search_route(
    State(gh): State<Shared>,
    method: Method,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let path = format!(
        "/search/repositories?q={}",
        q.get("q").map(String::as_str).unwrap_or("")
    );
    serve(
        &gh,
        &method,
        &headers,
        "/search/repositories",
        path,
        Resource::Search,
        || search(&gh.world, &headers, &q),
    )
    .await
}

async fn contributors_route(
    State(gh): State<Shared>,
    method: Method,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    let path = format!("/repos/{owner}/{name}/contributors");
    serve(
        &gh,
        &method,
        &headers,
        "/repos/{owner}/{repo}/contributors",
        path,
        Resource::Core,
        || contributors(&gh.world, &headers, &owner, &name, &q),
    )
    .await
}

async fn commits_route(
    State(gh): State<Shared>,
    method: Method,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    let path = format!("/repos/{owner}/{name}/commits");
    serve(
        &gh,
        &method,
        &headers,
        "/repos/{owner}/{repo}/commits",
        path,
        Resource::Core,
        || commits(&gh.world, &headers, &owner, &name, &q),
    )
    .await
}

async fn user_route(
    State(gh): State<Shared>,
    method: Method,
    headers: HeaderMap,
    Path(login): Path<String>,
) -> Response {
    let path = format!("/users/{login}");
    serve(
        &gh,
        &method,
        &headers,
        "/users/{login}",
        path,
        Resource::Core,
        || user(&gh.world, &login),
    )
    .await
}

/// `GET /rate_limit`: not counted against the primary limit, as on GitHub.
async fn rate_limit_route(State(gh): State<Shared>, headers: HeaderMap) -> Response {
    let token = token_of(&headers);
    let who = token
        .as_deref()
        .map(fingerprint)
        .unwrap_or_else(|| "unauthenticated".into());
    let mut resources = serde_json::Map::new();
    for resource in [Resource::Core, Resource::Search] {
        let (limit, used, reset, _) = gh.window(&who, token.as_deref(), resource, false);
        resources.insert(
            resource.name().into(),
            json!({"limit": limit, "used": used, "remaining": limit.saturating_sub(used), "reset": reset.timestamp()}),
        );
    }
    let core = resources.get("core").cloned().unwrap_or(Value::Null);
    axum::Json(json!({"resources": resources, "rate": core})).into_response()
}

pub fn routes(gh: Shared) -> Router {
    Router::new()
        .route("/search/repositories", get(search_route))
        .route(
            "/repos/{owner}/{repo}/contributors",
            get(contributors_route),
        )
        .route("/repos/{owner}/{repo}/commits", get(commits_route))
        .route("/users/{login}", get(user_route))
        .route("/rate_limit", get(rate_limit_route))
        .with_state(gh)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_as_github_writes_them() {
        let r = parse_range(">=50", |s| s.parse::<u64>().ok()).expect("range");
        assert!(r.contains(50) && !r.contains(49));
        let r = parse_range("10..20", |s| s.parse::<u64>().ok()).expect("range");
        assert!(r.contains(10) && r.contains(20) && !r.contains(21));
        let r = parse_range("*..5", |s| s.parse::<u64>().ok()).expect("range");
        assert!(r.contains(0) && !r.contains(6));
        let r = parse_range("<2026-09-01", parse_day).expect("range");
        assert!(r.contains(NaiveDate::from_ymd_opt(2026, 8, 31).expect("date")));
        assert!(!r.contains(NaiveDate::from_ymd_opt(2026, 9, 1).expect("date")));
        assert!(parse_range(">=lots", |s| s.parse::<u64>().ok()).is_none());
    }

    #[test]
    fn links_name_next_and_last_until_the_end() {
        let url = |p| format!("u?page={p}");
        let l = link(1, 100, 250, url).expect("a link");
        assert!(l.contains("<u?page=2>; rel=\"next\"") && l.contains("<u?page=3>; rel=\"last\""));
        assert!(!l.contains("prev"));
        let l = link(3, 100, 250, url).expect("a link");
        assert!(!l.contains("next") && l.contains("rel=\"prev\""));
        assert!(link(1, 100, 40, url).is_none(), "one page, no header");
    }
}
