//! Chromium and ChromeDriver, as the apply workload's browser applications use them:
//! present, of one major version (a chromedriver drives only its own Chromium), and a
//! headless page loads through the same browser pool the workers run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_workloads::services::browser::Browsers;

use super::{Check, NETWORK_TIMEOUT};
use crate::settings::Settings;

/// Starting chromedriver and Chromium and loading a page: slower than one request.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// What chromedriver looks for when `browser.chromium` is not set.
const CHROMIUM_NAMES: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

pub async fn checks(settings: &Settings) -> Vec<Check> {
    let b = &settings.config.browser;
    let mut checks = Vec::new();
    let chromium = match &b.chromium {
        Some(path) => Some(path.clone()),
        None => CHROMIUM_NAMES.iter().find_map(|name| on_path(name)),
    };
    let chromium = match chromium {
        Some(path) => version("browser.chromium", &path).await,
        None => Err(Check::fail(
            "browser.chromium",
            "no chromium, chromium-browser or google-chrome on PATH: install Chromium (Debian: \
             apt install chromium chromium-driver) or set browser.chromium; the apply workload's \
             browser applications need it",
        )),
    };
    if let Some(url) = &b.webdriver_url {
        // An external WebDriver brings its own browser: this host's may not matter.
        checks.push(Check::ok(
            "browser.versions",
            format!("external WebDriver at {url}; no chromedriver is spawned"),
        ));
    } else {
        let driver = version("browser.chromedriver", &b.chromedriver).await;
        match (&chromium, driver) {
            (Ok(c), Ok(d)) if c.major == d.major => checks.push(Check::ok(
                "browser.versions",
                format!("{} and {}, major version {}", c.line, d.line, c.major),
            )),
            (Ok(c), Ok(d)) => checks.push(Check::fail(
                "browser.versions",
                format!(
                    "{} with {}: a chromedriver drives only its own major version; install matching \
                     ones (Debian: chromium and chromium-driver from the same release)",
                    c.line, d.line
                ),
            )),
            (Err(c), Ok(_)) => checks.push(c.clone()),
            (_, Err(d)) => {
                checks.push(d);
                if let Err(c) = &chromium {
                    checks.push(c.clone());
                }
                return checks;
            }
        }
        if chromium.is_err() {
            return checks;
        }
    }
    checks.push(page(settings).await);
    checks
}

/// A browser's `--version`, found.
struct Version {
    /// The line it printed ("Chromium 120.0.6099.224 built on …", first two words kept).
    line: String,
    major: u32,
}

async fn version(check: &str, program: &Path) -> Result<Version, Check> {
    let program = program.to_path_buf();
    let shown = program.display().to_string();
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&program)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .output()
    });
    let output = match tokio::time::timeout(NETWORK_TIMEOUT, run).await {
        Ok(Ok(Ok(output))) if output.status.success() => output,
        Ok(Ok(Ok(output))) => {
            return Err(Check::fail(
                check,
                format!("`{shown} --version` exited with {}", output.status),
            ))
        }
        Ok(Ok(Err(err))) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(Check::fail(
                check,
                format!(
                "`{shown}` not found: install it (Debian: apt install chromium chromium-driver) \
                     or set {check} to its path"
            ),
            ))
        }
        Ok(Ok(Err(err))) => return Err(Check::fail(check, format!("cannot run `{shown}`: {err}"))),
        Ok(Err(err)) => return Err(Check::fail(check, format!("cannot run `{shown}`: {err}"))),
        Err(_) => {
            return Err(Check::fail(
                check,
                format!(
                    "`{shown} --version` did not answer within {} s",
                    NETWORK_TIMEOUT.as_secs()
                ),
            ))
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    parse_version(&text).ok_or_else(|| {
        Check::fail(
            check,
            format!("`{shown} --version` printed no version: {}", text.trim()),
        )
    })
}

/// "Chromium 120.0.6099.224 built on Debian" → ("Chromium 120.0.6099.224", 120).
fn parse_version(text: &str) -> Option<Version> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| w.starts_with(|c: char| c.is_ascii_digit()) && w.contains('.'))?;
    let major = words[at].split('.').next()?.parse().ok()?;
    Some(Version {
        line: words[..=at].join(" "),
        major,
    })
}

fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| {
            path.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A headless page loads through the browser pool, as an application's would.
async fn page(settings: &Settings) -> Check {
    let mut browser = settings.browser();
    browser.max_sessions = 1;
    let browsers = Browsers::new(browser);
    let load = async {
        let session = browsers.session("doctor").await?;
        let loaded = async {
            session.client().goto("data:text/html,<p>ok</p>").await?;
            session.client().source().await
        }
        .await;
        session.discard().await;
        Ok::<_, drover_workloads::services::browser::BrowserError>(loaded?)
    };
    match tokio::time::timeout(PAGE_TIMEOUT, load).await {
        Ok(Ok(source)) if source.contains("<p>ok</p>") => {
            Check::ok("browser.page", "a headless page loads")
        }
        Ok(Ok(_)) => Check::fail("browser.page", "the page loaded without its content"),
        Ok(Err(err)) => Check::fail(
            "browser.page",
            format!("{err}: run the apply workers' chromedriver by hand to see why (often a missing library, or /dev/shm too small)"),
        ),
        Err(_) => Check::fail(
            "browser.page",
            format!("no page within {} s: Chromium starts too slowly or hangs", PAGE_TIMEOUT.as_secs()),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_are_read_from_both_banners() {
        let c = super::parse_version("Chromium 156.0.8078.114 built on Debian GNU/Linux 12\n")
            .expect("chromium");
        assert_eq!((c.line.as_str(), c.major), ("Chromium 156.0.8078.114", 156));
        let d = super::parse_version(
            "ChromeDriver 156.0.8078.114 (ea19f97-refs/branch-heads/8078_108@{#5})",
        )
        .expect("chromedriver");
        assert_eq!(
            (d.line.as_str(), d.major),
            ("ChromeDriver 156.0.8078.114", 156)
        );
        assert!(super::parse_version("nothing here").is_none());
    }
}
