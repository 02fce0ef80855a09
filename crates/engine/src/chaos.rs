//! Server identity in class CHAOS: `id.server.` (RFC 4892 section 2.2), `hostname.bind.`,
//! `version.bind.` and `version.server.` as TXT records.

use anyns_wire::{Class, MessageWriter, Query, Rcode, Rtype, Section};

use crate::Identity;

pub(crate) fn answer(identity: &Identity, query: &Query, w: &mut MessageWriter<'_>) -> Rcode {
    let text = match query.qname.as_wire() {
        b"\x02id\x06server\x00" | b"\x08hostname\x04bind\x00" => identity.server_id.as_deref(),
        b"\x07version\x04bind\x00" | b"\x07version\x06server\x00" => identity.version.as_deref(),
        _ => return Rcode::REFUSED,
    };
    let Some(text) = text else {
        return Rcode::REFUSED;
    };
    // Like Knot DNS, identity answers are not flagged authoritative: they are not zone data.
    if query.qtype != Rtype::TXT && query.qtype != Rtype::ANY {
        return Rcode::NOERROR;
    }
    // A TXT RDATA is a sequence of character-strings of at most 255 octets (RFC 1035 3.3.14).
    let mut rdata = [0u8; 512];
    let mut len = 0;
    for chunk in text.as_bytes().chunks(255).take(2) {
        rdata[len] = chunk.len() as u8;
        rdata[len + 1..len + 1 + chunk.len()].copy_from_slice(chunk);
        len += 1 + chunk.len();
    }
    if len == 0 {
        len = 1;
    }
    // Owner: the question name, so the pointer keeps the case the client sent.
    let _ = w.push_rr(
        Section::Answer,
        query.qname.as_wire(),
        Rtype::TXT,
        Class::CH.0,
        0,
        &rdata[..len],
    );
    Rcode::NOERROR
}
