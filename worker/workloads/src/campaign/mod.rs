//! `campaign`: SPEC §7.2. From a goal such as "Find 2k Python maintainers active in last 90
//! days" to one drafted (or, with `send: true` and a configured transport, sent) message per
//! maintainer with a public address, and `report.csv`.
//!
//! Steps (and the progress stage each reports):
//! 1. `discovery` — repository search, sliced by pushed date past the 1,000-result cap
//!    (a slice whose `total_count` is over 1,000 is halved), deduplicated by id, up to
//!    `max_repos`; it runs ten pages a visit and loops, so a long search checkpoints.
//! 2. `extraction` (map over repositories) — the owner when a user, then the top
//!    contributors, bots dropped; each proven active in the window by a commit since then,
//!    which also gives the address they commit with.
//! 3. `enrichment` (map over maintainers) — the profile; the address from the profile, else
//!    the commit, noreply and bot addresses dropped; a profile that is gone (404) is recorded
//!    against the lead and skipped.
//! 4. `screening` — leads deduplicated by normalised address; the global suppression list
//!    (unsubscribed, bounced, manual) and every campaign's contacts within
//!    `recontact_after_days` checked.
//! 5. `outreach` (map over leads; stage `personalisation`, then `sending` when sending) —
//!    subject and body from the LLM or the templates; then, only when sending, the
//!    suppression list again, per-domain pacing and the daily cap (snoozing the job when they
//!    are used up), and one message through the effect ledger under
//!    `mail:<campaign>:<address>`, with a deterministic `Message-ID`, `List-Unsubscribe` and
//!    `List-Unsubscribe-Post`; an SMTP outcome that cannot be known is `unknown` and never
//!    sent again.
//! 6. `report` — `report.csv`, one row per lead, rebuilt from the stored outputs.
//!
//! Checkpoints: every `volume_interval` items of a map and at each step boundary. Map
//! outputs are stored per item, so a 10,000-lead campaign writes each lead's row once.

pub mod github;
pub mod personalise;
pub mod report;
pub mod target;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use drover_queue::suppress::{normalise_email, unsubscribe_token};
use drover_queue::Contact;
use drover_worker::graph::{CheckpointPolicy, Graph, GraphKind, MapStep, Next, Once, StepContext};
use drover_worker::JobError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::services::{Limiter, Message, Outcome, Transport};
use crate::{Settings, TransportKind};
use github::{Found, Github, Repo};
use personalise::Llm;
use target::Target;

pub const NAME: &str = "campaign";

/// Search pages one visit of `discovery` reads before it checkpoints and goes on.
const PAGES_PER_VISIT: usize = 10;
/// GitHub's cap on one search's results.
const SEARCH_CAP: u64 = 1_000;
/// How often a deferred (4xx) send is tried again, and how long between tries.
const SEND_TRIES: u32 = 3;
const SEND_BACKOFF: Duration = Duration::from_secs(2);

/// The clients a campaign calls, shared by every job of the process (and so is the ETag
/// cache inside them).
pub struct Clients {
    github: Github,
    llm: Option<Llm>,
    transport: Option<Transport>,
    from: Option<String>,
    public_url: Option<String>,
    key: Option<[u8; 32]>,
    per_domain_per_minute: u64,
    daily_cap: Option<u64>,
    share: f64,
}

impl Clients {
    pub fn new(settings: &Settings) -> Result<Clients, String> {
        let github = Github::new(
            &settings.github_base_url,
            settings.github_token.clone(),
            settings.api_timeout,
            settings.rate_limit_share,
        )
        .map_err(|e| format!("github.base_url: {e}"))?;
        let llm = Llm::from_settings(settings)?;
        let transport = match settings.mail_transport {
            TransportKind::None => None,
            TransportKind::Smtp => {
                let url = settings
                    .smtp_url
                    .as_ref()
                    .ok_or("mail.smtp_url: required when mail.transport is smtp")?;
                Some(Transport::smtp(url.expose(), settings.api_timeout)?)
            }
            TransportKind::Http => {
                let url = settings
                    .mail_http_url
                    .as_ref()
                    .ok_or("mail.http_url: required when mail.transport is http")?;
                let key = settings
                    .mail_api_key
                    .clone()
                    .ok_or("mail.api_key: required when mail.transport is http")?;
                Some(Transport::http(url, key, settings.api_timeout)?)
            }
        };
        if transport.is_some() && settings.mail_from.is_none() {
            return Err("mail.from: required when mail.transport is set".into());
        }
        if transport.is_some() && (settings.public_url.is_none() || settings.secrets_key.is_none())
        {
            return Err(
                "mail.public_url and secrets.key: required when mail.transport is set (every \
                 message carries a signed one-click unsubscribe link)"
                    .into(),
            );
        }
        Ok(Clients {
            github,
            llm,
            transport,
            from: settings.mail_from.clone(),
            public_url: settings
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            key: settings.secrets_key.as_ref().map(|k| *k.bytes()),
            per_domain_per_minute: settings.per_domain_per_minute.max(1),
            daily_cap: settings.daily_cap,
            share: settings.rate_limit_share,
        })
    }
}

/// One slice of a search: a language and/or topic over a pushed-date window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slice {
    pub language: Option<String>,
    pub topic: Option<String>,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Discovery {
    /// Slices still to search, the next one last.
    pub pending: Vec<Slice>,
    /// The slice being paged, and its next page.
    pub current: Option<(Slice, String)>,
    pub done: bool,
    pub searches: u64,
}

/// A maintainer found active in a repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub login: String,
    pub repo: String,
    pub language: Option<String>,
    pub stars: u64,
    pub last_active_at: Option<DateTime<Utc>>,
    pub commit_email: Option<String>,
}

/// A lead, as the state carries it into outreach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    pub login: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// `profile`, `commit` or `none`.
    pub email_source: String,
    pub company: Option<String>,
    pub followers: u64,
    pub repo: String,
    pub language: Option<String>,
    pub stars: u64,
    pub last_active_at: Option<DateTime<Utc>>,
    /// Settled before outreach: `no_email`, `duplicate`, `suppressed` or `failed`.
    pub status: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub drafted: u64,
    pub sent: u64,
    pub suppressed: u64,
    pub duplicate: u64,
    pub failed: u64,
    pub unknown: u64,
    pub no_email: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignState {
    pub target: Target,
    /// The start of the activity window.
    pub since: DateTime<Utc>,
    pub discovery: Discovery,
    /// The repositories found, while discovery and extraction need them (then cleared:
    /// later steps read the stored outputs, so checkpoints stay small).
    pub repos: Vec<Repo>,
    pub repos_found: u64,
    /// Leads whose status screening settled (duplicates, suppressed), by outreach index.
    pub settled: std::collections::BTreeMap<u64, Settled>,
    pub leads: u64,
    pub with_email: u64,
    pub counts: Counts,
    pub api_calls: u64,
}

/// What screening decided for a lead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settled {
    pub status: String,
    pub error: Option<String>,
}

/// A row of `report.csv`. An outreach item's output is the row without what its lead
/// already says (login, name, address, repository, activity): the report joins the two,
/// so each lead's identity is stored once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Row {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub login: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub email_source: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub repo: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_active_at: String,
    /// `llm` or `template` (empty when no message was written).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub personalization: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// `drafted, sent, suppressed, duplicate, failed, unknown, no_email`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub send_status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub body: String,
}

fn permanent(message: impl Into<String>) -> JobError {
    JobError::Permanent(message.into())
}

/// The `campaign` kind.
pub fn kind(settings: &Settings) -> Result<GraphKind<CampaignState>, String> {
    let clients = Arc::new(Clients::new(settings)?);
    let c = clients.clone();
    let discovery_step = move |ctx: StepContext, state: CampaignState| {
        let c = c.clone();
        async move { discovery(&ctx, &c, state).await }
    };
    let c = clients.clone();
    let extraction = MapStep::new(
        |state: &CampaignState| {
            state
                .repos
                .iter()
                .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
                .collect()
        },
        move |ctx, _i, item| {
            let c = c.clone();
            async move { extract(&ctx, &c, item).await }
        },
    )
    .concurrency_from(concurrency)
    .retry_items(3, Duration::from_secs(1))
    .skip_failed_items()
    .fold(|state: &mut CampaignState, _i, output| {
        if let Ok(found) = serde_json::from_value::<Extracted>(output) {
            state.api_calls += found.calls;
        }
    });
    let c = clients.clone();
    let enrichment = MapStep::over_outputs(
        "extraction",
        // Each maintainer once (the first repository found for them), up to the count.
        |state: &CampaignState, outputs| {
            let mut seen = HashSet::new();
            outputs
                .into_iter()
                .filter_map(|o| serde_json::from_value::<Extracted>(o).ok())
                .flat_map(|e| e.candidates)
                .filter(|c| seen.insert(c.login.clone()))
                .take(state.target.count as usize)
                .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
                .collect()
        },
        move |ctx, _i, item| {
            let c = c.clone();
            async move { enrich(&ctx, &c, item).await }
        },
    )
    .concurrency_from(concurrency)
    .retry_items(3, Duration::from_secs(1))
    .skip_failed_items()
    .fold(|state: &mut CampaignState, _i, _output| {
        state.api_calls += 1;
    });
    let c = clients.clone();
    let outreach = MapStep::over_outputs(
        "enrichment",
        // The leads with what screening settled.
        |state: &CampaignState, outputs| {
            leads_of(outputs)
                .into_iter()
                .enumerate()
                .map(|(i, mut lead)| {
                    if let Some(settled) = state.settled.get(&(i as u64)) {
                        lead.status = Some(settled.status.clone());
                        lead.error = settled.error.clone();
                    }
                    serde_json::to_value(lead).unwrap_or(Value::Null)
                })
                .collect()
        },
        move |ctx, _i, item| {
            let c = c.clone();
            async move { reach_out(&ctx, &c, item).await }
        },
    )
    .concurrency_from(concurrency)
    .retry_items(3, Duration::from_secs(2))
    .skip_failed_items()
    .fold(|state: &mut CampaignState, _i, output| {
        let status = output
            .get("send_status")
            .and_then(Value::as_str)
            .unwrap_or("");
        let counts = &mut state.counts;
        match status {
            "drafted" => counts.drafted += 1,
            "sent" => counts.sent += 1,
            "suppressed" => counts.suppressed += 1,
            "duplicate" => counts.duplicate += 1,
            "unknown" => counts.unknown += 1,
            "no_email" => counts.no_email += 1,
            _ => counts.failed += 1,
        }
    });
    let graph = Graph::new()
        .task("discovery", discovery_step)
        .map("extraction", extraction)
        .task(
            "candidates",
            |_ctx: StepContext, mut state: CampaignState| async move {
                // Extraction's outputs are stored; the repositories are not needed again.
                state.repos_found = state.repos.len() as u64;
                state.repos = Vec::new();
                Ok(state)
            },
        )
        .map("enrichment", enrichment)
        .task(
            "screening",
            |ctx: StepContext, state: CampaignState| async move { screening(&ctx, state).await },
        )
        .map("outreach", outreach)
        .task("report", |ctx: StepContext, state: CampaignState| async move {
            report::write(&ctx, state).await
        })
        .edge_when(
            "discovery",
            ["discovery", "extraction"],
            |state: &CampaignState| {
                if state.discovery.done {
                    Next::Step("extraction")
                } else {
                    Next::Step("discovery")
                }
            },
        );
    Ok(GraphKind::new(NAME, graph, |job| {
        let target = Target::from_job(&job.goal, &job.config)
            .map_err(|e| permanent(format!("{}: {}", e.field, e.message)))?;
        let now = Utc::now();
        let since = now - chrono::Duration::days(target.activity_days as i64);
        Ok(CampaignState {
            discovery: Discovery {
                pending: initial_slices(&target, since.date_naive(), now.date_naive()),
                ..Discovery::default()
            },
            target,
            since,
            repos: Vec::new(),
            repos_found: 0,
            settled: Default::default(),
            leads: 0,
            with_email: 0,
            counts: Counts::default(),
            api_calls: 0,
        })
    })
    .policy(|job| CheckpointPolicy {
        every_items: Target::from_job(&job.goal, &job.config)
            .map(|t| t.volume_interval)
            .ok(),
        ..CheckpointPolicy::default()
    })
    .validate_job(|goal, config| Target::from_job(goal, config).map(|_| ()))
    .result(result)
    .max_attempts(5))
}

fn concurrency(job: &drover_queue::Job) -> usize {
    Target::from_job(&job.goal, &job.config)
        .map(|t| t.concurrency as usize)
        .unwrap_or(1)
}

/// The job's result.
pub fn result(state: &CampaignState) -> Value {
    let counts = &state.counts;
    json!({
        "repos": state.repos_found,
        "leads": state.leads,
        "with_email": state.with_email,
        "drafted": counts.drafted,
        "sent": counts.sent,
        "suppressed": counts.suppressed,
        "duplicate": counts.duplicate,
        "failed": counts.failed,
        "unknown": counts.unknown,
        "no_email": counts.no_email,
        "api_calls": state.api_calls,
    })
}

/// One slice per language × topic over the whole window, the first one searched first.
fn initial_slices(target: &Target, from: NaiveDate, to: NaiveDate) -> Vec<Slice> {
    let languages: Vec<Option<String>> = if target.languages.is_empty() {
        vec![None]
    } else {
        target.languages.iter().cloned().map(Some).collect()
    };
    let topics: Vec<Option<String>> = if target.topics.is_empty() {
        vec![None]
    } else {
        target.topics.iter().cloned().map(Some).collect()
    };
    let mut slices = Vec::new();
    for language in &languages {
        for topic in &topics {
            slices.push(Slice {
                language: language.clone(),
                topic: topic.clone(),
                from,
                to,
            });
        }
    }
    slices.reverse();
    slices
}

async fn discovery(
    ctx: &StepContext,
    clients: &Clients,
    mut state: CampaignState,
) -> Result<CampaignState, JobError> {
    ctx.progress(|p| p.stage = Some("discovery".into())).await?;
    let mut seen: HashSet<u64> = state.repos.iter().map(|r| r.id).collect();
    for _ in 0..PAGES_PER_VISIT {
        let (slice, path, first_page) = match state.discovery.current.take() {
            Some((slice, next)) => (slice, next, false),
            None => match state.discovery.pending.pop() {
                Some(slice) => {
                    let path = github::search_path(
                        slice.language.as_deref(),
                        slice.topic.as_deref(),
                        state.target.min_stars,
                        slice.from,
                        slice.to,
                    );
                    (slice, path, true)
                }
                None => {
                    state.discovery.done = true;
                    break;
                }
            },
        };
        let page = clients.github.search(ctx, &path).await?;
        state.discovery.searches += 1;
        state.api_calls += 1;
        if first_page && page.total_count > SEARCH_CAP && slice.from < slice.to {
            // Past the cap: search the two halves instead, the newer one first.
            let days = (slice.to - slice.from).num_days();
            let mid = slice.from + chrono::Duration::days(days / 2);
            state.discovery.pending.push(Slice {
                from: slice.from,
                to: mid,
                ..slice.clone()
            });
            state.discovery.pending.push(Slice {
                from: mid + chrono::Duration::days(1),
                ..slice
            });
            continue;
        }
        for repo in page.repos {
            if (state.repos.len() as u64) < state.target.max_repos && seen.insert(repo.id) {
                state.repos.push(repo);
            }
        }
        if state.repos.len() as u64 >= state.target.max_repos {
            state.discovery.done = true;
            break;
        }
        if let Some(next) = page.next {
            state.discovery.current = Some((slice, next));
        }
        let found = state.repos.len() as u64;
        let calls = state.api_calls;
        ctx.progress(|p| {
            p.items_processed = found;
            p.metrics.insert("repos".into(), json!(found));
            p.metrics.insert("api_calls".into(), json!(calls));
        })
        .await?;
    }
    if state.discovery.done {
        ctx.log(format!(
            "discovery: {} repositories in {} searches",
            state.repos.len(),
            state.discovery.searches
        ))
        .await?;
    }
    Ok(state)
}

#[derive(Debug, Serialize, Deserialize)]
struct Extracted {
    candidates: Vec<Candidate>,
    calls: u64,
}

fn parse_item<T: serde::de::DeserializeOwned>(item: Value) -> Result<T, JobError> {
    serde_json::from_value(item).map_err(|e| permanent(format!("a map item does not parse: {e}")))
}

fn state_target(ctx: &StepContext) -> Result<Target, JobError> {
    Target::from_job(&ctx.job().goal, ctx.config())
        .map_err(|e| permanent(format!("{}: {}", e.field, e.message)))
}

async fn add_calls(
    ctx: &StepContext,
    clients: &Clients,
    stage: &str,
    calls: u64,
) -> Result<(), JobError> {
    let remaining = clients.github.remaining(ctx).await;
    ctx.progress(|p| {
        p.stage = Some(stage.to_string());
        let total = p
            .metrics
            .get("api_calls")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            + calls;
        p.metrics.insert("api_calls".into(), json!(total));
        if let Some(remaining) = remaining {
            p.metrics
                .insert("rate_limit_remaining".into(), json!(remaining));
        }
    })
    .await
}

async fn extract(ctx: &StepContext, clients: &Clients, item: Value) -> Result<Value, JobError> {
    let repo: Repo = parse_item(item)?;
    let target = state_target(ctx)?;
    let since = Utc::now() - chrono::Duration::days(target.activity_days as i64);
    let mut calls = 1;
    let contributors = match clients.github.contributors(ctx, &repo.full_name).await? {
        Found::Yes(list) => list,
        Found::NotFound => Vec::new(),
    };
    let mut logins: Vec<String> = Vec::new();
    if repo.owner_is_user && !github::is_bot(repo.owner(), "User") {
        logins.push(repo.owner().to_string());
    }
    for contributor in &contributors {
        if let Some(login) = &contributor.login {
            if contributor.kind == "User"
                && !github::is_bot(login, &contributor.kind)
                && !logins.contains(login)
            {
                logins.push(login.clone());
            }
        }
    }
    logins.truncate(target.maintainers_per_repo as usize);
    let mut candidates = Vec::new();
    for login in logins {
        calls += 1;
        if let Found::Yes(activity) = clients
            .github
            .activity(ctx, &repo.full_name, &login, since)
            .await?
        {
            if activity.last_active_at.is_some() {
                candidates.push(Candidate {
                    login,
                    repo: repo.full_name.clone(),
                    language: repo.language.clone(),
                    stars: repo.stars,
                    last_active_at: activity.last_active_at,
                    commit_email: activity.commit_email,
                });
            }
        }
    }
    add_calls(ctx, clients, "extraction", calls).await?;
    Ok(serde_json::to_value(Extracted { candidates, calls }).unwrap_or(Value::Null))
}

async fn enrich(ctx: &StepContext, clients: &Clients, item: Value) -> Result<Value, JobError> {
    let candidate: Candidate = parse_item(item)?;
    let profile = clients.github.profile(ctx, &candidate.login).await?;
    add_calls(ctx, clients, "enrichment", 1).await?;
    let mut lead = Lead {
        login: candidate.login.clone(),
        name: None,
        email: None,
        email_source: "none".into(),
        company: None,
        followers: 0,
        repo: candidate.repo,
        language: candidate.language,
        stars: candidate.stars,
        last_active_at: candidate.last_active_at,
        status: None,
        error: None,
    };
    let profile = match profile {
        Found::Yes(profile) => profile,
        Found::NotFound => {
            lead.status = Some("failed".into());
            lead.error = Some("github profile not found (404)".into());
            return Ok(serde_json::to_value(lead).unwrap_or(Value::Null));
        }
    };
    if github::is_bot(&profile.login, &profile.kind) {
        return Ok(Value::Null);
    }
    lead.name = profile.name.filter(|n| !n.trim().is_empty());
    lead.company = profile.company;
    lead.followers = profile.followers;
    let usable = |e: &Option<String>| {
        e.as_deref()
            .filter(|e| !github::undeliverable(e))
            .and_then(normalise_email)
    };
    if let Some(email) = usable(&profile.email) {
        lead.email = Some(email);
        lead.email_source = "profile".into();
    } else if let Some(email) = usable(&candidate.commit_email) {
        lead.email = Some(email);
        lead.email_source = "commit".into();
    } else {
        lead.status = Some("no_email".into());
    }
    Ok(serde_json::to_value(lead).unwrap_or(Value::Null))
}

/// Lookups per store call in screening.
const SCREEN_CHUNK: usize = 1_000;

async fn screening(ctx: &StepContext, mut state: CampaignState) -> Result<CampaignState, JobError> {
    ctx.progress(|p| p.stage = Some("screening".into())).await?;
    let leads = stored_leads(ctx).await?;
    state.leads = leads.len() as u64;
    state.settled.clear();
    let mut seen = HashSet::new();
    let mut open: Vec<(u64, String)> = Vec::new();
    for (i, lead) in leads.iter().enumerate() {
        if let (None, Some(email)) = (&lead.status, &lead.email) {
            if seen.insert(email.clone()) {
                open.push((i as u64, email.clone()));
            } else {
                state.settled.insert(
                    i as u64,
                    Settled {
                        status: "duplicate".into(),
                        error: None,
                    },
                );
            }
        }
    }
    state.with_email = open.len() as u64;
    let mut blocked: HashMap<String, String> = HashMap::new();
    let emails: Vec<String> = open.iter().map(|(_, e)| e.clone()).collect();
    for chunk in emails.chunks(SCREEN_CHUNK) {
        // The suppression list comes first: its reason wins over a recent contact.
        for (email, why) in suppressed_now(ctx, chunk, &state.target).await? {
            blocked.entry(email).or_insert(why);
        }
    }
    for (i, email) in &open {
        if let Some(why) = blocked.get(email) {
            state.settled.insert(
                *i,
                Settled {
                    status: "suppressed".into(),
                    error: Some(why.clone()),
                },
            );
        }
    }
    ctx.log(format!(
        "screening: {} leads, {} with an address, {} suppressed",
        leads.len(),
        emails.len(),
        blocked.len()
    ))
    .await?;
    Ok(state)
}

/// The leads enrichment found, in order (bots, which it drops, have a null output).
pub fn leads_of(outputs: Vec<Value>) -> Vec<Lead> {
    outputs
        .into_iter()
        .filter_map(|o| serde_json::from_value::<Lead>(o).ok())
        .collect()
}

/// Enrichment's stored outputs, as leads.
pub async fn stored_leads(ctx: &StepContext) -> Result<Vec<Lead>, JobError> {
    let mut outputs = Vec::new();
    let mut from = 0;
    loop {
        let page = ctx
            .item_outputs("enrichment", from, drover_queue::MAX_ITEM_OUTPUTS_PER_READ)
            .await?;
        let Some(last) = page.last().map(|o| o.index) else {
            break;
        };
        let latest = page.iter().map(|o| o.visit).max().unwrap_or(0);
        for row in page.into_iter().filter(|o| o.visit == latest) {
            outputs.push(
                serde_json::from_slice(&row.output)
                    .map_err(|e| permanent(format!("an enrichment output: {e}")))?,
            );
        }
        from = last + 1;
    }
    Ok(leads_of(outputs))
}

/// Which of `emails` may not be written to now, and why: the suppression list, and contacts
/// by another campaign within `recontact_after_days`.
async fn suppressed_now(
    ctx: &StepContext,
    emails: &[String],
    target: &Target,
) -> Result<Vec<(String, String)>, JobError> {
    let store = ctx.store();
    let store_error =
        |e: drover_queue::StoreError| JobError::Transient(format!("suppressions: {e}"));
    let mut out: Vec<(String, String)> = store
        .suppressed(emails)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|s| {
            let reason = serde_json::to_value(s.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            (s.email, format!("suppressed: {reason}"))
        })
        .collect();
    let window = chrono::Duration::days(target.recontact_after_days as i64);
    let now = Utc::now();
    let me = ctx.job().id;
    for contact in store.last_contacts(emails).await.map_err(store_error)? {
        if contact.job_id != me && now - contact.at < window {
            out.push((
                contact.email,
                format!(
                    "contacted by campaign {} on {}",
                    contact.job_id,
                    contact.at.format("%Y-%m-%d")
                ),
            ));
        }
    }
    Ok(out)
}

/// An outreach item's output: the row without its lead's identity (see [`Row`]).
fn stored_row(mut row: Row) -> Value {
    for field in [
        &mut row.login,
        &mut row.name,
        &mut row.email,
        &mut row.email_source,
        &mut row.repo,
        &mut row.last_active_at,
    ] {
        field.clear();
    }
    serde_json::to_value(row).unwrap_or(Value::Null)
}

/// `row`, an outreach output, with its lead's identity back.
pub fn joined(mut row: Row, lead: &Lead) -> Row {
    let identity = row_of(lead);
    row.login = identity.login;
    row.name = identity.name;
    row.email = identity.email;
    row.email_source = identity.email_source;
    row.repo = identity.repo;
    row.last_active_at = identity.last_active_at;
    row
}

fn row_of(lead: &Lead) -> Row {
    Row {
        login: lead.login.clone(),
        name: lead.name.clone().unwrap_or_default(),
        email: lead.email.clone().unwrap_or_default(),
        email_source: lead.email_source.clone(),
        repo: lead.repo.clone(),
        last_active_at: lead
            .last_active_at
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default(),
        send_status: lead.status.clone().unwrap_or_default(),
        error: lead.error.clone().unwrap_or_default(),
        ..Row::default()
    }
}

/// The deterministic `Message-ID` local part and domain of a ledger key.
fn message_id(key: &str, from: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let local: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let address = from
        .rsplit_once('<')
        .map(|(_, a)| a.trim_end_matches('>'))
        .unwrap_or(from);
    let domain = address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("drover.invalid");
    format!("{local}@{domain}")
}

/// The next minute boundary and the next UTC midnight: the windows of pacing and the cap.
fn next_minute(now: DateTime<Utc>) -> DateTime<Utc> {
    let secs = now.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(60) + 60, 0).unwrap_or(now)
}

fn next_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = now.date_naive().succ_opt().unwrap_or(now.date_naive());
    tomorrow
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or(now)
}

async fn reach_out(ctx: &StepContext, clients: &Clients, item: Value) -> Result<Value, JobError> {
    let lead: Lead = parse_item(item)?;
    let target = state_target(ctx)?;
    let mut row = row_of(&lead);
    let sending = target.send && clients.transport.is_some();
    let stage = if sending {
        "sending"
    } else {
        "personalisation"
    };
    if lead.status.is_some() {
        ctx.progress(|p| p.stage = Some(stage.into())).await?;
        return Ok(stored_row(row));
    }
    let Some(email) = lead.email.clone() else {
        row.send_status = "no_email".into();
        return Ok(stored_row(row));
    };
    let written = match &clients.llm {
        Some(llm) => match llm.write(&target, &lead).await {
            Ok(written) => written,
            Err(JobError::Permanent(why)) => {
                // The model refuses for good (a quota): the templates write this one.
                row.error = format!("{why}; the templates were used");
                personalise::from_templates(&target, &lead)
            }
            Err(other) => return Err(other),
        },
        None => personalise::from_templates(&target, &lead),
    };
    row.personalization = written.source.into();
    row.subject = written.subject.clone();
    row.body = written.body.clone();
    let (Some(transport), true) = (&clients.transport, target.send) else {
        row.send_status = "drafted".into();
        ctx.progress(|p| p.stage = Some(stage.into())).await?;
        return Ok(stored_row(row));
    };
    // Checked again right before the send: an unsubscribe may have come in since screening.
    if let Some((_, why)) = suppressed_now(ctx, std::slice::from_ref(&email), &target)
        .await?
        .into_iter()
        .next()
    {
        row.send_status = "suppressed".into();
        row.error = why;
        return Ok(stored_row(row));
    }
    let key = format!("mail:{}:{email}", ctx.job().id);
    let from = clients.from.clone().unwrap_or_default();
    let limiter = Limiter::new(ctx.store().clone(), clients.share);
    let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    let outcome = send_once(ctx, clients, transport, &limiter, domain, &key, || {
        Message {
            from: from.clone(),
            to: email.clone(),
            subject: written.subject.clone(),
            body: written.body.clone(),
            message_id: message_id(&key, &from),
            unsubscribe_url: match (&clients.public_url, &clients.key) {
                (Some(url), Some(k)) => Some(format!("{url}/u/{}", unsubscribe_token(k, &email))),
                _ => None,
            },
            idempotency_key: key.clone(),
        }
    })
    .await?;
    row.message_id = format!("<{}>", message_id(&key, &from));
    match outcome {
        Outcome::Sent { .. } => row.send_status = "sent".into(),
        Outcome::Unknown => {
            row.send_status = "unknown".into();
            row.error = "the SMTP connection broke during the send: it may have been delivered; \
                         not sent again"
                .into();
        }
        Outcome::Rejected { reason } | Outcome::Deferred { reason } => {
            row.send_status = "failed".into();
            row.error = reason;
        }
    }
    if matches!(row.send_status.as_str(), "sent" | "unknown") {
        ctx.store()
            .record_contact(&Contact {
                email: email.clone(),
                job_id: ctx.job().id,
                at: Utc::now(),
            })
            .await
            .map_err(|e| JobError::Transient(format!("contacts: {e}")))?;
    }
    let sent = row.send_status == "sent";
    ctx.progress(|p| {
        p.stage = Some(stage.into());
        if sent {
            let total = p
                .metrics
                .get("emails_sent")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                + 1;
            p.metrics.insert("emails_sent".into(), json!(total));
        }
    })
    .await?;
    Ok(stored_row(row))
}

/// One message through the ledger: a deferral (SMTP 4xx) is tried again under a new key
/// (it was certainly not delivered); an unknown outcome never is.
async fn send_once(
    ctx: &StepContext,
    clients: &Clients,
    transport: &Transport,
    limiter: &Limiter,
    domain: &str,
    key: &str,
    message: impl Fn() -> Message,
) -> Result<Outcome, JobError> {
    let mut last = Outcome::Unknown;
    for attempt in 0..SEND_TRIES {
        let key = if attempt == 0 {
            key.to_string()
        } else {
            format!("{key}#{attempt}")
        };
        // Pacing and the cap are taken before anything is recorded: a snooze here loses
        // nothing.
        let now = Utc::now();
        let pace = format!("mail:domain:{domain}");
        limiter
            .declare(&pace, clients.per_domain_per_minute, next_minute(now))
            .await?;
        limiter.acquire_declared(ctx, &pace).await?;
        if let Some(cap) = clients.daily_cap {
            limiter
                .declare("mail:daily", cap, next_midnight(now))
                .await?;
            limiter.acquire_declared(ctx, "mail:daily").await?;
        }
        let message = message();
        let outcome = match transport {
            Transport::Smtp(_) => {
                if !transport.ready().await {
                    return Err(JobError::Transient(
                        "mail: the SMTP server does not answer; trying again later".into(),
                    ));
                }
                match ctx
                    .effect_once(&key, || async {
                        transport
                            .send(&message)
                            .await
                            .map_err(|e| JobError::Transient(e.to_string()))
                    })
                    .await?
                {
                    Once::Done(outcome) => outcome,
                    Once::Unknown => Outcome::Unknown,
                }
            }
            Transport::Http(_) => {
                ctx.effect(&key, || async {
                    transport
                        .send(&message)
                        .await
                        .map_err(|e| JobError::Transient(e.to_string()))
                })
                .await?
            }
        };
        match outcome {
            Outcome::Deferred { .. } if attempt + 1 < SEND_TRIES => {
                last = outcome;
                ctx.sleep(SEND_BACKOFF * (attempt + 1)).await?;
            }
            other => return Ok(other),
        }
    }
    Ok(last)
}
