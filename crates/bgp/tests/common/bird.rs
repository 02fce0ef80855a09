//! A BIRD 2 instance for interop tests: a config writer, start/stop by PID in a temp dir, and
//! `birdc` queries with bounded waits.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIRD: &str = "/usr/sbin/bird";
pub const BIRDC: &str = "/usr/sbin/birdc";

/// Whether the lab can run; without BIRD the test is skipped with a message, unless
/// ANYNS_REQUIRE_LAB=1 makes that a failure.
pub fn lab_available(test: &str) -> bool {
    let found = Path::new(BIRD).exists() && Path::new(BIRDC).exists();
    if !found {
        if std::env::var("ANYNS_REQUIRE_LAB").as_deref() == Ok("1") {
            panic!("{test}: BIRD 2 ({BIRD}) is not installed and ANYNS_REQUIRE_LAB=1");
        }
        eprintln!("SKIPPED {test}: BIRD 2 ({BIRD}) is not installed");
    }
    found
}

/// The `protocol bgp` of a BIRD config.
pub struct BirdPeer {
    pub local: String,
    pub local_port: u16,
    pub local_as: u32,
    pub neighbor: String,
    pub neighbor_port: u16,
    pub neighbor_as: u32,
    pub password: Option<String>,
    pub graceful_restart: bool,
    pub hold_time: u16,
}

impl BirdPeer {
    pub fn config(&self, router_id: &str) -> String {
        let password = self
            .password
            .as_ref()
            .map(|p| format!("  password \"{p}\";\n"))
            .unwrap_or_default();
        let gr = if self.graceful_restart { "on" } else { "off" };
        // `multihop`: lo has no link-local address, which a direct session needs for IPv6
        // next hops. Our next hops are then unresolved (BIRD shows the routes unreachable),
        // which is fine for checking what arrived.
        format!(
            r#"router id {router_id};
log "bird.log" all;
protocol device {{ }}
protocol bgp anyns {{
  local {} port {} as {};
  neighbor {} port {} as {};
  multihop;
  hold time {};
  connect delay time 1;
  connect retry time 2;
  error wait time 1, 3;
  graceful restart {gr};
{password}  ipv4 {{ import all; export none; }};
  ipv6 {{ import all; export none; }};
}}
"#,
            self.local,
            self.local_port,
            self.local_as,
            self.neighbor,
            self.neighbor_port,
            self.neighbor_as,
            self.hold_time
        )
    }
}

pub struct Bird {
    pub dir: PathBuf,
    child: Child,
}

impl Bird {
    pub fn start(name: &str, config: &str) -> Bird {
        let dir = std::env::temp_dir().join(format!("anyns-bgp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bird.conf"), config).unwrap();
        let child = Command::new(BIRD)
            .args(["-c", "bird.conf", "-s", "bird.ctl", "-P", "bird.pid", "-f"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let bird = Bird { dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !bird.dir.join("bird.ctl").exists() {
            assert!(
                Instant::now() < deadline,
                "BIRD did not start: {}",
                bird.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        bird
    }

    pub fn cli(&self, command: &str) -> String {
        let out = Command::new(BIRDC)
            .arg("-s")
            .arg(self.dir.join("bird.ctl"))
            .args(command.split_whitespace())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bird.log")).unwrap_or_default()
    }

    /// Polls `command` until `accept` holds, at most `timeout`; returns the last output.
    pub async fn wait_for(
        &self,
        command: &str,
        timeout: Duration,
        accept: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.cli(command);
            if accept(&out) {
                return Ok(out);
            }
            if Instant::now() >= deadline {
                return Err(out);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        // Our own child, by PID: never pkill.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("ANYNS_KEEP_LAB").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
