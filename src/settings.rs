//! The binary's settings: the config file and environment (see `crate::config`),
//! with command-line flags on top, turned into a store and worker options.

use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use anyhow::Context as _;
use drover_queue::{Store, StoreOptions};
use drover_worker::retry::store_call;
use drover_worker::{RunSettings, WorkerOptions};

use crate::PoolArgs;

pub struct Settings {
    pub config: Config,
}

impl Settings {
    /// The workloads' clients' settings, from the `github`, `llm`, `mail`, `secrets`,
    /// `limits` and `timeouts` sections.
    pub fn workloads(&self) -> anyhow::Result<drover_workloads::Settings> {
        let c = &self.config;
        use crate::config::MailTransport;
        use drover_workloads::{Secret, TransportKind};
        Ok(drover_workloads::Settings {
            github_base_url: c.github.base_url.clone(),
            github_token: c.github.token.clone().map(Secret::new),
            llm_base_url: c.llm.base_url.clone(),
            llm_api_key: c.llm.api_key.clone().map(Secret::new),
            llm_model: c.llm.model.clone(),
            mail_transport: match c.mail.transport {
                MailTransport::None => TransportKind::None,
                MailTransport::Smtp => TransportKind::Smtp,
                MailTransport::Http => TransportKind::Http,
            },
            smtp_url: c.mail.smtp_url.clone().map(Secret::new),
            mail_http_url: c.mail.http_url.clone(),
            mail_api_key: c.mail.api_key.clone().map(Secret::new),
            mail_from: c.mail.from.clone(),
            per_domain_per_minute: c.mail.per_domain_per_minute,
            daily_cap: c.mail.daily_cap,
            public_url: c.mail.public_url.clone(),
            secrets_key: c.secrets.key()?,
            previous_secrets_keys: c.secrets.previous_keys()?,
            api_timeout: c.timeouts.api_timeout,
            rate_limit_share: c.limits.rate_limit_buffer,
            greenhouse_base_url: c.boards.greenhouse_base_url.clone(),
            lever_base_url: c.boards.lever_base_url.clone(),
            ashby_base_url: c.boards.ashby_base_url.clone(),
            browser: self.browser(),
        })
    }

    /// The browser pool's settings, from the `browser` section.
    pub fn browser(&self) -> drover_workloads::services::browser::BrowserSettings {
        let b = &self.config.browser;
        drover_workloads::services::browser::BrowserSettings {
            webdriver_url: b.webdriver_url.clone(),
            chromedriver: b.chromedriver.clone(),
            chromium: b.chromium.clone(),
            headless: b.headless,
            max_sessions: b.max_sessions as usize,
            ..Default::default()
        }
    }

    /// The kinds this process runs: the workloads, plus the test kinds when asked.
    pub fn registry(&self, test_kinds: bool) -> anyhow::Result<drover_worker::Registry> {
        let mut registry = if test_kinds {
            drover_worker::Registry::with_test_kinds()
        } else {
            drover_worker::Registry::production()
        };
        drover_workloads::register(&mut registry, &self.workloads()?)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(registry)
    }

    /// Loads `path` (or ./drover.yaml), then `DROVER_*` variables, then `--store`.
    pub fn load(path: Option<&Path>, store: Option<&str>) -> anyhow::Result<Settings> {
        let mut config = Config::load(path, std::env::vars())?;
        for key in config.inert_keys_set() {
            tracing::warn!(key, "this config key has no effect yet; drover ignores it");
        }
        if let Some(url) = store {
            config.queue.url = url.to_string();
            config.validate().context("--store")?;
        }
        Ok(Settings { config })
    }

    pub fn store_url(&self) -> &str {
        &self.config.queue.url
    }

    fn store_options(&self) -> StoreOptions {
        StoreOptions {
            max_queue_size: self.config.queue.max_queue_size,
            max_attempts: Some(self.config.queue.max_retries),
        }
    }

    /// Opens the store and applies migrations, failing at once if it is unreachable
    /// (for one-shot commands).
    pub async fn open_store(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(self.open_and_migrate().await?.0)
    }

    /// As [`Settings::open_store`], with what the migration did (for `drover migrate`).
    pub async fn open_and_migrate(
        &self,
    ) -> anyhow::Result<(Arc<dyn Store>, drover_queue::migrate::MigrationReport)> {
        let url = self.store_url();
        let store = drover_queue::connect(url, self.store_options())
            .await
            .with_context(|| format!("cannot open the store at {}", redact(url)))?;
        let report = store
            .migrate()
            .await
            .with_context(|| format!("cannot migrate the store at {}", redact(url)))?;
        Ok((store, report))
    }

    /// Opens the store for a long-running process: an unreachable store is waited for
    /// with backoff instead of failing the start.
    pub async fn open_store_for_worker(&self) -> anyhow::Result<Arc<dyn Store>> {
        let url = self.store_url();
        let store = drover_queue::connect(url, self.store_options())
            .await
            .with_context(|| format!("cannot open the store at {}", redact(url)))?;
        if self.config.workers.migrate {
            store_call("migrate", || store.migrate(), || false)
                .await
                .with_context(|| format!("cannot migrate the store at {}", redact(url)))?;
        } else {
            let status = store_call(
                "read the schema version",
                || store.schema_status(),
                || false,
            )
            .await
            .with_context(|| format!("cannot read the schema of the store at {}", redact(url)))?;
            if !status.is_current() {
                anyhow::bail!(
                    "the store's schema is at version {} and this drover needs version {}; \
                     workers.migrate is false, so run `drover migrate` first (or set \
                     workers.migrate: true)",
                    status.version,
                    status.latest
                );
            }
        }
        Ok(store)
    }

    pub fn worker_options(&self, args: &PoolArgs) -> WorkerOptions {
        let c = &self.config;
        let mut slots = args.slots.unwrap_or(c.workers.pool_size);
        if let Some(max) = c.limits.max_concurrent_jobs {
            slots = slots.min(max);
        }
        let defaults = WorkerOptions::default();
        WorkerOptions {
            worker_id: args.worker_id.clone().unwrap_or(defaults.worker_id.clone()),
            slots: slots.max(1) as usize,
            prefetch: c.workers.prefetch as usize,
            max_jobs: c.workers.max_jobs_per_worker,
            lease_ttl: c.workers.lease_ttl,
            heartbeat_interval: c.workers.heartbeat_interval,
            poll_interval: c.workers.poll_interval,
            graceful_shutdown: c.workers.graceful_shutdown,
            retry_delay: c.queue.retry_delay,
            max_retry_delay: c.queue.max_retry_delay,
            job_timeout: c.timeouts.job_timeout,
            queues: args
                .queues
                .clone()
                .unwrap_or_else(|| c.workers.queues.clone()),
            run: RunSettings {
                max_checkpoints: c.persistence.max_checkpoints as usize,
                compression: c.persistence.compression,
                compression_threshold: c.persistence.compression_threshold as usize,
                step_timeout: c.timeouts.step_timeout,
                checkpoint_interval: c.persistence.checkpoint_interval,
                ..RunSettings::default()
            },
            ..defaults
        }
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
    }
}
