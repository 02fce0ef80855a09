//! UPDATE messages: building ours (RFC 4271 section 4.3 and 5, RFC 4760 for IPv6) and checking
//! the peer's with the RFC 7606 reactions.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netgauze_bgp_pkt::BgpMessage;
use netgauze_bgp_pkt::community::{Community as NgCommunity, LargeCommunity as NgLargeCommunity};
use netgauze_bgp_pkt::nlri::{Ipv4Unicast, Ipv4UnicastAddress, Ipv6Unicast, Ipv6UnicastAddress};
use netgauze_bgp_pkt::notification::UpdateMessageError;
use netgauze_bgp_pkt::path_attribute::{
    As2PathSegment, As4Path, As4PathSegment, AsPath, AsPathSegmentType, Communities,
    LargeCommunities, LocalPreference, MpReach, MpUnreach, MultiExitDiscriminator, NextHop, Origin,
    PathAttribute, PathAttributeValue,
};
use netgauze_bgp_pkt::update::BgpUpdateMessage;
use netgauze_bgp_pkt::wire::deserializer::path_attribute::PathAttributeParsingError;
use netgauze_bgp_pkt::wire::deserializer::update::BgpUpdateMessageParsingError;
use netgauze_bgp_pkt::wire::deserializer::{BgpMessageParsingError, BgpParsingContext};
use netgauze_parse_utils::WritablePdu;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;

use super::error::{DecodeError, Notification, UpdateErrorAction, code, update_subcode};
use super::{AS_TRANS, DecodeContext, EncodeError, Family, HEADER_LEN, MAX_MESSAGE_LEN};
use crate::config::RouteAttributes;

/// Path attribute type codes we look at (RFC 4271 section 5, RFC 4760, RFC 6793).
mod attr {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
}

/// What a received UPDATE said, as far as we care: which prefixes came and went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateSummary {
    pub announced: Vec<IpNet>,
    pub withdrawn: Vec<IpNet>,
    /// End-of-RIB marker (RFC 4724 section 2).
    pub end_of_rib: Option<Family>,
    /// An error that RFC 7606 lets the session survive (treat-as-withdraw or attribute
    /// discard); with treat-as-withdraw the UPDATE's prefixes are in `withdrawn`.
    pub error: Option<DecodeError>,
}

/// How our UPDATEs are built for one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeContext {
    pub local_asn: u32,
    /// iBGP: empty AS_PATH (RFC 4271 5.1.2) and LOCAL_PREF (5.1.5).
    pub internal: bool,
    /// 4-octet AS_PATH (RFC 6793); else 2-octet with AS_TRANS plus AS4_PATH.
    pub four_octet_as: bool,
}

fn write_update(update: BgpUpdateMessage) -> Result<Vec<u8>, EncodeError> {
    let message = BgpMessage::Update(update);
    let mut buffer = Vec::with_capacity(message.len());
    message
        .write(&mut buffer)
        .map_err(|e| EncodeError(e.to_string()))?;
    Ok(buffer)
}

/// Builds with all prefixes, halving the list until each UPDATE fits in 4096 octets.
type BuildUpdate<'a, T> = &'a dyn Fn(&[T]) -> Result<Vec<u8>, EncodeError>;

fn split_to_fit<T: Clone>(
    items: &[T],
    build: BuildUpdate<'_, T>,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let frame = build(items)?;
    if frame.len() <= MAX_MESSAGE_LEN {
        return Ok(vec![frame]);
    }
    if items.len() <= 1 {
        return Err(EncodeError(format!(
            "one route needs {} octets, over 4096",
            frame.len()
        )));
    }
    let (a, b) = items.split_at(items.len() / 2);
    let mut frames = split_to_fit(a, build)?;
    frames.extend(split_to_fit(b, build)?);
    Ok(frames)
}

/// A path attribute with the flags its type requires; the Extended Length bit only when the
/// value needs it (RFC 4271 section 4.3).
fn attribute(
    optional: bool,
    transitive: bool,
    value: PathAttributeValue,
) -> Result<PathAttribute, EncodeError> {
    let short = PathAttribute::from(optional, transitive, false, false, value)
        .map_err(|(_, e)| EncodeError(format!("{e:?}")))?;
    if short.len() - 3 <= 255 {
        return Ok(short);
    }
    PathAttribute::from(optional, transitive, false, true, short.value().clone())
        .map_err(|(_, e)| EncodeError(format!("{e:?}")))
}

/// ORIGIN, AS_PATH, MED, LOCAL_PREF, COMMUNITIES, AS4_PATH, LARGE_COMMUNITY for an announce;
/// NEXT_HOP and MP_REACH_NLRI are added by the caller in type-code order.
fn route_attributes(
    attributes: &RouteAttributes,
    context: &EncodeContext,
    next_hop: Option<Ipv4Addr>,
    mp_reach: Option<MpReach>,
) -> Result<Vec<PathAttribute>, EncodeError> {
    let mut out = vec![attribute(
        false,
        true,
        PathAttributeValue::Origin(Origin::IGP),
    )?];
    // eBGP: our AS, plus the configured prepends (RFC 4271 5.1.2); iBGP: empty.
    let path: Vec<u32> = if context.internal {
        Vec::new()
    } else {
        vec![context.local_asn; 1 + usize::from(attributes.as_path_prepend)]
    };
    let as_path = if context.four_octet_as {
        AsPath::As4PathSegments(
            path.chunks(255)
                .map(|c| As4PathSegment::new(AsPathSegmentType::AsSequence, c.to_vec()))
                .collect::<Vec<_>>()
                .into(),
        )
    } else {
        // A 2-octet peer sees AS_TRANS for a 4-octet ASN (RFC 6793 section 4.2.2).
        let two: Vec<u16> = path
            .iter()
            .map(|&a| u16::try_from(a).unwrap_or(AS_TRANS))
            .collect();
        AsPath::As2PathSegments(
            two.chunks(255)
                .map(|c| As2PathSegment::new(AsPathSegmentType::AsSequence, c.to_vec()))
                .collect::<Vec<_>>()
                .into(),
        )
    };
    out.push(attribute(false, true, PathAttributeValue::AsPath(as_path))?);
    if let Some(nh) = next_hop {
        out.push(attribute(
            false,
            true,
            PathAttributeValue::NextHop(NextHop::new(nh)),
        )?);
    }
    if let Some(med) = attributes.med {
        out.push(attribute(
            true,
            false,
            PathAttributeValue::MultiExitDiscriminator(MultiExitDiscriminator::new(med)),
        )?);
    }
    if context.internal {
        let pref = attributes.local_pref.unwrap_or(100);
        out.push(attribute(
            false,
            true,
            PathAttributeValue::LocalPreference(LocalPreference::new(pref)),
        )?);
    }
    if !attributes.communities.is_empty() {
        let list: Vec<NgCommunity> = attributes
            .communities
            .iter()
            .map(|c| NgCommunity::new(c.0))
            .collect();
        out.push(attribute(
            true,
            true,
            PathAttributeValue::Communities(Communities::new(list)),
        )?);
    }
    if let Some(reach) = mp_reach {
        out.push(attribute(true, false, PathAttributeValue::MpReach(reach))?);
    }
    if !context.four_octet_as && !path.is_empty() && path.iter().any(|&a| a > 0xffff) {
        let segments: Vec<As4PathSegment> = path
            .chunks(255)
            .map(|c| As4PathSegment::new(AsPathSegmentType::AsSequence, c.to_vec()))
            .collect();
        out.push(attribute(
            true,
            true,
            PathAttributeValue::As4Path(As4Path::new(segments)),
        )?);
    }
    if !attributes.large_communities.is_empty() {
        let list: Vec<NgLargeCommunity> = attributes
            .large_communities
            .iter()
            .map(|c| NgLargeCommunity::new(c.global_admin, c.local_data1, c.local_data2))
            .collect();
        out.push(attribute(
            true,
            true,
            PathAttributeValue::LargeCommunities(LargeCommunities::new(list)),
        )?);
    }
    Ok(out)
}

/// Whether a prefix can be sent as unicast NLRI (not multicast or broadcast, as netgauze
/// checks it).
pub fn is_unicast(prefix: &IpNet) -> bool {
    match prefix {
        IpNet::V4(p) => Ipv4Unicast::from_net(p.trunc()).is_ok(),
        IpNet::V6(p) => Ipv6Unicast::from_net(p.trunc()).is_ok(),
    }
}

fn ipv4_nlri(prefixes: &[Ipv4Net]) -> Result<Vec<Ipv4UnicastAddress>, EncodeError> {
    prefixes
        .iter()
        .map(|p| {
            Ipv4Unicast::from_net(p.trunc())
                .map(Ipv4UnicastAddress::new_no_path_id)
                .map_err(|e| EncodeError(format!("{} is not IPv4 unicast", e.0)))
        })
        .collect()
}

fn ipv6_nlri(prefixes: &[Ipv6Net]) -> Result<Vec<Ipv6UnicastAddress>, EncodeError> {
    prefixes
        .iter()
        .map(|p| {
            Ipv6Unicast::from_net(p.trunc())
                .map(|n| Ipv6UnicastAddress::new(None, n))
                .map_err(|e| EncodeError(format!("{} is not IPv6 unicast", e.0)))
        })
        .collect()
}

fn split_families(prefixes: &[IpNet]) -> (Vec<Ipv4Net>, Vec<Ipv6Net>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for p in prefixes {
        match p {
            IpNet::V4(p) => v4.push(*p),
            IpNet::V6(p) => v6.push(*p),
        }
    }
    (v4, v6)
}

/// UPDATEs announcing `prefixes` of one family with the same attributes: IPv4 in the NLRI
/// field with NEXT_HOP, IPv6 in MP_REACH_NLRI (RFC 4760 section 3). `next_hop` must be of the
/// family's kind: IPv4 for IPv4, IPv6 (possibly IPv4-mapped) for IPv6.
pub fn encode_announce(
    family: Family,
    prefixes: &[IpNet],
    attributes: &RouteAttributes,
    next_hop: IpAddr,
    context: &EncodeContext,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let (v4, v6) = split_families(prefixes);
    match (family, next_hop) {
        (Family::Ipv4Unicast, IpAddr::V4(nh)) => split_to_fit(&v4, &|chunk| {
            let attrs = route_attributes(attributes, context, Some(nh), None)?;
            write_update(BgpUpdateMessage::new(vec![], attrs, ipv4_nlri(chunk)?))
        }),
        (Family::Ipv6Unicast, IpAddr::V6(nh)) => split_to_fit(&v6, &|chunk| {
            let reach = MpReach::Ipv6Unicast {
                next_hop_global: nh,
                next_hop_local: None,
                nlri: ipv6_nlri(chunk)?.into(),
            };
            let attrs = route_attributes(attributes, context, None, Some(reach))?;
            write_update(BgpUpdateMessage::new(vec![], attrs, vec![]))
        }),
        (family, nh) => Err(EncodeError(format!(
            "next hop {nh} cannot carry {family:?} routes"
        ))),
    }
}

/// UPDATEs withdrawing `prefixes` of one family: IPv4 in Withdrawn Routes, IPv6 in
/// MP_UNREACH_NLRI (RFC 4760 section 4).
pub fn encode_withdraw(family: Family, prefixes: &[IpNet]) -> Result<Vec<Vec<u8>>, EncodeError> {
    let (v4, v6) = split_families(prefixes);
    match family {
        Family::Ipv4Unicast => split_to_fit(&v4, &|chunk| {
            write_update(BgpUpdateMessage::new(ipv4_nlri(chunk)?, vec![], vec![]))
        }),
        Family::Ipv6Unicast => split_to_fit(&v6, &|chunk| {
            let unreach = MpUnreach::Ipv6Unicast {
                nlri: ipv6_nlri(chunk)?.into(),
            };
            let attrs = vec![attribute(
                true,
                false,
                PathAttributeValue::MpUnreach(unreach),
            )?];
            write_update(BgpUpdateMessage::new(vec![], attrs, vec![]))
        }),
    }
}

/// End-of-RIB (RFC 4724 section 2): an empty UPDATE for IPv4 unicast, an empty
/// MP_UNREACH_NLRI for other families.
pub fn encode_end_of_rib(family: Family) -> Result<Vec<u8>, EncodeError> {
    match family {
        Family::Ipv4Unicast => write_update(BgpUpdateMessage::new(vec![], vec![], vec![])),
        Family::Ipv6Unicast => {
            let unreach = MpUnreach::Ipv6Unicast {
                nlri: vec![].into(),
            };
            let attrs = vec![attribute(
                true,
                false,
                PathAttributeValue::MpUnreach(unreach),
            )?];
            write_update(BgpUpdateMessage::new(vec![], attrs, vec![]))
        }
    }
}

// ---- decoding -------------------------------------------------------------------------------

/// A bounds-checked cursor for the RFC 7606 framing walk.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

/// Prefixes in the RFC 4271 section 4.3 encoding (length in bits, then the octets needed).
fn parse_prefixes(bytes: &[u8], family: Family) -> Option<Vec<IpNet>> {
    let mut cursor = Cursor(bytes);
    let mut out = Vec::new();
    let max = match family {
        Family::Ipv4Unicast => 32,
        Family::Ipv6Unicast => 128,
    };
    while !cursor.0.is_empty() {
        let bits = cursor.u8()?;
        if bits > max {
            return None;
        }
        let octets = cursor.take(usize::from(bits).div_ceil(8))?;
        let net = match family {
            Family::Ipv4Unicast => {
                let mut a = [0u8; 4];
                a[..octets.len()].copy_from_slice(octets);
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), bits).ok()?.trunc())
            }
            Family::Ipv6Unicast => {
                let mut a = [0u8; 16];
                a[..octets.len()].copy_from_slice(octets);
                IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), bits).ok()?.trunc())
            }
        };
        out.push(net);
    }
    Some(out)
}

/// What the framing walk found.
#[derive(Default)]
struct Walk {
    withdrawn: Vec<IpNet>,
    announced: Vec<IpNet>,
    /// Type codes in order.
    types: Vec<u8>,
    /// MP_UNREACH_NLRI of a family of ours with no prefixes.
    mp_unreach_empty: Option<Family>,
    /// RFC 7606 section 4: the attributes overrun Total Path Attribute Length.
    attributes_overrun: bool,
    mp_reach_nlri: bool,
    /// The NLRI field (IPv4) is not empty.
    classic_nlri: bool,
}

/// The RFC 7606 framing walk: finds the NLRI of all families we speak, or says why the
/// session must be reset.
fn walk(body: &[u8]) -> Result<Walk, DecodeError> {
    let mut walk = Walk::default();
    let mut cursor = Cursor(body);
    let malformed = |what: &str| {
        DecodeError::update_reset(update_subcode::MALFORMED_ATTRIBUTE_LIST, what.to_string())
    };
    // RFC 4271 6.3: lengths that exceed the message are a Malformed Attribute List; without
    // them the NLRI cannot be located, so RFC 7606 section 4 leaves only a session reset.
    let withdrawn_len = cursor
        .u16()
        .ok_or_else(|| malformed("no Withdrawn Routes Length"))?;
    let withdrawn = cursor
        .take(usize::from(withdrawn_len))
        .ok_or_else(|| malformed("Withdrawn Routes Length exceeds the message"))?;
    let attributes_len = cursor
        .u16()
        .ok_or_else(|| malformed("no Total Path Attribute Length"))?;
    let attributes = cursor
        .take(usize::from(attributes_len))
        .ok_or_else(|| malformed("Total Path Attribute Length exceeds the message"))?;
    let nlri = cursor.0;
    // RFC 7606 section 5.3: a prefix that cannot be parsed makes the NLRI unreadable.
    let invalid_network = |what: &str| {
        DecodeError::update_reset(update_subcode::INVALID_NETWORK_FIELD, what.to_string())
    };
    walk.withdrawn = parse_prefixes(withdrawn, Family::Ipv4Unicast)
        .ok_or_else(|| invalid_network("bad prefix in Withdrawn Routes"))?;
    walk.announced = parse_prefixes(nlri, Family::Ipv4Unicast)
        .ok_or_else(|| invalid_network("bad prefix in NLRI"))?;
    walk.classic_nlri = !walk.announced.is_empty();

    let mut cursor = Cursor(attributes);
    while !cursor.0.is_empty() {
        let header = (cursor.u8(), cursor.u8());
        let (Some(flags), Some(type_code)) = header else {
            walk.attributes_overrun = true;
            break;
        };
        let len = if flags & 0x10 != 0 {
            cursor.u16()
        } else {
            cursor.u8().map(u16::from)
        };
        let Some(value) = len.and_then(|len| cursor.take(usize::from(len))) else {
            walk.attributes_overrun = true;
            break;
        };
        if walk.types.contains(&type_code)
            && (type_code == attr::MP_REACH_NLRI || type_code == attr::MP_UNREACH_NLRI)
        {
            // RFC 7606 section 3 (g).
            return Err(malformed("MP_REACH_NLRI or MP_UNREACH_NLRI appears twice"));
        }
        walk.types.push(type_code);
        // RFC 7606 section 7.11 and 5.3: a multiprotocol attribute whose NLRI cannot be read
        // resets the session (we do not implement AFI/SAFI disable).
        let optional_error = |what: &str| {
            DecodeError::update_reset(update_subcode::OPTIONAL_ATTRIBUTE_ERROR, what.to_string())
        };
        if type_code == attr::MP_REACH_NLRI {
            let mut v = Cursor(value);
            let (Some(afi), Some(safi), Some(nh_len)) = (v.u16(), v.u8(), v.u8()) else {
                return Err(optional_error("MP_REACH_NLRI too short"));
            };
            if let Some(family) = Family::from_afi_safi(afi, safi) {
                let nh_ok = match family {
                    Family::Ipv4Unicast => matches!(nh_len, 4 | 16 | 32),
                    Family::Ipv6Unicast => matches!(nh_len, 16 | 32),
                };
                if !nh_ok || v.take(usize::from(nh_len)).is_none() || v.u8().is_none() {
                    return Err(optional_error(
                        "MP_REACH_NLRI next hop length is inconsistent",
                    ));
                }
                let prefixes = parse_prefixes(v.0, family)
                    .ok_or_else(|| optional_error("bad prefix in MP_REACH_NLRI"))?;
                walk.mp_reach_nlri |= !prefixes.is_empty();
                walk.announced.extend(prefixes);
            }
        } else if type_code == attr::MP_UNREACH_NLRI {
            let mut v = Cursor(value);
            let (Some(afi), Some(safi)) = (v.u16(), v.u8()) else {
                return Err(optional_error("MP_UNREACH_NLRI too short"));
            };
            if let Some(family) = Family::from_afi_safi(afi, safi) {
                let prefixes = parse_prefixes(v.0, family)
                    .ok_or_else(|| optional_error("bad prefix in MP_UNREACH_NLRI"))?;
                if prefixes.is_empty() {
                    walk.mp_unreach_empty = Some(family);
                }
                walk.withdrawn.extend(prefixes);
            }
        }
    }
    Ok(walk)
}

fn keep_session(action: UpdateErrorAction, subcode: u8, reason: String) -> DecodeError {
    DecodeError::Update {
        notification: Notification::new(code::UPDATE_MESSAGE, subcode, []),
        action,
        reason,
    }
}

/// RFC 4271 6.3 subcodes, from netgauze's mapping.
fn update_subcode_of(error: &UpdateMessageError) -> u8 {
    match error {
        UpdateMessageError::Unspecific { .. } => update_subcode::UNSPECIFIC,
        UpdateMessageError::MalformedAttributeList { .. } => {
            update_subcode::MALFORMED_ATTRIBUTE_LIST
        }
        UpdateMessageError::UnrecognizedWellKnownAttribute { .. } => {
            update_subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE
        }
        UpdateMessageError::MissingWellKnownAttribute { .. } => {
            update_subcode::MISSING_WELL_KNOWN_ATTRIBUTE
        }
        UpdateMessageError::AttributeFlagsError { .. } => update_subcode::ATTRIBUTE_FLAGS_ERROR,
        UpdateMessageError::AttributeLengthError { .. } => update_subcode::ATTRIBUTE_LENGTH_ERROR,
        UpdateMessageError::InvalidOriginAttribute { .. } => {
            update_subcode::INVALID_ORIGIN_ATTRIBUTE
        }
        UpdateMessageError::InvalidNextHopAttribute { .. } => {
            update_subcode::INVALID_NEXT_HOP_ATTRIBUTE
        }
        UpdateMessageError::OptionalAttributeError { .. } => {
            update_subcode::OPTIONAL_ATTRIBUTE_ERROR
        }
        UpdateMessageError::InvalidNetworkField { .. } => update_subcode::INVALID_NETWORK_FIELD,
        UpdateMessageError::MalformedAsPath { .. } => update_subcode::MALFORMED_AS_PATH,
    }
}

/// Decodes an UPDATE frame. A session reset comes back as `Err`; errors that RFC 7606 lets
/// the session survive come back in [`UpdateSummary::error`].
pub(super) fn decode_update(
    frame: &[u8],
    context: &DecodeContext,
) -> Result<UpdateSummary, DecodeError> {
    let walk = walk(frame.get(HEADER_LEN..).unwrap_or_default())?;
    let mut summary = UpdateSummary {
        announced: walk.announced,
        withdrawn: walk.withdrawn,
        end_of_rib: None,
        error: None,
    };
    if summary.announced.is_empty() && summary.withdrawn.is_empty() {
        summary.end_of_rib = match walk.types.as_slice() {
            [] => Some(Family::Ipv4Unicast),
            [attr::MP_UNREACH_NLRI] => walk.mp_unreach_empty,
            _ => None,
        };
    }
    let mut error = None;
    if walk.attributes_overrun {
        // RFC 7606 section 4: treat-as-withdraw, NLRI found through Total Path Attribute Length.
        error = Some(keep_session(
            UpdateErrorAction::TreatAsWithdraw,
            update_subcode::MALFORMED_ATTRIBUTE_LIST,
            "path attributes overrun Total Path Attribute Length".into(),
        ));
    } else {
        // The attribute values: netgauze checks flags, lengths and contents.
        let mut parsing = BgpParsingContext::new(
            context.four_octet_as,
            Default::default(),
            Default::default(),
            false,
            false,
            true,
            true,
        );
        let mut reader = SliceReader::new(frame);
        match BgpMessage::parse(&mut reader, &mut parsing) {
            Ok(_) => {
                // RFC 7606 section 3 (d): missing well-known attributes, treat-as-withdraw.
                let has = |t: u8| walk.types.contains(&t);
                let missing = (walk.classic_nlri
                    && !(has(attr::ORIGIN) && has(attr::AS_PATH) && has(attr::NEXT_HOP)))
                    || (walk.mp_reach_nlri && !(has(attr::ORIGIN) && has(attr::AS_PATH)));
                if missing {
                    error = Some(keep_session(
                        UpdateErrorAction::TreatAsWithdraw,
                        update_subcode::MISSING_WELL_KNOWN_ATTRIBUTE,
                        "a well-known mandatory attribute is missing".into(),
                    ));
                }
            }
            Err(e) => {
                let reason = e.to_string();
                // RFC 7606 sections 7.6 and 7.7: a bad ATOMIC_AGGREGATE or AGGREGATOR is
                // discarded; any other attribute error is treat-as-withdraw. The walk above
                // already reset the session for everything that hides the NLRI.
                let (action, subcode) = match e {
                    BgpMessageParsingError::BgpUpdateMessageParsingError(u) => {
                        let discard = matches!(
                            u,
                            BgpUpdateMessageParsingError::PathAttributeError(
                                PathAttributeParsingError::AtomicAggregateError(_)
                                    | PathAttributeParsingError::AggregatorError(_)
                            )
                        );
                        let subcode = update_subcode_of(&UpdateMessageError::from(u));
                        if discard {
                            (UpdateErrorAction::AttributeDiscard, subcode)
                        } else {
                            (UpdateErrorAction::TreatAsWithdraw, subcode)
                        }
                    }
                    _ => (
                        UpdateErrorAction::TreatAsWithdraw,
                        update_subcode::UNSPECIFIC,
                    ),
                };
                error = Some(keep_session(action, subcode, reason));
            }
        }
    }
    if let Some(DecodeError::Update {
        action: UpdateErrorAction::TreatAsWithdraw,
        ..
    }) = &error
    {
        let announced = std::mem::take(&mut summary.announced);
        summary.withdrawn.extend(announced);
    }
    summary.error = error;
    Ok(summary)
}
