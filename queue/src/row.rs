//! Reading stored rows back into the model. Both SQL backends use the same column names
//! and Rust-side types, so one macro serves both row types.

use crate::job::{Job, JobFailure};
use crate::operator::Settle;
use crate::status::JobStatus;
use crate::store::StoreError;

/// Builds a [`Job`] from a row holding every column of `jobs`.
macro_rules! job_from_row {
    ($row:expr) => {{
        use sqlx::Row as _;
        let row = $row;
        (|| -> Result<$crate::job::Job, $crate::store::StoreError> {
            let status: String = row.try_get("status")?;
            let error: Option<sqlx::types::Json<$crate::job::JobFailure>> = row.try_get("error")?;
            let artifacts: sqlx::types::Json<Vec<String>> = row.try_get("artifacts")?;
            let config: sqlx::types::Json<serde_json::Value> = row.try_get("config")?;
            let progress: Option<sqlx::types::Json<serde_json::Value>> = row.try_get("progress")?;
            let result: Option<sqlx::types::Json<serde_json::Value>> = row.try_get("result")?;
            let lease_expires_at: Option<i64> = row.try_get("lease_expires_at")?;
            let started_at: Option<i64> = row.try_get("started_at")?;
            let finished_at: Option<i64> = row.try_get("finished_at")?;
            let secs = |v: Option<i64>| v.map(|s| s.max(0) as u64);
            Ok($crate::job::Job {
                id: row.try_get("id")?,
                queue: row.try_get("queue")?,
                kind: row.try_get("kind")?,
                goal: row.try_get("goal")?,
                config: config.0,
                priority: $crate::store::priority_of(row.try_get("priority")?),
                created_by: row.try_get("created_by")?,
                idempotency_key: row.try_get("idempotency_key")?,
                run_at: $crate::job::from_millis(row.try_get("run_at")?),
                attempt: row.try_get::<i32, _>("attempt")?.max(0) as u32,
                max_attempts: row.try_get::<i32, _>("max_attempts")?.max(0) as u32,
                timeouts: $crate::job::Timeouts {
                    job_timeout: secs(row.try_get("job_timeout")?),
                    step_timeout: secs(row.try_get("step_timeout")?),
                    api_timeout: secs(row.try_get("api_timeout")?),
                },
                status: $crate::row::parse_status(&status)?,
                progress: progress.map(|p| p.0),
                result: result.map(|r| r.0),
                error: error.map(|e| e.0),
                artifacts: artifacts.0,
                lease_epoch: row.try_get("lease_epoch")?,
                lease_owner: row.try_get("lease_owner")?,
                lease_expires_at: lease_expires_at.map($crate::job::from_millis),
                pause_requested: row.try_get("pause_requested")?,
                cancel_requested: row.try_get("cancel_requested")?,
                event_seq: row.try_get("event_seq")?,
                created_at: $crate::job::from_millis(row.try_get("created_at")?),
                started_at: started_at.map($crate::job::from_millis),
                updated_at: $crate::job::from_millis(row.try_get("updated_at")?),
                finished_at: finished_at.map($crate::job::from_millis),
            })
        })()
    }};
}

/// Builds a [`crate::store::Checkpoint`] from a `checkpoints` row (either SQL backend).
macro_rules! checkpoint_from_row {
    ($row:expr) => {{
        use sqlx::Row as _;
        let row = $row;
        (|| -> Result<$crate::store::Checkpoint, $crate::store::StoreError> {
            let state: Vec<u8> = row.try_get("state")?;
            Ok($crate::store::Checkpoint {
                job_id: row.try_get("job_id")?,
                seq: row.try_get("seq")?,
                step: row.try_get("step")?,
                size: state.len(),
                state,
                compressed: row.try_get("compressed")?,
                created_at: $crate::job::from_millis(row.try_get("created_at")?),
            })
        })()
    }};
}

/// Builds a [`crate::store::Event`] from a `job_events` row (either SQL backend).
macro_rules! event_from_row {
    ($row:expr) => {{
        use sqlx::Row as _;
        let row = $row;
        (|| -> Result<$crate::store::Event, $crate::store::StoreError> {
            let data: sqlx::types::Json<serde_json::Value> = row.try_get("data")?;
            Ok($crate::store::Event {
                job_id: row.try_get("job_id")?,
                seq: row.try_get("seq")?,
                kind: row.try_get("kind")?,
                data: data.0,
                created_at: $crate::job::from_millis(row.try_get("created_at")?),
            })
        })()
    }};
}

pub(crate) fn parse_status(s: &str) -> Result<JobStatus, StoreError> {
    s.parse()
        .map_err(|e: crate::status::UnknownStatus| StoreError::Backend(e.to_string()))
}

/// The data of the `status` event a settled job gets.
pub(crate) fn status_event(job: &Job, settle: Option<&Settle>) -> serde_json::Value {
    let mut data = serde_json::json!({
        "status": job.status,
        "attempt": job.attempt,
    });
    if let Some(owner) = &job.lease_owner {
        data["worker"] = owner.clone().into();
    }
    if let Some(settle) = settle {
        data["reason"] = settle.reason().into();
    }
    if job.status == JobStatus::Queued && job.run_at > chrono::Utc::now() {
        data["run_at"] = serde_json::to_value(job.run_at).unwrap_or_default();
    }
    if let Some(JobFailure { kind, message }) = &job.error {
        if matches!(job.status, JobStatus::Failed | JobStatus::Queued) {
            data["error"] = serde_json::json!({ "kind": kind, "message": message });
        }
    }
    data
}
