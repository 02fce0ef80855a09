//! Assembling a zone from records and checking it before it may be served.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use anyns_wire::{Name, Rtype, name};
use rustc_hash::FxHashMap;

use crate::model::{Node, Zone};

/// Where a record came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<Path>,
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One finding about a zone: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Option<Location>,
    pub message: String,
}

impl Diagnostic {
    pub fn new(location: Option<Location>, message: impl Into<String>) -> Self {
        Diagnostic {
            location,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(loc) => write!(f, "{loc}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A zone was refused: every error found, in file order where known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneErrors(pub Vec<Diagnostic>);

impl fmt::Display for ZoneErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ZoneErrors {}

/// A checked zone and the warnings found while checking it.
#[derive(Debug)]
pub struct Built {
    pub zone: Zone,
    pub warnings: Vec<Diagnostic>,
}

/// Collects records for one zone, then checks and freezes them.
pub struct ZoneBuilder {
    origin: Name,
    nodes: FxHashMap<Name, Node>,
    /// Where the records that later checks talk about came from (SOA, NS, CNAME, DNAME).
    locations: FxHashMap<(Name, Rtype), Location>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl ZoneBuilder {
    pub fn new(origin: Name) -> Self {
        ZoneBuilder {
            origin,
            nodes: FxHashMap::default(),
            locations: FxHashMap::default(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// A builder holding `zone`'s records, to make its next version: the nodes are shared
    /// with `zone` until changed, and [`ZoneBuilder::build`] checks the result as a whole.
    pub fn from_zone(zone: &Zone) -> Self {
        ZoneBuilder {
            nodes: zone.node_map().clone(),
            ..ZoneBuilder::new(zone.origin().clone())
        }
    }

    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// Removes one record (its TTL is not compared); false if the zone does not hold it.
    pub fn remove(&mut self, owner: &Name, rtype: Rtype, rdata: &[u8]) -> bool {
        self.nodes
            .get_mut(owner)
            .is_some_and(|node| node.remove(rtype, rdata))
    }

    /// Removes every record of `rtype` at `owner`.
    pub fn remove_rrset(&mut self, owner: &Name, rtype: Rtype) {
        if let Some(node) = self.nodes.get_mut(owner) {
            node.remove_rrset(rtype);
        }
    }

    /// Adds one record. Problems local to the record are collected and reported by `build`.
    pub fn add(
        &mut self,
        owner: Name,
        rtype: Rtype,
        ttl: u32,
        rdata: &[u8],
        location: Option<Location>,
    ) {
        if !owner.ends_with(&self.origin) {
            self.errors.push(Diagnostic::new(
                location,
                format!("{owner} {rtype} is outside the zone {}", self.origin),
            ));
            return;
        }
        if rtype.is_meta() {
            self.errors.push(Diagnostic::new(
                location,
                format!("{rtype} is a meta type and cannot appear in a zone"),
            ));
            return;
        }
        if rdata.len() > usize::from(u16::MAX) {
            self.errors.push(Diagnostic::new(
                location,
                format!("{owner} {rtype} record data is longer than 65535 octets"),
            ));
            return;
        }
        let node = self.nodes.entry(owner.clone()).or_default();
        if let Some(first_ttl) = node.add(rtype, ttl, rdata) {
            self.warnings.push(Diagnostic::new(
                location.clone(),
                format!(
                    "{owner} {rtype}: TTL {ttl} differs from the RRset's TTL {first_ttl}, \
                     using {first_ttl} (RFC 2181 section 5.2)"
                ),
            ));
        }
        if matches!(rtype, Rtype::SOA | Rtype::NS | Rtype::CNAME | Rtype::DNAME) {
            if let Some(loc) = location {
                self.locations.entry((owner, rtype)).or_insert(loc);
            }
        }
    }

    /// Runs the checks and returns the zone, or every error found.
    pub fn build(mut self) -> Result<Built, ZoneErrors> {
        // Names whose last record was removed no longer exist, unless something below them
        // does: empty non-terminals are derived again from what remains.
        self.nodes.retain(|_, node| !node.is_empty_non_terminal());
        self.check_apex();
        self.check_exclusive_types();
        self.mark_cuts_and_check_glue();
        self.add_empty_non_terminals();
        if !self.errors.is_empty() {
            let mut errors = self.errors;
            errors.sort_by_key(|d| d.location.as_ref().map(|l| (l.file.clone(), l.line)));
            return Err(ZoneErrors(errors));
        }
        let serial = self
            .nodes
            .get(self.origin.as_wire())
            .and_then(|apex| apex.rrset(Rtype::SOA))
            .and_then(|soa| soa.rdatas().next())
            .and_then(soa_serial)
            .unwrap_or(0);
        Ok(Built {
            zone: Zone::from_parts(self.origin, self.nodes, serial),
            warnings: self.warnings,
        })
    }

    fn location(&self, owner: &Name, rtype: Rtype) -> Option<Location> {
        self.locations.get(&(owner.clone(), rtype)).cloned()
    }

    /// RFC 1035 section 5.2: exactly one SOA, at the top of the zone; RFC 1034 section 4.2.1:
    /// NS records at the apex.
    fn check_apex(&mut self) {
        let origin = &self.origin;
        let apex = self.nodes.get(origin.as_wire());
        match apex.and_then(|n| n.rrset(Rtype::SOA)).map(|s| s.len()) {
            None => self.errors.push(Diagnostic::new(
                None,
                format!("zone {origin} has no SOA record at its apex"),
            )),
            Some(1) => {}
            Some(n) => self.errors.push(Diagnostic::new(
                self.location(origin, Rtype::SOA),
                format!("zone {origin} has {n} SOA records, exactly one is allowed"),
            )),
        }
        if apex.and_then(|n| n.rrset(Rtype::NS)).is_none() {
            self.errors.push(Diagnostic::new(
                None,
                format!("zone {origin} has no NS records at its apex"),
            ));
        }
        let misplaced: Vec<Name> = self
            .nodes
            .iter()
            .filter(|(owner, node)| *owner != origin && node.rrset(Rtype::SOA).is_some())
            .map(|(owner, _)| owner.clone())
            .collect();
        for owner in misplaced {
            self.errors.push(Diagnostic::new(
                self.location(&owner, Rtype::SOA),
                format!("SOA record at {owner}, below the zone apex {origin}"),
            ));
        }
    }

    /// CNAME excludes other data (RFC 1034 section 3.6.2, RFC 2181 section 10.1) and is a single
    /// record; DNAME is a single record and nothing exists below it (RFC 6672 section 2.4).
    fn check_exclusive_types(&mut self) {
        let mut found = Vec::new();
        let mut has_dname = false;
        for (owner, node) in &self.nodes {
            if let Some(cname) = node.rrset(Rtype::CNAME) {
                let others: Vec<String> = node
                    .rrsets()
                    .iter()
                    .map(|r| r.rtype)
                    .filter(|t| !matches!(*t, Rtype::CNAME | Rtype::RRSIG | Rtype::NSEC))
                    .map(|t| t.to_string())
                    .collect();
                if !others.is_empty() {
                    found.push((
                        owner.clone(),
                        Rtype::CNAME,
                        format!(
                            "{owner} has a CNAME and other data ({}); a CNAME must be alone \
                             (RFC 1034 section 3.6.2, RFC 2181 section 10.1)",
                            others.join(", ")
                        ),
                    ));
                }
                if cname.len() > 1 {
                    found.push((
                        owner.clone(),
                        Rtype::CNAME,
                        format!("{owner} has {} CNAME records, one is allowed", cname.len()),
                    ));
                }
            }
            if let Some(dname) = node.rrset(Rtype::DNAME) {
                if dname.len() > 1 {
                    found.push((
                        owner.clone(),
                        Rtype::DNAME,
                        format!("{owner} has {} DNAME records, one is allowed", dname.len()),
                    ));
                }
                if node.rrset(Rtype::CNAME).is_some() {
                    found.push((
                        owner.clone(),
                        Rtype::DNAME,
                        format!("{owner} has both a CNAME and a DNAME (RFC 6672 section 2.4)"),
                    ));
                }
                has_dname = true;
            }
        }
        if has_dname {
            for owner in self.nodes.keys() {
                if let Some(dname) = self.ancestor_with(owner, |n| n.rrset(Rtype::DNAME).is_some())
                {
                    found.push((
                        dname.clone(),
                        Rtype::DNAME,
                        format!("{owner} exists below the DNAME at {dname} (RFC 6672 section 2.4)"),
                    ));
                }
            }
        }
        for (owner, rtype, message) in found {
            let loc = self.location(&owner, rtype);
            self.errors.push(Diagnostic::new(loc, message));
        }
    }

    /// Marks zone cuts and checks that every name server inside the zone has an address: glue
    /// for delegations below the cut (RFC 1034 section 4.2.1), or in-zone data otherwise.
    fn mark_cuts_and_check_glue(&mut self) {
        // Set afresh on every node: a version made from an older one may have lost a cut.
        for (owner, node) in self.nodes.iter_mut() {
            node.set_cut(*owner != self.origin && node.rrset(Rtype::NS).is_some());
        }
        let mut found = Vec::new();
        for (owner, node) in &self.nodes {
            let Some(ns) = node.rrset(Rtype::NS) else {
                continue;
            };
            for target in ns.rdatas() {
                let Ok(target) = Name::from_wire(target) else {
                    continue;
                };
                if !target.ends_with(&self.origin) {
                    continue;
                }
                let has_address = self
                    .nodes
                    .get(&target)
                    .is_some_and(|t| t.rrset(Rtype::A).is_some() || t.rrset(Rtype::AAAA).is_some());
                if !has_address {
                    let what = if owner == &self.origin {
                        "name server"
                    } else {
                        "delegation's name server"
                    };
                    found.push((
                        owner.clone(),
                        format!(
                            "{owner} NS {target}: the {what} is inside the zone but has no A or \
                             AAAA record (missing glue, RFC 1034 section 4.2.1)"
                        ),
                    ));
                }
            }
        }
        // Data below a cut other than addresses is occluded: never served, likely a mistake.
        for (owner, node) in &self.nodes {
            let non_glue = node
                .rrsets()
                .iter()
                .any(|r| !matches!(r.rtype, Rtype::A | Rtype::AAAA));
            if non_glue && self.ancestor_with(owner, Node::is_cut).is_some() {
                self.warnings.push(Diagnostic::new(
                    None,
                    format!("{owner} is below a zone cut and holds data other than glue; it is occluded and never served"),
                ));
            }
        }
        for (owner, message) in found {
            let loc = self.location(&owner, Rtype::NS);
            self.errors.push(Diagnostic::new(loc, message));
        }
    }

    /// The closest proper ancestor of `owner`, at or below the apex, whose node matches.
    fn ancestor_with(&self, owner: &Name, matches: impl Fn(&Node) -> bool) -> Option<Name> {
        let mut name = owner.as_wire();
        while let Some(parent) = name::parent(name) {
            if parent.len() < self.origin.len() {
                return None;
            }
            if let Some((key, _)) = self.nodes.get_key_value(parent).filter(|(_, n)| matches(n)) {
                return Some(key.clone());
            }
            name = parent;
        }
        None
    }

    /// Every name between a record's owner and the apex exists (RFC 4592 section 2.2.2).
    fn add_empty_non_terminals(&mut self) {
        let mut missing = Vec::new();
        for owner in self.nodes.keys() {
            let mut name = owner.as_wire();
            while let Some(parent) = name::parent(name) {
                if parent.len() < self.origin.len() || self.nodes.contains_key(parent) {
                    break;
                }
                missing.push(parent.to_vec());
                name = parent;
            }
        }
        for wire in missing {
            if let Ok(name) = Name::from_wire(&wire) {
                self.nodes.entry(name).or_default();
            }
        }
    }
}

/// The SERIAL field of SOA RDATA: the 20 octets after the two names are five u32s, serial first
/// (RFC 1035 section 3.3.13).
pub fn soa_serial(rdata: &[u8]) -> Option<u32> {
    soa_fields(rdata).map(|f| f[0])
}

/// SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM.
pub fn soa_fields(rdata: &[u8]) -> Option<[u32; 5]> {
    let tail = rdata.get(rdata.len().checked_sub(20)?..)?;
    let mut out = [0u32; 5];
    for (i, chunk) in tail.chunks_exact(4).enumerate() {
        out[i] = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    Some(out)
}
