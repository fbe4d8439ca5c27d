//! The throughput store: Redis, one server or a Redis Cluster (`redis+cluster://`). Every
//! state change is one Lua script, all time comes from the server's `TIME`, and every key of
//! a queue (its jobs, indexes, event streams, checkpoints, effects) carries the hash tag
//! `{<prefix>:q:<queue>}` (on a cluster `{<prefix>}`, one slot for the whole store: see
//! `keys.rs`), so each script touches one slot. A few global keys live under `{<prefix>}`:
//! the set of queues, the job → queue index, workers and leaderships.
//!
//! Transitions that need the status machine (fail, release, operator actions, reaping) are
//! made once, in [`crate::transitions`]; this store's [`Transact::save`] writes them with a
//! script (`apply.lua`) that applies them only if the job's version did not move meanwhile
//! (else the transition reads and decides again).
//!
//! Durability needs Redis to run with AOF (`appendonly yes`, `appendfsync everysec` or
//! `always`); `migrate` warns when persistence is off.
//!
//! This file holds the connection and the trait impls, each method one call into the file
//! that does the work (named as the method):
//!
//! | file | what |
//! |---|---|
//! | `conn.rs` | the connection: one server, or a Redis Cluster |
//! | `keys.rs` | key and channel names, and a table of every key the store writes |
//! | `codec.rs` | how jobs, events and the run log are laid out in Redis values (pure) |
//! | `queue_index.rs` | which queue holds a job, and its bounded cache |
//! | `jobs.rs` | reading jobs: one, many, `list` |
//! | `enqueue.rs` | `enqueue_batch` |
//! | `leases.rs` | claim, renew, `complete_many` |
//! | `transact.rs` | load and save for [`crate::transitions`] |
//! | `runlog.rs` | events, checkpoints, effects, artifacts |
//! | `maintenance.rs` | prune, `next_run_at`, queues, workers, leadership |
//! | `listener.rs` | the SUBSCRIBE transport of the shared listen loop |
//! | `profiles.rs` | profiles, résumés, sealed sessions, the applications ledger |
//! | `lua/` | the scripts; each but `lead.lua` runs after `prelude.lua` |

mod codec;
mod conn;
mod enqueue;
mod gates;
mod jobs;
mod keys;
mod leases;
mod limits;
mod listener;
mod maintenance;
mod profiles;
mod queue_index;
mod runlog;
mod schedules;
mod transact;

#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use conn::Conn;
use serde_json::Value;

use crate::job::{Job, JobId, NewJob};
use crate::notifier::listen::{Channels, ListenerTask};
use crate::notifier::{LocalNotifier, Notifier};
use crate::store::*;
use listener::RedisTransport;
use queue_index::QueueCache;

const PRELUDE: &str = include_str!("lua/prelude.lua");

struct Scripts {
    enqueue: Script,
    claim: Script,
    renew: Script,
    apply: Script,
    complete: Script,
    checkpoint: Script,
    effect: Script,
    artifact: Script,
    prune: Script,
    lead: Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| {
        let with = |body: &str| Script::new(&format!("{PRELUDE}\n{body}"));
        Scripts {
            enqueue: with(include_str!("lua/enqueue.lua")),
            claim: with(include_str!("lua/claim.lua")),
            renew: with(include_str!("lua/renew.lua")),
            apply: with(include_str!("lua/apply.lua")),
            complete: with(include_str!("lua/complete.lua")),
            checkpoint: with(include_str!("lua/checkpoint.lua")),
            effect: with(include_str!("lua/effect.lua")),
            artifact: with(include_str!("lua/artifact.lua")),
            prune: with(include_str!("lua/prune.lua")),
            lead: Script::new(include_str!("lua/lead.lua")),
        }
    })
}

impl From<redis::RedisError> for StoreError {
    fn from(err: redis::RedisError) -> Self {
        if err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_timeout()
            || matches!(
                err.kind(),
                redis::ErrorKind::BusyLoadingError
                    | redis::ErrorKind::TryAgain
                    // A cluster failing over, or a node the cluster client lost.
                    | redis::ErrorKind::ClusterDown
                    | redis::ErrorKind::MasterDown
                    | redis::ErrorKind::ClusterConnectionNotFound
            )
        {
            StoreError::Unavailable(err.to_string())
        } else {
            StoreError::Backend(err.to_string())
        }
    }
}

/// The Redis store. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    /// Where SUBSCRIBE goes: the server, or each cluster node in turn (a PUBLISH reaches
    /// every node of a cluster).
    subscribe_to: Vec<redis::Client>,
    /// On a cluster every key of the store is in the slot of `{<prefix>}` (see `keys.rs`).
    cluster: bool,
    prefix: String,
    notifier: Arc<LocalNotifier>,
    listener: Arc<ListenerTask>,
    options: StoreOptions,
    /// job → queue; a job never changes queue (see `queue_index.rs`).
    queue_cache: Arc<QueueCache>,
}

impl RedisStore {
    /// Connect to `redis://host:port[/db][?prefix=name]` (prefix default `drover`), or to a
    /// Redis Cluster with `redis+cluster://host:port[,host:port…][?prefix=name]` (any of its
    /// nodes; the rest are discovered; a password as `redis+cluster://:pw@host:port,…`
    /// applies to every node).
    pub async fn connect(url: &str, options: StoreOptions) -> StoreResult<Self> {
        let (base, params) = url.split_once('?').unwrap_or((url, ""));
        let mut prefix = "drover".to_string();
        for pair in params.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("prefix", value)) => prefix = value.to_string(),
                _ => {
                    return Err(StoreError::Backend(format!(
                        "unknown Redis URL parameter `{pair}` (drover reads `prefix`)"
                    )))
                }
            }
        }
        let valid = !prefix.is_empty()
            && prefix.len() <= 64
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(StoreError::Backend(format!(
                "prefix `{prefix}` must be 1 to 64 of [A-Za-z0-9._-]"
            )));
        }
        if let Some(nodes) = base.strip_prefix("redis+cluster://") {
            return Self::connect_cluster(nodes, prefix, options).await;
        }
        let client = redis::Client::open(base)
            .map_err(|e| StoreError::Backend(format!("bad Redis URL: {e}")))?;
        // The manager's backoff (backon) starts at 1 s and multiplies by `factor` per try:
        // keep it at 2 and cap it at 1 s, or a restarted server is waited for for minutes.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(5))
            .set_response_timeout(Duration::from_secs(10))
            .set_factor(2)
            .set_max_delay(1000)
            .set_number_of_retries(3);
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(RedisStore {
            conn: Conn::Single(conn),
            subscribe_to: vec![client],
            cluster: false,
            prefix,
            notifier: Arc::new(LocalNotifier::default()),
            listener: Arc::new(ListenerTask::default()),
            options,
            queue_cache: Arc::new(QueueCache::default()),
        })
    }

    /// `nodes`: `[userinfo@]host:port[,host:port…][/]`, the authority of a `redis+cluster://`
    /// URL.
    async fn connect_cluster(
        nodes: &str,
        prefix: String,
        options: StoreOptions,
    ) -> StoreResult<Self> {
        let nodes = nodes.trim_end_matches('/');
        let (userinfo, hosts) = match nodes.rsplit_once('@') {
            Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
            None => (String::new(), nodes),
        };
        let urls: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|host| format!("redis://{userinfo}{host}"))
            .collect();
        if urls.is_empty() {
            return Err(StoreError::Backend(
                "a redis+cluster:// URL names no node (redis+cluster://host:port[,host:port…])"
                    .to_string(),
            ));
        }
        let bad = |e: redis::RedisError| StoreError::Backend(format!("bad Redis URL: {e}"));
        let subscribe_to = urls
            .iter()
            .map(|url| redis::Client::open(url.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let client = redis::cluster::ClusterClient::builder(urls)
            .connection_timeout(Duration::from_secs(5))
            .response_timeout(Duration::from_secs(10))
            .build()
            .map_err(bad)?;
        let conn = client.get_async_connection().await?;
        Ok(RedisStore {
            conn: Conn::Cluster(conn),
            subscribe_to,
            cluster: true,
            prefix,
            notifier: Arc::new(LocalNotifier::default()),
            listener: Arc::new(ListenerTask::default()),
            options,
            queue_cache: Arc::new(QueueCache::default()),
        })
    }

    /// The key prefix (isolates installations and tests sharing one server).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn conn(&self) -> Conn {
        self.conn.clone()
    }

    async fn queues_known(&self) -> StoreResult<Vec<String>> {
        let mut queues: Vec<String> = self.conn().smembers(self.global("queues")).await?;
        queues.sort();
        Ok(queues)
    }

    async fn server_now(&self) -> StoreResult<i64> {
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut self.conn()).await?;
        Ok(secs * 1000 + micros / 1000)
    }
}

#[async_trait]
impl JobStore for RedisStore {
    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Enqueued>> {
        enqueue::enqueue_batch(self, jobs).await
    }

    async fn get(&self, id: JobId) -> StoreResult<Job> {
        self.read(id).await
    }

    async fn list(&self, filter: &JobFilter) -> StoreResult<JobPage> {
        jobs::list(self, filter).await
    }

    async fn claim(&self, request: &ClaimRequest) -> StoreResult<Vec<Lease>> {
        leases::claim(self, request).await
    }

    async fn renew(&self, fences: &[Fence], ttl: Duration) -> StoreResult<Vec<Renewal>> {
        leases::renew(self, fences, ttl).await
    }

    async fn complete_many(&self, completions: &[Completion]) -> StoreResult<Vec<Completed>> {
        refuse_unstorable(completions)?;
        leases::complete_many(self, completions).await
    }
}

#[async_trait]
impl RunLog for RedisStore {
    async fn checkpoint(
        &self,
        fence: Fence,
        checkpoint: NewCheckpoint,
        keep: usize,
    ) -> StoreResult<i64> {
        runlog::checkpoint(self, fence, checkpoint, keep).await
    }

    async fn item_outputs(
        &self,
        id: JobId,
        step: &str,
        from: u64,
        limit: usize,
    ) -> StoreResult<Vec<ItemOutput>> {
        runlog::item_outputs(self, id, step, from, limit).await
    }

    async fn latest_checkpoint(&self, id: JobId) -> StoreResult<Option<Checkpoint>> {
        Ok(runlog::checkpoints(self, id).await?.pop())
    }

    async fn checkpoints(&self, id: JobId) -> StoreResult<Vec<Checkpoint>> {
        runlog::checkpoints(self, id).await
    }

    async fn append_event(&self, fence: Fence, kind: &str, data: Value) -> StoreResult<i64> {
        refuse_unstorable_event(kind, &data)?;
        runlog::append_event(self, fence, kind, data).await
    }

    async fn events(&self, id: JobId, after: i64, limit: usize) -> StoreResult<Vec<Event>> {
        runlog::events(self, id, after, limit).await
    }

    async fn record_effect(&self, fence: Fence, key: &str, result: Value) -> StoreResult<Value> {
        refuse_unstorable_effect(key, &result)?;
        runlog::record_effect(self, fence, key, result).await
    }

    async fn effects(&self, id: JobId) -> StoreResult<Vec<Effect>> {
        runlog::effects(self, id).await
    }

    async fn put_artifact(&self, fence: Fence, artifact: NewArtifact) -> StoreResult<ArtifactMeta> {
        crate::store::check_artifact_name(&artifact.name)?;
        runlog::put_artifact(self, fence, artifact).await
    }

    async fn artifacts(&self, id: JobId) -> StoreResult<Vec<ArtifactMeta>> {
        runlog::artifacts(self, id).await
    }

    async fn artifact(&self, id: JobId, name: &str) -> StoreResult<Option<Artifact>> {
        runlog::artifact(self, id, name).await
    }
}

#[async_trait]
impl Maintenance for RedisStore {
    async fn prune(&self, retention: &Retention, limit: usize) -> StoreResult<u64> {
        maintenance::prune(self, retention, limit).await
    }

    async fn next_run_at(&self) -> StoreResult<Option<DateTime<Utc>>> {
        maintenance::next_run_at(self).await
    }

    async fn set_queue_paused(&self, name: &str, paused: bool) -> StoreResult<()> {
        if paused {
            maintenance::pause_queue(self, name).await
        } else {
            maintenance::resume_queue(self, name).await
        }
    }

    async fn queues(&self) -> StoreResult<Vec<QueueStats>> {
        maintenance::queues(self).await
    }
}

#[async_trait]
impl Peers for RedisStore {
    async fn heartbeat_worker(&self, worker: &WorkerInfo) -> StoreResult<()> {
        maintenance::heartbeat_worker(self, worker).await
    }

    async fn remove_worker(&self, id: &str) -> StoreResult<()> {
        maintenance::remove_worker(self, id).await
    }

    async fn workers(&self, within: Duration) -> StoreResult<Vec<WorkerInfo>> {
        maintenance::workers(self, within).await
    }

    async fn try_lead(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        maintenance::try_lead(self, name, holder, ttl).await
    }

    async fn resign(&self, name: &str, holder: &str) -> StoreResult<()> {
        maintenance::resign(self, name, holder).await
    }
}

#[async_trait]
impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn notifier(&self) -> Arc<dyn Notifier> {
        self.listener.start(
            || RedisTransport(self.subscribe_to.clone()),
            || Channels::named(|name| self.channel(name)),
            &self.notifier,
        );
        self.notifier.clone()
    }

    /// Redis needs no schema: this checks the server answers and warns when persistence is
    /// off (without AOF a crash of Redis loses acknowledged jobs).
    async fn schema_status(&self) -> StoreResult<crate::migrate::SchemaStatus> {
        Ok(crate::migrate::SchemaStatus {
            version: 0,
            latest: 0,
        })
    }

    async fn migrate(&self) -> StoreResult<crate::migrate::MigrationReport> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        if self.append_only().await == Some(false) {
            tracing::warn!(
                "Redis runs without AOF (appendonly no): a Redis crash can lose acknowledged \
                 jobs. Run it with --appendonly yes --appendfsync everysec (or always)."
            );
        }
        Ok(crate::migrate::MigrationReport::default())
    }

    async fn server_health(&self) -> StoreResult<crate::ServerHealth> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(crate::ServerHealth {
            append_only: self.append_only().await,
            ..Default::default()
        })
    }
}

impl RedisStore {
    /// `CONFIG GET appendonly`; `None` when the server does not say (managed services
    /// often refuse `CONFIG`).
    async fn append_only(&self) -> Option<bool> {
        let reply: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .query_async(&mut self.conn())
            .await;
        match reply {
            Ok(reply) => match reply.get(1).map(String::as_str) {
                Some("yes") => Some(true),
                Some("no") => Some(false),
                _ => None,
            },
            Err(err) => {
                tracing::debug!(error = %err, "cannot read Redis persistence settings");
                None
            }
        }
    }
}
