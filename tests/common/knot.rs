//! Configuring and running Knot DNS (`knotd`) on loopback.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{ServerProcess, TempDir, find_program, free_port, loopback_addrs};

use super::{DnsServer, ZoneFile, dns};

/// How long Knot may take to start and load its zones.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `knotd`, stopped and its directory removed on drop.
#[derive(Debug)]
pub struct Knot {
    process: ServerProcess,
    addrs: Vec<SocketAddr>,
    config: PathBuf,
    log: PathBuf,
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
            log: dir.path().join("knotd.log"),
            config: config_path,
            _dir: dir,
        })
    }

    /// Starts `knotd` on `port` of 127.0.0.1 with a config of our making: the server, log,
    /// database and control sections, then `body` (knot.conf YAML: `key:`, `remote:`, `acl:`,
    /// `template:`, `zone:` sections). `{dir}` in `body` stands for Knot's scratch directory,
    /// where zone files can be written with [`Knot::write_file`] before or after the start (a
    /// zone file named in `body` must exist before, or Knot starts with the zone empty).
    /// `files` are written before Knot starts. Waits until knotd answers on UDP.
    pub fn start_with(port: u16, body: &str, files: &[(&str, &str)]) -> Result<Knot, String> {
        let binary = Self::binary().ok_or("knotd is not installed")?;
        let dir = TempDir::new("anyns-knot").map_err(|e| format!("temp dir: {e}"))?;
        let d = dir.path().display().to_string();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).map_err(|e| format!("{name}: {e}"))?;
        }
        let text = format!(
            "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n    udp-workers: 1\n    \
             tcp-workers: 1\n    background-workers: 1\n\
             log:\n  - target: stderr\n    any: info\n\
             database:\n    storage: \"{d}\"\n\
             control:\n    listen: \"{d}/knot.sock\"\n{}",
            body.replace("{dir}", &d)
        );
        let config_path = dir.path().join("knot.conf");
        std::fs::write(&config_path, text)
            .map_err(|e| format!("writing {}: {e}", config_path.display()))?;
        let log = dir.path().join("knotd.log");
        let mut command = Command::new(binary);
        command.arg("-c").arg(&config_path);
        let mut process =
            ServerProcess::spawn("knotd", command, &log).map_err(|e| e.to_string())?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        process.wait_until(START_TIMEOUT, || {
            let query = dns::Query::parse(".", domain::base::Rtype::SOA)?.to_wire();
            dns::udp_exchange(addr, &query, Duration::from_millis(300))
                .map(drop)
                .map_err(|e| e.to_string())
        })?;
        Ok(Knot {
            process,
            addrs: vec![addr],
            config: config_path,
            log,
            _dir: dir,
        })
    }

    /// Knot's scratch directory (zone files, journal, control socket).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Writes a file into Knot's directory (a new version of a zone file).
    pub fn write_file(&self, name: &str, text: &str) {
        let path = self.dir().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Runs `knotc` against this server, bounded to 10 s; the output, or why it failed.
    pub fn knotc(&self, args: &[&str]) -> Result<String, String> {
        let binary = find_program("knotc").ok_or("knotc is not installed")?;
        let mut child = Command::new(binary)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("knotc: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait().map_err(|e| e.to_string())? {
                Some(_) => {
                    let out = child.wait_with_output().map_err(|e| e.to_string())?;
                    let text = format!(
                        "{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                    return if out.status.success() {
                        Ok(text)
                    } else {
                        Err(format!("knotc {args:?}: {text}"))
                    };
                }
                None if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("knotc {args:?} timed out"));
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Everything knotd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops knotd (by PID) now; the directory stays until drop.
    pub fn stop(&mut self) {
        self.process.stop();
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
