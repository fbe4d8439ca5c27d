//! The secrets key and the external services drover's workloads call: GitHub (credentials
//! accepted, rate limit left), the LLM, the job boards, the mail transport.

use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use serde_json::Value;

use super::{Check, NETWORK_TIMEOUT};
use crate::config::{Boards, Config, Github, Llm, MailTransport};

/// The key profiles' sessions are sealed with and unsubscribe links are signed with.
pub fn secrets_key(c: &Config) -> Check {
    match c.secrets.key() {
        Ok(Some(_)) => {
            let from = match &c.secrets.key_file {
                Some(path) => format!("secrets.key_file {}", path.display()),
                None => "secrets.key".to_string(),
            };
            let previous = match c.secrets.previous_keys.len() {
                0 => String::new(),
                n => format!(", with {n} previous key{}", if n == 1 { "" } else { "s" }),
            };
            match c.secrets.key_file.as_deref().and_then(readable_by_others) {
                Some(mode) => Check::warn(
                    "secrets.key",
                    format!("decodes ({from}{previous}), but the file's mode {mode:o} lets others read it: chmod 600"),
                ),
                None => Check::ok("secrets.key", format!("decodes ({from}{previous})")),
            }
        }
        Ok(None) if c.mail.transport != MailTransport::None => Check::fail(
            "secrets.key",
            "not set, and mail.transport is: workers refuse to start, as every message carries a signed \
             unsubscribe link; make one (`openssl rand -base64 32 > drover.key`) and set secrets.key_file \
             (or DROVER_SECRETS__KEY)",
        ),
        Ok(None) => Check::warn(
            "secrets.key",
            "not set: profiles' sessions cannot be stored and mail cannot be sent (its unsubscribe links \
             are signed with it); make one (`openssl rand -base64 32 > drover.key`) and set \
             secrets.key_file (or DROVER_SECRETS__KEY)",
        ),
        Err(err) => Check::fail("secrets.key", err.to_string()),
    }
}

/// The file's permission bits when its group or others may read it.
fn readable_by_others(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}

/// `GET {base_url}/rate_limit` with the token: the token is accepted, and how much of the
/// hour's budget is left.
pub async fn github(http: &reqwest::Client, c: &Github) -> Check {
    let base = c.base_url.trim_end_matches('/');
    let mut request = http
        .get(format!("{base}/rate_limit"))
        .header(ACCEPT, "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28");
    if let Some(token) = &c.token {
        request = request.bearer_auth(token);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(err) => {
            return Check::fail(
                "github",
                format!(
                    "cannot reach {base} ({}): check github.base_url (DROVER_GITHUB__BASE_URL) and this host's network",
                    describe(&err)
                ),
            )
        }
    };
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED {
        return Check::fail(
            "github",
            format!("{base} refused the token (401 Bad credentials): make a new one and set github.token (DROVER_GITHUB__TOKEN)"),
        );
    }
    if !status.is_success() {
        return Check::fail(
            "github",
            format!("{base}/rate_limit answered {status}: check github.base_url (DROVER_GITHUB__BASE_URL)"),
        );
    }
    let body: Value = match response.json().await {
        Ok(body) => body,
        Err(_) => {
            return Check::fail(
                "github",
                format!("{base}/rate_limit did not answer JSON: is github.base_url a GitHub API?"),
            )
        }
    };
    let budget = |resource: &str| {
        let r = &body["resources"][resource];
        (
            r["remaining"].as_u64(),
            r["limit"].as_u64(),
            r["reset"].as_i64(),
        )
    };
    let (Some(left), Some(limit), reset) = budget("core") else {
        return Check::fail(
            "github",
            format!("{base}/rate_limit lacks resources.core: is github.base_url a GitHub API?"),
        );
    };
    let resets = reset
        .and_then(|at| chrono::DateTime::from_timestamp(at, 0))
        .map(|at| format!(", resets {}", at.format("%H:%M UTC")))
        .unwrap_or_default();
    let search = match budget("search") {
        (Some(left), Some(limit), _) => format!("; search {left}/{limit}"),
        _ => String::new(),
    };
    let budget = format!("{left}/{limit} core requests left{resets}{search}");
    if c.token.is_none() {
        Check::warn(
            "github",
            format!("no token, so GitHub allows 60 requests an hour ({budget}): set github.token (DROVER_GITHUB__TOKEN)"),
        )
    } else if left == 0 {
        Check::warn(
            "github",
            format!("token accepted, but the budget is spent: {budget}"),
        )
    } else if left < limit / 10 {
        Check::warn(
            "github",
            format!("token accepted, under a tenth of the budget left: {budget}"),
        )
    } else {
        Check::ok("github", format!("token accepted; {budget}"))
    }
}

/// The LLM when `llm.base_url` is set: `GET {base_url}/models` (OpenAI-compatible APIs list
/// their models there, and check the key).
pub async fn llm(http: &reqwest::Client, c: &Llm) -> Check {
    let Some(base) = c.base_url.as_deref().map(|b| b.trim_end_matches('/')) else {
        return Check::ok("llm", "not configured: messages come from the templates");
    };
    let mut request = http.get(format!("{base}/models"));
    if let Some(key) = &c.api_key {
        request = request.bearer_auth(key);
    }
    match request.send().await {
        Err(err) => Check::fail(
            "llm",
            format!(
                "cannot reach {base} ({}): check llm.base_url (DROVER_LLM__BASE_URL)",
                describe(&err)
            ),
        ),
        Ok(r) if matches!(r.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
            Check::fail(
                "llm",
                format!(
                    "{base} refused the key ({}): set llm.api_key (DROVER_LLM__API_KEY)",
                    r.status()
                ),
            )
        }
        Ok(r) if r.status().is_success() => {
            Check::ok("llm", format!("{base} answers and accepts the key"))
        }
        Ok(r) => Check::ok(
            "llm",
            format!(
                "{base} answers (HTTP {} on /models, so the key is not checked)",
                r.status().as_u16()
            ),
        ),
    }
}

/// Each job board's API base answers (any HTTP answer proves it is reachable).
pub async fn boards(http: &reqwest::Client, c: &Boards) -> Vec<Check> {
    let boards = [
        (
            "boards.greenhouse",
            &c.greenhouse_base_url,
            "DROVER_BOARDS__GREENHOUSE_BASE_URL",
        ),
        (
            "boards.lever",
            &c.lever_base_url,
            "DROVER_BOARDS__LEVER_BASE_URL",
        ),
        (
            "boards.ashby",
            &c.ashby_base_url,
            "DROVER_BOARDS__ASHBY_BASE_URL",
        ),
    ];
    let answers =
        futures_util::future::join_all(boards.iter().map(|(check, url, env)| async move {
            reachable(http, check, url, &format!("{check}_base_url ({env})")).await
        }));
    answers.await
}

async fn reachable(http: &reqwest::Client, check: &str, url: &str, key: &str) -> Check {
    match http.get(url).send().await {
        Ok(r) => Check::ok(
            check,
            format!("{url} answers (HTTP {})", r.status().as_u16()),
        ),
        Err(err) => Check::fail(
            check,
            format!(
                "cannot reach {url} ({}): check {key} and this host's network",
                describe(&err)
            ),
        ),
    }
}

/// The mail transport: nothing to reach for `none`; the SMTP server greets and takes the
/// credentials (lettre's connection test, TLS included); the HTTP API answers.
pub async fn mail(http: &reqwest::Client, c: &Config) -> Check {
    let m = &c.mail;
    let missing: Vec<&str> = [
        ("mail.from", m.from.is_none()),
        ("mail.public_url", m.public_url.is_none()),
    ]
    .into_iter()
    .filter(|(_, missing)| *missing)
    .map(|(key, _)| key)
    .collect();
    if m.transport != MailTransport::None && !missing.is_empty() {
        return Check::fail(
            "mail",
            format!(
                "mail.transport is set but {} is not: workers refuse to start",
                missing.join(" and ")
            ),
        );
    }
    match m.transport {
        MailTransport::None => Check::ok("mail", "transport none: drafts only, nothing is sent"),
        MailTransport::Smtp => {
            let Some(url) = m.smtp_url.as_deref() else {
                return Check::fail(
                    "mail",
                    "mail.smtp_url: required when mail.transport is smtp",
                );
            };
            let server = smtp_server(url);
            let transport =
                match drover_workloads::services::mail::Transport::smtp(url, NETWORK_TIMEOUT) {
                    Ok(transport) => transport,
                    Err(err) => return Check::fail("mail", err),
                };
            match tokio::time::timeout(NETWORK_TIMEOUT * 2, transport.ready()).await {
                Ok(true) => Check::ok("mail", format!("the SMTP server at {server} answers")),
                _ => Check::fail(
                    "mail",
                    format!("the SMTP server at {server} does not answer (or refuses the credentials): check mail.smtp_url (DROVER_MAIL__SMTP_URL)"),
                ),
            }
        }
        MailTransport::Http => match m.http_url.as_deref() {
            Some(url) => {
                reachable(http, "mail", url, "mail.http_url (DROVER_MAIL__HTTP_URL)").await
            }
            None => Check::fail(
                "mail",
                "mail.http_url: required when mail.transport is http",
            ),
        },
    }
}

/// `host:port` of an SMTP URL, without its credentials.
fn smtp_server(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// A request error in words, without the URL (the caller names it): the innermost cause
/// says most ("Connection refused").
fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return format!("no answer within {} s", NETWORK_TIMEOUT.as_secs());
    }
    let mut cause = None;
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        cause = Some(inner.to_string());
        source = inner.source();
    }
    match cause {
        Some(cause) if err.is_connect() => format!("cannot connect: {cause}"),
        Some(cause) => cause,
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn smtp_servers_are_named_without_credentials() {
        assert_eq!(
            super::smtp_server("smtps://u:p@mail.example:465"),
            "mail.example:465"
        );
        assert_eq!(
            super::smtp_server("smtp://127.0.0.1:2525?tls=required"),
            "127.0.0.1:2525"
        );
    }
}
