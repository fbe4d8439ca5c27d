//! A PostgreSQL restart in the middle of a run: workers reconnect by themselves and every
//! job completes exactly once. The test starts its own server (Debian's `pg_ctl`) on its
//! own port, so the shared one is untouched.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use drover_queue::{JobFilter, JobId, JobStatus, NewJob};
use serde_json::json;

/// A private PostgreSQL server in a temporary directory.
struct PgServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

fn as_postgres(bin: &Path, tool: &str) -> Command {
    // PostgreSQL refuses to run as root; run its tools as the `postgres` user then.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        cmd
    } else {
        Command::new(bin.join(tool))
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PgServer {
    fn start() -> PgServer {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Debian's PostgreSQL under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|p| p.join("pg_ctl").exists())
            .expect("pg_ctl");
        let dir = tempfile::tempdir().expect("temp dir");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres").arg(dir.path());
                    c
                },
                "chown",
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut initdb = as_postgres(&bin, "initdb");
        initdb.arg("-D").arg(dir.path().join("data")).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        run(initdb, "initdb");
        let server = PgServer { bin, dir, port };
        server.pg_ctl_start();
        server
    }

    fn pg_ctl_start(&self) {
        let mut cmd = as_postgres(&self.bin, "pg_ctl");
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1",
                self.port,
                self.dir.path().display()
            ))
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "start"]);
        run(cmd, "pg_ctl start");
    }

    fn stop(&self, mode: &str) {
        let mut cmd = as_postgres(&self.bin, "pg_ctl");
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", mode, "-w", "stop"]);
        run(cmd, "pg_ctl stop");
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let mut cmd = as_postgres(&self.bin, "pg_ctl");
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = cmd.output();
    }
}

async fn completed(store: &dyn drover_queue::Store) -> usize {
    let mut n = 0;
    let mut before = None;
    loop {
        let page = match store
            .list(&JobFilter {
                status: Some(JobStatus::Completed),
                before,
                limit: 1000,
                ..Default::default()
            })
            .await
        {
            Ok(page) => page,
            Err(_) => return n,
        };
        n += page.jobs.len();
        match page.next {
            Some(next) => before = Some(next),
            None => return n,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_postgres_restart() {
    let server = PgServer::start();
    let url = pg_schema_url(&server.url());
    let store = open(&url).await;
    let logs = tempfile::tempdir().expect("temp dir");
    let jobs: Vec<JobId> = store
        .enqueue_batch(
            (0..400)
                .map(|i| NewJob::new("sleep", format!("restart {i}")).config(json!({"ms": 40})))
                .collect(),
        )
        .await
        .expect("enqueue")
        .iter()
        .map(|e| e.job().id)
        .collect();
    let mut a = spawn_worker(&url, "a", 4, logs.path());
    let mut b = spawn_worker(&url, "b", 4, logs.path());

    eventually(Duration::from_secs(60), "the run to get going", || async {
        (completed(&*store).await >= 40).then_some(())
    })
    .await;
    server.stop("fast");
    // The outage: workers see connections refused for a while.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        a.exited(Duration::ZERO).await.is_none(),
        "worker a survived the outage"
    );
    assert!(
        b.exited(Duration::ZERO).await.is_none(),
        "worker b survived the outage"
    );
    server.pg_ctl_start();

    let finished_before_restart = completed(&*store).await;
    assert!(
        finished_before_restart < jobs.len(),
        "the restart fell mid-run"
    );
    eventually(
        Duration::from_secs(120),
        "every job to finish after the restart",
        || async { all_finished(&*store, &jobs).await.then_some(()) },
    )
    .await;
    assert_each_completed_once(&*store, &jobs).await;
    assert!(
        a.exited(Duration::ZERO).await.is_none(),
        "worker a still running"
    );
    assert!(
        b.exited(Duration::ZERO).await.is_none(),
        "worker b still running"
    );
}
