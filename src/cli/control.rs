//! The CLI side of the control API: `anyns status|drain|undrain|maintenance|reload` send one
//! HTTP request to the running node and print its answer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::config::{NodeConfig, Overrides};

/// A reload of large zones takes seconds; nothing else takes long.
const TIMEOUT: Duration = Duration::from_secs(300);

/// Where the node's control API is: `--control`, else the config's, else the default.
pub fn address(overrides: &Overrides) -> anyhow::Result<SocketAddr> {
    Ok(NodeConfig::load(overrides)?.control)
}

/// Sends `method path` and returns the status code and the JSON body.
pub fn request(addr: SocketAddr, method: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("cannot reach the node's control API at {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    // HTTP/1.1 with `Connection: close`: the body ends where the stream ends.
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .context("no answer from the control API")?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP answer from the control API")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .context("malformed HTTP status line from the control API")?;
    let body = decode_body(head, body);
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    Ok((status, value))
}

/// Undoes chunked transfer encoding, which the server may use for JSON bodies.
fn decode_body(head: &str, body: &str) -> String {
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    if !chunked {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// Runs one command against the node and prints the answer; exit code 1 when refused.
pub fn run(overrides: &Overrides, method: &str, path: &str) -> anyhow::Result<ExitCode> {
    let addr = address(overrides)?;
    let (status, body) = request(addr, method, path)?;
    match &body {
        Value::Object(map) if map.contains_key("message") => {
            if let Some(Value::String(message)) = map.get("message") {
                print!("{message}");
                if !message.ends_with('\n') {
                    println!();
                }
            }
        }
        other => println!("{}", serde_json::to_string_pretty(other)?),
    }
    match status {
        200 => Ok(ExitCode::SUCCESS),
        409 => Ok(ExitCode::from(1)),
        other => bail!("the control API answered HTTP {other}"),
    }
}

/// `anyns status`: the node's state, for a person.
pub fn status(overrides: &Overrides, json: bool) -> anyhow::Result<ExitCode> {
    let addr = address(overrides)?;
    let (status, body) = request(addr, "GET", "/status")?;
    if status != 200 {
        bail!("the control API answered HTTP {status}: {body}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        print!("{}", crate::status::render(&body));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked";
        assert_eq!(
            decode_body(head, "4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n"),
            "{\"a\":1}"
        );
        assert_eq!(decode_body("HTTP/1.1 200 OK", "{}"), "{}");
    }
}
