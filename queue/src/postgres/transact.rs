//! Load for update and save: the two primitives the shared transitions
//! ([`crate::transitions`]) are written on. The row stays locked in the transaction between
//! the two, so a save always lands.

use async_trait::async_trait;
use sqlx::postgres::PgConnection;
use sqlx::types::Json;
use sqlx::Row;

use super::PgStore;
use crate::job::{from_millis, to_millis, Job, JobId};
use crate::operator::Settle;
use crate::row::status_event;
use crate::store::*;
use crate::transitions::Hold;

impl PgStore {
    /// Write `job`'s status-bearing columns and append its `status` event; returns the row.
    async fn save_status(
        conn: &mut PgConnection,
        job: &Job,
        settle: Option<&Settle>,
    ) -> StoreResult<Job> {
        let query = sqlx::query(include_str!("sql/save_status.sql")).bind(job.id);
        let row = bind_status_columns!(query, job)
            .bind(job.status.is_terminal())
            .bind(Json(status_event(job, settle)))
            .fetch_one(&mut *conn)
            .await?;
        job_from_row!(&row)
    }
}

#[async_trait]
impl Transact for PgStore {
    async fn load(&self, id: JobId) -> StoreResult<Loaded> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(include_str!("sql/load_for_update.sql"))
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
            let row = sqlx::query(include_str!("sql/save_requests.sql"))
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
            Wake::Queue => Self::notify(&mut tx, &self.channel("jobs"), &job.queue).await?,
            Wake::Control => {
                Self::notify(&mut tx, &self.channel("control"), &job.id.to_string()).await?
            }
        }
        tx.commit().await?;
        Ok(Some(job))
    }

    async fn expired_leases(&self, limit: usize) -> StoreResult<Vec<JobId>> {
        Ok(sqlx::query_scalar(include_str!("sql/expired_leases.sql"))
            .bind(limit.min(10_000) as i64)
            .fetch_all(&self.pool)
            .await?)
    }
}
