//! What a run leaves behind: its event log, checkpoints, effect ledger and artifacts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{Fence, StoreResult};
use crate::job::JobId;

/// A checkpoint to write.
#[derive(Debug, Clone)]
pub struct NewCheckpoint {
    pub step: String,
    pub state: Vec<u8>,
    /// The state is zstd-compressed.
    pub compressed: bool,
    /// Map item outputs written in the same transaction (script) as the checkpoint, so a
    /// row exists for an item exactly when the checkpoint's done ranges say it ran.
    /// Rewriting an item's row replaces it.
    pub items: Vec<NewItemOutput>,
}

/// A map item's output to store with a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItemOutput {
    /// The map step.
    pub step: String,
    /// The item's index in the map's items.
    pub index: u64,
    /// Which run of the step wrote it: the graph's steps done when the map started, so a
    /// step that runs again (a loop) never reads the outputs of its earlier run.
    pub visit: u64,
    /// The output, as JSON bytes.
    pub output: Vec<u8>,
}

/// A stored map item output.
pub type ItemOutput = NewItemOutput;

/// The most item outputs one [`RunLog::item_outputs`] call answers.
pub const MAX_ITEM_OUTPUTS_PER_READ: usize = 1_000;

/// A stored checkpoint.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checkpoint {
    pub job_id: uuid::Uuid,
    /// Per job, increasing.
    pub seq: i64,
    pub step: String,
    #[serde(skip)]
    pub state: Vec<u8>,
    pub compressed: bool,
    pub size: usize,
    pub created_at: DateTime<Utc>,
}

/// One entry of a job's event log.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub job_id: uuid::Uuid,
    /// Per job, increasing, no gaps.
    pub seq: i64,
    /// status | progress | checkpoint | log | artifact | error
    pub kind: String,
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

/// A completed external side effect, as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Effect {
    pub key: String,
    pub result: Value,
    /// The lease epoch of the run that performed it.
    pub epoch: i64,
    pub created_at: DateTime<Utc>,
}

/// An artifact to store.
#[derive(Debug, Clone)]
pub struct NewArtifact {
    pub name: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// A stored artifact's metadata.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArtifactMeta {
    pub name: String,
    pub content_type: String,
    pub size: usize,
    pub created_at: DateTime<Utc>,
}

/// A stored artifact with its content.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub meta: ArtifactMeta,
    pub data: Vec<u8>,
}

/// The most events one [`RunLog::events`] call answers.
pub const MAX_EVENTS_PER_READ: usize = 10_000;

/// A job's run log. Every write is fenced: it carries the lease epoch of the run that makes
/// it and is refused with [`super::StoreError::Fenced`] when that epoch is stale.
#[async_trait]
pub trait RunLog: Send + Sync {
    /// Store a checkpoint (fenced), keeping only the newest `keep`. Returns its seq.
    async fn checkpoint(
        &self,
        fence: Fence,
        checkpoint: NewCheckpoint,
        keep: usize,
    ) -> StoreResult<i64>;

    /// The job's stored outputs of map step `step` with index >= `from`, in index order, at
    /// most `limit` and never more than [`MAX_ITEM_OUTPUTS_PER_READ`]: page on with the last
    /// index + 1. Items skipped after failing have no output.
    async fn item_outputs(
        &self,
        id: JobId,
        step: &str,
        from: u64,
        limit: usize,
    ) -> StoreResult<Vec<ItemOutput>>;

    /// The newest checkpoint, if any.
    async fn latest_checkpoint(&self, id: JobId) -> StoreResult<Option<Checkpoint>>;

    /// The kept checkpoints' metadata, oldest first.
    async fn checkpoints(&self, id: JobId) -> StoreResult<Vec<Checkpoint>>;

    /// Append an event to the job's log (fenced). Returns its seq.
    async fn append_event(&self, fence: Fence, kind: &str, data: Value) -> StoreResult<i64>;

    /// Events with seq > `after`, oldest first, at most `limit` and never more than
    /// [`MAX_EVENTS_PER_READ`]: a caller that wants the whole log pages on with the last seq.
    async fn events(&self, id: JobId, after: i64, limit: usize) -> StoreResult<Vec<Event>>;

    /// Record a completed side effect under `key` (fenced). The first record for a key
    /// wins: recording it again returns the stored result, not the new one.
    async fn record_effect(&self, fence: Fence, key: &str, result: Value) -> StoreResult<Value>;

    /// Every effect the job has recorded.
    async fn effects(&self, id: JobId) -> StoreResult<Vec<Effect>>;

    /// Store (or replace) a named artifact (fenced), list it on the job and log an
    /// `artifact` event.
    async fn put_artifact(&self, fence: Fence, artifact: NewArtifact) -> StoreResult<ArtifactMeta>;

    /// The job's artifacts' metadata, by name.
    async fn artifacts(&self, id: JobId) -> StoreResult<Vec<ArtifactMeta>>;

    /// One artifact with its content.
    async fn artifact(&self, id: JobId, name: &str) -> StoreResult<Option<Artifact>>;
}
