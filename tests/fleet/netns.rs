//! Hosts for the fleet test: one Linux network namespace per host, each joined to a bridge
//! in the root namespace by a veth pair. The bridge carries the gateway address
//! `10.213.<n>.1/24`, where the test's PostgreSQL proxies and effect server listen; host `i`
//! is `10.213.<n>.<10 + i>`. A partition is the host's veth set down in the root namespace.
//!
//! Names carry a number `n` claimed by creating the bridge `drfl<n>br` (the kernel refuses a
//! second link of that name, so concurrent runs never share one) and the test process's pid,
//! so namespaces left by a run that was SIGKILLed are recognised and removed by the next.
//! Everything is removed on drop, also when the test fails.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

const PREFIX: &str = "drfl";

/// Runs `ip args…`; the error names the command and what it printed.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("`ip` (iproute2) could not be run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Panics, naming what is missing, unless this process can create network namespaces.
pub fn require_namespaces() {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert!(
        uid == 0,
        "the fleet test needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network \
         namespaces, veth pairs and a bridge; it runs as uid {uid}"
    );
    let version = Command::new("ip").arg("-V").output();
    assert!(
        matches!(&version, Ok(out) if out.status.success()),
        "the fleet test needs `ip` from iproute2 on PATH: {version:?}"
    );
    assert!(
        std::path::Path::new("/proc/self/ns/net").exists(),
        "the fleet test needs network namespaces (CONFIG_NET_NS): /proc/self/ns/net is missing"
    );
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the namespaces and bridges of fleet runs whose process is gone.
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // drfl<n>-<host>-<pid>
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let mut parts = rest.split('-');
        let (Some(n), Some(pid)) = (parts.next(), parts.next_back()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok_and(|pid| !pid_alive(pid)) {
            let _ = ip(&["netns", "del", &name]);
            let _ = ip(&["link", "del", &format!("{PREFIX}{n}br")]);
        }
    }
}

/// One host: a network namespace with a veth into the bridge.
pub struct Host {
    /// The test's name for it (`h1`, `h2`, …).
    pub name: String,
    pub netns: String,
    /// The root-namespace end of its veth pair, in the bridge.
    pub link: String,
    pub addr: Ipv4Addr,
    /// `/run/netns/<netns>`, open for `setns`.
    ns: File,
}

impl Host {
    /// Makes `command` run in this host's network namespace.
    pub fn enter(&self, command: &mut Command) {
        let fd = self.ns.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and only calls setns(2),
        // which is async-signal-safe; `fd` stays open in the parent while `self` lives, and
        // the child inherits it until exec.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
}

/// The bridge and its hosts.
pub struct Net {
    n: u8,
    pub bridge: String,
    pub hosts: Vec<Host>,
}

impl Net {
    /// Creates `count` hosts `h1…h<count>` on a fresh bridge. Panics naming what is missing
    /// (root, `ip`, namespaces) or what failed.
    pub fn create(count: usize) -> Net {
        require_namespaces();
        remove_stale();
        let pid = std::process::id();
        let start = (pid % 240) as u8;
        let mut claimed = None;
        for i in 0..240u8 {
            let n = (start + i) % 240 + 1;
            let bridge = format!("{PREFIX}{n}br");
            match ip(&["link", "add", &bridge, "type", "bridge"]) {
                Ok(()) => {
                    claimed = Some((n, bridge));
                    break;
                }
                Err(err) if err.contains("File exists") => continue,
                Err(err) => panic!("the fleet test could not create a bridge: {err}"),
            }
        }
        let (n, bridge) = claimed.expect("a free bridge name drfl<1..240>br");
        let mut net = Net {
            n,
            bridge,
            hosts: Vec::new(),
        };
        // From here on, `net` removes whatever was made when a step panics.
        net.setup(count, pid)
            .unwrap_or_else(|err| panic!("setting up the fleet's network: {err}"));
        net
    }

    fn setup(&mut self, count: usize, pid: u32) -> Result<(), String> {
        let gateway = format!("{}/24", self.gateway());
        ip(&["addr", "add", &gateway, "dev", &self.bridge])?;
        ip(&["link", "set", &self.bridge, "up"])?;
        for i in 1..=count {
            let name = format!("h{i}");
            let netns = format!("{PREFIX}{}-{name}-{pid}", self.n);
            let link = format!("{PREFIX}{}{name}", self.n);
            ip(&["netns", "add", &netns])?;
            let ns = File::open(format!("/run/netns/{netns}"))
                .map_err(|e| format!("open /run/netns/{netns}: {e}"))?;
            let addr = Ipv4Addr::new(10, 213, self.n, 10 + i as u8);
            self.hosts.push(Host {
                name,
                netns: netns.clone(),
                link: link.clone(),
                addr,
                ns,
            });
            ip(&[
                "link", "add", &link, "type", "veth", "peer", "name", "veth0", "netns", &netns,
            ])?;
            ip(&["link", "set", &link, "master", &self.bridge])?;
            ip(&["link", "set", &link, "up"])?;
            ip(&[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "veth0",
            ])?;
            ip(&["-n", &netns, "link", "set", "veth0", "up"])?;
            ip(&["-n", &netns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// The bridge's address in the root namespace: what hosts reach the stores through.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.n, 1)
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// Cuts `host` off from everything (its veth down): packets to and from it are dropped,
    /// its open TCP connections stay open and retransmit.
    pub fn partition(&self, host: &str) {
        let link = &self.host(host).link;
        ip(&["link", "set", link, "down"]).unwrap_or_else(|e| panic!("partition: {e}"));
    }

    pub fn heal(&self, host: &str) {
        let link = &self.host(host).link;
        ip(&["link", "set", link, "up"]).unwrap_or_else(|e| panic!("heal: {e}"));
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth pair inside it.
        for host in &self.hosts {
            if let Err(err) = ip(&["netns", "del", &host.netns]) {
                eprintln!("fleet cleanup: {err}");
            }
        }
        if let Err(err) = ip(&["link", "del", &self.bridge]) {
            eprintln!("fleet cleanup: {err}");
        }
    }
}
