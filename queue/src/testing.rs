//! Test support, shared by the conformance suite, the worker tests and the process tests:
//! an isolated backend per test (a fresh SQLite file, or a fresh PostgreSQL schema), and a
//! helper to await a condition instead of sleeping and hoping. [`Backend::footprint`] and
//! [`Backend::leftovers`] look at the storage itself, below the `Store` API, so retention
//! tests and the campaign bench see what is really kept.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;

use crate::{PgStore, RedisStore, SqliteStore, Store, StoreOptions};

/// The PostgreSQL server tests use (`DROVER_TEST_PG` overrides).
pub fn pg_url() -> String {
    std::env::var("DROVER_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// One test's private backend. Every `open` returns a new store (its own pool) on the
/// same data, so tests can model several processes.
pub enum Backend {
    Sqlite {
        dir: tempfile::TempDir,
    },
    Postgres {
        schema: String,
    },
    Redis {
        prefix: String,
    },
    /// A key prefix on a Redis Cluster the test runs (`nodes`: `host:port,…`); the test
    /// tears the cluster down, so nothing is cleaned up key by key.
    RedisCluster {
        nodes: String,
        prefix: String,
    },
}

/// The Redis server tests use (`DROVER_TEST_REDIS` overrides).
pub fn redis_url() -> String {
    std::env::var("DROVER_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

impl Backend {
    pub fn sqlite() -> Backend {
        Backend::Sqlite {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn postgres() -> Backend {
        Backend::Postgres {
            schema: format!("t_{}", uuid::Uuid::now_v7().simple()),
        }
    }

    pub fn redis() -> Backend {
        Backend::Redis {
            prefix: format!("t_{}", uuid::Uuid::now_v7().simple()),
        }
    }

    /// A fresh prefix on the Redis Cluster at `nodes` (`host:port,…`).
    pub fn redis_cluster(nodes: &str) -> Backend {
        Backend::RedisCluster {
            nodes: nodes.to_string(),
            prefix: format!("t_{}", uuid::Uuid::now_v7().simple()),
        }
    }

    pub fn url(&self) -> String {
        match self {
            Backend::Redis { prefix } => format!("{}/?prefix={prefix}", redis_url()),
            Backend::RedisCluster { nodes, prefix } => {
                format!("redis+cluster://{nodes}/?prefix={prefix}")
            }
            Backend::Sqlite { dir } => {
                format!("sqlite://{}", dir.path().join("drover.db").display())
            }
            Backend::Postgres { schema } => format!("{}?schema={schema}", pg_url()),
        }
    }

    pub async fn open_with(&self, options: StoreOptions) -> Arc<dyn Store> {
        let store: Arc<dyn Store> = match self {
            Backend::Sqlite { .. } => Arc::new(
                SqliteStore::connect(&self.url(), options)
                    .await
                    .expect("open sqlite"),
            ),
            Backend::Postgres { .. } => Arc::new(
                PgStore::connect(&self.url(), options)
                    .await
                    .expect("open postgres"),
            ),
            Backend::Redis { .. } | Backend::RedisCluster { .. } => Arc::new(
                RedisStore::connect(&self.url(), options)
                    .await
                    .expect("open redis"),
            ),
        };
        store.migrate().await.expect("migrate");
        store
    }

    pub async fn open(&self) -> Arc<dyn Store> {
        self.open_with(StoreOptions::default()).await
    }

    /// Drop what the test created (the SQLite directory goes with `self`).
    pub async fn cleanup(self) {
        match &self {
            Backend::Postgres { schema } => drop_schema(&pg_url(), schema).await,
            Backend::Redis { prefix } => drop_prefix(prefix).await,
            Backend::Sqlite { .. } | Backend::RedisCluster { .. } => {}
        }
    }

    /// Both backends, for tests that loop over them.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgres",
            Backend::Redis { .. } => "redis",
            Backend::RedisCluster { .. } => "redis-cluster",
        }
    }

    /// What this backend's storage holds now, read below the `Store` API. Panics when the
    /// storage cannot be read (it is test support).
    pub async fn footprint(&self) -> Footprint {
        match self {
            Backend::Sqlite { dir } => sqlite_footprint(&dir.path().join("drover.db")).await,
            Backend::Postgres { schema } => pg_footprint(schema).await,
            Backend::Redis { prefix } => redis_footprint(prefix).await,
            Backend::RedisCluster { .. } => {
                panic!("footprint reads one Redis server, not a cluster")
            }
        }
    }

    /// Every row (SQL) or key, index entry or hash field (Redis) that still refers to job
    /// `id`, described as `table`/`key`. Found generically (any table with a `job_id`
    /// column; any key naming the job or any set, hash or list holding it), so it also
    /// catches storage that a `Store` read method would not show.
    pub async fn leftovers(&self, id: crate::JobId) -> Vec<String> {
        match self {
            Backend::Sqlite { dir } => sqlite_leftovers(&dir.path().join("drover.db"), id).await,
            Backend::Postgres { schema } => pg_leftovers(schema, id).await,
            Backend::Redis { prefix } => redis_leftovers(prefix, id).await,
            Backend::RedisCluster { .. } => {
                panic!("leftovers reads one Redis server, not a cluster")
            }
        }
    }
}

impl Backend {
    /// Every byte the backend's storage holds, read below the `Store` API: the SQLite file
    /// and its WAL as they are on disk; every row of every table of the PostgreSQL schema
    /// in its text form (`bytea` as hex); every key and value under the Redis prefix
    /// (strings, hash fields and values, set, zset and list members). For tests that look
    /// for what must never be stored (a plaintext cookie).
    pub async fn raw_storage(&self) -> Vec<u8> {
        match self {
            Backend::Sqlite { dir } => {
                let path = dir.path().join("drover.db");
                let mut bytes = std::fs::read(&path).unwrap_or_default();
                let mut wal = path.as_os_str().to_owned();
                wal.push("-wal");
                bytes.extend(std::fs::read(std::path::Path::new(&wal)).unwrap_or_default());
                bytes
            }
            Backend::Postgres { schema } => {
                let mut conn = pg_connection().await;
                let mut bytes = Vec::new();
                for (table, _) in pg_tables(&mut conn, schema).await {
                    let rows: Vec<String> = sqlx::query_scalar(&format!(
                        "SELECT t::text FROM \"{schema}\".\"{table}\" t"
                    ))
                    .fetch_all(&mut conn)
                    .await
                    .expect("rows as text");
                    for row in rows {
                        bytes.extend_from_slice(row.as_bytes());
                        bytes.push(b'\n');
                    }
                }
                bytes
            }
            Backend::Redis { prefix } => {
                let mut conn = redis_connection().await;
                let mut bytes = Vec::new();
                for key in redis_keys(&mut conn, prefix).await {
                    bytes.extend_from_slice(key.as_bytes());
                    let kind: String = redis::cmd("TYPE")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .expect("type");
                    let cmd = match kind.as_str() {
                        "string" => redis::cmd("GET").arg(&key).clone(),
                        "hash" => redis::cmd("HGETALL").arg(&key).clone(),
                        "set" => redis::cmd("SMEMBERS").arg(&key).clone(),
                        "zset" => redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).clone(),
                        "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).clone(),
                        _ => continue,
                    };
                    let values: Vec<Vec<u8>> = match kind.as_str() {
                        "string" => {
                            let v: Option<Vec<u8>> =
                                cmd.query_async(&mut conn).await.expect("read");
                            v.into_iter().collect()
                        }
                        _ => cmd.query_async(&mut conn).await.expect("read"),
                    };
                    for v in values {
                        bytes.extend_from_slice(&v);
                        bytes.push(b'\n');
                    }
                }
                bytes
            }
            Backend::RedisCluster { .. } => {
                panic!("raw_storage reads one Redis server, not a cluster")
            }
        }
    }
}

/// A backend's storage, measured (see [`Backend::footprint`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Footprint {
    /// SQL: rows per table. Redis: keys per kind (the part of the key after the hash tag,
    /// up to the job id: `job`, `events`, `cp`, `jobq`, …).
    pub counts: BTreeMap<String, u64>,
    /// SQLite: the database file plus its WAL. PostgreSQL: `pg_total_relation_size` summed
    /// over the schema's tables (heap, indexes, TOAST). Redis: `MEMORY USAGE` summed over
    /// the prefix's keys.
    pub bytes: u64,
    /// SQLite only: page accounting.
    pub pages: Option<SqlitePages>,
}

impl Footprint {
    /// Rows (or keys) over every table (or kind).
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Rows (or keys) of one table (or kind); 0 when absent.
    pub fn count(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }
}

/// SQLite's own accounting: the file does not shrink when rows are deleted (no
/// `auto_vacuum`); freed pages go to the freelist and are reused by later writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SqlitePages {
    pub page_size: u64,
    /// `PRAGMA page_count`: pages in the database, as a reader sees it (WAL included).
    pub page_count: u64,
    /// `PRAGMA freelist_count`: of those, pages free for reuse.
    pub freelist_count: u64,
    /// The `-wal` file's size (it keeps its high-water mark until a truncating checkpoint).
    pub wal_bytes: u64,
}

async fn sqlite_connection(path: &std::path::Path) -> sqlx::SqliteConnection {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("open the sqlite file for inspection")
}

/// User tables of an SQLite file.
async fn sqlite_tables(conn: &mut sqlx::SqliteConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("sqlite tables")
}

async fn sqlite_pragma(conn: &mut sqlx::SqliteConnection, name: &str) -> u64 {
    let value: i64 = sqlx::query_scalar(&format!("PRAGMA {name}"))
        .fetch_one(conn)
        .await
        .expect("pragma");
    value as u64
}

async fn sqlite_footprint(path: &std::path::Path) -> Footprint {
    let mut conn = sqlite_connection(path).await;
    let mut counts = BTreeMap::new();
    for table in sqlite_tables(&mut conn).await {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\""))
            .fetch_one(&mut conn)
            .await
            .expect("count rows");
        counts.insert(table, n as u64);
    }
    let page_size = sqlite_pragma(&mut conn, "page_size").await;
    let page_count = sqlite_pragma(&mut conn, "page_count").await;
    let freelist_count = sqlite_pragma(&mut conn, "freelist_count").await;
    conn.close().await.expect("close");
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal_bytes = size(std::path::Path::new(&wal));
    Footprint {
        counts,
        bytes: size(path) + wal_bytes,
        pages: Some(SqlitePages {
            page_size,
            page_count,
            freelist_count,
            wal_bytes,
        }),
    }
}

async fn sqlite_leftovers(path: &std::path::Path, id: crate::JobId) -> Vec<String> {
    let mut conn = sqlite_connection(path).await;
    let mut found = Vec::new();
    for table in sqlite_tables(&mut conn).await {
        let columns: Vec<String> =
            sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .fetch_all(&mut conn)
                .await
                .expect("columns");
        let column = if table == "jobs" {
            "id"
        } else if columns.iter().any(|c| c == "job_id") {
            "job_id"
        } else {
            continue;
        };
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{table}\" WHERE {column} = ?"
        ))
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .expect("count rows");
        if n > 0 {
            found.push(format!("{table}: {n} rows"));
        }
    }
    conn.close().await.expect("close");
    found
}

async fn pg_connection() -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&pg_url())
        .await
        .expect("connect to postgres for inspection")
}

/// The schema's tables with their total relation size (heap, indexes, TOAST).
async fn pg_tables(conn: &mut sqlx::PgConnection, schema: &str) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT c.relname::text, pg_total_relation_size(c.oid) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY c.relname",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .expect("postgres tables")
}

async fn pg_footprint(schema: &str) -> Footprint {
    let mut conn = pg_connection().await;
    let mut counts = BTreeMap::new();
    let mut bytes = 0;
    for (table, size) in pg_tables(&mut conn, schema).await {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{schema}\".\"{table}\""))
            .fetch_one(&mut conn)
            .await
            .expect("count rows");
        counts.insert(table, n as u64);
        bytes += size as u64;
    }
    conn.close().await.expect("close");
    Footprint {
        counts,
        bytes,
        pages: None,
    }
}

async fn pg_leftovers(schema: &str, id: crate::JobId) -> Vec<String> {
    let mut conn = pg_connection().await;
    let keyed: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = $1 AND (column_name = 'job_id' \
           OR (table_name = 'jobs' AND column_name = 'id')) ORDER BY table_name",
    )
    .bind(schema)
    .fetch_all(&mut conn)
    .await
    .expect("postgres columns");
    let mut found = Vec::new();
    for (table, column) in keyed {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{schema}\".\"{table}\" WHERE {column} = $1"
        ))
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .expect("count rows");
        if n > 0 {
            found.push(format!("{table}: {n} rows"));
        }
    }
    conn.close().await.expect("close");
    found
}

async fn redis_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis for inspection")
}

/// Every key under `prefix`, by SCAN (KEYS would block the server on a big keyspace).
async fn redis_keys(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("scan");
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    keys
}

/// `<prefix>:{<tag>}:events:<id>` → `events`; `<prefix>:{<prefix>}:jobq` → `jobq`.
fn redis_key_kind(key: &str) -> String {
    let rest = key.split_once("}:").map_or(key, |(_, rest)| rest);
    rest.split(':').next().unwrap_or(rest).to_string()
}

async fn redis_footprint(prefix: &str) -> Footprint {
    let mut conn = redis_connection().await;
    let mut counts = BTreeMap::new();
    let mut bytes = 0;
    for key in redis_keys(&mut conn, prefix).await {
        // SAMPLES 0: measure every element of a collection, not an estimate from a few.
        let usage: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut conn)
            .await
            .expect("memory usage");
        bytes += usage.unwrap_or(0);
        *counts.entry(redis_key_kind(&key)).or_insert(0) += 1;
    }
    Footprint {
        counts,
        bytes,
        pages: None,
    }
}

async fn redis_leftovers(prefix: &str, id: crate::JobId) -> Vec<String> {
    let mut conn = redis_connection().await;
    let id = id.to_string();
    let mut found = Vec::new();
    for key in redis_keys(&mut conn, prefix).await {
        if key.contains(&id) {
            found.push(key);
            continue;
        }
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("type");
        let held = match kind.as_str() {
            "zset" => {
                let score: Option<f64> = redis::cmd("ZSCORE")
                    .arg(&key)
                    .arg(&id)
                    .query_async(&mut conn)
                    .await
                    .expect("zscore");
                score.is_some()
            }
            "hash" => redis::cmd("HEXISTS")
                .arg(&key)
                .arg(&id)
                .query_async(&mut conn)
                .await
                .expect("hexists"),
            "set" => redis::cmd("SISMEMBER")
                .arg(&key)
                .arg(&id)
                .query_async(&mut conn)
                .await
                .expect("sismember"),
            "list" => {
                let at: Option<i64> = redis::cmd("LPOS")
                    .arg(&key)
                    .arg(&id)
                    .query_async(&mut conn)
                    .await
                    .expect("lpos");
                at.is_some()
            }
            _ => false,
        };
        if held {
            found.push(format!("{key} ({kind} holds the job)"));
        }
    }
    found
}

/// A fresh schema name on `server` (a `postgres://` URL), as a store URL.
pub fn pg_schema_url(server: &str) -> String {
    format!("{server}?schema=t_{}", uuid::Uuid::now_v7().simple())
}

/// Deletes every key under a test's Redis prefix (best effort).
pub async fn drop_prefix(prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url()) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    for chunk in keys.chunks(500) {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
    }
}

/// Drops `schema` on `server`, ignoring failures (best-effort cleanup).
pub async fn drop_schema(server: &str, schema: &str) {
    if let Ok(store) = PgStore::connect(server, StoreOptions::default()).await {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(store.pool())
            .await;
    }
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Generates one test per backend for each named async fn taking a `Backend`.
#[macro_export]
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(drover_queue::testing::Backend::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(drover_queue::testing::Backend::postgres()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(drover_queue::testing::Backend::redis()).await;
                }
            )*
        }
    };
}
