#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Our primary feeding our secondary over loopback sockets: AXFR, then NOTIFY → IXFR, signed.
//! Runs without any external program.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyns_wire::Name;
use anyns_xfr::acl::{Acl, AclEntry};
use anyns_xfr::driver::{
    NotifyTarget, NotifyTargets, TransferServer, ZoneEvent, forward_notifies, run_transfer,
    serve_notify_udp, spawn_secondary,
};
use anyns_xfr::notify::NotifyRetry;
use anyns_xfr::primary::{Journal, TransferPolicy};
use anyns_xfr::secondary::{Change, PrimaryServer, SecondaryConfig};
use anyns_xfr::transfer::{TransferError, TransferKind, Transferred};
use anyns_xfr::tsig::{KeyRing, TsigKey};
use anyns_zone::{Zone, ZoneSet, load_zone_text, zone_records};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

fn zone(serial: u32, www: &str) -> Arc<Zone> {
    let text = format!(
        "$TTL 300\n@ SOA ns hostmaster {serial} 3600 600 86400 300\n@ NS ns\nns A 192.0.2.1\nwww A {www}\n"
    );
    Arc::new(
        load_zone_text(&Name::from_text("loop.test").unwrap(), "t", &text)
            .unwrap()
            .zone,
    )
}

async fn next_serial(
    rx: &mut mpsc::UnboundedReceiver<ZoneEvent>,
    serial: u32,
) -> (Arc<Zone>, Change) {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if let ZoneEvent::Publish { zone: z, change } = e {
            if z.serial() == serial {
                return (z, change);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc1996_notify_then_rfc1995_ixfr_between_our_own_primary_and_secondary() {
    let name = Name::from_text("loop.test").unwrap();
    let key = TsigKey::new("loop-key.", "hmac-sha512", "bG9vcGxvb3Bsb29wbG9vcA==").unwrap();
    let acl = Acl::new(vec![AclEntry {
        networks: vec!["127.0.0.0/8".parse().unwrap()],
        key: Some(key.name().clone()),
    }]);

    // Secondary side: NOTIFY listener first, so its address can be given to the primary.
    let notify_socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let notify_addr = notify_socket.local_addr().unwrap();

    // Primary side.
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let primary_addr = tcp.local_addr().unwrap();
    let udp = UdpSocket::bind(primary_addr).await.unwrap();
    let policy = TransferPolicy {
        keys: KeyRing::new([key.clone()]),
        default_acl: acl.clone(),
        zones: HashMap::new(),
    };
    let targets = HashMap::from([(
        name.clone(),
        vec![NotifyTarget {
            addr: notify_addr,
            key: Some(key.clone()),
        }],
    )]);
    let (server, notifier) = TransferServer::with_notify(
        ZoneSet::new([zone(1, "192.0.2.10")]),
        Journal::new(4),
        policy,
        targets,
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        NotifyRetry::default(),
    );
    let tcp_task = tokio::spawn(server.clone().serve_tcp(tcp));
    let udp_task = tokio::spawn(server.clone().serve_udp(udp));

    // Unsigned: refused by the key-only ACL.
    let refused = run_transfer(
        primary_addr,
        &name,
        TransferKind::Axfr,
        None,
        None,
        Duration::from_secs(2),
    )
    .await;
    assert!(
        matches!(refused, Err(TransferError::Rcode(_))),
        "{refused:?}"
    );

    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = SecondaryConfig::new(
        name.clone(),
        vec![PrimaryServer {
            addr: primary_addr,
            key: Some(key.clone()),
        }],
    );
    let handle = Arc::new(spawn_secondary(
        config,
        None,
        Arc::new(move |e| {
            let _ = tx.send(e);
        }),
    ));
    let (ntx, nrx) = mpsc::unbounded_channel();
    let notify_targets = Arc::new(NotifyTargets {
        keys: KeyRing::new([key.clone()]),
        zones: HashMap::from([(name.clone(), (acl, ntx))]),
    });
    let listener = tokio::spawn(serve_notify_udp(notify_socket, notify_targets));
    let forwarder = forward_notifies(nrx, handle.clone());

    let (v1, _) = next_serial(&mut rx, 1).await;
    assert_eq!(zone_records(&v1), zone_records(&zone(1, "192.0.2.10")));

    server.update_zone(zone(2, "192.0.2.11"));
    let (v2, change) = next_serial(&mut rx, 2).await;
    assert_eq!(zone_records(&v2), zone_records(&zone(2, "192.0.2.11")));
    let Change::Incremental(steps) = change else {
        panic!("NOTIFY should have brought an IXFR, got {change:?}");
    };
    // Served on by us as a primary in turn, the received steps are its journal as they are.
    let relay = TransferServer::new(
        ZoneSet::new([v1.clone()]),
        Journal::default(),
        TransferPolicy::default(),
        HashMap::new(),
    );
    assert!(relay.update_zone_with(v2.clone(), Some(&steps)));
    assert_eq!(relay.journal_len(&name), 1);
    assert_eq!(handle.freshness().primary_serial, Some(2));

    // The journal answers IXFR from serial 1 with the difference.
    let ixfr = run_transfer(
        primary_addr,
        &name,
        TransferKind::Ixfr,
        Some(v1),
        Some(&key),
        Duration::from_secs(2),
    )
    .await;
    assert!(
        matches!(ixfr, Ok(Transferred::Incremental { ref diffs, .. }) if diffs.len() == 1),
        "{ixfr:?}"
    );

    for t in [tcp_task, udp_task, listener] {
        t.abort();
    }
    notifier.abort();
    forwarder.abort();
}
