//! Authoritative lookup (RFC 1034 section 4.3.2) writing straight into the response.

use anyns_wire::name::{self, MAX_LABELS, NameBuf, label_offsets};
use anyns_wire::writer::Mark;
use anyns_wire::{MessageWriter, Query, Rcode, Rtype, Section, WriteError, flags};
use anyns_zone::{Node, RRset, Zone, ZoneLookup, ZoneSet, soa_fields};

use crate::Transport;

/// Longest CNAME/DNAME chain followed inside a zone; longer chains (or loops) are cut short.
const MAX_CHAIN: usize = 16;
/// Most names whose addresses are added to the additional section.
const MAX_ADDITIONAL: usize = 32;
/// Class IN as written in records.
const IN: u16 = 1;

/// What the walk down from the apex found for a name (RFC 1034 section 4.3.2 step 3).
enum Found<'z> {
    /// The name exists (possibly synthesized from a wildcard, RFC 4592 section 3.3.1).
    Node(&'z Node),
    /// A zone cut at `name[at..]`: refer (step 3b).
    Cut(usize, &'z Node),
    /// A DNAME at `name[at..]` above the name (RFC 6672 section 3.2).
    Dname(usize, &'z Node),
    /// Neither the name nor a wildcard exists (step 3c).
    NxDomain,
}

/// The answer could not fit: truncate (RFC 2181 section 9).
struct Truncated;

impl From<WriteError> for Truncated {
    fn from(_: WriteError) -> Self {
        Truncated
    }
}

pub(crate) fn answer(
    zones: &ZoneSet,
    query: &Query,
    transport: Transport,
    w: &mut MessageWriter<'_>,
) -> Rcode {
    let qname = query.qname.as_wire();
    let mut zone = match zones.lookup(qname) {
        ZoneLookup::Zone(zone) => zone,
        // RFC 1035 section 3.3.13: a secondary zone past EXPIRE (or never transferred) is not
        // answered from; SERVFAIL, as Knot and BIND do.
        ZoneLookup::Unavailable => return Rcode::SERVFAIL,
        ZoneLookup::NotOurs => return Rcode::REFUSED,
    };
    // RFC 4035 section 3.1.4.1: DS belongs to the parent side of a cut. When we also serve the
    // parent, answer from there.
    if query.qtype == Rtype::DS && qname == zone.origin().as_wire() {
        if let Some(parent) = name::parent(qname).and_then(|p| zones.find(p)) {
            zone = parent;
        }
    }
    let start = w.mark();
    let mut answerer = Answerer {
        zone,
        qtype: query.qtype,
        transport,
        rcode: Rcode::NOERROR,
        authoritative: true,
        additional: [&[]; MAX_ADDITIONAL],
        additional_count: 0,
        glue_required: false,
    };
    let result = answerer
        .resolve(w, &query.qname)
        .and_then(|()| answerer.write_additional(w));
    let mut flags_word = w.flags();
    if answerer.authoritative {
        flags_word |= flags::AA;
    }
    if result.is_err() {
        // The required RRsets do not fit: send none of them and set TC so the client retries
        // over TCP (RFC 2181 section 9, RFC 7766 section 5).
        w.rollback(start);
        flags_word |= flags::TC;
    }
    w.set_flags(flags_word);
    answerer.rcode
}

struct Answerer<'z> {
    zone: &'z Zone,
    qtype: Rtype,
    transport: Transport,
    rcode: Rcode,
    authoritative: bool,
    /// Target names (from RDATA) whose A/AAAA go into the additional section.
    additional: [&'z [u8]; MAX_ADDITIONAL],
    additional_count: usize,
    /// Referral glue below the cut must fit, or the response is truncated (RFC 9471 section 3).
    glue_required: bool,
}

impl<'z> Answerer<'z> {
    fn resolve(&mut self, w: &mut MessageWriter<'_>, qname: &NameBuf) -> Result<(), Truncated> {
        let mut current = qname.clone();
        // CNAME targets followed so far, to stop at a loop.
        let mut visited: [&'z [u8]; MAX_CHAIN] = [&[]; MAX_CHAIN];
        for step in 0..MAX_CHAIN {
            let name_buf = current.clone();
            let name = name_buf.as_wire();
            match find(self.zone, name, self.qtype) {
                Found::Node(node) => {
                    if self.qtype == Rtype::ANY {
                        return self.any(w, name, node);
                    }
                    if let Some(set) = node.rrset(self.qtype) {
                        write_rrset(w, Section::Answer, name, set, set.ttl)?;
                        self.note_additional(set);
                        return Ok(());
                    }
                    // RFC 1034 section 4.3.2 step 3a: a CNAME is followed unless it was asked for.
                    if let Some(cname) = node.rrset(Rtype::CNAME) {
                        write_rrset(w, Section::Answer, name, cname, cname.ttl)?;
                        let Some(target) = cname.rdatas().next() else {
                            return Ok(());
                        };
                        // RFC 1034 section 3.6.2: a loop ends the chain; every CNAME is given once.
                        if visited[..step]
                            .iter()
                            .any(|v| v.eq_ignore_ascii_case(target))
                            || target.eq_ignore_ascii_case(qname.as_wire())
                        {
                            return Ok(());
                        }
                        visited[step] = target;
                        current.clear();
                        if current.extend_lowercase(target).is_err() || !self.in_zone(target) {
                            return Ok(());
                        }
                        continue;
                    }
                    // NODATA (RFC 2308 section 2.2).
                    return self.negative(w);
                }
                Found::Cut(at, node) => {
                    // A referral is not authoritative, unless it follows an answer we own.
                    if step == 0 {
                        self.authoritative = false;
                    }
                    return self.referral(w, &name[at..], node);
                }
                Found::Dname(at, node) => {
                    let Some(dname) = node.rrset(Rtype::DNAME) else {
                        return Ok(());
                    };
                    let owner = &name[at..];
                    write_rrset(w, Section::Answer, owner, dname, dname.ttl)?;
                    let Some(target) = dname.rdatas().next() else {
                        return Ok(());
                    };
                    // RFC 6672 section 2.2: replace the DNAME owner suffix with the target.
                    let mut synthesized = NameBuf::new();
                    if synthesized.set(&name[..at]).is_err()
                        || synthesized.extend_lowercase(target).is_err()
                    {
                        // The result would be longer than 255 octets (RFC 6672 section 2.2).
                        self.rcode = Rcode::YXDOMAIN;
                        return Ok(());
                    }
                    // The synthesized CNAME has the DNAME's TTL (RFC 6672 section 3.1).
                    w.push_rr(
                        Section::Answer,
                        name,
                        Rtype::CNAME,
                        IN,
                        dname.ttl,
                        synthesized.as_wire(),
                    )?;
                    // The synthesized CNAME answers a CNAME query (RFC 1034 section 4.3.2 step
                    // 3a restarts only when QTYPE is not CNAME).
                    if self.qtype == Rtype::CNAME || !self.in_zone(synthesized.as_wire()) {
                        return Ok(());
                    }
                    current = synthesized;
                }
                Found::NxDomain => {
                    // RFC 6604 section 3: the RCODE speaks of the last name in the chain.
                    self.rcode = Rcode::NXDOMAIN;
                    return self.negative(w);
                }
            }
        }
        Ok(())
    }

    fn in_zone(&self, name: &[u8]) -> bool {
        let mut lower = NameBuf::new();
        lower.extend_lowercase(name).is_ok()
            && name::is_subdomain(lower.as_wire(), self.zone.origin().as_wire())
    }

    /// RFC 8482 section 4.1: over UDP, answer ANY with one RRset; over TCP, with all of them
    /// (section 4.4 lets a server give the conventional answer where amplification is no risk).
    fn any(
        &mut self,
        w: &mut MessageWriter<'_>,
        name: &[u8],
        node: &'z Node,
    ) -> Result<(), Truncated> {
        if node.rrsets().is_empty() {
            return self.negative(w);
        }
        for set in node.rrsets() {
            write_rrset(w, Section::Answer, name, set, set.ttl)?;
            if self.transport == Transport::Udp {
                break;
            }
        }
        Ok(())
    }

    /// The SOA in the authority section with the negative TTL: the minimum of the SOA's TTL and
    /// its MINIMUM field (RFC 2308 section 3).
    fn negative(&mut self, w: &mut MessageWriter<'_>) -> Result<(), Truncated> {
        let Some(soa) = self.zone.soa() else {
            return Ok(());
        };
        for rdata in soa.rdatas() {
            let minimum = soa_fields(rdata).map_or(soa.ttl, |f| f[4]);
            w.push_rr(
                Section::Authority,
                self.zone.origin().as_wire(),
                Rtype::SOA,
                IN,
                soa.ttl.min(minimum),
                rdata,
            )?;
        }
        Ok(())
    }

    /// RFC 1034 section 4.3.2 step 3b: the cut's NS RRset in authority, glue in additional.
    fn referral(
        &mut self,
        w: &mut MessageWriter<'_>,
        cut: &[u8],
        node: &'z Node,
    ) -> Result<(), Truncated> {
        let Some(ns) = node.rrset(Rtype::NS) else {
            return Ok(());
        };
        write_rrset(w, Section::Authority, cut, ns, ns.ttl)?;
        self.glue_required = true;
        self.note_additional(ns);
        Ok(())
    }

    /// Remembers the names in NS, MX and SRV RDATA whose addresses help the client
    /// (RFC 1034 section 3.7, RFC 2782).
    fn note_additional(&mut self, set: &'z RRset) {
        let offset = match set.rtype {
            Rtype::NS => 0,
            Rtype::MX => 2,
            Rtype::SRV => 6,
            _ => return,
        };
        for rdata in set.rdatas() {
            if let Some(target) = rdata.get(offset..) {
                if self.additional_count < MAX_ADDITIONAL {
                    self.additional[self.additional_count] = target;
                    self.additional_count += 1;
                }
            }
        }
    }

    /// Adds A and AAAA records of the noted names found in the zone. Optional data that does
    /// not fit is left out without truncation (RFC 2181 section 9), except referral glue below
    /// the cut, whose loss sets TC (RFC 9471 section 3).
    fn write_additional(&mut self, w: &mut MessageWriter<'_>) -> Result<(), Truncated> {
        for i in 0..self.additional_count {
            let target = self.additional[i];
            let mut lower = NameBuf::new();
            if lower.extend_lowercase(target).is_err() {
                continue;
            }
            let Some(node) = self.zone.node(lower.as_wire()) else {
                continue;
            };
            for rtype in [Rtype::A, Rtype::AAAA] {
                let Some(set) = node.rrset(rtype) else {
                    continue;
                };
                if let Err(e) = write_rrset(w, Section::Additional, target, set, set.ttl) {
                    if self.glue_required {
                        return Err(e);
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Writes a whole RRset or nothing of it.
fn write_rrset(
    w: &mut MessageWriter<'_>,
    section: Section,
    owner: &[u8],
    set: &RRset,
    ttl: u32,
) -> Result<(), Truncated> {
    let mark: Mark = w.mark();
    for rdata in set.rdatas() {
        if let Err(e) = w.push_rr(section, owner, set.rtype, IN, ttl, rdata) {
            w.rollback(mark);
            return Err(e.into());
        }
    }
    Ok(())
}

/// Walks from the apex down to `name` one label at a time (RFC 1034 section 4.3.2 step 3),
/// stopping at the first zone cut or DNAME above the name.
fn find<'z>(zone: &'z Zone, name: &[u8], qtype: Rtype) -> Found<'z> {
    let mut offsets = [0u8; MAX_LABELS];
    let count = label_offsets(name, &mut offsets);
    let apex_len = zone.origin().len();
    let mut closest_encloser = zone.origin().as_wire();
    let mut found = None;
    for &off in offsets[..count].iter().rev() {
        let at = usize::from(off);
        let suffix = &name[at..];
        if suffix.len() < apex_len {
            continue;
        }
        let Some(node) = zone.node(suffix) else {
            return wildcard(zone, closest_encloser);
        };
        // RFC 4035 section 3.1.4.1 / RFC 1034 4.2.1: DS at a cut is answered from the parent.
        if node.is_cut() && !(at == 0 && qtype == Rtype::DS) {
            return Found::Cut(at, node);
        }
        if at != 0 && node.rrset(Rtype::DNAME).is_some() {
            return Found::Dname(at, node);
        }
        closest_encloser = suffix;
        found = Some(node);
    }
    found.map_or(Found::NxDomain, Found::Node)
}

/// RFC 4592 section 4.1: the source of synthesis is `*.` + the closest encloser.
fn wildcard<'z>(zone: &'z Zone, closest_encloser: &[u8]) -> Found<'z> {
    let mut source = NameBuf::new();
    if source.set(b"\x01*").is_err() || source.extend_lowercase(closest_encloser).is_err() {
        return Found::NxDomain;
    }
    match zone.node(source.as_wire()) {
        Some(node) => Found::Node(node),
        None => Found::NxDomain,
    }
}
