//! The embedded default store: one SQLite file in WAL mode.
//!
//! All writes go through a single pooled connection (SQLite has one writer at a time; one
//! connection avoids lock contention inside the process) in `BEGIN IMMEDIATE` transactions,
//! so read-then-write sequences cannot hit a stale snapshot. Reads use their own pool.
//! Other processes on the same file (the CLI, say) wait on the busy timeout.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{Executor, Row};

use crate::job::{from_millis, now_millis, to_millis, Job, JobId, NewJob};
use crate::migrate;
use crate::notifier::{LocalNotifier, Notifier, Signal};
use crate::operator::Settle;
use crate::queue_stats::QueueStatsBuilder;
use crate::row::status_event;
use crate::status::JobStatus;
use crate::store::*;
use crate::transitions::Hold;

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Rows per multi-row statement: 5 parameters a row stays well under SQLite's 32,766.
const EVENT_ROWS_PER_INSERT: usize = 1_000;

/// Jobs per multi-row INSERT: 16 parameters a row.
const JOB_ROWS_PER_INSERT: usize = 1_000;

/// A new job ready to be inserted.
struct NewRow {
    id: JobId,
    job: NewJob,
    fingerprint: String,
    run_at: i64,
    max_attempts: u32,
}

/// What `admit` made of a new job.
enum Admitted {
    /// Answered already: a stored job with the same key and body, or a keyed job inserted.
    Done(Enqueued),
    /// To be inserted with the batch's other unkeyed jobs.
    Pending(NewRow),
}

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    notifier: Arc<LocalNotifier>,
    options: StoreOptions,
    path: PathBuf,
}

impl SqliteStore {
    /// Open (creating if needed) the database file at `path`.
    pub async fn open(path: impl AsRef<Path>, options: StoreOptions) -> StoreResult<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000");
        // Two processes creating the same file at once race to switch it to WAL; the loser
        // gets SQLITE_BUSY without waiting on the busy timeout. Retry for a while.
        let mut tries = 0;
        let writer = loop {
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(connect.clone())
                .await
                .map_err(StoreError::from);
            match pool {
                Err(err) if err.is_transient() && tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => break other?,
            }
        };
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect.read_only(true))
            .await?;
        Ok(SqliteStore {
            writer,
            reader,
            notifier: Arc::new(LocalNotifier::default()),
            options,
            path,
        })
    }

    /// Open from a `sqlite://path` (or `sqlite:path`) URL.
    pub async fn connect(url: &str, options: StoreOptions) -> StoreResult<Self> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::Backend(format!("not an sqlite URL: {url}")))?;
        let path = path.split('?').next().unwrap_or(path);
        Self::open(path, options).await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn fetch_job(conn: &mut SqliteConnection, id: JobId) -> StoreResult<Option<Job>> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(|r| job_from_row!(r)).transpose()
    }

    /// The job behind `fence`, if the fence still holds; `Fenced` or `NotFound` otherwise.
    async fn fenced_job(conn: &mut SqliteConnection, fence: Fence) -> StoreResult<Job> {
        let job = Self::fetch_job(conn, fence.job)
            .await?
            .ok_or(StoreError::NotFound(fence.job))?;
        if job.lease_epoch != fence.epoch || job.status != JobStatus::Running {
            return Err(StoreError::Fenced {
                job: fence.job,
                epoch: fence.epoch,
            });
        }
        Ok(job)
    }

    async fn push_event(
        conn: &mut SqliteConnection,
        job: JobId,
        seq: i64,
        kind: &str,
        data: &Value,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO job_events (job_id, seq, kind, data, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(job)
        .bind(seq)
        .bind(kind)
        .bind(Json(data))
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Appends one `status` event per job with multi-row INSERTs: a batch claim or
    /// completion costs a statement per 1,000 jobs, not one per job.
    async fn push_status_events(
        conn: &mut SqliteConnection,
        events: &[(JobId, i64, Value)],
        now: i64,
    ) -> StoreResult<()> {
        for chunk in events.chunks(EVENT_ROWS_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO job_events (job_id, seq, kind, data, created_at) ",
            );
            insert.push_values(chunk, |mut row, (job, seq, data)| {
                row.push_bind(*job)
                    .push_bind(*seq)
                    .push("'status'")
                    .push_bind(Json(data))
                    .push_bind(now);
            });
            insert.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Bump the job's event counter and append an event in the same transaction.
    async fn append(
        conn: &mut SqliteConnection,
        job: JobId,
        kind: &str,
        data: &Value,
        now: i64,
    ) -> StoreResult<i64> {
        let seq: i64 = sqlx::query_scalar(
            "UPDATE jobs SET event_seq = event_seq + 1 WHERE id = ? RETURNING event_seq",
        )
        .bind(job)
        .fetch_one(&mut *conn)
        .await?;
        Self::push_event(conn, job, seq, kind, data, now).await?;
        Ok(seq)
    }

    /// Write `job`'s status-bearing columns and append its `status` event.
    async fn save_status(
        conn: &mut SqliteConnection,
        job: &Job,
        settle: Option<&Settle>,
        now: i64,
    ) -> StoreResult<()> {
        let finished = job.status.is_terminal().then_some(now);
        sqlx::query(
            "UPDATE jobs SET status = ?, attempt = ?, run_at = ?, result = ?, error = ?, \
             lease_owner = ?, lease_expires_at = ?, pause_requested = ?, cancel_requested = ?, \
             updated_at = ?, finished_at = coalesce(finished_at, ?) WHERE id = ?",
        )
        .bind(job.status.as_str())
        .bind(job.attempt as i32)
        .bind(to_millis(job.run_at))
        .bind(job.result.as_ref().map(Json))
        .bind(job.error.as_ref().map(Json))
        .bind(&job.lease_owner)
        .bind(job.lease_expires_at.map(to_millis))
        .bind(job.pause_requested)
        .bind(job.cancel_requested)
        .bind(now)
        .bind(finished)
        .bind(job.id)
        .execute(&mut *conn)
        .await?;
        Self::append(conn, job.id, "status", &status_event(job, settle), now).await?;
        Ok(())
    }

    /// Checks a new job against its idempotency key and the queue's depth limit. A keyed
    /// job is inserted at once (a later job of the batch with the same key must see it);
    /// an unkeyed one is returned to be inserted with the rest (`insert_rows`).
    async fn admit(
        &self,
        conn: &mut SqliteConnection,
        new: NewJob,
        now: i64,
        depth: &mut HashMap<String, u64>,
    ) -> StoreResult<Admitted> {
        new.validate()?;
        let fingerprint = new.fingerprint();
        if let Some(key) = &new.idempotency_key {
            let existing = sqlx::query("SELECT * FROM jobs WHERE idempotency_key = ?")
                .bind(key)
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(row) = existing {
                let stored: Option<String> = row.try_get("fingerprint")?;
                let job = job_from_row!(&row)?;
                return if stored.as_deref() == Some(fingerprint.as_str()) {
                    Ok(Admitted::Done(Enqueued::Existing(job)))
                } else {
                    Err(StoreError::IdempotencyConflict {
                        key: key.clone(),
                        existing: job.id,
                    })
                };
            }
        }
        let queue = new.queue_name().to_string();
        if let Some(max) = self.options.max_queue_size {
            let held = match depth.get(&queue) {
                Some(n) => *n,
                None => {
                    let n: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM jobs WHERE queue = ? \
                         AND status IN ('queued', 'running', 'paused')",
                    )
                    .bind(&queue)
                    .fetch_one(&mut *conn)
                    .await?;
                    n as u64
                }
            };
            if held >= max {
                return Err(StoreError::QueueFull { queue, max });
            }
            depth.insert(queue.clone(), held + 1);
        }
        let row = NewRow {
            id: uuid::Uuid::now_v7(),
            max_attempts: new
                .max_attempts
                .unwrap_or(self.options.default_max_attempts()),
            run_at: new.run_at.map(to_millis).unwrap_or(now),
            fingerprint,
            job: new,
        };
        if row.job.idempotency_key.is_none() {
            return Ok(Admitted::Pending(row));
        }
        let mut created = Self::insert_rows(conn, std::slice::from_ref(&row), now).await?;
        created
            .pop()
            .map(|job| Admitted::Done(Enqueued::Created(job)))
            .ok_or_else(|| StoreError::Backend(format!("job {} was not stored", row.id)))
    }

    /// Inserts new jobs, up to `JOB_ROWS_PER_INSERT` a statement; answers them as stored.
    async fn insert_rows(
        conn: &mut SqliteConnection,
        rows: &[NewRow],
        now: i64,
    ) -> StoreResult<Vec<Job>> {
        let secs = |v: Option<u64>| v.map(|s| s as i64);
        let mut stored = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(JOB_ROWS_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO jobs (id, queue, kind, goal, config, priority, created_by, \
                 idempotency_key, fingerprint, run_at, max_attempts, job_timeout, step_timeout, \
                 api_timeout, status, event_seq, created_at, updated_at) ",
            );
            insert.push_values(chunk, |mut b, row| {
                let new = &row.job;
                b.push_bind(row.id)
                    .push_bind(new.queue_name())
                    .push_bind(&new.kind)
                    .push_bind(&new.goal)
                    .push_bind(Json(&new.config))
                    .push_bind(new.priority.rank())
                    .push_bind(&new.created_by)
                    .push_bind(&new.idempotency_key)
                    .push_bind(&row.fingerprint)
                    .push_bind(row.run_at)
                    .push_bind(row.max_attempts as i32)
                    .push_bind(secs(new.timeouts.job_timeout))
                    .push_bind(secs(new.timeouts.step_timeout))
                    .push_bind(secs(new.timeouts.api_timeout))
                    .push("'queued'")
                    .push("1")
                    .push_bind(now)
                    .push_bind(now);
            });
            insert.push(" RETURNING *");
            for row in insert.build().fetch_all(&mut *conn).await? {
                stored.push(job_from_row!(&row)?);
            }
        }
        Ok(stored)
    }

    /// Tells this process's event followers that `job`'s log grew (after the commit).
    fn announce(&self, job: &Job) {
        self.notifier.publish(Signal::Event {
            job: job.id,
            seq: job.event_seq,
        });
    }

    fn wake(&self, results: &[Enqueued]) {
        let mut queues: Vec<&str> = results
            .iter()
            .filter(|r| r.is_created())
            .map(|r| r.job().queue.as_str())
            .collect();
        queues.sort_unstable();
        queues.dedup();
        for queue in queues {
            self.notifier.publish(Signal::JobsAvailable {
                queue: Some(queue.to_string()),
            });
        }
    }

    async fn set_queue_paused(&self, name: &str, paused: bool) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO queues (name, paused, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(paused)
        .bind(now_millis())
        .execute(&self.writer)
        .await?;
        if !paused {
            self.notifier.publish(Signal::JobsAvailable {
                queue: Some(name.to_string()),
            });
        }
        Ok(())
    }
}

fn worker_from_row(row: &SqliteRow) -> StoreResult<WorkerInfo> {
    Ok(WorkerInfo {
        id: row.try_get("id")?,
        host: row.try_get("host")?,
        pid: row.try_get::<i64, _>("pid")? as u32,
        slots: row.try_get::<i64, _>("slots")? as u32,
        busy: row.try_get::<i64, _>("busy")? as u32,
        started_at: from_millis(row.try_get("started_at")?),
        last_heartbeat: from_millis(row.try_get("last_heartbeat")?),
    })
}

#[async_trait]
impl Transact for SqliteStore {
    async fn load(&self, id: JobId) -> StoreResult<Loaded> {
        let mut tx = self.begin().await?;
        let job = Self::fetch_job(&mut tx, id)
            .await?
            .ok_or(StoreError::NotFound(id))?;
        Ok(Loaded {
            job,
            now: from_millis(now_millis()),
            hold: Hold::Sqlite(tx),
        })
    }

    async fn save(&self, loaded: Loaded, write: Write) -> StoreResult<Option<Job>> {
        let Hold::Sqlite(mut tx) = loaded.hold else {
            return Err(StoreError::Backend(
                "an SQLite save needs its transaction".into(),
            ));
        };
        let now = to_millis(loaded.now);
        let new = &write.job;
        let status_changed = loaded.job.status != new.status;
        if status_changed {
            Self::save_status(&mut tx, new, write.reason.as_ref(), now).await?;
        } else {
            sqlx::query(
                "UPDATE jobs SET pause_requested = ?, cancel_requested = ?, lease_owner = ?, \
                 lease_expires_at = ?, updated_at = ? WHERE id = ?",
            )
            .bind(new.pause_requested)
            .bind(new.cancel_requested)
            .bind(&new.lease_owner)
            .bind(new.lease_expires_at.map(to_millis))
            .bind(now)
            .bind(new.id)
            .execute(&mut *tx)
            .await?;
        }
        let job = Self::fetch_job(&mut tx, new.id)
            .await?
            .ok_or(StoreError::NotFound(new.id))?;
        tx.commit().await?;
        if status_changed {
            self.announce(&job);
        }
        match write.wake {
            Wake::Nobody => {}
            Wake::Queue => self.notifier.publish(Signal::JobsAvailable {
                queue: Some(job.queue.clone()),
            }),
            Wake::Control => self.notifier.publish(Signal::Control { job: job.id }),
        }
        Ok(Some(job))
    }

    async fn expired_leases(&self, limit: usize) -> StoreResult<Vec<JobId>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at < ? \
             ORDER BY lease_expires_at LIMIT ?",
        )
        .bind(now_millis())
        .bind(limit.min(10_000) as i64)
        .fetch_all(&self.reader)
        .await?)
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Enqueued>> {
        for job in &jobs {
            job.validate()?;
        }
        let mut tx = self.begin().await?;
        let now = now_millis();
        let mut depth = Default::default();
        // In submission order; `None` until its multi-row INSERT answers.
        let mut results: Vec<Option<Enqueued>> = Vec::with_capacity(jobs.len());
        let (mut pending, mut pending_at) = (Vec::new(), Vec::new());
        for job in jobs {
            match self.admit(&mut tx, job, now, &mut depth).await? {
                Admitted::Done(enqueued) => results.push(Some(enqueued)),
                Admitted::Pending(row) => {
                    pending_at.push(results.len());
                    results.push(None);
                    pending.push(row);
                }
            }
        }
        let mut stored: HashMap<JobId, Job> = Self::insert_rows(&mut tx, &pending, now)
            .await?
            .into_iter()
            .map(|job| (job.id, job))
            .collect();
        for (at, row) in pending_at.into_iter().zip(&pending) {
            let job = stored
                .remove(&row.id)
                .ok_or_else(|| StoreError::Backend(format!("job {} was not stored", row.id)))?;
            results[at] = Some(Enqueued::Created(job));
        }
        let results = results
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| StoreError::Backend("enqueue bookkeeping out of step".into()))?;
        let events: Vec<_> = results
            .iter()
            .filter_map(|r| match r {
                Enqueued::Created(job) => Some((job.id, job.event_seq, status_event(job, None))),
                Enqueued::Existing(_) => None,
            })
            .collect();
        Self::push_status_events(&mut tx, &events, now).await?;
        tx.commit().await?;
        self.wake(&results);
        Ok(results)
    }

    async fn get(&self, id: JobId) -> StoreResult<Job> {
        let mut conn = self.reader.acquire().await?;
        Self::fetch_job(&mut conn, id)
            .await?
            .ok_or(StoreError::NotFound(id))
    }

    async fn list(&self, filter: &JobFilter) -> StoreResult<JobPage> {
        let limit = filter.page_size();
        let rows = sqlx::query(
            "SELECT * FROM jobs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2) \
             AND (?3 IS NULL OR created_by = ?3) AND (?4 IS NULL OR id < ?4) \
             ORDER BY id DESC LIMIT ?5",
        )
        .bind(filter.status.map(|s| s.as_str()))
        .bind(&filter.kind)
        .bind(&filter.created_by)
        .bind(filter.before)
        .bind(limit as i64 + 1)
        .fetch_all(&self.reader)
        .await?;
        let jobs = rows
            .iter()
            .map(|r| job_from_row!(r))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(JobPage::from_newest(jobs, limit))
    }

    async fn claim(&self, request: &ClaimRequest) -> StoreResult<Vec<Lease>> {
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let now = now_millis();
        let expires = now.saturating_add(millis(request.lease_ttl));
        // Each filter reads an index in claim order and stops at `limit` (INDEXED BY: the
        // planner otherwise picked `jobs_by_status` and sorted every queued job). Several
        // queues need a sort of their due jobs.
        let pick = match request.queues.len() {
            0 => "FROM jobs INDEXED BY jobs_ready WHERE status = 'queued'",
            1 => "FROM jobs INDEXED BY jobs_by_queue WHERE status = 'queued' AND queue = ?4",
            _ => {
                "FROM jobs WHERE status = 'queued' \
                  AND queue IN (SELECT value FROM json_each(?4))"
            }
        };
        let sql = format!(
            "UPDATE jobs SET status = 'running', attempt = attempt + 1, \
             lease_epoch = lease_epoch + 1, lease_owner = ?1, lease_expires_at = ?2, \
             pause_requested = 0, cancel_requested = 0, \
             started_at = coalesce(started_at, ?3), updated_at = ?3, event_seq = event_seq + 1 \
             WHERE id IN (SELECT id {pick} AND run_at <= ?3 \
               AND queue NOT IN (SELECT name FROM queues WHERE paused) \
               ORDER BY priority, run_at, id LIMIT ?5) \
             RETURNING *"
        );
        let queues = match request.queues.as_slice() {
            [queue] => queue.clone(),
            queues => serde_json::to_string(queues).unwrap_or_else(|_| "[]".into()),
        };
        let rows = sqlx::query(&sql)
            .bind(&request.worker_id)
            .bind(expires)
            .bind(now)
            .bind(&queues)
            .bind(claim_limit(request))
            .fetch_all(&mut *tx)
            .await?;
        let mut leases = Vec::with_capacity(rows.len());
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let job = job_from_row!(row)?;
            events.push((job.id, job.event_seq, status_event(&job, None)));
            leases.push(Lease {
                epoch: job.lease_epoch,
                expires_at: from_millis(expires),
                job,
            });
        }
        Self::push_status_events(&mut tx, &events, now).await?;
        tx.commit().await?;
        for lease in &leases {
            self.announce(&lease.job);
        }
        leases.sort_by(|a, b| {
            (a.job.priority, a.job.run_at, a.job.id).cmp(&(b.job.priority, b.job.run_at, b.job.id))
        });
        Ok(leases)
    }

    async fn renew(&self, fences: &[Fence], ttl: Duration) -> StoreResult<Vec<Renewal>> {
        if fences.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let now = now_millis();
        let expires = now.saturating_add(millis(ttl));
        let mut out = Vec::with_capacity(fences.len());
        for fence in fences {
            let row = sqlx::query(
                "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND lease_epoch = ? \
                 AND status = 'running' RETURNING pause_requested, cancel_requested",
            )
            .bind(expires)
            .bind(fence.job)
            .bind(fence.epoch)
            .fetch_optional(&mut *tx)
            .await?;
            out.push(match row {
                Some(row) => Renewal::Held {
                    pause_requested: row.try_get("pause_requested")?,
                    cancel_requested: row.try_get("cancel_requested")?,
                },
                None => Renewal::Lost,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn complete_many(&self, completions: &[Completion]) -> StoreResult<Vec<Completed>> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        // One write transaction (one commit) for the batch, a statement per 1,000 jobs:
        // each row is updated only under its own fence.
        let mut tx = self.begin().await?;
        let now = now_millis();
        let mut landed = HashSet::with_capacity(completions.len());
        let mut events = Vec::with_capacity(completions.len());
        for chunk in completions.chunks(EVENT_ROWS_PER_INSERT) {
            let mut update =
                sqlx::QueryBuilder::<sqlx::Sqlite>::new("WITH c(id, epoch, result) AS (");
            update.push_values(chunk, |mut row, c| {
                row.push_bind(c.fence.job)
                    .push_bind(c.fence.epoch)
                    .push_bind(Json(&c.result));
            });
            update.push(
                ") UPDATE jobs SET status = 'completed', result = c.result, \
                 lease_expires_at = NULL, updated_at = ",
            );
            update
                .push_bind(now)
                .push(", finished_at = ")
                .push_bind(now)
                .push(
                    ", event_seq = event_seq + 1 FROM c WHERE jobs.id = c.id \
                     AND jobs.lease_epoch = c.epoch AND jobs.status = 'running' \
                     RETURNING jobs.id, jobs.lease_epoch, jobs.event_seq, jobs.attempt, \
                     jobs.lease_owner",
                );
            for row in update.build().fetch_all(&mut *tx).await? {
                let id: JobId = row.try_get("id")?;
                let epoch: i64 = row.try_get("lease_epoch")?;
                let attempt: i64 = row.try_get("attempt")?;
                let worker: Option<String> = row.try_get("lease_owner")?;
                let data = json!({ "status": "completed", "attempt": attempt, "worker": worker });
                events.push((id, row.try_get::<i64, _>("event_seq")?, data));
                landed.insert((id, epoch));
            }
        }
        Self::push_status_events(&mut tx, &events, now).await?;
        // Rarely some did not land: a retried batch whose first try committed still
        // answers `Done` for them; only the others were fenced.
        let mut earlier = HashSet::new();
        for c in completions {
            if landed.contains(&(c.fence.job, c.fence.epoch)) {
                continue;
            }
            let done: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM jobs WHERE id = ? AND lease_epoch = ? AND status = 'completed'",
            )
            .bind(c.fence.job)
            .bind(c.fence.epoch)
            .fetch_optional(&mut *tx)
            .await?;
            if done.is_some() {
                earlier.insert((c.fence.job, c.fence.epoch));
            }
        }
        tx.commit().await?;
        for (job, seq, _) in &events {
            self.notifier.publish(Signal::Event {
                job: *job,
                seq: *seq,
            });
        }
        Ok(completions
            .iter()
            .map(|c| {
                let fence = (c.fence.job, c.fence.epoch);
                if landed.contains(&fence) || earlier.contains(&fence) {
                    Completed::Done
                } else {
                    Completed::Fenced
                }
            })
            .collect())
    }
}

#[async_trait]
impl RunLog for SqliteStore {
    async fn checkpoint(
        &self,
        fence: Fence,
        checkpoint: NewCheckpoint,
        keep: usize,
    ) -> StoreResult<i64> {
        let mut tx = self.begin().await?;
        let now = now_millis();
        Self::fenced_job(&mut tx, fence).await?;
        let seq: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(seq), 0) + 1 FROM checkpoints WHERE job_id = ?",
        )
        .bind(fence.job)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO checkpoints (job_id, seq, step, state, compressed, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(fence.job)
        .bind(seq)
        .bind(&checkpoint.step)
        .bind(&checkpoint.state)
        .bind(checkpoint.compressed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM checkpoints WHERE job_id = ? AND seq <= ?")
            .bind(fence.job)
            .bind(seq - keep.max(1) as i64)
            .execute(&mut *tx)
            .await?;
        let data = json!({"seq": seq, "step": checkpoint.step, "size": checkpoint.state.len()});
        let event = Self::append(&mut tx, fence.job, "checkpoint", &data, now).await?;
        tx.commit().await?;
        self.notifier.publish(Signal::Event {
            job: fence.job,
            seq: event,
        });
        Ok(seq)
    }

    async fn latest_checkpoint(&self, id: JobId) -> StoreResult<Option<Checkpoint>> {
        let row =
            sqlx::query("SELECT * FROM checkpoints WHERE job_id = ? ORDER BY seq DESC LIMIT 1")
                .bind(id)
                .fetch_optional(&self.reader)
                .await?;
        row.as_ref()
            .map(|row| checkpoint_from_row!(row))
            .transpose()
    }

    async fn checkpoints(&self, id: JobId) -> StoreResult<Vec<Checkpoint>> {
        let rows = sqlx::query("SELECT * FROM checkpoints WHERE job_id = ? ORDER BY seq")
            .bind(id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(|row| checkpoint_from_row!(row)).collect()
    }

    async fn append_event(&self, fence: Fence, kind: &str, data: Value) -> StoreResult<i64> {
        let mut tx = self.begin().await?;
        let now = now_millis();
        Self::fenced_job(&mut tx, fence).await?;
        if kind == "progress" {
            sqlx::query("UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?")
                .bind(Json(&data))
                .bind(now)
                .bind(fence.job)
                .execute(&mut *tx)
                .await?;
        }
        let seq = Self::append(&mut tx, fence.job, kind, &data, now).await?;
        tx.commit().await?;
        self.notifier.publish(Signal::Event {
            job: fence.job,
            seq,
        });
        Ok(seq)
    }

    async fn events(&self, id: JobId, after: i64, limit: usize) -> StoreResult<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT * FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(id)
        .bind(after)
        .bind(limit.min(MAX_EVENTS_PER_READ) as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|row| event_from_row!(row)).collect()
    }

    async fn record_effect(&self, fence: Fence, key: &str, result: Value) -> StoreResult<Value> {
        let mut tx = self.begin().await?;
        Self::fenced_job(&mut tx, fence).await?;
        sqlx::query(
            "INSERT INTO effects (job_id, key, result, epoch, created_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (job_id, key) DO NOTHING",
        )
        .bind(fence.job)
        .bind(key)
        .bind(Json(&result))
        .bind(fence.epoch)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        let stored: Json<Value> =
            sqlx::query_scalar("SELECT result FROM effects WHERE job_id = ? AND key = ?")
                .bind(fence.job)
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(stored.0)
    }

    async fn effects(&self, id: JobId) -> StoreResult<Vec<Effect>> {
        let rows = sqlx::query("SELECT * FROM effects WHERE job_id = ? ORDER BY created_at, key")
            .bind(id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                let result: Json<Value> = row.try_get("result")?;
                Ok(Effect {
                    key: row.try_get("key")?,
                    result: result.0,
                    epoch: row.try_get("epoch")?,
                    created_at: from_millis(row.try_get("created_at")?),
                })
            })
            .collect()
    }

    async fn put_artifact(&self, fence: Fence, artifact: NewArtifact) -> StoreResult<ArtifactMeta> {
        let mut tx = self.begin().await?;
        let now = now_millis();
        let job = Self::fenced_job(&mut tx, fence).await?;
        sqlx::query(
            "INSERT INTO artifacts (job_id, name, content_type, data, created_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id, name) DO UPDATE SET \
             content_type = excluded.content_type, data = excluded.data, \
             created_at = excluded.created_at",
        )
        .bind(fence.job)
        .bind(&artifact.name)
        .bind(&artifact.content_type)
        .bind(&artifact.data)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let mut names = job.artifacts;
        if !names.contains(&artifact.name) {
            names.push(artifact.name.clone());
        }
        sqlx::query("UPDATE jobs SET artifacts = ?, updated_at = ? WHERE id = ?")
            .bind(Json(&names))
            .bind(now)
            .bind(fence.job)
            .execute(&mut *tx)
            .await?;
        let meta = ArtifactMeta {
            name: artifact.name,
            content_type: artifact.content_type,
            size: artifact.data.len(),
            created_at: from_millis(now),
        };
        let data = serde_json::to_value(&meta).unwrap_or_default();
        let seq = Self::append(&mut tx, fence.job, "artifact", &data, now).await?;
        tx.commit().await?;
        self.notifier.publish(Signal::Event {
            job: fence.job,
            seq,
        });
        Ok(meta)
    }

    async fn artifacts(&self, id: JobId) -> StoreResult<Vec<ArtifactMeta>> {
        let rows = sqlx::query(
            "SELECT name, content_type, length(data) AS size, created_at FROM artifacts \
             WHERE job_id = ? ORDER BY name",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ArtifactMeta {
                    name: row.try_get("name")?,
                    content_type: row.try_get("content_type")?,
                    size: row.try_get::<i64, _>("size")? as usize,
                    created_at: from_millis(row.try_get("created_at")?),
                })
            })
            .collect()
    }

    async fn artifact(&self, id: JobId, name: &str) -> StoreResult<Option<Artifact>> {
        let row = sqlx::query("SELECT * FROM artifacts WHERE job_id = ? AND name = ?")
            .bind(id)
            .bind(name)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| {
            let data: Vec<u8> = row.try_get("data")?;
            Ok(Artifact {
                meta: ArtifactMeta {
                    name: row.try_get("name")?,
                    content_type: row.try_get("content_type")?,
                    size: data.len(),
                    created_at: from_millis(row.try_get("created_at")?),
                },
                data,
            })
        })
        .transpose()
    }
}

#[async_trait]
impl Maintenance for SqliteStore {
    async fn prune(&self, retention: &Retention, limit: usize) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let now = now_millis();
        let ids: Vec<JobId> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE (status = 'completed' AND finished_at <= ?1) \
             OR (status = 'failed' AND finished_at <= ?2) \
             OR (status = 'cancelled' AND finished_at <= ?3) LIMIT ?4",
        )
        .bind(now.saturating_sub(millis(retention.completed)))
        .bind(now.saturating_sub(millis(retention.failed)))
        .bind(now.saturating_sub(millis(retention.cancelled)))
        .bind(limit.min(10_000) as i64)
        .fetch_all(&mut *tx)
        .await?;
        for id in &ids {
            for table in ["job_events", "checkpoints", "effects", "artifacts"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE job_id = ?"))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM jobs WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    async fn next_run_at(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let now = now_millis();
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT min(run_at) FROM jobs WHERE status = 'queued' AND run_at > ?",
        )
        .bind(now)
        .fetch_one(&self.reader)
        .await?;
        Ok(next.map(from_millis))
    }

    async fn pause_queue(&self, name: &str) -> StoreResult<()> {
        self.set_queue_paused(name, true).await
    }

    async fn resume_queue(&self, name: &str) -> StoreResult<()> {
        self.set_queue_paused(name, false).await
    }

    async fn queues(&self) -> StoreResult<Vec<QueueStats>> {
        let now = now_millis();
        let rows = sqlx::query(
            "SELECT queue, status, priority, count(*) AS n, \
             min(CASE WHEN status = 'queued' AND run_at <= ?1 THEN run_at END) AS oldest \
             FROM jobs WHERE status IN ('queued', 'running', 'paused') \
             GROUP BY queue, status, priority",
        )
        .bind(now)
        .fetch_all(&self.reader)
        .await?;
        let paused = sqlx::query("SELECT name, paused FROM queues")
            .fetch_all(&self.reader)
            .await?;
        let mut stats = QueueStatsBuilder::default();
        for row in &paused {
            stats.paused(row.try_get("name")?, row.try_get("paused")?);
        }
        for row in &rows {
            stats.add(
                row.try_get("queue")?,
                row.try_get("status")?,
                row.try_get("priority")?,
                row.try_get::<i64, _>("n")? as u64,
                row.try_get("oldest")?,
            );
        }
        Ok(stats.finish(now))
    }
}

#[async_trait]
impl Peers for SqliteStore {
    async fn heartbeat_worker(&self, worker: &WorkerInfo) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO workers (id, host, pid, slots, busy, started_at, last_heartbeat) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET \
             slots = excluded.slots, busy = excluded.busy, last_heartbeat = excluded.last_heartbeat",
        )
        .bind(&worker.id)
        .bind(&worker.host)
        .bind(worker.pid as i64)
        .bind(worker.slots as i64)
        .bind(worker.busy as i64)
        .bind(to_millis(worker.started_at))
        .bind(now_millis())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn remove_worker(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM workers WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn workers(&self, within: Duration) -> StoreResult<Vec<WorkerInfo>> {
        let rows = sqlx::query("SELECT * FROM workers WHERE last_heartbeat >= ? ORDER BY id")
            .bind(now_millis().saturating_sub(millis(within)))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(worker_from_row).collect()
    }

    async fn try_lead(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        let now = now_millis();
        let row = sqlx::query(
            "INSERT INTO leaders (name, holder, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leaders.holder = excluded.holder OR leaders.expires_at < ?4 \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now.saturating_add(millis(ttl)))
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.is_some())
    }

    async fn resign(&self, name: &str, holder: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM leaders WHERE name = ? AND holder = ?")
            .bind(name)
            .bind(holder)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn notifier(&self) -> Arc<dyn Notifier> {
        self.notifier.clone()
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS drover_migrations (version INTEGER PRIMARY KEY, \
             name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let applied: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM drover_migrations")
            .fetch_one(&mut *tx)
            .await?;
        let applied = applied.unwrap_or(0);
        let pending: Vec<&migrate::Migration> = migrate::SQLITE
            .iter()
            .filter(|m| m.version > applied)
            .collect();
        for m in pending {
            (&mut *tx).execute(m.sql).await?;
            sqlx::query(
                "INSERT INTO drover_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(now_millis())
            .execute(&mut *tx)
            .await?;
            tracing::info!(
                version = m.version,
                name = m.name,
                "applied sqlite migration"
            );
        }
        tx.commit().await?;
        Ok(())
    }
}
