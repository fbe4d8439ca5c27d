//! Batch enqueue: the stored jobs of the batch's idempotency keys are read first, the batch
//! is sorted by the shared bookkeeping ([`crate::admission`]), each growing queue's depth is
//! checked under an advisory lock (taken in queue-name order, so two batches cannot
//! deadlock), and the new rows go in as one `unnest` INSERT that also logs their `queued`
//! events and wakes their queues. A key another transaction stored meanwhile (`ON CONFLICT`
//! skipped our row) is answered from the stored job.

use std::collections::HashMap;

use sqlx::postgres::PgConnection;
use sqlx::Row;

use super::PgStore;
use crate::admission::{check_depth, Admission, NewRow, Stored};
use crate::job::{to_millis, Job, NewJob};
use crate::store::*;

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

impl InsertColumns {
    fn of(rows: &[NewRow<'_>]) -> Self {
        let mut columns = InsertColumns::default();
        let secs = |v: Option<u64>| v.map(|s| s as i64);
        for row in rows {
            let job = row.job;
            columns.id.push(row.id);
            columns.queue.push(job.queue_name().to_string());
            columns.kind.push(job.kind.clone());
            columns.goal.push(job.goal.clone());
            columns.config.push(job.config.to_string());
            columns.priority.push(job.priority.rank());
            columns.created_by.push(job.created_by.clone());
            columns.idempotency_key.push(job.idempotency_key.clone());
            columns.fingerprint.push(row.fingerprint.clone());
            columns.run_at.push(job.run_at.map(to_millis));
            columns.max_attempts.push(row.max_attempts as i32);
            columns.job_timeout.push(secs(job.timeouts.job_timeout));
            columns.step_timeout.push(secs(job.timeouts.step_timeout));
            columns.api_timeout.push(secs(job.timeouts.api_timeout));
        }
        columns
    }
}

impl PgStore {
    pub(super) async fn insert_batch(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Enqueued>> {
        for job in &jobs {
            job.validate()?;
        }
        let mut tx = self.pool.begin().await?;

        // Jobs whose idempotency key is already taken are answered from the stored job.
        let keys = Admission::keys(&jobs);
        let stored = Self::stored_by_key(&mut tx, &keys).await?;
        let mut admission = Admission::plan(&jobs, stored, self.options.default_max_attempts())?;

        if let Some(max) = self.options.max_queue_size {
            for (queue, adding) in admission.per_queue() {
                Self::lock(&mut tx, format!("drover.{}.depth.{queue}", self.schema)).await?;
                let held: i64 = sqlx::query_scalar(include_str!("sql/queue_depth.sql"))
                    .bind(queue)
                    .fetch_one(&mut *tx)
                    .await?;
                check_depth(queue, held as u64, adding, max)?;
            }
        }

        let mut inserted: HashMap<uuid::Uuid, Job> = HashMap::new();
        if !admission.rows().is_empty() {
            let columns = InsertColumns::of(admission.rows());
            let rows = sqlx::query(include_str!("sql/insert_jobs.sql"))
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
                .bind(self.channel("jobs"))
                .fetch_all(&mut *tx)
                .await?;
            for row in &rows {
                let job = job_from_row!(row)?;
                inserted.insert(job.id, job);
            }
        }

        let taken = admission.keys_taken_meanwhile(&inserted);
        let taken: Vec<&str> = taken.iter().map(String::as_str).collect();
        for stored in Self::stored_by_key(&mut tx, &taken).await? {
            admission.found(stored);
        }
        let results = admission.answers(inserted)?;
        tx.commit().await?;
        Ok(results)
    }

    /// The stored jobs under `keys`, with the fingerprints of their bodies.
    async fn stored_by_key(conn: &mut PgConnection, keys: &[&str]) -> StoreResult<Vec<Stored>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(include_str!("sql/jobs_by_keys.sql"))
            .bind(keys)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Stored {
                    job: job_from_row!(row)?,
                    fingerprint: row.try_get("fingerprint")?,
                })
            })
            .collect()
    }
}
