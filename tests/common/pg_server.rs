//! A private PostgreSQL server in a temporary directory, on its own port (Debian's
//! `initdb` and `pg_ctl`, run as the `postgres` user when the tests run as root), for tests
//! that stop and restart their store without touching the shared server.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A private PostgreSQL server in a temporary directory.
pub struct PgServer {
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
    pub fn start() -> PgServer {
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

    /// Starts the server (again, after [`PgServer::stop`]) and waits until it accepts.
    pub fn pg_ctl_start(&self) {
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

    /// Stops the server in `mode` (`smart`, `fast`, `immediate`) and waits until it has.
    pub fn stop(&self, mode: &str) {
        let mut cmd = as_postgres(&self.bin, "pg_ctl");
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", mode, "-w", "stop"]);
        run(cmd, "pg_ctl stop");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
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
