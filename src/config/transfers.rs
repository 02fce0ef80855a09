//! The zone-transfer parts of the node config: TSIG keys, secondary zones (`primaries`),
//! transfer and NOTIFY settings of primary zones, catalog zones, and the node-wide
//! `[transfer]` defaults. Semantic errors name the line and column of the value at fault.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyns_wire::Name;
use anyns_xfr::acl::{Acl, AclEntry};
use anyns_xfr::driver::NotifyTarget;
use anyns_xfr::secondary::{PrimaryServer, TimerBounds};
use anyns_xfr::tsig::{KeyRing, TsigKey};
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

/// How long a secondary zone may lag its primary before the node announces de-preferred.
pub const DEFAULT_LAG_BOUND_SECS: u64 = 300;
/// Where transferred zones are kept, relative to the config file's directory.
pub const DEFAULT_STORE: &str = "anyns-zones";
/// Differences kept per zone for IXFR.
pub const DEFAULT_JOURNAL_STEPS: usize = 32;

/// `[[key]]`: a TSIG key (RFC 8945).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySection {
    pub name: String,
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    pub secret: String,
}

fn default_algorithm() -> String {
    "hmac-sha256".to_string()
}

/// `[transfer]`: node-wide defaults for zone transfers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSection {
    /// Directory for transferred zones; relative to the config file.
    pub store: Option<PathBuf>,
    /// De-prefer when a secondary zone has been behind its primary for longer than this.
    pub lag_bound_secs: Option<u64>,
    /// Differences kept per zone to answer IXFR.
    pub journal_steps: Option<usize>,
    /// Bounds on the SOA timers of secondary zones (the SOA's own values are used within them).
    pub refresh_min_secs: Option<u64>,
    pub retry_min_secs: Option<u64>,
    pub expire_min_secs: Option<u64>,
    /// Retry interval while a secondary zone has never been transferred.
    pub initial_retry_secs: Option<u64>,
}

/// One access-list entry: an address or prefix as a string, or a rule with addresses and/or a
/// key (`{ address = ["192.0.2.0/24"], key = "xfr-key" }`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AclEntrySection {
    Address(String),
    Rule(AclRule),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    #[serde(default)]
    pub address: Vec<String>,
    pub key: Option<String>,
}

/// `[[catalog]]`: a catalog zone (RFC 9432) we consume.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSection {
    pub name: Spanned<String>,
    pub primaries: Vec<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub notify_from: Option<Vec<Spanned<AclEntrySection>>>,
    pub store: Option<PathBuf>,
    /// Member zones of these groups (RFC 9432 section 4.4.2) transfer from other primaries.
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSection {
    pub name: String,
    pub primaries: Vec<Spanned<String>>,
    pub key: Option<Spanned<String>>,
}

/// Node-wide transfer settings, validated.
#[derive(Debug, Clone)]
pub struct TransferSettings {
    pub keys: KeyRing,
    /// The `[[key]]` sections as written, to tell whether a reload changed a secret.
    pub key_sections: Vec<KeySection>,
    pub store: PathBuf,
    pub lag_bound: Duration,
    pub journal_steps: usize,
    pub timers: TimerBounds,
}

impl Default for TransferSettings {
    fn default() -> Self {
        TransferSettings {
            keys: KeyRing::default(),
            key_sections: Vec::new(),
            store: PathBuf::from(DEFAULT_STORE),
            lag_bound: Duration::from_secs(DEFAULT_LAG_BOUND_SECS),
            journal_steps: DEFAULT_JOURNAL_STEPS,
            timers: TimerBounds::default(),
        }
    }
}

/// Where a secondary zone comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct SecondarySource {
    pub primaries: Vec<PrimaryServer>,
    /// Who may NOTIFY us about the zone.
    pub notify_from: Acl,
    pub store: PathBuf,
}

/// What a zone serves to others: transfers and NOTIFYs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrimarySettings {
    pub allow_transfer: Acl,
    pub notify: Vec<NotifyTarget>,
}

/// A validated `[[catalog]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogConfig {
    pub name: Name,
    pub source: SecondarySource,
    /// Primaries of member zones by group name; members of other groups use the catalog's.
    pub groups: HashMap<String, Vec<PrimaryServer>>,
}

/// Turns spans into "line:col: " prefixes for semantic errors.
pub struct Locator<'a> {
    pub text: &'a str,
}

impl Locator<'_> {
    pub fn at(&self, span: Range<usize>) -> String {
        let (line, col) = super::line_col(self.text, span.start);
        format!("{line}:{col}")
    }
}

pub fn settings(
    keys: &[Spanned<KeySection>],
    section: &TransferSection,
    base: &Path,
    loc: &Locator<'_>,
) -> anyhow::Result<TransferSettings> {
    let mut ring = KeyRing::default();
    let mut sections = Vec::new();
    for k in keys {
        let at = loc.at(k.span());
        let k = k.get_ref();
        let key = TsigKey::new(&k.name, &k.algorithm, &k.secret)
            .map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        if ring.get(key.name()).is_some() {
            anyhow::bail!("{at}: TSIG key {} is defined twice", key.name());
        }
        ring.insert(key);
        sections.push(k.clone());
    }
    let mut timers = TimerBounds::default();
    let secs = Duration::from_secs;
    if let Some(s) = section.refresh_min_secs {
        timers.refresh_min = secs(s);
    }
    if let Some(s) = section.retry_min_secs {
        timers.retry_min = secs(s);
    }
    if let Some(s) = section.expire_min_secs {
        timers.expire_min = secs(s);
    }
    if let Some(s) = section.initial_retry_secs {
        timers.initial_retry = secs(s.max(1));
    }
    Ok(TransferSettings {
        keys: ring,
        key_sections: sections,
        store: base.join(section.store.as_deref().unwrap_or(Path::new(DEFAULT_STORE))),
        lag_bound: secs(section.lag_bound_secs.unwrap_or(DEFAULT_LAG_BOUND_SECS)),
        journal_steps: section.journal_steps.unwrap_or(DEFAULT_JOURNAL_STEPS),
        timers,
    })
}

fn key_by_name(
    settings: &TransferSettings,
    name: &Spanned<String>,
    loc: &Locator<'_>,
) -> anyhow::Result<TsigKey> {
    let at = loc.at(name.span());
    let parsed = Name::from_text(name.get_ref())
        .map_err(|e| anyhow::anyhow!("{at}: key name {:?}: {e}", name.get_ref()))?;
    settings.keys.get(&parsed).cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "{at}: TSIG key {:?} is not defined (add a [[key]] with this name)",
            name.get_ref()
        )
    })
}

/// `"192.0.2.1:53"`, `"[2001:db8::1]:53"`, or an address alone (port 53).
fn parse_server(text: &Spanned<String>, loc: &Locator<'_>) -> anyhow::Result<SocketAddr> {
    let t = text.get_ref().trim();
    if let Ok(addr) = t.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    anyhow::bail!(
        "{}: {t:?} is not an address (\"192.0.2.1\", \"192.0.2.1:53\" or \"[2001:db8::1]:53\")",
        loc.at(text.span())
    )
}

fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

pub fn primaries(
    list: &[Spanned<String>],
    key: Option<&Spanned<String>>,
    settings: &TransferSettings,
    loc: &Locator<'_>,
) -> anyhow::Result<Vec<PrimaryServer>> {
    let key = key.map(|k| key_by_name(settings, k, loc)).transpose()?;
    list.iter()
        .map(|p| {
            Ok(PrimaryServer {
                addr: parse_server(p, loc)?,
                key: key.clone(),
            })
        })
        .collect()
}

pub fn acl(
    entries: &[Spanned<AclEntrySection>],
    settings: &TransferSettings,
    loc: &Locator<'_>,
) -> anyhow::Result<Acl> {
    let mut out = Vec::new();
    for e in entries {
        let at = loc.at(e.span());
        let bad_net =
            |t: &str| anyhow::anyhow!("{at}: {t:?} is not an address or prefix (\"192.0.2.0/24\")");
        match e.get_ref() {
            AclEntrySection::Address(t) => out.push(AclEntry {
                networks: vec![parse_net(t.trim()).ok_or_else(|| bad_net(t))?],
                key: None,
            }),
            AclEntrySection::Rule(rule) => {
                let networks = rule
                    .address
                    .iter()
                    .map(|t| parse_net(t.trim()).ok_or_else(|| bad_net(t)))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let key = match &rule.key {
                    Some(k) => {
                        let spanned = Spanned::new(e.span(), k.clone());
                        Some(key_by_name(settings, &spanned, loc)?.name().clone())
                    }
                    None => None,
                };
                if networks.is_empty() && key.is_none() {
                    anyhow::bail!(
                        "{at}: an access rule needs `address` or `key` (an empty rule would allow everyone)"
                    );
                }
                out.push(AclEntry { networks, key });
            }
        }
    }
    Ok(Acl::new(out))
}

/// The secondary parts of a zone or catalog table.
pub fn secondary_source(
    primaries_list: &[Spanned<String>],
    key: Option<&Spanned<String>>,
    notify_from: Option<&[Spanned<AclEntrySection>]>,
    store: Option<&Path>,
    base: &Path,
    settings: &TransferSettings,
    loc: &Locator<'_>,
) -> anyhow::Result<SecondarySource> {
    let primaries = primaries(primaries_list, key, settings, loc)?;
    let notify_from = match notify_from {
        Some(entries) => acl(entries, settings, loc)?,
        // RFC 1996 section 3.10 spirit: by default only our primaries may notify us.
        None => Acl::addresses(primaries.iter().map(|p| p.addr.ip())),
    };
    Ok(SecondarySource {
        primaries,
        notify_from,
        store: store.map_or_else(|| settings.store.clone(), |s| base.join(s)),
    })
}

pub fn primary_settings(
    allow_transfer: &[Spanned<AclEntrySection>],
    notify: &[Spanned<String>],
    notify_key: Option<&Spanned<String>>,
    settings: &TransferSettings,
    loc: &Locator<'_>,
) -> anyhow::Result<PrimarySettings> {
    let notify_key = notify_key
        .map(|k| key_by_name(settings, k, loc))
        .transpose()?;
    let notify = notify
        .iter()
        .map(|n| {
            Ok(NotifyTarget {
                addr: parse_server(n, loc)?,
                key: notify_key.clone(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(PrimarySettings {
        allow_transfer: acl(allow_transfer, settings, loc)?,
        notify,
    })
}

pub fn catalog(
    section: &CatalogSection,
    base: &Path,
    settings: &TransferSettings,
    loc: &Locator<'_>,
) -> anyhow::Result<CatalogConfig> {
    let name = Name::from_text(section.name.get_ref()).map_err(|e| {
        anyhow::anyhow!(
            "{}: catalog name {:?}: {e}",
            loc.at(section.name.span()),
            section.name.get_ref()
        )
    })?;
    if section.primaries.is_empty() {
        anyhow::bail!(
            "{}: catalog {name} has no primaries",
            loc.at(section.name.span())
        );
    }
    let source = secondary_source(
        &section.primaries,
        section.key.as_ref(),
        section.notify_from.as_deref(),
        section.store.as_deref(),
        base,
        settings,
        loc,
    )?;
    let mut groups = HashMap::new();
    for g in &section.groups {
        groups.insert(
            g.name.clone(),
            primaries(&g.primaries, g.key.as_ref(), settings, loc)?,
        );
    }
    Ok(CatalogConfig {
        name,
        source,
        groups,
    })
}
