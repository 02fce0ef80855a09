//! BGP-4 messages: pure encode and decode over netgauze-bgp-pkt (RFC 4271 section 4).
//!
//! What netgauze does: the OPEN, UPDATE and KEEPALIVE codecs (capabilities, path attributes,
//! MP-BGP, 4-octet AS, communities). What we do ourselves, because each reaction is a protocol
//! decision: the header checks of RFC 4271 section 6.1 (exact subcodes and data), the RFC 7606
//! framing walk of an UPDATE (it decides session reset versus treat-as-withdraw before
//! netgauze sees the attributes), NOTIFICATION decoding (netgauze rejects unknown codes, which
//! we must still log) and ROUTE-REFRESH decoding (an unknown AFI/SAFI is ignored, RFC 2918
//! section 4, not an error).

mod error;
mod update;

use std::net::Ipv4Addr;

use ipnet::IpNet;
use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::capabilities::{
    BgpCapability, FourOctetAsCapability, GracefulRestartAddressFamily, GracefulRestartCapability,
    MultiProtocolExtensionsCapability,
};
use netgauze_bgp_pkt::notification::{
    BgpNotificationMessage, CeaseError, FiniteStateMachineError, HoldTimerExpiredError,
    MessageHeaderError, OpenMessageError, RouteRefreshError, UpdateMessageError,
};
use netgauze_bgp_pkt::open::{BgpOpenMessage, BgpOpenMessageParameter};
use netgauze_bgp_pkt::wire::deserializer::BgpMessageParsingError;
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_bgp_pkt::wire::deserializer::open::{
    BgpOpenMessageParsingError, BgpParameterParsingError,
};
use netgauze_iana::address_family::AddressType;
use netgauze_parse_utils::WritablePdu;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;

pub use error::{
    DecodeError, Notification, UpdateErrorAction, cease_subcode, code, fsm_subcode, header_subcode,
    open_subcode, update_subcode,
};
pub use update::{
    EncodeContext, UpdateSummary, encode_announce, encode_end_of_rib, encode_withdraw, is_unicast,
};

/// Length of the fixed header: marker, length, type (RFC 4271 section 4.1).
pub const HEADER_LEN: usize = 19;
/// The largest message without RFC 8654 extended messages, which we do not negotiate.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// AS_TRANS, sent in the 2-octet My AS field for a 4-octet ASN (RFC 6793 section 9).
pub const AS_TRANS: u16 = 23456;

/// Message types (RFC 4271 section 4.1, RFC 2918).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    Open = 1,
    Update = 2,
    Notification = 3,
    Keepalive = 4,
    RouteRefresh = 5,
}

impl MessageType {
    pub const ALL: [MessageType; 5] = [
        MessageType::Open,
        MessageType::Update,
        MessageType::Notification,
        MessageType::Keepalive,
        MessageType::RouteRefresh,
    ];

    /// The type of a whole frame, if its type octet is one we know.
    pub fn of_frame(frame: &[u8]) -> Option<MessageType> {
        match frame.get(18)? {
            1 => Some(MessageType::Open),
            2 => Some(MessageType::Update),
            3 => Some(MessageType::Notification),
            4 => Some(MessageType::Keepalive),
            5 => Some(MessageType::RouteRefresh),
            _ => None,
        }
    }
}

/// The address families we speak: unicast IPv4 and IPv6 (RFC 4760).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Family {
    Ipv4Unicast,
    Ipv6Unicast,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Ipv4Unicast, Family::Ipv6Unicast];

    pub fn of(prefix: &IpNet) -> Family {
        match prefix {
            IpNet::V4(_) => Family::Ipv4Unicast,
            IpNet::V6(_) => Family::Ipv6Unicast,
        }
    }

    /// (AFI, SAFI) as sent on the wire.
    pub fn afi_safi(self) -> (u16, u8) {
        match self {
            Family::Ipv4Unicast => (1, 1),
            Family::Ipv6Unicast => (2, 1),
        }
    }

    pub fn from_afi_safi(afi: u16, safi: u8) -> Option<Family> {
        match (afi, safi) {
            (1, 1) => Some(Family::Ipv4Unicast),
            (2, 1) => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }

    fn address_type(self) -> AddressType {
        match self {
            Family::Ipv4Unicast => AddressType::Ipv4Unicast,
            Family::Ipv6Unicast => AddressType::Ipv6Unicast,
        }
    }

    fn from_address_type(address_type: AddressType) -> Option<Family> {
        match address_type {
            AddressType::Ipv4Unicast => Some(Family::Ipv4Unicast),
            AddressType::Ipv6Unicast => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }
}

/// Graceful restart as we advertise it (RFC 4724 section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GracefulRestartParameters {
    /// Seconds the peer should keep our routes after the session drops.
    pub restart_time: u16,
    /// The Restart State bit: set in the OPEN after we restarted.
    pub restarting: bool,
    /// List our families with the Forwarding State bit, so peers keep our routes as stale.
    pub preserve_routes: bool,
}

/// The OPEN we send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalOpen {
    pub asn: u32,
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    pub families: Vec<Family>,
    pub graceful_restart: Option<GracefulRestartParameters>,
}

/// What a peer's OPEN told us, after decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerOpen {
    /// The 2-octet My AS field (AS_TRANS for a 4-octet ASN).
    pub my_as: u16,
    /// The peer's AS: from the 4-octet AS capability when present, else My AS.
    pub asn: u32,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    /// 4-octet AS capability (RFC 6793).
    pub four_octet_as: bool,
    /// Families advertised with the multiprotocol capability we know; IPv4 unicast when the
    /// peer sent no multiprotocol capability at all (RFC 4760 section 8).
    pub families: Vec<Family>,
    /// Route refresh capability (RFC 2918; code 2, or the pre-standard 128).
    pub route_refresh: bool,
    /// Graceful restart capability (RFC 4724): its restart time and families.
    pub graceful_restart: Option<PeerGracefulRestart>,
}

/// A peer's graceful restart capability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerGracefulRestart {
    pub restart_time: u16,
    pub restarting: bool,
    /// Families with their Forwarding State bit.
    pub families: Vec<(Family, bool)>,
}

/// A received ROUTE-REFRESH (RFC 2918 section 3; subtype per RFC 7313).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRefreshRequest {
    pub afi: u16,
    pub safi: u8,
    pub subtype: u8,
}

impl RouteRefreshRequest {
    pub fn family(&self) -> Option<Family> {
        Family::from_afi_safi(self.afi, self.safi)
    }
}

/// A decoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Open(PeerOpen),
    Update(UpdateSummary),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefreshRequest),
}

/// What decoding depends on: the capabilities negotiated so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeContext {
    /// 4-octet AS numbers in AS_PATH (RFC 6793), once both sides advertised it.
    pub four_octet_as: bool,
}

/// An encode failure: only from a bug (netgauze's writer refused a value we built).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode BGP message: {0}")]
pub struct EncodeError(pub String);

fn write_message(message: &BgpMessage) -> Result<Vec<u8>, EncodeError> {
    let mut buffer = Vec::with_capacity(message.len());
    message
        .write(&mut buffer)
        .map_err(|e| EncodeError(e.to_string()))?;
    Ok(buffer)
}

/// An OPEN with one Capabilities parameter (RFC 5492): multiprotocol per family (RFC 4760),
/// route refresh (RFC 2918), graceful restart (RFC 4724), 4-octet AS (RFC 6793).
pub fn encode_open(open: &LocalOpen) -> Result<Vec<u8>, EncodeError> {
    let mut capabilities: Vec<BgpCapability> = open
        .families
        .iter()
        .map(|f| {
            BgpCapability::MultiProtocolExtensions(MultiProtocolExtensionsCapability::new(
                f.address_type(),
            ))
        })
        .collect();
    capabilities.push(BgpCapability::RouteRefresh);
    if let Some(gr) = open.graceful_restart {
        // With no <AFI, SAFI> listed, peers retain none of our routes when the session drops
        // (RFC 4724 section 4.2); listed with the Forwarding State bit, they keep them stale
        // until restart_time or our End-of-RIB (what we "forward" is DNS on the VIP, which a
        // restarted process serves again by itself).
        let families: Vec<GracefulRestartAddressFamily> = if gr.preserve_routes {
            open.families
                .iter()
                .map(|f| GracefulRestartAddressFamily::new(true, f.address_type()))
                .collect()
        } else {
            Vec::new()
        };
        capabilities.push(BgpCapability::GracefulRestartCapability(
            GracefulRestartCapability::new(
                gr.restarting,
                false,
                gr.restart_time.min(4095),
                families,
            ),
        ));
    }
    capabilities.push(BgpCapability::FourOctetAs(FourOctetAsCapability::new(
        open.asn,
    )));
    let my_as = u16::try_from(open.asn).unwrap_or(AS_TRANS);
    let message = BgpMessage::Open(BgpOpenMessage::new(
        my_as,
        open.hold_time,
        open.router_id,
        vec![BgpOpenMessageParameter::Capabilities(capabilities.into())],
    ));
    write_message(&message)
}

/// KEEPALIVE: the bare header (RFC 4271 section 4.4).
pub fn encode_keepalive() -> Vec<u8> {
    let mut frame = vec![0xff; 16];
    frame.extend_from_slice(&[0, 19, MessageType::Keepalive as u8]);
    frame
}

/// ROUTE-REFRESH for one family (RFC 2918 section 3).
pub fn encode_route_refresh(family: Family) -> Vec<u8> {
    let (afi, safi) = family.afi_safi();
    let mut frame = vec![0xff; 16];
    frame.extend_from_slice(&[0, 23, MessageType::RouteRefresh as u8]);
    frame.extend_from_slice(&afi.to_be_bytes());
    frame.extend_from_slice(&[0, safi]);
    frame
}

/// A NOTIFICATION (RFC 4271 section 4.5), through netgauze for every code it models.
pub fn encode_notification(notification: &Notification) -> Vec<u8> {
    let value: Box<[u8]> = notification.data.clone().into();
    let typed = match (notification.code, notification.subcode) {
        (code::MESSAGE_HEADER, 0) => Some(BgpNotificationMessage::MessageHeaderError(
            MessageHeaderError::Unspecific { value },
        )),
        (code::MESSAGE_HEADER, 1) => Some(BgpNotificationMessage::MessageHeaderError(
            MessageHeaderError::ConnectionNotSynchronized { value },
        )),
        (code::MESSAGE_HEADER, 2) => Some(BgpNotificationMessage::MessageHeaderError(
            MessageHeaderError::BadMessageLength { value },
        )),
        (code::MESSAGE_HEADER, 3) => Some(BgpNotificationMessage::MessageHeaderError(
            MessageHeaderError::BadMessageType { value },
        )),
        (code::OPEN_MESSAGE, sub) => {
            let e = match sub {
                0 => OpenMessageError::Unspecific { value },
                1 => OpenMessageError::UnsupportedVersionNumber { value },
                2 => OpenMessageError::BadPeerAs { value },
                3 => OpenMessageError::BadBgpIdentifier { value },
                4 => OpenMessageError::UnsupportedOptionalParameter { value },
                6 => OpenMessageError::UnacceptableHoldTime { value },
                7 => OpenMessageError::UnsupportedCapability { value },
                _ => return encode_notification_by_hand(notification),
            };
            Some(BgpNotificationMessage::OpenMessageError(e))
        }
        (code::UPDATE_MESSAGE, sub) => {
            let e = match sub {
                0 => UpdateMessageError::Unspecific { value },
                1 => UpdateMessageError::MalformedAttributeList { value },
                2 => UpdateMessageError::UnrecognizedWellKnownAttribute { value },
                3 => UpdateMessageError::MissingWellKnownAttribute { value },
                4 => UpdateMessageError::AttributeFlagsError { value },
                5 => UpdateMessageError::AttributeLengthError { value },
                6 => UpdateMessageError::InvalidOriginAttribute { value },
                8 => UpdateMessageError::InvalidNextHopAttribute { value },
                9 => UpdateMessageError::OptionalAttributeError { value },
                10 => UpdateMessageError::InvalidNetworkField { value },
                11 => UpdateMessageError::MalformedAsPath { value },
                _ => return encode_notification_by_hand(notification),
            };
            Some(BgpNotificationMessage::UpdateMessageError(e))
        }
        (code::HOLD_TIMER_EXPIRED, sub) => Some(BgpNotificationMessage::HoldTimerExpiredError(
            HoldTimerExpiredError::Unspecific {
                sub_code: sub,
                value,
            },
        )),
        (code::FSM, sub) => {
            let e = match sub {
                0 => FiniteStateMachineError::Unspecific { value },
                1 => FiniteStateMachineError::ReceiveUnexpectedMessageInOpenSentState { value },
                2 => FiniteStateMachineError::ReceiveUnexpectedMessageInOpenConfirmState { value },
                3 => FiniteStateMachineError::ReceiveUnexpectedMessageInEstablishedState { value },
                _ => return encode_notification_by_hand(notification),
            };
            Some(BgpNotificationMessage::FiniteStateMachineError(e))
        }
        (code::CEASE, sub) => {
            let e = match sub {
                1 => CeaseError::MaximumNumberOfPrefixesReached { value },
                2 => CeaseError::AdministrativeShutdown { value },
                3 => CeaseError::PeerDeConfigured { value },
                4 => CeaseError::AdministrativeReset { value },
                5 => CeaseError::ConnectionRejected { value },
                6 => CeaseError::OtherConfigurationChange { value },
                7 => CeaseError::ConnectionCollisionResolution { value },
                8 => CeaseError::OutOfResources { value },
                _ => return encode_notification_by_hand(notification),
            };
            Some(BgpNotificationMessage::CeaseError(e))
        }
        (code::ROUTE_REFRESH, 1) => Some(BgpNotificationMessage::RouteRefreshError(
            RouteRefreshError::InvalidMessageLength { value },
        )),
        _ => None,
    };
    match typed.map(|n| write_message(&BgpMessage::Notification(n))) {
        Some(Ok(frame)) => frame,
        _ => encode_notification_by_hand(notification),
    }
}

/// The same NOTIFICATION layout for codes netgauze does not model; data is cut to fit 4096.
fn encode_notification_by_hand(notification: &Notification) -> Vec<u8> {
    let data = &notification.data[..notification.data.len().min(MAX_MESSAGE_LEN - 21)];
    let len = (21 + data.len()) as u16;
    let mut frame = vec![0xff; 16];
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&[
        MessageType::Notification as u8,
        notification.code,
        notification.subcode,
    ]);
    frame.extend_from_slice(data);
    frame
}

/// Checks the fixed header of a frame (RFC 4271 section 6.1) and returns its type and the
/// length it declares. The driver reads 19 octets, calls this, then reads the body.
pub fn check_header(header: &[u8]) -> Result<(MessageType, usize), DecodeError> {
    let Some(marker) = header.get(..16) else {
        return Err(DecodeError::header(
            header_subcode::BAD_MESSAGE_LENGTH,
            (header.len() as u16).to_be_bytes(),
            format!(
                "message of {} octets is shorter than the header",
                header.len()
            ),
        ));
    };
    if marker.iter().any(|&b| b != 0xff) {
        return Err(DecodeError::header(
            header_subcode::CONNECTION_NOT_SYNCHRONIZED,
            [],
            "marker is not all ones",
        ));
    }
    let (Some(&len_hi), Some(&len_lo), Some(&type_code)) =
        (header.get(16), header.get(17), header.get(18))
    else {
        return Err(DecodeError::header(
            header_subcode::BAD_MESSAGE_LENGTH,
            (header.len() as u16).to_be_bytes(),
            "truncated header",
        ));
    };
    let length = u16::from_be_bytes([len_hi, len_lo]);
    let bad_length = |what: &str| {
        DecodeError::header(
            header_subcode::BAD_MESSAGE_LENGTH,
            length.to_be_bytes(),
            format!("length {length} {what}"),
        )
    };
    if usize::from(length) < HEADER_LEN || usize::from(length) > MAX_MESSAGE_LEN {
        return Err(bad_length("is outside 19..=4096"));
    }
    let message_type = MessageType::of_frame(header).ok_or_else(|| {
        DecodeError::header(
            header_subcode::BAD_MESSAGE_TYPE,
            [type_code],
            format!("unknown message type {type_code}"),
        )
    })?;
    let length = usize::from(length);
    let fits = match message_type {
        MessageType::Open => length >= 29,
        MessageType::Update => length >= 23,
        MessageType::Notification => length >= 21,
        MessageType::Keepalive => length == 19,
        // A wrong ROUTE-REFRESH length has its own error (RFC 7313 section 5), checked on
        // the whole message; the header only needs room for it.
        MessageType::RouteRefresh => true,
    };
    if !fits {
        return Err(bad_length(&format!(
            "is wrong for a {message_type:?} message"
        )));
    }
    Ok((message_type, length))
}

/// Decodes one whole frame (header and body). Never panics, whatever the bytes.
pub fn decode(frame: &[u8], context: &DecodeContext) -> Result<Message, DecodeError> {
    let (message_type, length) = check_header(frame)?;
    if length != frame.len() {
        return Err(DecodeError::header(
            header_subcode::BAD_MESSAGE_LENGTH,
            (length as u16).to_be_bytes(),
            format!("header says {length} octets, frame has {}", frame.len()),
        ));
    }
    let body = &frame[HEADER_LEN..];
    match message_type {
        MessageType::Keepalive => Ok(Message::Keepalive),
        MessageType::Notification => decode_notification(body),
        MessageType::RouteRefresh => decode_route_refresh(frame),
        MessageType::Open => decode_open(frame).map(Message::Open),
        MessageType::Update => update::decode_update(frame, context).map(Message::Update),
    }
}

fn decode_notification(body: &[u8]) -> Result<Message, DecodeError> {
    match body {
        [code, subcode, data @ ..] => Ok(Message::Notification(Notification::new(
            *code, *subcode, data,
        ))),
        _ => Err(DecodeError::Notification {
            reason: "shorter than 2 octets".into(),
        }),
    }
}

fn decode_route_refresh(frame: &[u8]) -> Result<Message, DecodeError> {
    match &frame[HEADER_LEN..] {
        [afi_hi, afi_lo, subtype, safi] => Ok(Message::RouteRefresh(RouteRefreshRequest {
            afi: u16::from_be_bytes([*afi_hi, *afi_lo]),
            safi: *safi,
            subtype: *subtype,
        })),
        body => Err(DecodeError::RouteRefresh {
            notification: Notification::new(code::ROUTE_REFRESH, 1, frame),
            reason: format!("body of {} octets, expected 4", body.len()),
        }),
    }
}

fn decode_open(frame: &[u8]) -> Result<PeerOpen, DecodeError> {
    // Capabilities we cannot parse are ignored, not errors (RFC 5492 section 5).
    let mut context = BgpParsingContext::new(
        true,
        Default::default(),
        Default::default(),
        false,
        false,
        false,
        true,
    );
    let mut reader = SliceReader::new(frame);
    let message = BgpMessage::parse(&mut reader, &mut context).map_err(open_error)?;
    let BgpMessage::Open(open) = message else {
        return Err(DecodeError::open(
            open_subcode::UNSPECIFIC,
            [],
            "not an OPEN",
        ));
    };
    let mut four_octet_as = None;
    let mut families = Vec::new();
    let mut any_multiprotocol = false;
    let mut route_refresh = false;
    let mut graceful_restart = None;
    for capability in open.capabilities() {
        match capability {
            BgpCapability::FourOctetAs(c) => four_octet_as = Some(c.asn4()),
            BgpCapability::MultiProtocolExtensions(c) => {
                any_multiprotocol = true;
                if let Some(f) = Family::from_address_type(c.address_type()) {
                    if !families.contains(&f) {
                        families.push(f);
                    }
                }
            }
            BgpCapability::RouteRefresh | BgpCapability::CiscoRouteRefresh => route_refresh = true,
            BgpCapability::GracefulRestartCapability(c) => {
                graceful_restart = Some(PeerGracefulRestart {
                    restart_time: c.time(),
                    restarting: c.restart(),
                    families: c
                        .address_families()
                        .iter()
                        .filter_map(|af| {
                            Family::from_address_type(af.address_type())
                                .map(|f| (f, af.forwarding_state()))
                        })
                        .collect(),
                })
            }
            _ => {}
        }
    }
    if !any_multiprotocol {
        families.push(Family::Ipv4Unicast);
    }
    families.sort();
    Ok(PeerOpen {
        my_as: open.my_as(),
        asn: four_octet_as.unwrap_or(u32::from(open.my_as())),
        hold_time: open.hold_time(),
        bgp_id: open.bgp_id(),
        four_octet_as: four_octet_as.is_some(),
        families,
        route_refresh,
        graceful_restart,
    })
}

/// Maps netgauze's OPEN errors to RFC 4271 section 6.2 subcodes and data.
fn open_error(error: BgpMessageParsingError) -> DecodeError {
    let reason = error.to_string();
    match error {
        BgpMessageParsingError::BgpOpenMessageParsingError(e) => match e {
            // Data: the largest version we support (RFC 4271 section 6.2).
            BgpOpenMessageParsingError::UnsupportedVersionNumber { .. } => DecodeError::open(
                open_subcode::UNSUPPORTED_VERSION_NUMBER,
                4u16.to_be_bytes(),
                reason,
            ),
            BgpOpenMessageParsingError::UnacceptableHoldTime { .. } => {
                DecodeError::open(open_subcode::UNACCEPTABLE_HOLD_TIME, [], reason)
            }
            BgpOpenMessageParsingError::InvalidBgpId { .. } => {
                DecodeError::open(open_subcode::BAD_BGP_IDENTIFIER, [], reason)
            }
            BgpOpenMessageParsingError::ParameterError(
                BgpParameterParsingError::UndefinedParameterType { .. },
            ) => DecodeError::open(open_subcode::UNSUPPORTED_OPTIONAL_PARAMETER, [], reason),
            _ => DecodeError::open(open_subcode::UNSPECIFIC, [], reason),
        },
        _ => DecodeError::open(open_subcode::UNSPECIFIC, [], reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4271_6_1_header_checks() {
        let ctx = DecodeContext {
            four_octet_as: true,
        };
        let mut frame = encode_keepalive();
        assert_eq!(decode(&frame, &ctx), Ok(Message::Keepalive));
        frame[3] = 0;
        let err = decode(&frame, &ctx).unwrap_err();
        assert_eq!(err.notification().unwrap(), &Notification::new(1, 1, []));
        let mut frame = encode_keepalive();
        frame[17] = 20;
        frame.push(0);
        let err = decode(&frame, &ctx).unwrap_err();
        assert_eq!(
            err.notification().unwrap(),
            &Notification::new(1, 2, [0, 20])
        );
        let mut frame = encode_keepalive();
        frame[18] = 9;
        let err = decode(&frame, &ctx).unwrap_err();
        assert_eq!(err.notification().unwrap(), &Notification::new(1, 3, [9]));
        let mut frame = encode_keepalive();
        frame[16] = 0x20; // 8192
        let err = check_header(&frame).unwrap_err();
        assert_eq!(
            err.notification().unwrap(),
            &Notification::new(1, 2, [0x20, 19])
        );
    }

    #[test]
    fn rfc7313_5_route_refresh_of_wrong_length() {
        let ctx = DecodeContext {
            four_octet_as: true,
        };
        let mut frame = encode_route_refresh(Family::Ipv6Unicast);
        assert_eq!(
            decode(&frame, &ctx),
            Ok(Message::RouteRefresh(RouteRefreshRequest {
                afi: 2,
                safi: 1,
                subtype: 0
            }))
        );
        frame.push(0);
        frame[17] = 24;
        let err = decode(&frame, &ctx).unwrap_err();
        assert_eq!(err.notification().unwrap().code, code::ROUTE_REFRESH);
    }

    #[test]
    fn notification_round_trips_with_unknown_codes() {
        let ctx = DecodeContext {
            four_octet_as: true,
        };
        for n in [
            Notification::hold_timer_expired(),
            Notification::administrative_shutdown(Some("bye")),
            Notification::new(2, 2, [0xfc, 0]),
            Notification::new(42, 7, [1, 2, 3]),
        ] {
            let frame = encode_notification(&n);
            assert_eq!(decode(&frame, &ctx), Ok(Message::Notification(n)));
        }
    }
}
