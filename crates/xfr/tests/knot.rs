#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Interop with Knot DNS: Knot as primary feeding our secondary (AXFR, IXFR, NOTIFY, TSIG), and
//! our primary feeding a Knot secondary (AXFR, IXFR, NOTIFY, TSIG).
//!
//! Skipped with a message when `knotd` is not installed, unless ANYNS_REQUIRE_LAB=1. Knot runs in
//! the foreground in a temporary directory on loopback ports, and is killed by PID on drop.
//! Every wait is bounded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyns_wire::Name;
use anyns_xfr::acl::{Acl, AclEntry};
use anyns_xfr::driver::{
    NotifyTarget, NotifyTargets, TransferServer, ZoneEvent, forward_notifies, query_soa,
    run_transfer, serve_notify_tcp, serve_notify_udp, spawn_secondary,
};
use anyns_xfr::notify::NotifyRetry;
use anyns_xfr::primary::{Journal, TransferPolicy};
use anyns_xfr::secondary::{PrimaryServer, SecondaryConfig};
use anyns_xfr::store::ZoneStore;
use anyns_xfr::transfer::{TransferError, TransferKind, Transferred};
use anyns_xfr::tsig::{KeyRing, TsigKey};
use anyns_zone::{Zone, ZoneSet, load_zone_text, zone_records};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

const SECRET: &str = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";
const ZONE: &str = "example.test.";

fn knot_available() -> bool {
    let found = Command::new("knotd")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("ANYNS_REQUIRE_LAB").as_deref() != Ok("1"),
            "knotd is not installed and ANYNS_REQUIRE_LAB=1"
        );
        eprintln!("skipping: knotd not installed (Debian package `knot`)");
    }
    found
}

fn zone_name() -> Name {
    Name::from_text(ZONE).unwrap()
}

fn key() -> TsigKey {
    TsigKey::new("xfr-key.", "hmac-sha256", SECRET).unwrap()
}

/// Zone text at `serial`; `extra` hosts make the transfer span many messages.
fn zone_text(serial: u32, www: &str, extra: usize, more: &str) -> String {
    let mut text = format!(
        "$TTL 300\n@ SOA ns hostmaster {serial} 3600 600 86400 300\n@ NS ns\nns A 192.0.2.1\n\
         www A {www}\nmail MX 10 www\n{more}"
    );
    for i in 0..extra {
        text.push_str(&format!("h{i} A 10.0.{}.{}\n", i / 256, i % 256));
    }
    text
}

fn parse(text: &str) -> Zone {
    load_zone_text(&zone_name(), "t", text).unwrap().zone
}

/// A free loopback port for both UDP and TCP.
fn free_port() -> u16 {
    for _ in 0..50 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("anyns-knot-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("db")).unwrap();
    dir
}

/// A knotd process, killed by PID when dropped.
struct Knot {
    child: Child,
    conf: PathBuf,
    log: PathBuf,
    addr: SocketAddr,
}

impl Knot {
    fn start(dir: &Path, port: u16, body: &str) -> Knot {
        let conf = dir.join("knot.conf");
        let text = format!(
            "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n\
             log:\n  - target: stderr\n    any: info\n\
             database:\n    storage: \"{d}/db\"\n\
             control:\n    listen: \"{d}/knot.sock\"\n\
             key:\n  - id: xfr-key.\n    algorithm: hmac-sha256\n    secret: {SECRET}\n{body}",
            d = dir.display()
        );
        std::fs::write(&conf, text).unwrap();
        let log = dir.join("knotd.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("knotd")
            .arg("-c")
            .arg(&conf)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Knot {
            child,
            conf,
            log,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn knotc(&self, args: &[&str]) {
        let mut child = Command::new("knotc")
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "knotc {args:?} failed:\n{}", self.log());
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("knotc {args:?} timed out");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until Knot serves `serial` for the zone.
    async fn wait_serial(&self, serial: u32, key: Option<&TsigKey>, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let got = query_soa(self.addr, &zone_name(), key, Duration::from_millis(500)).await;
            if got == Ok(serial) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Knot did not reach serial {serial} (last: {got:?}):\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for the next published zone with `serial`, bounded.
async fn wait_publish(
    rx: &mut mpsc::UnboundedReceiver<ZoneEvent>,
    serial: u32,
    within: Duration,
) -> Arc<Zone> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let event = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no zone with serial {serial} published in {within:?}"))
            .unwrap();
        if let ZoneEvent::Publish { zone: z, .. } = event {
            if z.serial() == serial {
                return z;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knot_primary_feeds_our_secondary() {
    if !knot_available() {
        return;
    }
    let dir = temp_dir("primary");
    let v1 = zone_text(1, "192.0.2.10", 1500, "");
    let v2 = zone_text(2, "192.0.2.11", 1500, "new TXT \"added in 2\"\n");
    let zone_file = dir.join("example.test.zone");
    std::fs::write(&zone_file, &v1).unwrap();

    // Our NOTIFY listener, which Knot notifies (signed) on every change.
    let notify_port = free_port();
    let notify_socket = UdpSocket::bind(("127.0.0.1", notify_port)).await.unwrap();
    let notify_tcp = TcpListener::bind(("127.0.0.1", notify_port)).await.unwrap();
    let port = free_port();
    let knot = Knot::start(
        &dir,
        port,
        &format!(
            "remote:\n  - id: anyns\n    address: 127.0.0.1@{notify_port}\n    key: xfr-key.\n\
             acl:\n  - id: xfr\n    address: 127.0.0.1\n    key: xfr-key.\n    action: transfer\n\
             zone:\n  - domain: {ZONE}\n    file: \"{}\"\n    acl: xfr\n    notify: anyns\n\
             \x20   zonefile-load: difference\n    journal-content: changes\n    zonefile-sync: -1\n",
            zone_file.display()
        ),
    );
    knot.wait_serial(1, Some(&key()), Duration::from_secs(10))
        .await;

    // TSIG is required: unsigned and wrong-key transfers are refused, with the key named.
    let unsigned = run_transfer(
        knot.addr,
        &zone_name(),
        TransferKind::Axfr,
        None,
        None,
        Duration::from_secs(5),
    )
    .await;
    assert!(
        matches!(unsigned, Err(TransferError::Rcode(_))),
        "{unsigned:?}"
    );
    let wrong = TsigKey::new("xfr-key.", "hmac-sha256", "d3Jvbmd3cm9uZ3dyb25nd3Jvbmc=").unwrap();
    let err = run_transfer(
        knot.addr,
        &zone_name(),
        TransferKind::Axfr,
        None,
        Some(&wrong),
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, TransferError::Tsig(_)) && err.to_string().contains("xfr-key."),
        "{err}"
    );
    let unknown = TsigKey::new("nobody.", "hmac-sha256", SECRET).unwrap();
    let err = run_transfer(
        knot.addr,
        &zone_name(),
        TransferKind::Axfr,
        None,
        Some(&unknown),
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("nobody."), "{err}");
    eprintln!("wrong key: {err}");

    // Our secondary: first load by AXFR.
    let store_dir = dir.join("store");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let events = {
        let tx = tx.clone();
        Arc::new(move |e| {
            let _ = tx.send(e);
        })
    };
    let primaries = vec![PrimaryServer {
        addr: knot.addr,
        key: Some(key()),
    }];
    let config = SecondaryConfig::new(zone_name(), primaries.clone());
    let handle = Arc::new(spawn_secondary(
        config.clone(),
        Some(ZoneStore::new(&store_dir)),
        events.clone(),
    ));
    let first = wait_publish(&mut rx, 1, Duration::from_secs(10)).await;
    assert_eq!(zone_records(&first), zone_records(&parse(&v1)));
    assert!(handle.freshness().loaded && !handle.freshness().expired);

    // NOTIFY plumbing: Knot's signed NOTIFY → our listener → the secondary.
    let (ntx, nrx) = mpsc::unbounded_channel();
    let mut zones = HashMap::new();
    let acl = Acl::new(vec![AclEntry {
        networks: vec!["127.0.0.1/32".parse().unwrap()],
        key: Some(key().name().clone()),
    }]);
    zones.insert(zone_name(), (acl, ntx));
    let targets = Arc::new(NotifyTargets {
        keys: KeyRing::new([key()]),
        zones,
    });
    let listener = tokio::spawn(serve_notify_udp(notify_socket, targets.clone()));
    let tcp_listener = tokio::spawn(serve_notify_tcp(notify_tcp, targets));
    let forwarder = forward_notifies(nrx, handle.clone());

    // IXFR while current: a single SOA.
    let current = Some(first.clone());
    let up = run_transfer(
        knot.addr,
        &zone_name(),
        TransferKind::Ixfr,
        current.clone(),
        Some(&key()),
        Duration::from_secs(5),
    )
    .await;
    assert!(
        matches!(up, Ok(Transferred::UpToDate { serial: 1 })),
        "{up:?}"
    );

    // Change the zone in Knot; its NOTIFY makes us refresh (IXFR) at once.
    std::fs::write(&zone_file, &v2).unwrap();
    let t0 = Instant::now();
    knot.knotc(&["zone-reload", ZONE]);
    let second = wait_publish(&mut rx, 2, Duration::from_secs(5)).await;
    let elapsed = t0.elapsed();
    eprintln!("NOTIFY → new zone served in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(zone_records(&second), zone_records(&parse(&v2)));
    assert_eq!(handle.freshness().serial, Some(2));

    // The same step, explicitly as IXFR: Knot sends the difference, not the zone.
    let ixfr = run_transfer(
        knot.addr,
        &zone_name(),
        TransferKind::Ixfr,
        current,
        Some(&key()),
        Duration::from_secs(5),
    )
    .await;
    let Ok(Transferred::Incremental { zone, diffs }) = ixfr else {
        panic!("{ixfr:?}")
    };
    assert_eq!(diffs.len(), 1);
    assert_eq!(diffs[0].removed.len(), 1);
    assert_eq!(diffs[0].added.len(), 2);
    assert_eq!(zone_records(&zone), zone_records(&parse(&v2)));
    assert!(knot.log().contains("IXFR, outgoing"), "{}", knot.log());

    listener.abort();
    tcp_listener.abort();
    forwarder.abort();
    let _ = forwarder.await;
    let handle = Arc::try_unwrap(handle).ok().unwrap();
    handle.shutdown().await;

    // A restart serves the stored zone at once, even with the primary unreachable.
    drop(knot);
    let dead = SecondaryConfig::new(
        zone_name(),
        vec![PrimaryServer {
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            key: Some(key()),
        }],
    );
    let restarted = spawn_secondary(dead, Some(ZoneStore::new(&store_dir)), events);
    let restored = wait_publish(&mut rx, 2, Duration::from_secs(2)).await;
    assert_eq!(zone_records(&restored), zone_records(&parse(&v2)));
    restarted.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_primary_feeds_a_knot_secondary() {
    if !knot_available() {
        return;
    }
    let dir = temp_dir("secondary");
    let v1 = parse(&zone_text(1, "192.0.2.10", 1500, ""));
    let v2 = parse(&zone_text(
        2,
        "192.0.2.11",
        1500,
        "new TXT \"added in 2\"\n",
    ));
    let knot_port = free_port();
    let knot_addr = SocketAddr::from(([127, 0, 0, 1], knot_port));

    // Our primary: transfers need the key; NOTIFYs go to Knot, signed.
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let udp = UdpSocket::bind(("127.0.0.1", port)).await.unwrap();
    let policy = TransferPolicy {
        keys: KeyRing::new([key()]),
        default_acl: Acl::new(vec![AclEntry {
            networks: vec!["127.0.0.1/32".parse().unwrap()],
            key: Some(key().name().clone()),
        }]),
        zones: HashMap::new(),
    };
    let mut notify = HashMap::new();
    notify.insert(
        zone_name(),
        vec![NotifyTarget {
            addr: knot_addr,
            key: Some(key()),
        }],
    );
    let (server, notifier) = TransferServer::with_notify(
        ZoneSet::new([Arc::new(v1)]),
        Journal::new(16),
        policy,
        notify,
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        NotifyRetry::default(),
    );
    let tcp_task = tokio::spawn(server.clone().serve_tcp(tcp));
    let udp_task = tokio::spawn(server.clone().serve_udp(udp));

    let knot = Knot::start(
        &dir,
        knot_port,
        &format!(
            "remote:\n  - id: anyns\n    address: 127.0.0.1@{port}\n    key: xfr-key.\n\
             acl:\n  - id: notify\n    address: 127.0.0.1\n    key: xfr-key.\n    action: notify\n\
             \x20 - id: out\n    address: 127.0.0.1\n    action: transfer\n\
             zone:\n  - domain: {ZONE}\n    file: \"{}/secondary.zone\"\n    master: anyns\n\
             \x20   acl: [notify, out]\n    zonefile-sync: -1\n    journal-content: changes\n",
            dir.display()
        ),
    );
    // Knot bootstraps with AXFR (signed, many messages) from us.
    knot.wait_serial(1, None, Duration::from_secs(15)).await;
    let copy = run_transfer(
        knot_addr,
        &zone_name(),
        TransferKind::Axfr,
        None,
        None,
        Duration::from_secs(5),
    )
    .await;
    let Ok(Transferred::Full(copy)) = copy else {
        panic!("{copy:?}")
    };
    assert_eq!(
        zone_records(&copy),
        zone_records(&server.zones().iter().next().unwrap().clone())
    );

    // A new version: our NOTIFY, Knot's IXFR from our journal.
    let t0 = Instant::now();
    server.update_zone(Arc::new(v2));
    knot.wait_serial(2, None, Duration::from_secs(10)).await;
    eprintln!("our NOTIFY → Knot at serial 2 in {:?}", t0.elapsed());
    let copy = run_transfer(
        knot_addr,
        &zone_name(),
        TransferKind::Axfr,
        None,
        None,
        Duration::from_secs(5),
    )
    .await;
    let Ok(Transferred::Full(copy)) = copy else {
        panic!("{copy:?}")
    };
    let expected = server.zones().get(&zone_name()).unwrap().clone();
    assert_eq!(zone_records(&copy), zone_records(&expected));
    let log = knot.log();
    assert!(log.contains("IXFR, incoming"), "{log}");
    assert!(!log.contains("fallback to AXFR"), "{log}");
    eprintln!(
        "{}",
        log.lines()
            .filter(|l| l.contains("XFR"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    tcp_task.abort();
    udp_task.abort();
    notifier.abort();
    drop(knot);
    let _ = std::fs::remove_dir_all(&dir);
}
