//! The node configuration: a versioned TOML file (DESIGN decision 6), merged with command-line
//! overrides and validated into a [`NodeConfig`] before anything starts.

mod transfers;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use anyns_health::HealthConfig;
use toml::Spanned;

use crate::routing::BgpSection;
use anyns_wire::Name;
use serde::Deserialize;

pub use transfers::{
    AclEntrySection, CatalogConfig, KeySection, PrimarySettings, SecondarySource, TransferSettings,
};
use transfers::{CatalogSection, Locator, TransferSection};

/// The config file format version this build reads.
const CONFIG_VERSION: u32 = 1;

/// Where `anyns serve` listens when nothing says otherwise: loopback, a port needing no root.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5300";

/// Where the control API listens unless configured: localhost only (issue: "bound to localhost
/// by default").
pub const DEFAULT_CONTROL: &str = "127.0.0.1:8053";

/// The zone served when no zone is configured at all.
pub const EXAMPLE_ZONE_NAME: &str = "example.test.";
pub const EXAMPLE_ZONE_TEXT: &str = include_str!("../zones/example.test.zone");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    version: u32,
    #[serde(default)]
    node: NodeSection,
    #[serde(default)]
    server: ServerSection,
    #[serde(default, rename = "zone")]
    zones: Vec<Spanned<ZoneSection>>,
    #[serde(default)]
    control: ControlSection,
    #[serde(default)]
    health: HealthConfig,
    bgp: Option<BgpSection>,
    /// TSIG keys (RFC 8945) for transfers and NOTIFY.
    #[serde(default, rename = "key")]
    keys: Vec<Spanned<KeySection>>,
    #[serde(default)]
    transfer: TransferSection,
    /// Catalog zones (RFC 9432) whose members we serve as secondaries.
    #[serde(default, rename = "catalog")]
    catalogs: Vec<CatalogSection>,
    #[serde(default)]
    probe: ProbeSection,
}

/// `[probe]`: what `anyns probe` asks when the command line does not say.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeSection {
    /// The unicast addresses of every site, for `anyns probe consistency`.
    #[serde(default)]
    sites: Vec<SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlSection {
    listen: Option<SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeSection {
    site: Option<String>,
    node: Option<String>,
    version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    #[serde(default)]
    listen: Vec<SocketAddr>,
    threads: Option<usize>,
    max_udp_payload: Option<u16>,
    tcp_idle_timeout_secs: Option<u64>,
    tcp_max_connections: Option<usize>,
}

/// A `[[zone]]`: a primary zone from a master `file`, or a secondary zone from `primaries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneSection {
    name: String,
    file: Option<PathBuf>,
    /// Secondary: the primaries to transfer from (`"192.0.2.1:53"`; port 53 when left out).
    primaries: Option<Vec<Spanned<String>>>,
    /// Secondary: the TSIG key for SOA queries and transfers.
    key: Option<Spanned<String>>,
    /// Secondary: who may NOTIFY us; default: the primaries' addresses.
    notify_from: Option<Vec<Spanned<AclEntrySection>>>,
    /// Secondary: where the transferred zone is kept (default: `[transfer] store`).
    store: Option<PathBuf>,
    /// Secondary: de-prefer after lagging the primary this long (default: `[transfer]`).
    lag_bound_secs: Option<u64>,
    /// Who may transfer the zone from us (default: nobody).
    #[serde(default)]
    allow_transfer: Vec<Spanned<AclEntrySection>>,
    /// Secondaries to NOTIFY when the zone changes.
    #[serde(default)]
    notify: Vec<Spanned<String>>,
    /// The key to sign our NOTIFYs with.
    notify_key: Option<Spanned<String>>,
}

/// Settings given on the command line; each overrides the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub listen: Vec<SocketAddr>,
    pub zones: Vec<String>,
    pub threads: Option<usize>,
    pub site: Option<String>,
    pub node: Option<String>,
    pub control: Option<SocketAddr>,
}

/// Where a zone's data comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ZoneSource {
    File(PathBuf),
    /// The example zone compiled into the binary.
    Embedded,
    /// Transferred from primaries (RFC 5936, RFC 1995), kept on disk.
    Secondary(SecondarySource),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ZoneConfig {
    pub name: Name,
    pub source: ZoneSource,
    /// Transfers out and NOTIFYs (any zone can be a primary for others).
    pub primary: PrimarySettings,
    /// How long the zone may lag its primary before the node de-prefers its route.
    pub lag_bound: Duration,
}

impl ZoneConfig {
    fn file(name: Name, source: ZoneSource, lag_bound: Duration) -> Self {
        ZoneConfig {
            name,
            source,
            primary: PrimarySettings::default(),
            lag_bound,
        }
    }

    pub fn secondary(&self) -> Option<&SecondarySource> {
        match &self.source {
            ZoneSource::Secondary(s) => Some(s),
            ZoneSource::File(_) | ZoneSource::Embedded => None,
        }
    }
}

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub site: String,
    pub node: String,
    pub version: Option<String>,
    pub listen: Vec<SocketAddr>,
    pub threads: usize,
    pub max_udp_payload: u16,
    pub tcp_idle_timeout_secs: u64,
    pub tcp_max_connections: usize,
    /// The control API's address.
    pub control: SocketAddr,
    pub zones: Vec<ZoneConfig>,
    pub health: HealthConfig,
    /// The BGP speaker; without it the node computes its routing intent but announces nothing.
    pub bgp: Option<BgpSection>,
    pub transfer: TransferSettings,
    pub catalogs: Vec<CatalogConfig>,
    /// Site addresses for `anyns probe consistency`.
    pub probe_sites: Vec<SocketAddr>,
}

impl NodeConfig {
    /// Reads the config file (if any), applies the command-line overrides and validates.
    pub fn load(overrides: &Overrides) -> anyhow::Result<NodeConfig> {
        let (file, base, text, path) = match &overrides.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("{}: cannot read config", path.display()))?;
                let file =
                    parse_file(&text).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))?;
                let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                (Some(file), base, text, path.display().to_string())
            }
            None => (None, PathBuf::new(), String::new(), String::new()),
        };
        let file = file.unwrap_or_else(|| FileConfig {
            version: CONFIG_VERSION,
            node: NodeSection::default(),
            server: ServerSection::default(),
            zones: Vec::new(),
            control: ControlSection::default(),
            health: HealthConfig::default(),
            bgp: None,
            keys: Vec::new(),
            transfer: TransferSection::default(),
            catalogs: Vec::new(),
            probe: ProbeSection::default(),
        });
        if let Some(bgp) = &file.bgp {
            bgp.validate()?;
        }
        let loc = Locator { text: &text };
        let in_file = |e: anyhow::Error| anyhow::anyhow!("{path}:{e:#}");
        let transfer =
            transfers::settings(&file.keys, &file.transfer, &base, &loc).map_err(in_file)?;
        let (node_section, server, file_zones) = (file.node, file.server, file.zones);

        let mut zones = Vec::new();
        for z in &file_zones {
            zones.push(zone_config(z, &base, &transfer, &loc).map_err(in_file)?);
        }
        let mut catalogs = Vec::new();
        for c in &file.catalogs {
            let catalog = transfers::catalog(c, &base, &transfer, &loc).map_err(in_file)?;
            if zones.iter().any(|z| z.name == catalog.name)
                || catalogs
                    .iter()
                    .any(|o: &CatalogConfig| o.name == catalog.name)
            {
                bail!(
                    "{path}:{}: catalog {} is configured twice (or also as a zone)",
                    loc.at(c.name.span()),
                    catalog.name
                );
            }
            catalogs.push(catalog);
        }
        for spec in &overrides.zones {
            let (name, path) = spec
                .split_once('=')
                .with_context(|| format!("--zone {spec}: expected NAME=PATH"))?;
            zones.push(ZoneConfig::file(
                parse_zone_name(name)?,
                ZoneSource::File(PathBuf::from(path)),
                transfer.lag_bound,
            ));
        }
        if zones.is_empty() && overrides.config.is_none() {
            zones.push(ZoneConfig::file(
                parse_zone_name(EXAMPLE_ZONE_NAME)?,
                ZoneSource::Embedded,
                transfer.lag_bound,
            ));
        }
        for (i, z) in zones.iter().enumerate() {
            if zones[..i].iter().any(|o| o.name == z.name) {
                bail!("zone {} is configured twice", z.name);
            }
        }

        let mut listen = if overrides.listen.is_empty() {
            server.listen
        } else {
            overrides.listen.clone()
        };
        if listen.is_empty() {
            listen.push(DEFAULT_LISTEN.parse()?);
        }
        for (i, a) in listen.iter().enumerate() {
            if listen[..i].contains(a) {
                bail!("listen address {a} is given twice");
            }
        }

        let threads = match overrides.threads.or(server.threads) {
            None | Some(0) => std::thread::available_parallelism().map_or(1, usize::from),
            Some(n) => n,
        };
        let max_udp_payload = server.max_udp_payload.unwrap_or(1232);
        if max_udp_payload < 512 {
            bail!("max_udp_payload {max_udp_payload} is below 512 (RFC 6891 section 6.2.5)");
        }
        let site = overrides
            .site
            .clone()
            .or(node_section.site)
            .unwrap_or_else(|| "local".to_string());
        let node = overrides
            .node
            .clone()
            .or(node_section.node)
            .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
        for (what, value) in [("site", &site), ("node", &node)] {
            if value.is_empty() || value.len() > 63 || value.chars().any(char::is_whitespace) {
                bail!("{what} {value:?} must be 1 to 63 characters without spaces");
            }
        }
        Ok(NodeConfig {
            site,
            node,
            version: node_section.version,
            listen,
            threads,
            max_udp_payload,
            tcp_idle_timeout_secs: server.tcp_idle_timeout_secs.unwrap_or(10),
            tcp_max_connections: server.tcp_max_connections.unwrap_or(1024),
            control: match overrides.control.or(file.control.listen) {
                Some(addr) => addr,
                None => DEFAULT_CONTROL.parse()?,
            },
            zones,
            health: file.health,
            bgp: file.bgp,
            transfer,
            catalogs,
            probe_sites: file.probe.sites,
        })
    }

    /// The node identity as served in NSID and CHAOS TXT: `node.site`.
    pub fn identity(&self) -> String {
        format!("{}.{}", self.node, self.site)
    }
}

/// Parses the TOML text; errors carry "line:col: message".
fn parse_file(text: &str) -> anyhow::Result<FileConfig> {
    let file: FileConfig = toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
        anyhow::anyhow!("{line}:{col}: {}", e.message())
    })?;
    if file.version != CONFIG_VERSION {
        bail!(
            "1:1: config version {} is not supported (this anyns reads version {CONFIG_VERSION})",
            file.version
        );
    }
    Ok(file)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// Validates one `[[zone]]` table; errors start with "line:col: ".
fn zone_config(
    section: &Spanned<ZoneSection>,
    base: &Path,
    transfer: &TransferSettings,
    loc: &Locator<'_>,
) -> anyhow::Result<ZoneConfig> {
    let at = loc.at(section.span());
    let z = section.get_ref();
    let name = parse_zone_name(&z.name).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
    let secondary_only = [
        ("key", z.key.is_some()),
        ("notify_from", z.notify_from.is_some()),
        ("store", z.store.is_some()),
        ("lag_bound_secs", z.lag_bound_secs.is_some()),
    ];
    let source = match (&z.file, &z.primaries) {
        (Some(file), None) => {
            if let Some((key, _)) = secondary_only.iter().find(|(_, set)| *set) {
                bail!("{at}: zone {name}: `{key}` is for secondary zones (with `primaries`)");
            }
            ZoneSource::File(base.join(file))
        }
        (None, Some(primaries)) => {
            if primaries.is_empty() {
                bail!("{at}: zone {name}: `primaries` is empty");
            }
            ZoneSource::Secondary(transfers::secondary_source(
                primaries,
                z.key.as_ref(),
                z.notify_from.as_deref(),
                z.store.as_deref(),
                base,
                transfer,
                loc,
            )?)
        }
        (Some(_), Some(_)) => bail!(
            "{at}: zone {name}: give either `file` (a primary zone) or `primaries` (a secondary zone), not both"
        ),
        (None, None) => bail!(
            "{at}: zone {name}: give `file` (a primary zone) or `primaries` (a secondary zone)"
        ),
    };
    Ok(ZoneConfig {
        name,
        source,
        primary: transfers::primary_settings(
            &z.allow_transfer,
            &z.notify,
            z.notify_key.as_ref(),
            transfer,
            loc,
        )?,
        lag_bound: z
            .lag_bound_secs
            .map_or(transfer.lag_bound, Duration::from_secs),
    })
}

fn parse_zone_name(text: &str) -> anyhow::Result<Name> {
    Name::from_text(text).map_err(|e| anyhow::anyhow!("zone name {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_example_config_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let config = NodeConfig::load(&Overrides {
                    config: Some(path.clone()),
                    ..Overrides::default()
                })
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                assert!(!config.zones.is_empty());
                seen += 1;
            }
        }
        assert!(seen > 0);
    }

    #[test]
    fn unknown_fields_are_refused_with_line() {
        let err = parse_file("version = 1\n[server]\nlisten = []\nthreds = 2\n").unwrap_err();
        assert!(
            err.to_string().starts_with("4:1: unknown field `threds`"),
            "{err}"
        );
        let err = parse_file("version = 2\n").unwrap_err();
        assert!(
            err.to_string().contains("version 2 is not supported"),
            "{err}"
        );
    }

    #[test]
    fn no_config_serves_the_example_zone_on_loopback() {
        let config = NodeConfig::load(&Overrides::default()).unwrap();
        assert_eq!(config.zones[0].source, ZoneSource::Embedded);
        assert_eq!(config.listen, vec![DEFAULT_LISTEN.parse().unwrap()]);
    }

    #[test]
    fn command_line_zones_and_listen() {
        let config = NodeConfig::load(&Overrides {
            listen: vec!["[::1]:5353".parse().unwrap()],
            zones: vec!["example.com=/tmp/x.zone".into()],
            site: Some("ams".into()),
            node: Some("n1".into()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(config.zones.len(), 1);
        assert_eq!(config.identity(), "n1.ams");
        let err = NodeConfig::load(&Overrides {
            zones: vec!["example.com".into()],
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("NAME=PATH"));
    }

    fn load_text(text: &str) -> anyhow::Result<NodeConfig> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "anyns-config-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.toml");
        std::fs::write(&path, text).unwrap();
        let result = NodeConfig::load(&Overrides {
            config: Some(path),
            ..Overrides::default()
        });
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    const KEY: &str =
        "[[key]]\nname = \"xfr-key\"\nsecret = \"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\"\n";

    #[test]
    fn secondary_primary_and_catalog_zones() {
        let config = load_text(&format!(
            "version = 1\n{KEY}\
             [transfer]\nlag_bound_secs = 60\nexpire_min_secs = 5\n\
             [[zone]]\nname = \"sec.test\"\nprimaries = [\"192.0.2.1\", \"[2001:db8::1]:5353\"]\nkey = \"xfr-key.\"\n\
             [[zone]]\nname = \"pri.test\"\nfile = \"pri.zone\"\n\
             allow_transfer = [\"192.0.2.0/24\", {{ key = \"xfr-key\" }}, {{ address = [\"2001:db8::/32\"], key = \"xfr-key\" }}]\n\
             notify = [\"192.0.2.2:53\"]\nnotify_key = \"xfr-key\"\n\
             [[catalog]]\nname = \"cat.test\"\nprimaries = [\"192.0.2.1:53\"]\n\
             [[catalog.group]]\nname = \"g\"\nprimaries = [\"192.0.2.9\"]\n\
             [probe]\nsites = [\"192.0.2.10:53\"]\n"
        ))
        .unwrap();
        let sec = config.zones[0].secondary().unwrap();
        assert_eq!(sec.primaries.len(), 2);
        assert_eq!(sec.primaries[0].addr, "192.0.2.1:53".parse().unwrap());
        assert_eq!(
            sec.primaries[1].key.as_ref().unwrap().name().to_string(),
            "xfr-key."
        );
        // NOTIFY is accepted from the primaries by default.
        assert!(sec.notify_from.allows("192.0.2.1".parse().unwrap(), None));
        assert!(!sec.notify_from.allows("192.0.2.7".parse().unwrap(), None));
        assert!(sec.store.ends_with("anyns-zones"));
        assert_eq!(config.zones[0].lag_bound, Duration::from_secs(60));
        assert_eq!(config.transfer.timers.expire_min, Duration::from_secs(5));
        let pri = &config.zones[1];
        assert!(pri.secondary().is_none());
        let key = Name::from_text("xfr-key.").unwrap();
        let acl = &pri.primary.allow_transfer;
        assert!(acl.allows("192.0.2.9".parse().unwrap(), None));
        assert!(acl.allows("198.51.100.1".parse().unwrap(), Some(&key)));
        assert!(!acl.allows("198.51.100.1".parse().unwrap(), None));
        assert_eq!(pri.primary.notify[0].addr, "192.0.2.2:53".parse().unwrap());
        assert!(pri.primary.notify[0].key.is_some());
        assert_eq!(config.catalogs[0].groups["g"][0].addr.port(), 53);
        assert_eq!(config.probe_sites.len(), 1);
    }

    #[test]
    fn transfer_errors_name_the_line() {
        let err = |text: &str| format!("{:#}", load_text(text).unwrap_err());
        let e = err(
            "version = 1\n[[zone]]\nname = \"a.test\"\nprimaries = [\"192.0.2.1\"]\nkey = \"nokey\"\n",
        );
        assert!(e.contains(":5:7: TSIG key \"nokey\" is not defined"), "{e}");
        let e = err("version = 1\n[[zone]]\nname = \"a.test\"\n");
        assert!(e.contains(":2:1: zone a.test.: give `file`"), "{e}");
        let e = err("version = 1\n[[zone]]\nname = \"a.test\"\nfile = \"x\"\nkey = \"k\"\n");
        assert!(e.contains("`key` is for secondary zones"), "{e}");
        let e = err(&format!(
            "version = 1\n{KEY}[[zone]]\nname = \"a.test\"\nprimaries = [\"not-an-address\"]\n"
        ));
        assert!(
            e.contains(":7:14: \"not-an-address\" is not an address"),
            "{e}"
        );
        let e = err(
            "version = 1\n[[key]]\nname = \"k\"\nalgorithm = \"hmac-md5\"\nsecret = \"c2VjcmV0\"\n",
        );
        assert!(e.contains(":2:1: TSIG key k: unknown algorithm"), "{e}");
        let e = err(
            "version = 1\n[[zone]]\nname = \"a.test\"\nfile = \"x\"\nallow_transfer = [\"300.1.2.3\"]\n",
        );
        assert!(
            e.contains(":5:19: \"300.1.2.3\" is not an address or prefix"),
            "{e}"
        );
    }
}
