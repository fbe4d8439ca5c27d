//! drover's workers: the pool that leases and runs jobs, leases and heartbeats, the
//! maintenance plugins (lease reaper, pruner), retries, and the job kinds.

pub mod context;
pub mod graph;
pub mod kind;
pub mod kinds;
pub mod maintenance;
pub mod pool;
pub mod retry;

mod completer;
mod heartbeat;
mod runner;

pub use context::{Interrupt, JobContext, RunSettings};
pub use kind::{JobError, Kind, Registry};
pub use pool::{start, Stopper, WorkerHandle, WorkerOptions};
