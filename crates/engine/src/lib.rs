//! The answer engine: a request and a zone snapshot in, response bytes out. No I/O, no clock.
//!
//! The lookup follows RFC 1034 section 4.3.2 for authoritative data, with wildcards per RFC 4592,
//! DNAME per RFC 6672, negative answers per RFC 2308 and EDNS(0) per RFC 6891.

mod chaos;
mod lookup;

use anyns_wire::query::{ParseError, option};
use anyns_wire::{
    Class, HEADER_LEN, MAX_MESSAGE_LEN, MessageWriter, Opcode, Query, Rcode, Rtype, flags,
};
use anyns_zone::ZoneSet;

/// Who this node is (DESIGN decision 3): used for NSID and the CHAOS identity names.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// NSID payload (RFC 5001); `None` disables NSID.
    pub nsid: Option<Box<[u8]>>,
    /// TXT answer for `id.server.` and `hostname.bind.` in class CHAOS; `None` refuses them.
    pub server_id: Option<Box<str>>,
    /// TXT answer for `version.bind.` / `version.server.`; `None` hides the version (REFUSED).
    pub version: Option<Box<str>>,
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub identity: Identity,
    /// Largest UDP response we send and the payload size we advertise (RFC 6891 section 6.2.5).
    pub max_udp_payload: u16,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            identity: Identity::default(),
            // The DNS flag day 2020 value: fits the IPv6 minimum MTU without fragmentation.
            max_udp_payload: 1232,
        }
    }
}

/// How the request arrived: decides the size limit and the RFC 8482 ANY policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What [`Engine::respond_or_decline`] did with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The response is the first `len` octets of `out`.
    Answer(usize),
    /// Send nothing.
    Drop,
    /// Not the engine's to answer: a NOTIFY (RFC 1996), a zone transfer (AXFR, IXFR) or a
    /// TSIG-signed request (RFC 8945). These need the client's address, keys and access lists,
    /// and are rare: the caller hands them to the zone-transfer side.
    Declined,
}

/// Size of an OPT record with no options: root owner, type, class, TTL, RDLENGTH.
const OPT_LEN: usize = 11;

pub struct Engine {
    config: EngineConfig,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        Engine { config }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Answers one request into `out` and returns the response length, or `None` when the
    /// request must be dropped. `out` should be 65535 octets long; a UDP response never exceeds
    /// the negotiated payload size.
    pub fn respond(
        &self,
        zones: &ZoneSet,
        request: &[u8],
        transport: Transport,
        out: &mut [u8],
    ) -> Option<usize> {
        match self.reply(zones, request, transport, out, false) {
            Reply::Answer(len) => Some(len),
            Reply::Drop | Reply::Declined => None,
        }
    }

    /// Like [`Engine::respond`], but declines what belongs to the zone-transfer side (NOTIFY,
    /// AXFR/IXFR, TSIG-signed requests; see [`Reply::Declined`]) instead of answering it with
    /// NOTIMP, REFUSED or NOTAUTH. Costs nothing extra for ordinary queries.
    pub fn respond_or_decline(
        &self,
        zones: &ZoneSet,
        request: &[u8],
        transport: Transport,
        out: &mut [u8],
    ) -> Reply {
        self.reply(zones, request, transport, out, true)
    }

    fn reply(
        &self,
        zones: &ZoneSet,
        request: &[u8],
        transport: Transport,
        out: &mut [u8],
        decline: bool,
    ) -> Reply {
        if out.len() < 512 {
            return Reply::Drop;
        }
        let query = match Query::parse(request) {
            Ok(query) => query,
            Err(ParseError::Drop) => return Reply::Drop,
            Err(ParseError::Malformed(_)) => return Reply::Answer(formerr(request, out)),
        };
        if decline && declined(&query) {
            return Reply::Declined;
        }
        // RFC 1035 section 4.2.1: 512 octets without EDNS; RFC 6891 section 6.2.5: the smaller of
        // the requestor's and our payload size, never below 512.
        let limit = match (transport, query.edns) {
            (Transport::Tcp, _) => MAX_MESSAGE_LEN,
            (Transport::Udp, None) => 512,
            (Transport::Udp, Some(edns)) => {
                usize::from(edns.udp_payload.min(self.config.max_udp_payload)).max(512)
            }
        };
        let response_flags =
            flags::QR | (query.flags & (flags::OPCODE_MASK | flags::RD | flags::CD));
        let mut w = MessageWriter::new(out, limit, query.id, response_flags);
        // A question is at most 259 octets and the limit at least 512: this always fits.
        if w.push_question(query.question_wire(request)).is_err() {
            return Reply::Drop;
        }
        let nsid = match (&self.config.identity.nsid, query.edns) {
            (Some(nsid), Some(edns)) if edns.nsid => Some(&nsid[..]),
            _ => None,
        };
        let opt_len = OPT_LEN + nsid.map_or(0, |n| 4 + n.len());
        if query.edns.is_some() {
            w.reserve(opt_len);
        }

        let rcode = self.answer(zones, &query, transport, &mut w);

        let mut flags_word = w.flags() & !flags::RCODE_MASK;
        flags_word |= rcode.0 & flags::RCODE_MASK;
        w.set_flags(flags_word);
        if let Some(edns) = query.edns {
            w.unreserve(opt_len);
            let options: &[(u16, &[u8])] = match nsid {
                Some(n) => &[(option::NSID, n)],
                None => &[],
            };
            // RFC 6891 section 6.1.3: the upper eight bits of the 12-bit RCODE go in the OPT.
            let extended = (rcode.0 >> 4) as u8;
            // The room was reserved above, so this cannot fail; if it did, the answer would
            // merely lack its OPT record.
            let _ = w.push_opt(
                self.config.max_udp_payload,
                extended,
                edns.dnssec_ok,
                options,
            );
        }
        Reply::Answer(w.finish())
    }

    fn answer(
        &self,
        zones: &ZoneSet,
        query: &Query,
        transport: Transport,
        w: &mut MessageWriter<'_>,
    ) -> Rcode {
        if query.opcode() != Opcode::QUERY {
            // NOTIFY and UPDATE are not served here (RFC 1035 section 4.1.1: NOTIMP).
            return Rcode::NOTIMP;
        }
        if let Some(edns) = query.edns {
            // RFC 6891 section 6.1.3: we implement version 0 only.
            if edns.version > 0 {
                return Rcode::BADVERS;
            }
        }
        if query.tsig_start.is_some() {
            // Without the zone-transfer side no TSIG key is known: RFC 8945 section 5.2.2.
            return Rcode::NOTAUTH;
        }
        if query.qtype == Rtype::OPT || query.qtype == Rtype::TSIG || query.qtype == Rtype::TKEY {
            return Rcode::FORMERR;
        }
        if query.qtype == Rtype::AXFR || query.qtype == Rtype::IXFR {
            // Without the zone-transfer side (see `respond_or_decline`), no transfer is
            // permitted to anyone (RFC 5936 section 5).
            return Rcode::REFUSED;
        }
        match query.qclass {
            // RFC 1035 section 3.2.5: QCLASS * matches every class; our zones are all IN.
            Class::IN | Class::ANY => lookup::answer(zones, query, transport, w),
            Class::CH => chaos::answer(&self.config.identity, query, w),
            _ => Rcode::REFUSED,
        }
    }
}

/// Whether a request is for the zone-transfer side rather than the answer engine.
fn declined(query: &Query) -> bool {
    query.opcode() == Opcode::NOTIFY
        || query.qtype == Rtype::AXFR
        || query.qtype == Rtype::IXFR
        || query.tsig_start.is_some()
}

/// A header-only FORMERR: the request's ID, opcode and RD, nothing else (RFC 1035 section
/// 4.1.1). Never larger than the request, so it amplifies nothing.
fn formerr(request: &[u8], out: &mut [u8]) -> usize {
    let id = u16::from_be_bytes([request[0], request[1]]);
    let request_flags = u16::from_be_bytes([request[2], request[3]]);
    let flags_word =
        flags::QR | (request_flags & (flags::OPCODE_MASK | flags::RD)) | Rcode::FORMERR.0;
    let w = MessageWriter::new(out, HEADER_LEN, id, flags_word);
    w.finish()
}

#[cfg(test)]
mod tests;
