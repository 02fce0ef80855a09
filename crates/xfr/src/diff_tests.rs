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

fn node_exists(z: &Zone, name: &str) -> bool {
    z.node(Name::from_text(name).unwrap().as_wire()).is_some()
}

#[test]
fn rfc1995_4_applying_leaves_the_old_version_untouched_and_prunes_emptied_names() {
    // x.y is the only name below y: y is an empty non-terminal (RFC 4592 section 2.2.2).
    let old = zone(
        1,
        "x.y A 192.0.2.2\nkeep TXT \"k\"\nmulti A 192.0.2.5\nmulti A 192.0.2.6\n",
    );
    let new = zone(
        2,
        "keep TXT \"k\"\nmulti A 192.0.2.6\nsub NS ns.sub\nns.sub A 192.0.2.7\n",
    );
    let before = zone_records(&old);
    let d = zone_diff(&old, &new).unwrap();
    let applied = apply_diffs(&old, &[d]).unwrap().zone;
    assert_eq!(zone_records(&applied), zone_records(&new));
    assert_eq!(
        zone_records(&old),
        before,
        "the served version must not change"
    );
    // The emptied name and the empty non-terminal above it are gone: NXDOMAIN, not NODATA.
    assert!(!node_exists(&applied, "x.y.example.test"));
    assert!(!node_exists(&applied, "y.example.test"));
    assert!(node_exists(&old, "y.example.test"));
    // The new delegation is a zone cut (RFC 1034 section 4.2.1), as when loaded from a file.
    let sub = Name::from_text("sub.example.test").unwrap();
    assert!(applied.node(sub.as_wire()).unwrap().is_cut());
    // And removing it again clears the cut.
    let back = zone_diff(&applied, &zone(3, "keep TXT \"k\"\nsub A 192.0.2.8\n")).unwrap();
    let again = apply_diffs(&applied, &[back]).unwrap().zone;
    assert!(!again.node(sub.as_wire()).unwrap().is_cut());
}

#[test]
fn rfc1034_3_6_2_a_difference_producing_an_invalid_zone_is_refused() {
    let old = zone(1, "a A 192.0.2.2\n");
    let bad = ZoneDiff {
        old_soa: zone_records(&old).remove(0),
        new_soa: zone_records(&zone(2, "")).remove(0),
        removed: Vec::new(),
        added: vec![Record::new(
            Name::from_text("a.example.test").unwrap(),
            anyns_wire::Rtype::CNAME,
            300,
            Name::from_text("ns.example.test").unwrap().as_wire(),
        )],
    };
    let e = apply_diffs(&old, &[bad]).unwrap_err();
    assert!(e.to_string().contains("CNAME and other data"), "{e}");
    assert_eq!(old.serial(), 1);
}
