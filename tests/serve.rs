//! The real `anyns` binary on loopback: serving over UDP and TCP, IPv4 and IPv6, node identity,
//! `check` errors with file:line, and reload (control socket and SIGHUP) that never loses the
//! zone being served.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::dns::{Edns, Query, parse, tcp_exchange, udp_exchange};
use common::process::{ServerProcess, TempDir, free_port, ipv6_loopback_available};
use domain::base::iana::{Class, Rcode};
use domain::base::{ParsedName, Rtype};
use domain::rdata::AllRecordData;

const TIMEOUT: Duration = Duration::from_secs(5);
const START: Duration = Duration::from_secs(20);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_anyns"))
}

fn zone_text(serial: u32) -> String {
    format!(
        "$ORIGIN serve.test.\n$TTL 300\n\
         @ SOA ns hostmaster {serial} 3600 600 86400 60\n\
         @ NS ns\nns A 192.0.2.1\nwww A 192.0.2.80\n"
    )
}

/// The answer section as "owner type rdata" lines.
fn answers(bytes: Vec<u8>) -> (Rcode, Vec<String>) {
    let msg = parse(bytes).unwrap();
    let lines = msg
        .answer()
        .unwrap()
        .map(|rr| {
            let rr = rr.unwrap();
            let rr = rr
                .to_any_record::<AllRecordData<_, ParsedName<_>>>()
                .unwrap();
            format!("{} {} {}", rr.owner(), rr.rtype(), rr.data())
        })
        .collect();
    (msg.header().rcode(), lines)
}

fn soa_serial(addr: SocketAddr) -> Option<u32> {
    let q = Query::parse("serve.test", Rtype::SOA).ok()?.to_wire();
    let msg = parse(udp_exchange(addr, &q, TIMEOUT).ok()?).ok()?;
    let rr = msg.answer().ok()?.next()?.ok()?;
    let rr = rr.to_any_record::<AllRecordData<_, ParsedName<_>>>().ok()?;
    match rr.data() {
        AllRecordData::Soa(soa) => Some(soa.serial().into_int()),
        _ => None,
    }
}

struct Node {
    process: ServerProcess,
    addrs: Vec<SocketAddr>,
    control: SocketAddr,
    zone: PathBuf,
    dir: TempDir,
}

fn start_node() -> Node {
    let dir = TempDir::new("anyns-serve-test").unwrap();
    let zone = dir.path().join("serve.test.zone");
    std::fs::write(&zone, zone_text(1)).unwrap();
    let port = free_port().unwrap();
    let mut addrs: Vec<SocketAddr> = vec![format!("127.0.0.1:{port}").parse().unwrap()];
    if ipv6_loopback_available() {
        addrs.push(format!("[::1]:{port}").parse().unwrap());
    }
    let control: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
        .parse()
        .unwrap();
    let mut command = Command::new(binary());
    command.arg("serve");
    for a in &addrs {
        command.arg("--listen").arg(a.to_string());
    }
    command
        .arg("--zone")
        .arg(format!("serve.test={}", zone.display()))
        .args(["--threads", "2", "--site", "ams", "--node", "n1"])
        .arg("--control")
        .arg(control.to_string());
    let mut process =
        ServerProcess::spawn("anyns", command, &dir.path().join("anyns.log")).unwrap();
    process.wait_for_line("listening", START).unwrap();
    Node {
        process,
        addrs,
        control,
        zone,
        dir,
    }
}

fn wait_for_serial(addr: SocketAddr, serial: u32) {
    let deadline = Instant::now() + TIMEOUT;
    while soa_serial(addr) != Some(serial) {
        assert!(Instant::now() < deadline, "serial {serial} never served");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn reload(control: SocketAddr) -> (bool, String) {
    let out = Command::new(binary())
        .arg("reload")
        .arg("--control")
        .arg(control.to_string())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn serves_udp_and_tcp_on_ipv4_and_ipv6_with_identity() {
    let mut node = start_node();
    let query = Query::parse("WwW.Serve.Test", Rtype::A)
        .unwrap()
        .with_edns(Some(Edns::payload(1232)));
    for addr in &node.addrs {
        for (transport, bytes) in [
            ("udp", udp_exchange(*addr, &query.to_wire(), TIMEOUT)),
            ("tcp", tcp_exchange(*addr, &query.to_wire(), TIMEOUT)),
        ] {
            let bytes = bytes.unwrap_or_else(|e| panic!("{transport} {addr}: {e}"));
            // RFC 1035 section 7.2 / RFC 4343: the question comes back as sent.
            assert_eq!(bytes[12..29], query.to_wire()[12..29], "{transport} {addr}");
            let (rcode, lines) = answers(bytes);
            assert_eq!(rcode, Rcode::NOERROR, "{transport} {addr}");
            assert_eq!(lines, ["WwW.Serve.Test A 192.0.2.80"], "{transport} {addr}");
        }
    }
    // id.server in class CHAOS names the node (RFC 4892).
    let q = Query::parse("id.server", Rtype::TXT)
        .unwrap()
        .with_class(Class::CH)
        .to_wire();
    let (_, lines) = answers(udp_exchange(node.addrs[0], &q, TIMEOUT).unwrap());
    assert_eq!(lines, ["id.server TXT \"n1.ams\""]);
    assert!(node.process.exited().is_none());
}

#[test]
fn reload_swaps_zones_and_keeps_serving_the_old_one_on_error() {
    let node = start_node();
    let addr = node.addrs[0];
    wait_for_serial(addr, 1);

    std::fs::write(&node.zone, zone_text(2)).unwrap();
    let (ok, text) = reload(node.control);
    assert!(ok, "{text}");
    assert!(text.contains("loaded: serve.test. serial 2"), "{text}");
    wait_for_serial(addr, 2);

    // A broken zone is refused with file:line and serial 2 keeps serving.
    std::fs::write(&node.zone, format!("{}www CNAME ns\n", zone_text(3))).unwrap();
    let (ok, text) = reload(node.control);
    assert!(!ok, "{text}");
    let zone_path = node.zone.display().to_string();
    assert!(
        text.contains(&format!(
            "{zone_path}:7: www.serve.test. has a CNAME and other data"
        )),
        "{text}"
    );
    assert!(text.contains("serial 2 keeps serving"), "{text}");
    assert_eq!(soa_serial(addr), Some(2));

    // SIGHUP reloads too.
    std::fs::write(&node.zone, zone_text(4)).unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &node.process.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for_serial(addr, 4);
    drop(node.dir);
}

#[test]
fn check_reports_file_line_and_exit_code() {
    let dir = TempDir::new("anyns-check-test").unwrap();
    let zone = dir.path().join("bad.zone");
    std::fs::write(&zone, format!("{}mail MX 10\n", zone_text(1))).unwrap();
    let out = Command::new(binary())
        .args(["check", "--zone"])
        .arg(format!("serve.test={}", zone.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("error: {}:7:", zone.display())),
        "{stdout}"
    );

    std::fs::write(&zone, zone_text(1)).unwrap();
    let out = Command::new(binary())
        .args(["check", "--zone"])
        .arg(format!("serve.test={}", zone.display()))
        .output()
        .unwrap();
    assert!(out.status.success());

    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        "version = 1\n[server]\nlisten = [\"127.0.0.1:53\"]\nthreads = \"two\"\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:4:11:", config.display())),
        "{stderr}"
    );
}

#[test]
fn serve_without_zones_serves_the_embedded_example() {
    let dir = TempDir::new("anyns-default-test").unwrap();
    let port = free_port().unwrap();
    let mut command = Command::new(binary());
    command
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--control")
        .arg(format!("127.0.0.1:{}", free_port().unwrap()));
    let mut process =
        ServerProcess::spawn("anyns", command, &dir.path().join("anyns.log")).unwrap();
    let line = process.wait_for_line("listening", START).unwrap();
    assert!(line.contains("example.test."), "{line}");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let q = Query::parse("www.example.test", Rtype::A)
        .unwrap()
        .to_wire();
    let (rcode, lines) = answers(udp_exchange(addr, &q, TIMEOUT).unwrap());
    assert_eq!(rcode, Rcode::NOERROR);
    assert_eq!(
        lines,
        [
            "www.example.test CNAME example.test.",
            "example.test A 192.0.2.53"
        ]
    );
}

/// `anyns status|maintenance|drain` against a node, and SIGTERM draining before the exit.
#[test]
fn control_api_maintenance_drain_and_sigterm() {
    let dir = TempDir::new("anyns-drain-test").unwrap();
    let zone = dir.path().join("serve.test.zone");
    std::fs::write(&zone, zone_text(1)).unwrap();
    let port = free_port().unwrap();
    let control = format!("127.0.0.1:{}", free_port().unwrap());
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n[node]\nsite = \"ams\"\nnode = \"n1\"\n\
             [server]\nlisten = [\"127.0.0.1:{port}\"]\nthreads = 1\n\
             [control]\nlisten = \"{control}\"\n\
             [[zone]]\nname = \"serve.test\"\nfile = \"serve.test.zone\"\n\
             [health.drain]\ndeprefer_ms = 300\nquiet_ms = 300\nmax_wait_ms = 3000\n"
        ),
    )
    .unwrap();
    let mut command = Command::new(binary());
    command.arg("serve").arg("--config").arg(&config);
    let mut process =
        ServerProcess::spawn("anyns", command, &dir.path().join("anyns.log")).unwrap();
    process.wait_for_line("listening", START).unwrap();

    let ctl = |args: &[&str]| {
        let out = Command::new(binary())
            .args(args)
            .arg("--control")
            .arg(&control)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let intent = || {
        let json: serde_json::Value = serde_json::from_str(&ctl(&["status", "--json"])).unwrap();
        json["intent"].as_str().unwrap_or_default().to_string()
    };
    let wait_for_intent = |want: &str| {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let now = intent();
            if now.starts_with(want) {
                return;
            }
            assert!(Instant::now() < deadline, "intent {now:?}, wanted {want:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // Nothing is announced before the zone is loaded and the self-probe passed rise times.
    wait_for_intent("announce");
    assert!(ctl(&["status"]).contains("zone      serve.test."));

    ctl(&["maintenance", "on"]);
    wait_for_intent("announce de-preferred: maintenance");
    ctl(&["maintenance", "off"]);
    wait_for_intent("announce");

    // The fault switch is refused unless the node was started for the lab.
    let mut http = std::net::TcpStream::connect(&control).unwrap();
    http.set_read_timeout(Some(TIMEOUT)).unwrap();
    std::io::Write::write_all(
        &mut http,
        b"POST /fault/dns-drop HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut http, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 409"), "{answer}");
    assert!(answer.contains("fault injection is off"), "{answer}");
    assert_eq!(
        soa_serial(format!("127.0.0.1:{port}").parse().unwrap()),
        Some(1)
    );

    // SIGTERM drains (de-prefer, withdraw, quiet) and then exits; queries are answered
    // throughout.
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &process.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut answered_while_draining = 0;
    while process.exited().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit after drain"
        );
        if soa_serial(addr) == Some(1) {
            answered_while_draining += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        answered_while_draining > 5,
        "answered {answered_while_draining}"
    );
    // De-prefer 300 ms + quiet 300 ms at least.
    assert!(started.elapsed() >= Duration::from_millis(600));
}
