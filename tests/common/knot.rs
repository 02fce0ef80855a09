//! Configuring and running Knot DNS (`knotd`) on loopback.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::process::{ServerProcess, TempDir, find_program, free_port, loopback_addrs};
use super::{DnsServer, ZoneFile, dns};

/// How long Knot may take to start and load its zones.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `knotd`, stopped and its directory removed on drop.
#[derive(Debug)]
pub struct Knot {
    process: ServerProcess,
    addrs: Vec<SocketAddr>,
    // Dropped after `process` (fields drop in declaration order).
    _dir: TempDir,
}

impl Knot {
    /// The `knotd` binary, if installed.
    pub fn binary() -> Option<PathBuf> {
        find_program("knotd")
    }

    /// Starts `knotd` serving `zones` on a free port of 127.0.0.1 (and ::1), and waits until it
    /// answers the SOA of every zone.
    pub fn start(zones: &[ZoneFile]) -> Result<Knot, String> {
        let binary = Self::binary().ok_or("knotd is not installed")?;
        let dir = TempDir::new("anyns-knot").map_err(|e| format!("temp dir: {e}"))?;
        let port = free_port().map_err(|e| format!("free port: {e}"))?;
        let addrs = loopback_addrs(port);
        let config = config_text(&dir, &addrs, zones)?;
        let config_path = dir.path().join("knot.conf");
        std::fs::write(&config_path, config)
            .map_err(|e| format!("writing {}: {e}", config_path.display()))?;

        let mut command = Command::new(binary);
        command.arg("-c").arg(&config_path);
        let mut process = ServerProcess::spawn("knotd", command, &dir.path().join("knotd.log"))
            .map_err(|e| e.to_string())?;
        let apexes: Vec<&str> = zones.iter().map(|z| z.apex.as_str()).collect();
        let first = addrs[0];
        process.wait_until(START_TIMEOUT, || dns::serves_zones(first, &apexes))?;
        Ok(Knot {
            process,
            addrs,
            _dir: dir,
        })
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}

impl DnsServer for Knot {
    fn name(&self) -> &str {
        "knot"
    }

    fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

/// The knot.conf: everything under the temp dir, zone files loaded as they are and never
/// written back, no journal, no NSID or other identity in answers.
fn config_text(dir: &TempDir, addrs: &[SocketAddr], zones: &[ZoneFile]) -> Result<String, String> {
    let listen: Vec<String> = addrs
        .iter()
        .map(|a| format!("{}@{}", a.ip(), a.port()))
        .collect();
    let dir = dir.path().display();
    let mut text = format!(
        "server:\n    rundir: {dir}\n    listen: [ {} ]\n    udp-workers: 1\n    tcp-workers: 1\n    \
         background-workers: 1\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: {dir}\n\
         template:\n  - id: default\n    storage: {dir}\n    \
         # Mandatory checks only, and softened: load the same files as the other servers.\n    \
         semantic-checks: soft\n    zonefile-sync: -1\n    zonefile-load: whole\n    \
         journal-content: none\n\
         zone:\n",
        listen.join(", ")
    );
    for zone in zones {
        let path = zone
            .path
            .canonicalize()
            .map_err(|e| format!("zone file {}: {e}", zone.path.display()))?;
        let _ = writeln!(
            text,
            "  - domain: {}\n    file: {}",
            zone.apex,
            path.display()
        );
    }
    Ok(text)
}
