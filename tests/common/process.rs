//! Processes, ports and scratch directories for tests that run real servers.
//!
//! Every server a test starts is owned by a [`ServerProcess`], which stops it by its PID on
//! drop (SIGTERM, then SIGKILL after a grace period) — never by name, since other tests and
//! other people's servers run on the same machine.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a stopped server gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

//------------ TempDir --------------------------------------------------------

/// A directory under the system temp dir, removed with its contents on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh, empty directory whose name starts with `prefix`.
    pub fn new(prefix: &str) -> io::Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&path)?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

//------------ Ports and programs ---------------------------------------------

/// A port that was free on 127.0.0.1 and ::1, for both TCP and UDP, a moment ago.
///
/// The sockets are closed before returning, so another process may take the port in between;
/// the window is small and a server that fails to bind reports it clearly.
pub fn free_port() -> io::Result<u16> {
    for _ in 0..50 {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = tcp.local_addr()?.port();
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port));
        let tcp6 = TcpListener::bind((Ipv6Addr::LOCALHOST, port));
        let udp6 = UdpSocket::bind((Ipv6Addr::LOCALHOST, port));
        if udp.is_ok() && v6_ok(tcp6.map(drop)) && v6_ok(udp6.map(drop)) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no port free on both loopbacks after 50 tries",
    ))
}

/// An unavailable IPv6 loopback is not a reason to reject a port.
fn v6_ok(bound: io::Result<()>) -> bool {
    match bound {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::AddrNotAvailable,
    }
}

/// Whether the IPv6 loopback can be bound here (containers sometimes lack it).
pub fn ipv6_loopback_available() -> bool {
    UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

/// Finds an executable by name in `PATH` and the sbin directories (daemons live there and
/// `PATH` of a non-login shell often lacks them).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/usr/local/sbin", "/sbin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Whether the lab must be complete: with `ANYNS_REQUIRE_LAB=1` a missing peer is a failure,
/// not a skip.
pub fn lab_required() -> bool {
    std::env::var("ANYNS_REQUIRE_LAB").is_ok_and(|v| v == "1")
}

//------------ ServerProcess --------------------------------------------------

/// A running server, stopped by its PID on drop. Its stdout and stderr go to a log file
/// (and, until the first line containing a marker is seen, through a channel).
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Child,
    log: PathBuf,
    lines: mpsc::Receiver<String>,
}

impl ServerProcess {
    /// Spawns `command` with stdout and stderr captured into `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> io::Result<Self> {
        command.stdin(std::process::Stdio::null());
        command.stdout(std::process::Stdio::piped());
        command.stderr(std::process::Stdio::piped());
        let mut child = command.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("cannot start {name} ({command:?}): {e}"))
        })?;
        let (sender, lines) = mpsc::channel();
        let file = fs::File::create(log)?;
        if let Some(out) = child.stdout.take() {
            pump_lines(out, file.try_clone()?, sender.clone());
        }
        if let Some(err) = child.stderr.take() {
            pump_lines(err, file, sender);
        }
        Ok(ServerProcess {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            lines,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the process prints a line containing `marker`; fails if it exits first or
    /// `timeout` passes.
    pub fn wait_for_line(&mut self, marker: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                // Let the pump threads drain what the process wrote before it died.
                thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "{} exited ({status}) before printing {marker:?}\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "{} printed no line containing {marker:?} within {timeout:?}\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            match self.lines.recv_timeout(left.min(Duration::from_millis(50))) {
                Ok(line) if line.contains(marker) => return Ok(line),
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                // Both pipes closed: the process is exiting; the next turn reports it.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    thread::sleep(Duration::from_millis(20))
                }
            }
        }
    }

    /// Calls `probe` until it succeeds; fails with the last probe error and the log tail if the
    /// process exits first or `timeout` passes.
    pub fn wait_until(
        &mut self,
        timeout: Duration,
        mut probe: impl FnMut() -> Result<(), String>,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match probe() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if let Some(status) = self.exited() {
                return Err(format!(
                    "{} exited ({status}) before it was ready: {last}\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} not ready within {timeout:?}: {last}\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            thread::sleep(Duration::from_millis(30));
        }
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(30);
        format!(
            "--- last lines of {} ---\n{}",
            self.log.display(),
            lines[start..].join("\n")
        )
    }

    /// Stops the process: SIGTERM by PID, SIGKILL if it is still there after a grace period.
    pub fn stop(&mut self) {
        self.stop_with("-TERM");
    }

    /// Like [`ServerProcess::stop`] with another first signal (`"-INT"`: anyns exits at once
    /// rather than draining).
    pub fn stop_with(&mut self, signal: &str) {
        if self.exited().is_some() {
            return;
        }
        // `kill(1)` by PID keeps this crate free of `unsafe` (the workspace forbids it).
        let _ = Command::new("kill")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Copies lines from a child's pipe into the log file and the channel.
fn pump_lines(pipe: impl Read + Send + 'static, mut log: fs::File, lines: mpsc::Sender<String>) {
    thread::spawn(move || {
        use std::io::Write;
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(log, "{line}");
            // The receiver stops listening once the server is up; that is fine.
            let _ = lines.send(line);
        }
    });
}

//------------ Addresses ------------------------------------------------------

/// The loopback listen addresses for `port`: 127.0.0.1, and ::1 where it exists.
pub fn loopback_addrs(port: u16) -> Vec<SocketAddr> {
    let mut addrs = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))];
    if ipv6_loopback_available() {
        addrs.push(SocketAddr::from((Ipv6Addr::LOCALHOST, port)));
    }
    addrs
}
