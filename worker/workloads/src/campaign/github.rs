//! The GitHub REST calls a campaign makes, each after a permit from the fleet-wide limit of
//! its token and resource (`core`, `search`), each answer's `x-ratelimit-*` fed back.

use chrono::{DateTime, NaiveDate, Utc};
use drover_queue::Observation;
use drover_worker::graph::StepContext;
use drover_worker::JobError;
use serde::{Deserialize, Serialize};

use crate::services::http::{header_u64, reset_at};
use crate::services::{Auth, CallError, Limiter, Reply, Secret, Service};

#[derive(Clone)]
pub struct Github {
    service: Service,
    /// `limits.rate_limit_buffer`.
    share: f64,
    /// Names the token in rate-limit rows (never the token itself).
    who: String,
}

/// GitHub's two budgets a campaign spends.
#[derive(Debug, Clone, Copy)]
pub enum Resource {
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

/// A repository from search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repo {
    pub id: u64,
    /// `owner/name`.
    pub full_name: String,
    /// The owner is a user (not an organisation): a maintainer by definition.
    pub owner_is_user: bool,
    pub language: Option<String>,
    pub stars: u64,
}

impl Repo {
    /// The owner's login.
    pub fn owner(&self) -> &str {
        self.full_name
            .split_once('/')
            .map_or(self.full_name.as_str(), |(owner, _)| owner)
    }
}

/// One page of a search.
pub struct SearchPage {
    pub total_count: u64,
    pub repos: Vec<Repo>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Contributor {
    pub login: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub contributions: u64,
}

/// What the commits of a login in a window say.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub last_active_at: Option<DateTime<Utc>>,
    pub commit_email: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    pub login: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub location: Option<String>,
    #[serde(default)]
    pub followers: u64,
}

/// A call's end for a step: a value, or "there is none" (404).
pub enum Found<T> {
    Yes(T),
    NotFound,
}

impl Github {
    pub fn new(
        base_url: &str,
        token: Option<Secret>,
        timeout: std::time::Duration,
        share: f64,
    ) -> Result<Self, String> {
        let who = token
            .as_ref()
            .map(Secret::fingerprint)
            .unwrap_or_else(|| "unauthenticated".into());
        let auth = token.map(Auth::Bearer).unwrap_or(Auth::None);
        let service = Service::new("github", base_url, auth, timeout)?.with_headers(&[
            ("accept", "application/vnd.github+json"),
            ("x-github-api-version", "2022-11-28"),
        ]);
        Ok(Github {
            service,
            share,
            who,
        })
    }

    /// The fleet-wide limits, through the job's store.
    pub fn limiter(&self, ctx: &StepContext) -> Limiter {
        Limiter::new(ctx.store().clone(), self.share)
    }

    /// The rate-limit row of `resource` for this token.
    pub fn resource(&self, resource: Resource) -> String {
        format!("github:{}:{}", self.who, resource.name())
    }

    /// The stored remaining core budget, for progress.
    pub async fn remaining(&self, ctx: &StepContext) -> Option<u64> {
        self.limiter(ctx)
            .remaining(&self.resource(Resource::Core))
            .await
    }

    /// A GET after a permit; a rate-limit answer blocks the resource fleet-wide and snoozes
    /// the job until it reopens.
    async fn get(
        &self,
        ctx: &StepContext,
        resource: Resource,
        path: &str,
    ) -> Result<Found<Reply>, JobError> {
        let row = self.resource(resource);
        let limiter = self.limiter(ctx);
        loop {
            limiter.acquire(ctx, &row).await?;
            match self.service.get(path).await {
                Ok(reply) => {
                    if !reply.not_modified {
                        limiter.observe(&row, observation(&reply)).await?;
                    }
                    return Ok(Found::Yes(reply));
                }
                Err(CallError::NotFound { .. }) => return Ok(Found::NotFound),
                Err(CallError::RateLimited { until, .. }) => {
                    // The next acquire waits or snoozes until it reopens.
                    limiter.block(&row, until).await?;
                }
                Err(err @ CallError::Transient { .. }) => {
                    return Err(JobError::Transient(err.to_string()))
                }
                Err(err) => return Err(JobError::Permanent(err.to_string())),
            }
        }
    }

    /// `path` is the first page's path and query, or a `Link: rel="next"` from the last.
    pub async fn search(&self, ctx: &StepContext, path: &str) -> Result<SearchPage, JobError> {
        #[derive(Deserialize)]
        struct Answer {
            total_count: u64,
            items: Vec<Item>,
        }
        #[derive(Deserialize)]
        struct Item {
            id: u64,
            full_name: String,
            owner: Owner,
            language: Option<String>,
            #[serde(default)]
            stargazers_count: u64,
        }
        #[derive(Deserialize)]
        struct Owner {
            #[serde(rename = "type", default)]
            kind: String,
        }
        let reply = match self.get(ctx, Resource::Search, path).await? {
            Found::Yes(reply) => reply,
            Found::NotFound => return Err(JobError::Permanent("github search: not found".into())),
        };
        let answer: Answer = reply
            .json("github")
            .map_err(|e| JobError::Permanent(e.to_string()))?;
        Ok(SearchPage {
            total_count: answer.total_count,
            next: reply.next_link(self.service.base()),
            repos: answer
                .items
                .into_iter()
                .map(|item| Repo {
                    id: item.id,
                    full_name: item.full_name,
                    owner_is_user: item.owner.kind == "User",
                    language: item.language,
                    stars: item.stargazers_count,
                })
                .collect(),
        })
    }

    /// The first page of a repository's contributors (top contributors first).
    pub async fn contributors(
        &self,
        ctx: &StepContext,
        full_name: &str,
    ) -> Result<Found<Vec<Contributor>>, JobError> {
        let path = format!("/repos/{full_name}/contributors?per_page=100");
        match self.get(ctx, Resource::Core, &path).await? {
            Found::Yes(reply) => reply
                .json("github")
                .map(Found::Yes)
                .map_err(|e| JobError::Permanent(e.to_string())),
            Found::NotFound => Ok(Found::NotFound),
        }
    }

    /// The login's latest commit to the repository since `since`: proves activity and
    /// gives the address it commits with.
    pub async fn activity(
        &self,
        ctx: &StepContext,
        full_name: &str,
        login: &str,
        since: DateTime<Utc>,
    ) -> Result<Found<Activity>, JobError> {
        #[derive(Deserialize)]
        struct Commit {
            commit: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            author: Option<Person>,
        }
        #[derive(Deserialize)]
        struct Person {
            email: Option<String>,
            date: Option<DateTime<Utc>>,
        }
        let path = format!(
            "/repos/{full_name}/commits?author={login}&since={}&per_page=1",
            since.format("%Y-%m-%dT%H:%M:%SZ")
        );
        let reply = match self.get(ctx, Resource::Core, &path).await? {
            Found::Yes(reply) => reply,
            Found::NotFound => return Ok(Found::NotFound),
        };
        let commits: Vec<Commit> = reply
            .json("github")
            .map_err(|e| JobError::Permanent(e.to_string()))?;
        let author = commits.into_iter().next().and_then(|c| c.commit.author);
        Ok(Found::Yes(Activity {
            last_active_at: author.as_ref().and_then(|a| a.date),
            commit_email: author.and_then(|a| a.email),
        }))
    }

    pub async fn profile(
        &self,
        ctx: &StepContext,
        login: &str,
    ) -> Result<Found<Profile>, JobError> {
        match self
            .get(ctx, Resource::Core, &format!("/users/{login}"))
            .await?
        {
            Found::Yes(reply) => reply
                .json("github")
                .map(Found::Yes)
                .map_err(|e| JobError::Permanent(e.to_string())),
            Found::NotFound => Ok(Found::NotFound),
        }
    }
}

/// What `x-ratelimit-*` say.
fn observation(reply: &Reply) -> Observation {
    Observation {
        limit: header_u64(&reply.headers, "x-ratelimit-limit"),
        remaining: header_u64(&reply.headers, "x-ratelimit-remaining"),
        reset_at: reset_at(&reply.headers),
        blocked_until: None,
    }
}

/// The search path for one slice of the pushed-date window.
pub fn search_path(
    language: Option<&str>,
    topic: Option<&str>,
    min_stars: u64,
    from: NaiveDate,
    to: NaiveDate,
) -> String {
    let mut q = Vec::new();
    if let Some(language) = language {
        q.push(format!("language:{}", encode(language)));
    }
    if let Some(topic) = topic {
        q.push(format!("topic:{}", encode(topic)));
    }
    q.push(format!("pushed:{from}..{to}"));
    q.push(format!("stars:>={min_stars}"));
    q.push("archived:false".into());
    q.push("fork:false".into());
    format!(
        "/search/repositories?q={}&sort=updated&order=desc&per_page=100",
        q.join("+")
    )
}

/// Percent-encodes what a query value may hold beyond letters and digits (`C++`, `C#`).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The addresses nobody reads: GitHub's noreply forms, bots, placeholders.
pub fn undeliverable(email: &str) -> bool {
    let email = email.to_ascii_lowercase();
    let Some((local, domain)) = email.rsplit_once('@') else {
        return true;
    };
    domain == "users.noreply.github.com"
        || email == "noreply@github.com"
        || email == "actions@github.com"
        || local.contains("[bot]")
        || local.ends_with("-bot")
        || matches!(
            domain,
            "localhost" | "(none)" | "example.com" | "localhost.localdomain"
        )
        || !domain.contains('.')
}

/// A bot login (`dependabot[bot]`) or account type.
pub fn is_bot(login: &str, kind: &str) -> bool {
    kind == "Bot" || login.ends_with("[bot]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noreply_bot_and_placeholder_addresses_are_dropped() {
        for email in [
            "12345+jane@users.noreply.github.com",
            "jane@users.noreply.github.com",
            "noreply@github.com",
            "dependabot[bot]@users.noreply.github.com",
            "someone@localhost",
            "x@example.com",
            "nodomain",
        ] {
            assert!(undeliverable(email), "{email}");
        }
        for email in ["jane@fastmail.test", "Jane.Doe@Uni-Example.test"] {
            assert!(!undeliverable(email), "{email}");
        }
        assert!(is_bot("renovate[bot]", "User"));
        assert!(is_bot("x", "Bot"));
        assert!(!is_bot("jane", "User"));
    }

    #[test]
    fn search_paths_slice_by_pushed_date() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        assert_eq!(
            search_path(Some("C++"), None, 10, day(1), day(7)),
            "/search/repositories?q=language:C%2B%2B+pushed:2026-11-01..2026-11-07+stars:>=10+archived:false+fork:false&sort=updated&order=desc&per_page=100"
        );
    }
}
