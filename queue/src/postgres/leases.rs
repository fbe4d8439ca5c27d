//! The hot path: claim, renew and complete, each one statement tuned with EXPLAIN.
//!
//! The claim's statement depends on the queue filter, so that each filter's pick is an
//! ordered index scan stopping at `limit` (all queues: `jobs_ready`; one queue:
//! `jobs_by_queue` by equality), even on a table not yet analysed; several queues need a
//! sort of their due jobs. The three variants are `sql/claim.sql` with nothing, or
//! `sql/claim_filter_one_queue.sql` or `sql/claim_filter_queues.sql`, put in at its
//! `/* queue filter */` marker, built once. Paused queues are an array computed once
//! per statement: an anti-join there sorted every queued job.
//!
//! `renew` and `complete_many` lock their rows in id order, so a renewal and a batch
//! completion of the same jobs never deadlock.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;
use std::time::Duration;

use chrono::Utc;
use sqlx::Row;

use super::PgStore;
use crate::job::JobId;
use crate::store::*;

/// The claim, by queue filter: all queues, one queue (`$4`), several queues (`$4` an array).
static CLAIM: LazyLock<[String; 3]> = LazyLock::new(|| {
    let claim = |filter: &str| {
        include_str!("sql/claim.sql").replace("/* queue filter */", filter.trim_end())
    };
    [
        claim(""),
        claim(include_str!("sql/claim_filter_one_queue.sql")),
        claim(include_str!("sql/claim_filter_queues.sql")),
    ]
});

impl PgStore {
    pub(super) async fn claim_leases(&self, request: &ClaimRequest) -> StoreResult<Vec<Lease>> {
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        let sql = &CLAIM[request.queues.len().min(2)];
        let query = sqlx::query(sql)
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

    pub(super) async fn renew_leases(
        &self,
        fences: &[Fence],
        ttl: Duration,
    ) -> StoreResult<Vec<Renewal>> {
        if fences.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<JobId> = fences.iter().map(|f| f.job).collect();
        let epochs: Vec<i64> = fences.iter().map(|f| f.epoch).collect();
        let rows = sqlx::query(include_str!("sql/renew.sql"))
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

    pub(super) async fn complete_leases(
        &self,
        completions: &[Completion],
    ) -> StoreResult<Vec<Completed>> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<JobId> = completions.iter().map(|c| c.fence.job).collect();
        let epochs: Vec<i64> = completions.iter().map(|c| c.fence.epoch).collect();
        let results: Vec<String> = completions.iter().map(|c| c.result.to_string()).collect();
        // One statement settles the batch, each row only under its own fence.
        let done: Vec<(JobId, i64)> = sqlx::query_as(include_str!("sql/complete_many.sql"))
            .bind(&ids)
            .bind(&epochs)
            .bind(&results)
            .fetch_all(&self.pool)
            .await?;
        let mut done: HashSet<(JobId, i64)> = done.into_iter().collect();
        // Rarely some did not land: a retried batch whose first try committed still
        // answers `Done` for them; only the others were fenced.
        if done.len() < completions.len() {
            let missed: Vec<JobId> = completions
                .iter()
                .filter(|c| !done.contains(&(c.fence.job, c.fence.epoch)))
                .map(|c| c.fence.job)
                .collect();
            let earlier: Vec<(JobId, i64)> =
                sqlx::query_as(include_str!("sql/completed_earlier.sql"))
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
