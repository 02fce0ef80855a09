//! Shared helpers for the unit tests: zones from text, hand-made response messages.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyns_wire::{Name, Rtype};
use anyns_zone::{Record, Zone, load_zone_text};
use domain::base::iana::{Class as DClass, Opcode as DOpcode, Rtype as DRtype};
use domain::base::message_builder::MessageBuilder;

use crate::message::{dname, record_for_push};
use crate::tsig::TsigKey;

pub fn name(s: &str) -> Name {
    Name::from_text(s).unwrap()
}

pub fn origin() -> Name {
    name("example.test")
}

/// A fixed wall-clock time for TSIG.
pub fn wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// A zone at `serial` with `extra` master-file lines.
pub fn zone(serial: u32, extra: &str) -> Arc<Zone> {
    let text = format!(
        "$TTL 300\n@ SOA ns hostmaster {serial} 3600 600 86400 300\n@ NS ns\nns A 192.0.2.1\n{extra}"
    );
    Arc::new(load_zone_text(&origin(), "t", &text).unwrap().zone)
}

/// A zone with `n` extra A records, so that its transfer spans several messages.
pub fn big_zone(serial: u32, n: usize) -> Arc<Zone> {
    let mut extra = String::new();
    for i in 0..n {
        extra.push_str(&format!(
            "host{i} A 10.{}.{}.{}\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    zone(serial, &extra)
}

pub fn key(secret: &str) -> TsigKey {
    TsigKey::new("xfr-key.", "hmac-sha256", secret).unwrap()
}

pub fn soa(serial: u32) -> Record {
    crate::transfer::soa_record(&zone(serial, "")).unwrap()
}

pub fn a(owner: &str, ip: [u8; 4]) -> Record {
    Record::new(name(owner), Rtype::A, 300, &ip)
}

/// A response message to a transfer request, records as given.
pub fn response(id: u16, qtype: Rtype, with_question: bool, records: &[Record]) -> Vec<u8> {
    let mut b = MessageBuilder::new_vec();
    let h = b.header_mut();
    h.set_id(id);
    h.set_qr(true);
    h.set_aa(true);
    h.set_opcode(DOpcode::QUERY);
    let mut q = b.question();
    if with_question {
        q.push((dname(&origin()), DRtype::from_int(qtype.0), DClass::IN))
            .unwrap();
    }
    let mut ans = q.answer();
    for r in records {
        ans.push(record_for_push(r).unwrap()).unwrap();
    }
    ans.finish()
}
