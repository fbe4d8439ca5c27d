//! The `apply` kind: SPEC §7.3 as an agent graph.
//!
//! 1. `discovery` — the profile is read (and kept in the state, so one job scores against
//!    one version of it); every source is read at once, at most four in flight, each
//!    failure isolated and reported (in the progress, the log and the result). A job whose
//!    every source failed is retried.
//! 2. `dedup` — one posting per job however many boards carry it: native id, canonical URL,
//!    then company + title + location (Jaro-Winkler ≥ 0.93). The newest `max_postings` go on.
//! 3. `score` — each posting's score and breakdown, its band, and whether an earlier job of
//!    the user already applied to it (then it is `skipped`, saying which job). Descriptions
//!    are dropped from the state here: checkpoints stay small.
//! 4. `decide` (a map over the review band) — a gate per posting (approve / reject, rejected
//!    at `review_timeout`, 24 h), or skipped when `review: skip`. The other items go on while
//!    one waits; the job parks without a slot once only gated items are left.
//! 5. `apply` (a map over the apply band and the approved) — the user's applications ledger
//!    claims the posting under the caps (a daily cap snoozes the job to the next Asia/Kolkata
//!    day; a monthly cap marks the rest `capped`); tier 1 fills the hosted form in a pooled
//!    Chromium and submits it through the effect ledger (an unknown outcome is never
//!    resubmitted), tier 2 writes a cover letter and leaves the link, `manual`. Any tier-1
//!    failure saves a screenshot.
//! 6. `report` — `applications.csv`, one row per posting, rebuilt from the state and the
//!    stored outputs.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use drover_queue::application::{CapKind, Claim, Outcome};
use drover_queue::profile::Profile;
use drover_queue::seal::Keyring;
use drover_queue::NewGate;
use drover_worker::graph::{CheckpointPolicy, Graph, GraphKind, MapStep, Once, StepContext};
use drover_worker::JobError;
use futures_util::{stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::answer::LlmAnswerer;
use super::boards::{discover, Boards, Source};
use super::config::{config_schema, ApplyConfig, Review};
use super::dedup::dedup;
use super::posting::{Posting, Site};
use super::score::{Band, Criteria, Scored, Scorer};
use super::tier1::{self, Applicant, Blocker, Submitted};
use crate::campaign::personalise::Llm;
use crate::services::browser::{Browsers, Session};
use crate::Settings;

pub const NAME: &str = "apply";
/// Boards read at once (SPEC §7.3).
pub const SOURCES_IN_FLIGHT: usize = 4;
/// Review postings asked at once, and applications made at once (each waits for a browser
/// session from the process's pool, whatever this says).
const DECIDE_CONCURRENCY: usize = 16;
const APPLY_CONCURRENCY: usize = 2;

/// What the apply kind calls, shared by the process's jobs.
pub struct Clients {
    boards: Boards,
    browsers: Browsers,
    keyring: Option<Keyring>,
    /// Answers form questions the profile does not, when `llm.base_url` is set.
    llm: Option<Llm>,
    /// Where résumés are written for the browser's file input.
    scratch: PathBuf,
}

impl Clients {
    pub fn new(settings: &Settings) -> Result<Clients, String> {
        let boards = Boards::new(
            &settings.greenhouse_base_url,
            &settings.lever_base_url,
            &settings.ashby_base_url,
            settings.api_timeout,
        )?;
        let llm = Llm::from_settings(settings)?;
        Ok(Clients {
            llm,
            boards,
            browsers: Browsers::new(settings.browser.clone()),
            keyring: settings
                .secrets_key
                .as_ref()
                .map(|k| Keyring::new(k, &settings.previous_secrets_keys)),
            scratch: std::env::temp_dir().join(format!("drover-apply-{}", std::process::id())),
        })
    }
}

/// One board's outcome in discovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    pub source: Source,
    pub postings: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A posting after scoring, as the state carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub posting: Posting,
    pub scored: Scored,
    /// The ids of the same job on other boards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<String>,
    /// Set when an earlier job of the user applied to it: why it is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub already: Option<String>,
}

/// A review's outcome (the `decide` map's output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decided {
    pub posting_id: String,
    /// `approve`, `reject` or `skipped` (`review: skip`).
    pub decision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default)]
    pub timed_out: bool,
}

/// An application's outcome (the `apply` map's output).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub posting_id: String,
    /// 1 or 2 (0: nothing was tried).
    pub tier: u8,
    /// `applied, manual, failed, unknown, skipped, capped`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<String>,
    /// What was filled in, by field (the evidence of what was submitted).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// The artifact holding the page at the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover_letter: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub postings: u64,
    pub duplicates: u64,
    pub apply: u64,
    pub review: u64,
    pub skip: u64,
    pub approved: u64,
    pub rejected: u64,
    pub applied: u64,
    pub manual: u64,
    pub failed: u64,
    pub unknown: u64,
    pub skipped: u64,
    pub capped: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyState {
    pub config: ApplyConfig,
    /// The profile as the job read it at its start.
    pub profile: Option<Profile>,
    pub sources: Vec<SourceReport>,
    /// Discovered postings, until dedup; then empty.
    pub found: Vec<Posting>,
    /// The postings considered, scored, in report order.
    pub entries: Vec<Entry>,
    pub counts: Counts,
}

fn permanent(message: impl Into<String>) -> JobError {
    JobError::Permanent(message.into())
}

/// The `apply` kind.
pub fn kind(settings: &Settings) -> Result<GraphKind<ApplyState>, String> {
    let clients = Arc::new(Clients::new(settings)?);
    let c = clients.clone();
    let discovery_step = move |ctx: StepContext, state: ApplyState| {
        let c = c.clone();
        async move { discovery(&ctx, &c, state).await }
    };
    let decide = MapStep::new(
        |state: &ApplyState| {
            state
                .entries
                .iter()
                .filter(|e| e.scored.band == Band::Review && e.already.is_none())
                .map(|e| json!({"posting": e.posting, "scored": e.scored}))
                .collect()
        },
        |ctx, _i, item| async move { review(&ctx, item).await },
    )
    .concurrency(DECIDE_CONCURRENCY)
    .fold(|state: &mut ApplyState, _i, output| {
        if let Ok(d) = serde_json::from_value::<Decided>(output) {
            match d.decision.as_str() {
                "approve" => state.counts.approved += 1,
                _ => state.counts.rejected += 1,
            }
        }
    });
    let c = clients.clone();
    let apply = MapStep::over_outputs(
        "decide",
        |state: &ApplyState, decided| {
            let approved: std::collections::HashSet<String> = decided
                .into_iter()
                .filter_map(|o| serde_json::from_value::<Decided>(o).ok())
                .filter(|d| d.decision == "approve")
                .map(|d| d.posting_id)
                .collect();
            state
                .entries
                .iter()
                .filter(|e| e.already.is_none())
                .filter(|e| {
                    e.scored.band == Band::Apply
                        || (e.scored.band == Band::Review && approved.contains(&e.posting.id))
                })
                .map(|e| json!({"posting": e.posting, "duplicates": e.duplicates}))
                .collect()
        },
        move |ctx, _i, item| {
            let c = c.clone();
            async move { apply_one(&ctx, &c, item).await }
        },
    )
    .concurrency(APPLY_CONCURRENCY)
    .retry_items(2, std::time::Duration::from_secs(2))
    .skip_failed_items()
    .fold(|state: &mut ApplyState, _i, output| {
        if let Ok(a) = serde_json::from_value::<Applied>(output) {
            let counts = &mut state.counts;
            match a.outcome.as_str() {
                "applied" => counts.applied += 1,
                "manual" => counts.manual += 1,
                "unknown" => counts.unknown += 1,
                "skipped" => counts.skipped += 1,
                "capped" => counts.capped += 1,
                _ => counts.failed += 1,
            }
        }
    });
    let c_score = clients.clone();
    let graph = Graph::new()
        .task("discovery", discovery_step)
        .task("dedup", |ctx: StepContext, state: ApplyState| async move {
            dedup_step(&ctx, state).await
        })
        .task("score", move |ctx: StepContext, state: ApplyState| {
            let c = c_score.clone();
            async move { score_step(&ctx, &c, state).await }
        })
        .map("decide", decide)
        .map("apply", apply)
        .task("report", |ctx: StepContext, state: ApplyState| async move {
            super::report::write(&ctx, state).await
        });
    Ok(GraphKind::new(NAME, graph, |job| {
        let config = ApplyConfig::from_job(&job.config)
            .map_err(|e| permanent(format!("{}: {}", e.field, e.message)))?;
        Ok(ApplyState {
            config,
            profile: None,
            sources: Vec::new(),
            found: Vec::new(),
            entries: Vec::new(),
            counts: Counts::default(),
        })
    })
    .policy(|_| CheckpointPolicy {
        every_items: Some(1),
        ..CheckpointPolicy::default()
    })
    .validate_job(|_goal, config| ApplyConfig::from_job(config).map(|_| ()))
    .result(result)
    .max_attempts(5))
}

/// The config schema `GET /v1/kinds` shows.
pub fn schema() -> Value {
    config_schema()
}

/// The job's result.
pub fn result(state: &ApplyState) -> Value {
    json!({
        "user_id": state.config.user_id,
        "counts": state.counts,
        "sources": state.sources,
    })
}

async fn discovery(
    ctx: &StepContext,
    c: &Clients,
    mut state: ApplyState,
) -> Result<ApplyState, JobError> {
    ctx.progress(|p| p.stage = Some("discovery".into())).await?;
    let user = &state.config.user_id;
    let stored = ctx
        .store()
        .profile(user)
        .await
        .map_err(|e| JobError::Transient(format!("reading profile `{user}`: {e}")))?
        .ok_or_else(|| {
            permanent(format!(
                "config.user_id: no profile `{user}` (PUT /v1/profiles/{user} first)"
            ))
        })?;
    let profile = stored.profile;
    let sources: Vec<Source> = if state.config.sources.is_empty() {
        profile
            .sources
            .iter()
            .map(|s| {
                serde_json::from_value(json!({"type": s.kind, "board": s.board}))
                    .map_err(|e| permanent(format!("the profile's sources: {e}")))
            })
            .collect::<Result<_, _>>()?
    } else {
        state.config.sources.clone()
    };
    if sources.is_empty() {
        return Err(permanent(
            "config.sources: none given, and the profile names none either",
        ));
    }
    let found = discover(&c.boards, &sources, SOURCES_IN_FLIGHT).await;
    let mut failed = 0;
    state.sources.clear();
    state.found.clear();
    for d in found {
        let report = match d.result {
            Ok(postings) => {
                let n = postings.len() as u64;
                state.found.extend(postings);
                SourceReport {
                    source: d.source,
                    postings: n,
                    error: None,
                }
            }
            Err(err) => {
                failed += 1;
                let message = err.to_string();
                ctx.log(format!(
                    "source {} `{}` failed: {message}",
                    d.source.kind.name(),
                    d.source.board
                ))
                .await?;
                SourceReport {
                    source: d.source,
                    postings: 0,
                    error: Some(message),
                }
            }
        };
        state.sources.push(report);
    }
    if failed == state.sources.len() {
        return Err(JobError::Transient(format!(
            "every source failed ({failed}); the first: {}",
            state.sources[0].error.clone().unwrap_or_default()
        )));
    }
    let errors: Vec<String> = state
        .sources
        .iter()
        .filter_map(|s| {
            s.error
                .as_ref()
                .map(|e| format!("{} {}: {e}", s.source.kind.name(), s.source.board))
        })
        .collect();
    let total = state.found.len() as u64;
    ctx.progress(move |p| {
        for e in errors {
            p.push_error(e);
        }
        p.metrics.insert("postings_found".into(), json!(total));
    })
    .await?;
    state.profile = Some(profile);
    Ok(state)
}

async fn dedup_step(ctx: &StepContext, mut state: ApplyState) -> Result<ApplyState, JobError> {
    ctx.progress(|p| p.stage = Some("dedup".into())).await?;
    let deduped = dedup(std::mem::take(&mut state.found));
    let mut duplicates: HashMap<String, Vec<String>> = HashMap::new();
    for d in &deduped.duplicates {
        duplicates
            .entry(d.kept_id.clone())
            .or_default()
            .push(d.id.clone());
    }
    state.counts.duplicates = deduped.duplicates.len() as u64;
    let mut kept = deduped.kept;
    // The newest first; undated last, by id, so the order does not depend on the boards'.
    kept.sort_by(|a, b| {
        b.date_posted
            .cmp(&a.date_posted)
            .then_with(|| a.id.cmp(&b.id))
    });
    kept.truncate(state.config.max_postings);
    state.entries = kept
        .into_iter()
        .map(|posting| Entry {
            duplicates: duplicates.remove(&posting.id).unwrap_or_default(),
            posting,
            scored: Scored {
                total: 0,
                breakdown: Default::default(),
                band: Band::Skip,
                skip_reason: None,
            },
            already: None,
        })
        .collect();
    state.counts.postings = state.entries.len() as u64;
    Ok(state)
}

/// The scoring part of a profile.
pub fn criteria(profile: &Profile) -> Criteria {
    Criteria {
        titles: profile.titles.clone(),
        exclude_titles: profile.exclude_titles.clone(),
        companies: profile.companies.clone(),
        avoid_companies: profile.avoid_companies.clone(),
        locations: profile.locations.clone(),
        remote_ok: profile.remote_ok,
        job_types: profile.job_types.clone(),
        min_salary: profile.min_salary.map(|s| s as f64),
        salary_currency: None,
        experience_years: profile.experience_years,
    }
}

/// Greenhouse states a structured salary only on a job's own page of its API
/// (`pay_input_ranges`): read it for the postings whose list entry gave none, four at a time.
/// A page that cannot be read leaves the posting as it was (its text's salary, or none).
async fn greenhouse_salaries(c: &Clients, entries: &mut [Entry]) {
    let wanted: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.posting.site == Site::Greenhouse && e.posting.max_amount.is_none())
        .map(|(i, _)| i)
        .collect();
    let boards = &c.boards;
    let found: Vec<(usize, Option<super::posting::Salary>)> =
        stream::iter(wanted.into_iter().map(|i| {
            (
                i,
                entries[i].posting.board.clone(),
                entries[i].posting.native_id.clone(),
            )
        }))
        .map(|(i, board, id)| async move {
            let salary = boards
                .questions(&board, &id)
                .await
                .ok()
                .and_then(|form| form.salary)
                .and_then(|s| s.to_salary());
            (i, salary)
        })
        .buffered(SOURCES_IN_FLIGHT)
        .collect()
        .await;
    for (i, salary) in found {
        if let Some(salary) = salary {
            entries[i].posting.set_salary(salary);
        }
    }
}

async fn score_step(
    ctx: &StepContext,
    c: &Clients,
    mut state: ApplyState,
) -> Result<ApplyState, JobError> {
    ctx.progress(|p| p.stage = Some("score".into())).await?;
    greenhouse_salaries(c, &mut state.entries).await;
    let profile = state
        .profile
        .as_ref()
        .ok_or_else(|| permanent("the profile was not read"))?;
    let scorer = Scorer::new(&criteria(profile))
        .map_err(|e| permanent(format!("profile {}: {}", e.field, e.message)))?;
    let user = state.config.user_id.clone();
    let store = ctx.store();
    let job = ctx.job().id;
    let counts = &mut state.counts;
    (counts.apply, counts.review, counts.skip) = (0, 0, 0);
    for entry in &mut state.entries {
        entry.scored = scorer.score(&entry.posting);
        // Descriptions were for scoring; the state carries the rest.
        entry.posting.description = String::new();
        match entry.scored.band {
            Band::Apply => counts.apply += 1,
            Band::Review => counts.review += 1,
            Band::Skip => counts.skip += 1,
        }
        if entry.scored.band == Band::Skip {
            continue;
        }
        for id in std::iter::once(&entry.posting.id).chain(&entry.duplicates) {
            let earlier = store
                .application(&user, id)
                .await
                .map_err(|e| JobError::Transient(format!("the applications ledger: {e}")))?;
            if let Some(a) = earlier.filter(|a| a.job_id != job) {
                entry.already = Some(format!(
                    "{} by job {} on {}",
                    match a.outcome {
                        Outcome::Applied => "applied to",
                        Outcome::Manual => "handed over (tier 2)",
                        Outcome::Unknown => "submitted with an unknown outcome",
                        Outcome::Claimed => "being applied to",
                        Outcome::Failed => "tried",
                    },
                    a.job_id,
                    a.claimed_at.format("%Y-%m-%d")
                ));
                break;
            }
        }
    }
    Ok(state)
}

/// One review: a gate, or skipped.
async fn review(ctx: &StepContext, item: Value) -> Result<Value, JobError> {
    let posting: Posting = serde_json::from_value(item["posting"].clone())
        .map_err(|e| permanent(format!("a review item: {e}")))?;
    let config = ApplyConfig::from_job(ctx.config())
        .map_err(|e| permanent(format!("{}: {}", e.field, e.message)))?;
    if config.review == Review::Skip {
        return to_value(&Decided {
            posting_id: posting.id,
            decision: "skipped".into(),
            note: None,
            timed_out: false,
        });
    }
    let key = gate_key(&posting.id);
    let deadline = Utc::now()
        + chrono::Duration::from_std(config.review_timeout)
            .unwrap_or_else(|_| chrono::Duration::hours(24));
    let gate = NewGate {
        key: key.clone(),
        prompt: format!(
            "Apply to {} at {} ({})? Score {}.",
            posting.title,
            posting.company,
            if posting.location.is_empty() {
                "location not stated"
            } else {
                &posting.location
            },
            item["scored"]["total"]
        ),
        context: json!({
            "posting": posting,
            "scored": item["scored"],
            "user_id": config.user_id,
        }),
        decisions: Some(vec![json!("approve"), json!("reject")]),
        schema: None,
        deadline: Some(deadline),
        default: Some(json!("reject")),
    };
    let decisions = ctx.wait(vec![gate]).await?;
    let decision = decisions
        .decision(&key)
        .and_then(Value::as_str)
        .unwrap_or("reject")
        .to_string();
    let note = decisions.gate(&key).and_then(|g| g.note.clone());
    to_value(&Decided {
        posting_id: posting.id,
        decision,
        note,
        timed_out: decisions.timed_out(&key),
    })
}

/// A gate key for a posting: `[A-Za-z0-9._:-]{1,128}`.
pub fn gate_key(posting_id: &str) -> String {
    let safe: String = posting_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    format!("review:{safe}")
}

fn to_value<T: Serialize>(v: &T) -> Result<Value, JobError> {
    serde_json::to_value(v).map_err(|e| permanent(format!("an output: {e}")))
}

fn transient(what: &str) -> impl Fn(drover_queue::StoreError) -> JobError + '_ {
    move |e| JobError::Transient(format!("{what}: {e}"))
}

/// One application: the ledger and the caps, then tier 1 or tier 2.
async fn apply_one(ctx: &StepContext, c: &Clients, item: Value) -> Result<Value, JobError> {
    let posting: Posting = serde_json::from_value(item["posting"].clone())
        .map_err(|e| permanent(format!("an apply item: {e}")))?;
    let config = ApplyConfig::from_job(ctx.config())
        .map_err(|e| permanent(format!("{}: {}", e.field, e.message)))?;
    let user = config.user_id.clone();
    let store = ctx.store();
    let job = ctx.job().id;
    let profile = store
        .profile(&user)
        .await
        .map_err(transient("reading the profile"))?
        .ok_or_else(|| permanent(format!("the profile `{user}` was deleted")))?
        .profile;
    let mut out = Applied {
        posting_id: posting.id.clone(),
        ..Applied::default()
    };
    ctx.progress(|p| {
        p.stage = Some("apply".into());
        p.current_item = Some(posting.id.clone());
    })
    .await?;

    let tier1_possible = config.tier1
        && matches!(posting.site, Site::Greenhouse | Site::Lever)
        && form_url(&posting).is_some();
    let resume = if tier1_possible {
        store
            .resume_file(&user)
            .await
            .map_err(transient("reading the résumé"))?
    } else {
        None
    };
    let tier2_reason = if !config.tier1 {
        Some("tier 1 is off for this job (tier1: false)".to_string())
    } else if !tier1_possible {
        Some(format!(
            "{} postings have no supported hosted form",
            posting.site.name()
        ))
    } else if resume.is_none() {
        Some("the profile has no résumé (PUT /v1/profiles/{user_id}/resume)".to_string())
    } else {
        None
    };

    // The ledger: the posting is this user's once, across jobs, under the caps.
    let claim = store
        .claim_application(&user, &posting.id, job, profile.caps, Utc::now())
        .await
        .map_err(transient("the applications ledger"))?;
    match claim {
        Claim::Claimed => {}
        Claim::Already { job_id, .. } if job_id == job => {
            // This job's own claim, from a run that stopped midway: the effect ledger knows
            // whether the submit happened.
        }
        Claim::Already {
            job_id, outcome, ..
        } => {
            out.outcome = "skipped".into();
            out.reason = Some(format!("already {} by job {job_id}", outcome.as_str()));
            return to_value(&out);
        }
        Claim::Capped { which, until } if tier2_reason.is_none() => {
            return match which {
                CapKind::Daily => Err(ctx.snooze_until(
                    until,
                    format!(
                        "the daily cap of {} applications for {user} is reached",
                        profile.caps.daily
                    ),
                )),
                CapKind::Monthly => {
                    out.outcome = "capped".into();
                    out.reason = Some(format!(
                        "the monthly cap of {} applications is reached until {}",
                        profile.caps.monthly,
                        until.format("%Y-%m-%d")
                    ));
                    to_value(&out)
                }
            };
        }
        Claim::Capped { .. } => {
            // Tier 2 does not count against the caps: the link and a letter, unrecorded.
        }
    }

    if let Some(reason) = tier2_reason {
        return tier2(ctx, &profile, &posting, out, reason, Some(&user)).await;
    }
    let resume = resume.ok_or_else(|| permanent("the résumé went missing"))?;
    let attempt = tier1_attempt(ctx, c, &profile, &user, &posting, &resume).await;
    match attempt {
        Ok(done) => {
            let mut out = out;
            out.tier = 1;
            out.fields = done.fields;
            out.screenshot = done.screenshot;
            match done.result {
                Tier1::Applied(confirmation) => {
                    settle(ctx, &user, &posting.id, Outcome::Applied).await?;
                    out.outcome = "applied".into();
                    out.confirmation = Some(confirmation);
                    to_value(&out)
                }
                Tier1::Blocked(blocker) => {
                    tier2(
                        ctx,
                        &profile,
                        &posting,
                        out,
                        blocker.to_string(),
                        Some(&user),
                    )
                    .await
                }
                Tier1::Refused(message) => {
                    settle(ctx, &user, &posting.id, Outcome::Failed).await?;
                    out.outcome = "failed".into();
                    out.reason = Some(message);
                    to_value(&out)
                }
                Tier1::Unconfirmed(message) => {
                    settle(ctx, &user, &posting.id, Outcome::Unknown).await?;
                    out.outcome = "unknown".into();
                    out.reason = Some(format!("{message}; not submitted again"));
                    to_value(&out)
                }
                Tier1::Unknown => {
                    settle(ctx, &user, &posting.id, Outcome::Unknown).await?;
                    out.outcome = "unknown".into();
                    out.reason = Some(
                        "an earlier run clicked submit and stopped before the page answered; \
                         not submitted again"
                            .into(),
                    );
                    to_value(&out)
                }
            }
        }
        Err(err) => Err(err),
    }
}

async fn settle(
    ctx: &StepContext,
    user: &str,
    posting: &str,
    outcome: Outcome,
) -> Result<(), JobError> {
    ctx.store()
        .settle_application(user, posting, outcome, Utc::now())
        .await
        .map_err(transient("settling the application"))?;
    Ok(())
}

/// The hosted form's address.
fn form_url(posting: &Posting) -> Option<&str> {
    match posting.site {
        Site::Lever => posting.apply_url.as_deref().or(Some(&posting.job_url)),
        _ => Some(posting.job_url.as_str()),
    }
    .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
}

enum Tier1 {
    Applied(String),
    Blocked(Blocker),
    Refused(String),
    /// Submitted, and the page did not say how it went.
    Unconfirmed(String),
    Unknown,
}

struct Tier1Done {
    result: Tier1,
    fields: BTreeMap<String, String>,
    screenshot: Option<String>,
}

/// Tier 1 in a pooled browser: fill, then submit through the effect ledger. A submit an
/// earlier run recorded (or began: then its outcome is unknown) is answered from the ledger
/// without opening a browser.
async fn tier1_attempt(
    ctx: &StepContext,
    c: &Clients,
    profile: &Profile,
    user: &str,
    posting: &Posting,
    resume: &drover_queue::profile::Resume,
) -> Result<Tier1Done, JobError> {
    let effect = format!("apply:{}", posting.id);
    let mut done = Tier1Done {
        result: Tier1::Unknown,
        fields: BTreeMap::new(),
        screenshot: None,
    };
    if ctx.effect_begun(&effect) {
        let recorded = ctx
            .effect_once(&effect, || async {
                Err::<Submitted, _>(permanent("a begun submit is never performed again"))
            })
            .await?;
        done.result = match recorded {
            Once::Done(submitted) => submitted_result(submitted),
            Once::Unknown => Tier1::Unknown,
        };
        return Ok(done);
    }
    let url = form_url(posting).ok_or_else(|| permanent("the posting has no form"))?;
    let resume_path = write_resume(c, user, posting, resume)?;
    let session = c
        .browsers
        .session(user)
        .await
        .map_err(|e| JobError::Transient(e.to_string()))?;
    let outcome = async {
        add_cookies(ctx, c, &session, user, posting, url).await?;
        let links = profile.links.clone();
        let who = Applicant {
            name: &profile.name,
            email: &profile.email,
            phone: profile.phone.as_deref().unwrap_or(""),
            location: profile.location.as_deref().unwrap_or(""),
            links: &links,
            answers: &profile.answers,
            resume: &resume_path,
        };
        let answerer = c.llm.as_ref().map(|llm| LlmAnswerer {
            llm,
            profile,
            posting,
        });
        let answerer = answerer.as_ref().map(|a| a as &dyn tier1::Answerer);
        let filled = match tier1::fill(session.client(), url, &who, answerer).await {
            Ok(Ok(filled)) => filled,
            Ok(Err(blocker)) => return Ok((Tier1::Blocked(blocker), BTreeMap::new())),
            Err(err) => return Err(JobError::Transient(err.to_string())),
        };
        let fields = filled.fields.clone();
        let client = session.client();
        let once = ctx
            .effect_once(&effect, || async {
                tier1::submit(client, &filled)
                    .await
                    .map_err(|e| JobError::Transient(e.to_string()))
            })
            .await?;
        let result = match once {
            Once::Done(submitted) => submitted_result(submitted),
            Once::Unknown => Tier1::Unknown,
        };
        Ok::<_, JobError>((result, fields))
    }
    .await;
    let failed = !matches!(outcome, Ok((Tier1::Applied(_), _)));
    if failed {
        done.screenshot = screenshot(ctx, &session, posting).await;
    }
    match &outcome {
        Ok(_) => session.done().await,
        Err(_) => session.discard().await,
    }
    if let Some(dir) = resume_path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let (result, fields) = outcome?;
    done.result = result;
    done.fields = fields;
    Ok(done)
}

fn submitted_result(submitted: Submitted) -> Tier1 {
    match submitted {
        Submitted::Applied { confirmation } => Tier1::Applied(confirmation),
        Submitted::Blocked { blocker } => Tier1::Blocked(blocker),
        Submitted::Refused { message } => Tier1::Refused(message),
        Submitted::Unconfirmed { message } => Tier1::Unconfirmed(message),
    }
}

/// The page as it is, as an artifact; `None` when the browser cannot take it.
async fn screenshot(ctx: &StepContext, session: &Session, posting: &Posting) -> Option<String> {
    let png = session.client().screenshot().await.ok()?;
    let name = format!("screenshot-{}.png", artifact_safe(&posting.id));
    ctx.artifact(&name, "image/png", png).await.ok()?;
    Some(name)
}

/// The résumé where the browser's file input can read it (the WebDriver's host is this
/// one: a spawned chromedriver, or an external one on the same machine).
///
/// One file per application: Chromium refuses to send an upload whose file changed after it
/// was chosen (`ERR_UPLOAD_FILE_CHANGED`, and no request leaves the page), so two
/// applications of one user must never rewrite the same file under each other.
fn write_resume(
    c: &Clients,
    user: &str,
    posting: &Posting,
    resume: &drover_queue::profile::Resume,
) -> Result<PathBuf, JobError> {
    let dir = c
        .scratch
        .join(artifact_safe(user))
        .join(artifact_safe(&posting.id));
    std::fs::create_dir_all(&dir)
        .map_err(|e| JobError::Transient(format!("{}: {e}", dir.display())))?;
    let name = std::path::Path::new(&resume.info.filename)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "resume.pdf".into());
    let path = dir.join(name);
    std::fs::write(&path, &resume.data)
        .map_err(|e| JobError::Transient(format!("{}: {e}", path.display())))?;
    Ok(path)
}

/// The user's stored session for the posting's site, if any, put into the browser: cookies
/// can only be set for the page's own site, so the form's origin is opened first.
async fn add_cookies(
    ctx: &StepContext,
    c: &Clients,
    session: &Session,
    user: &str,
    posting: &Posting,
    url: &str,
) -> Result<(), JobError> {
    let site = posting.site.name();
    let Some(sealed) = ctx
        .store()
        .session(user, site)
        .await
        .map_err(transient("reading the stored session"))?
    else {
        return Ok(());
    };
    let keyring = c.keyring.as_ref().ok_or_else(|| {
        permanent(format!(
            "a {site} session is stored for {user} but no secrets key is configured \
             (secrets.key or secrets.key_file)"
        ))
    })?;
    let cookies = keyring
        .open_cookies(user, site, &sealed.blob)
        .map_err(|e| permanent(format!("the stored {site} session of {user}: {e}")))?;
    let client = session.client();
    let origin = reqwest::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .map_err(|e| permanent(format!("the form URL: {e}")))?;
    client
        .goto(&origin)
        .await
        .map_err(|e| JobError::Transient(e.to_string()))?;
    for cookie in cookies.as_json().as_array().into_iter().flatten() {
        let name = cookie["name"].as_str().unwrap_or_default().to_string();
        let value = cookie["value"].as_str().unwrap_or_default().to_string();
        let mut c = fantoccini::cookies::Cookie::new(name, value);
        if let Some(domain) = cookie["domain"].as_str() {
            c.set_domain(domain.to_string());
        }
        c.set_path(cookie["path"].as_str().unwrap_or("/").to_string());
        let secure = cookie["secure"].as_bool().unwrap_or(false);
        c.set_secure(secure);
        c.set_http_only(cookie["httpOnly"].as_bool().unwrap_or(false));
        c.set_same_site(match cookie["sameSite"].as_str() {
            Some("Strict") => cookie::SameSite::Strict,
            Some("None") if secure => cookie::SameSite::None,
            _ => cookie::SameSite::Lax,
        });
        // A cookie the browser refuses is left out; its value is never in the message.
        if client.add_cookie(c).await.is_err() {
            ctx.log(format!(
                "a {site} session cookie was refused by the browser"
            ))
            .await?;
        }
    }
    Ok(())
}

/// Tier 2: the link and a cover letter; the ledger records it as `manual` (not counted).
async fn tier2(
    ctx: &StepContext,
    profile: &Profile,
    posting: &Posting,
    mut out: Applied,
    reason: String,
    recorded_for: Option<&str>,
) -> Result<Value, JobError> {
    let name = format!("cover-letter-{}.txt", artifact_safe(&posting.id));
    ctx.artifact(
        &name,
        "text/plain; charset=utf-8",
        cover_letter(profile, posting).into_bytes(),
    )
    .await?;
    if let Some(user) = recorded_for {
        settle(ctx, user, &posting.id, Outcome::Manual).await?;
    }
    out.tier = 2;
    out.outcome = "manual".into();
    out.reason = Some(reason);
    out.cover_letter = Some(name);
    to_value(&out)
}

/// A cover letter from the profile and the posting.
pub fn cover_letter(profile: &Profile, posting: &Posting) -> String {
    let matching = profile
        .titles
        .iter()
        .find(|t| posting.title.to_lowercase().contains(&t.to_lowercase()))
        .cloned()
        .unwrap_or_else(|| posting.title.clone());
    let years = profile
        .experience_years
        .map(|y| format!(" with {y} years of experience"))
        .unwrap_or_default();
    let links: Vec<String> = profile
        .links
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    format!(
        "Dear {company} hiring team,\n\n\
         I am applying for the {title} role{location}. I work as a {matching}{years}, and the \
         role matches what I do and want to do next.\n\n\
         I would welcome the chance to talk about it.\n\n\
         Kind regards,\n{name}\n{email}{phone}\n{links}\n\n\
         Apply here: {url}\n",
        company = posting.company,
        title = posting.title,
        location = if posting.location.is_empty() {
            String::new()
        } else {
            format!(" ({})", posting.location)
        },
        name = profile.name,
        email = profile.email,
        phone = profile
            .phone
            .as_deref()
            .map(|p| format!("\n{p}"))
            .unwrap_or_default(),
        links = links.join("\n"),
        url = form_url(posting).unwrap_or(&posting.job_url),
    )
}

fn artifact_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
