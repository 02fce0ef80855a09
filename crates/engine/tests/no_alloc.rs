//! DESIGN decision 1: answering a query allocates nothing. allocation-counter's global
//! allocator watches `Engine::respond` (and `respond_or_decline`) over every kind of answer the engine gives.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use anyns_engine::{Engine, EngineConfig, Identity, Reply, Transport};
use anyns_wire::Name;
use anyns_zone::{ZoneSet, load_zone_text};

fn query(name: &str, qtype: u16, qclass: u16, edns: bool) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&qclass.to_be_bytes());
    if edns {
        q[11] = 1;
        q.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 4, 0, 3, 0, 0]);
    }
    q
}

#[test]
fn answering_allocates_nothing() {
    let origin = Name::from_text("example.test.").unwrap();
    let zone = load_zone_text(
        &origin,
        "example.test.zone",
        include_str!("../../../zones/example.test.zone"),
    )
    .unwrap();
    let zones = ZoneSet::new([Arc::new(zone.zone)]);
    let engine = Engine::new(EngineConfig {
        identity: Identity {
            nsid: Some(b"n1.ams".to_vec().into()),
            server_id: Some("n1.ams".into()),
            version: Some("anyns".into()),
        },
        max_udp_payload: 1232,
    });
    let requests = [
        query("www.example.test", 1, 1, true), // CNAME chain to the apex
        query("example.test", 2, 1, true),     // NS with additional addresses
        query("nothere.example.test", 1, 1, true), // NXDOMAIN with SOA
        query("a.users.example.test", 1, 1, false), // wildcard
        query("x.sub.example.test", 28, 1, true), // referral with glue
        query("example.test", 255, 1, false),  // ANY
        query("example.org", 1, 1, false),     // REFUSED
        query("id.server", 16, 3, true),       // CHAOS
        query("www.example.test", 1, 1, true)[..20].to_vec(), // FORMERR
    ];
    let mut out = vec![0u8; 65535];
    let mut answered = 0;
    let info = allocation_counter::measure(|| {
        for _ in 0..100 {
            for request in &requests {
                for transport in [Transport::Udp, Transport::Tcp] {
                    if engine
                        .respond(&zones, request, transport, &mut out)
                        .is_some()
                    {
                        answered += 1;
                    }
                    // The data plane's entry point, which declines transfers and NOTIFY.
                    if let Reply::Answer(_) =
                        engine.respond_or_decline(&zones, request, transport, &mut out)
                    {
                        answered += 1;
                    }
                }
            }
        }
    });
    assert_eq!(answered, 100 * requests.len() * 2 * 2);
    assert_eq!(info.count_total, 0, "allocations while answering");
}
