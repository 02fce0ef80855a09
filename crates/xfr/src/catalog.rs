//! Catalog zones as a consumer (RFC 9432): the member zones a catalog lists, with their
//! properties, and what changed between two versions of the catalog.
//!
//! A catalog is an ordinary zone transferred like any other; this turns its snapshot into the
//! set of zones to be secondary for.

use std::collections::{BTreeMap, HashMap};

use anyns_wire::{Name, Rtype};
use anyns_zone::Zone;

use crate::secondary::{PrimaryServer, SecondaryConfig};

/// The only schema version we understand (RFC 9432 section 4.2.1).
pub const CATALOG_VERSION: &str = "2";

/// One member zone (RFC 9432 section 4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The unique-ID label under `zones.` that names this member.
    pub unique_id: Vec<u8>,
    /// `group` properties (RFC 9432 section 4.4.2): which configuration applies.
    pub groups: Vec<String>,
    /// `coo` property (RFC 9432 section 4.4.1): the catalog it is moving to.
    pub change_of_ownership: Option<Name>,
}

/// A parsed catalog zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    pub name: Name,
    pub members: BTreeMap<Name, Member>,
    /// Entries that were ignored, and why.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog {0}: no version property (version TXT \"2\", RFC 9432 section 4.2.1)")]
    NoVersion(Name),
    #[error("catalog {catalog}: schema version {version:?} is not supported (only \"2\")")]
    Version { catalog: Name, version: String },
}

/// A member property record: (unique ID, property label, type, RDATA).
type Property = (Vec<u8>, Vec<u8>, Rtype, Vec<u8>);

/// The character-strings of TXT RDATA (RFC 1035 section 3.3.14).
fn txt_strings(rdata: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = rdata;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        out.push(String::from_utf8_lossy(&tail[..len]).into_owned());
        rest = &tail[len..];
    }
    out
}

/// `name` relative to `base` as a list of labels, first label first; `None` if not below it.
fn labels_below<'a>(name: &'a Name, base: &Name) -> Option<Vec<&'a [u8]>> {
    if !name.ends_with(base) {
        return None;
    }
    let wire = name.as_wire();
    let cut = wire.len() - base.len();
    let mut labels = Vec::new();
    let mut pos = 0;
    while pos < cut {
        let len = usize::from(wire[pos]);
        labels.push(&wire[pos + 1..pos + 1 + len]);
        pos += 1 + len;
    }
    Some(labels)
}

impl Catalog {
    /// Reads a catalog zone snapshot (RFC 9432 section 4).
    pub fn parse(zone: &Zone) -> Result<Catalog, CatalogError> {
        let catalog = zone.origin().clone();
        let version_name =
            Name::from_wire(&[b"\x07version".as_slice(), catalog.as_wire()].concat())
                .map_err(|_| CatalogError::NoVersion(catalog.clone()))?;
        let versions: Vec<String> = zone
            .node(version_name.as_wire())
            .and_then(|n| n.rrset(Rtype::TXT))
            .map(|set| set.rdatas().flat_map(txt_strings).collect())
            .unwrap_or_default();
        match versions.as_slice() {
            [] => return Err(CatalogError::NoVersion(catalog)),
            [v] if v == CATALOG_VERSION => {}
            _ => {
                return Err(CatalogError::Version {
                    catalog,
                    version: versions.join(" "),
                });
            }
        }
        let zones_name = Name::from_wire(&[b"\x05zones".as_slice(), catalog.as_wire()].concat())
            .map_err(|_| CatalogError::NoVersion(catalog.clone()))?;
        let mut warnings = Vec::new();
        let mut by_id: BTreeMap<Vec<u8>, (Name, Member)> = BTreeMap::new();
        let mut properties: Vec<Property> = Vec::new();
        for (owner, node) in zone.nodes() {
            let Some(labels) = labels_below(owner, &zones_name) else {
                continue;
            };
            for rrset in node.rrsets() {
                match labels.as_slice() {
                    [id] if rrset.rtype == Rtype::PTR => {
                        let targets: Vec<&[u8]> = rrset.rdatas().collect();
                        let [target] = targets.as_slice() else {
                            // RFC 9432 section 4.1: exactly one PTR per member node.
                            warnings.push(format!(
                                "{owner}: {} PTR records, member ignored",
                                targets.len()
                            ));
                            continue;
                        };
                        match Name::from_wire(target) {
                            Ok(member) => {
                                by_id.insert(
                                    id.to_vec(),
                                    (
                                        member,
                                        Member {
                                            unique_id: id.to_vec(),
                                            groups: Vec::new(),
                                            change_of_ownership: None,
                                        },
                                    ),
                                );
                            }
                            Err(_) => warnings.push(format!("{owner}: bad member name")),
                        }
                    }
                    [property, id] => {
                        for rdata in rrset.rdatas() {
                            properties.push((
                                id.to_vec(),
                                property.to_vec(),
                                rrset.rtype,
                                rdata.to_vec(),
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
        for (id, property, rtype, rdata) in properties {
            let Some((_, member)) = by_id.get_mut(&id) else {
                continue;
            };
            match (property.to_ascii_lowercase().as_slice(), rtype) {
                (b"group", Rtype::TXT) => member.groups.extend(txt_strings(&rdata)),
                (b"coo", Rtype::PTR) => member.change_of_ownership = Name::from_wire(&rdata).ok(),
                // Unknown properties are ignored (RFC 9432 section 4.4).
                _ => {}
            }
        }
        let mut members = BTreeMap::new();
        let mut seen: HashMap<Name, usize> = HashMap::new();
        for (_, (name, _)) in by_id.iter() {
            *seen.entry(name.clone()).or_default() += 1;
        }
        for (_, (name, member)) in by_id {
            if seen.get(&name).copied().unwrap_or(0) > 1 {
                // RFC 9432 section 4.1: a member zone listed under two unique IDs is ambiguous.
                warnings.push(format!("{name} is listed more than once, ignored"));
                continue;
            }
            members.insert(name, member);
        }
        Ok(Catalog {
            name: catalog,
            members,
            warnings,
        })
    }

    /// Secondary configurations for the members: the primaries of the member's first group
    /// found in `groups`, else `default_primaries`.
    pub fn secondary_configs(
        &self,
        default_primaries: &[PrimaryServer],
        groups: &HashMap<String, Vec<PrimaryServer>>,
    ) -> Vec<SecondaryConfig> {
        self.members
            .iter()
            .map(|(zone, m)| {
                let primaries = m
                    .groups
                    .iter()
                    .find_map(|g| groups.get(g))
                    .cloned()
                    .unwrap_or_else(|| default_primaries.to_vec());
                SecondaryConfig::new(zone.clone(), primaries)
            })
            .collect()
    }
}

/// What changed between two versions of a catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogChanges {
    pub added: Vec<Name>,
    pub removed: Vec<Name>,
    /// Same zone, new unique ID: a zone reset (RFC 9432 section 5.6), drop data and transfer anew.
    pub reset: Vec<Name>,
    /// Properties (groups) changed.
    pub changed: Vec<Name>,
}

pub fn catalog_changes(old: &Catalog, new: &Catalog) -> CatalogChanges {
    let mut c = CatalogChanges::default();
    for (name, m) in &new.members {
        match old.members.get(name) {
            None => c.added.push(name.clone()),
            Some(o) if o.unique_id != m.unique_id => c.reset.push(name.clone()),
            Some(o) if o != m => c.changed.push(name.clone()),
            Some(_) => {}
        }
    }
    c.removed = old
        .members
        .keys()
        .filter(|n| !new.members.contains_key(*n))
        .cloned()
        .collect();
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyns_zone::load_zone_text;

    fn cat(body: &str) -> Result<Catalog, CatalogError> {
        let origin = Name::from_text("catalog.invalid").unwrap();
        let text =
            format!("$TTL 0\n@ SOA invalid. invalid. 1 3600 600 86400 0\n@ NS invalid.\n{body}");
        let zone = load_zone_text(&origin, "cat", &text).unwrap().zone;
        Catalog::parse(&zone)
    }

    fn n(s: &str) -> Name {
        Name::from_text(s).unwrap()
    }

    #[test]
    fn rfc9432_4_members_and_properties() {
        let c = cat("version TXT \"2\"\n\
             a1.zones PTR example.com.\n\
             group.a1.zones TXT \"tier-1\"\n\
             b2.zones PTR example.net.\n\
             coo.b2.zones PTR other-catalog.invalid.\n\
             ext.b2.zones TXT \"ignored\"\n\
             d1.zones PTR dup.test.\nd2.zones PTR dup.test.\n")
        .unwrap();
        assert_eq!(c.members.len(), 2, "{c:?}");
        let a = &c.members[&n("example.com")];
        assert_eq!(a.unique_id, b"a1");
        assert_eq!(a.groups, vec!["tier-1".to_string()]);
        let b = &c.members[&n("example.net")];
        assert_eq!(b.change_of_ownership, Some(n("other-catalog.invalid")));
        assert!(
            c.warnings.iter().any(|w| w.contains("dup.test")),
            "{:?}",
            c.warnings
        );
        let p = |port| PrimaryServer {
            addr: std::net::SocketAddr::from(([192, 0, 2, 1], port)),
            key: None,
        };
        let groups = HashMap::from([("tier-1".to_string(), vec![p(5301)])]);
        let configs = c.secondary_configs(&[p(53)], &groups);
        assert_eq!(configs[0].zone, n("example.com"));
        assert_eq!(configs[0].primaries, vec![p(5301)]);
        assert_eq!(configs[1].primaries, vec![p(53)]);
    }

    #[test]
    fn rfc9432_4_2_1_version_required() {
        assert_eq!(
            cat("a.zones PTR example.com.\n"),
            Err(CatalogError::NoVersion(n("catalog.invalid")))
        );
        assert!(matches!(
            cat("version TXT \"1\"\n"),
            Err(CatalogError::Version { .. })
        ));
    }

    #[test]
    fn rfc9432_5_changes_between_versions() {
        let old = cat("version TXT \"2\"\na.zones PTR one.test.\nb.zones PTR two.test.\nc.zones PTR three.test.\n").unwrap();
        let new = cat("version TXT \"2\"\na.zones PTR one.test.\nb2.zones PTR two.test.\nd.zones PTR four.test.\ngroup.a.zones TXT \"g\"\n").unwrap();
        let ch = catalog_changes(&old, &new);
        assert_eq!(ch.added, vec![n("four.test")]);
        assert_eq!(ch.removed, vec![n("three.test")]);
        assert_eq!(ch.reset, vec![n("two.test")]);
        assert_eq!(ch.changed, vec![n("one.test")]);
    }
}
