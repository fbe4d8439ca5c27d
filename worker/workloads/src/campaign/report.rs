//! `report.csv`: one row per lead, rebuilt from the outreach step's stored outputs (never
//! appended to), so a resumed or retried report is the same file.

use drover_queue::MAX_ITEM_OUTPUTS_PER_READ;
use drover_worker::graph::StepContext;
use drover_worker::JobError;

use super::{row_of, CampaignState, Row};

pub const COLUMNS: &[&str] = &[
    "login",
    "name",
    "email",
    "email_source",
    "repo",
    "last_active_at",
    "personalization",
    "subject",
    "send_status",
    "message_id",
    "error",
    "body",
];

pub async fn write(ctx: &StepContext, mut state: CampaignState) -> Result<CampaignState, JobError> {
    ctx.progress(|p| p.stage = Some("report".into())).await?;
    // The leads, for the rows of items that failed for good (they have no output).
    let leads = super::stored_leads(ctx).await?;
    let mut out = csv::Writer::from_writer(Vec::with_capacity(leads.len() * 256));
    let csv_error = |e: csv::Error| JobError::Permanent(format!("report.csv: {e}"));
    out.write_record(COLUMNS).map_err(csv_error)?;
    let mut next = 0u64;
    let mut missing = 0u64;
    let mut from = 0u64;
    loop {
        let page = ctx
            .item_outputs("outreach", from, MAX_ITEM_OUTPUTS_PER_READ)
            .await?;
        let Some(last) = page.last().map(|o| o.index) else {
            break;
        };
        for output in page {
            // An item that failed for good has no output: its lead's row says so.
            while next < output.index {
                write_failed(&mut out, &leads, next).map_err(csv_error)?;
                missing += 1;
                next += 1;
            }
            let row: Row = serde_json::from_slice(&output.output)
                .map_err(|e| JobError::Permanent(format!("an outreach output: {e}")))?;
            let lead = leads.get(output.index as usize).ok_or_else(|| {
                JobError::Permanent(format!("outreach item {} has no lead", output.index))
            })?;
            let row = super::joined(row, lead);
            write_row(&mut out, &row).map_err(csv_error)?;
            next = output.index + 1;
        }
        from = last + 1;
    }
    while (next as usize) < leads.len() {
        write_failed(&mut out, &leads, next).map_err(csv_error)?;
        missing += 1;
        next += 1;
    }
    // A report that runs again (a retried step) counts from the outputs afresh.
    state.counts.failed = state.counts.failed.max(missing);
    let data = out
        .into_inner()
        .map_err(|e| JobError::Permanent(format!("report.csv: {e}")))?;
    ctx.artifact("report.csv", "text/csv", data).await?;
    Ok(state)
}

fn write_failed(
    out: &mut csv::Writer<Vec<u8>>,
    leads: &[super::Lead],
    index: u64,
) -> Result<(), csv::Error> {
    match leads.get(index as usize) {
        Some(lead) => {
            let mut row = row_of(lead);
            row.send_status = "failed".into();
            if row.error.is_empty() {
                row.error = "the lead failed after its retries (see the job's events)".into();
            }
            write_row(out, &row)
        }
        None => Ok(()),
    }
}

fn write_row(out: &mut csv::Writer<Vec<u8>>, row: &Row) -> Result<(), csv::Error> {
    out.write_record([
        &row.login,
        &row.name,
        &row.email,
        &row.email_source,
        &row.repo,
        &row.last_active_at,
        &row.personalization,
        &row.subject,
        &row.send_status,
        &row.message_id,
        &row.error,
        &row.body,
    ])
}
