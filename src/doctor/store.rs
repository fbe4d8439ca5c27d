//! The store's checks: it answers, its schema is current, and what its backend needs —
//! PostgreSQL's clock in agreement with this host's, Redis's AOF on, room on a SQLite
//! file's disk.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use drover_queue::migrate::SchemaStatus;
use drover_queue::{ServerHealth, StoreOptions};
use tokio::time::timeout;

use super::{Check, NETWORK_TIMEOUT};
use crate::settings::{redact, Settings};

/// Clocks further apart than this are worth a warning: leases and schedules are stamped
/// with the server's clock, while `--run-at` delays and what this host shows use its own.
const CLOCK_WARN: Duration = Duration::from_secs(1);
/// ... and further than this, a failure: a delay of a minute is then meaningless.
const CLOCK_FAIL: Duration = Duration::from_secs(60);
const DISK_WARN: u64 = 1 << 30;
const DISK_FAIL: u64 = 100 << 20;

pub async fn checks(settings: &Settings) -> Vec<Check> {
    let url = settings.store_url();
    let shown = redact(url);
    // Opening a SQLite store creates its file: a check must not.
    if let Some(path) = sqlite_path(url) {
        if !path.exists() {
            return vec![
                Check::warn(
                    "store",
                    format!(
                        "the SQLite file {} does not exist yet: `drover migrate` or `drover serve` creates it",
                        path.display()
                    ),
                ),
                disk(&path),
            ];
        }
    }
    let unreachable = |why: String| {
        vec![Check::fail(
            "store",
            format!("{shown} {why}: check queue.url (DROVER_STORE) and that the server runs"),
        )]
    };
    let within = format!("did not answer within {} s", NETWORK_TIMEOUT.as_secs());
    // Connecting may be lazy (PostgreSQL's pool): reading the schema version is what
    // proves the server answers.
    let store = match timeout(
        NETWORK_TIMEOUT,
        drover_queue::connect(url, StoreOptions::default()),
    )
    .await
    {
        Ok(Ok(store)) => store,
        Ok(Err(err)) => return unreachable(format!("cannot be opened ({err})")),
        Err(_) => return unreachable(within),
    };
    let status = match timeout(NETWORK_TIMEOUT, store.schema_status()).await {
        Ok(Ok(status)) => status,
        Ok(Err(err)) => return unreachable(format!("does not answer ({err})")),
        Err(_) => return unreachable(within),
    };
    let mut checks = vec![
        Check::ok(
            "store",
            format!("{} store at {shown} answers", store.backend()),
        ),
        schema(store.backend(), status, settings.config.workers.migrate),
    ];
    let asked = Utc::now();
    let health = match timeout(NETWORK_TIMEOUT, store.server_health()).await {
        Ok(Ok(health)) => health,
        Ok(Err(err)) => {
            checks.push(Check::fail(
                "store",
                format!("cannot read the server: {err}"),
            ));
            return checks;
        }
        Err(_) => {
            checks.push(Check::fail(
                "store",
                format!(
                    "the server did not answer within {} s",
                    NETWORK_TIMEOUT.as_secs()
                ),
            ));
            return checks;
        }
    };
    // The server read its clock about halfway through the round trip.
    let here = asked + (Utc::now() - asked) / 2;
    checks.extend(server(store.backend(), &health, here));
    checks
}

fn schema(backend: &str, status: SchemaStatus, workers_migrate: bool) -> Check {
    let (have, need) = (status.version, status.latest);
    if backend == "redis" {
        Check::ok("store.schema", "Redis needs no migrations")
    } else if have == need {
        Check::ok("store.schema", format!("version {have}, current"))
    } else if have > need {
        Check::warn(
            "store.schema",
            format!("version {have}, newer than this drover's {need}: a newer drover migrated it; upgrade this one"),
        )
    } else if workers_migrate {
        Check::warn(
            "store.schema",
            format!("version {have}, this drover needs {need}: `serve`, `api` and `worker` apply the rest at start (workers.migrate: true), or run `drover migrate`"),
        )
    } else {
        Check::fail(
            "store.schema",
            format!("version {have}, this drover needs {need}, and workers.migrate is false so processes refuse to start: run `drover migrate`"),
        )
    }
}

/// What the backend's server says: PostgreSQL's clock against `here`, Redis's AOF, the
/// SQLite file's disk.
fn server(backend: &str, health: &ServerHealth, here: chrono::DateTime<Utc>) -> Vec<Check> {
    let mut checks = Vec::new();
    if let Some(clock) = health.clock {
        let apart = (clock - here).abs().to_std().unwrap_or_default();
        let detail = format!(
            "the server's clock is {:.3} s {} this host's",
            apart.as_secs_f64(),
            if clock > here { "ahead of" } else { "behind" }
        );
        checks.push(if apart > CLOCK_FAIL {
            Check::fail(
                "store.clock",
                format!("{detail}: run NTP (chrony, systemd-timesyncd) on both"),
            )
        } else if apart > CLOCK_WARN {
            Check::warn(
                "store.clock",
                format!("{detail}: run NTP (chrony, systemd-timesyncd) on both"),
            )
        } else {
            Check::ok("store.clock", detail)
        });
    }
    if backend == "redis" {
        checks.push(match health.append_only {
            Some(true) => Check::ok("store.aof", "appendonly yes"),
            Some(false) => Check::warn(
                "store.aof",
                "appendonly no: a Redis crash loses acknowledged jobs; run Redis with --appendonly yes --appendfsync everysec",
            ),
            None => Check::warn(
                "store.aof",
                "the server does not say whether AOF is on (CONFIG GET refused): make sure it runs with appendonly yes",
            ),
        });
    }
    if let Some(file) = &health.file {
        checks.push(disk(file));
    }
    checks
}

/// The file of a `sqlite:` store URL, as the SQLite store reads it.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(PathBuf::from(path.split('?').next().unwrap_or(path)))
}

/// Room left on the disk of `file` (or of its nearest existing directory).
fn disk(file: &Path) -> Check {
    let mut dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    while !dir.exists() {
        match dir.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(parent) => dir = parent,
            None => {
                dir = Path::new(".");
                break;
            }
        }
    }
    match free_bytes(dir) {
        Ok(free) => {
            let detail = format!("{} free for {}", size(free), dir.display());
            if free < DISK_FAIL {
                Check::fail("disk", format!("{detail}: SQLite stops writing when the disk fills; free space or move queue.url"))
            } else if free < DISK_WARN {
                Check::warn(
                    "disk",
                    format!("{detail}: under 1 GiB; free space or lower the retention"),
                )
            } else {
                Check::ok("disk", detail)
            }
        }
        Err(err) => Check::warn(
            "disk",
            format!("cannot read the free space of {}: {err}", dir.display()),
        ),
    }
}

fn size(bytes: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    let b = bytes as f64;
    if b >= GIB {
        format!("{:.1} GiB", b / GIB)
    } else {
        format!("{:.0} MiB", b / MIB)
    }
}

/// Bytes an unprivileged process may still write on the file system of `dir` (statvfs(3)).
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is a NUL-terminated string and `stat` a buffer of the right type, both
    // alive for the call; statvfs writes only into `stat`.
    let rc = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    // The field types differ between platforms (u32 on some, u64 on others).
    #[allow(clippy::unnecessary_cast)]
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite://./d/x.db?mode=rwc"),
            Some(PathBuf::from("./d/x.db"))
        );
        assert_eq!(sqlite_path("sqlite:x.db"), Some(PathBuf::from("x.db")));
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }

    #[test]
    fn clocks_and_aof_are_judged() {
        let here = Utc::now();
        let health = |secs: i64| ServerHealth {
            clock: Some(here + chrono::Duration::seconds(secs)),
            ..Default::default()
        };
        let status = |secs| server("postgres", &health(secs), here)[0].status;
        assert_eq!(status(0), super::super::Status::Ok);
        assert_eq!(status(-5), super::super::Status::Warn);
        assert_eq!(status(120), super::super::Status::Fail);
        let aof = |on| {
            server(
                "redis",
                &ServerHealth {
                    append_only: on,
                    ..Default::default()
                },
                here,
            )[0]
            .status
        };
        assert_eq!(aof(Some(true)), super::super::Status::Ok);
        assert_eq!(aof(Some(false)), super::super::Status::Warn);
        assert_eq!(aof(None), super::super::Status::Warn);
    }

    #[test]
    fn free_space_is_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(free_bytes(dir.path()).expect("statvfs") > 0);
        // A file in directories that do not exist yet: the nearest existing one is read.
        let check = disk(&dir.path().join("a/b/drover.db"));
        assert!(
            check.detail.contains(&dir.path().display().to_string()),
            "{check:?}"
        );
    }
}
