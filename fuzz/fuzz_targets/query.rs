//! Any bytes as a request: the engine answers, drops or FORMERRs, never panics, and a UDP answer
//! never exceeds 65535 octets nor, without EDNS, 512 (RFC 1035 section 4.2.1).
#![no_main]

use std::sync::{Arc, OnceLock};

use anyns_engine::{Engine, EngineConfig, Identity, Transport};
use anyns_wire::Name;
use anyns_zone::{ZoneSet, load_zone_text};
use libfuzzer_sys::fuzz_target;

const ZONE: &str = include_str!("../../zones/example.test.zone");

fn setup() -> &'static (Engine, ZoneSet) {
    static SETUP: OnceLock<(Engine, ZoneSet)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let origin = Name::from_text("example.test.").expect("static name");
        let zone = load_zone_text(&origin, "example.test.zone", ZONE).expect("example zone loads");
        let engine = Engine::new(EngineConfig {
            identity: Identity {
                nsid: Some(b"fuzz".to_vec().into()),
                server_id: Some("fuzz".into()),
                version: Some("fuzz".into()),
            },
            max_udp_payload: 1232,
        });
        (engine, ZoneSet::new([Arc::new(zone.zone)]))
    })
}

fuzz_target!(|data: &[u8]| {
    let (engine, zones) = setup();
    let mut out = vec![0u8; 65535];
    for transport in [Transport::Udp, Transport::Tcp] {
        if let Some(len) = engine.respond(zones, data, transport, &mut out) {
            assert!(len >= 12 && len <= out.len());
            if transport == Transport::Udp {
                assert!(len <= 1232);
            }
            // The ID is always echoed.
            assert_eq!(out[..2], data[..2]);
        }
    }
});
