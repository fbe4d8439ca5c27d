//! Batch enqueue in one write transaction: the stored jobs of the batch's idempotency keys
//! are read first, the batch is sorted by the shared bookkeeping ([`crate::admission`]),
//! each growing queue's depth is checked, and the new rows go in with multi-row INSERTs
//! (1,000 jobs a statement), followed by their `queued` events. Workers of this process are
//! woken once per queue after the commit.

use std::collections::HashMap;

use sqlx::sqlite::SqliteConnection;
use sqlx::types::Json;
use sqlx::Row;

use super::{around_rows, SqliteStore};
use crate::admission::{check_depth, Admission, NewRow, Stored};
use crate::job::{now_millis, to_millis, Job, JobId, NewJob};
use crate::notifier::Signal;
use crate::row::status_event;
use crate::store::*;

/// Jobs per multi-row INSERT: 16 parameters a row.
const JOB_ROWS_PER_INSERT: usize = 1_000;
/// Idempotency keys one lookup statement carries.
const KEYS_PER_LOOKUP: usize = 1_000;

impl SqliteStore {
    pub(super) async fn insert_batch(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Enqueued>> {
        for job in &jobs {
            job.validate()?;
        }
        let mut tx = self.begin().await?;
        let now = now_millis();
        // Jobs whose idempotency key is already taken are answered from the stored job: one
        // statement over the keys as a JSON array (a search of the key index per element),
        // not a statement per key, which was most of a 500-tick schedule chunk's time.
        let mut stored = Vec::new();
        for keys in Admission::keys(&jobs).chunks(KEYS_PER_LOOKUP) {
            let keys = serde_json::to_string(keys)
                .map_err(|e| StoreError::Backend(format!("idempotency keys: {e}")))?;
            let rows = sqlx::query(include_str!("sql/jobs_by_keys.sql"))
                .bind(keys)
                .fetch_all(&mut *tx)
                .await?;
            for row in &rows {
                stored.push(Stored {
                    fingerprint: row.try_get("fingerprint")?,
                    job: job_from_row!(row)?,
                });
            }
        }
        let admission = Admission::plan(&jobs, stored, self.options.default_max_attempts())?;
        if let Some(max) = self.options.max_queue_size {
            for (queue, adding) in admission.per_queue() {
                let held: i64 = sqlx::query_scalar(include_str!("sql/queue_depth.sql"))
                    .bind(queue)
                    .fetch_one(&mut *tx)
                    .await?;
                check_depth(queue, held as u64, adding, max)?;
            }
        }
        let inserted: HashMap<JobId, Job> = Self::insert_rows(&mut tx, admission.rows(), now)
            .await?
            .into_iter()
            .map(|job| (job.id, job))
            .collect();
        let results = admission.answers(inserted)?;
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

    /// Inserts new jobs, up to `JOB_ROWS_PER_INSERT` a statement; answers them as stored.
    async fn insert_rows(
        conn: &mut SqliteConnection,
        rows: &[NewRow<'_>],
        now: i64,
    ) -> StoreResult<Vec<Job>> {
        let secs = |v: Option<u64>| v.map(|s| s as i64);
        let (head, tail) = around_rows(include_str!("sql/insert_jobs.sql"));
        let mut stored = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(JOB_ROWS_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(head);
            insert.push_values(chunk, |mut b, row| {
                let new = row.job;
                b.push_bind(row.id)
                    .push_bind(new.queue_name())
                    .push_bind(&new.kind)
                    .push_bind(&new.goal)
                    .push_bind(Json(&new.config))
                    .push_bind(new.priority.rank())
                    .push_bind(&new.created_by)
                    .push_bind(&new.idempotency_key)
                    .push_bind(&row.fingerprint)
                    .push_bind(new.run_at.map(to_millis).unwrap_or(now))
                    .push_bind(row.max_attempts as i32)
                    .push_bind(secs(new.timeouts.job_timeout))
                    .push_bind(secs(new.timeouts.step_timeout))
                    .push_bind(secs(new.timeouts.api_timeout))
                    .push("'queued'")
                    .push("1")
                    .push_bind(now)
                    .push_bind(now);
            });
            insert.push(tail);
            for row in insert.build().fetch_all(&mut *conn).await? {
                stored.push(job_from_row!(&row)?);
            }
        }
        Ok(stored)
    }

    /// Wakes this process's workers on each queue that got a new job.
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
}
