//! The `[health]` section of the node config, its defaults and why.
//!
//! The targets: move traffic away in well under a second when the service breaks, never on one
//! lost probe, and come back without flapping.
//!
//! * **DNS self-probe**: every 100 ms, 100 ms timeout, `fall = 3`, `rise = 5`. The time to
//!   withdraw is at most `fall × interval + timeout` = 400 ms (then the router's own update),
//!   and it takes three lost answers in a row: one or two lost probes never withdraw. Our
//!   own answer on loopback takes microseconds, so a 100 ms timeout only fires on a real stall.
//!   Coming back needs five clean answers in a row (500 ms), then the hold-down.
//! * **Hold-down**: 2 s after a withdraw, doubling (4, 8, 16 s …) for each re-announcement that
//!   failed again within 60 s, capped at 120 s. Announcing again right after a withdraw would
//!   swing traffic back into a node that has not proven stable, and routers that pace updates
//!   (MinRouteAdvertisementInterval, RFC 4271 section 9.2.1.1) may hold it back anyway; 2 s lets
//!   the routers settle, and is short enough that a one-off fault costs little.
//! * **Flap budget**: 10 health-caused route changes per hour (five withdraw/announce cycles).
//!   Route-flap damping (RFC 2439) commonly adds a penalty of 1000 per flap, and RFC 7196
//!   recommends suppressing at 6000 or more: five withdrawals stay below that even with no
//!   decay, so a router that damps never suppresses our prefix for an hour because of us. Exhausted, the node stays withdrawn — the safe state of
//!   anycast, where other sites take the traffic — and says so in its status.
//! * **Drain**: de-prefer 5 s (RFC 8326 graceful shutdown: routers re-select and propagate
//!   within seconds), then withdraw and wait for 2 s without a query, at most 30 s.
//! * **Command probes**: every 1 s, 500 ms timeout, `fall = 2`, `rise = 3`: forking a process ten
//!   times a second is waste, and operator checks watch slower things than the data plane.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use anyns_wire::Name;
use serde::Deserialize;

use crate::command_probe::CommandProbe;
use crate::dns_probe::DnsProbe;
use crate::drain::DrainTimers;
use crate::error::ConfigError;
use crate::node::HealthPolicy;
use crate::probe::ProbeSpec;
use crate::runner::{Probe, ProbeCheck};

/// The name of the DNS self-probe in status and logs.
pub const DNS_PROBE_NAME: &str = "dns";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    pub hold_down_ms: u64,
    pub hold_down_max_ms: u64,
    pub stable_after_ms: u64,
    /// 0 turns the budget off; 1 is refused (it would never allow a re-announce).
    pub flap_budget_per_hour: u32,
    pub dns_probe: DnsProbeConfig,
    #[serde(rename = "command_probe")]
    pub command_probes: Vec<CommandProbeConfig>,
    pub drain: DrainConfig,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            hold_down_ms: 2_000,
            hold_down_max_ms: 120_000,
            stable_after_ms: 60_000,
            flap_budget_per_hour: 10,
            dns_probe: DnsProbeConfig::default(),
            command_probes: Vec::new(),
            drain: DrainConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsProbeConfig {
    pub enabled: bool,
    /// Where to ask; absent: the address the binary passes (the VIP, or the first listen
    /// address).
    pub target: Option<SocketAddr>,
    /// Which zones' SOA to ask; absent: every served zone.
    pub zones: Option<Vec<String>>,
    pub interval_ms: NonZeroU64,
    pub timeout_ms: NonZeroU64,
    pub rise: NonZeroU32,
    pub fall: NonZeroU32,
}

impl Default for DnsProbeConfig {
    fn default() -> Self {
        DnsProbeConfig {
            enabled: true,
            target: None,
            zones: None,
            interval_ms: NonZeroU64::new(100).unwrap_or(NonZeroU64::MIN),
            timeout_ms: NonZeroU64::new(100).unwrap_or(NonZeroU64::MIN),
            rise: NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
            fall: NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandProbeConfig {
    pub name: String,
    /// Program and arguments, run without a shell.
    pub command: Vec<String>,
    #[serde(default = "command_interval")]
    pub interval_ms: NonZeroU64,
    #[serde(default = "command_timeout")]
    pub timeout_ms: NonZeroU64,
    #[serde(default = "command_rise")]
    pub rise: NonZeroU32,
    #[serde(default = "command_fall")]
    pub fall: NonZeroU32,
}

fn command_interval() -> NonZeroU64 {
    NonZeroU64::new(1_000).unwrap_or(NonZeroU64::MIN)
}
fn command_timeout() -> NonZeroU64 {
    NonZeroU64::new(500).unwrap_or(NonZeroU64::MIN)
}
fn command_rise() -> NonZeroU32 {
    NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN)
}
fn command_fall() -> NonZeroU32 {
    NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN)
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrainConfig {
    pub deprefer_ms: u64,
    pub quiet_ms: u64,
    pub max_wait_ms: u64,
}

impl Default for DrainConfig {
    fn default() -> Self {
        DrainConfig {
            deprefer_ms: 5_000,
            quiet_ms: 2_000,
            max_wait_ms: 30_000,
        }
    }
}

/// What [`HealthConfig::build`] makes: the machine's policy and the probes to run.
#[derive(Debug, Clone)]
pub struct HealthSetup {
    pub policy: HealthPolicy,
    pub probes: Vec<Probe>,
}

impl HealthConfig {
    pub fn policy(&self) -> Result<HealthPolicy, ConfigError> {
        if self.hold_down_max_ms < self.hold_down_ms {
            return Err(ConfigError::HoldDownMaxBelowBase);
        }
        if self.flap_budget_per_hour == 1 {
            return Err(ConfigError::FlapBudgetOfOne);
        }
        Ok(HealthPolicy {
            hold_down: Duration::from_millis(self.hold_down_ms),
            hold_down_max: Duration::from_millis(self.hold_down_max_ms),
            stable_after: Duration::from_millis(self.stable_after_ms),
            flap_budget_per_hour: self.flap_budget_per_hour,
            drain: DrainTimers {
                deprefer: Duration::from_millis(self.drain.deprefer_ms),
                quiet: Duration::from_millis(self.drain.quiet_ms),
                max_wait: Duration::from_millis(self.drain.max_wait_ms),
            },
        })
    }

    /// Validates into runtime values. `default_target` is where the DNS probe asks unless the
    /// config says otherwise (normally the VIP); `served_zones` are the zones it asks by default.
    pub fn build(
        &self,
        default_target: SocketAddr,
        served_zones: &[Name],
    ) -> Result<HealthSetup, ConfigError> {
        let policy = self.policy()?;
        let mut probes = Vec::new();
        let dns = &self.dns_probe;
        if dns.enabled {
            let zones = match &dns.zones {
                Some(names) => names
                    .iter()
                    .map(|z| {
                        Name::from_text(z).map_err(|error| ConfigError::BadZoneName {
                            zone: z.clone(),
                            error,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                None => served_zones.to_vec(),
            };
            probes.push(Probe {
                spec: ProbeSpec::new(
                    DNS_PROBE_NAME,
                    Duration::from_millis(dns.interval_ms.get()),
                    Duration::from_millis(dns.timeout_ms.get()),
                    dns.rise,
                    dns.fall,
                )?,
                check: ProbeCheck::Dns(DnsProbe::new(dns.target.unwrap_or(default_target), zones)?),
            });
        }
        for c in &self.command_probes {
            if probes.iter().any(|p| p.spec.name() == c.name) {
                return Err(ConfigError::DuplicateProbe {
                    probe: c.name.clone(),
                });
            }
            probes.push(Probe {
                spec: ProbeSpec::new(
                    c.name.clone(),
                    Duration::from_millis(c.interval_ms.get()),
                    Duration::from_millis(c.timeout_ms.get()),
                    c.rise,
                    c.fall,
                )?,
                check: ProbeCheck::Command(CommandProbe::new(&c.name, &c.command)?),
            });
        }
        Ok(HealthSetup { policy, probes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_section_gives_the_documented_defaults() {
        let c: HealthConfig = toml::from_str("").unwrap();
        assert_eq!(c, HealthConfig::default());
        let vip: SocketAddr = "192.0.2.53:53".parse().unwrap();
        let zone = Name::from_text("example.test.").unwrap();
        let setup = c.build(vip, std::slice::from_ref(&zone)).unwrap();
        let dns = &setup.probes[0];
        assert_eq!(dns.spec.name(), "dns");
        // Withdraw within well under a second, never on one lost probe.
        assert_eq!(dns.spec.time_to_down(), Duration::from_millis(400));
        assert!(dns.spec.fall() >= 2);
        match &dns.check {
            ProbeCheck::Dns(d) => {
                assert_eq!(d.target(), vip);
                assert_eq!(d.zones(), [zone]);
            }
            ProbeCheck::Command(_) => panic!("the first probe is the DNS probe"),
        }
        assert_eq!(setup.policy.hold_down, Duration::from_secs(2));
        assert_eq!(setup.policy.flap_budget_per_hour, 10);
        assert_eq!(setup.policy.drain.deprefer, Duration::from_secs(5));
    }

    #[test]
    fn full_section_parses() {
        let c: HealthConfig = toml::from_str(
            r#"
            hold_down_ms = 1000
            hold_down_max_ms = 60000
            stable_after_ms = 30000
            flap_budget_per_hour = 0
            [dns_probe]
            target = "[2001:db8::53]:53"
            zones = ["example.test."]
            interval_ms = 200
            timeout_ms = 150
            rise = 3
            fall = 2
            [[command_probe]]
            name = "bird"
            command = ["birdc", "show", "status"]
            [drain]
            deprefer_ms = 3000
            quiet_ms = 1000
            max_wait_ms = 10000
            "#,
        )
        .unwrap();
        let setup = c.build("127.0.0.1:53".parse().unwrap(), &[]).unwrap();
        assert_eq!(setup.probes.len(), 2);
        assert_eq!(setup.probes[1].spec.interval(), Duration::from_secs(1));
        assert_eq!(setup.probes[1].spec.fall(), 2);
    }

    #[test]
    fn invalid_values_are_refused() {
        assert!(toml::from_str::<HealthConfig>("bogus = 1").is_err());
        assert!(toml::from_str::<HealthConfig>("[dns_probe]\ninterval_ms = 0").is_err());
        assert!(toml::from_str::<HealthConfig>("[dns_probe]\nfall = 0").is_err());
        let one: HealthConfig = toml::from_str("flap_budget_per_hour = 1").unwrap();
        assert_eq!(one.policy(), Err(ConfigError::FlapBudgetOfOne));
        let empty: HealthConfig =
            toml::from_str("[[command_probe]]\nname = \"x\"\ncommand = []").unwrap();
        assert!(matches!(
            empty.build("127.0.0.1:53".parse().unwrap(), &[Name::root()]),
            Err(ConfigError::EmptyCommand { .. })
        ));
        let no_zones = HealthConfig::default();
        assert_eq!(
            no_zones.build("127.0.0.1:53".parse().unwrap(), &[]).err(),
            Some(ConfigError::NoZones)
        );
    }
}
