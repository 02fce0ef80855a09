//! The node configuration: a versioned TOML file (DESIGN decision 6), merged with command-line
//! overrides and validated into a [`NodeConfig`] before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use anyns_health::HealthConfig;

use crate::routing::BgpSection;
use anyns_wire::Name;
use serde::Deserialize;

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
    zones: Vec<ZoneSection>,
    #[serde(default)]
    control: ControlSection,
    #[serde(default)]
    health: HealthConfig,
    bgp: Option<BgpSection>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneSection {
    name: String,
    file: PathBuf,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneSource {
    File(PathBuf),
    /// The example zone compiled into the binary.
    Embedded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneConfig {
    pub name: Name,
    pub source: ZoneSource,
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
}

impl NodeConfig {
    /// Reads the config file (if any), applies the command-line overrides and validates.
    pub fn load(overrides: &Overrides) -> anyhow::Result<NodeConfig> {
        let (file, base) = match &overrides.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("{}: cannot read config", path.display()))?;
                let file =
                    parse_file(&text).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))?;
                let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                (Some(file), base)
            }
            None => (None, PathBuf::new()),
        };
        let file = file.unwrap_or_else(|| FileConfig {
            version: CONFIG_VERSION,
            node: NodeSection::default(),
            server: ServerSection::default(),
            zones: Vec::new(),
            control: ControlSection::default(),
            health: HealthConfig::default(),
            bgp: None,
        });
        if let Some(bgp) = &file.bgp {
            bgp.validate()?;
        }
        let (node_section, server, file_zones) = (file.node, file.server, file.zones);

        let mut zones = Vec::new();
        for z in file_zones {
            let name = parse_zone_name(&z.name)?;
            zones.push(ZoneConfig {
                name,
                source: ZoneSource::File(base.join(z.file)),
            });
        }
        for spec in &overrides.zones {
            let (name, path) = spec
                .split_once('=')
                .with_context(|| format!("--zone {spec}: expected NAME=PATH"))?;
            zones.push(ZoneConfig {
                name: parse_zone_name(name)?,
                source: ZoneSource::File(PathBuf::from(path)),
            });
        }
        if zones.is_empty() && overrides.config.is_none() {
            zones.push(ZoneConfig {
                name: parse_zone_name(EXAMPLE_ZONE_NAME)?,
                source: ZoneSource::Embedded,
            });
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
}
