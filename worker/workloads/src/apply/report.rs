//! `applications.csv`: one row per posting after dedup (SPEC §7.3), rebuilt from the state
//! and the `decide` and `apply` steps' stored outputs, so a resumed report is the same file.

use std::collections::HashMap;

use drover_queue::MAX_ITEM_OUTPUTS_PER_READ;
use drover_worker::graph::StepContext;
use drover_worker::JobError;
use serde::de::DeserializeOwned;

use super::kind::{Applied, ApplyState, Decided, Entry};
use super::score::Band;

pub const NAME: &str = "applications.csv";

pub const COLUMNS: &[&str] = &[
    "posting_id",
    "site",
    "title",
    "company",
    "location",
    "job_url",
    "score",
    "title_points",
    "company_points",
    "location_points",
    "job_type_points",
    "salary_points",
    "experience_points",
    "band",
    "decision",
    "outcome",
    "reason",
    "tier",
    "confirmation",
    "screenshot",
    "cover_letter",
    "duplicates",
];

/// Every stored output of map step `step`, by the posting id it names.
async fn outputs<T: DeserializeOwned>(
    ctx: &StepContext,
    step: &str,
    id: impl Fn(&T) -> String,
) -> Result<HashMap<String, T>, JobError> {
    let mut found = HashMap::new();
    let mut from = 0;
    loop {
        let page = ctx
            .item_outputs(step, from, MAX_ITEM_OUTPUTS_PER_READ)
            .await?;
        let Some(last) = page.last().map(|o| o.index) else {
            break;
        };
        for output in page {
            let value: T = serde_json::from_slice(&output.output)
                .map_err(|e| JobError::Permanent(format!("a {step} output: {e}")))?;
            found.insert(id(&value), value);
        }
        from = last + 1;
    }
    Ok(found)
}

/// The decision and outcome columns of a posting.
pub fn decision_and_outcome(
    entry: &Entry,
    decided: Option<&Decided>,
    applied: Option<&Applied>,
) -> (String, String, String) {
    if let Some(why) = &entry.already {
        return ("skip".into(), "skipped".into(), why.clone());
    }
    match entry.scored.band {
        Band::Skip => (
            "skip".into(),
            "skipped".into(),
            entry
                .scored
                .skip_reason
                .clone()
                .unwrap_or_else(|| format!("score {} is below 45", entry.scored.total)),
        ),
        band => {
            let decision = match (band, decided) {
                (Band::Apply, _) => "apply".to_string(),
                (_, Some(d)) if d.timed_out => format!("{} (timed out)", d.decision),
                (_, Some(d)) => d.decision.clone(),
                (_, None) => "pending".to_string(),
            };
            match (decision.as_str(), applied) {
                (_, Some(a)) => (
                    decision,
                    a.outcome.clone(),
                    a.reason.clone().unwrap_or_default(),
                ),
                ("skipped", None) => (
                    decision,
                    "skipped".into(),
                    "review postings are skipped (review: skip)".into(),
                ),
                (d, None) if d.starts_with("reject") => (
                    decision.clone(),
                    "rejected".into(),
                    decided
                        .and_then(|d| d.note.clone())
                        .unwrap_or_else(|| "rejected in review".into()),
                ),
                (_, None) => (
                    decision,
                    "failed".into(),
                    "the application failed and was skipped (see the job's errors)".into(),
                ),
            }
        }
    }
}

pub async fn write(ctx: &StepContext, state: ApplyState) -> Result<ApplyState, JobError> {
    ctx.progress(|p| p.stage = Some("report".into())).await?;
    let decided: HashMap<String, Decided> =
        outputs(ctx, "decide", |d: &Decided| d.posting_id.clone()).await?;
    let applied: HashMap<String, Applied> =
        outputs(ctx, "apply", |a: &Applied| a.posting_id.clone()).await?;
    let mut out = csv::Writer::from_writer(Vec::with_capacity(state.entries.len() * 300));
    let csv_error = |e: csv::Error| JobError::Permanent(format!("{NAME}: {e}"));
    out.write_record(COLUMNS).map_err(csv_error)?;
    for entry in &state.entries {
        let p = &entry.posting;
        let b = &entry.scored.breakdown;
        let a = applied.get(&p.id);
        let (decision, outcome, reason) = decision_and_outcome(entry, decided.get(&p.id), a);
        let n = |v: u32| v.to_string();
        out.write_record([
            p.id.as_str(),
            p.site.name(),
            &p.title,
            &p.company,
            &p.location,
            &p.job_url,
            &n(entry.scored.total),
            &n(b.title),
            &n(b.company),
            &n(b.location),
            &n(b.job_type),
            &n(b.salary),
            &n(b.experience),
            entry.scored.band.name(),
            &decision,
            &outcome,
            &reason,
            &a.map(|a| a.tier.to_string()).unwrap_or_default(),
            a.and_then(|a| a.confirmation.as_deref()).unwrap_or(""),
            a.and_then(|a| a.screenshot.as_deref()).unwrap_or(""),
            a.and_then(|a| a.cover_letter.as_deref()).unwrap_or(""),
            &entry.duplicates.join(" "),
        ])
        .map_err(csv_error)?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| JobError::Permanent(format!("{NAME}: {e}")))?;
    ctx.artifact(NAME, "text/csv; charset=utf-8", bytes).await?;
    Ok(state)
}
