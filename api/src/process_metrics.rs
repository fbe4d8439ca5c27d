//! The standard `process_*` metrics, under the names the Prometheus client libraries give
//! them, read from `/proc/self` at each scrape: CPU seconds, resident and virtual memory,
//! open and maximum file descriptors, threads and the start time.
//!
//! They are rendered as text next to the recorder's, not recorded through `metrics`: the
//! CPU counter is fractional seconds (the `metrics` counters hold integers), and a value
//! read at scrape time needs no recorder state. Where `/proc` is missing (not Linux) the
//! lines are left out.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// One reading of this process's resources.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    pub open_fds: u64,
    /// The soft limit; `None` when unlimited.
    pub max_fds: Option<u64>,
    pub threads: u64,
    /// Seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

impl ProcessStats {
    /// Reads this process's figures from `/proc/self`.
    pub fn read() -> io::Result<Self> {
        let proc = Path::new("/proc");
        let stat = parse_stat(&std::fs::read_to_string(proc.join("self/stat"))?)?;
        let boot_time = parse_boot_time(&std::fs::read_to_string(proc.join("stat"))?)?;
        let max_fds = parse_max_fds(&std::fs::read_to_string(proc.join("self/limits"))?);
        // The directory handle read_dir holds is one of the entries; like the Go client,
        // it is counted: the figure is for "about to run out", not an exact census.
        let open_fds = std::fs::read_dir(proc.join("self/fd"))?.count() as u64;
        let ticks = clock_ticks_per_second();
        Ok(ProcessStats {
            cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
            resident_memory_bytes: stat.rss_pages.saturating_mul(page_size()),
            virtual_memory_bytes: stat.vsize,
            open_fds,
            max_fds,
            threads: stat.threads,
            start_time_seconds: boot_time as f64 + stat.start_ticks as f64 / ticks,
        })
    }

    /// Prometheus text exposition (version 0.0.4), `# HELP` and `# TYPE` included.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let mut line = |name: &str, kind: &str, help: &str, value: String| {
            let _ = write!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n"
            );
        };
        line(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            format!("{}", self.cpu_seconds),
        );
        line(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            self.resident_memory_bytes.to_string(),
        );
        line(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            self.virtual_memory_bytes.to_string(),
        );
        line(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            self.open_fds.to_string(),
        );
        if let Some(max) = self.max_fds {
            line(
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                max.to_string(),
            );
        }
        line(
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
            self.threads.to_string(),
        );
        line(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            format!("{}", self.start_time_seconds),
        );
        text
    }
}

/// The fields of `/proc/self/stat` that the metrics use.
#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    threads: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: u64,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("/proc: {what}"))
}

/// Parses `/proc/<pid>/stat` (proc(5)). The command name, field 2, is in parentheses and may
/// itself hold spaces and parentheses, so the fields are counted from the last `)`.
fn parse_stat(text: &str) -> io::Result<Stat> {
    let after_name = text
        .rfind(')')
        .map(|end| &text[end + 1..])
        .ok_or_else(|| invalid("stat has no command name"))?;
    // Field 3 (state) is the first here; field n is at index n - 3.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| -> io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| invalid(&format!("stat field {n} missing or not a number")))
    };
    Ok(Stat {
        utime: field(14)?,
        stime: field(15)?,
        threads: field(20)?,
        start_ticks: field(22)?,
        vsize: field(23)?,
        rss_pages: field(24)?,
    })
}

/// The `btime` line of `/proc/stat`: boot time, in seconds since the epoch.
fn parse_boot_time(text: &str) -> io::Result<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| invalid("stat has no btime"))
}

/// The soft limit of "Max open files" in `/proc/self/limits`; `None` when unlimited or absent.
fn parse_max_fds(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a configuration value; it touches no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0 // USER_HZ on every Linux architecture drover runs on
    }
}

fn page_size() -> u64 {
    // SAFETY: as above.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1500 0 0 0 \
                    250 50 0 0 20 0 7 0 123456 104857600 2560 18446744073709551615 \
                    1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line).expect("parses"),
            Stat {
                utime: 250,
                stime: 50,
                threads: 7,
                start_ticks: 123456,
                vsize: 104857600,
                rss_pages: 2560,
            }
        );
        assert!(parse_stat("4242 no name").is_err());
        assert!(parse_stat("4242 (short) S 1 2").is_err());
    }

    #[test]
    fn limits_and_boot_time() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             63711                63711                processes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        assert_eq!(
            parse_max_fds(
                "Max open files            unlimited            unlimited            files"
            ),
            None
        );
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1764750000\nprocesses 9\n").expect("btime"),
            1764750000
        );
    }

    #[test]
    fn this_process_reads_plausibly() {
        let stats = ProcessStats::read().expect("/proc/self");
        assert!(stats.resident_memory_bytes > 0);
        assert!(stats.virtual_memory_bytes >= stats.resident_memory_bytes);
        assert!(stats.threads >= 1);
        assert!(stats.open_fds >= 3);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        assert!(
            stats.start_time_seconds <= now + 1.0
                && stats.start_time_seconds > now - 86_400.0 * 365.0
        );
        let text = stats.render();
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ")
        );
    }
}
