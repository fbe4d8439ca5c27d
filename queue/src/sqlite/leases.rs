//! The hot path: claim, renew and complete, each batch in one write transaction.
//!
//! The claim reads an index in claim order and stops at `limit`, whatever the queue filter:
//! `claim.sql` gets one of the `claim_pick_*.sql` picks at its `/* pick */` marker (built
//! once), each naming its index with INDEXED BY (the planner otherwise picked
//! `jobs_by_status` and sorted every queued job). Several queues need a sort of their due
//! jobs. `complete_many` is a multi-row UPDATE (`complete_many.sql`), 1,000 jobs a statement.

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;

use serde_json::json;
use sqlx::types::Json;
use sqlx::Row;

use super::{around_rows, SqliteStore, EVENT_ROWS_PER_INSERT};
use crate::job::{from_millis, now_millis, JobId};
use crate::row::status_event;
use crate::store::*;

/// The claim, by queue filter: all queues, one queue (`?4`), several queues (`?4` a JSON
/// array).
static CLAIM: LazyLock<[String; 3]> = LazyLock::new(|| {
    let claim = |pick: &str| include_str!("sql/claim.sql").replace("/* pick */", pick.trim_end());
    [
        claim(include_str!("sql/claim_pick_all_queues.sql")),
        claim(include_str!("sql/claim_pick_one_queue.sql")),
        claim(include_str!("sql/claim_pick_queues.sql")),
    ]
});

impl SqliteStore {
    pub(super) async fn claim_leases(&self, request: &ClaimRequest) -> StoreResult<Vec<Lease>> {
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let now = now_millis();
        let expires = now.saturating_add(millis(request.lease_ttl));
        let queues = match request.queues.as_slice() {
            [queue] => queue.clone(),
            queues => serde_json::to_string(queues).unwrap_or_else(|_| "[]".into()),
        };
        let rows = sqlx::query(&CLAIM[request.queues.len().min(2)])
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
            self.announce(lease.job.id, lease.job.event_seq);
        }
        leases.sort_by(|a, b| {
            (a.job.priority, a.job.run_at, a.job.id).cmp(&(b.job.priority, b.job.run_at, b.job.id))
        });
        Ok(leases)
    }

    pub(super) async fn renew_leases(
        &self,
        fences: &[Fence],
        ttl: Duration,
    ) -> StoreResult<Vec<Renewal>> {
        if fences.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let now = now_millis();
        let expires = now.saturating_add(millis(ttl));
        let mut out = Vec::with_capacity(fences.len());
        for fence in fences {
            let row = sqlx::query(include_str!("sql/renew.sql"))
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

    pub(super) async fn complete_leases(
        &self,
        completions: &[Completion],
    ) -> StoreResult<Vec<Completed>> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        // One write transaction (one commit) for the batch, a statement per 1,000 jobs:
        // each row is updated only under its own fence.
        let mut tx = self.begin().await?;
        let now = now_millis();
        let mut landed = HashSet::with_capacity(completions.len());
        let mut events = Vec::with_capacity(completions.len());
        let (head, tail) = around_rows(include_str!("sql/complete_many.sql"));
        for chunk in completions.chunks(EVENT_ROWS_PER_INSERT) {
            let mut update = sqlx::QueryBuilder::<sqlx::Sqlite>::new(head);
            update.push_values(chunk, |mut row, c| {
                row.push_bind(c.fence.job)
                    .push_bind(c.fence.epoch)
                    .push_bind(Json(&c.result));
            });
            update.push(tail);
            // `updated_at = ?, finished_at = ?` follow the rows.
            let query = update.build().bind(now).bind(now);
            for row in query.fetch_all(&mut *tx).await? {
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
            let done: Option<i64> = sqlx::query_scalar(include_str!("sql/completed_earlier.sql"))
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
            self.announce(*job, *seq);
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
