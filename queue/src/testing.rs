//! Test support, shared by the conformance suite, the worker tests and the process tests:
//! an isolated backend per test (a fresh SQLite file, or a fresh PostgreSQL schema), and a
//! helper to await a condition instead of sleeping and hoping.

use std::sync::Arc;
use std::time::Duration;

use crate::{PgStore, RedisStore, SqliteStore, Store, StoreOptions};

/// The PostgreSQL server tests use (`DROVER_TEST_PG` overrides).
pub fn pg_url() -> String {
    std::env::var("DROVER_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// One test's private backend. Every `open` returns a new store (its own pool) on the
/// same data, so tests can model several processes.
pub enum Backend {
    Sqlite { dir: tempfile::TempDir },
    Postgres { schema: String },
    Redis { prefix: String },
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

    pub fn url(&self) -> String {
        match self {
            Backend::Redis { prefix } => format!("{}/?prefix={prefix}", redis_url()),
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
            Backend::Redis { .. } => Arc::new(
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
            Backend::Sqlite { .. } => {}
        }
    }

    /// Both backends, for tests that loop over them.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgres",
            Backend::Redis { .. } => "redis",
        }
    }
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
