//! `drover doctor`: the checks an operator runs first. One line per check, `ok`, `warn` or
//! `FAIL`, with what to do about anything short of ok; the exit code is non-zero when a
//! check fails, and `--json` prints the same checks for scripts.
//!
//! - [`store`]: the store answers, its schema is current, PostgreSQL's clock agrees with
//!   this host's, Redis runs with AOF, a SQLite file's disk has room;
//! - [`services`]: the secrets key, GitHub (credentials, rate limit left), the LLM, the job
//!   boards, the mail transport;
//! - [`browser`]: Chromium and ChromeDriver present, of one major version, and a headless
//!   page loads.
//!
//! Network checks give up after [`NETWORK_TIMEOUT`]; the checks run at once, so a run takes
//! about as long as the slowest. No detail ever holds a secret: each is scrubbed of every
//! secret the configuration holds before it is printed.

mod browser;
mod services;
mod store;

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use crate::settings::Settings;

/// How long a network check waits for an answer.
pub const NETWORK_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Args)]
pub struct DoctorArgs {
    /// Print the checks as JSON: `[{"check", "status", "detail"}]`, status `ok`, `warn` or
    /// `fail`.
    #[arg(long)]
    json: bool,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works, but something will bite later (no token, AOF off, little disk left).
    Warn,
    /// Broken: drover, or the part of it that needs this, will not work.
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One check's outcome: what was checked, and what was found or what to do.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    pub detail: String,
}

impl Check {
    pub fn ok(check: &str, detail: impl Into<String>) -> Check {
        Check::new(check, Status::Ok, detail)
    }

    pub fn warn(check: &str, detail: impl Into<String>) -> Check {
        Check::new(check, Status::Warn, detail)
    }

    pub fn fail(check: &str, detail: impl Into<String>) -> Check {
        Check::new(check, Status::Fail, detail)
    }

    fn new(check: &str, status: Status, detail: impl Into<String>) -> Check {
        Check {
            check: check.to_string(),
            status,
            detail: detail.into(),
        }
    }
}

/// Runs every check on `settings` (a configuration that did not load is the one failing
/// check) and prints them; `FAILURE` when any failed.
pub async fn run(settings: anyhow::Result<Settings>, args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let checks = match settings {
        Ok(settings) => {
            let secrets = secrets_of(&settings);
            checks(&settings)
                .await
                .into_iter()
                .map(|check| scrub(check, &secrets))
                .collect()
        }
        // Config errors name the key, never its value.
        Err(err) => vec![Check::fail(
            "config",
            format!("{err:#}: fix the key it names, in the file or its DROVER_* variable"),
        )],
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        let width = checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
        for check in &checks {
            println!(
                "{:<4}  {:<width$}  {}",
                check.status.label(),
                check.check,
                check.detail
            );
        }
    }
    Ok(if checks.iter().any(|c| c.status == Status::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Every check, in a fixed order; the slow ones run at once.
async fn checks(settings: &Settings) -> Vec<Check> {
    let c = &settings.config;
    let mut all = vec![config(settings)];
    let http = match reqwest::Client::builder()
        .timeout(NETWORK_TIMEOUT)
        .connect_timeout(NETWORK_TIMEOUT)
        .user_agent(concat!("drover-doctor/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(http) => http,
        Err(err) => {
            all.push(Check::fail(
                "http",
                format!("cannot build an HTTP client: {err}"),
            ));
            return all;
        }
    };
    let (store, github, llm, boards, mail, browser) = tokio::join!(
        store::checks(settings),
        services::github(&http, &c.github),
        services::llm(&http, &c.llm),
        services::boards(&http, &c.boards),
        services::mail(&http, c),
        browser::checks(settings),
    );
    all.extend(store);
    all.push(services::secrets_key(c));
    all.extend([github, llm]);
    all.extend(boards);
    all.push(mail);
    all.extend(browser);
    all
}

fn config(settings: &Settings) -> Check {
    let inert = settings.config.inert_keys_set();
    if inert.is_empty() {
        Check::ok("config", "loaded and valid")
    } else {
        Check::warn(
            "config",
            format!(
                "these keys have no effect yet and are ignored: {}",
                inert.join(", ")
            ),
        )
    }
}

/// Every secret value the configuration holds (tokens, keys, passwords in URLs).
fn secrets_of(settings: &Settings) -> Vec<String> {
    let c = &settings.config;
    let mut secrets: Vec<String> = [
        &c.github.token,
        &c.llm.api_key,
        &c.mail.api_key,
        &c.api.token,
        &c.secrets.key,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .chain(c.secrets.previous_keys.iter().cloned())
    .collect();
    for url in [Some(&c.queue.url), c.mail.smtp_url.as_ref()]
        .into_iter()
        .flatten()
    {
        if let Some(password) = url_password(url) {
            secrets.push(password.to_string());
        }
    }
    // Short strings would blank out ordinary words.
    secrets.retain(|s| s.trim().len() >= 4);
    secrets
}

/// The password of `scheme://user:password@host…`, if any.
fn url_password(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let userinfo = &rest[..rest.rfind('@')?];
    userinfo.split_once(':').map(|(_, password)| password)
}

fn scrub(mut check: Check, secrets: &[String]) -> Check {
    for secret in secrets {
        if check.detail.contains(secret.as_str()) {
            check.detail = check.detail.replace(secret.as_str(), "***");
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed_from_details() {
        assert_eq!(url_password("postgres://u:hunter22@h/db"), Some("hunter22"));
        assert_eq!(url_password("smtp://relay:25"), None);
        let check = scrub(
            Check::fail("store", "cannot open postgres://u:hunter22@h/db"),
            &["hunter22".to_string()],
        );
        assert_eq!(check.detail, "cannot open postgres://u:***@h/db");
    }
}
