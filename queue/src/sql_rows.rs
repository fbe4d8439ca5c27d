//! The Rust both SQL backends share around their own statements: the reads (run the
//! statement, map the rows with the shared row macros of [`crate::row`]) and the binds of a
//! status save. Each macro expands in the calling
//! backend's module, so its `include_str!("sql/…")` loads that backend's file
//! (`postgres/sql/events.sql` or `sqlite/sql/events.sql`): the statements differ (`$1` or
//! `?`, `FILTER` or `CASE`), the Rust around them does not. `$pool` is what to read from
//! (PostgreSQL's pool, SQLite's read-only pool).

/// A page of jobs, newest first (`sql/list_jobs.sql`).
macro_rules! read_job_page {
    ($pool:expr, $filter:expr) => {{
        let filter: &$crate::store::JobFilter = $filter;
        let limit = filter.page_size();
        let rows = sqlx::query(include_str!("sql/list_jobs.sql"))
            .bind(filter.status.map(|s| s.as_str()))
            .bind(&filter.kind)
            .bind(&filter.created_by)
            .bind(filter.before)
            .bind(limit as i64 + 1)
            .fetch_all($pool)
            .await?;
        let jobs = rows
            .iter()
            .map(|r| job_from_row!(r))
            .collect::<$crate::store::StoreResult<Vec<_>>>()?;
        Ok($crate::store::JobPage::from_newest(jobs, limit))
    }};
}

/// The job's newest checkpoint (`sql/latest_checkpoint.sql`).
macro_rules! read_latest_checkpoint {
    ($pool:expr, $id:expr) => {{
        let row = sqlx::query(include_str!("sql/latest_checkpoint.sql"))
            .bind($id)
            .fetch_optional($pool)
            .await?;
        row.as_ref()
            .map(|row| checkpoint_from_row!(row))
            .transpose()
    }};
}

/// The job's kept checkpoints, oldest first (`sql/checkpoints.sql`).
macro_rules! read_checkpoints {
    ($pool:expr, $id:expr) => {{
        let rows = sqlx::query(include_str!("sql/checkpoints.sql"))
            .bind($id)
            .fetch_all($pool)
            .await?;
        rows.iter().map(|row| checkpoint_from_row!(row)).collect()
    }};
}

/// The job's outputs of a map step from index `$from`, at most `$limit`
/// (`sql/item_outputs.sql`).
macro_rules! read_item_outputs {
    ($pool:expr, $id:expr, $step:expr, $from:expr, $limit:expr) => {{
        use sqlx::Row as _;
        let rows = sqlx::query(include_str!("sql/item_outputs.sql"))
            .bind($id)
            .bind($step)
            .bind(i64::try_from($from).unwrap_or(i64::MAX))
            .bind(($limit).min($crate::store::MAX_ITEM_OUTPUTS_PER_READ) as i64)
            .fetch_all($pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok($crate::store::ItemOutput {
                    step: row.try_get("step")?,
                    index: row.try_get::<i64, _>("idx")?.max(0) as u64,
                    visit: row.try_get::<i64, _>("visit")?.max(0) as u64,
                    output: row.try_get("output")?,
                })
            })
            .collect::<$crate::store::StoreResult<Vec<_>>>()
    }};
}

/// The job's events after `$after`, at most `$limit` (`sql/events.sql`).
macro_rules! read_events {
    ($pool:expr, $id:expr, $after:expr, $limit:expr) => {{
        let rows = sqlx::query(include_str!("sql/events.sql"))
            .bind($id)
            .bind($after)
            .bind(($limit).min($crate::store::MAX_EVENTS_PER_READ) as i64)
            .fetch_all($pool)
            .await?;
        rows.iter().map(|row| event_from_row!(row)).collect()
    }};
}

/// The job's effect ledger (`sql/effects.sql`).
macro_rules! read_effects {
    ($pool:expr, $id:expr) => {{
        let rows = sqlx::query(include_str!("sql/effects.sql"))
            .bind($id)
            .fetch_all($pool)
            .await?;
        rows.iter().map(|row| effect_from_row!(row)).collect()
    }};
}

/// The job's artifacts' metadata (`sql/artifacts.sql`); `$int` is the type of `length(data)`.
macro_rules! read_artifacts {
    ($pool:expr, $id:expr, $int:ty) => {{
        let rows = sqlx::query(include_str!("sql/artifacts.sql"))
            .bind($id)
            .fetch_all($pool)
            .await?;
        rows.iter()
            .map(|row| artifact_meta_from_row!(row, $int))
            .collect()
    }};
}

/// One artifact with its content (`sql/artifact.sql`).
macro_rules! read_artifact {
    ($pool:expr, $id:expr, $name:expr) => {{
        let row = sqlx::query(include_str!("sql/artifact.sql"))
            .bind($id)
            .bind($name)
            .fetch_optional($pool)
            .await?;
        row.as_ref().map(|row| artifact_from_row!(row)).transpose()
    }};
}

/// The workers whose heartbeat is newer than `$since` (the backend's bind for it:
/// PostgreSQL an age, SQLite a time); `$int` as in `worker_from_row!` (`sql/workers.sql`).
macro_rules! read_workers {
    ($pool:expr, $since:expr, $int:ty) => {{
        let rows = sqlx::query(include_str!("sql/workers.sql"))
            .bind($since)
            .fetch_all($pool)
            .await?;
        rows.iter().map(|row| worker_from_row!(row, $int)).collect()
    }};
}

/// Binds the status-bearing columns of `$job` in the order `sql/save_status.sql` takes them
/// after the backend's own leading parameters: status, attempt, run_at, result, error,
/// lease_owner, lease_expires_at, pause_requested, cancel_requested.
macro_rules! bind_status_columns {
    ($query:expr, $job:expr) => {{
        let job: &$crate::job::Job = $job;
        $query
            .bind(job.status.as_str())
            .bind(job.attempt as i32)
            .bind($crate::job::to_millis(job.run_at))
            .bind(job.result.as_ref().map(sqlx::types::Json))
            .bind(job.error.as_ref().map(sqlx::types::Json))
            .bind(&job.lease_owner)
            .bind(job.lease_expires_at.map($crate::job::to_millis))
            .bind(job.pause_requested)
            .bind(job.cancel_requested)
    }};
}

/// Applies, in the open transaction `$tx`, the migrations of `$all` newer than the last one
/// recorded: each is recorded by `sql/record_migration.sql` with its version, its name and
/// the backend's extra binds (`[…]`, SQLite's `applied_at`), then `$applied` runs with the
/// migration as `$m` (the backend's log line).
macro_rules! apply_migrations {
    ($tx:ident, $all:expr, [$($bind:expr),*], |$m:ident| $applied:expr) => {{
        use sqlx::Executor as _;
        sqlx::query(include_str!("sql/create_migrations.sql"))
            .execute(&mut *$tx)
            .await?;
        let applied: Option<i64> = sqlx::query_scalar(include_str!("sql/applied_migration.sql"))
            .fetch_one(&mut *$tx)
            .await?;
        let applied = applied.unwrap_or(0);
        for $m in $all.iter().filter(|m| m.version > applied) {
            (&mut *$tx).execute($m.sql).await?;
            sqlx::query(include_str!("sql/record_migration.sql"))
                .bind($m.version)
                .bind($m.name)
                $(.bind($bind))*
                .execute(&mut *$tx)
                .await?;
            $applied;
        }
        sqlx::query_scalar::<_, Option<i64>>(include_str!("sql/applied_migration.sql"))
            .fetch_one(&mut *$tx)
            .await?
            .unwrap_or(0)
    }};
}
