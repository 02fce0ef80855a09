//! The DNS self-probe: the SOA of each served zone, asked over UDP of a configured address —
//! normally the VIP, so the query goes through the real data plane as a client's would.
//!
//! The socket is connected to the target, so an answer must come back from the address asked
//! (what DESIGN decision 1 promises for the VIP), and an ICMP port-unreachable fails the probe at
//! once instead of waiting for the timeout. Each query has a random ID from a fresh ephemeral
//! port; answers whose ID or question is not one of ours are ignored (RFC 5452 section 9.1).

use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyns_wire::name::read_compressed;
use anyns_wire::{Class, HEADER_LEN, Name, NameBuf, Rcode, Rtype, flags};
use tokio::net::UdpSocket;

use crate::error::ConfigError;
use crate::probe::ProbeOutcome;

/// Large enough for any SOA answer without EDNS (RFC 1035 section 4.2.1).
const RECEIVE_BUFFER: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsProbe {
    target: SocketAddr,
    zones: Vec<Name>,
}

impl DnsProbe {
    pub fn new(target: SocketAddr, zones: Vec<Name>) -> Result<Self, ConfigError> {
        if zones.is_empty() {
            return Err(ConfigError::NoZones);
        }
        Ok(DnsProbe { target, zones })
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    pub fn zones(&self) -> &[Name] {
        &self.zones
    }

    /// Asks every zone's SOA at once and waits at most `timeout` for all the answers. The first
    /// bad answer fails the probe; a missing one times it out.
    pub async fn run(&self, timeout: Duration) -> ProbeOutcome {
        let deadline = tokio::time::Instant::now() + timeout;
        let local: SocketAddr = if self.target.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = match UdpSocket::bind(local).await {
            Ok(s) => s,
            Err(e) => return ProbeOutcome::Failed(format!("bind {local}: {e}")),
        };
        if let Err(e) = socket.connect(self.target).await {
            return ProbeOutcome::Failed(format!("connect {}: {e}", self.target));
        }

        let ids = unique_ids(self.zones.len());
        // (query ID, zone index) still waiting for an answer.
        let mut pending: Vec<(u16, usize)> = ids.into_iter().zip(0..).collect();
        for &(id, zone) in &pending {
            let query = build_query(id, &self.zones[zone]);
            if let Err(e) = socket.send(&query).await {
                return ProbeOutcome::Failed(format!("send to {}: {e}", self.target));
            }
        }

        let mut failures = Vec::new();
        let mut buf = vec![0u8; RECEIVE_BUFFER];
        while !pending.is_empty() {
            let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_elapsed) => break,
                Ok(Err(e)) => {
                    failures.push(format!("receive from {}: {e}", self.target));
                    break;
                }
                Ok(Ok(n)) => n,
            };
            let msg = buf.get(..n).unwrap_or_default();
            let Some(&[hi, lo]) = msg.get(..2) else {
                continue;
            };
            let id = u16::from_be_bytes([hi, lo]);
            let Some(slot) = pending.iter().position(|&(p, _)| p == id) else {
                continue;
            };
            let zone = &self.zones[pending[slot].1];
            match check_response(msg, zone) {
                Ok(Verdict::Answered) => {}
                Ok(Verdict::NotOurs) => continue,
                Err(e) => failures.push(format!("{zone} SOA: {e}")),
            }
            pending.swap_remove(slot);
        }

        match failures.split_first() {
            Some((first, [])) => ProbeOutcome::Failed(first.clone()),
            Some((first, rest)) => {
                ProbeOutcome::Failed(format!("{first} (and {} more)", rest.len()))
            }
            None if pending.is_empty() => ProbeOutcome::Ok,
            None => ProbeOutcome::TimedOut,
        }
    }
}

/// `n` distinct random query IDs. The IDs guard against stray or spoofed answers making a broken
/// node look healthy; std's randomly keyed hasher is random enough for that.
fn unique_ids(n: usize) -> Vec<u16> {
    let state = RandomState::new();
    let mut ids: Vec<u16> = Vec::with_capacity(n);
    let mut counter = 0u64;
    while ids.len() < n {
        let mut h = state.build_hasher();
        h.write_u64(counter);
        counter += 1;
        let b = h.finish().to_le_bytes();
        let id = u16::from_le_bytes([b[0], b[1]]);
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// A query for `zone` SOA IN, RD clear: we ask the authority itself (RFC 1035 section 4.1).
pub fn build_query(id: u16, zone: &Name) -> Vec<u8> {
    let mut q = Vec::with_capacity(HEADER_LEN + zone.len() + 4);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0u16.to_be_bytes()); // QUERY, no flags
    q.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    q.extend_from_slice(&[0; 6]); // ANCOUNT, NSCOUNT, ARCOUNT
    q.extend_from_slice(zone.as_wire());
    q.extend_from_slice(&Rtype::SOA.0.to_be_bytes());
    q.extend_from_slice(&Class::IN.0.to_be_bytes());
    q
}

/// An answer that is ours and fine, or not ours at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Answered,
    /// Our ID but another question: ignored, as a resolver would (RFC 5452 section 9.1).
    NotOurs,
}

/// Why an answer to our query fails the probe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("malformed answer: {0}")]
    Malformed(&'static str),
    #[error("QR is not set")]
    NotAResponse,
    #[error("opcode {0}")]
    Opcode(u16),
    #[error("truncated (TC)")]
    Truncated,
    #[error("rcode {0}")]
    Rcode(Rcode),
    #[error("not authoritative (AA clear)")]
    NotAuthoritative,
    #[error("no SOA for the zone in the answer section")]
    NoSoa,
}

struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u16(&mut self) -> Result<u16, ResponseError> {
        let b = self
            .msg
            .get(self.pos..self.pos + 2)
            .ok_or(ResponseError::Malformed("message ends inside a field"))?;
        self.pos += 2;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn name(&mut self, out: &mut NameBuf) -> Result<(), ResponseError> {
        self.pos = read_compressed(self.msg, self.pos, out)
            .map_err(|_| ResponseError::Malformed("bad name"))?;
        Ok(())
    }

    fn skip(&mut self, n: usize) -> Result<(), ResponseError> {
        if self.pos + n > self.msg.len() {
            return Err(ResponseError::Malformed("message ends inside a record"));
        }
        self.pos += n;
        Ok(())
    }
}

/// Checks an answer whose ID matched our query for `zone` SOA.
pub fn check_response(msg: &[u8], zone: &Name) -> Result<Verdict, ResponseError> {
    let mut r = Reader { msg, pos: 2 };
    let header = r.u16()?;
    let qdcount = r.u16()?;
    let ancount = r.u16()?;
    r.skip(4)?; // NSCOUNT, ARCOUNT
    let mut name = NameBuf::new();
    // A server may leave the question out of an error answer (FORMERR); with a question, it must
    // be ours.
    match qdcount {
        0 => {}
        1 => {
            r.name(&mut name)?;
            let (qtype, qclass) = (r.u16()?, r.u16()?);
            if name.as_wire() != zone.as_wire() || qtype != Rtype::SOA.0 || qclass != Class::IN.0 {
                return Ok(Verdict::NotOurs);
            }
        }
        _ => return Ok(Verdict::NotOurs),
    }
    if header & flags::QR == 0 {
        return Err(ResponseError::NotAResponse);
    }
    let opcode = (header & flags::OPCODE_MASK) >> 11;
    if opcode != 0 {
        return Err(ResponseError::Opcode(opcode));
    }
    if header & flags::TC != 0 {
        return Err(ResponseError::Truncated);
    }
    let rcode = Rcode(header & flags::RCODE_MASK);
    if rcode != Rcode::NOERROR {
        return Err(ResponseError::Rcode(rcode));
    }
    if header & flags::AA == 0 {
        return Err(ResponseError::NotAuthoritative);
    }
    if qdcount == 0 {
        return Err(ResponseError::Malformed("no question section"));
    }
    for _ in 0..ancount {
        r.name(&mut name)?;
        let (rtype, class) = (r.u16()?, r.u16()?);
        r.skip(4)?; // TTL
        let rdlength = usize::from(r.u16()?);
        r.skip(rdlength)?;
        if rtype == Rtype::SOA.0 && class == Class::IN.0 && name.as_wire() == zone.as_wire() {
            return Ok(Verdict::Answered);
        }
    }
    Err(ResponseError::NoSoa)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Name {
        Name::from_text("example.test.").unwrap()
    }

    /// An answer to `query` with one SOA record for the question's name, compressed.
    fn answer(query: &[u8], flags: u16) -> Vec<u8> {
        let mut a = query.to_vec();
        a[2..4].copy_from_slice(&flags.to_be_bytes());
        a[6..8].copy_from_slice(&1u16.to_be_bytes());
        a.extend_from_slice(&[0xc0, 12]); // owner: the question name
        a.extend_from_slice(&Rtype::SOA.0.to_be_bytes());
        a.extend_from_slice(&Class::IN.0.to_be_bytes());
        a.extend_from_slice(&3600u32.to_be_bytes());
        let rdata: &[u8] = &[
            2, b'n', b's', 0xc0, 12, // MNAME
            4, b'r', b'o', b'o', b't', 0xc0, 12, // RNAME
            0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5,
        ];
        a.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
        a.extend_from_slice(rdata);
        a
    }

    #[test]
    fn query_is_soa_in_for_the_zone_with_rd_clear() {
        let q = build_query(0x1234, &zone());
        assert_eq!(
            q,
            b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x04test\x00\x00\x06\x00\x01"
        );
    }

    #[test]
    fn authoritative_soa_answer_passes() {
        let q = build_query(7, &zone());
        let a = answer(&q, flags::QR | flags::AA);
        assert_eq!(check_response(&a, &zone()), Ok(Verdict::Answered));
    }

    #[test]
    fn answer_checks_qr_rcode_aa_tc_and_the_soa() {
        let q = build_query(7, &zone());
        let z = zone();
        let check = |flags| check_response(&answer(&q, flags), &z);
        assert_eq!(check(flags::AA), Err(ResponseError::NotAResponse));
        assert_eq!(check(flags::QR), Err(ResponseError::NotAuthoritative));
        assert_eq!(
            check(flags::QR | flags::AA | 2),
            Err(ResponseError::Rcode(Rcode::SERVFAIL))
        );
        assert_eq!(
            check(flags::QR | flags::AA | flags::TC),
            Err(ResponseError::Truncated)
        );
        let mut no_answer = q.clone();
        no_answer[2..4].copy_from_slice(&(flags::QR | flags::AA).to_be_bytes());
        assert_eq!(check_response(&no_answer, &z), Err(ResponseError::NoSoa));
    }

    #[test]
    fn answer_to_another_question_is_not_ours() {
        let other = Name::from_text("other.test.").unwrap();
        let a = answer(&build_query(7, &other), flags::QR | flags::AA);
        assert_eq!(check_response(&a, &zone()), Ok(Verdict::NotOurs));
    }

    #[test]
    fn truncated_or_looping_answers_are_malformed_not_panics() {
        let q = build_query(7, &zone());
        let a = answer(&q, flags::QR | flags::AA);
        for len in 0..a.len() {
            let _ = check_response(&a[..len], &zone());
        }
        let mut looping = q.clone();
        looping[2..4].copy_from_slice(&(flags::QR | flags::AA).to_be_bytes());
        looping[6..8].copy_from_slice(&1u16.to_be_bytes());
        let here = u8::try_from(looping.len()).unwrap();
        looping.extend_from_slice(&[0xc0, here]);
        assert!(matches!(
            check_response(&looping, &zone()),
            Err(ResponseError::Malformed(_))
        ));
    }

    #[test]
    fn ids_are_distinct() {
        let ids = unique_ids(500);
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 500);
    }
}
