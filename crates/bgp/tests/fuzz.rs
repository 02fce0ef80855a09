//! Property tests: no input from a peer makes the decoder or the session panic, and what we
//! encode decodes back to the same routes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyns_bgp::packet::{
    self, DecodeContext, EncodeContext, Family, GracefulRestartParameters, LocalOpen, Message,
};
use anyns_bgp::{
    Community, ConnectionId, Event, LargeCommunity, RouteAttributes, Session, SessionConfig, State,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;

/// A frame with a valid marker and length and the given type, so that decoding reaches the
/// message parsers; sometimes broken on purpose.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..7,
        proptest::collection::vec(any::<u8>(), 0..200),
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(|(message_type, body, honest_length, noise)| {
            let mut frame = vec![0xff; 16];
            let len = (19 + body.len()) as u16;
            frame.extend_from_slice(
                &if honest_length {
                    len
                } else {
                    len ^ u16::from(noise)
                }
                .to_be_bytes(),
            );
            frame.push(message_type);
            frame.extend_from_slice(&body);
            frame
        })
}

/// An UPDATE with sound outer framing and random path attributes, to reach netgauze's
/// attribute decoders.
fn update() -> impl Strategy<Value = Vec<u8>> {
    let attribute = (
        any::<u8>(),
        0u8..40,
        proptest::collection::vec(any::<u8>(), 0..40),
    );
    (
        proptest::collection::vec(attribute, 0..6),
        proptest::collection::vec(any::<u8>(), 0..12),
    )
        .prop_map(|(attributes, nlri)| {
            let mut attrs = Vec::new();
            for (flags, code, value) in attributes {
                let flags = flags & 0xe0;
                attrs.extend_from_slice(&[flags, code, value.len() as u8]);
                attrs.extend_from_slice(&value);
            }
            let mut frame = vec![0xff; 16];
            frame.extend_from_slice(&((19 + 4 + attrs.len() + nlri.len()) as u16).to_be_bytes());
            frame.push(2);
            frame.extend_from_slice(&[0, 0]);
            frame.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
            frame.extend_from_slice(&attrs);
            frame.extend_from_slice(&nlri);
            frame
        })
}

proptest! {
    #[test]
    fn decode_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300), four in any::<bool>()) {
        let _ = packet::decode(&bytes, &DecodeContext { four_octet_as: four });
        let _ = packet::check_header(&bytes);
    }

    #[test]
    fn decode_never_panics_on_framed_messages(frame in frame(), four in any::<bool>()) {
        let _ = packet::decode(&frame, &DecodeContext { four_octet_as: four });
    }

    #[test]
    fn decode_never_panics_on_random_path_attributes(frame in update(), four in any::<bool>()) {
        let _ = packet::decode(&frame, &DecodeContext { four_octet_as: four });
    }

    #[test]
    fn an_established_session_survives_any_frame(frames in proptest::collection::vec(prop_oneof![frame(), update()], 1..8)) {
        let (mut session, conn, mut now) = established();
        for frame in frames {
            session.handle(Event::Message { conn, frame }, now);
            now += Duration::from_secs(1);
            session.handle_timeout(now);
            while session.poll_transmit().is_some() {}
            while session.poll_action().is_some() {}
        }
    }

    #[test]
    fn announced_routes_decode_back(
        v4 in proptest::collection::btree_set((any::<u32>(), 8u8..=32), 1..50),
        v6 in proptest::collection::btree_set((any::<u128>(), 16u8..=128), 1..50),
        med in proptest::option::of(any::<u32>()),
        communities in proptest::collection::vec(any::<u32>(), 0..80),
        large in proptest::collection::vec((any::<u32>(), any::<u32>(), any::<u32>()), 0..30),
        prepend in 0u8..=255,
        four in any::<bool>(),
    ) {
        let attributes = RouteAttributes {
            med,
            local_pref: None,
            communities: communities.into_iter().map(Community).collect(),
            large_communities: large.into_iter().map(|(a, b, c)| LargeCommunity::new(a, b, c)).collect(),
            as_path_prepend: prepend,
        };
        let context = EncodeContext { local_asn: 4_200_000_053, internal: false, four_octet_as: four };
        // Multicast prefixes are refused earlier (SessionRouting::eligible).
        let v4: Vec<IpNet> = v4.into_iter().map(|(a, l)| IpNet::V4(Ipv4Net::new(a.into(), l).unwrap().trunc())).filter(packet::is_unicast).collect();
        let v6: Vec<IpNet> = v6.into_iter().map(|(a, l)| IpNet::V6(Ipv6Net::new(a.into(), l).unwrap().trunc())).filter(packet::is_unicast).collect();
        for (family, prefixes, nh) in [(Family::Ipv4Unicast, &v4, "192.0.2.1"), (Family::Ipv6Unicast, &v6, "2001:db8::1")] {
            let frames = packet::encode_announce(family, prefixes, &attributes, nh.parse().unwrap(), &context).unwrap();
            let mut seen = Vec::new();
            for frame in frames {
                prop_assert!(frame.len() <= 4096);
                match packet::decode(&frame, &DecodeContext { four_octet_as: four }) {
                    Ok(Message::Update(u)) => {
                        prop_assert!(u.error.is_none(), "{:?}", u.error);
                        seen.extend(u.announced);
                    }
                    other => prop_assert!(false, "{other:?}"),
                }
            }
            let mut expected = prefixes.clone();
            expected.sort();
            expected.dedup();
            seen.sort();
            seen.dedup();
            prop_assert_eq!(seen, expected);
        }
    }
}

fn established() -> (Session, ConnectionId, Instant) {
    let mut session = Session::new(SessionConfig {
        local_asn: 64500,
        router_id: "192.0.2.53".parse().unwrap(),
        remote_asn: 64512,
        remote_address: "192.0.2.254".parse().unwrap(),
        passive: false,
        hold_time: 90,
        keepalive_time: None,
        connect_retry: Duration::from_secs(5),
        connect_retry_max: Duration::from_secs(60),
        graceful_restart: None,
        next_hop_ipv4: None,
        next_hop_ipv6: None,
        families: Family::ALL.to_vec(),
    });
    let now = Instant::now();
    session.handle(Event::ManualStart, now);
    let conn = ConnectionId::outgoing(1);
    let local: SocketAddr = "192.0.2.53:40000".parse().unwrap();
    let remote: SocketAddr = "192.0.2.254:179".parse().unwrap();
    session.handle(
        Event::TcpCrAcked {
            conn,
            local,
            remote,
        },
        now,
    );
    let open = packet::encode_open(&LocalOpen {
        asn: 64512,
        hold_time: 90,
        router_id: "192.0.2.254".parse().unwrap(),
        families: Family::ALL.to_vec(),
        graceful_restart: Some(GracefulRestartParameters {
            restart_time: 120,
            restarting: false,
            preserve_routes: true,
        }),
    })
    .unwrap();
    session.handle(Event::Message { conn, frame: open }, now);
    session.handle(
        Event::Message {
            conn,
            frame: packet::encode_keepalive(),
        },
        now,
    );
    assert_eq!(session.state(), State::Established);
    (session, conn, now)
}
