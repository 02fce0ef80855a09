//! The primary's side: answering AXFR (RFC 5936) and IXFR (RFC 1995) from our zone snapshots
//! and a bounded journal of differences, with access control by address and TSIG key.
//!
//! The data plane hands AXFR/IXFR requests received over TCP to [`answer_transfer`], which
//! yields the response messages (without the TCP length prefix) one by one.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use anyns_wire::{Name, Rtype};
use anyns_zone::{Record, Zone, ZoneDiff, ZoneSet, zone_diff, zone_records};
use domain::base::Message;
use domain::base::iana::{Opcode as DOpcode, Rcode as DRcode};
use domain::base::message_builder::{MessageBuilder, PushError, TreeCompressor};
use domain::tsig::{Key, ServerSequence};

use crate::acl::Acl;
use crate::message::{our_name, record_for_push};
use crate::serial;
use crate::transfer::soa_record;
#[cfg(test)]
use crate::tsig::TsigKey;
use crate::tsig::{KeyRing, time48, tsig_error_response};

/// Payload we aim for in each transfer message: big enough to be efficient, small enough to
/// leave room for TSIG and to keep memory per message modest.
const MESSAGE_TARGET: usize = 16 * 1024;
/// Room kept for the TSIG record (name, algorithm, 64-octet MAC and fixed fields).
const TSIG_RESERVE: usize = 512;

/// Recent differences per zone, oldest first, so that IXFR can be answered incrementally
/// (RFC 1995 section 2). Bounded by a number of steps per zone.
#[derive(Debug, Clone)]
pub struct Journal {
    max_steps: usize,
    zones: HashMap<Name, VecDeque<Arc<ZoneDiff>>>,
}

impl Default for Journal {
    fn default() -> Self {
        Journal::new(32)
    }
}

impl Journal {
    /// A journal keeping at most `max_steps` differences per zone.
    pub fn new(max_steps: usize) -> Self {
        Journal {
            max_steps,
            zones: HashMap::new(),
        }
    }

    /// Records the step from `old` to `new` (both versions of one zone). A serial that does not
    /// go forwards (RFC 1982) breaks the chain: the zone's history is dropped, so clients get
    /// AXFR until new steps accumulate.
    pub fn record_change(&mut self, old: &Zone, new: &Zone) {
        if old.origin() != new.origin() || old.serial() == new.serial() {
            return;
        }
        if !serial::is_newer(new.serial(), old.serial()) {
            self.zones.remove(new.origin());
            return;
        }
        if let Some(diff) = zone_diff(old, new) {
            self.push(new.origin(), diff);
        }
    }

    /// Appends a difference (for example one received by IXFR). A difference that does not start
    /// where the last one ended replaces the history.
    pub fn push(&mut self, zone: &Name, diff: ZoneDiff) {
        let steps = self.zones.entry(zone.clone()).or_default();
        if steps
            .back()
            .is_some_and(|last| last.to_serial() != diff.from_serial())
        {
            steps.clear();
        }
        steps.push_back(Arc::new(diff));
        while steps.len() > self.max_steps {
            steps.pop_front();
        }
    }

    /// Forgets a zone (removed, or reloaded with an unrelated serial).
    pub fn forget(&mut self, zone: &Name) {
        self.zones.remove(zone);
    }

    /// The steps leading from `from` to `to`, if the journal holds all of them.
    pub fn chain(&self, zone: &Name, from: u32, to: u32) -> Option<Vec<Arc<ZoneDiff>>> {
        let steps = self.zones.get(zone)?;
        let start = steps.iter().position(|d| d.from_serial() == from)?;
        let mut out = Vec::new();
        let mut at = from;
        for d in steps.iter().skip(start) {
            if d.from_serial() != at {
                return None;
            }
            out.push(d.clone());
            at = d.to_serial();
            if at == to {
                return Some(out);
            }
        }
        None
    }

    /// Number of steps kept for `zone`.
    pub fn len(&self, zone: &Name) -> usize {
        self.zones.get(zone).map_or(0, VecDeque::len)
    }
}

/// Who may transfer which zone, and the TSIG keys we know.
#[derive(Debug, Clone, Default)]
pub struct TransferPolicy {
    pub keys: KeyRing,
    /// Applies to zones without an entry in `zones`.
    pub default_acl: Acl,
    pub zones: HashMap<Name, Acl>,
}

impl TransferPolicy {
    pub fn acl(&self, zone: &Name) -> &Acl {
        self.zones.get(zone).unwrap_or(&self.default_acl)
    }
}

/// The response messages to one transfer request, built as they are taken.
pub struct TransferAnswer {
    id: u16,
    question: Option<(Name, Rtype)>,
    records: std::vec::IntoIter<Record>,
    pending: Option<Record>,
    seq: Option<ServerSequence<Arc<Key>>>,
    now: SystemTime,
    first: bool,
    finished: bool,
    single: Option<Vec<u8>>,
}

impl TransferAnswer {
    fn single(msg: Vec<u8>) -> Self {
        TransferAnswer {
            id: 0,
            question: None,
            records: Vec::new().into_iter(),
            pending: None,
            seq: None,
            now: SystemTime::UNIX_EPOCH,
            first: false,
            finished: true,
            single: Some(msg),
        }
    }

    fn none() -> Self {
        let mut a = TransferAnswer::single(Vec::new());
        a.single = None;
        a
    }

    fn build_next(&mut self) -> Result<Vec<u8>, PushError> {
        let mut builder = MessageBuilder::from_target(TreeCompressor::new(Vec::new()))
            .map_err(|_| PushError::ShortBuf)?;
        builder.set_push_limit(MESSAGE_TARGET);
        let header = builder.header_mut();
        header.set_id(self.id);
        header.set_qr(true);
        header.set_opcode(DOpcode::QUERY);
        header.set_aa(true);
        let mut q = builder.question();
        if self.first {
            if let Some((name, qtype)) = &self.question {
                q.push((
                    crate::message::dname(name),
                    domain::base::iana::Rtype::from_int(qtype.0),
                    domain::base::iana::Class::IN,
                ))?;
            }
        }
        self.first = false;
        let mut answer = q.answer();
        let mut count = 0usize;
        while let Some(r) = self.pending.take().or_else(|| self.records.next()) {
            let push = record_for_push(&r)?;
            match answer.push(push.clone()) {
                Ok(()) => count += 1,
                Err(_) if count > 0 => {
                    self.pending = Some(r);
                    break;
                }
                Err(_) => {
                    // One record larger than our target: give it a message of its own.
                    answer.set_push_limit(usize::from(u16::MAX) - TSIG_RESERVE);
                    answer.push(push)?;
                    answer.set_push_limit(MESSAGE_TARGET);
                    count += 1;
                }
            }
        }
        let mut additional = answer.additional();
        additional.clear_push_limit();
        if let Some(seq) = &mut self.seq {
            seq.answer(&mut additional, time48(self.now))?;
        }
        Ok(additional.finish().into_target())
    }
}

impl Iterator for TransferAnswer {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if let Some(msg) = self.single.take() {
            return Some(msg);
        }
        if self.finished {
            return None;
        }
        let done_after = self.records.len() == 0 && self.pending.is_none();
        match self.build_next() {
            Ok(msg) => {
                self.finished = done_after || (self.records.len() == 0 && self.pending.is_none());
                Some(msg)
            }
            // Cannot happen with stored records (each fits 64 KiB); end the stream rather than
            // loop. The client sees a transfer without its closing SOA and discards it.
            Err(_) => {
                self.finished = true;
                None
            }
        }
    }
}

/// A transfer request that passed its checks: TSIG, question, zone, access list.
struct Checked<'z> {
    msg: Message<Vec<u8>>,
    seq: Option<ServerSequence<Arc<Key>>>,
    qname: Name,
    qtype: Rtype,
    zone: &'z Arc<Zone>,
    soa: Record,
}

/// The single error message answering `msg`, signed when the request was.
fn error_answer(
    msg: &Message<Vec<u8>>,
    rcode: DRcode,
    seq: Option<ServerSequence<Arc<Key>>>,
    now: SystemTime,
) -> Option<Vec<u8>> {
    let mut builder = MessageBuilder::new_vec()
        .start_error(msg, rcode)
        .additional();
    if let Some(mut seq) = seq {
        seq.answer(&mut builder, time48(now)).ok()?;
    }
    Some(builder.finish())
}

impl TransferAnswer {
    /// One error message, or nothing.
    fn error(msg: Option<Vec<u8>>) -> Self {
        match msg {
            Some(b) => TransferAnswer::single(b),
            None => TransferAnswer::none(),
        }
    }
}

/// Checks a transfer request; `Err` holds the error answer (if any deserves to be sent).
fn check_transfer_request<'z>(
    request: &[u8],
    client: IpAddr,
    zones: &'z ZoneSet,
    policy: &TransferPolicy,
    now: SystemTime,
) -> Result<Checked<'z>, Option<Vec<u8>>> {
    let Ok(mut msg) = Message::from_octets(request.to_vec()) else {
        return Err(None);
    };
    if msg.header().qr() {
        return Err(None);
    }
    let seq = match ServerSequence::request(&policy.keys, &mut msg, time48(now)) {
        Ok(seq) => seq,
        Err(e) => return Err(tsig_error_response(e, &msg)),
    };
    let key_name = seq.as_ref().and_then(|s| our_name(s.key().name()).ok());
    let (qname, qtype) = match msg.sole_question() {
        Ok(question) => {
            let qtype = Rtype(question.qtype().to_int());
            match our_name(question.qname()) {
                Ok(qname)
                    if msg.header().opcode() == DOpcode::QUERY
                        && matches!(qtype, Rtype::AXFR | Rtype::IXFR)
                        && question.qclass() == domain::base::iana::Class::IN =>
                {
                    (qname, qtype)
                }
                _ => return Err(error_answer(&msg, DRcode::FORMERR, seq, now)),
            }
        }
        Err(_) => return Err(error_answer(&msg, DRcode::FORMERR, seq, now)),
    };
    let Some(zone) = zones.get(&qname) else {
        return Err(error_answer(&msg, DRcode::NOTAUTH, seq, now));
    };
    if !policy.acl(&qname).allows(client, key_name.as_ref()) {
        // RFC 5936 section 6: a transfer not allowed is REFUSED.
        return Err(error_answer(&msg, DRcode::REFUSED, seq, now));
    }
    let Some(soa) = soa_record(zone) else {
        return Err(error_answer(&msg, DRcode::SERVFAIL, seq, now));
    };
    Ok(Checked {
        msg,
        seq,
        qname,
        qtype,
        zone,
        soa,
    })
}

/// Answers an AXFR or IXFR request received over TCP from `client`.
///
/// Yields nothing for input that deserves no answer (not a request); otherwise one message for
/// errors (FORMERR, NOTAUTH for a zone we do not serve, REFUSED when the ACL says no, TSIG errors
/// per RFC 8945 section 5.2), or the transfer: the whole zone (RFC 5936), the differences since
/// the client's serial from `journal` (RFC 1995 section 4), a single SOA when the client is
/// current, or the whole zone when the journal cannot bridge the gap.
pub fn answer_transfer(
    request: &[u8],
    client: IpAddr,
    zones: &ZoneSet,
    journal: &Journal,
    policy: &TransferPolicy,
    now: SystemTime,
) -> TransferAnswer {
    let c = match check_transfer_request(request, client, zones, policy, now) {
        Ok(c) => c,
        Err(answer) => return TransferAnswer::error(answer),
    };
    let records = if c.qtype == Rtype::IXFR {
        let Some(client_serial) = ixfr_client_serial(&c.msg, &c.qname) else {
            return TransferAnswer::error(error_answer(&c.msg, DRcode::FORMERR, c.seq, now));
        };
        ixfr_records(c.zone, c.soa, client_serial, journal)
    } else {
        axfr_records(c.zone, c.soa)
    };
    TransferAnswer {
        id: c.msg.header().id(),
        question: Some((c.qname, c.qtype)),
        records: records.into_iter(),
        pending: None,
        seq: c.seq,
        now,
        first: true,
        finished: false,
        single: None,
    }
}

/// Answers an AXFR or IXFR request that came over UDP, as Knot DNS 3.2 does: after the same
/// checks as [`answer_transfer`], AXFR gets NOTIMP (RFC 5936 section 4.1: AXFR is TCP only) and
/// IXFR our current SOA alone (RFC 1995 section 2: "the client should retry over TCP" when
/// behind; condensed UDP answers are not given).
pub fn answer_transfer_udp(
    request: &[u8],
    client: IpAddr,
    zones: &ZoneSet,
    policy: &TransferPolicy,
    now: SystemTime,
) -> Option<Vec<u8>> {
    let c = match check_transfer_request(request, client, zones, policy, now) {
        Ok(c) => c,
        Err(answer) => return answer,
    };
    if c.qtype == Rtype::AXFR {
        return error_answer(&c.msg, DRcode::NOTIMP, c.seq, now);
    }
    let mut answer = TransferAnswer {
        id: c.msg.header().id(),
        question: Some((c.qname, c.qtype)),
        records: vec![c.soa].into_iter(),
        pending: None,
        seq: c.seq,
        now,
        first: true,
        finished: false,
        single: None,
    };
    answer.next()
}

/// RFC 1995 section 3: the client's SOA is in the authority section.
fn ixfr_client_serial(msg: &Message<Vec<u8>>, zone: &Name) -> Option<u32> {
    let mut serial = None;
    let section = msg.authority().ok()?;
    crate::message::section_records(section, |r| {
        if r.rtype == Rtype::SOA && &r.owner == zone {
            serial = r.soa_serial();
        }
        Ok(())
    })
    .ok()?;
    serial
}

fn axfr_records(zone: &Zone, soa: Record) -> Vec<Record> {
    // RFC 5936 section 2.2: SOA, every other record, SOA.
    let mut records = zone_records(zone);
    records.push(soa);
    records
}

fn ixfr_records(zone: &Zone, soa: Record, client_serial: u32, journal: &Journal) -> Vec<Record> {
    if !serial::is_newer(zone.serial(), client_serial) {
        // RFC 1995 section 4: the client is current (or ahead): our SOA alone.
        return vec![soa];
    }
    let Some(chain) = journal.chain(zone.origin(), client_serial, zone.serial()) else {
        // RFC 1995 section 4: no differences to send, the whole zone in AXFR form.
        return axfr_records(zone, soa);
    };
    let mut out = vec![soa.clone()];
    for d in chain {
        out.push(d.old_soa.clone());
        out.extend(d.removed.iter().cloned());
        out.push(d.new_soa.clone());
        out.extend(d.added.iter().cloned());
    }
    out.push(soa);
    out
}

/// Answers a TSIG-signed (or plain) SOA query for one of our zones: the refresh check a
/// secondary makes before a transfer (RFC 1034 section 4.3.5). The answer engine serves plain
/// queries; signed ones need the key check done here. Same errors as [`answer_transfer`].
pub fn answer_soa_query(
    request: &[u8],
    client: IpAddr,
    zones: &ZoneSet,
    policy: &TransferPolicy,
    now: SystemTime,
) -> Option<Vec<u8>> {
    let mut msg = Message::from_octets(request.to_vec()).ok()?;
    if msg.header().qr() {
        return None;
    }
    let tx = match domain::tsig::ServerTransaction::request(&policy.keys, &mut msg, time48(now)) {
        Ok(tx) => tx,
        Err(e) => return tsig_error_response(e, &msg),
    };
    let key_name = tx.as_ref().and_then(|t| our_name(t.key().name()).ok());
    let finish = |mut b: domain::base::message_builder::AdditionalBuilder<Vec<u8>>,
                  tx: Option<domain::tsig::ServerTransaction<Arc<Key>>>| {
        if let Some(tx) = tx {
            tx.answer(&mut b, time48(now)).ok()?;
        }
        Some(b.finish())
    };
    let error = |rcode: DRcode, tx| {
        finish(
            MessageBuilder::new_vec()
                .start_error(&msg, rcode)
                .additional(),
            tx,
        )
    };
    let Ok(question) = msg.sole_question() else {
        return error(DRcode::FORMERR, tx);
    };
    let Ok(qname) = our_name(question.qname()) else {
        return error(DRcode::FORMERR, tx);
    };
    let Some(zone) = zones.get(&qname) else {
        return error(DRcode::NOTAUTH, tx);
    };
    if Rtype(question.qtype().to_int()) != Rtype::SOA {
        return error(DRcode::REFUSED, tx);
    }
    // Signed queries must pass the transfer ACL: the key is what grants access.
    if key_name.is_some() && !policy.acl(&qname).allows(client, key_name.as_ref()) {
        return error(DRcode::REFUSED, tx);
    }
    let soa = soa_record(zone)?;
    let mut b = MessageBuilder::new_vec()
        .start_answer(&msg, DRcode::NOERROR)
        .ok()?;
    b.header_mut().set_aa(true);
    b.push(record_for_push(&soa).ok()?).ok()?;
    finish(b.additional(), tx)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::acl::AclEntry;
    use crate::testutil::*;

    /// An SOA query for example.test signed by Knot's kdig 3.2 with
    /// `-y hmac-sha256:xfr-key.:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0`, time signed 1795318465.
    const KDIG_SIGNED_SOA: &str = "5df401200001000000000001076578616d706c6504746573740000060001\
        077866722d6b65790000fa00ff00000000003d0b686d61632d7368613235360000006b0262c1012c002031a7\
        2524f2ed350a65e48c5cad114b309f0a0ee842e6d506703b24d7bb00dc6d5df400000000";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn rcode_and_tsig_error(msg: &[u8]) -> (u8, Option<u16>) {
        let m = Message::from_octets(msg.to_vec()).unwrap();
        let tsig = m
            .additional()
            .unwrap()
            .last()
            .map(|r| r.unwrap())
            .and_then(|r| {
                r.to_record::<domain::rdata::Tsig<_, domain::base::name::ParsedName<_>>>()
                    .ok()
                    .flatten()
                    .map(|t| t.data().error().to_int())
            });
        (m.header().rcode().to_int(), tsig)
    }

    #[test]
    fn rfc8945_verifies_a_request_signed_by_kdig() {
        let request = unhex(KDIG_SIGNED_SOA);
        let signed_at = UNIX_EPOCH + Duration::from_secs(1_795_318_465);
        let zones = ZoneSet::new([zone(5, "")]);
        let policy = TransferPolicy {
            keys: KeyRing::new([key("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0")]),
            default_acl: Acl::new(vec![AclEntry {
                networks: vec![],
                key: Some(name("xfr-key.")),
            }]),
            ..TransferPolicy::default()
        };
        let client: IpAddr = "127.0.0.1".parse().unwrap();
        let ok = answer_soa_query(&request, client, &zones, &policy, signed_at).unwrap();
        assert_eq!(rcode_and_tsig_error(&ok), (0, Some(0)));
        // One octet changed: BADSIG (16), NOTAUTH (RFC 8945 section 5.2.3).
        let mut bad = request.clone();
        bad[13] ^= 0x20;
        let answer = answer_soa_query(&bad, client, &zones, &policy, signed_at).unwrap();
        assert_eq!(rcode_and_tsig_error(&answer), (9, Some(16)));
        // Outside the 300 s fudge: BADTIME (18).
        let late = signed_at + Duration::from_secs(301);
        let answer = answer_soa_query(&request, client, &zones, &policy, late).unwrap();
        assert_eq!(rcode_and_tsig_error(&answer), (9, Some(18)));
        // A key we do not know: BADKEY (17).
        let other = TransferPolicy {
            keys: KeyRing::new([TsigKey::new("other.", "hmac-sha256", "c2VjcmV0").unwrap()]),
            ..policy.clone()
        };
        let answer = answer_soa_query(&request, client, &zones, &other, signed_at).unwrap();
        assert_eq!(rcode_and_tsig_error(&answer), (9, Some(17)));
    }

    #[test]
    fn rfc5936_4_1_transfers_over_udp_as_knot_answers_them() {
        use crate::transfer::{Transfer, TransferKind};
        let zones = ZoneSet::new([zone(5, "")]);
        let client: IpAddr = "192.0.2.9".parse().unwrap();
        let allowed = TransferPolicy {
            default_acl: Acl::addresses([client]),
            ..TransferPolicy::default()
        };
        let request = |kind| {
            let current = (kind == TransferKind::Ixfr).then(|| zone(3, ""));
            Transfer::new(&origin(), kind, current, 7, None, wall())
                .unwrap()
                .1
        };
        let rcode = |b: &[u8]| Message::from_octets(b.to_vec()).unwrap().header().rcode();
        // AXFR: NOTIMP once allowed, REFUSED before that.
        let axfr = request(TransferKind::Axfr);
        let a = answer_transfer_udp(&axfr, client, &zones, &allowed, wall()).unwrap();
        assert_eq!(rcode(&a), DRcode::NOTIMP);
        let refused =
            answer_transfer_udp(&axfr, client, &zones, &TransferPolicy::default(), wall());
        assert_eq!(rcode(&refused.unwrap()), DRcode::REFUSED);
        // IXFR: our SOA alone, whatever the client holds.
        let ixfr = request(TransferKind::Ixfr);
        let a = answer_transfer_udp(&ixfr, client, &zones, &allowed, wall()).unwrap();
        let m = Message::from_octets(a).unwrap();
        assert_eq!(m.header().rcode(), DRcode::NOERROR);
        assert_eq!(m.header_counts().ancount(), 1);
    }

    #[test]
    fn rfc1995_journal_chains_and_bounds() {
        let v: Vec<_> = (1..=5)
            .map(|s| zone(s, &format!("x TXT \"{s}\"\n")))
            .collect();
        let mut j = Journal::new(3);
        for w in v.windows(2) {
            j.record_change(&w[0], &w[1]);
        }
        assert_eq!(j.len(&origin()), 3);
        assert!(j.chain(&origin(), 1, 5).is_none(), "oldest step dropped");
        assert_eq!(j.chain(&origin(), 2, 5).map(|c| c.len()), Some(3));
        assert_eq!(j.chain(&origin(), 3, 4).map(|c| c.len()), Some(1));
        // A serial going backwards breaks the history.
        j.record_change(&v[4], &v[0]);
        assert_eq!(j.len(&origin()), 0);
    }
}
