//! Zones as record lists, and the differences between two versions of a zone (RFC 1995
//! section 4: an IXFR is a sequence of "delete these, add those" steps, each between two SOAs).
//!
//! A [`Zone`] is immutable: applying a difference builds a new snapshot from the old one's records
//! and runs the same checks as a zone loaded from a file ([`ZoneBuilder::build`]). Tested in
//! anyns-xfr, which applies and serves these differences.

use std::collections::BTreeMap;
use std::fmt;

use anyns_wire::{Name, Rtype};

use crate::builder::{Built, Diagnostic, ZoneBuilder, ZoneErrors, soa_serial};
use crate::model::Zone;

/// One resource record of class IN, RDATA in uncompressed wire format.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Record {
    pub owner: Name,
    pub rtype: Rtype,
    pub ttl: u32,
    pub rdata: Box<[u8]>,
}

impl Record {
    pub fn new(owner: Name, rtype: Rtype, ttl: u32, rdata: &[u8]) -> Self {
        Record {
            owner,
            rtype,
            ttl,
            rdata: rdata.into(),
        }
    }

    /// The SOA serial if this is an SOA record.
    pub fn soa_serial(&self) -> Option<u32> {
        (self.rtype == Rtype::SOA)
            .then(|| soa_serial(&self.rdata))
            .flatten()
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.owner, self.ttl, self.rtype)
    }
}

/// Every record of `zone`, the apex SOA first and the rest in a stable order (owner, type,
/// RDATA), as an AXFR sends them (RFC 5936 section 2.2: SOA first; the order of the rest is free).
pub fn zone_records(zone: &Zone) -> Vec<Record> {
    let mut out = Vec::with_capacity(zone.record_count());
    for (owner, node) in zone.nodes() {
        for rrset in node.rrsets() {
            for rdata in rrset.rdatas() {
                out.push(Record::new(owner.clone(), rrset.rtype, rrset.ttl, rdata));
            }
        }
    }
    let origin = zone.origin();
    out.sort_by(|a, b| {
        let a_soa = a.rtype == Rtype::SOA && &a.owner == origin;
        let b_soa = b.rtype == Rtype::SOA && &b.owner == origin;
        b_soa
            .cmp(&a_soa)
            .then_with(|| a.owner.cmp(&b.owner))
            .then_with(|| a.rtype.cmp(&b.rtype))
            .then_with(|| a.rdata.cmp(&b.rdata))
    });
    out
}

/// Builds and checks a zone from records (class IN).
pub fn build_zone(
    origin: &Name,
    records: impl IntoIterator<Item = Record>,
) -> Result<Built, ZoneErrors> {
    let mut builder = ZoneBuilder::new(origin.clone());
    for r in records {
        builder.add(r.owner, r.rtype, r.ttl, &r.rdata, None);
    }
    builder.build()
}

/// The change from one version of a zone to the next: one step of an IXFR (RFC 1995 section 4).
/// `removed` and `added` never hold the SOA; the SOAs bracket the step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneDiff {
    pub old_soa: Record,
    pub new_soa: Record,
    pub removed: Vec<Record>,
    pub added: Vec<Record>,
}

impl ZoneDiff {
    pub fn from_serial(&self) -> u32 {
        self.old_soa.soa_serial().unwrap_or(0)
    }

    pub fn to_serial(&self) -> u32 {
        self.new_soa.soa_serial().unwrap_or(0)
    }

    /// Records this step carries, both SOAs included.
    pub fn record_count(&self) -> usize {
        self.removed.len() + self.added.len() + 2
    }
}

/// The difference between two versions of the same zone; `None` if either has no SOA.
pub fn zone_diff(old: &Zone, new: &Zone) -> Option<ZoneDiff> {
    let mut old_records = zone_records(old);
    let mut new_records = zone_records(new);
    let old_soa = take_apex_soa(old.origin(), &mut old_records)?;
    let new_soa = take_apex_soa(new.origin(), &mut new_records)?;
    // Keyed by the whole record, TTL included: a TTL change is a deletion plus an addition.
    let key = |r: &Record| (r.owner.clone(), r.rtype, r.rdata.clone(), r.ttl);
    let old_set: BTreeMap<_, Record> = old_records.into_iter().map(|r| (key(&r), r)).collect();
    let new_set: BTreeMap<_, Record> = new_records.into_iter().map(|r| (key(&r), r)).collect();
    let removed = old_set
        .iter()
        .filter(|(k, _)| !new_set.contains_key(*k))
        .map(|(_, r)| r.clone())
        .collect();
    let added = new_set
        .iter()
        .filter(|(k, _)| !old_set.contains_key(*k))
        .map(|(_, r)| r.clone())
        .collect();
    Some(ZoneDiff {
        old_soa,
        new_soa,
        removed,
        added,
    })
}

fn take_apex_soa(origin: &Name, records: &mut Vec<Record>) -> Option<Record> {
    let pos = records
        .iter()
        .position(|r| r.rtype == Rtype::SOA && &r.owner == origin)?;
    Some(records.remove(pos))
}

/// Applies IXFR steps to `zone` in order and checks the result. A step must start at the serial
/// the previous one ended with, and may only delete records that exist (RFC 1995 section 4: a
/// difference that does not fit our copy means our copy is not what the primary thinks it is).
///
/// The new version shares every node the steps do not touch with `zone`, so applying a few
/// changes to a large zone costs a pass over its nodes (for the checks), not a rebuild.
pub fn apply_diffs(zone: &Zone, diffs: &[ZoneDiff]) -> Result<Built, ZoneErrors> {
    let origin = zone.origin();
    let err = |msg: String| ZoneErrors(vec![Diagnostic::new(None, msg)]);
    let mut builder = ZoneBuilder::from_zone(zone);
    let mut serial = zone.serial();
    for diff in diffs {
        if diff.from_serial() != serial {
            return Err(err(format!(
                "{origin}: difference starts at serial {} but the zone is at serial {serial}",
                diff.from_serial()
            )));
        }
        for r in &diff.removed {
            if !builder.remove(&r.owner, r.rtype, &r.rdata) {
                return Err(err(format!(
                    "{origin}: difference {}→{} deletes {r}, which the zone does not hold",
                    diff.from_serial(),
                    diff.to_serial()
                )));
            }
        }
        for r in &diff.added {
            builder.add(r.owner.clone(), r.rtype, r.ttl, &r.rdata, None);
        }
        builder.remove_rrset(origin, Rtype::SOA);
        let soa = &diff.new_soa;
        builder.add(soa.owner.clone(), soa.rtype, soa.ttl, &soa.rdata, None);
        serial = diff.to_serial();
    }
    builder.build()
}
