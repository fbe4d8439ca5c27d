//! drover's durable core: the job model, the status machine, the `Store` seam and its
//! backends, and the notifier that wakes workers across processes.

#[macro_use]
mod row;
#[macro_use]
mod sql_rows;

mod admission;
pub mod application;
pub mod gate;
pub mod job;
pub mod limits;
pub mod migrate;
pub mod notifier;
pub mod operator;
pub mod postgres;
pub mod profile;
mod queue_stats;
pub mod redis_store;
pub mod schedule;
pub mod seal;
pub mod secret;
pub mod sqlite;
pub mod status;
pub mod store;
pub mod suppress;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transitions;

pub use application::{Application, ApplicationCounts, CapKind, Caps, Claim, Outcome};
pub use gate::{Decision, Gate, GateCursor, GateFilter, GatePage, GateStatus, NewGate};
pub use job::{FailureKind, Job, JobFailure, JobId, NewJob, Priority, Timeouts};
pub use limits::{Observation, Permit, RateLimit};
pub use notifier::{LocalNotifier, Notifier, Signal};
pub use postgres::PgStore;
pub use profile::{Profile, Resume, ResumeInfo, SealedSession, SessionInfo, StoredProfile};
pub use redis_store::RedisStore;
pub use sqlite::SqliteStore;
pub use status::{JobStatus, Transition};
pub use store::*;
pub use suppress::{Contact, Suppression, SuppressionReason};

use std::sync::Arc;

/// Open the store a URL names: `sqlite://path`, `postgres://…` (optionally `?schema=name`),
/// `redis://…` (optionally `?prefix=name`), `redis+cluster://host:port[,host:port…]` (a Redis
/// Cluster; also `?prefix=name`).
pub async fn connect(url: &str, options: StoreOptions) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, options).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url, options).await?))
    } else if url.starts_with("redis://") || url.starts_with("redis+cluster://") {
        Ok(Arc::new(RedisStore::connect(url, options).await?))
    } else {
        Err(StoreError::Backend(format!(
            "unsupported store URL `{url}`: expected sqlite://path, postgres://…, redis://… or redis+cluster://…"
        )))
    }
}
