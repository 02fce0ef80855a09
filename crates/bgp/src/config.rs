//! Configuration of the speaker, embeddable in the node's TOML (`deny_unknown_fields`), and the
//! per-route attribute policy that the health crate fills in.
//!
//! Types hold only valid values: a [`HoldTime`] is 0 or at least 3 s (RFC 4271 section 4.2), a
//! [`Community`] is written `ASN:value` and a [`LargeCommunity`] `global:local1:local2`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The well-known BGP port (RFC 4271 section 8.2.1).
pub const BGP_PORT: u16 = 179;

/// The speaker: one local AS and router id, any number of peers.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeakerConfig {
    /// Our AS number; 4-octet ASNs are sent as AS_TRANS in the OPEN's My AS field (RFC 6793).
    pub local_asn: u32,
    /// Our BGP Identifier (RFC 4271 section 4.2; RFC 6286).
    pub router_id: Ipv4Addr,
    /// The TCP port we accept peers' connections on.
    #[serde(default = "default_port")]
    pub listen_port: u16,
    /// Graceful restart (RFC 4724) as the restarting speaker.
    #[serde(default)]
    pub graceful_restart: GracefulRestartConfig,
    /// One session per peer.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
}

/// Graceful restart (RFC 4724): the Restart Time we ask peers to keep our routes after our
/// session drops without a NOTIFICATION (a crash or a restart).
///
/// `preserve_routes` is off by default: then the capability lists no <AFI, SAFI> (RFC 4724
/// section 3), so peers help us restart but keep none of our routes when the session drops
/// (section 4.2). For an anycast node that is what operators want: a node that crashed must
/// lose its traffic at once, and a planned restart drains first. Turn it on only where a
/// restart is known to be faster than the traffic it would blackhole meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GracefulRestartConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Seconds, at most 4095 (a 12-bit field, RFC 4724 section 3).
    #[serde(default = "default_restart_time")]
    pub restart_time: RestartTime,
    /// Ask peers to keep our routes, marked stale, for `restart_time` after a drop.
    #[serde(default)]
    pub preserve_routes: bool,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        GracefulRestartConfig {
            enabled: true,
            restart_time: RestartTime(120),
            preserve_routes: false,
        }
    }
}

/// One peer (a router at the site).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's address; the session's address family follows it.
    pub address: IpAddr,
    /// The peer's AS; equal to `local_asn` makes the session iBGP.
    pub remote_asn: u32,
    /// The port we connect to.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The address we connect from and the listener we accept this peer on.
    #[serde(default)]
    pub local_address: Option<IpAddr>,
    /// Never connect; wait for the peer (RFC 4271 event 4/5, PassiveTcpEstablishment).
    #[serde(default)]
    pub passive: bool,
    /// Our Hold Time; the session uses the smaller of ours and the peer's (RFC 4271 4.2).
    #[serde(default = "default_hold_time")]
    pub hold_time: HoldTime,
    /// Keepalive interval in seconds; default and upper bound a third of the negotiated hold.
    #[serde(default)]
    pub keepalive_time: Option<u16>,
    /// First connect retry / idle hold interval in seconds; doubled per failure.
    #[serde(default = "default_connect_retry")]
    pub connect_retry: u16,
    /// Cap of the doubling, seconds.
    #[serde(default = "default_connect_retry_max")]
    pub connect_retry_max: u16,
    /// TCP-MD5 key (RFC 2385), at most 80 octets.
    #[serde(default)]
    pub password: Option<String>,
    /// NEXT_HOP for IPv4 routes; default the session's local address when it is IPv4.
    #[serde(default)]
    pub next_hop_ipv4: Option<Ipv4Addr>,
    /// MP_REACH_NLRI next hop for IPv6 routes; default the session's local address when it is
    /// IPv6. Required for IPv6 routes over an IPv4 session: an IPv4-mapped next hop is
    /// refused by BIRD 2, so without one the IPv6 routes are not announced on that session.
    #[serde(default)]
    pub next_hop_ipv6: Option<Ipv6Addr>,
}

impl PeerConfig {
    /// A peer with defaults for everything but the address and AS.
    pub fn new(address: IpAddr, remote_asn: u32) -> PeerConfig {
        PeerConfig {
            address,
            remote_asn,
            port: BGP_PORT,
            local_address: None,
            passive: false,
            hold_time: HoldTime(90),
            keepalive_time: None,
            connect_retry: 5,
            connect_retry_max: 120,
            password: None,
            next_hop_ipv4: None,
            next_hop_ipv6: None,
        }
    }
}

fn default_port() -> u16 {
    BGP_PORT
}
fn default_true() -> bool {
    true
}
fn default_restart_time() -> RestartTime {
    RestartTime(120)
}
fn default_hold_time() -> HoldTime {
    HoldTime(90)
}
fn default_connect_retry() -> u16 {
    5
}
fn default_connect_retry_max() -> u16 {
    120
}

/// A BGP Hold Time: zero (no keepalives, no hold timer) or at least 3 seconds (RFC 4271 4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct HoldTime(u16);

impl HoldTime {
    pub fn seconds(self) -> u16 {
        self.0
    }
    pub fn duration(self) -> Duration {
        Duration::from_secs(u64::from(self.0))
    }
}

impl TryFrom<u16> for HoldTime {
    type Error = String;
    fn try_from(value: u16) -> Result<Self, Self::Error> {
        if value == 1 || value == 2 {
            Err(format!(
                "hold time {value} s: must be 0 or at least 3 s (RFC 4271 section 4.2)"
            ))
        } else {
            Ok(HoldTime(value))
        }
    }
}

impl From<HoldTime> for u16 {
    fn from(value: HoldTime) -> u16 {
        value.0
    }
}

/// The graceful restart Restart Time, a 12-bit count of seconds (RFC 4724 section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct RestartTime(u16);

impl RestartTime {
    pub fn seconds(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for RestartTime {
    type Error = String;
    fn try_from(value: u16) -> Result<Self, Self::Error> {
        if value > 4095 {
            Err(format!(
                "restart time {value} s: at most 4095 s (RFC 4724 section 3)"
            ))
        } else {
            Ok(RestartTime(value))
        }
    }
}

impl From<RestartTime> for u16 {
    fn from(value: RestartTime) -> u16 {
        value.0
    }
}

/// The attributes we attach to one originated route. The health policy builds these: a normal
/// announce, or a de-preferred one (higher MED, more prepends, GRACEFUL_SHUTDOWN).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteAttributes {
    /// MULTI_EXIT_DISC (RFC 4271 5.1.4).
    #[serde(default)]
    pub med: Option<u32>,
    /// LOCAL_PREF, sent to internal peers only (RFC 4271 5.1.5); default 100 there.
    #[serde(default)]
    pub local_pref: Option<u32>,
    /// COMMUNITIES (RFC 1997), e.g. GRACEFUL_SHUTDOWN 65535:0 (RFC 8326).
    #[serde(default)]
    pub communities: Vec<Community>,
    /// LARGE_COMMUNITY (RFC 8092).
    #[serde(default)]
    pub large_communities: Vec<LargeCommunity>,
    /// Extra copies of our AS on external sessions; ignored on internal ones, whose AS_PATH is
    /// empty (RFC 4271 5.1.2).
    #[serde(default)]
    pub as_path_prepend: u8,
}

/// A community (RFC 1997): 16 bits of AS, 16 bits of value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Community(pub u32);

impl Community {
    /// GRACEFUL_SHUTDOWN, 65535:0 (RFC 8326).
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    /// NO_EXPORT, 65535:65281 (RFC 1997).
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);

    pub fn new(asn: u16, value: u16) -> Community {
        Community((u32::from(asn) << 16) | u32::from(value))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xFFFF)
    }
}

impl FromStr for Community {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("community {s:?}: expected ASN:value with two 16-bit numbers");
        let (asn, value) = s.split_once(':').ok_or_else(bad)?;
        let asn: u16 = asn.trim().parse().map_err(|_| bad())?;
        let value: u16 = value.trim().parse().map_err(|_| bad())?;
        Ok(Community::new(asn, value))
    }
}

impl TryFrom<String> for Community {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Community> for String {
    fn from(value: Community) -> String {
        value.to_string()
    }
}

/// A large community (RFC 8092): three 32-bit numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct LargeCommunity {
    pub global_admin: u32,
    pub local_data1: u32,
    pub local_data2: u32,
}

impl LargeCommunity {
    pub fn new(global_admin: u32, local_data1: u32, local_data2: u32) -> LargeCommunity {
        LargeCommunity {
            global_admin,
            local_data1,
            local_data2,
        }
    }
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.global_admin, self.local_data1, self.local_data2
        )
    }
}

impl FromStr for LargeCommunity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("large community {s:?}: expected three 32-bit numbers a:b:c");
        let mut parts = s.split(':').map(|p| p.trim().parse::<u32>());
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(a)), Some(Ok(b)), Some(Ok(c)), None) => Ok(LargeCommunity::new(a, b, c)),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for LargeCommunity {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<LargeCommunity> for String {
    fn from(value: LargeCommunity) -> String {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaker_config_parses_from_toml_with_defaults() {
        let text = r#"
            local_asn = 4200000053
            router_id = "192.0.2.1"
            [[peers]]
            address = "192.0.2.254"
            remote_asn = 64512
            password = "s3cret"
            hold_time = 9
            [[peers]]
            address = "2001:db8::1"
            remote_asn = 4200000053
            passive = true
            next_hop_ipv6 = "2001:db8::53"
        "#;
        let config: SpeakerConfig = toml::from_str(text).unwrap();
        assert_eq!(config.listen_port, 179);
        assert!(config.graceful_restart.enabled);
        assert_eq!(config.graceful_restart.restart_time.seconds(), 120);
        assert_eq!(config.peers.len(), 2);
        assert_eq!(config.peers[0].hold_time.seconds(), 9);
        assert_eq!(config.peers[0].port, 179);
        assert!(config.peers[1].passive);
        assert_eq!(config.peers[1].hold_time.seconds(), 90);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let text = "local_asn = 1\nrouter_id = \"192.0.2.1\"\nrouterid = 1\n";
        assert!(toml::from_str::<SpeakerConfig>(text).is_err());
        let text = "med = 1\nmeed = 2\n";
        assert!(toml::from_str::<RouteAttributes>(text).is_err());
    }

    #[test]
    fn rfc4271_4_2_hold_time_of_one_or_two_seconds_is_rejected() {
        assert!(HoldTime::try_from(1).is_err());
        assert!(HoldTime::try_from(2).is_err());
        assert_eq!(HoldTime::try_from(0).unwrap().seconds(), 0);
        assert_eq!(HoldTime::try_from(3).unwrap().seconds(), 3);
        let text = "address = \"192.0.2.2\"\nremote_asn = 1\nhold_time = 2\n";
        assert!(toml::from_str::<PeerConfig>(text).is_err());
    }

    #[test]
    fn rfc4724_3_restart_time_fits_twelve_bits() {
        assert!(RestartTime::try_from(4096).is_err());
        assert!(RestartTime::try_from(4095).is_ok());
    }

    #[test]
    fn communities_parse_and_print() {
        let attributes: RouteAttributes = toml::from_str(
            "med = 10\ncommunities = [\"65535:0\", \"64512:53\"]\nlarge_communities = [\"4200000053:1:2\"]\nas_path_prepend = 2\n",
        )
        .unwrap();
        assert_eq!(attributes.communities[0], Community::GRACEFUL_SHUTDOWN);
        assert_eq!(attributes.communities[1].to_string(), "64512:53");
        assert_eq!(
            attributes.large_communities[0],
            LargeCommunity::new(4_200_000_053, 1, 2)
        );
        assert!("65536:0".parse::<Community>().is_err());
        assert!("1:2".parse::<LargeCommunity>().is_err());
        assert!("1:2:3:4".parse::<LargeCommunity>().is_err());
    }
}
