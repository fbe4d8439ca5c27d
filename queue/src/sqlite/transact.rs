//! Load and save: the two primitives the shared transitions ([`crate::transitions`]) are
//! written on. The load opens the write transaction (`BEGIN IMMEDIATE`), so nothing can
//! change the job before the save.

use async_trait::async_trait;
use sqlx::sqlite::SqliteConnection;

use super::SqliteStore;
use crate::job::{from_millis, now_millis, to_millis, Job, JobId};
use crate::notifier::Signal;
use crate::operator::Settle;
use crate::row::status_event;
use crate::store::*;
use crate::transitions::Hold;

impl SqliteStore {
    /// Write `job`'s status-bearing columns and append its `status` event.
    async fn save_status(
        conn: &mut SqliteConnection,
        job: &Job,
        settle: Option<&Settle>,
        now: i64,
    ) -> StoreResult<()> {
        let finished = job.status.is_terminal().then_some(now);
        bind_status_columns!(sqlx::query(include_str!("sql/save_status.sql")), job)
            .bind(now)
            .bind(finished)
            .bind(job.id)
            .execute(&mut *conn)
            .await?;
        Self::append(conn, job.id, "status", &status_event(job, settle), now).await?;
        Ok(())
    }
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
            sqlx::query(include_str!("sql/save_requests.sql"))
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
            self.announce(job.id, job.event_seq);
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
        Ok(sqlx::query_scalar(include_str!("sql/expired_leases.sql"))
            .bind(now_millis())
            .bind(limit.min(10_000) as i64)
            .fetch_all(&self.reader)
            .await?)
    }
}
