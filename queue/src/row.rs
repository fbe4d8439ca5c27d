//! Reading stored rows back into the model. Both SQL backends use the same column names
//! and Rust-side types, so one macro serves both row types.

use crate::job::{Job, JobFailure};
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

/// Builds a [`crate::store::WorkerInfo`] from a `workers` row. `$int` is the backend's type
/// for the `slots` and `busy` columns (PostgreSQL `int`, SQLite `INTEGER`).
macro_rules! worker_from_row {
    ($row:expr, $int:ty) => {{
        use sqlx::Row as _;
        let row = $row;
        (|| -> Result<$crate::store::WorkerInfo, $crate::store::StoreError> {
            Ok($crate::store::WorkerInfo {
                id: row.try_get("id")?,
                host: row.try_get("host")?,
                pid: row.try_get::<i64, _>("pid")? as u32,
                slots: row.try_get::<$int, _>("slots")? as u32,
                busy: row.try_get::<$int, _>("busy")? as u32,
                started_at: $crate::job::from_millis(row.try_get("started_at")?),
                last_heartbeat: $crate::job::from_millis(row.try_get("last_heartbeat")?),
            })
        })()
    }};
}

/// Builds a [`crate::store::Effect`] from an `effects` row (either SQL backend).
macro_rules! effect_from_row {
    ($row:expr) => {{
        use sqlx::Row as _;
        let row = $row;
        (|| -> Result<$crate::store::Effect, $crate::store::StoreError> {
            let result: sqlx::types::Json<serde_json::Value> = row.try_get("result")?;
            Ok($crate::store::Effect {
                key: row.try_get("key")?,
                result: result.0,
                epoch: row.try_get("epoch")?,
                created_at: $crate::job::from_millis(row.try_get("created_at")?),
            })
        })()
    }};
}

/// Builds a [`crate::store::ArtifactMeta`] from an `artifacts` row read without its data,
/// with a `size` column of the backend's integer type `$int` (`length(data)`).
macro_rules! artifact_meta_from_row {
    ($row:expr, $int:ty) => {{
        use sqlx::Row as _;
        let row = $row;
        (|| -> Result<$crate::store::ArtifactMeta, $crate::store::StoreError> {
            Ok($crate::store::ArtifactMeta {
                name: row.try_get("name")?,
                content_type: row.try_get("content_type")?,
                size: row.try_get::<$int, _>("size")? as usize,
                created_at: $crate::job::from_millis(row.try_get("created_at")?),
            })
        })()
    }};
}

/// Builds a [`crate::store::Artifact`] from a whole `artifacts` row (either SQL backend).
macro_rules! artifact_from_row {
    ($row:expr) => {{
        use sqlx::Row as _;
        let row = $row;
        (|| -> Result<$crate::store::Artifact, $crate::store::StoreError> {
            let data: Vec<u8> = row.try_get("data")?;
            Ok($crate::store::Artifact {
                meta: $crate::store::ArtifactMeta {
                    name: row.try_get("name")?,
                    content_type: row.try_get("content_type")?,
                    size: data.len(),
                    created_at: $crate::job::from_millis(row.try_get("created_at")?),
                },
                data,
            })
        })()
    }};
}

/// Folds the rows of the `queues` table (`name`, `paused`) and the grouped counts of
/// unfinished jobs (`queue`, `status`, `priority`, `n`, `oldest`) into per-queue stats as of
/// `now` (either SQL backend).
macro_rules! queue_stats_from_rows {
    ($paused:expr, $counts:expr, $now:expr) => {{
        use sqlx::Row as _;
        (|| -> Result<Vec<$crate::store::QueueStats>, $crate::store::StoreError> {
            let mut stats = $crate::queue_stats::QueueStatsBuilder::default();
            for row in $paused {
                stats.paused(row.try_get("name")?, row.try_get("paused")?);
            }
            for row in $counts {
                stats.add(
                    row.try_get("queue")?,
                    row.try_get("status")?,
                    row.try_get("priority")?,
                    row.try_get::<i64, _>("n")? as u64,
                    row.try_get("oldest")?,
                );
            }
            Ok(stats.finish($now))
        })()
    }};
}

pub(crate) fn parse_status(s: &str) -> Result<JobStatus, StoreError> {
    s.parse()
        .map_err(|e: crate::status::UnknownStatus| StoreError::Backend(e.to_string()))
}

/// The data of the `status` event a settled job gets.
pub(crate) fn status_event(job: &Job, reason: Option<&str>) -> serde_json::Value {
    let mut data = serde_json::json!({
        "status": job.status,
        "attempt": job.attempt,
    });
    if let Some(owner) = &job.lease_owner {
        data["worker"] = owner.clone().into();
    }
    if let Some(reason) = reason {
        data["reason"] = reason.into();
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

/// What storing `artifact` at `created_at` makes of the job's artifact names (`names`, the
/// job's list; a new name is appended) and the metadata its `artifact` event carries.
pub(crate) fn stored_artifact(
    mut names: Vec<String>,
    artifact: crate::store::NewArtifact,
    created_at: chrono::DateTime<chrono::Utc>,
) -> (Vec<String>, crate::store::ArtifactMeta) {
    if !names.contains(&artifact.name) {
        names.push(artifact.name.clone());
    }
    let meta = crate::store::ArtifactMeta {
        name: artifact.name,
        content_type: artifact.content_type,
        size: artifact.data.len(),
        created_at,
    };
    (names, meta)
}
