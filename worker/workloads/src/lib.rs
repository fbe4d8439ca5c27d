//! drover's workloads: the kinds it exists for, over real clients whose base URLs are
//! configuration. They depend on the runtime (`drover-worker`); the runtime never depends on
//! them.
//!
//! - [`apply`]: job postings from the boards, deduplicated and scored (SPEC §7.3);
//! - [`campaign`]: GitHub discovery to drafted (or, when the operator turns sending on, sent)
//!   messages, SPEC §7.2;
//! - [`apply`]: job postings from many boards to applications through the hosted forms in
//!   real Chromium, SPEC §7.3;
//! - [`services`]: what the workloads share — the HTTP client layer, fleet-wide rate limits
//!   and the mail transports.

pub mod apply;
pub mod campaign;
pub mod services;

use std::fmt;
use std::time::Duration;

use drover_worker::Registry;

pub use services::Secret;

/// `mail.transport`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransportKind {
    /// Drafts only: nothing is sent, whatever a job asks.
    #[default]
    None,
    Smtp,
    Http,
}

/// The `github`, `llm`, `mail` and `secrets` configuration the workloads run with.
#[derive(Clone)]
pub struct Settings {
    pub github_base_url: String,
    pub github_token: Option<Secret>,
    /// `None`: personalisation from the templates.
    pub llm_base_url: Option<String>,
    pub llm_api_key: Option<Secret>,
    pub llm_model: String,
    pub mail_transport: TransportKind,
    /// `smtp://host:port` or `smtps://…`; its password, if any, is a secret.
    pub smtp_url: Option<Secret>,
    pub mail_http_url: Option<String>,
    pub mail_api_key: Option<Secret>,
    /// The sender, `Name <address>` or an address.
    pub mail_from: Option<String>,
    pub per_domain_per_minute: u64,
    pub daily_cap: Option<u64>,
    /// This API's public URL, for unsubscribe links (`{public_url}/u/{token}`).
    pub public_url: Option<String>,
    /// 32 bytes: signs unsubscribe tokens.
    pub secrets_key: Option<drover_queue::secret::SecretKey>,
    /// `secrets.previous_keys`: stored sessions sealed under them still open.
    pub previous_secrets_keys: Vec<drover_queue::secret::SecretKey>,
    pub api_timeout: Duration,
    /// `limits.rate_limit_buffer`: the share of each external limit drover uses.
    pub rate_limit_share: f64,
    /// `boards.greenhouse_base_url`, `boards.lever_base_url`, `boards.ashby_base_url`.
    pub greenhouse_base_url: String,
    pub lever_base_url: String,
    pub ashby_base_url: String,
    /// The `browser` section.
    pub browser: services::browser::BrowserSettings,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("github_base_url", &self.github_base_url)
            .field("github_token", &self.github_token)
            .field("llm_base_url", &self.llm_base_url)
            .field("mail_transport", &self.mail_transport)
            .field("smtp_url", &self.smtp_url)
            .field("mail_http_url", &self.mail_http_url)
            .field("mail_from", &self.mail_from)
            .field("public_url", &self.public_url)
            .field("secrets_key", &self.secrets_key)
            .field("greenhouse_base_url", &self.greenhouse_base_url)
            .field("lever_base_url", &self.lever_base_url)
            .field("ashby_base_url", &self.ashby_base_url)
            .field("browser", &self.browser)
            .finish_non_exhaustive()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            github_base_url: "https://api.github.com".into(),
            github_token: None,
            llm_base_url: None,
            llm_api_key: None,
            llm_model: "gpt-4o-mini".into(),
            mail_transport: TransportKind::None,
            smtp_url: None,
            mail_http_url: None,
            mail_api_key: None,
            mail_from: None,
            per_domain_per_minute: 30,
            daily_cap: None,
            public_url: None,
            secrets_key: None,
            previous_secrets_keys: Vec::new(),
            api_timeout: Duration::from_secs(30),
            rate_limit_share: 0.8,
            greenhouse_base_url: "https://boards-api.greenhouse.io".into(),
            lever_base_url: "https://api.lever.co".into(),
            ashby_base_url: "https://api.ashbyhq.com".into(),
            browser: services::browser::BrowserSettings::default(),
        }
    }
}

/// Registers the workloads' kinds. Fails (naming the config key) when the settings cannot
/// make a client.
pub fn register(registry: &mut Registry, settings: &Settings) -> Result<(), String> {
    let campaign = campaign::kind(settings)?;
    registry.register(campaign);
    registry.describe_config(campaign::NAME, campaign::target::config_schema());
    registry.register(apply::kind::kind(settings)?);
    registry.describe_config(apply::kind::NAME, apply::config::config_schema());
    Ok(())
}
