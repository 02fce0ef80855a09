//! Parsing of incoming requests: header, question, and the additional section's OPT and TSIG.
//!
//! Parsing never allocates. Every length and count is checked against the bytes that are really
//! there before it is used.

use crate::name::{NameBuf, read_compressed};
use crate::types::{Class, Opcode, Rtype};
use crate::{HEADER_LEN, flags};

/// EDNS option codes we act on (IANA "DNS EDNS0 Option Codes").
pub mod option {
    /// RFC 5001.
    pub const NSID: u16 = 3;
    /// RFC 7871.
    pub const CLIENT_SUBNET: u16 = 8;
    /// RFC 7873.
    pub const COOKIE: u16 = 10;
}

/// Why a request could not be parsed, and so how to react.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not worth an answer: shorter than a header, or a response (QR=1). Answering a response
    /// could start a loop between two servers (RFC 1035 section 7.1 spirit; every server drops).
    #[error("not a request")]
    Drop,
    /// The header is readable but the rest is malformed: answer FORMERR (RFC 1035 section 4.1.1).
    #[error("malformed request: {0}")]
    Malformed(&'static str),
}

/// The EDNS(0) pseudo-record of a request (RFC 6891 section 6.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size; values below 512 are treated as 512 (RFC 6891 section 6.2.5).
    pub udp_payload: u16,
    pub version: u8,
    /// DNSSEC OK (RFC 3225 section 3); copied into the response.
    pub dnssec_ok: bool,
    /// The requestor asked for the name server identifier (RFC 5001 section 2.3).
    pub nsid: bool,
}

/// A parsed request. The question name is lowercased here; the original bytes (and so the
/// original case, RFC 1035 section 7.2 / RFC 4343 section 4) stay in the request buffer.
#[derive(Clone)]
pub struct Query {
    pub id: u16,
    /// The raw flags word of the header.
    pub flags: u16,
    pub qname: NameBuf,
    pub qtype: Rtype,
    pub qclass: Class,
    /// Offset just past the question: `request[12..question_end]` is copied into the reply.
    pub question_end: usize,
    /// Records in the answer and authority sections (non-zero only for NOTIFY and UPDATE).
    pub ancount: u16,
    pub nscount: u16,
    pub edns: Option<Edns>,
    /// Offset of a TSIG record, which must be the last record (RFC 8945 section 5.1).
    pub tsig_start: Option<usize>,
}

impl Query {
    pub fn opcode(&self) -> Opcode {
        Opcode(((self.flags & flags::OPCODE_MASK) >> 11) as u8)
    }

    pub fn recursion_desired(&self) -> bool {
        self.flags & flags::RD != 0
    }

    /// The question as sent, case preserved, for copying into the response.
    pub fn question_wire<'a>(&self, request: &'a [u8]) -> &'a [u8] {
        &request[HEADER_LEN..self.question_end]
    }

    /// Parses a request. Requires exactly one question (RFC 9619 section 2).
    pub fn parse(msg: &[u8]) -> Result<Query, ParseError> {
        if msg.len() < HEADER_LEN {
            return Err(ParseError::Drop);
        }
        let id = u16::from_be_bytes([msg[0], msg[1]]);
        let flags = u16::from_be_bytes([msg[2], msg[3]]);
        if flags & flags::QR != 0 {
            return Err(ParseError::Drop);
        }
        let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
        let ancount = u16::from_be_bytes([msg[6], msg[7]]);
        let nscount = u16::from_be_bytes([msg[8], msg[9]]);
        let arcount = u16::from_be_bytes([msg[10], msg[11]]);
        if qdcount != 1 {
            return Err(ParseError::Malformed("question count is not 1"));
        }
        let mut qname = NameBuf::new();
        let mut pos = HEADER_LEN;
        // The question name can only point backwards into the header, which is never a name.
        if msg.get(pos).is_some_and(|&b| b & 0xc0 != 0) {
            return Err(ParseError::Malformed("compressed question name"));
        }
        pos = read_compressed(msg, pos, &mut qname)
            .map_err(|_| ParseError::Malformed("bad question name"))?;
        let fixed = msg
            .get(pos..pos + 4)
            .ok_or(ParseError::Malformed("truncated question"))?;
        let qtype = Rtype(u16::from_be_bytes([fixed[0], fixed[1]]));
        let qclass = Class(u16::from_be_bytes([fixed[2], fixed[3]]));
        pos += 4;
        let question_end = pos;

        let mut scratch = NameBuf::new();
        for _ in 0..u32::from(ancount) + u32::from(nscount) {
            pos = skip_record(msg, pos, &mut scratch)?.end;
        }
        let mut edns = None;
        let mut tsig_start = None;
        for i in 0..arcount {
            let start = pos;
            let rr = skip_record(msg, pos, &mut scratch)?;
            pos = rr.end;
            match rr.rtype {
                Rtype::OPT => {
                    // RFC 6891 section 6.1.1: one OPT at most, owned by the root.
                    if edns.is_some() {
                        return Err(ParseError::Malformed("more than one OPT record"));
                    }
                    if scratch.as_wire() != [0] {
                        return Err(ParseError::Malformed("OPT owner is not the root"));
                    }
                    edns = Some(parse_opt(rr.class, rr.ttl, &msg[rr.rdata_start..rr.end])?);
                }
                Rtype::TSIG => {
                    // RFC 8945 section 5.1: TSIG is the last record of the additional section.
                    if i + 1 != arcount {
                        return Err(ParseError::Malformed("TSIG is not the last record"));
                    }
                    tsig_start = Some(start);
                }
                _ => {}
            }
        }
        if pos != msg.len() {
            return Err(ParseError::Malformed("trailing data after the last record"));
        }
        Ok(Query {
            id,
            flags,
            qname,
            qtype,
            qclass,
            question_end,
            ancount,
            nscount,
            edns,
            tsig_start,
        })
    }
}

struct SkippedRecord {
    rtype: Rtype,
    class: u16,
    ttl: u32,
    rdata_start: usize,
    end: usize,
}

fn skip_record(msg: &[u8], pos: usize, owner: &mut NameBuf) -> Result<SkippedRecord, ParseError> {
    let pos =
        read_compressed(msg, pos, owner).map_err(|_| ParseError::Malformed("bad owner name"))?;
    let fixed = msg
        .get(pos..pos + 10)
        .ok_or(ParseError::Malformed("truncated record"))?;
    let rtype = Rtype(u16::from_be_bytes([fixed[0], fixed[1]]));
    let class = u16::from_be_bytes([fixed[2], fixed[3]]);
    let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let rdata_start = pos + 10;
    let end = rdata_start + rdlen;
    if end > msg.len() {
        return Err(ParseError::Malformed("record data runs past the message"));
    }
    Ok(SkippedRecord {
        rtype,
        class,
        ttl,
        rdata_start,
        end,
    })
}

fn parse_opt(class: u16, ttl: u32, mut rdata: &[u8]) -> Result<Edns, ParseError> {
    let mut edns = Edns {
        udp_payload: class.max(512),
        version: (ttl >> 16) as u8,
        dnssec_ok: ttl & 0x8000 != 0,
        nsid: false,
    };
    // RFC 6891 section 6.1.2: options are {code, length, data} triples filling the RDATA.
    while !rdata.is_empty() {
        let [c0, c1, l0, l1, rest @ ..] = rdata else {
            return Err(ParseError::Malformed("truncated EDNS option"));
        };
        let code = u16::from_be_bytes([*c0, *c1]);
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        if rest.len() < len {
            return Err(ParseError::Malformed(
                "EDNS option runs past the OPT record",
            ));
        }
        if code == option::NSID {
            edns.nsid = true;
        }
        rdata = &rest[len..];
    }
    Ok(edns)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `www.Example.com. A` with an OPT advertising 1232 octets, DO set and NSID.
    fn sample() -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(b"\x03www\x07Example\x03com\x00\x00\x01\x00\x01");
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 4, 0, 3, 0, 0]);
        q
    }

    #[test]
    fn parses_question_and_rfc6891_opt() {
        let msg = sample();
        let q = Query::parse(&msg).unwrap();
        assert_eq!(q.id, 0x1234);
        assert!(q.recursion_desired());
        assert_eq!(q.qname.as_wire(), b"\x03www\x07example\x03com\x00");
        assert_eq!(q.qtype, Rtype::A);
        assert_eq!(q.qclass, Class::IN);
        assert_eq!(q.question_wire(&msg), &msg[12..33]);
        assert_eq!(
            q.edns,
            Some(Edns {
                udp_payload: 1232,
                version: 0,
                dnssec_ok: true,
                nsid: true
            })
        );
    }

    #[test]
    fn rfc6891_6_2_5_small_payload_is_512() {
        let mut msg = sample();
        msg[36] = 0;
        msg[37] = 100;
        assert_eq!(Query::parse(&msg).unwrap().edns.unwrap().udp_payload, 512);
    }

    #[test]
    fn responses_and_runts_are_dropped() {
        let mut msg = sample();
        msg[2] |= 0x80;
        assert!(matches!(Query::parse(&msg), Err(ParseError::Drop)));
        assert!(matches!(Query::parse(&msg[..11]), Err(ParseError::Drop)));
    }

    #[test]
    fn malformed_requests_are_formerr() {
        let msg = sample();
        for cut in 12..msg.len() {
            assert!(
                matches!(Query::parse(&msg[..cut]), Err(ParseError::Malformed(_))),
                "cut at {cut}"
            );
        }
        let mut two_opt = msg.clone();
        two_opt[11] = 2;
        two_opt.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(
            Query::parse(&two_opt),
            Err(ParseError::Malformed(_))
        ));
        let mut trailing = msg.clone();
        trailing.push(0);
        assert!(matches!(
            Query::parse(&trailing),
            Err(ParseError::Malformed(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = Query::parse(&bytes);
        }
    }
}
