//! Queries derived from zone files: every owner name with a set of types, and names derived
//! from the zone's structure — nonexistent children and siblings (NXDOMAIN, RFC 1034 section
//! 4.3.2 step 3.c), names under wildcards (RFC 4592), under zone cuts (referrals, step 3.b) and
//! under DNAMEs (RFC 6672) — each also in a mixed-case spelling (RFC 4343).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use domain::base::iana::{Class, Rtype};
use domain::base::{Name, ToName};
use domain::zonefile::inplace::{Entry, Zonefile};

use super::ZoneFile;

/// A record type no test zone holds at any name.
pub const ABSENT_TYPE: Rtype = Rtype::CAA;

/// The RFC 3597 type the rich zone holds (`generic.diff.test.`).
pub const GENERIC_TYPE: Rtype = Rtype::from_int(65280);

/// The types asked at every owner name, besides the types the name has.
pub const OWNER_TYPES: [Rtype; 13] = [
    Rtype::A,
    Rtype::AAAA,
    Rtype::NS,
    Rtype::SOA,
    Rtype::MX,
    Rtype::TXT,
    Rtype::CNAME,
    Rtype::DNAME,
    Rtype::DS,
    Rtype::SRV,
    Rtype::ANY,
    GENERIC_TYPE,
    ABSENT_TYPE,
];

/// The types asked at derived names: the same, since a derived name may be covered by a
/// wildcard, a cut or a DNAME that answers each type differently.
pub const DERIVED_TYPES: [Rtype; 13] = OWNER_TYPES;

/// The types asked at the mixed-case spelling of every name.
pub const MIXED_CASE_TYPES: [Rtype; 7] = [
    Rtype::A,
    Rtype::TXT,
    Rtype::NS,
    Rtype::MX,
    Rtype::DS,
    Rtype::CNAME,
    Rtype::ANY,
];

/// A question to ask, and why it is asked (for reports).
#[derive(Clone, Debug)]
pub struct Probe {
    pub qname: Name<Vec<u8>>,
    pub qtype: Rtype,
    pub why: String,
}

/// Owner names keyed by their canonical (lower-case) wire form; the value keeps the file's
/// spelling and the types at the name.
pub type Owners = BTreeMap<Vec<u8>, (Name<Vec<u8>>, BTreeSet<Rtype>)>;

/// One zone's names and the types at each, read from its master file.
#[derive(Clone, Debug)]
pub struct ZoneNames {
    pub apex: Name<Vec<u8>>,
    pub owners: Owners,
}

impl ZoneNames {
    /// Reads a master file with domain's scanner (`$INCLUDE` is not used by the test zones and
    /// is rejected here).
    pub fn load(zone: &ZoneFile) -> Result<ZoneNames, String> {
        let data = fs::read(&zone.path).map_err(|e| format!("{}: {e}", zone.path.display()))?;
        let apex: Name<Vec<u8>> = zone
            .apex
            .parse()
            .map_err(|e| format!("apex {}: {e}", zone.apex))?;
        let mut scanner = Zonefile::from(data.as_slice());
        scanner.set_origin(apex.to_bytes());
        scanner.set_default_class(Class::IN);
        let mut owners = Owners::new();
        loop {
            let entry = scanner
                .next_entry()
                .map_err(|e| format!("{}: {e}", zone.path.display()))?;
            match entry {
                None => break,
                Some(Entry::Record(record)) => {
                    let owner: Name<Vec<u8>> = record.owner().to_name();
                    if !owner.ends_with(&apex) {
                        return Err(format!(
                            "{}: {owner} is outside {apex}",
                            zone.path.display()
                        ));
                    }
                    owners
                        .entry(canonical(&owner))
                        .or_insert_with(|| (owner.clone(), BTreeSet::new()))
                        .1
                        .insert(record.rtype());
                }
                Some(Entry::Include { path, .. }) => {
                    return Err(format!(
                        "{}: $INCLUDE {path} is not supported here",
                        zone.path.display()
                    ));
                }
            }
        }
        Ok(ZoneNames { apex, owners })
    }

    /// Owners of NS records other than the apex: zone cuts.
    pub fn cuts(&self) -> Vec<Name<Vec<u8>>> {
        self.owners_with(Rtype::NS)
            .into_iter()
            .filter(|n| canonical(n) != canonical(&self.apex))
            .collect()
    }

    pub fn owners_with(&self, rtype: Rtype) -> Vec<Name<Vec<u8>>> {
        self.owners
            .values()
            .filter(|(_, types)| types.contains(&rtype))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The names that exist only because something is below them (RFC 4592 section 2.2.2),
    /// between the apex and each owner.
    pub fn empty_non_terminals(&self) -> Vec<Name<Vec<u8>>> {
        let mut ents = BTreeMap::new();
        for (owner, _) in self.owners.values() {
            let mut name = parent(owner);
            while let Some(n) = name {
                if !n.ends_with(&self.apex) || canonical(&n) == canonical(&self.apex) {
                    break;
                }
                if !self.owners.contains_key(&canonical(&n)) {
                    ents.insert(canonical(&n), n.clone());
                }
                name = parent(&n);
            }
        }
        ents.into_values().collect()
    }
}

/// All probes for `zones`: owners × [`OWNER_TYPES`] (plus the types present), derived names ×
/// [`DERIVED_TYPES`], and every name in mixed case × [`MIXED_CASE_TYPES`]. No duplicates.
pub fn probes(zones: &[ZoneNames]) -> Vec<Probe> {
    let mut out = Probes::default();
    let mut names: Vec<(Name<Vec<u8>>, String)> = Vec::new();
    for zone in zones {
        for (owner, types) in zone.owners.values() {
            let why = format!(
                "owner {}",
                types
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            for qtype in OWNER_TYPES.iter().chain(types) {
                out.push(owner.clone(), *qtype, &why);
            }
            names.push((owner.clone(), why));
        }
        for ent in zone.empty_non_terminals() {
            for qtype in DERIVED_TYPES {
                out.push(ent.clone(), qtype, "empty non-terminal");
            }
            names.push((ent, "empty non-terminal".to_owned()));
        }
        let mut derived: Vec<(Name<Vec<u8>>, &str)> = Vec::new();
        for (owner, _) in zone.owners.values() {
            // A child of every name: NXDOMAIN, a wildcard answer, a referral or a DNAME.
            derived.extend(child(b"nx-child", owner).map(|n| (n, "child of an owner")));
            if let Some(p) = parent(owner).filter(|p| p.ends_with(&zone.apex)) {
                derived.extend(child(b"nx-sibling", &p).map(|n| (n, "sibling of an owner")));
            }
            if let Some(p) = parent(owner).filter(|_| owner.first().as_slice() == b"*") {
                derived.extend(child(b"host", &p).map(|n| (n, "covered by a wildcard")));
                derived.extend(
                    child(b"a", &p)
                        .and_then(|n| child(b"b", &n))
                        .map(|n| (n, "two labels below a wildcard")),
                );
            }
        }
        for cut in zone.cuts() {
            derived.extend(child(b"host", &cut).map(|n| (n, "below a zone cut")));
            derived.extend(
                child(b"a", &cut)
                    .and_then(|n| child(b"b", &n))
                    .map(|n| (n, "two labels below a zone cut")),
            );
        }
        for dname in zone.owners_with(Rtype::DNAME) {
            derived.extend(child(b"www", &dname).map(|n| (n, "below a DNAME")));
            derived.extend(
                child(b"a", &dname)
                    .and_then(|n| child(b"b", &n))
                    .map(|n| (n, "two labels below a DNAME")),
            );
        }
        for (name, why) in derived {
            if zone.owners.contains_key(&canonical(&name)) {
                continue;
            }
            for qtype in DERIVED_TYPES {
                out.push(name.clone(), qtype, why);
            }
            names.push((name, why.to_owned()));
        }
    }
    for (name, why) in names {
        let mixed = mixed_case(&name);
        if mixed.as_slice() != name.as_slice() {
            for qtype in MIXED_CASE_TYPES {
                out.push(mixed.clone(), qtype, &format!("mixed case, {why}"));
            }
        }
    }
    out.list
}

#[derive(Default)]
struct Probes {
    seen: BTreeSet<(Vec<u8>, u16)>,
    list: Vec<Probe>,
}

impl Probes {
    /// Adds a probe unless the same (case-sensitive) name and type are there already.
    fn push(&mut self, qname: Name<Vec<u8>>, qtype: Rtype, why: &str) {
        if self
            .seen
            .insert((qname.as_slice().to_vec(), qtype.to_int()))
        {
            self.list.push(Probe {
                qname,
                qtype,
                why: why.to_owned(),
            });
        }
    }
}

/// The name in canonical (lower-case) wire form, for keys.
pub fn canonical(name: &impl ToName) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = name.compose_canonical(&mut out);
    out
}

/// `label.parent`, if it fits in 255 octets.
pub fn child(label: &[u8], parent: &Name<Vec<u8>>) -> Option<Name<Vec<u8>>> {
    let len = u8::try_from(label.len()).ok().filter(|l| *l <= 63)?;
    let mut wire = Vec::with_capacity(1 + label.len() + parent.len());
    wire.push(len);
    wire.extend_from_slice(label);
    wire.extend_from_slice(parent.as_slice());
    Name::from_octets(wire).ok()
}

/// The name without its first label; `None` for the root.
pub fn parent(name: &Name<Vec<u8>>) -> Option<Name<Vec<u8>>> {
    name.parent().map(|p| p.to_vec())
}

/// The name with the case of its ASCII letters alternating (upper first), e.g. `WwW.DiFf.`.
pub fn mixed_case(name: &Name<Vec<u8>>) -> Name<Vec<u8>> {
    let mut wire = name.as_slice().to_vec();
    let mut pos = 0;
    let mut upper = true;
    while let Some(&len) = wire.get(pos) {
        let end = pos + 1 + usize::from(len);
        for byte in wire.get_mut(pos + 1..end).unwrap_or_default() {
            if byte.is_ascii_alphabetic() {
                *byte = if upper {
                    byte.to_ascii_uppercase()
                } else {
                    byte.to_ascii_lowercase()
                };
                upper = !upper;
            }
        }
        if len == 0 {
            break;
        }
        pos = end;
    }
    Name::from_octets(wire).unwrap_or_else(|_| name.clone())
}
