//! What a run leaves behind: checkpoints, events, the effect ledger and artifacts. Every
//! runner write is fenced by the lease epoch inside its statement; a write that matched no
//! row is explained by `PgStore::refused`.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::types::Json;

use super::PgStore;
use crate::job::{from_millis, JobId};
use crate::notifier::Signal;
use crate::row::stored_artifact;
use crate::store::*;

#[async_trait]
impl RunLog for PgStore {
    async fn checkpoint(
        &self,
        fence: Fence,
        checkpoint: NewCheckpoint,
        keep: usize,
    ) -> StoreResult<i64> {
        let size = checkpoint.state.len() as i64;
        let query = sqlx::query_scalar(include_str!("sql/checkpoint.sql"))
            .bind(fence.job)
            .bind(fence.epoch)
            .bind(&checkpoint.step)
            .bind(&checkpoint.state)
            .bind(checkpoint.compressed)
            .bind(keep.max(1) as i64)
            .bind(size);
        if checkpoint.items.is_empty() {
            let seq: Option<i64> = query.fetch_optional(&self.pool).await?;
            return match seq {
                Some(seq) => Ok(seq),
                None => Err(self.refused(fence).await),
            };
        }
        // With item outputs: one transaction. The checkpoint's fenced UPDATE of the job row
        // holds its lock until commit, so the outputs are written under the same fence.
        let mut tx = self.pool.begin().await?;
        let seq: Option<i64> = query.fetch_optional(&mut *tx).await?;
        let Some(seq) = seq else {
            drop(tx);
            return Err(self.refused(fence).await);
        };
        let items = &checkpoint.items;
        let steps: Vec<&str> = items.iter().map(|i| i.step.as_str()).collect();
        let index: Vec<i64> = items
            .iter()
            .map(|i| i64::try_from(i.index).unwrap_or(i64::MAX))
            .collect();
        let visit: Vec<i64> = items
            .iter()
            .map(|i| i64::try_from(i.visit).unwrap_or(i64::MAX))
            .collect();
        let output: Vec<&[u8]> = items.iter().map(|i| i.output.as_slice()).collect();
        sqlx::query(include_str!("sql/upsert_item_outputs.sql"))
            .bind(fence.job)
            .bind(&steps)
            .bind(&index)
            .bind(&visit)
            .bind(&output)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(seq)
    }

    async fn item_outputs(
        &self,
        id: JobId,
        step: &str,
        from: u64,
        limit: usize,
    ) -> StoreResult<Vec<ItemOutput>> {
        read_item_outputs!(&self.pool, id, step, from, limit)
    }

    async fn latest_checkpoint(&self, id: JobId) -> StoreResult<Option<Checkpoint>> {
        read_latest_checkpoint!(&self.pool, id)
    }

    async fn checkpoints(&self, id: JobId) -> StoreResult<Vec<Checkpoint>> {
        read_checkpoints!(&self.pool, id)
    }

    async fn append_event(&self, fence: Fence, kind: &str, data: Value) -> StoreResult<i64> {
        refuse_unstorable_event(kind, &data)?;
        let seq: Option<i64> = sqlx::query_scalar(include_str!("sql/append_event.sql"))
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
        read_events!(&self.pool, id, after, limit)
    }

    async fn record_effect(&self, fence: Fence, key: &str, result: Value) -> StoreResult<Value> {
        refuse_unstorable_effect(key, &result)?;
        // The job row is share-locked so the epoch cannot move between check and insert.
        let stored: Option<Json<Value>> = sqlx::query_scalar(include_str!("sql/record_effect.sql"))
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
        read_effects!(&self.pool, id)
    }

    async fn put_artifact(&self, fence: Fence, artifact: NewArtifact) -> StoreResult<ArtifactMeta> {
        crate::store::check_artifact_name(&artifact.name)?;
        let mut tx = self.pool.begin().await?;
        let job = Self::fenced_job(&mut tx, fence).await?;
        let now = Self::now(&mut tx).await?;
        sqlx::query(include_str!("sql/put_artifact.sql"))
            .bind(fence.job)
            .bind(&artifact.name)
            .bind(&artifact.content_type)
            .bind(&artifact.data)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let (names, meta) = stored_artifact(job.artifacts, artifact, from_millis(now));
        let seq: i64 = sqlx::query_scalar(include_str!("sql/add_artifact_to_job.sql"))
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
        read_artifacts!(&self.pool, id, i32)
    }

    async fn artifact(&self, id: JobId, name: &str) -> StoreResult<Option<Artifact>> {
        read_artifact!(&self.pool, id, name)
    }
}
