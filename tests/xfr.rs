//! Zone transfers end to end with the real binary: Knot DNS as primary feeding an anyns
//! secondary (AXFR, IXFR, NOTIFY, TSIG), anyns as primary feeding a Knot secondary, the failure
//! cases (primary down until the zone expires, a transfer that would break the zone, a restart
//! that must serve the stored copy), catalog zones, and `anyns probe consistency`.
//!
//! The Knot tests are skipped with a message when `knotd` is not installed, unless
//! ANYNS_REQUIRE_LAB=1. Every wait is bounded; processes are stopped by PID; temporary
//! directories are removed on drop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyns_wire::Name;
use anyns_xfr::driver::run_transfer;
use anyns_xfr::transfer::{TransferError, TransferKind, Transferred};
use anyns_xfr::tsig::TsigKey;
use common::dns::{Query, parse, udp_exchange};
use common::knot::Knot;
use common::process::{ServerProcess, TempDir, free_port, lab_required};
use domain::base::Rtype;
use domain::base::iana::Rcode;
use domain::rdata::AllRecordData;
use serde_json::Value;

const SECRET: &str = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";
/// The same key name as Knot's `other-key.`, with another secret.
const WRONG_SECRET: &str = "d3Jvbmd3cm9uZ3dyb25nd3Jvbmc=";
const START: Duration = Duration::from_secs(20);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_anyns"))
}

/// Whether Knot is here; without it the test is skipped, or fails under ANYNS_REQUIRE_LAB=1.
fn knot_available() -> bool {
    if Knot::binary().is_some() {
        return true;
    }
    assert!(
        !lab_required(),
        "knotd is not installed and ANYNS_REQUIRE_LAB=1"
    );
    eprintln!("skipping: knotd is not installed (Debian package `knot`)");
    false
}

/// A zone's text: `timers` are SOA refresh, retry, expire.
fn zone_text(origin: &str, serial: u32, timers: [u32; 3], body: &str) -> String {
    let [refresh, retry, expire] = timers;
    format!(
        "$ORIGIN {origin}\n$TTL 300\n@ SOA ns hostmaster {serial} {refresh} {retry} {expire} 60\n\
         @ NS ns\nns A 192.0.2.1\n{body}"
    )
}

const SLOW: [u32; 3] = [3600, 600, 86400];

/// Knot's key, ACL and template sections for a primary that sends NOTIFY to anyns on
/// `anyns_port`, signed with xfr-key.
fn knot_primary_base(anyns_port: u16) -> String {
    format!(
        "key:\n  - id: xfr-key.\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
         \x20 - id: other-key.\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
         remote:\n  - id: anyns\n    address: 127.0.0.1@{anyns_port}\n    key: xfr-key.\n\
         acl:\n  - id: xfr\n    address: 127.0.0.1\n    key: xfr-key.\n    action: transfer\n\
         \x20 - id: other\n    address: 127.0.0.1\n    key: other-key.\n    action: transfer\n\
         template:\n  - id: default\n    storage: \"{{dir}}\"\n    zonefile-sync: -1\n    \
         zonefile-load: difference\n    journal-content: changes\n"
    )
}

/// A zone entry of a Knot primary: file in Knot's directory, transfers with xfr-key, NOTIFY
/// to anyns.
fn knot_zone(origin: &str) -> String {
    format!(
        "  - domain: {origin}\n    file: \"{{dir}}/{origin}zone\"\n    acl: xfr\n    notify: anyns\n"
    )
}

/// A running `anyns serve --config`, stopped by PID on drop.
struct Node {
    process: ServerProcess,
    dns: SocketAddr,
    control: SocketAddr,
    config: PathBuf,
}

impl Node {
    /// Writes `dir/node.toml` (listen on `dns_port`, a free control port, then `body`) and
    /// starts the node; waits for its "listening" line.
    fn start(dir: &Path, dns_port: u16, body: &str) -> Node {
        let control = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
        let dns = SocketAddr::from(([127, 0, 0, 1], dns_port));
        let config = dir.join("node.toml");
        std::fs::write(
            &config,
            format!(
                "version = 1\n[node]\nsite = \"test\"\nnode = \"n1\"\n\
                 [server]\nlisten = [\"{dns}\"]\nthreads = 1\n[control]\nlisten = \"{control}\"\n{body}"
            ),
        )
        .unwrap();
        Node::start_config(&config, dns, control)
    }

    fn start_config(config: &Path, dns: SocketAddr, control: SocketAddr) -> Node {
        let mut command = Command::new(binary());
        command.arg("serve").arg("--config").arg(config);
        command.env("RUST_LOG", "info");
        let log = config.with_extension(format!("{}.log", free_port().unwrap()));
        let mut process = ServerProcess::spawn("anyns", command, &log).unwrap();
        process.wait_for_line("listening", START).unwrap();
        Node {
            process,
            dns,
            control,
            config: config.to_path_buf(),
        }
    }

    /// Stops at once (SIGINT: no drain) and starts again with the same config.
    fn restart(&mut self) {
        self.process.stop_with("-INT");
        *self = Node::start_config(&self.config.clone(), self.dns, self.control);
    }

    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(binary())
            .args(args)
            .arg("--control")
            .arg(self.control.to_string())
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn status(&self) -> Value {
        let (ok, text) = self.run(&["status", "--json"]);
        assert!(ok, "anyns status: {text}");
        serde_json::from_str(&text).unwrap()
    }

    fn zone_status(&self, zone: &str) -> Value {
        self.status()["zones"]
            .as_array()
            .unwrap()
            .iter()
            .find(|z| z["name"] == zone)
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn log(&self) -> String {
        self.process.log_text()
    }
}

/// The RCODE and, if the answer holds one, the SOA serial of `zone` from `server` over UDP.
fn soa(server: SocketAddr, zone: &str) -> Option<(Rcode, Option<u32>)> {
    let query = Query::parse(zone, Rtype::SOA).ok()?.to_wire();
    let msg = parse(udp_exchange(server, &query, Duration::from_millis(500)).ok()?).ok()?;
    let serial = msg.answer().ok()?.find_map(|rr| {
        let rr = rr.ok()?;
        let rr = rr
            .to_any_record::<AllRecordData<_, domain::base::ParsedName<_>>>()
            .ok()?;
        match rr.data() {
            AllRecordData::Soa(s) => Some(s.serial().into_int()),
            _ => None,
        }
    });
    Some((msg.header().rcode(), serial))
}

fn serial(server: SocketAddr, zone: &str) -> Option<u32> {
    match soa(server, zone) {
        Some((Rcode::NOERROR, serial)) => serial,
        _ => None,
    }
}

fn rcode(server: SocketAddr, zone: &str) -> Option<Rcode> {
    soa(server, zone).map(|(r, _)| r)
}

/// Polls `check` every 20 ms until it gives a value; panics with `context()` after `within`.
fn wait_for<T>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn key() -> TsigKey {
    TsigKey::new("xfr-key.", "hmac-sha256", SECRET).unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn rfc5936_rfc1995_rfc1996_knot_primary_feeds_anyns_secondary() {
    if !knot_available() {
        return;
    }
    let dir = TempDir::new("anyns-xfr-secondary").unwrap();
    let (knot_port, anyns_port) = (free_port().unwrap(), free_port().unwrap());
    let v1 = zone_text("example.test.", 1, SLOW, "www A 192.0.2.10\n");
    let v2 = zone_text(
        "example.test.",
        2,
        SLOW,
        "www A 192.0.2.11\nnew TXT \"added in 2\"\n",
    );
    let other = zone_text("wrong.test.", 1, SLOW, "");
    let unsigned = zone_text("unsigned.test.", 1, SLOW, "");
    let mut knot_body = knot_primary_base(anyns_port);
    knot_body.push_str("zone:\n");
    knot_body.push_str(&knot_zone("example.test."));
    knot_body.push_str(&knot_zone("unsigned.test."));
    knot_body
        .push_str("  - domain: wrong.test.\n    file: \"{dir}/wrong.test.zone\"\n    acl: other\n");
    let knot = Knot::start_with(
        knot_port,
        &knot_body,
        &[
            ("example.test.zone", &v1),
            ("wrong.test.zone", &other),
            ("unsigned.test.zone", &unsigned),
        ],
    )
    .unwrap();
    let primary = format!("[\"127.0.0.1:{knot_port}\"]");
    let node = Node::start(
        dir.path(),
        anyns_port,
        &format!(
            "[[key]]\nname = \"xfr-key.\"\nsecret = \"{SECRET}\"\n\
             [[key]]\nname = \"other-key.\"\nsecret = \"{WRONG_SECRET}\"\n\
             [[zone]]\nname = \"example.test\"\nprimaries = {primary}\nkey = \"xfr-key.\"\n\
             [[zone]]\nname = \"wrong.test\"\nprimaries = {primary}\nkey = \"other-key.\"\n\
             [[zone]]\nname = \"unsigned.test\"\nprimaries = {primary}\n"
        ),
    );
    let context = || format!("{}\n{}", node.process.log_tail(), knot.log_tail());

    // AXFR: the first load.
    wait_for(
        "anyns serves serial 1",
        Duration::from_secs(10),
        || (serial(node.dns, "example.test") == Some(1)).then_some(()),
        context,
    );
    let www = Query::parse("www.example.test", Rtype::A)
        .unwrap()
        .to_wire();
    let answer = parse(udp_exchange(node.dns, &www, Duration::from_secs(2)).unwrap()).unwrap();
    assert!(answer.header().aa());
    assert_eq!(answer.header_counts().ancount(), 1);
    let status = node.zone_status("example.test.");
    assert_eq!(status["kind"], "secondary");
    assert_eq!(status["serial"], 1);
    assert_eq!(status["primary_serial"], 1);
    assert_eq!(status["expired"], false);

    // TSIG is required: the wrong secret is refused (BADSIG) and so is an unsigned transfer;
    // neither zone is served, and status says why.
    let why = |zone: &str, needle: &str| {
        wait_for(
            &format!("{zone} refused with {needle}"),
            Duration::from_secs(10),
            || {
                let s = node.zone_status(zone);
                let e = s["last_error"].as_str()?.to_string();
                e.contains(needle).then_some((s, e))
            },
            context,
        )
    };
    let (s, e) = why("wrong.test.", "other-key.");
    assert_eq!(s["loaded"], false, "{e}");
    eprintln!("wrong key: {e}");
    let (s, e) = why("unsigned.test.", "NOTAUTH");
    assert_eq!(s["loaded"], false, "{e}");
    eprintln!("no key: {e}");
    assert_eq!(rcode(node.dns, "wrong.test"), Some(Rcode::SERVFAIL));

    // IXFR after an update, triggered by Knot's NOTIFY (the SOA refresh is an hour away).
    knot.write_file("example.test.zone", &v2);
    let started = Instant::now();
    knot.knotc(&["zone-reload", "example.test."]).unwrap();
    wait_for(
        "anyns serves serial 2 after NOTIFY",
        Duration::from_secs(5),
        || (serial(node.dns, "example.test") == Some(2)).then_some(()),
        context,
    );
    let took = started.elapsed();
    eprintln!("Knot zone-reload -> NOTIFY -> IXFR -> served by anyns: {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "NOTIFY to served took {took:?}"
    );
    assert!(
        knot.log().contains("IXFR, outgoing"),
        "Knot did not serve an IXFR:\n{}",
        knot.log()
    );
    assert!(node.log().contains("IXFR received"), "{}", node.log());
    let new = Query::parse("new.example.test", Rtype::TXT)
        .unwrap()
        .to_wire();
    let answer = parse(udp_exchange(node.dns, &new, Duration::from_secs(2)).unwrap()).unwrap();
    assert_eq!(answer.header_counts().ancount(), 1);
}

#[test]
fn rfc5936_rfc1995_anyns_primary_feeds_knot_secondary() {
    if !knot_available() {
        return;
    }
    let dir = TempDir::new("anyns-xfr-primary").unwrap();
    let (knot_port, anyns_port) = (free_port().unwrap(), free_port().unwrap());
    let zone_file = dir.path().join("primary.test.zone");
    let hosts: String = (0..2000)
        .map(|i| format!("h{i} A 10.0.{}.{}\n", i / 256, i % 256))
        .collect();
    std::fs::write(
        &zone_file,
        zone_text(
            "primary.test.",
            1,
            SLOW,
            &format!("www A 192.0.2.10\n{hosts}"),
        ),
    )
    .unwrap();
    let node = Node::start(
        dir.path(),
        anyns_port,
        &format!(
            "[[key]]\nname = \"xfr-key\"\nsecret = \"{SECRET}\"\n\
             [[zone]]\nname = \"primary.test\"\nfile = \"primary.test.zone\"\n\
             allow_transfer = [{{ address = [\"127.0.0.1\"], key = \"xfr-key\" }}]\n\
             notify = [\"127.0.0.1:{knot_port}\"]\nnotify_key = \"xfr-key\"\n"
        ),
    );
    let knot = Knot::start_with(
        knot_port,
        &format!(
            "key:\n  - id: xfr-key.\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
             remote:\n  - id: anyns\n    address: 127.0.0.1@{anyns_port}\n    key: xfr-key.\n\
             acl:\n  - id: notify\n    address: 127.0.0.1\n    key: xfr-key.\n    action: notify\n\
             template:\n  - id: default\n    storage: \"{{dir}}\"\n    zonefile-sync: -1\n\
             zone:\n  - domain: primary.test.\n    master: anyns\n    acl: notify\n"
        ),
        &[],
    )
    .unwrap();
    let context = || format!("{}\n{}", node.process.log_tail(), knot.log_tail());
    let knot_addr = SocketAddr::from(([127, 0, 0, 1], knot_port));
    wait_for(
        "Knot serves serial 1 (AXFR from anyns)",
        Duration::from_secs(10),
        || (serial(knot_addr, "primary.test") == Some(1)).then_some(()),
        context,
    );
    assert!(knot.log().contains("AXFR, incoming"), "{}", knot.log());

    // Unsigned: REFUSED (RFC 5936 section 6); signed: the whole zone, over many messages.
    let zone = Name::from_text("primary.test").unwrap();
    let unsigned = block_on(run_transfer(
        node.dns,
        &zone,
        TransferKind::Axfr,
        None,
        None,
        Duration::from_secs(5),
    ));
    assert_eq!(
        unsigned.unwrap_err(),
        TransferError::Rcode(anyns_wire::Rcode::REFUSED)
    );
    let signed = block_on(run_transfer(
        node.dns,
        &zone,
        TransferKind::Axfr,
        None,
        Some(&key()),
        Duration::from_secs(5),
    ))
    .unwrap();
    assert!(
        matches!(&signed, Transferred::Full(z) if z.record_count() > 2000),
        "{signed:?}"
    );
    // AXFR over UDP: not implemented (as Knot answers it); the ACL still comes first.
    let axfr_udp = Query::parse("primary.test", Rtype::AXFR).unwrap().to_wire();
    let answer = parse(udp_exchange(node.dns, &axfr_udp, Duration::from_secs(2)).unwrap()).unwrap();
    assert_eq!(answer.header().rcode(), Rcode::REFUSED);

    // A reload with a new serial: NOTIFY, and Knot takes an IXFR from the journal.
    std::fs::write(
        &zone_file,
        zone_text(
            "primary.test.",
            2,
            SLOW,
            &format!("www A 192.0.2.11\nnew TXT \"added in 2\"\n{hosts}"),
        ),
    )
    .unwrap();
    let started = Instant::now();
    let (ok, text) = node.run(&["reload"]);
    assert!(ok, "{text}");
    wait_for(
        "Knot serves serial 2 (IXFR from anyns)",
        Duration::from_secs(10),
        || (serial(knot_addr, "primary.test") == Some(2)).then_some(()),
        context,
    );
    eprintln!(
        "anyns reload -> NOTIFY -> Knot IXFR -> served by Knot: {:?}",
        started.elapsed()
    );
    let log = knot.log();
    assert!(
        log.lines()
            .any(|l| l.contains("IXFR, incoming") && l.contains("finished")),
        "Knot did not finish an IXFR:\n{log}"
    );
    assert_eq!(node.zone_status("primary.test.")["journal_steps"], 1);
}

#[test]
fn rfc1035_3_3_13_primary_down_retries_then_expires_and_health_withdraws() {
    if !knot_available() {
        return;
    }
    let dir = TempDir::new("anyns-xfr-expire").unwrap();
    let (knot_port, anyns_port) = (free_port().unwrap(), free_port().unwrap());
    // Refresh and retry every second, expire after four.
    let text = zone_text("expire.test.", 1, [1, 1, 4], "www A 192.0.2.10\n");
    let mut body = knot_primary_base(anyns_port);
    body.push_str("zone:\n");
    body.push_str(&knot_zone("expire.test."));
    let mut knot = Knot::start_with(knot_port, &body, &[("expire.test.zone", &text)]).unwrap();
    let node = Node::start(
        dir.path(),
        anyns_port,
        &format!(
            "[transfer]\nrefresh_min_secs = 1\nretry_min_secs = 1\nexpire_min_secs = 1\n\
             [[key]]\nname = \"xfr-key\"\nsecret = \"{SECRET}\"\n\
             [[zone]]\nname = \"expire.test\"\nprimaries = [\"127.0.0.1:{knot_port}\"]\nkey = \"xfr-key\"\n"
        ),
    );
    let context = || node.process.log_tail();
    wait_for(
        "announced with the zone loaded",
        Duration::from_secs(15),
        || (node.status()["intent"] == "announce").then_some(()),
        context,
    );
    assert_eq!(serial(node.dns, "expire.test"), Some(1));

    knot.stop();
    let stopped = Instant::now();
    let status = wait_for(
        "the zone expires",
        Duration::from_secs(15),
        || {
            let s = node.zone_status("expire.test.");
            (s["expired"] == true).then_some(s)
        },
        context,
    );
    eprintln!("primary down -> zone expired after {:?}", stopped.elapsed());
    assert!(
        status["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("127.0.0.1")),
        "{status}"
    );
    // No longer authoritative: SERVFAIL, and health withdraws the route.
    assert_eq!(rcode(node.dns, "expire.test"), Some(Rcode::SERVFAIL));
    let intent = wait_for(
        "withdrawn",
        Duration::from_secs(5),
        || {
            let i = node.status()["intent"].as_str()?.to_string();
            i.starts_with("withdraw").then_some(i)
        },
        context,
    );
    assert!(intent.contains("expire.test"), "{intent}");
    let (_, text) = node.run(&["status"]);
    assert!(text.contains("EXPIRED"), "{text}");
    assert!(node.log().contains("zone expired"), "{}", node.log());
}

#[test]
fn restarted_secondary_serves_the_stored_zone_at_once() {
    if !knot_available() {
        return;
    }
    let dir = TempDir::new("anyns-xfr-restart").unwrap();
    let (knot_port, anyns_port) = (free_port().unwrap(), free_port().unwrap());
    let text = zone_text("keep.test.", 7, SLOW, "www A 192.0.2.10\n");
    let mut body = knot_primary_base(anyns_port);
    body.push_str("zone:\n");
    body.push_str(&knot_zone("keep.test."));
    let mut knot = Knot::start_with(knot_port, &body, &[("keep.test.zone", &text)]).unwrap();
    let mut node = Node::start(
        dir.path(),
        anyns_port,
        &format!(
            "[[key]]\nname = \"xfr-key\"\nsecret = \"{SECRET}\"\n\
             [[zone]]\nname = \"keep.test\"\nprimaries = [\"127.0.0.1:{knot_port}\"]\nkey = \"xfr-key\"\n"
        ),
    );
    wait_for(
        "loaded",
        Duration::from_secs(10),
        || (serial(node.dns, "keep.test") == Some(7)).then_some(()),
        || node.process.log_tail(),
    );
    assert!(dir.path().join("anyns-zones/keep.test.zone").exists());
    knot.stop();
    node.restart();
    // The first query after "listening": answered from the stored copy, primary or not.
    assert_eq!(soa(node.dns, "keep.test"), Some((Rcode::NOERROR, Some(7))));
    let status = node.zone_status("keep.test.");
    assert_eq!(status["loaded"], true);
    assert_eq!(status["expired"], false);
}

#[test]
fn transfer_that_would_break_the_zone_changes_nothing() {
    if !knot_available() {
        return;
    }
    let dir = TempDir::new("anyns-xfr-invalid").unwrap();
    let (knot_port, anyns_port) = (free_port().unwrap(), free_port().unwrap());
    let v1 = zone_text("bad.test.", 1, SLOW, "www A 192.0.2.10\n");
    // A name server inside the zone without an address: Knot serves it, our checks refuse it
    // (RFC 1034 section 4.2.1, missing glue).
    let v2 = zone_text("bad.test.", 2, SLOW, "www A 192.0.2.99\n@ NS ns2\n");
    let mut body = knot_primary_base(anyns_port);
    body.push_str("zone:\n");
    body.push_str(&knot_zone("bad.test."));
    let knot = Knot::start_with(knot_port, &body, &[("bad.test.zone", &v1)]).unwrap();
    let node = Node::start(
        dir.path(),
        anyns_port,
        &format!(
            "[[key]]\nname = \"xfr-key\"\nsecret = \"{SECRET}\"\n\
             [[zone]]\nname = \"bad.test\"\nprimaries = [\"127.0.0.1:{knot_port}\"]\nkey = \"xfr-key\"\n\
             lag_bound_secs = 1\n"
        ),
    );
    let context = || format!("{}\n{}", node.process.log_tail(), knot.log_tail());
    wait_for(
        "announced with the zone loaded",
        Duration::from_secs(15),
        || (node.status()["intent"] == "announce").then_some(()),
        context,
    );
    assert_eq!(serial(node.dns, "bad.test"), Some(1));
    knot.write_file("bad.test.zone", &v2);
    knot.knotc(&["zone-reload", "bad.test."]).unwrap();
    let error = wait_for(
        "the refused transfer shows in status",
        Duration::from_secs(10),
        || {
            let e = node.zone_status("bad.test.")["last_error"]
                .as_str()?
                .to_string();
            e.contains("missing glue").then_some(e)
        },
        context,
    );
    eprintln!("refused transfer: {error}");
    // Still serial 1, with version 1's data.
    assert_eq!(serial(node.dns, "bad.test"), Some(1));
    let status = node.zone_status("bad.test.");
    assert_eq!(status["primary_serial"], 2);
    let www = Query::parse("www.bad.test", Rtype::A).unwrap().to_wire();
    let answer = parse(udp_exchange(node.dns, &www, Duration::from_secs(2)).unwrap()).unwrap();
    let rr = answer.answer().unwrap().next().unwrap().unwrap();
    let rr = rr
        .to_any_record::<AllRecordData<_, domain::base::ParsedName<_>>>()
        .unwrap();
    assert_eq!(rr.data().to_string(), "192.0.2.10");
    assert!(node.log().contains("missing glue"), "{}", node.log());
    // Behind the primary for longer than the lag bound (1 s): announced de-preferred.
    let intent = wait_for(
        "de-preferred for lagging",
        Duration::from_secs(10),
        || {
            let i = node.status()["intent"].as_str()?.to_string();
            i.contains("lags its primary").then_some(i)
        },
        context,
    );
    assert_eq!(
        intent,
        "announce de-preferred: zone bad.test. lags its primary"
    );
    assert_eq!(node.zone_status("bad.test.")["lag_exceeded"], true);
}

#[test]
fn rfc9432_catalog_members_follow_the_catalog() {
    if !knot_available() {
        return;
    }
    let dir = TempDir::new("anyns-xfr-catalog").unwrap();
    let (knot_port, anyns_port) = (free_port().unwrap(), free_port().unwrap());
    let catalog = |serial: u32, members: &str| {
        format!(
            "$ORIGIN catalog.test.\n$TTL 0\n@ SOA invalid. invalid. {serial} 3600 600 86400 0\n\
             @ NS invalid.\nversion TXT \"2\"\n{members}"
        )
    };
    let m1 = zone_text("m1.test.", 1, SLOW, "");
    let m2 = zone_text("m2.test.", 1, SLOW, "");
    let mut body = knot_primary_base(anyns_port);
    body.push_str("zone:\n");
    for z in ["catalog.test.", "m1.test.", "m2.test."] {
        body.push_str(&knot_zone(z));
    }
    let knot = Knot::start_with(
        knot_port,
        &body,
        &[
            ("catalog.test.zone", &catalog(1, "a1.zones PTR m1.test.\n")),
            ("m1.test.zone", &m1),
            ("m2.test.zone", &m2),
        ],
    )
    .unwrap();
    let node = Node::start(
        dir.path(),
        anyns_port,
        &format!(
            "[health.dns_probe]\nzones = [\"m1.test.\"]\n\
             [[key]]\nname = \"xfr-key\"\nsecret = \"{SECRET}\"\n\
             [[catalog]]\nname = \"catalog.test\"\nprimaries = [\"127.0.0.1:{knot_port}\"]\nkey = \"xfr-key\"\n"
        ),
    );
    let context = || format!("{}\n{}", node.process.log_tail(), knot.log_tail());
    wait_for(
        "member m1 served",
        Duration::from_secs(10),
        || (serial(node.dns, "m1.test") == Some(1)).then_some(()),
        context,
    );
    assert_eq!(rcode(node.dns, "m2.test"), Some(Rcode::REFUSED));
    assert_eq!(node.zone_status("catalog.test.")["members"], 1);

    // m2 joins.
    knot.write_file(
        "catalog.test.zone",
        &catalog(2, "a1.zones PTR m1.test.\na2.zones PTR m2.test.\n"),
    );
    knot.knotc(&["zone-reload", "catalog.test."]).unwrap();
    wait_for(
        "member m2 served",
        Duration::from_secs(10),
        || (serial(node.dns, "m2.test") == Some(1)).then_some(()),
        context,
    );
    assert_eq!(node.zone_status("m2.test.")["catalog"], "catalog.test.");

    // m1 leaves: no longer served, its stored copy removed.
    knot.write_file("catalog.test.zone", &catalog(3, "a2.zones PTR m2.test.\n"));
    knot.knotc(&["zone-reload", "catalog.test."]).unwrap();
    wait_for(
        "member m1 gone",
        Duration::from_secs(10),
        || (rcode(node.dns, "m1.test") == Some(Rcode::REFUSED)).then_some(()),
        context,
    );
    assert!(!dir.path().join("anyns-zones/m1.test.zone").exists());
    assert_eq!(serial(node.dns, "m2.test"), Some(1));
}

#[test]
fn probe_consistency_reports_the_serial_skew() {
    let dirs = [
        TempDir::new("anyns-probe-a").unwrap(),
        TempDir::new("anyns-probe-b").unwrap(),
    ];
    let nodes: Vec<Node> = dirs
        .iter()
        .zip([5, 7])
        .map(|(dir, serial)| {
            std::fs::write(
                dir.path().join("same.test.zone"),
                zone_text("same.test.", serial, SLOW, ""),
            )
            .unwrap();
            Node::start(
                dir.path(),
                free_port().unwrap(),
                "[health.dns_probe]\nenabled = false\n\
                 [[zone]]\nname = \"same.test\"\nfile = \"same.test.zone\"\n",
            )
        })
        .collect();
    let sites = format!("{},{}", nodes[0].dns, nodes[1].dns);
    let probe = || {
        let out = Command::new(binary())
            .args([
                "probe",
                "consistency",
                "--sites",
                &sites,
                "--zone",
                "same.test",
            ])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = probe();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("2 (serials differ)"), "{text}");
    // The lagging site catches up: consistent.
    std::fs::write(
        dirs[0].path().join("same.test.zone"),
        zone_text("same.test.", 7, SLOW, ""),
    )
    .unwrap();
    let (ok, text) = nodes[0].run(&["reload"]);
    assert!(ok, "{text}");
    let (code, text) = probe();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("consistent"), "{text}");
}

#[test]
fn rfc1996_notify_over_udp_and_tcp_and_rfc5936_transfers_over_udp() {
    use anyns_xfr::notify::NotifyRequest;
    use anyns_xfr::transfer::Transfer;
    use common::dns::tcp_exchange;
    use std::time::SystemTime;

    let dir = TempDir::new("anyns-xfr-notify").unwrap();
    let zone_file = dir.path().join("pri.test.zone");
    std::fs::write(&zone_file, zone_text("pri.test.", 9, SLOW, "")).unwrap();
    // A secondary whose primary never answers (TEST-NET): NOTIFY is still answered.
    let node = Node::start(
        dir.path(),
        free_port().unwrap(),
        "[health.dns_probe]\nenabled = false\n\
         [[zone]]\nname = \"sec.test\"\nprimaries = [\"192.0.2.1:53\"]\nnotify_from = [\"127.0.0.0/8\"]\n\
         [[zone]]\nname = \"other.test\"\nprimaries = [\"192.0.2.1:53\"]\n\
         [[zone]]\nname = \"pri.test\"\nfile = \"pri.test.zone\"\nallow_transfer = [\"127.0.0.1\"]\n",
    );
    let now = SystemTime::now;
    for (zone, expected) in [
        ("sec.test", Ok(())),
        // Only its primary (192.0.2.1) may notify other.test.
        (
            "other.test",
            Err(TransferError::Rcode(anyns_wire::Rcode::REFUSED)),
        ),
        (
            "nothere.test",
            Err(TransferError::Rcode(anyns_wire::Rcode::NOTAUTH)),
        ),
    ] {
        let name = Name::from_text(zone).unwrap();
        let (request, bytes) = NotifyRequest::new(&name, None, 77, None, now()).unwrap();
        let udp = udp_exchange(node.dns, &bytes, Duration::from_secs(2)).unwrap();
        assert_eq!(request.response(udp, now()), expected, "{zone} over UDP");
        let (request, bytes) = NotifyRequest::new(&name, None, 78, None, now()).unwrap();
        let tcp = tcp_exchange(node.dns, &bytes, Duration::from_secs(2)).unwrap();
        assert_eq!(request.response(tcp, now()), expected, "{zone} over TCP");
    }
    assert!(node.log().contains("NOTIFY accepted"), "{}", node.log());
    // Not transferred yet: SERVFAIL, not REFUSED.
    assert_eq!(rcode(node.dns, "sec.test"), Some(Rcode::SERVFAIL));

    // Transfers over UDP, as Knot answers them: IXFR gets the SOA alone, AXFR NOTIMP.
    let name = Name::from_text("pri.test").unwrap();
    let old = anyns_zone::load_zone_text(&name, "old", &zone_text("pri.test.", 3, SLOW, ""))
        .unwrap()
        .zone;
    let (_, ixfr) = Transfer::new(
        &name,
        TransferKind::Ixfr,
        Some(std::sync::Arc::new(old)),
        5,
        None,
        now(),
    )
    .unwrap();
    let answer = parse(udp_exchange(node.dns, &ixfr, Duration::from_secs(2)).unwrap()).unwrap();
    assert_eq!(answer.header().rcode(), Rcode::NOERROR);
    assert_eq!(answer.header_counts().ancount(), 1);
    let axfr = Query::parse("pri.test", Rtype::AXFR).unwrap().to_wire();
    let answer = parse(udp_exchange(node.dns, &axfr, Duration::from_secs(2)).unwrap()).unwrap();
    assert_eq!(answer.header().rcode(), Rcode::NOTIMP);
}
