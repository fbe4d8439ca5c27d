//! The processes sharing a store: the worker registry and leadership for singleton work.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreResult;

/// A live worker process, as its heartbeat reports it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerInfo {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub slots: u32,
    pub busy: u32,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
}

/// The worker registry (what `GET /v1/workers` shows) and named leaderships (who runs the
/// reaper and the pruner).
#[async_trait]
pub trait Peers: Send + Sync {
    /// Record a worker's heartbeat (creates it on first call).
    async fn heartbeat_worker(&self, worker: &WorkerInfo) -> StoreResult<()>;
    /// Forget a worker (clean shutdown).
    async fn remove_worker(&self, id: &str) -> StoreResult<()>;
    /// Workers whose last heartbeat is younger than `within`.
    async fn workers(&self, within: Duration) -> StoreResult<Vec<WorkerInfo>>;

    /// Become (or stay) the holder of the named leadership for `ttl`. True when held.
    /// At most one holder at a time; a holder that stops renewing loses it after `ttl`.
    async fn try_lead(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool>;
    /// Give leadership up early (clean shutdown).
    async fn resign(&self, name: &str, holder: &str) -> StoreResult<()>;
}
