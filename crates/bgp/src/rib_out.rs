//! Our Adj-RIB-Out (RFC 4271 section 3.2): what the peer has from us on this session. A new
//! desired set becomes the minimal UPDATEs: changed or new routes announced, removed ones
//! withdrawn, grouped so that routes with the same attributes share one UPDATE.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::config::RouteAttributes;
use crate::packet::{self, EncodeContext, EncodeError, Family};

/// The routes we want a peer to have: prefix → attributes.
pub type Routes = BTreeMap<IpNet, RouteAttributes>;

/// What one session can carry: its families and next hops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRouting {
    /// Families both sides advertised (RFC 4760 section 6).
    pub families: Vec<Family>,
    pub next_hop_ipv4: Option<Ipv4Addr>,
    pub next_hop_ipv6: Option<Ipv6Addr>,
    pub encode: EncodeContext,
}

impl SessionRouting {
    fn next_hop(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::Ipv4Unicast => self.next_hop_ipv4.map(IpAddr::V4),
            Family::Ipv6Unicast => self.next_hop_ipv6.map(IpAddr::V6),
        }
    }

    /// Splits desired routes into those this session can carry and the others, with why.
    pub fn eligible(&self, desired: &Routes) -> (Routes, Vec<(IpNet, String)>) {
        let mut carried = Routes::new();
        let mut skipped = Vec::new();
        for (prefix, attributes) in desired {
            let family = Family::of(prefix);
            if !packet::is_unicast(prefix) {
                skipped.push((*prefix, "not a unicast prefix".to_string()));
            } else if !self.families.contains(&family) {
                skipped.push((*prefix, format!("{family:?} not negotiated with the peer")));
            } else if self.next_hop(family).is_none() {
                skipped.push((
                    *prefix,
                    format!("no next hop for {family:?} on this session"),
                ));
            } else {
                carried.insert(prefix.trunc(), attributes.clone());
            }
        }
        (carried, skipped)
    }
}

/// A change to send: routes to announce (new or changed) and prefixes to withdraw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RibChange {
    pub announce: Routes,
    pub withdraw: Vec<IpNet>,
}

impl RibChange {
    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty()
    }

    /// The UPDATE frames for this change: withdrawals first, then one group of announcements
    /// per (family, attributes).
    pub fn encode(&self, routing: &SessionRouting) -> Result<Vec<Vec<u8>>, EncodeError> {
        let mut frames = Vec::new();
        for family in Family::ALL {
            let withdraw: Vec<IpNet> = self
                .withdraw
                .iter()
                .filter(|p| Family::of(p) == family)
                .copied()
                .collect();
            if !withdraw.is_empty() {
                frames.extend(packet::encode_withdraw(family, &withdraw)?);
            }
        }
        let mut groups: BTreeMap<(Family, &RouteAttributes), Vec<IpNet>> = BTreeMap::new();
        for (prefix, attributes) in &self.announce {
            groups
                .entry((Family::of(prefix), attributes))
                .or_default()
                .push(*prefix);
        }
        for ((family, attributes), prefixes) in groups {
            let next_hop = routing
                .next_hop(family)
                .ok_or_else(|| EncodeError(format!("no next hop for {family:?}")))?;
            frames.extend(packet::encode_announce(
                family,
                &prefixes,
                attributes,
                next_hop,
                &routing.encode,
            )?);
        }
        Ok(frames)
    }
}

/// What the peer has from us.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdjRibOut {
    advertised: Routes,
}

impl AdjRibOut {
    pub fn advertised(&self) -> &Routes {
        &self.advertised
    }

    /// The session went down: the peer has nothing from us any more.
    pub fn clear(&mut self) {
        self.advertised.clear();
    }

    /// Moves to `carried` and returns the minimal change.
    pub fn change_to(&mut self, carried: Routes) -> RibChange {
        let withdraw = self
            .advertised
            .keys()
            .filter(|p| !carried.contains_key(p))
            .copied()
            .collect();
        let announce = carried
            .iter()
            .filter(|(p, a)| self.advertised.get(p) != Some(a))
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        self.advertised = carried;
        RibChange { announce, withdraw }
    }

    /// Everything again, for a ROUTE-REFRESH (RFC 2918 section 4) of some families.
    pub fn refresh(&self, families: &[Family]) -> RibChange {
        RibChange {
            announce: self
                .advertised
                .iter()
                .filter(|(p, _)| families.contains(&Family::of(p)))
                .map(|(p, a)| (*p, a.clone()))
                .collect(),
            withdraw: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Community;

    fn routes(list: &[(&str, u32)]) -> Routes {
        list.iter()
            .map(|(p, med)| {
                (
                    p.parse().unwrap(),
                    RouteAttributes {
                        med: Some(*med),
                        ..Default::default()
                    },
                )
            })
            .collect()
    }

    #[test]
    fn change_is_minimal() {
        let mut rib = AdjRibOut::default();
        let first = rib.change_to(routes(&[
            ("192.0.2.53/32", 10),
            ("2001:db8:53::53/128", 10),
        ]));
        assert_eq!(first.announce.len(), 2);
        assert!(first.withdraw.is_empty());
        assert!(
            rib.change_to(routes(&[
                ("192.0.2.53/32", 10),
                ("2001:db8:53::53/128", 10)
            ]))
            .is_empty()
        );
        let depref = rib.change_to(routes(&[
            ("192.0.2.53/32", 500),
            ("2001:db8:53::53/128", 10),
        ]));
        assert_eq!(
            depref.announce.keys().collect::<Vec<_>>(),
            vec![&"192.0.2.53/32".parse::<IpNet>().unwrap()]
        );
        let withdraw = rib.change_to(routes(&[("2001:db8:53::53/128", 10)]));
        assert!(withdraw.announce.is_empty());
        assert_eq!(
            withdraw.withdraw,
            vec!["192.0.2.53/32".parse::<IpNet>().unwrap()]
        );
    }

    #[test]
    fn same_attributes_share_an_update() {
        let routing = SessionRouting {
            families: Family::ALL.to_vec(),
            next_hop_ipv4: Some("192.0.2.1".parse().unwrap()),
            next_hop_ipv6: Some("2001:db8::1".parse().unwrap()),
            encode: EncodeContext {
                local_asn: 64500,
                internal: false,
                four_octet_as: true,
            },
        };
        let mut desired = routes(&[
            ("192.0.2.53/32", 10),
            ("198.51.100.53/32", 10),
            ("2001:db8:53::53/128", 10),
        ]);
        desired.insert(
            "203.0.113.53/32".parse().unwrap(),
            RouteAttributes {
                communities: vec![Community::GRACEFUL_SHUTDOWN],
                ..Default::default()
            },
        );
        let mut rib = AdjRibOut::default();
        let change = rib.change_to(routing.eligible(&desired).0);
        assert_eq!(change.encode(&routing).unwrap().len(), 3);
    }

    #[test]
    fn routes_without_family_or_next_hop_are_skipped() {
        let routing = SessionRouting {
            families: vec![Family::Ipv4Unicast],
            next_hop_ipv4: None,
            next_hop_ipv6: None,
            encode: EncodeContext {
                local_asn: 64500,
                internal: false,
                four_octet_as: true,
            },
        };
        let (carried, skipped) =
            routing.eligible(&routes(&[("192.0.2.53/32", 1), ("2001:db8::/64", 1)]));
        assert!(carried.is_empty());
        assert_eq!(skipped.len(), 2);
    }
}
