//! Two-way test vectors: bytes ⇄ values, checked in both directions with a hex diff on
//! failure. The BIRD OPEN was captured from BIRD 2.0.12 (`protocol bgp` with ipv4 and ipv6
//! channels, graceful restart on, local AS 64512, router id 192.0.2.254).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anyns_bgp::packet::{
    self, DecodeContext, DecodeError, EncodeContext, Family, GracefulRestartParameters, LocalOpen,
    Message, Notification, PeerGracefulRestart, PeerOpen, UpdateErrorAction, UpdateSummary,
};
use anyns_bgp::{Community, LargeCommunity, RouteAttributes};
use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_parse_utils::WritablePdu;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;

const CTX: DecodeContext = DecodeContext {
    four_octet_as: true,
};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[track_caller]
fn assert_bytes(actual: &[u8], expected: &[u8]) {
    if actual != expected {
        let at = actual
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(actual.len().min(expected.len()));
        panic!(
            "bytes differ at offset {at}\n  actual:   {}\n  expected: {}",
            to_hex(actual),
            to_hex(expected)
        );
    }
}

const MARKER: &str = "ffffffffffffffffffffffffffffffff";

/// BIRD 2.0.12's OPEN: MP IPv4+IPv6 unicast, route refresh, graceful restart (120 s, both
/// families, F=0), 4-octet AS, enhanced route refresh (70), long-lived GR (71, empty).
const BIRD_OPEN: &str = "ffffffffffffffffffffffffffffffff00430104fc00005ac00002fe2602240104000100010104000200010200400a0078000101000002010041040000fc0046004700";

#[test]
fn rfc5492_open_captured_from_bird2_decodes() {
    let bytes = hex(BIRD_OPEN);
    let expected = PeerOpen {
        my_as: 64512,
        asn: 64512,
        hold_time: 90,
        bgp_id: "192.0.2.254".parse().unwrap(),
        four_octet_as: true,
        families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
        route_refresh: true,
        graceful_restart: Some(PeerGracefulRestart {
            restart_time: 120,
            restarting: false,
            families: vec![(Family::Ipv4Unicast, false), (Family::Ipv6Unicast, false)],
        }),
    };
    assert_eq!(packet::decode(&bytes, &CTX), Ok(Message::Open(expected)));
}

#[test]
fn netgauze_round_trips_bird2_open_byte_for_byte() {
    let bytes = hex(BIRD_OPEN);
    let mut ctx = BgpParsingContext::default();
    let message = BgpMessage::parse(&mut SliceReader::new(&bytes), &mut ctx).unwrap();
    let mut out = Vec::new();
    message.write(&mut out).unwrap();
    assert_bytes(&out, &bytes);
}

fn our_open() -> LocalOpen {
    LocalOpen {
        asn: 4_200_000_053,
        hold_time: 90,
        router_id: "192.0.2.53".parse().unwrap(),
        families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
        graceful_restart: Some(GracefulRestartParameters {
            restart_time: 120,
            restarting: false,
            preserve_routes: true,
        }),
    }
}

#[test]
fn rfc6793_our_open_sends_as_trans_and_the_4_octet_capability() {
    let expected = hex(&format!(
        "{MARKER} 003f 01
         04 5ba0 005a c0000235
         22 02 20
         01 04 0001 00 01
         01 04 0002 00 01
         02 00
         40 0a 0078 0001 01 80 0002 01 80
         41 04 fa56ea35"
    ));
    assert_bytes(&packet::encode_open(&our_open()).unwrap(), &expected);
    let decoded = packet::decode(&expected, &CTX).unwrap();
    let Message::Open(open) = decoded else {
        panic!("{decoded:?}")
    };
    assert_eq!(open.my_as, 23456);
    assert_eq!(open.asn, 4_200_000_053);
    assert_eq!(open.hold_time, 90);
    assert!(open.route_refresh && open.four_octet_as);
    assert_eq!(
        open.graceful_restart,
        Some(PeerGracefulRestart {
            restart_time: 120,
            restarting: false,
            families: vec![(Family::Ipv4Unicast, true), (Family::Ipv6Unicast, true)],
        })
    );
}

#[test]
fn rfc4271_4_4_keepalive_and_4_5_notification() {
    let keepalive = hex(&format!("{MARKER} 0013 04"));
    assert_bytes(&packet::encode_keepalive(), &keepalive);
    assert_eq!(packet::decode(&keepalive, &CTX), Ok(Message::Keepalive));
    let cease = hex(&format!("{MARKER} 0019 03 06 02 03 627965"));
    let n = Notification::administrative_shutdown(Some("bye"));
    assert_bytes(&packet::encode_notification(&n), &cease);
    assert_eq!(packet::decode(&cease, &CTX), Ok(Message::Notification(n)));
}

fn ebgp() -> EncodeContext {
    EncodeContext {
        local_asn: 4_200_000_053,
        internal: false,
        four_octet_as: true,
    }
}

#[test]
fn rfc4271_4_3_ipv4_announce_with_med_prepend_and_communities() {
    let attributes = RouteAttributes {
        med: Some(500),
        communities: vec![Community::new(64512, 53), Community::GRACEFUL_SHUTDOWN],
        large_communities: vec![LargeCommunity::new(4_200_000_053, 1, 2)],
        as_path_prepend: 1,
        ..Default::default()
    };
    let prefix = "192.0.2.53/32".parse().unwrap();
    let frames = packet::encode_announce(
        Family::Ipv4Unicast,
        &[prefix],
        &attributes,
        "192.0.2.1".parse().unwrap(),
        &ebgp(),
    )
    .unwrap();
    let expected = hex(&format!(
        "{MARKER} 0055 02 0000 0039
         40 01 01 00
         40 02 0a 02 02 fa56ea35 fa56ea35
         40 03 04 c0000201
         80 04 04 000001f4
         c0 08 08 fc000035 ffff0000
         c0 20 0c fa56ea35 00000001 00000002
         20 c0000235"
    ));
    assert_eq!(frames.len(), 1);
    assert_bytes(&frames[0], &expected);
    assert_eq!(
        packet::decode(&expected, &CTX),
        Ok(Message::Update(UpdateSummary {
            announced: vec![prefix],
            ..Default::default()
        }))
    );
}

#[test]
fn rfc4760_3_ipv6_announce_in_mp_reach_nlri() {
    let prefix = "2001:db8:53::53/128".parse().unwrap();
    let frames = packet::encode_announce(
        Family::Ipv6Unicast,
        &[prefix],
        &RouteAttributes::default(),
        "2001:db8::1".parse().unwrap(),
        &ebgp(),
    )
    .unwrap();
    let expected = hex(&format!(
        "{MARKER} 004d 02 0000 0036
         40 01 01 00
         40 02 06 02 01 fa56ea35
         80 0e 26 0002 01 10 20010db8000000000000000000000001 00
            80 20010db8005300000000000000000053"
    ));
    assert_bytes(&frames[0], &expected);
    assert_eq!(
        packet::decode(&expected, &CTX),
        Ok(Message::Update(UpdateSummary {
            announced: vec![prefix],
            ..Default::default()
        }))
    );
}

#[test]
fn rfc4271_withdrawn_routes_and_rfc4760_4_mp_unreach_nlri() {
    let v4 = "192.0.2.53/32".parse().unwrap();
    let v6 = "2001:db8:53::53/128".parse().unwrap();
    let expected4 = hex(&format!("{MARKER} 001c 02 0005 20 c0000235 0000"));
    assert_bytes(
        &packet::encode_withdraw(Family::Ipv4Unicast, &[v4]).unwrap()[0],
        &expected4,
    );
    assert_eq!(
        packet::decode(&expected4, &CTX),
        Ok(Message::Update(UpdateSummary {
            withdrawn: vec![v4],
            ..Default::default()
        }))
    );
    let expected6 = hex(&format!(
        "{MARKER} 002e 02 0000 0017 80 0f 14 0002 01 80 20010db8005300000000000000000053"
    ));
    assert_bytes(
        &packet::encode_withdraw(Family::Ipv6Unicast, &[v6]).unwrap()[0],
        &expected6,
    );
    assert_eq!(
        packet::decode(&expected6, &CTX),
        Ok(Message::Update(UpdateSummary {
            withdrawn: vec![v6],
            ..Default::default()
        }))
    );
}

#[test]
fn rfc4724_2_end_of_rib_markers() {
    let eor4 = hex(&format!("{MARKER} 0017 02 0000 0000"));
    let eor6 = hex(&format!("{MARKER} 001d 02 0000 0006 80 0f 03 0002 01"));
    assert_bytes(
        &packet::encode_end_of_rib(Family::Ipv4Unicast).unwrap(),
        &eor4,
    );
    assert_bytes(
        &packet::encode_end_of_rib(Family::Ipv6Unicast).unwrap(),
        &eor6,
    );
    for (bytes, family) in [(eor4, Family::Ipv4Unicast), (eor6, Family::Ipv6Unicast)] {
        assert_eq!(
            packet::decode(&bytes, &CTX),
            Ok(Message::Update(UpdateSummary {
                end_of_rib: Some(family),
                ..Default::default()
            }))
        );
    }
}

#[test]
fn rfc6793_4_2_2_two_octet_peer_gets_as_trans_and_as4_path() {
    let context = EncodeContext {
        four_octet_as: false,
        ..ebgp()
    };
    let frames = packet::encode_announce(
        Family::Ipv4Unicast,
        &["192.0.2.53/32".parse().unwrap()],
        &RouteAttributes::default(),
        "192.0.2.1".parse().unwrap(),
        &context,
    )
    .unwrap();
    let expected = hex(&format!(
        "{MARKER} 0037 02 0000 001b
         40 01 01 00
         40 02 04 02 01 5ba0
         40 03 04 c0000201
         c0 11 06 02 01 fa56ea35
         20 c0000235"
    ));
    assert_bytes(&frames[0], &expected);
}

#[test]
fn rfc4271_5_1_2_and_5_1_5_ibgp_has_empty_as_path_and_local_pref() {
    let context = EncodeContext {
        local_asn: 64500,
        internal: true,
        four_octet_as: true,
    };
    let attributes = RouteAttributes {
        as_path_prepend: 3,
        local_pref: Some(50),
        ..Default::default()
    };
    let frames = packet::encode_announce(
        Family::Ipv4Unicast,
        &["192.0.2.53/32".parse().unwrap()],
        &attributes,
        "192.0.2.1".parse().unwrap(),
        &context,
    )
    .unwrap();
    let expected = hex(&format!(
        "{MARKER} 0031 02 0000 0015
         40 01 01 00
         40 02 00
         40 03 04 c0000201
         40 05 04 00000032
         20 c0000235"
    ));
    assert_bytes(&frames[0], &expected);
}

#[test]
fn updates_are_split_to_fit_4096_octets() {
    let prefixes: Vec<ipnet::IpNet> = (0..2000u32)
        .map(|i| {
            ipnet::IpNet::V4(ipnet::Ipv4Net::new((0x0a00_0000 + (i << 8)).into(), 24).unwrap())
        })
        .collect();
    let frames = packet::encode_announce(
        Family::Ipv4Unicast,
        &prefixes,
        &RouteAttributes::default(),
        "192.0.2.1".parse().unwrap(),
        &ebgp(),
    )
    .unwrap();
    assert!(frames.len() > 1);
    let mut seen = Vec::new();
    for frame in &frames {
        assert!(frame.len() <= 4096);
        let Ok(Message::Update(u)) = packet::decode(frame, &CTX) else {
            panic!()
        };
        seen.extend(u.announced);
    }
    assert_eq!(seen, prefixes);
}

// ---- received UPDATEs with errors (RFC 7606) ------------------------------------------------

fn update(withdrawn: &str, attributes: &str, nlri: &str) -> Vec<u8> {
    let w = hex(withdrawn);
    let a = hex(attributes);
    let n = hex(nlri);
    let len = 19 + 2 + w.len() + 2 + a.len() + n.len();
    let mut frame = hex(MARKER);
    frame.extend_from_slice(&(len as u16).to_be_bytes());
    frame.push(2);
    frame.extend_from_slice(&(w.len() as u16).to_be_bytes());
    frame.extend_from_slice(&w);
    frame.extend_from_slice(&(a.len() as u16).to_be_bytes());
    frame.extend_from_slice(&a);
    frame.extend_from_slice(&n);
    frame
}

const GOOD_ATTRS: &str = "40 01 01 00  40 02 06 02 01 0000fc00  40 03 04 c0000201";

fn kept(frame: &[u8]) -> (UpdateSummary, UpdateErrorAction, u8) {
    let Ok(Message::Update(summary)) = packet::decode(frame, &CTX) else {
        panic!("{:?}", packet::decode(frame, &CTX))
    };
    let Some(DecodeError::Update {
        action,
        notification,
        ..
    }) = summary.error.clone()
    else {
        panic!("no error in {summary:?}")
    };
    (summary, action, notification.subcode)
}

#[track_caller]
fn reset(frame: &[u8]) -> Notification {
    match packet::decode(frame, &CTX) {
        Err(
            e @ DecodeError::Update {
                action: UpdateErrorAction::SessionReset,
                ..
            },
        ) => e.notification().unwrap().clone(),
        other => panic!("expected a session reset, got {other:?}"),
    }
}

#[test]
fn rfc7606_7_1_bad_origin_is_treat_as_withdraw() {
    let frame = update(
        "",
        "40 01 01 07  40 02 06 02 01 0000fc00  40 03 04 c0000201",
        "18 c63364",
    );
    let (summary, action, subcode) = kept(&frame);
    assert_eq!(action, UpdateErrorAction::TreatAsWithdraw);
    assert_eq!(subcode, 6);
    assert!(summary.announced.is_empty());
    assert_eq!(summary.withdrawn, vec!["198.51.100.0/24".parse().unwrap()]);
}

#[test]
fn rfc7606_3_c_wrong_flags_are_treat_as_withdraw() {
    // ORIGIN marked optional.
    let frame = update(
        "",
        "c0 01 01 00  40 02 06 02 01 0000fc00  40 03 04 c0000201",
        "18 c63364",
    );
    assert_eq!(kept(&frame).1, UpdateErrorAction::TreatAsWithdraw);
}

#[test]
fn rfc7606_3_d_missing_next_hop_is_treat_as_withdraw() {
    let frame = update("", "40 01 01 00  40 02 06 02 01 0000fc00", "18 c63364");
    let (_, action, subcode) = kept(&frame);
    assert_eq!((action, subcode), (UpdateErrorAction::TreatAsWithdraw, 3));
}

#[test]
fn rfc7606_4_attribute_overrunning_the_total_length_is_treat_as_withdraw() {
    // MED claims 8 octets, 4 remain in the attribute field; NLRI still found.
    let frame = update("", &format!("{GOOD_ATTRS} 80 04 08 00000001"), "18 c63364");
    let (summary, action, _) = kept(&frame);
    assert_eq!(action, UpdateErrorAction::TreatAsWithdraw);
    assert_eq!(summary.withdrawn, vec!["198.51.100.0/24".parse().unwrap()]);
}

#[test]
fn rfc7606_7_7_bad_aggregator_is_attribute_discard() {
    let frame = update("", &format!("{GOOD_ATTRS} c0 07 03 000000"), "18 c63364");
    let (summary, action, _) = kept(&frame);
    assert_eq!(action, UpdateErrorAction::AttributeDiscard);
    assert_eq!(summary.announced, vec!["198.51.100.0/24".parse().unwrap()]);
}

#[test]
fn rfc4271_6_3_withdrawn_length_beyond_the_message_resets() {
    let mut frame = update("", "", "");
    frame[19] = 0x10;
    assert_eq!(reset(&frame), Notification::new(3, 1, []));
}

#[test]
fn rfc7606_5_3_unparseable_nlri_resets_with_invalid_network_field() {
    let frame = update("", GOOD_ATTRS, "21 c0000235 00");
    assert_eq!(reset(&frame), Notification::new(3, 10, []));
}

#[test]
fn rfc7606_3_g_repeated_mp_reach_nlri_resets() {
    let mp = "80 0e 15 0002 01 10 20010db8000000000000000000000001 00";
    let frame = update("", &format!("40 01 01 00 40 02 00 {mp} {mp}"), "");
    assert_eq!(reset(&frame).subcode, 1);
}

#[test]
fn rfc7606_7_11_mp_reach_with_bad_next_hop_length_resets() {
    let frame = update(
        "",
        "40 01 01 00 40 02 00 80 0e 0a 0002 01 05 0102030405 00",
        "",
    );
    assert_eq!(reset(&frame), Notification::new(3, 9, []));
}
