//! The embedded default store: one SQLite file in WAL mode.
//!
//! All writes go through a single pooled connection (SQLite has one writer at a time; one
//! connection avoids lock contention inside the process) in `BEGIN IMMEDIATE` transactions,
//! so read-then-write sequences cannot hit a stale snapshot. Reads use their own pool.
//! Other processes on the same file (the CLI, say) wait on the busy timeout.
//!
//! Every statement is a file in `sql/`, named after what it does, loaded with
//! `include_str!`. The multi-row statements (`insert_jobs.sql`, `insert_events.sql`,
//! `complete_many.sql`) are templates: a `QueryBuilder` puts the rows' `VALUES` at their
//! `/* rows */` marker (`around_rows`), and binds what follows it after the rows. The
//! claim puts one of the `claim_pick_*.sql` index picks at the `/* pick */` marker of
//! `claim.sql` (see `leases.rs`).
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the store, opening, the event log helpers, the `JobStore` and `Store` impls |
//! | `transact.rs` | load in a write transaction and save: the primitives of [`crate::transitions`] |
//! | `enqueue.rs` | batch enqueue: multi-row INSERTs, 1,000 jobs a statement |
//! | `leases.rs` | claim, renew, complete: the hot path |
//! | `runlog.rs` | checkpoints, events, effects, artifacts |
//! | `gates.rs` | reading gates: a job's, and the inbox |
//! | `maintenance.rs` | retention, the next due job, queue pause and stats |
//! | `peers.rs` | the worker registry and leadership |
//! | `schedules.rs` | schedules as rows, written by compare-and-set |
//! | `limits.rs` | shared rate limits, suppressions and contacts |
//! | `profiles.rs` | profiles, résumés, sealed sessions, the applications ledger |

mod enqueue;
mod gates;
mod leases;
mod limits;
mod maintenance;
mod peers;
mod profiles;
mod runlog;
mod schedules;
mod transact;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::types::Json;

use crate::job::{now_millis, Job, JobId, NewJob};
use crate::migrate;
use crate::notifier::{LocalNotifier, Notifier, Signal};
use crate::status::JobStatus;
use crate::store::*;

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Rows per multi-row statement: 5 parameters a row stays well under SQLite's 32,766.
const EVENT_ROWS_PER_INSERT: usize = 1_000;

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    notifier: Arc<LocalNotifier>,
    options: StoreOptions,
    path: PathBuf,
}

/// A multi-row statement's text before and after its `/* rows */` marker, where a
/// `QueryBuilder` puts the rows' `VALUES`.
fn around_rows(template: &'static str) -> (&'static str, &'static str) {
    template.split_once("/* rows */").unwrap_or((template, ""))
}

impl SqliteStore {
    /// Open (creating if needed) the database file at `path`.
    pub async fn open(path: impl AsRef<Path>, options: StoreOptions) -> StoreResult<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000");
        // Two processes creating the same file at once race to switch it to WAL; the loser
        // gets SQLITE_BUSY without waiting on the busy timeout. Retry for a while.
        let mut tries = 0;
        let writer = loop {
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(connect.clone())
                .await
                .map_err(StoreError::from);
            match pool {
                Err(err) if err.is_transient() && tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => break other?,
            }
        };
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect.read_only(true))
            .await?;
        Ok(SqliteStore {
            writer,
            reader,
            notifier: Arc::new(LocalNotifier::default()),
            options,
            path,
        })
    }

    /// Open from a `sqlite://path` (or `sqlite:path`) URL.
    pub async fn connect(url: &str, options: StoreOptions) -> StoreResult<Self> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::Backend(format!("not an sqlite URL: {url}")))?;
        let path = path.split('?').next().unwrap_or(path);
        Self::open(path, options).await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self
            .writer
            .begin_with(include_str!("sql/begin_immediate.sql"))
            .await?)
    }

    async fn fetch_job(conn: &mut SqliteConnection, id: JobId) -> StoreResult<Option<Job>> {
        let row = sqlx::query(include_str!("sql/get_job.sql"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(|r| job_from_row!(r)).transpose()
    }

    /// The job behind `fence`, if the fence still holds; `Fenced` or `NotFound` otherwise.
    async fn fenced_job(conn: &mut SqliteConnection, fence: Fence) -> StoreResult<Job> {
        let job = Self::fetch_job(conn, fence.job)
            .await?
            .ok_or(StoreError::NotFound(fence.job))?;
        if job.lease_epoch != fence.epoch || job.status != JobStatus::Running {
            return Err(StoreError::Fenced {
                job: fence.job,
                epoch: fence.epoch,
            });
        }
        Ok(job)
    }

    async fn push_event(
        conn: &mut SqliteConnection,
        job: JobId,
        seq: i64,
        kind: &str,
        data: &Value,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(include_str!("sql/insert_event.sql"))
            .bind(job)
            .bind(seq)
            .bind(kind)
            .bind(Json(data))
            .bind(now)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Appends one `status` event per job with multi-row INSERTs: a batch claim or
    /// completion costs a statement per 1,000 jobs, not one per job.
    async fn push_status_events(
        conn: &mut SqliteConnection,
        events: &[(JobId, i64, Value)],
        now: i64,
    ) -> StoreResult<()> {
        let (head, tail) = around_rows(include_str!("sql/insert_events.sql"));
        for chunk in events.chunks(EVENT_ROWS_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(head);
            insert.push_values(chunk, |mut row, (job, seq, data)| {
                row.push_bind(*job)
                    .push_bind(*seq)
                    .push("'status'")
                    .push_bind(Json(data))
                    .push_bind(now);
            });
            insert.push(tail);
            insert.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Bump the job's event counter and append an event in the same transaction.
    async fn append(
        conn: &mut SqliteConnection,
        job: JobId,
        kind: &str,
        data: &Value,
        now: i64,
    ) -> StoreResult<i64> {
        let seq: i64 = sqlx::query_scalar(include_str!("sql/next_event_seq.sql"))
            .bind(job)
            .fetch_one(&mut *conn)
            .await?;
        Self::push_event(conn, job, seq, kind, data, now).await?;
        Ok(seq)
    }

    /// Tells this process's event followers that `job`'s log grew to `seq` (after the commit).
    fn announce(&self, job: JobId, seq: i64) {
        self.notifier.publish(Signal::Event { job, seq });
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Enqueued>> {
        self.insert_batch(jobs).await
    }

    async fn get(&self, id: JobId) -> StoreResult<Job> {
        let mut conn = self.reader.acquire().await?;
        Self::fetch_job(&mut conn, id)
            .await?
            .ok_or(StoreError::NotFound(id))
    }

    async fn list(&self, filter: &JobFilter) -> StoreResult<JobPage> {
        read_job_page!(&self.reader, filter)
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
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn server_health(&self) -> StoreResult<crate::ServerHealth> {
        Ok(crate::ServerHealth {
            file: Some(self.path.clone()),
            ..Default::default()
        })
    }

    fn notifier(&self) -> Arc<dyn Notifier> {
        self.notifier.clone()
    }

    async fn migrate(&self) -> StoreResult<migrate::MigrationReport> {
        let mut tx = self.begin().await?;
        let mut applied = Vec::new();
        let version = apply_migrations!(tx, migrate::SQLITE, [now_millis()], |m| {
            tracing::info!(
                version = m.version,
                name = m.name,
                "applied sqlite migration"
            );
            applied.push((m.version, m.name));
        });
        tx.commit().await?;
        Ok(migrate::MigrationReport { applied, version })
    }

    async fn schema_status(&self) -> StoreResult<migrate::SchemaStatus> {
        let mut conn = self.reader.acquire().await?;
        let exists: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'drover_migrations'",
        )
        .fetch_optional(&mut *conn)
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
            latest: migrate::latest(migrate::SQLITE),
        })
    }
}
