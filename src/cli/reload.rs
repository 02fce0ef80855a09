//! `anyns reload`: ask the running server, over its control socket, to reload.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::config::{NodeConfig, Overrides};

/// How long a reload of large zones may take before we stop waiting for the answer.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(300);

pub fn run(overrides: &Overrides) -> anyhow::Result<ExitCode> {
    let path = match &overrides.control_socket {
        Some(path) => path.clone(),
        None => NodeConfig::load(overrides)?.control_socket.context(
            "no control socket: give --control-socket or a config with server.control_socket",
        )?,
    };
    let mut stream = UnixStream::connect(&path)
        .with_context(|| format!("cannot reach the server at {}", path.display()))?;
    stream.set_read_timeout(Some(RELOAD_TIMEOUT))?;
    stream.write_all(b"reload\n")?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .context("no answer from the server")?;
    print!("{answer}");
    Ok(if answer.starts_with("ok") {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
