//! The fleet store: PostgreSQL, shared by any number of worker processes on any machines.
//!
//! The claim is one statement (`FOR UPDATE SKIP LOCKED`, ordered by priority, run_at, id,
//! flipping the rows to running and logging their status events). Times come from the
//! server's clock (`drover_now()`), so workers on different machines agree on lease expiry.
//! Wake-ups and control requests travel by LISTEN/NOTIFY, on channels named after the schema
//! so that many drover installations (or tests) can share one database.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Executor, Row};

use crate::job::{from_millis, to_millis, Job, JobId, NewJob};
use crate::migrate;
use crate::notifier::listen::{Channels, ListenerTask, Transport};
use crate::notifier::{LocalNotifier, Notifier, Signal};
use crate::operator::Settle;
use crate::queue_stats::QueueStatsBuilder;
use crate::row::status_event;
use crate::status::JobStatus;
use crate::store::*;
use crate::transitions::Hold;

/// The PostgreSQL store. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    schema: String,
    notifier: Arc<LocalNotifier>,
    listener: Arc<ListenerTask>,
    options: StoreOptions,
}

/// The LISTEN/NOTIFY transport of the shared listen loop ([`crate::notifier::listen`]).
struct PgTransport(PgPool);

#[async_trait]
impl Transport for PgTransport {
    type Subscription = PgListener;

    async fn subscribe(&self, channels: &Channels) -> Result<PgListener, String> {
        let mut listener = PgListener::connect_with(&self.0)
            .await
            .map_err(|e| e.to_string())?;
        listener
            .listen_all(channels.all())
            .await
            .map_err(|e| e.to_string())?;
        Ok(listener)
    }

    async fn next(listener: &mut PgListener) -> Result<Option<(String, String)>, String> {
        match listener.try_recv().await {
            Ok(Some(note)) => Ok(Some((
                note.channel().to_string(),
                note.payload().to_string(),
            ))),
            Ok(None) => Ok(None),
            Err(err) => Err(err.to_string()),
        }
    }
}

/// Channels, per schema: `jobs` (payload: queue), `control` (job id), `events`
/// (`job id:seq`, sent by a trigger on `job_events`).
fn channel(schema: &str, name: &str) -> String {
    format!("drover.{schema}.{name}")
}

impl PgStore {
    /// Connect to `postgres://…`. Extra query parameters drover reads: `schema` (default
    /// `public`) and `pool_size` (default 10). Connections are made on demand, so a
    /// database that is down now is retried later rather than failing here.
    pub async fn connect(url: &str, options: StoreOptions) -> StoreResult<Self> {
        let (base, params) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = "public".to_string();
        let mut pool_size = 10u32;
        let mut rest = Vec::new();
        for pair in params.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", value)) => schema = value.to_string(),
                Some(("pool_size", value)) => {
                    pool_size = value.parse().map_err(|_| {
                        StoreError::Backend(format!("pool_size `{value}` is not a number"))
                    })?
                }
                _ => rest.push(pair),
            }
        }
        let valid = !schema.is_empty()
            && schema.len() <= 40
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(StoreError::Backend(format!(
                "schema `{schema}` must be 1 to 40 of [a-z0-9_]"
            )));
        }
        let base = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let connect = PgConnectOptions::from_str(&base)
            .map_err(|e| StoreError::Backend(format!("bad PostgreSQL URL: {e}")))?
            .options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(connect);
        Ok(PgStore {
            pool,
            schema,
            notifier: Arc::new(LocalNotifier::default()),
            listener: Arc::new(ListenerTask::default()),
            options,
        })
    }

    /// The schema this store keeps its tables in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The underlying pool (for tests and tools that inspect the tables).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn notify(conn: &mut PgConnection, channel: &str, payload: &str) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn fetch_job(conn: &mut PgConnection, id: JobId, lock: bool) -> StoreResult<Job> {
        let sql = if lock {
            "SELECT * FROM jobs WHERE id = $1 FOR UPDATE"
        } else {
            "SELECT * FROM jobs WHERE id = $1"
        };
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound(id))?;
        job_from_row!(&row)
    }

    /// The job behind `fence`, locked, if the fence still holds.
    async fn fenced_job(conn: &mut PgConnection, fence: Fence) -> StoreResult<Job> {
        let job = Self::fetch_job(conn, fence.job, true).await?;
        if job.lease_epoch != fence.epoch || job.status != JobStatus::Running {
            return Err(StoreError::Fenced {
                job: fence.job,
                epoch: fence.epoch,
            });
        }
        Ok(job)
    }

    /// Why a fenced single-statement write matched no row: the job is gone or the fence broke.
    async fn refused(&self, fence: Fence) -> StoreError {
        let mut conn = match self.pool.acquire().await {
            Ok(conn) => conn,
            Err(err) => return err.into(),
        };
        match Self::fetch_job(&mut conn, fence.job, false).await {
            Ok(_) => StoreError::Fenced {
                job: fence.job,
                epoch: fence.epoch,
            },
            Err(err) => err,
        }
    }

    /// Write `job`'s status-bearing columns and append its `status` event; returns the row.
    async fn save_status(
        conn: &mut PgConnection,
        job: &Job,
        settle: Option<&Settle>,
    ) -> StoreResult<Job> {
        let row = sqlx::query(
            "WITH j AS (UPDATE jobs SET status = $2, attempt = $3, run_at = $4, result = $5, \
             error = $6, lease_owner = $7, lease_expires_at = $8, pause_requested = $9, \
             cancel_requested = $10, updated_at = drover_now(), \
             finished_at = CASE WHEN $11 THEN coalesce(finished_at, drover_now()) END, \
             event_seq = event_seq + 1 WHERE id = $1 RETURNING *), \
             e AS (INSERT INTO job_events (job_id, seq, kind, data, created_at) \
             SELECT id, event_seq, 'status', $12, updated_at FROM j) \
             SELECT * FROM j",
        )
        .bind(job.id)
        .bind(job.status.as_str())
        .bind(job.attempt as i32)
        .bind(to_millis(job.run_at))
        .bind(job.result.as_ref().map(Json))
        .bind(job.error.as_ref().map(Json))
        .bind(&job.lease_owner)
        .bind(job.lease_expires_at.map(to_millis))
        .bind(job.pause_requested)
        .bind(job.cancel_requested)
        .bind(job.status.is_terminal())
        .bind(Json(status_event(job, settle)))
        .fetch_one(&mut *conn)
        .await?;
        job_from_row!(&row)
    }

    async fn now(conn: &mut PgConnection) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT drover_now()")
            .fetch_one(&mut *conn)
            .await?)
    }

    async fn set_queue_paused(&self, name: &str, paused: bool) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO queues (name, paused, updated_at) VALUES ($1, $2, drover_now()) \
             ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(paused)
        .execute(&mut *tx)
        .await?;
        if !paused {
            Self::notify(&mut tx, &channel(&self.schema, "jobs"), name).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn worker_from_row(row: &PgRow) -> StoreResult<WorkerInfo> {
    Ok(WorkerInfo {
        id: row.try_get("id")?,
        host: row.try_get("host")?,
        pid: row.try_get::<i64, _>("pid")? as u32,
        slots: row.try_get::<i32, _>("slots")? as u32,
        busy: row.try_get::<i32, _>("busy")? as u32,
        started_at: from_millis(row.try_get("started_at")?),
        last_heartbeat: from_millis(row.try_get("last_heartbeat")?),
    })
}

/// The columns of a batch insert, one array per column (bound with `unnest`).
#[derive(Default)]
struct InsertColumns {
    id: Vec<uuid::Uuid>,
    queue: Vec<String>,
    kind: Vec<String>,
    goal: Vec<String>,
    config: Vec<String>,
    priority: Vec<i32>,
    created_by: Vec<Option<String>>,
    idempotency_key: Vec<Option<String>>,
    fingerprint: Vec<String>,
    run_at: Vec<Option<i64>>,
    max_attempts: Vec<i32>,
    job_timeout: Vec<Option<i64>>,
    step_timeout: Vec<Option<i64>>,
    api_timeout: Vec<Option<i64>>,
}

#[async_trait]
impl Transact for PgStore {
    async fn load(&self, id: JobId) -> StoreResult<Loaded> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT *, drover_now() AS now FROM jobs WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound(id))?;
        let now: i64 = row.try_get("now")?;
        Ok(Loaded {
            job: job_from_row!(&row)?,
            now: from_millis(now),
            hold: Hold::Postgres(tx),
        })
    }

    async fn save(&self, loaded: Loaded, write: Write) -> StoreResult<Option<Job>> {
        let Hold::Postgres(mut tx) = loaded.hold else {
            return Err(StoreError::Backend(
                "a PostgreSQL save needs its transaction".into(),
            ));
        };
        let job = if loaded.job.status != write.job.status {
            Self::save_status(&mut tx, &write.job, write.reason.as_ref()).await?
        } else {
            let row = sqlx::query(
                "UPDATE jobs SET pause_requested = $2, cancel_requested = $3, \
                 lease_owner = $4, lease_expires_at = $5, updated_at = drover_now() \
                 WHERE id = $1 RETURNING *",
            )
            .bind(write.job.id)
            .bind(write.job.pause_requested)
            .bind(write.job.cancel_requested)
            .bind(&write.job.lease_owner)
            .bind(write.job.lease_expires_at.map(to_millis))
            .fetch_one(&mut *tx)
            .await?;
            job_from_row!(&row)?
        };
        match write.wake {
            Wake::Nobody => {}
            Wake::Queue => {
                Self::notify(&mut tx, &channel(&self.schema, "jobs"), &job.queue).await?
            }
            Wake::Control => {
                Self::notify(
                    &mut tx,
                    &channel(&self.schema, "control"),
                    &job.id.to_string(),
                )
                .await?
            }
        }
        tx.commit().await?;
        Ok(Some(job))
    }

    async fn expired_leases(&self, limit: usize) -> StoreResult<Vec<JobId>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at < drover_now() \
             ORDER BY lease_expires_at LIMIT $1",
        )
        .bind(limit.min(10_000) as i64)
        .fetch_all(&self.pool)
        .await?)
    }
}

#[async_trait]
impl JobStore for PgStore {
    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Enqueued>> {
        for job in &jobs {
            job.validate()?;
        }
        let mut tx = self.pool.begin().await?;

        // Jobs whose idempotency key is already taken are answered from the stored job.
        let keys: Vec<&str> = jobs
            .iter()
            .filter_map(|j| j.idempotency_key.as_deref())
            .collect();
        let mut existing: HashMap<String, (Job, Option<String>)> = HashMap::new();
        if !keys.is_empty() {
            let rows = sqlx::query("SELECT * FROM jobs WHERE idempotency_key = ANY($1)")
                .bind(&keys)
                .fetch_all(&mut *tx)
                .await?;
            for row in &rows {
                let job = job_from_row!(row)?;
                let fingerprint: Option<String> = row.try_get("fingerprint")?;
                if let Some(key) = job.idempotency_key.clone() {
                    existing.insert(key, (job, fingerprint));
                }
            }
        }

        let mut columns = InsertColumns::default();
        let mut per_queue: HashMap<String, u64> = HashMap::new();
        let mut seen_keys = std::collections::HashSet::new();
        for job in &jobs {
            let fingerprint = job.fingerprint();
            if let Some(key) = &job.idempotency_key {
                if let Some((stored, stored_fp)) = existing.get(key) {
                    if stored_fp.as_deref() != Some(fingerprint.as_str()) {
                        return Err(StoreError::IdempotencyConflict {
                            key: key.clone(),
                            existing: stored.id,
                        });
                    }
                    continue;
                }
                if !seen_keys.insert(key.clone()) {
                    continue; // a repeat within this batch: answered after the insert
                }
            }
            *per_queue.entry(job.queue_name().to_string()).or_default() += 1;
            columns.id.push(uuid::Uuid::now_v7());
            columns.queue.push(job.queue_name().to_string());
            columns.kind.push(job.kind.clone());
            columns.goal.push(job.goal.clone());
            columns.config.push(job.config.to_string());
            columns.priority.push(job.priority.rank());
            columns.created_by.push(job.created_by.clone());
            columns.idempotency_key.push(job.idempotency_key.clone());
            columns.fingerprint.push(fingerprint);
            columns.run_at.push(job.run_at.map(to_millis));
            columns.max_attempts.push(
                job.max_attempts
                    .unwrap_or(self.options.default_max_attempts()) as i32,
            );
            let secs = |v: Option<u64>| v.map(|s| s as i64);
            columns.job_timeout.push(secs(job.timeouts.job_timeout));
            columns.step_timeout.push(secs(job.timeouts.step_timeout));
            columns.api_timeout.push(secs(job.timeouts.api_timeout));
        }

        if let Some(max) = self.options.max_queue_size {
            let mut queues: Vec<_> = per_queue.iter().collect();
            queues.sort();
            for (queue, adding) in queues {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(format!("drover.{}.depth.{queue}", self.schema))
                    .execute(&mut *tx)
                    .await?;
                let held: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM jobs WHERE queue = $1 \
                     AND status IN ('queued', 'running', 'paused')",
                )
                .bind(queue)
                .fetch_one(&mut *tx)
                .await?;
                if held as u64 + adding > max {
                    return Err(StoreError::QueueFull {
                        queue: queue.clone(),
                        max,
                    });
                }
            }
        }

        let mut inserted: HashMap<uuid::Uuid, Job> = HashMap::new();
        if !columns.id.is_empty() {
            let rows = sqlx::query(
                "WITH input AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], \
                 $4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::text[], \
                 $10::bigint[], $11::int[], $12::bigint[], $13::bigint[], $14::bigint[]) \
                 WITH ORDINALITY AS t(id, queue, kind, goal, config, priority, created_by, \
                 idempotency_key, fingerprint, run_at, max_attempts, job_timeout, step_timeout, \
                 api_timeout, ord)), \
                 ins AS (INSERT INTO jobs (id, queue, kind, goal, config, priority, created_by, \
                 idempotency_key, fingerprint, run_at, max_attempts, job_timeout, step_timeout, \
                 api_timeout, status, event_seq, created_at, updated_at) \
                 SELECT id, queue, kind, goal, config::jsonb, priority, created_by, \
                 idempotency_key, fingerprint, coalesce(run_at, drover_now()), max_attempts, \
                 job_timeout, step_timeout, api_timeout, 'queued', 1, drover_now(), drover_now() \
                 FROM input ORDER BY ord \
                 ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
                 RETURNING *), \
                 ev AS (INSERT INTO job_events (job_id, seq, kind, data, created_at) \
                 SELECT id, 1, 'status', jsonb_build_object('status', 'queued', 'attempt', 0), \
                 created_at FROM ins), \
                 woken AS (SELECT pg_notify($15, q) FROM (SELECT DISTINCT queue AS q FROM ins) d) \
                 SELECT *, (SELECT count(*) FROM woken) AS woken FROM ins",
            )
            .bind(&columns.id)
            .bind(&columns.queue)
            .bind(&columns.kind)
            .bind(&columns.goal)
            .bind(&columns.config)
            .bind(&columns.priority)
            .bind(&columns.created_by)
            .bind(&columns.idempotency_key)
            .bind(&columns.fingerprint)
            .bind(&columns.run_at)
            .bind(&columns.max_attempts)
            .bind(&columns.job_timeout)
            .bind(&columns.step_timeout)
            .bind(&columns.api_timeout)
            .bind(channel(&self.schema, "jobs"))
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                let job = job_from_row!(row)?;
                inserted.insert(job.id, job);
            }
        }

        // A key inserted concurrently by another transaction (ON CONFLICT skipped our row)
        // or repeated within this batch: answer from the stored job.
        let missing: Vec<&str> = columns
            .id
            .iter()
            .zip(&columns.idempotency_key)
            .filter(|(id, _)| !inserted.contains_key(id))
            .filter_map(|(_, key)| key.as_deref())
            .collect();
        if !missing.is_empty() {
            let rows = sqlx::query("SELECT * FROM jobs WHERE idempotency_key = ANY($1)")
                .bind(&missing)
                .fetch_all(&mut *tx)
                .await?;
            for row in &rows {
                let job = job_from_row!(row)?;
                let fingerprint: Option<String> = row.try_get("fingerprint")?;
                if let Some(key) = job.idempotency_key.clone() {
                    existing.insert(key, (job, fingerprint));
                }
            }
        }
        tx.commit().await?;

        let mut created = columns.id.into_iter();
        let mut by_key: HashMap<String, (Job, String)> = HashMap::new();
        let mut results = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let key = job.idempotency_key.as_deref();
            if let Some((stored, stored_fp)) = key.and_then(|k| existing.get(k)) {
                if stored_fp.as_deref() != Some(job.fingerprint().as_str()) {
                    return Err(StoreError::IdempotencyConflict {
                        key: key.unwrap_or_default().to_string(),
                        existing: stored.id,
                    });
                }
                results.push(Enqueued::Existing(stored.clone()));
                continue;
            }
            if let Some((first, first_fp)) = key.and_then(|k| by_key.get(k)) {
                if *first_fp == job.fingerprint() {
                    results.push(Enqueued::Existing(first.clone()));
                    continue;
                }
                return Err(StoreError::IdempotencyConflict {
                    key: key.unwrap_or_default().to_string(),
                    existing: first.id,
                });
            }
            let id = created
                .next()
                .ok_or_else(|| StoreError::Backend("batch bookkeeping out of step".into()))?;
            let stored = inserted
                .remove(&id)
                .ok_or_else(|| StoreError::Backend(format!("job {id} was not stored")))?;
            if let Some(key) = key {
                by_key.insert(key.to_string(), (stored.clone(), job.fingerprint()));
            }
            results.push(Enqueued::Created(stored));
        }
        Ok(results)
    }

    async fn get(&self, id: JobId) -> StoreResult<Job> {
        let mut conn = self.pool.acquire().await?;
        Self::fetch_job(&mut conn, id, false).await
    }

    async fn list(&self, filter: &JobFilter) -> StoreResult<JobPage> {
        let limit = filter.page_size();
        let rows = sqlx::query(
            "SELECT * FROM jobs WHERE ($1::text IS NULL OR status = $1) \
             AND ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR created_by = $3) \
             AND ($4::uuid IS NULL OR id < $4) ORDER BY id DESC LIMIT $5",
        )
        .bind(filter.status.map(|s| s.as_str()))
        .bind(&filter.kind)
        .bind(&filter.created_by)
        .bind(filter.before)
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
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
        // Each filter gets the statement whose pick is an ordered index scan stopping at
        // `limit` (all queues: `jobs_ready`; one queue: `jobs_by_queue` by equality), even
        // on a table not yet analysed. Several queues need a sort of their due jobs. Paused
        // queues are an array computed once: an anti-join there sorted every queued job.
        let filter = match request.queues.len() {
            0 => "",
            1 => "AND queue = $4",
            _ => "AND queue = ANY($4)",
        };
        let sql = format!(
            "WITH picked AS (SELECT id FROM jobs WHERE status = 'queued' \
               AND run_at <= drover_now() \
               AND queue <> ALL (ARRAY(SELECT name FROM queues WHERE paused)) {filter} \
               ORDER BY priority, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED), \
             upd AS (UPDATE jobs j SET status = 'running', attempt = j.attempt + 1, \
               lease_epoch = j.lease_epoch + 1, lease_owner = $1, \
               lease_expires_at = drover_now() + $2, pause_requested = false, \
               cancel_requested = false, started_at = coalesce(j.started_at, drover_now()), \
               updated_at = drover_now(), event_seq = j.event_seq + 1 \
               FROM picked WHERE j.id = picked.id RETURNING j.*), \
             ev AS (INSERT INTO job_events (job_id, seq, kind, data, created_at) \
               SELECT id, event_seq, 'status', jsonb_build_object('status', 'running', \
               'attempt', attempt, 'worker', lease_owner), updated_at FROM upd) \
             SELECT * FROM upd ORDER BY priority, run_at, id"
        );
        let query = sqlx::query(&sql)
            .bind(&request.worker_id)
            .bind(millis(request.lease_ttl))
            .bind(claim_limit(request));
        let query = match request.queues.as_slice() {
            [] => query,
            [queue] => query.bind(queue),
            queues => query.bind(queues),
        };
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let job = job_from_row!(row)?;
                Ok(Lease {
                    epoch: job.lease_epoch,
                    expires_at: job.lease_expires_at.unwrap_or_else(Utc::now),
                    job,
                })
            })
            .collect()
    }

    async fn renew(&self, fences: &[Fence], ttl: Duration) -> StoreResult<Vec<Renewal>> {
        if fences.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<JobId> = fences.iter().map(|f| f.job).collect();
        let epochs: Vec<i64> = fences.iter().map(|f| f.epoch).collect();
        // Rows are locked in id order, as `complete_many` locks them: a renewal and a batch
        // completion of the same jobs never deadlock.
        let rows = sqlx::query(
            "WITH locked AS MATERIALIZED (SELECT j.id FROM jobs j \
               JOIN unnest($1::uuid[], $2::bigint[]) AS f(id, epoch) \
               ON j.id = f.id AND j.lease_epoch = f.epoch WHERE j.status = 'running' \
               ORDER BY j.id FOR UPDATE OF j) \
             UPDATE jobs j SET lease_expires_at = drover_now() + $3 FROM locked \
             WHERE j.id = locked.id \
             RETURNING j.id, j.lease_epoch, j.pause_requested, j.cancel_requested",
        )
        .bind(&ids)
        .bind(&epochs)
        .bind(millis(ttl))
        .fetch_all(&self.pool)
        .await?;
        let mut held = HashMap::with_capacity(rows.len());
        for row in &rows {
            let id: JobId = row.try_get("id")?;
            let epoch: i64 = row.try_get("lease_epoch")?;
            held.insert(
                (id, epoch),
                Renewal::Held {
                    pause_requested: row.try_get("pause_requested")?,
                    cancel_requested: row.try_get("cancel_requested")?,
                },
            );
        }
        Ok(fences
            .iter()
            .map(|f| {
                held.get(&(f.job, f.epoch))
                    .copied()
                    .unwrap_or(Renewal::Lost)
            })
            .collect())
    }

    async fn complete_many(&self, completions: &[Completion]) -> StoreResult<Vec<Completed>> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<JobId> = completions.iter().map(|c| c.fence.job).collect();
        let epochs: Vec<i64> = completions.iter().map(|c| c.fence.epoch).collect();
        let results: Vec<String> = completions.iter().map(|c| c.result.to_string()).collect();
        // One statement settles the batch, each row only under its own fence. Rows are
        // locked in id order, as `renew` locks them, so the two cannot deadlock.
        let done: Vec<(JobId, i64)> = sqlx::query_as(
            "WITH f AS (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[]) \
               AS f(id, epoch, result)), \
             locked AS MATERIALIZED (SELECT jobs.id FROM jobs JOIN f ON jobs.id = f.id \
               AND jobs.lease_epoch = f.epoch WHERE jobs.status = 'running' \
               ORDER BY jobs.id FOR UPDATE OF jobs), \
             j AS (UPDATE jobs SET status = 'completed', result = f.result::jsonb, \
               lease_expires_at = NULL, updated_at = drover_now(), \
               finished_at = drover_now(), event_seq = jobs.event_seq + 1 \
               FROM f, locked WHERE jobs.id = locked.id AND f.id = locked.id \
               AND jobs.lease_epoch = f.epoch AND jobs.status = 'running' \
               RETURNING jobs.id, jobs.lease_epoch, jobs.event_seq, jobs.attempt, \
               jobs.lease_owner, jobs.updated_at), \
             e AS (INSERT INTO job_events (job_id, seq, kind, data, created_at) \
               SELECT id, event_seq, 'status', jsonb_build_object('status', 'completed', \
               'attempt', attempt, 'worker', lease_owner), updated_at FROM j) \
             SELECT id, lease_epoch FROM j",
        )
        .bind(&ids)
        .bind(&epochs)
        .bind(&results)
        .fetch_all(&self.pool)
        .await?;
        let mut done: std::collections::HashSet<(JobId, i64)> = done.into_iter().collect();
        // Rarely some did not land: a retried batch whose first try committed still
        // answers `Done` for them; only the others were fenced.
        if done.len() < completions.len() {
            let missed: Vec<JobId> = completions
                .iter()
                .filter(|c| !done.contains(&(c.fence.job, c.fence.epoch)))
                .map(|c| c.fence.job)
                .collect();
            let earlier: Vec<(JobId, i64)> = sqlx::query_as(
                "SELECT id, lease_epoch FROM jobs WHERE id = ANY($1) AND status = 'completed'",
            )
            .bind(&missed)
            .fetch_all(&self.pool)
            .await?;
            done.extend(earlier);
        }
        Ok(completions
            .iter()
            .map(|c| {
                if done.contains(&(c.fence.job, c.fence.epoch)) {
                    Completed::Done
                } else {
                    Completed::Fenced
                }
            })
            .collect())
    }
}

#[async_trait]
impl RunLog for PgStore {
    async fn checkpoint(
        &self,
        fence: Fence,
        checkpoint: NewCheckpoint,
        keep: usize,
    ) -> StoreResult<i64> {
        let size = checkpoint.state.len() as i64;
        let seq: Option<i64> = sqlx::query_scalar(
            "WITH j AS (UPDATE jobs SET event_seq = event_seq + 1, updated_at = drover_now() \
               WHERE id = $1 AND lease_epoch = $2 AND status = 'running' \
               RETURNING id, event_seq, updated_at), \
             c AS (INSERT INTO checkpoints (job_id, seq, step, state, compressed, created_at) \
               SELECT j.id, coalesce((SELECT max(seq) FROM checkpoints WHERE job_id = $1), 0) + 1, \
               $3, $4, $5, j.updated_at FROM j RETURNING seq), \
             d AS (DELETE FROM checkpoints WHERE job_id = $1 \
               AND seq <= (SELECT seq FROM c) - $6), \
             e AS (INSERT INTO job_events (job_id, seq, kind, data, created_at) \
               SELECT j.id, j.event_seq, 'checkpoint', \
               jsonb_build_object('seq', c.seq, 'step', $3::text, 'size', $7::bigint), \
               j.updated_at FROM j, c) \
             SELECT seq FROM c",
        )
        .bind(fence.job)
        .bind(fence.epoch)
        .bind(&checkpoint.step)
        .bind(&checkpoint.state)
        .bind(checkpoint.compressed)
        .bind(keep.max(1) as i64)
        .bind(size)
        .fetch_optional(&self.pool)
        .await?;
        match seq {
            Some(seq) => Ok(seq),
            None => Err(self.refused(fence).await),
        }
    }

    async fn latest_checkpoint(&self, id: JobId) -> StoreResult<Option<Checkpoint>> {
        let row =
            sqlx::query("SELECT * FROM checkpoints WHERE job_id = $1 ORDER BY seq DESC LIMIT 1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref()
            .map(|row| checkpoint_from_row!(row))
            .transpose()
    }

    async fn checkpoints(&self, id: JobId) -> StoreResult<Vec<Checkpoint>> {
        let rows = sqlx::query("SELECT * FROM checkpoints WHERE job_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| checkpoint_from_row!(row)).collect()
    }

    async fn append_event(&self, fence: Fence, kind: &str, data: Value) -> StoreResult<i64> {
        let seq: Option<i64> = sqlx::query_scalar(
            "WITH j AS (UPDATE jobs SET event_seq = event_seq + 1, updated_at = drover_now(), \
               progress = CASE WHEN $3 = 'progress' THEN $4 ELSE progress END \
               WHERE id = $1 AND lease_epoch = $2 AND status = 'running' \
               RETURNING id, event_seq, updated_at) \
             INSERT INTO job_events (job_id, seq, kind, data, created_at) \
             SELECT id, event_seq, $3, $4, updated_at FROM j RETURNING seq",
        )
        .bind(fence.job)
        .bind(fence.epoch)
        .bind(kind)
        .bind(Json(&data))
        .fetch_optional(&self.pool)
        .await?;
        match seq {
            Some(seq) => {
                self.notifier.publish(Signal::Event {
                    job: fence.job,
                    seq,
                });
                Ok(seq)
            }
            None => Err(self.refused(fence).await),
        }
    }

    async fn events(&self, id: JobId, after: i64, limit: usize) -> StoreResult<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT * FROM job_events WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(id)
        .bind(after)
        .bind(limit.min(MAX_EVENTS_PER_READ) as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| event_from_row!(row)).collect()
    }

    async fn record_effect(&self, fence: Fence, key: &str, result: Value) -> StoreResult<Value> {
        // The job row is share-locked so the epoch cannot move between check and insert.
        let stored: Option<Json<Value>> = sqlx::query_scalar(
            "WITH j AS (SELECT id FROM jobs WHERE id = $1 AND lease_epoch = $2 \
               AND status = 'running' FOR SHARE), \
             ins AS (INSERT INTO effects (job_id, key, result, epoch, created_at) \
               SELECT id, $3, $4, $2, drover_now() FROM j \
               ON CONFLICT (job_id, key) DO NOTHING RETURNING result) \
             SELECT result FROM ins UNION ALL \
             SELECT e.result FROM effects e, j WHERE e.job_id = j.id AND e.key = $3 LIMIT 1",
        )
        .bind(fence.job)
        .bind(fence.epoch)
        .bind(key)
        .bind(Json(&result))
        .fetch_optional(&self.pool)
        .await?;
        match stored {
            Some(stored) => Ok(stored.0),
            None => Err(self.refused(fence).await),
        }
    }

    async fn effects(&self, id: JobId) -> StoreResult<Vec<Effect>> {
        let rows = sqlx::query("SELECT * FROM effects WHERE job_id = $1 ORDER BY created_at, key")
            .bind(id)
            .fetch_all(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        let job = Self::fenced_job(&mut tx, fence).await?;
        let now = Self::now(&mut tx).await?;
        sqlx::query(
            "INSERT INTO artifacts (job_id, name, content_type, data, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id, name) DO UPDATE SET \
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
        let meta = ArtifactMeta {
            name: artifact.name,
            content_type: artifact.content_type,
            size: artifact.data.len(),
            created_at: from_millis(now),
        };
        let seq: i64 = sqlx::query_scalar(
            "WITH j AS (UPDATE jobs SET artifacts = $2, event_seq = event_seq + 1, \
               updated_at = $4 WHERE id = $1 RETURNING id, event_seq) \
             INSERT INTO job_events (job_id, seq, kind, data, created_at) \
             SELECT id, event_seq, 'artifact', $3, $4 FROM j RETURNING seq",
        )
        .bind(fence.job)
        .bind(Json(&names))
        .bind(Json(&meta))
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
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
             WHERE job_id = $1 ORDER BY name",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ArtifactMeta {
                    name: row.try_get("name")?,
                    content_type: row.try_get("content_type")?,
                    size: row.try_get::<i32, _>("size")? as usize,
                    created_at: from_millis(row.try_get("created_at")?),
                })
            })
            .collect()
    }

    async fn artifact(&self, id: JobId, name: &str) -> StoreResult<Option<Artifact>> {
        let row = sqlx::query("SELECT * FROM artifacts WHERE job_id = $1 AND name = $2")
            .bind(id)
            .bind(name)
            .fetch_optional(&self.pool)
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
impl Maintenance for PgStore {
    async fn prune(&self, retention: &Retention, limit: usize) -> StoreResult<u64> {
        let deleted: Vec<JobId> = sqlx::query_scalar(
            "WITH doomed AS (SELECT id FROM jobs \
               WHERE (status = 'completed' AND finished_at <= drover_now() - $1) \
               OR (status = 'failed' AND finished_at <= drover_now() - $2) \
               OR (status = 'cancelled' AND finished_at <= drover_now() - $3) \
               LIMIT $4 FOR UPDATE SKIP LOCKED), \
             e AS (DELETE FROM job_events WHERE job_id IN (SELECT id FROM doomed)), \
             c AS (DELETE FROM checkpoints WHERE job_id IN (SELECT id FROM doomed)), \
             f AS (DELETE FROM effects WHERE job_id IN (SELECT id FROM doomed)), \
             a AS (DELETE FROM artifacts WHERE job_id IN (SELECT id FROM doomed)) \
             DELETE FROM jobs WHERE id IN (SELECT id FROM doomed) RETURNING id",
        )
        .bind(millis(retention.completed))
        .bind(millis(retention.failed))
        .bind(millis(retention.cancelled))
        .bind(limit.min(10_000) as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(deleted.len() as u64)
    }

    async fn next_run_at(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT min(run_at) FROM jobs WHERE status = 'queued' AND run_at > drover_now()",
        )
        .fetch_one(&self.pool)
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
        let mut conn = self.pool.acquire().await?;
        let now = Self::now(&mut conn).await?;
        let rows = sqlx::query(
            "SELECT queue, status, priority, count(*) AS n, \
             min(run_at) FILTER (WHERE status = 'queued' AND run_at <= $1) AS oldest \
             FROM jobs WHERE status IN ('queued', 'running', 'paused') \
             GROUP BY queue, status, priority",
        )
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        let paused = sqlx::query("SELECT name, paused FROM queues")
            .fetch_all(&mut *conn)
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
impl Peers for PgStore {
    async fn heartbeat_worker(&self, worker: &WorkerInfo) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO workers (id, host, pid, slots, busy, started_at, last_heartbeat) \
             VALUES ($1, $2, $3, $4, $5, $6, drover_now()) ON CONFLICT (id) DO UPDATE SET \
             slots = excluded.slots, busy = excluded.busy, last_heartbeat = excluded.last_heartbeat",
        )
        .bind(&worker.id)
        .bind(&worker.host)
        .bind(worker.pid as i64)
        .bind(worker.slots as i32)
        .bind(worker.busy as i32)
        .bind(to_millis(worker.started_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn remove_worker(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM workers WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn workers(&self, within: Duration) -> StoreResult<Vec<WorkerInfo>> {
        let rows = sqlx::query(
            "SELECT * FROM workers WHERE last_heartbeat >= drover_now() - $1 ORDER BY id",
        )
        .bind(millis(within))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(worker_from_row).collect()
    }

    async fn try_lead(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        let row = sqlx::query(
            "INSERT INTO leaders (name, holder, expires_at) VALUES ($1, $2, drover_now() + $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leaders.holder = excluded.holder OR leaders.expires_at < drover_now() \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(millis(ttl))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    async fn resign(&self, name: &str, holder: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM leaders WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn notifier(&self) -> Arc<dyn Notifier> {
        self.listener.start(
            || PgTransport(self.pool.clone()),
            || Channels::named(|name| channel(&self.schema, name)),
            &self.notifier,
        );
        self.notifier.clone()
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // One migrator per schema at a time, across every process.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("drover.migrate.{}", self.schema))
            .execute(&mut *tx)
            .await?;
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{}\"", self.schema);
        (&mut *tx).execute(create.as_str()).await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS drover_migrations (version bigint PRIMARY KEY, \
             name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .execute(&mut *tx)
        .await?;
        let applied: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM drover_migrations")
            .fetch_one(&mut *tx)
            .await?;
        let applied = applied.unwrap_or(0);
        let pending: Vec<&migrate::Migration> = migrate::POSTGRES
            .iter()
            .filter(|m| m.version > applied)
            .collect();
        for m in pending {
            (&mut *tx).execute(m.sql).await?;
            sqlx::query("INSERT INTO drover_migrations (version, name) VALUES ($1, $2)")
                .bind(m.version)
                .bind(m.name)
                .execute(&mut *tx)
                .await?;
            tracing::info!(version = m.version, name = m.name, schema = %self.schema,
                "applied postgres migration");
        }
        tx.commit().await?;
        Ok(())
    }
}
