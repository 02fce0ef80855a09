//! The in-memory zone: an immutable snapshot, checked before it is served.

use std::sync::Arc;

use anyns_wire::{Name, Rtype};
use rustc_hash::{FxHashMap, FxHashSet};

/// One RRset: all records of one owner and type (RFC 2181 section 5).
///
/// RDATA is stored in uncompressed wire format as `[len u16][bytes]...` in one allocation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RRset {
    pub rtype: Rtype,
    pub ttl: u32,
    rdata: Box<[u8]>,
}

impl RRset {
    pub fn new<'a>(rtype: Rtype, ttl: u32, rdatas: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut buf = Vec::new();
        for rd in rdatas {
            push_rdata(&mut buf, rd);
        }
        RRset {
            rtype,
            ttl,
            rdata: buf.into_boxed_slice(),
        }
    }

    /// Each record's RDATA.
    pub fn rdatas(&self) -> RdataIter<'_> {
        RdataIter { rest: &self.rdata }
    }

    pub fn len(&self) -> usize {
        self.rdatas().count()
    }

    pub fn is_empty(&self) -> bool {
        self.rdata.is_empty()
    }

    /// Heap bytes held by this RRset.
    pub fn heap_size(&self) -> usize {
        self.rdata.len()
    }
}

/// Appends one length-prefixed RDATA; callers guarantee it is at most 65535 octets.
fn push_rdata(buf: &mut Vec<u8>, rdata: &[u8]) {
    let len = u16::try_from(rdata.len()).unwrap_or(u16::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&rdata[..usize::from(len)]);
}

pub struct RdataIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RdataIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let [a, b, rest @ ..] = self.rest else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([*a, *b]));
        let (rd, rest) = rest.split_at(len.min(rest.len()));
        self.rest = rest;
        Some(rd)
    }
}

/// A name in the zone with its RRsets, sorted by type. Empty non-terminals (RFC 4592 section
/// 2.2.2) are nodes with no RRsets: they exist, so they stop wildcard synthesis.
///
/// The RRsets are shared between versions of a zone: a new version made from an old one (an
/// IXFR applied, [`crate::ZoneBuilder::from_zone`]) copies only the nodes it changes.
/// (A new node's empty `Arc` is std's shared static one: no allocation.)
#[derive(Clone, Debug, Default)]
pub struct Node {
    rrsets: Arc<[RRset]>,
    flags: u8,
}

impl Node {
    /// NS below the apex: a zone cut, data at and below it is not authoritative (RFC 1034 4.2.1).
    pub const CUT: u8 = 1;

    /// The RRsets to change: this node's own, copied first if another version shares them.
    fn rrsets_mut(&mut self) -> &mut [RRset] {
        if Arc::get_mut(&mut self.rrsets).is_none() {
            self.rrsets = self.rrsets.iter().cloned().collect();
        }
        Arc::get_mut(&mut self.rrsets).unwrap_or(&mut [])
    }

    /// Replaces the RRsets with `f` applied to them (moved out, not copied, when not shared).
    fn rebuild(&mut self, f: impl FnOnce(&mut Vec<RRset>)) {
        let mut rrsets = match Arc::get_mut(&mut self.rrsets) {
            Some(own) => own.iter_mut().map(std::mem::take).collect(),
            None => self.rrsets.to_vec(),
        };
        f(&mut rrsets);
        self.rrsets = rrsets.into();
    }

    /// Adds one record; a duplicate of a record already present is dropped (RFC 2181 section 5).
    /// Returns the TTL the RRset already had if it differs from `ttl` (RFC 2181 section 5.2).
    pub(crate) fn add(&mut self, rtype: Rtype, ttl: u32, rdata: &[u8]) -> Option<u32> {
        let existing = match self.rrset(rtype) {
            Some(set) if set.rdatas().any(|rd| rd == rdata) => Some(set),
            Some(_) => self
                .rrsets_mut()
                .iter_mut()
                .find(|r| r.rtype == rtype)
                .map(|set| {
                    let mut buf = std::mem::take(&mut set.rdata).into_vec();
                    push_rdata(&mut buf, rdata);
                    set.rdata = buf.into_boxed_slice();
                    &*set
                }),
            None => None,
        };
        if let Some(set) = existing {
            return (set.ttl != ttl).then_some(set.ttl);
        }
        let mut buf = Vec::with_capacity(rdata.len() + 2);
        push_rdata(&mut buf, rdata);
        self.rebuild(|rrsets| {
            rrsets.push(RRset {
                rtype,
                ttl,
                rdata: buf.into_boxed_slice(),
            });
            rrsets.sort_by_key(|r| r.rtype);
        });
        None
    }

    /// Removes one record; false if the node does not hold it. The TTL is not compared: an
    /// RRset has one TTL (RFC 2181 section 5.2), and a deletion names a record by its data.
    pub(crate) fn remove(&mut self, rtype: Rtype, rdata: &[u8]) -> bool {
        let Some(set) = self.rrsets.iter().find(|r| r.rtype == rtype) else {
            return false;
        };
        if !set.rdatas().any(|rd| rd == rdata) {
            return false;
        }
        if set.len() == 1 {
            self.remove_rrset(rtype);
            return true;
        }
        if let Some(set) = self.rrsets_mut().iter_mut().find(|r| r.rtype == rtype) {
            let mut buf = Vec::with_capacity(set.rdata.len());
            let mut removed = false;
            for rd in set.rdatas() {
                if !removed && rd == rdata {
                    removed = true;
                } else {
                    push_rdata(&mut buf, rd);
                }
            }
            set.rdata = buf.into_boxed_slice();
        }
        true
    }

    /// Removes the whole RRset of `rtype`, if there is one.
    pub(crate) fn remove_rrset(&mut self, rtype: Rtype) {
        if self.rrset(rtype).is_some() {
            self.rebuild(|rrsets| rrsets.retain(|r| r.rtype != rtype));
        }
    }

    pub(crate) fn set_cut(&mut self, cut: bool) {
        self.flags = if cut { Self::CUT } else { 0 };
    }

    pub fn rrset(&self, rtype: Rtype) -> Option<&RRset> {
        // Nodes hold a handful of types: a linear scan beats a binary search here.
        self.rrsets.iter().find(|r| r.rtype == rtype)
    }

    pub fn rrsets(&self) -> &[RRset] {
        &self.rrsets
    }

    pub fn is_empty_non_terminal(&self) -> bool {
        self.rrsets.is_empty()
    }

    pub fn is_cut(&self) -> bool {
        self.flags & Self::CUT != 0
    }
}

/// An immutable, checked zone.
#[derive(Debug)]
pub struct Zone {
    origin: Name,
    nodes: FxHashMap<Name, Node>,
    serial: u32,
    records: usize,
}

impl Zone {
    /// Assembles a zone from nodes already checked by [`crate::ZoneBuilder`].
    pub(crate) fn from_parts(origin: Name, nodes: FxHashMap<Name, Node>, serial: u32) -> Zone {
        let records = nodes
            .values()
            .flat_map(|n| n.rrsets.iter())
            .map(RRset::len)
            .sum();
        Zone {
            origin,
            nodes,
            serial,
            records,
        }
    }

    pub fn origin(&self) -> &Name {
        &self.origin
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Number of resource records.
    pub fn record_count(&self) -> usize {
        self.records
    }

    /// Looks up a lowercase wire name.
    pub fn node(&self, name: &[u8]) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// The apex node; the builder refuses a zone without one.
    pub fn apex(&self) -> Option<&Node> {
        self.nodes.get(self.origin.as_wire())
    }

    /// The apex SOA RRset (present in every built zone).
    pub fn soa(&self) -> Option<&RRset> {
        self.apex()?.rrset(Rtype::SOA)
    }

    /// The nodes, for a new version made from this one (they share their RRsets).
    pub(crate) fn node_map(&self) -> &FxHashMap<Name, Node> {
        &self.nodes
    }

    pub fn nodes(&self) -> impl Iterator<Item = (&Name, &Node)> {
        self.nodes.iter()
    }
}

/// Every zone a node serves, keyed by origin. Immutable; replaced whole on reload.
///
/// Besides the zones with data it can hold zones that are configured but cannot be served: a
/// secondary zone not transferred yet, or expired (RFC 1035 section 3.3.13). Queries for them
/// get SERVFAIL rather than an answer from an enclosing zone or REFUSED.
#[derive(Debug, Default)]
pub struct ZoneSet {
    zones: FxHashMap<Name, Arc<Zone>>,
    unavailable: FxHashSet<Name>,
}

/// Where a query name belongs, from [`ZoneSet::lookup`].
#[derive(Debug, Clone, Copy)]
pub enum ZoneLookup<'a> {
    Zone(&'a Arc<Zone>),
    /// The closest enclosing zone is configured but has no data to serve.
    Unavailable,
    NotOurs,
}

impl ZoneSet {
    pub fn new(zones: impl IntoIterator<Item = Arc<Zone>>) -> Self {
        ZoneSet {
            zones: zones.into_iter().map(|z| (z.origin().clone(), z)).collect(),
            unavailable: FxHashSet::default(),
        }
    }

    /// The same set, plus zones that are configured but have no data to serve. A name that
    /// also has a zone keeps its zone.
    pub fn with_unavailable(mut self, names: impl IntoIterator<Item = Name>) -> Self {
        self.unavailable = names
            .into_iter()
            .filter(|n| !self.zones.contains_key(n))
            .collect();
        self
    }

    /// The zone with the longest origin that `qname` (lowercase wire) is at or below.
    pub fn find(&self, qname: &[u8]) -> Option<&Arc<Zone>> {
        match self.lookup(qname) {
            ZoneLookup::Zone(z) => Some(z),
            ZoneLookup::Unavailable | ZoneLookup::NotOurs => None,
        }
    }

    /// Like [`ZoneSet::find`], telling an unavailable closest zone from no zone at all.
    pub fn lookup(&self, qname: &[u8]) -> ZoneLookup<'_> {
        if self.zones.is_empty() && self.unavailable.is_empty() {
            return ZoneLookup::NotOurs;
        }
        let mut name = qname;
        loop {
            if let Some(z) = self.zones.get(name) {
                return ZoneLookup::Zone(z);
            }
            if !self.unavailable.is_empty() && self.unavailable.contains(name) {
                return ZoneLookup::Unavailable;
            }
            match anyns_wire::name::parent(name) {
                Some(parent) => name = parent,
                None => return ZoneLookup::NotOurs,
            }
        }
    }

    pub fn get(&self, origin: &Name) -> Option<&Arc<Zone>> {
        self.zones.get(origin)
    }

    /// The zones with data (not the unavailable ones).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Zone>> {
        self.zones.values()
    }

    /// The zones configured but without data to serve.
    pub fn unavailable(&self) -> impl Iterator<Item = &Name> {
        self.unavailable.iter()
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }
}
