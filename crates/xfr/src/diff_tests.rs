//! Tests of anyns_zone::diff (zone differences), kept here where they are applied and served.

use anyns_wire::Name;
use anyns_zone::*;

fn origin() -> Name {
    Name::from_text("example.test").unwrap()
}

fn zone(serial: u32, extra: &str) -> Zone {
    let text =
        format!("$TTL 300\n@ SOA ns hm {serial} 60 30 600 60\n@ NS ns\nns A 192.0.2.1\n{extra}");
    load_zone_text(&origin(), "t", &text).unwrap().zone
}

#[test]
fn rfc1995_4_diff_and_apply_round_trip() {
    let old = zone(1, "a A 192.0.2.2\nb A 192.0.2.3\nc 60 TXT \"x\"\n");
    let new = zone(
        2,
        "a A 192.0.2.2\nb A 192.0.2.4\nc 120 TXT \"x\"\nd AAAA ::1\n",
    );
    let d = zone_diff(&old, &new).unwrap();
    assert_eq!((d.from_serial(), d.to_serial()), (1, 2));
    assert_eq!(d.removed.len(), 2, "{:?}", d.removed);
    assert_eq!(d.added.len(), 3, "{:?}", d.added);
    let applied = apply_diffs(&old, &[d]).unwrap().zone;
    assert_eq!(zone_records(&applied), zone_records(&new));
    assert_eq!(applied.serial(), 2);
}

#[test]
fn apply_refuses_a_gap_or_a_missing_record() {
    let old = zone(1, "a A 192.0.2.2\n");
    let new = zone(3, "a A 192.0.2.3\n");
    let mut d = zone_diff(&zone(2, "a A 192.0.2.2\n"), &new).unwrap();
    assert!(apply_diffs(&old, std::slice::from_ref(&d)).is_err());
    d.old_soa = zone_records(&old).remove(0);
    d.removed[0].rdata = Box::new([192, 0, 2, 9]);
    let e = apply_diffs(&old, &[d]).unwrap_err();
    assert!(e.to_string().contains("does not hold"), "{e}");
}

#[test]
fn records_start_with_the_soa() {
    let z = zone(7, "a A 192.0.2.2\n");
    let r = zone_records(&z);
    assert_eq!(r[0].soa_serial(), Some(7));
    assert_eq!(r.len(), z.record_count());
    let rebuilt = build_zone(&origin(), r.clone()).unwrap().zone;
    assert_eq!(zone_records(&rebuilt), r);
}
