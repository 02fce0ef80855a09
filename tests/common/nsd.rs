//! Configuring and running NSD on loopback: a second reference server, used to check the
//! differential harness itself (`ANYNS_DIFF_SUBJECT=nsd`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::process::{ServerProcess, TempDir, find_program, free_port, loopback_addrs};
use super::{DnsServer, ZoneFile, dns};

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `nsd -d`, stopped (SIGTERM to the main process, which stops its children) and
/// its directory removed on drop.
#[derive(Debug)]
pub struct Nsd {
    process: ServerProcess,
    addrs: Vec<SocketAddr>,
    _dir: TempDir,
}

impl Nsd {
    pub fn binary() -> Option<PathBuf> {
        find_program("nsd")
    }

    pub fn start(zones: &[ZoneFile]) -> Result<Nsd, String> {
        let binary = Self::binary().ok_or("nsd is not installed")?;
        let dir = TempDir::new("anyns-nsd").map_err(|e| format!("temp dir: {e}"))?;
        let port = free_port().map_err(|e| format!("free port: {e}"))?;
        let addrs = loopback_addrs(port);
        let d = dir.path().display();
        let mut config = String::from("server:\n");
        for addr in &addrs {
            let _ = writeln!(config, "    ip-address: {}@{}", addr.ip(), addr.port());
        }
        let _ = write!(
            config,
            "    server-count: 1\n    database: \"\"\n    zonelistfile: {d}/zone.list\n    \
             pidfile: {d}/nsd.pid\n    username: \"\"\n    chroot: \"\"\n    zonesdir: \"\"\n    \
             xfrdfile: {d}/xfrd.state\n    xfrdir: {d}\n    logfile: {d}/nsd.log\n    \
             verbosity: 1\n    hide-version: yes\n    hide-identity: yes\n    \
             # Response rate limiting (on by default in Debian's build) would drop or truncate\n    \
             # the test's query burst.\n    rrl-ratelimit: 0\n    rrl-whitelist-ratelimit: 0\n\
             remote-control:\n    control-enable: no\n"
        );
        for zone in zones {
            let path = zone
                .path
                .canonicalize()
                .map_err(|e| format!("zone file {}: {e}", zone.path.display()))?;
            let _ = writeln!(
                config,
                "zone:\n    name: {}\n    zonefile: {}",
                zone.apex,
                path.display()
            );
        }
        let config_path = dir.path().join("nsd.conf");
        std::fs::write(&config_path, config)
            .map_err(|e| format!("writing {}: {e}", config_path.display()))?;

        let mut command = Command::new(binary);
        command.arg("-d").arg("-c").arg(&config_path);
        let mut process = ServerProcess::spawn("nsd", command, &dir.path().join("nsd-stdio.log"))
            .map_err(|e| e.to_string())?;
        let apexes: Vec<&str> = zones.iter().map(|z| z.apex.as_str()).collect();
        let first = addrs[0];
        process
            .wait_until(START_TIMEOUT, || dns::serves_zones(first, &apexes))
            .map_err(|e| {
                format!(
                    "{e}\n{}",
                    std::fs::read_to_string(dir.path().join("nsd.log")).unwrap_or_default()
                )
            })?;
        Ok(Nsd {
            process,
            addrs,
            _dir: dir,
        })
    }
}

impl DnsServer for Nsd {
    fn name(&self) -> &str {
        "nsd"
    }

    fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}
