//! The fleet store: PostgreSQL, shared by any number of worker processes on any machines.
//!
//! The claim is one statement (`FOR UPDATE SKIP LOCKED`, ordered by priority, run_at, id,
//! flipping the rows to running and logging their status events). Times come from the
//! server's clock (`drover_now()`), so workers on different machines agree on lease expiry.
//! Wake-ups and control requests travel by LISTEN/NOTIFY, on channels named after the schema
//! so that many drover installations (or tests) can share one database.
//!
//! Every statement is a file in `sql/`, named after what it does, loaded with
//! `include_str!`. Two are templates completed in Rust: `claim.sql` gets one of the
//! `claim_filter_*.sql` queue filters at `/* queue filter */` (one statement per filter,
//! built once: see `leases.rs`), and `create_schema.sql` gets the (validated) schema name
//! at `/* schema */`.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the store, connecting, the `JobStore` and `Store` impls |
//! | `listener.rs` | the LISTEN/NOTIFY transport of the shared listen loop |
//! | `transact.rs` | load for update and save: the primitives of [`crate::transitions`] |
//! | `enqueue.rs` | batch enqueue: one `unnest` INSERT, queue depth under an advisory lock |
//! | `leases.rs` | claim, renew, complete: the hot path |
//! | `runlog.rs` | checkpoints, events, effects, artifacts |
//! | `gates.rs` | reading gates: a job's, and the inbox |
//! | `maintenance.rs` | retention, the next due job, queue pause and stats |
//! | `peers.rs` | the worker registry and leadership |
//! | `schedules.rs` | schedules as rows, written by compare-and-set |

mod enqueue;
mod gates;
mod leases;
mod limits;
mod listener;
mod maintenance;
mod peers;
mod profiles;
mod runlog;
mod schedules;
mod transact;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::Executor;

use crate::job::{Job, JobId, NewJob};
use crate::migrate;
use crate::notifier::listen::{Channels, ListenerTask};
use crate::notifier::{LocalNotifier, Notifier};
use crate::status::JobStatus;
use crate::store::*;

use listener::PgTransport;

/// The PostgreSQL store. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    schema: String,
    notifier: Arc<LocalNotifier>,
    listener: Arc<ListenerTask>,
    options: StoreOptions,
}

/// Channels, per schema: `jobs` (payload: queue), `control` (job id), `events`
/// (`job id:seq`, sent by a trigger on `job_events`).
fn channel(schema: &str, name: &str) -> String {
    format!("drover.{schema}.{name}")
}

impl PgStore {
    /// Connect to `postgres://…`. Extra query parameters drover reads: `schema` (default
    /// `public`) and `pool_size` (default 10). Connections are made on demand, so a
    /// database that is down now is retried later rather than failing here.
    pub async fn connect(url: &str, options: StoreOptions) -> StoreResult<Self> {
        let (base, params) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = "public".to_string();
        let mut pool_size = 10u32;
        let mut rest = Vec::new();
        for pair in params.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", value)) => schema = value.to_string(),
                Some(("pool_size", value)) => {
                    pool_size = value.parse().map_err(|_| {
                        StoreError::Backend(format!("pool_size `{value}` is not a number"))
                    })?
                }
                _ => rest.push(pair),
            }
        }
        let valid = !schema.is_empty()
            && schema.len() <= 40
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(StoreError::Backend(format!(
                "schema `{schema}` must be 1 to 40 of [a-z0-9_]"
            )));
        }
        let base = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let connect = PgConnectOptions::from_str(&base)
            .map_err(|e| StoreError::Backend(format!("bad PostgreSQL URL: {e}")))?
            .options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(connect);
        Ok(PgStore {
            pool,
            schema,
            notifier: Arc::new(LocalNotifier::default()),
            listener: Arc::new(ListenerTask::default()),
            options,
        })
    }

    /// The schema this store keeps its tables in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The underlying pool (for tests and tools that inspect the tables).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn channel(&self, name: &str) -> String {
        channel(&self.schema, name)
    }

    async fn notify(conn: &mut PgConnection, channel: &str, payload: &str) -> StoreResult<()> {
        sqlx::query(include_str!("sql/notify.sql"))
            .bind(channel)
            .bind(payload)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Takes a transaction-scoped advisory lock named `key` (released at commit).
    /// Applies `set`'s pending migrations (see [`migrate`]): [`Store::migrate`] with
    /// [`migrate::POSTGRES`]; public for tests of the migrator itself.
    ///
    /// One migrator per schema at a time, across every process, by a session advisory lock
    /// on a connection of its own. It is taken by polling `pg_try_advisory_lock`, never by
    /// waiting inside a statement: a `CREATE INDEX CONCURRENTLY` waits for every open
    /// transaction of the database, and a rival migrator blocked in a lock statement would
    /// be one, waiting in turn for it.
    pub async fn migrate_with(
        &self,
        set: &'static [migrate::Migration],
    ) -> StoreResult<migrate::MigrationReport> {
        let mut conn = self.pool.acquire().await?;
        let key = format!("drover.migrate.{}", self.schema);
        let mut wait = Duration::from_millis(20);
        while !sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(&key)
            .fetch_one(&mut *conn)
            .await?
        {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(500));
        }
        let result = self.apply_migrations(&mut conn, set).await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
            .bind(&key)
            .execute(&mut *conn)
            .await;
        if result.is_err() || unlocked.is_err() {
            // Closing the session is what surely releases its lock.
            drop(conn.detach());
        }
        let report = result?;
        unlocked?;
        Ok(report)
    }

    async fn apply_migrations(
        &self,
        conn: &mut PgConnection,
        set: &'static [migrate::Migration],
    ) -> StoreResult<migrate::MigrationReport> {
        let create = include_str!("sql/create_schema.sql").replace("/* schema */", &self.schema);
        conn.execute(create.as_str()).await?;
        sqlx::query(include_str!("sql/create_migrations.sql"))
            .execute(&mut *conn)
            .await?;
        let done =
            || sqlx::query_scalar::<_, Option<i64>>(include_str!("sql/applied_migration.sql"));
        let before = done().fetch_one(&mut *conn).await?.unwrap_or(0);
        let mut applied = Vec::new();
        for m in set.iter().filter(|m| m.version > before) {
            let record = sqlx::query(include_str!("sql/record_migration.sql"))
                .bind(m.version)
                .bind(m.name);
            if m.in_transaction() {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                (&mut *tx).execute(m.sql).await?;
                record.execute(&mut *tx).await?;
                tx.commit().await?;
            } else {
                // One statement per round trip: several in one would share an implicit
                // transaction, which CONCURRENTLY refuses.
                for statement in m.statements() {
                    conn.execute(statement).await?;
                }
                record.execute(&mut *conn).await?;
            }
            tracing::info!(
                version = m.version,
                name = m.name,
                schema = %self.schema,
                transaction = m.in_transaction(),
                "applied postgres migration"
            );
            applied.push((m.version, m.name));
        }
        Ok(migrate::MigrationReport {
            applied,
            version: done().fetch_one(&mut *conn).await?.unwrap_or(0),
        })
    }

    async fn lock(conn: &mut PgConnection, key: String) -> StoreResult<()> {
        sqlx::query(include_str!("sql/advisory_xact_lock.sql"))
            .bind(key)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn fetch_job(conn: &mut PgConnection, id: JobId, lock: bool) -> StoreResult<Job> {
        let sql = if lock {
            include_str!("sql/get_job_for_update.sql")
        } else {
            include_str!("sql/get_job.sql")
        };
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound(id))?;
        job_from_row!(&row)
    }

    /// The job behind `fence`, locked, if the fence still holds.
    async fn fenced_job(conn: &mut PgConnection, fence: Fence) -> StoreResult<Job> {
        let job = Self::fetch_job(conn, fence.job, true).await?;
        if job.lease_epoch != fence.epoch || job.status != JobStatus::Running {
            return Err(StoreError::Fenced {
                job: fence.job,
                epoch: fence.epoch,
            });
        }
        Ok(job)
    }

    /// Why a fenced single-statement write matched no row: the job is gone or the fence broke.
    async fn refused(&self, fence: Fence) -> StoreError {
        let mut conn = match self.pool.acquire().await {
            Ok(conn) => conn,
            Err(err) => return err.into(),
        };
        match Self::fetch_job(&mut conn, fence.job, false).await {
            Ok(_) => StoreError::Fenced {
                job: fence.job,
                epoch: fence.epoch,
            },
            Err(err) => err,
        }
    }

    async fn now(conn: &mut PgConnection) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(include_str!("sql/now.sql"))
            .fetch_one(&mut *conn)
            .await?)
    }
}

#[async_trait]
impl JobStore for PgStore {
    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Enqueued>> {
        self.insert_batch(jobs).await
    }

    async fn get(&self, id: JobId) -> StoreResult<Job> {
        let mut conn = self.pool.acquire().await?;
        Self::fetch_job(&mut conn, id, false).await
    }

    async fn list(&self, filter: &JobFilter) -> StoreResult<JobPage> {
        read_job_page!(&self.pool, filter)
    }

    async fn claim(&self, request: &ClaimRequest) -> StoreResult<Vec<Lease>> {
        self.claim_leases(request).await
    }

    async fn renew(&self, fences: &[Fence], ttl: Duration) -> StoreResult<Vec<Renewal>> {
        self.renew_leases(fences, ttl).await
    }

    async fn complete_many(&self, completions: &[Completion]) -> StoreResult<Vec<Completed>> {
        refuse_unstorable(completions)?;
        self.complete_leases(completions).await
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn notifier(&self) -> Arc<dyn Notifier> {
        self.listener.start(
            || PgTransport(self.pool.clone()),
            || Channels::named(|name| channel(&self.schema, name)),
            &self.notifier,
        );
        self.notifier.clone()
    }

    async fn migrate(&self) -> StoreResult<migrate::MigrationReport> {
        self.migrate_with(migrate::POSTGRES).await
    }

    async fn server_health(&self) -> StoreResult<crate::ServerHealth> {
        let micros: i64 =
            sqlx::query_scalar("SELECT (extract(epoch FROM now()) * 1000000)::bigint")
                .fetch_one(&self.pool)
                .await?;
        Ok(crate::ServerHealth {
            clock: chrono::DateTime::from_timestamp_micros(micros),
            ..Default::default()
        })
    }

    async fn schema_status(&self) -> StoreResult<migrate::SchemaStatus> {
        let mut conn = self.pool.acquire().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('drover_migrations')::text")
                .fetch_one(&mut *conn)
                .await?;
        let version = match exists {
            None => 0,
            Some(_) => {
                sqlx::query_scalar::<_, Option<i64>>(include_str!("sql/applied_migration.sql"))
                    .fetch_one(&mut *conn)
                    .await?
                    .unwrap_or(0)
            }
        };
        Ok(migrate::SchemaStatus {
            version,
            latest: migrate::latest(migrate::POSTGRES),
        })
    }
}
