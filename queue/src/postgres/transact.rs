//! Load for update and save: the two primitives the shared transitions
//! ([`crate::transitions`]) are written on. The row stays locked in the transaction between
//! the two, so a save always lands.

use async_trait::async_trait;
use sqlx::postgres::PgConnection;
use sqlx::types::Json;
use sqlx::Row;

use super::PgStore;
use crate::gate::Gate;
use crate::job::{from_millis, to_millis, Job, JobId};
use crate::store::*;
use crate::transitions::Hold;

impl PgStore {
    /// Write `job`'s status-bearing columns and append its `status` event; returns the row.
    async fn save_status(
        conn: &mut PgConnection,
        job: &Job,
        event: serde_json::Value,
    ) -> StoreResult<Job> {
        let query = sqlx::query(include_str!("sql/save_status.sql")).bind(job.id);
        let row = bind_status_columns!(query, job)
            .bind(job.status.is_terminal())
            .bind(Json(event))
            .fetch_one(&mut *conn)
            .await?;
        job_from_row!(&row)
    }

    /// Stores `gates` as they are, each with its `gate` event.
    async fn save_gates(conn: &mut PgConnection, gates: &[Gate]) -> StoreResult<()> {
        for gate in gates {
            sqlx::query(include_str!("sql/upsert_gate.sql"))
                .bind(gate.job_id)
                .bind(&gate.key)
                .bind(gate.status.as_str())
                .bind(to_millis(gate.opened_at))
                .bind(to_millis(gate.deadline))
                .bind(Json(gate))
                .execute(&mut *conn)
                .await?;
            sqlx::query(include_str!("sql/insert_event.sql"))
                .bind(gate.job_id)
                .bind("gate")
                .bind(Json(gate.event()))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
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
        Ok(Loaded::new(
            job_from_row!(&row)?,
            from_millis(now),
            Hold::Postgres(tx),
        ))
    }

    async fn save(&self, loaded: Loaded, write: Write) -> StoreResult<Option<Job>> {
        let Hold::Postgres(mut tx) = loaded.hold else {
            return Err(StoreError::Backend(
                "a PostgreSQL save needs its transaction".into(),
            ));
        };
        let mut job = if loaded.job.status != write.job.status {
            Self::save_status(&mut tx, &write.job, write.status_event()).await?
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
        if !write.gates.is_empty() {
            Self::save_gates(&mut tx, &write.gates).await?;
            job.event_seq += write.gates.len() as i64;
        }
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

    async fn load_gates(&self, loaded: &mut Loaded) -> StoreResult<()> {
        let Hold::Postgres(tx) = &mut loaded.hold else {
            return Err(StoreError::Backend(
                "PostgreSQL gates are read in its transaction".into(),
            ));
        };
        let bodies: Vec<Json<Gate>> = sqlx::query_scalar(include_str!("sql/gates_of_job.sql"))
            .bind(loaded.job.id)
            .fetch_all(&mut **tx)
            .await?;
        loaded.gates = Some(bodies.into_iter().map(|g| g.0).collect());
        Ok(())
    }

    async fn gates_past_deadline(&self, limit: usize) -> StoreResult<Vec<JobId>> {
        Ok(
            sqlx::query_scalar(include_str!("sql/gates_past_deadline.sql"))
                .bind(limit.min(10_000) as i64)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
