//! Running the `anyns` binary under test on loopback.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::process::{ServerProcess, TempDir, free_port, loopback_addrs};
use super::{DnsServer, ZoneFile};

/// How long `anyns serve` may take to print its "listening" line (a debug build, zones parsed
/// at start).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `anyns serve`, stopped by PID on drop.
#[derive(Debug)]
pub struct Anyns {
    process: ServerProcess,
    addrs: Vec<SocketAddr>,
    _dir: TempDir,
}

impl Anyns {
    /// Starts `binary serve` on a free loopback port with `zones`, plus `extra` arguments
    /// (e.g. `--threads 2`), and waits for the line that says it is listening.
    pub fn start(binary: &Path, zones: &[ZoneFile], extra: &[&str]) -> Result<Anyns, String> {
        let dir = TempDir::new("anyns-serve").map_err(|e| format!("temp dir: {e}"))?;
        let port = free_port().map_err(|e| format!("free port: {e}"))?;
        let addrs = loopback_addrs(port);
        let mut command = Command::new(binary);
        command.arg("serve");
        for addr in &addrs {
            command.arg("--listen").arg(addr.to_string());
        }
        for zone in zones {
            command.arg("--zone").arg(format!(
                "{}={}",
                zone.apex.trim_end_matches('.'),
                zone.path.display()
            ));
        }
        command.args(extra);
        let mut process = ServerProcess::spawn("anyns", command, &dir.path().join("anyns.log"))
            .map_err(|e| e.to_string())?;
        process.wait_for_line("listening", START_TIMEOUT)?;
        Ok(Anyns {
            process,
            addrs,
            _dir: dir,
        })
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// Whether the server is still running (it must not die under the queries).
    pub fn is_running(&mut self) -> bool {
        self.process.exited().is_none()
    }
}

impl DnsServer for Anyns {
    fn name(&self) -> &str {
        "anyns"
    }

    fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}
