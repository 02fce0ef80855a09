//! A command probe: runs an operator's check (argv, no shell) and passes when it exits 0.
//!
//! A command still running at its timeout is killed by PID (SIGKILL) and reaped, so a hung
//! check never piles up processes. Only that process is killed: a check that forks children of
//! its own should `exec` its last step or clean up after itself.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::error::ConfigError;
use crate::probe::ProbeOutcome;

/// How much of the command's stderr is kept for the failure reason.
const STDERR_KEPT: usize = 200;
/// How long to wait for a killed command to be reaped.
const REAP_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandProbe {
    program: String,
    args: Vec<String>,
}

impl CommandProbe {
    /// `argv[0]` is the program, looked up in `PATH` as a shell would.
    pub fn new(name: &str, argv: &[String]) -> Result<Self, ConfigError> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| ConfigError::EmptyCommand {
                probe: name.to_owned(),
            })?;
        if program.is_empty() {
            return Err(ConfigError::EmptyCommand {
                probe: name.to_owned(),
            });
        }
        Ok(CommandProbe {
            program: program.clone(),
            args: args.to_vec(),
        })
    }

    pub async fn run(&self, timeout: Duration) -> ProbeOutcome {
        let mut child = match Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => return ProbeOutcome::Failed(format!("cannot run {}: {e}", self.program)),
        };
        // Read stderr while waiting, so a chatty command cannot block on a full pipe.
        let mut stderr = child.stderr.take();
        let read_stderr = async {
            let mut kept = Vec::new();
            let mut chunk = [0u8; 512];
            if let Some(err) = stderr.as_mut() {
                while let Ok(n @ 1..) = err.read(&mut chunk).await {
                    let room = STDERR_KEPT.saturating_sub(kept.len());
                    kept.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
            kept
        };
        let waited =
            tokio::time::timeout(timeout, async { tokio::join!(child.wait(), read_stderr) }).await;
        match waited {
            Ok((Ok(status), _)) if status.success() => ProbeOutcome::Ok,
            Ok((Ok(status), kept)) => {
                let text = String::from_utf8_lossy(&kept);
                let first_line = text.lines().next().unwrap_or("").trim();
                if first_line.is_empty() {
                    ProbeOutcome::Failed(format!("{}: {status}", self.program))
                } else {
                    ProbeOutcome::Failed(format!("{}: {status}: {first_line}", self.program))
                }
            }
            Ok((Err(e), _)) => ProbeOutcome::Failed(format!("waiting for {}: {e}", self.program)),
            Err(_elapsed) => {
                // SIGKILL by PID, then reap, so no zombie is left behind.
                let _ = child.start_kill();
                let _ = tokio::time::timeout(REAP_WAIT, child.wait()).await;
                ProbeOutcome::TimedOut
            }
        }
    }
}
