//! Load and save: the two primitives the shared transitions ([`crate::transitions`]) are
//! written on. The load opens the write transaction (`BEGIN IMMEDIATE`), so nothing can
//! change the job before the save.

use async_trait::async_trait;
use sqlx::sqlite::SqliteConnection;

use super::SqliteStore;
use sqlx::types::Json;

use crate::gate::Gate;
use crate::job::{from_millis, now_millis, to_millis, Job, JobId};
use crate::notifier::Signal;
use crate::store::*;
use crate::transitions::Hold;

impl SqliteStore {
    /// Write `job`'s status-bearing columns and append its `status` event.
    async fn save_status(
        conn: &mut SqliteConnection,
        job: &Job,
        event: &serde_json::Value,
        now: i64,
    ) -> StoreResult<()> {
        let finished = job.status.is_terminal().then_some(now);
        bind_status_columns!(sqlx::query(include_str!("sql/save_status.sql")), job)
            .bind(now)
            .bind(finished)
            .bind(job.id)
            .execute(&mut *conn)
            .await?;
        Self::append(conn, job.id, "status", event, now).await?;
        Ok(())
    }

    /// Stores `gates` as they are, each with its `gate` event.
    async fn save_gates(conn: &mut SqliteConnection, gates: &[Gate], now: i64) -> StoreResult<()> {
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
            Self::append(conn, gate.job_id, "gate", &gate.event(), now).await?;
        }
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
        Ok(Loaded::new(
            job,
            from_millis(now_millis()),
            Hold::Sqlite(tx),
        ))
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
            Self::save_status(&mut tx, new, &write.status_event(), now).await?;
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
        Self::save_gates(&mut tx, &write.gates, now).await?;
        let job = Self::fetch_job(&mut tx, new.id)
            .await?
            .ok_or(StoreError::NotFound(new.id))?;
        tx.commit().await?;
        if status_changed || !write.gates.is_empty() {
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

    async fn load_gates(&self, loaded: &mut Loaded) -> StoreResult<()> {
        let Hold::Sqlite(tx) = &mut loaded.hold else {
            return Err(StoreError::Backend(
                "SQLite gates are read in its transaction".into(),
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
                .bind(now_millis())
                .bind(limit.min(10_000) as i64)
                .fetch_all(&self.reader)
                .await?,
        )
    }
}
