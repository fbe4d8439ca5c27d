//! What a run leaves behind: checkpoints, events, the effect ledger and artifacts. Every
//! runner write checks its fence first (`SqliteStore::fenced_job`) in the same write
//! transaction.

use async_trait::async_trait;
use serde_json::{json, Value};
use sqlx::types::Json;

use super::SqliteStore;
use crate::job::{from_millis, now_millis, JobId};
use crate::row::stored_artifact;
use crate::store::*;

#[async_trait]
impl RunLog for SqliteStore {
    async fn checkpoint(
        &self,
        fence: Fence,
        checkpoint: NewCheckpoint,
        keep: usize,
    ) -> StoreResult<i64> {
        let mut tx = self.begin().await?;
        let now = now_millis();
        Self::fenced_job(&mut tx, fence).await?;
        let seq: i64 = sqlx::query_scalar(include_str!("sql/next_checkpoint_seq.sql"))
            .bind(fence.job)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(include_str!("sql/insert_checkpoint.sql"))
            .bind(fence.job)
            .bind(seq)
            .bind(&checkpoint.step)
            .bind(&checkpoint.state)
            .bind(checkpoint.compressed)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for item in &checkpoint.items {
            sqlx::query(include_str!("sql/upsert_item_output.sql"))
                .bind(fence.job)
                .bind(&item.step)
                .bind(i64::try_from(item.index).unwrap_or(i64::MAX))
                .bind(i64::try_from(item.visit).unwrap_or(i64::MAX))
                .bind(&item.output)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(include_str!("sql/drop_old_checkpoints.sql"))
            .bind(fence.job)
            .bind(seq - keep.max(1) as i64)
            .execute(&mut *tx)
            .await?;
        let data = json!({"seq": seq, "step": checkpoint.step, "size": checkpoint.state.len()});
        let event = Self::append(&mut tx, fence.job, "checkpoint", &data, now).await?;
        tx.commit().await?;
        self.announce(fence.job, event);
        Ok(seq)
    }

    async fn item_outputs(
        &self,
        id: JobId,
        step: &str,
        from: u64,
        limit: usize,
    ) -> StoreResult<Vec<ItemOutput>> {
        read_item_outputs!(&self.reader, id, step, from, limit)
    }

    async fn latest_checkpoint(&self, id: JobId) -> StoreResult<Option<Checkpoint>> {
        read_latest_checkpoint!(&self.reader, id)
    }

    async fn checkpoints(&self, id: JobId) -> StoreResult<Vec<Checkpoint>> {
        read_checkpoints!(&self.reader, id)
    }

    async fn append_event(&self, fence: Fence, kind: &str, data: Value) -> StoreResult<i64> {
        refuse_unstorable_event(kind, &data)?;
        let mut tx = self.begin().await?;
        let now = now_millis();
        Self::fenced_job(&mut tx, fence).await?;
        if kind == "progress" {
            sqlx::query(include_str!("sql/set_progress.sql"))
                .bind(Json(&data))
                .bind(now)
                .bind(fence.job)
                .execute(&mut *tx)
                .await?;
        }
        let seq = Self::append(&mut tx, fence.job, kind, &data, now).await?;
        tx.commit().await?;
        self.announce(fence.job, seq);
        Ok(seq)
    }

    async fn events(&self, id: JobId, after: i64, limit: usize) -> StoreResult<Vec<Event>> {
        read_events!(&self.reader, id, after, limit)
    }

    async fn record_effect(&self, fence: Fence, key: &str, result: Value) -> StoreResult<Value> {
        refuse_unstorable_effect(key, &result)?;
        let mut tx = self.begin().await?;
        Self::fenced_job(&mut tx, fence).await?;
        sqlx::query(include_str!("sql/record_effect.sql"))
            .bind(fence.job)
            .bind(key)
            .bind(Json(&result))
            .bind(fence.epoch)
            .bind(now_millis())
            .execute(&mut *tx)
            .await?;
        let stored: Json<Value> = sqlx::query_scalar(include_str!("sql/effect_result.sql"))
            .bind(fence.job)
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(stored.0)
    }

    async fn effects(&self, id: JobId) -> StoreResult<Vec<Effect>> {
        read_effects!(&self.reader, id)
    }

    async fn put_artifact(&self, fence: Fence, artifact: NewArtifact) -> StoreResult<ArtifactMeta> {
        crate::store::check_artifact_name(&artifact.name)?;
        let mut tx = self.begin().await?;
        let now = now_millis();
        let job = Self::fenced_job(&mut tx, fence).await?;
        sqlx::query(include_str!("sql/put_artifact.sql"))
            .bind(fence.job)
            .bind(&artifact.name)
            .bind(&artifact.content_type)
            .bind(&artifact.data)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let (names, meta) = stored_artifact(job.artifacts, artifact, from_millis(now));
        sqlx::query(include_str!("sql/set_artifact_names.sql"))
            .bind(Json(&names))
            .bind(now)
            .bind(fence.job)
            .execute(&mut *tx)
            .await?;
        let data = serde_json::to_value(&meta).unwrap_or_default();
        let seq = Self::append(&mut tx, fence.job, "artifact", &data, now).await?;
        tx.commit().await?;
        self.announce(fence.job, seq);
        Ok(meta)
    }

    async fn artifacts(&self, id: JobId) -> StoreResult<Vec<ArtifactMeta>> {
        read_artifacts!(&self.reader, id, i64)
    }

    async fn artifact(&self, id: JobId, name: &str) -> StoreResult<Option<Artifact>> {
        read_artifact!(&self.reader, id, name)
    }
}
