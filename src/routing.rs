//! The `[bgp]` section and the mapping from health intent to the routes the speaker carries
//! (DESIGN decision 5): announce with the normal attributes, announce de-preferred, or withdraw.

use std::net::{IpAddr, Ipv4Addr};

use anyns_bgp::{
    Community, GracefulRestartConfig, PeerConfig, RouteAttributes, Routes, SpeakerConfig,
};
use anyns_health::Intent;
use ipnet::IpNet;
use serde::Deserialize;

/// Extra AS-path prepends while de-preferred, unless configured.
const DEPREFERRED_PREPEND: u8 = 3;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpSection {
    pub local_asn: u32,
    /// BGP Identifier; default: the first IPv4 prefix announced (the VIP).
    pub router_id: Option<Ipv4Addr>,
    #[serde(default = "bgp_port")]
    pub listen_port: u16,
    #[serde(default)]
    pub graceful_restart: GracefulRestartConfig,
    #[serde(default, rename = "peer")]
    pub peers: Vec<PeerConfig>,
    /// The service prefixes: the VIP as a /32 and a /128.
    pub announce: Vec<IpNet>,
    /// Attributes of a normal announcement; the node identity can go in as a community.
    #[serde(default)]
    pub attributes: RouteAttributes,
    /// Attributes while de-preferred (maintenance, drain, a lagging zone). Default: the normal
    /// ones plus GRACEFUL_SHUTDOWN 65535:0 (RFC 8326) and three more AS-path prepends.
    pub depreferred: Option<RouteAttributes>,
}

fn bgp_port() -> u16 {
    anyns_bgp::config::BGP_PORT
}

impl BgpSection {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.announce.is_empty() {
            anyhow::bail!("[bgp] announce lists no prefix");
        }
        if self.peers.is_empty() {
            anyhow::bail!("[bgp] has no [[bgp.peer]]");
        }
        self.router_id()?;
        Ok(())
    }

    fn router_id(&self) -> anyhow::Result<Ipv4Addr> {
        self.router_id
            .or_else(|| {
                self.announce.iter().find_map(|p| match p.addr() {
                    IpAddr::V4(a) => Some(a),
                    IpAddr::V6(_) => None,
                })
            })
            .ok_or_else(|| {
                anyhow::anyhow!("[bgp] router_id is needed when no IPv4 prefix is announced")
            })
    }

    pub fn speaker_config(&self) -> anyhow::Result<SpeakerConfig> {
        Ok(SpeakerConfig {
            local_asn: self.local_asn,
            router_id: self.router_id()?,
            listen_port: self.listen_port,
            graceful_restart: self.graceful_restart,
            peers: self.peers.clone(),
        })
    }

    fn depreferred(&self) -> RouteAttributes {
        self.depreferred.clone().unwrap_or_else(|| {
            let mut attributes = self.attributes.clone();
            if !attributes
                .communities
                .contains(&Community::GRACEFUL_SHUTDOWN)
            {
                attributes.communities.push(Community::GRACEFUL_SHUTDOWN);
            }
            attributes.as_path_prepend = attributes
                .as_path_prepend
                .saturating_add(DEPREFERRED_PREPEND);
            attributes
        })
    }

    /// The routes to carry for an intent.
    pub fn routes_for(&self, intent: &Intent) -> Routes {
        let attributes = match intent {
            Intent::Announce => self.attributes.clone(),
            Intent::AnnounceDepreferred { .. } => self.depreferred(),
            Intent::Withdraw { .. } => return Routes::new(),
        };
        self.announce
            .iter()
            .map(|p| (p.trunc(), attributes.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyns_health::{DeprefReason, WithdrawReason};

    fn section() -> BgpSection {
        toml::from_str(
            r#"
            local_asn = 65000
            announce = ["192.0.2.53/32", "2001:db8:53::53/128"]
            attributes = { med = 10, communities = ["64512:53"] }
            [[peer]]
            address = "198.51.100.1"
            remote_asn = 65001
            "#,
        )
        .unwrap()
    }

    #[test]
    fn intent_maps_to_routes_rfc8326_graceful_shutdown_when_depreferred() {
        let bgp = section();
        bgp.validate().unwrap();
        assert_eq!(
            bgp.speaker_config().unwrap().router_id,
            Ipv4Addr::new(192, 0, 2, 53)
        );
        let normal = bgp.routes_for(&Intent::Announce);
        assert_eq!(normal.len(), 2);
        assert!(
            normal
                .values()
                .all(|a| a.med == Some(10) && a.as_path_prepend == 0)
        );
        let depref = bgp.routes_for(&Intent::AnnounceDepreferred {
            reason: DeprefReason::Maintenance,
        });
        let a = depref.values().next().unwrap();
        assert!(a.communities.contains(&Community::GRACEFUL_SHUTDOWN));
        assert!(a.communities.contains(&"64512:53".parse().unwrap()));
        assert_eq!(a.as_path_prepend, 3);
        assert!(
            bgp.routes_for(&Intent::Withdraw {
                reason: WithdrawReason::HoldDown
            })
            .is_empty()
        );
    }

    #[test]
    fn a_section_without_peers_or_prefixes_is_refused() {
        let mut bgp = section();
        bgp.peers.clear();
        assert!(bgp.validate().unwrap_err().to_string().contains("bgp.peer"));
        let mut bgp = section();
        bgp.announce.clear();
        assert!(bgp.validate().is_err());
    }
}
