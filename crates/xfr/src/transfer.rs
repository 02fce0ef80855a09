//! The secondary's side of a transfer, without I/O: build the request, then feed the response
//! messages one at a time until the transfer is complete (RFC 5936 for AXFR, RFC 1995 for IXFR).
//!
//! Nothing is applied until the whole transfer has arrived and checked out: a cut, a wrong
//! serial, a bad signature or a zone that fails its checks yields an error, and the caller keeps
//! serving what it had.

use std::sync::Arc;
use std::time::SystemTime;

use anyns_wire::{Class, Name, Rcode, Rtype};
use anyns_zone::{Record, Zone, ZoneBuilder, ZoneDiff, ZoneErrors, apply_diffs, soa_serial};
use domain::base::iana::Opcode as DOpcode;
use domain::base::message_builder::AdditionalBuilder;
use domain::tsig::{ClientSequence, ClientTransaction, Key};

use crate::message::{
    MessageError, RequestSpec, build_request, message, parse_header, section_records,
};
use crate::serial;
use crate::tsig::{TsigError, TsigKey, time48};

/// Records a transfer may carry before we give up on it, so that a primary cannot exhaust our
/// memory. Far above any zone we expect; configurable per transfer.
pub const DEFAULT_MAX_RECORDS: usize = 20_000_000;

/// Which transfer to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferKind {
    Axfr,
    /// Incremental from the serial of the zone we hold (RFC 1995 section 3).
    Ixfr,
}

/// Why a transfer or an SOA check failed. Each variant maps to what the secondary does next.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransferError {
    /// The primary answered with an error RCODE (REFUSED, NOTAUTH, NOTIMP...).
    #[error("the primary answered {0}")]
    Rcode(Rcode),
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error(transparent)]
    Tsig(#[from] TsigError),
    #[error("the transfer ended before its closing SOA")]
    Incomplete,
    /// The IXFR response cannot be used (does not fit our copy, or asks for a full transfer):
    /// fall back to AXFR (RFC 1995 section 4).
    #[error("incremental transfer unusable: {0}")]
    IxfrUnusable(String),
    #[error("the transferred zone fails its checks: {0}")]
    Zone(ZoneErrors),
    #[error("the transfer holds more than {0} records")]
    TooLarge(usize),
    /// Reported by the driver: connection refused, reset, closed.
    #[error("network: {0}")]
    Network(String),
    #[error("timed out")]
    Timeout,
    /// The task working on the transfer ended abnormally (a bug, or shutdown).
    #[error("internal error: {0}")]
    Internal(String),
}

impl TransferError {
    /// Whether an IXFR that failed this way is worth retrying as AXFR from the same primary.
    pub fn ixfr_fallback(&self) -> bool {
        matches!(
            self,
            TransferError::Rcode(_)
                | TransferError::Malformed(_)
                | TransferError::Incomplete
                | TransferError::IxfrUnusable(_)
                | TransferError::Zone(_)
        )
    }
}

impl From<MessageError> for TransferError {
    fn from(e: MessageError) -> Self {
        TransferError::Malformed(e.0)
    }
}

/// A complete, checked transfer.
#[derive(Debug)]
pub enum Transferred {
    /// The primary's serial is not newer than ours (RFC 1995 section 4: a single SOA).
    UpToDate { serial: u32 },
    /// A whole new zone (AXFR, or an IXFR answered in AXFR form).
    Full(Zone),
    /// The current zone with the differences applied.
    Incremental { zone: Zone, diffs: Vec<ZoneDiff> },
}

impl Transferred {
    /// The new zone, if there is one.
    pub fn zone(&self) -> Option<&Zone> {
        match self {
            Transferred::UpToDate { .. } => None,
            Transferred::Full(zone) | Transferred::Incremental { zone, .. } => Some(zone),
        }
    }
}

/// What one response message did.
#[derive(Debug)]
pub enum Progress {
    /// More messages are needed.
    More,
    Done(Transferred),
}

/// The SOA record of a zone, as used in an IXFR request and response.
pub fn soa_record(zone: &Zone) -> Option<Record> {
    let soa = zone.soa()?;
    let rdata = soa.rdatas().next()?;
    Some(Record::new(
        zone.origin().clone(),
        Rtype::SOA,
        soa.ttl,
        rdata,
    ))
}

type Sequence = ClientSequence<Arc<Key>>;

/// Checks the header and question of one response to our request.
fn check_response(
    msg: &domain::base::Message<Vec<u8>>,
    id: u16,
    zone: &Name,
    qtype: Rtype,
    question_required: bool,
) -> Result<(), TransferError> {
    let p = parse_header(msg)?;
    if p.id != id {
        return Err(TransferError::Malformed(format!(
            "message ID {} does not match the request's {id}",
            p.id
        )));
    }
    if !p.qr || p.opcode != 0 {
        return Err(TransferError::Malformed("not a response to a query".into()));
    }
    if p.rcode != Rcode::NOERROR {
        return Err(TransferError::Rcode(p.rcode));
    }
    if p.tc {
        return Err(TransferError::Malformed("truncated (TC) response".into()));
    }
    match &p.question {
        Some((name, t, class))
            if p.qdcount != 1 || name != zone || *t != qtype || *class != Class::IN =>
        {
            return Err(TransferError::Malformed(format!(
                "question {name} {t} does not match {zone} {qtype}"
            )));
        }
        Some(_) => {}
        // RFC 5936 section 2.2.1: the first message carries the question; later ones may not.
        None if question_required => {
            return Err(TransferError::Malformed(
                "response without a question".into(),
            ));
        }
        None => {}
    }
    Ok(())
}

/// A response that failed TSIG verification; an unsigned error answer says why in its RCODE.
fn tsig_failure(
    key: &TsigKey,
    msg: &domain::base::Message<Vec<u8>>,
    e: domain::tsig::ValidationError,
) -> TransferError {
    let rcode = msg.header().rcode();
    if rcode == domain::base::iana::Rcode::NOERROR {
        TransferError::Tsig(key.rejected(e))
    } else {
        TransferError::Tsig(key.rejected(format!("{e}; the primary answered {rcode}")))
    }
}

fn sign_request(
    builder: &mut AdditionalBuilder<Vec<u8>>,
    key: Option<&TsigKey>,
    now: SystemTime,
) -> Result<Option<Sequence>, TransferError> {
    match key {
        None => Ok(None),
        Some(k) => Sequence::request(k.key(), builder, time48(now))
            .map(Some)
            .map_err(|_| TransferError::Tsig(TsigError::NoSpace)),
    }
}

/// An SOA query to a primary (RFC 1034 section 4.3.5: the secondary's refresh check).
pub struct SoaQuery {
    zone: Name,
    id: u16,
    tsig: Option<(TsigKey, ClientTransaction<Arc<Key>>)>,
}

impl SoaQuery {
    /// The query and its request bytes (signed when `key` is given).
    pub fn new(
        zone: &Name,
        id: u16,
        key: Option<&TsigKey>,
        now: SystemTime,
    ) -> Result<(SoaQuery, Vec<u8>), TransferError> {
        let mut builder = build_request(&RequestSpec {
            id,
            opcode: DOpcode::QUERY,
            qname: zone,
            qtype: Rtype::SOA,
            aa: false,
            answer: &[],
            authority: &[],
        })
        .map_err(|_| TransferError::Malformed("request too large".into()))?;
        let tsig = match key {
            None => None,
            Some(k) => Some((
                k.clone(),
                ClientTransaction::request(k.key(), &mut builder, time48(now))
                    .map_err(|_| TransferError::Tsig(TsigError::NoSpace))?,
            )),
        };
        let query = SoaQuery {
            zone: zone.clone(),
            id,
            tsig,
        };
        Ok((query, builder.finish()))
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    /// The primary's serial from its answer.
    pub fn response(&self, bytes: Vec<u8>, now: SystemTime) -> Result<u32, TransferError> {
        let mut msg = message(bytes)?;
        if let Some((key, tx)) = &self.tsig {
            tx.answer(&mut msg, time48(now))
                .map_err(|e| tsig_failure(key, &msg, e))?;
        }
        check_response(&msg, self.id, &self.zone, Rtype::SOA, true)?;
        let mut serial = None;
        section_records(msg.answer().map_err(MessageError::from)?, |r| {
            if r.rtype == Rtype::SOA && r.owner == self.zone {
                serial = soa_serial(&r.rdata);
            }
            Ok(())
        })?;
        serial.ok_or_else(|| {
            TransferError::Malformed(format!("no SOA for {} in the answer", self.zone))
        })
    }
}

enum State {
    /// Waiting for the first record: the primary's current SOA.
    Start,
    /// Only the first SOA seen so far.
    FirstSoa(Record),
    /// RFC 5936 form: every record up to the closing SOA, added to the new zone as it arrives.
    Axfr {
        soa: Record,
        zone: Box<ZoneBuilder>,
    },
    /// RFC 1995 section 4 form, inside the deletions of a step (after its old SOA).
    IxfrDelete {
        last: Record,
        diffs: Vec<ZoneDiff>,
        old_soa: Record,
        removed: Vec<Record>,
    },
    /// Inside the additions of a step (after its new SOA).
    IxfrAdd {
        last: Record,
        diffs: Vec<ZoneDiff>,
        diff: ZoneDiff,
    },
    /// The closing SOA has been seen.
    Complete(Option<Transferred>),
    Failed,
}

/// One AXFR or IXFR, from the request to the new zone.
pub struct Transfer {
    zone: Name,
    id: u16,
    kind: TransferKind,
    current: Option<Arc<Zone>>,
    tsig: Option<(TsigKey, Sequence)>,
    state: State,
    first_message: bool,
    records: usize,
    max_records: usize,
}

impl Transfer {
    /// Starts a transfer of `zone`. IXFR needs `current` (the zone we hold) for its serial; with
    /// none it asks for AXFR. Returns the request message to send.
    pub fn new(
        zone: &Name,
        kind: TransferKind,
        current: Option<Arc<Zone>>,
        id: u16,
        key: Option<&TsigKey>,
        now: SystemTime,
    ) -> Result<(Transfer, Vec<u8>), TransferError> {
        let current_soa = current.as_deref().and_then(soa_record);
        let kind = match (&kind, &current_soa) {
            (TransferKind::Ixfr, Some(_)) => TransferKind::Ixfr,
            _ => TransferKind::Axfr,
        };
        let (qtype, authority) = match kind {
            TransferKind::Axfr => (Rtype::AXFR, Vec::new()),
            TransferKind::Ixfr => (Rtype::IXFR, current_soa.into_iter().collect()),
        };
        let mut builder = build_request(&RequestSpec {
            id,
            opcode: DOpcode::QUERY,
            qname: zone,
            qtype,
            aa: false,
            answer: &[],
            authority: &authority,
        })
        .map_err(|_| TransferError::Malformed("request too large".into()))?;
        let seq = sign_request(&mut builder, key, now)?;
        let transfer = Transfer {
            zone: zone.clone(),
            id,
            kind,
            current,
            tsig: key.cloned().zip(seq),
            state: State::Start,
            first_message: true,
            records: 0,
            max_records: DEFAULT_MAX_RECORDS,
        };
        Ok((transfer, builder.finish()))
    }

    pub fn with_max_records(mut self, max: usize) -> Self {
        self.max_records = max;
        self
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    /// The kind actually requested (IXFR becomes AXFR when there is no current zone).
    pub fn kind(&self) -> TransferKind {
        self.kind
    }

    /// Feeds one response message. After an error the transfer is dead: every later call fails.
    pub fn receive(&mut self, bytes: Vec<u8>, now: SystemTime) -> Result<Progress, TransferError> {
        if matches!(self.state, State::Failed | State::Complete(_)) {
            return Err(TransferError::Malformed(
                "message after the end of the transfer".into(),
            ));
        }
        let result = self.receive_inner(bytes, now);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// The stream ended (connection closed) before the transfer completed.
    pub fn eof(&mut self) -> TransferError {
        self.state = State::Failed;
        TransferError::Incomplete
    }

    fn receive_inner(
        &mut self,
        bytes: Vec<u8>,
        now: SystemTime,
    ) -> Result<Progress, TransferError> {
        let mut msg = message(bytes)?;
        if let Some((key, seq)) = &mut self.tsig {
            // RFC 8945 section 5.3.1: every message signed, or at least every 100th and the last
            // (checked when the transfer completes).
            seq.answer(&mut msg, time48(now))
                .map_err(|e| tsig_failure(key, &msg, e))?;
        }
        let qtype = match self.kind {
            TransferKind::Axfr => Rtype::AXFR,
            TransferKind::Ixfr => Rtype::IXFR,
        };
        check_response(&msg, self.id, &self.zone, qtype, self.first_message)?;
        self.first_message = false;
        let mut records = Vec::new();
        section_records(msg.answer().map_err(MessageError::from)?, |r| {
            records.push(r);
            Ok(())
        })?;
        if records.is_empty() {
            return Err(TransferError::Malformed(
                "response message without records".into(),
            ));
        }
        for r in records {
            self.record(r)?;
        }
        self.end_of_message()
    }

    fn record(&mut self, r: Record) -> Result<(), TransferError> {
        self.records += 1;
        if self.records > self.max_records {
            return Err(TransferError::TooLarge(self.max_records));
        }
        let is_soa = r.rtype == Rtype::SOA && r.owner == self.zone;
        let state = std::mem::replace(&mut self.state, State::Failed);
        self.state = match state {
            State::Start => {
                if !is_soa {
                    return Err(TransferError::Malformed(format!(
                        "the transfer starts with {r}, not the SOA of {}",
                        self.zone
                    )));
                }
                State::FirstSoa(r)
            }
            State::FirstSoa(first) => {
                let ours = self.current.as_ref().map(|z| z.serial());
                if self.kind == TransferKind::Ixfr && is_soa {
                    // RFC 1995 section 4: the old SOA starts the first difference, at our serial.
                    if Some(soa_serial(&r.rdata).unwrap_or(0)) != ours {
                        return Err(TransferError::IxfrUnusable(format!(
                            "the first difference starts at serial {}, we hold {}",
                            soa_serial(&r.rdata).unwrap_or(0),
                            ours.unwrap_or(0)
                        )));
                    }
                    State::IxfrDelete {
                        last: first,
                        diffs: Vec::new(),
                        old_soa: r,
                        removed: Vec::new(),
                    }
                } else if is_soa {
                    // AXFR: an SOA right after the first would be a zone of one record.
                    let zone = self.new_zone(&first);
                    self.finish_axfr(first, *zone, &r)?
                } else {
                    let mut zone = self.new_zone(&first);
                    zone.add(r.owner, r.rtype, r.ttl, &r.rdata, None);
                    State::Axfr { soa: first, zone }
                }
            }
            State::Axfr { soa, mut zone } => {
                if is_soa {
                    self.finish_axfr(soa, *zone, &r)?
                } else {
                    zone.add(r.owner, r.rtype, r.ttl, &r.rdata, None);
                    State::Axfr { soa, zone }
                }
            }
            State::IxfrDelete {
                last,
                diffs,
                old_soa,
                removed,
            } => {
                if is_soa {
                    let diff = ZoneDiff {
                        old_soa,
                        new_soa: r,
                        removed,
                        added: Vec::new(),
                    };
                    if !serial::is_newer(diff.to_serial(), diff.from_serial()) {
                        return Err(TransferError::IxfrUnusable(format!(
                            "a difference goes from serial {} to {}, not forwards",
                            diff.from_serial(),
                            diff.to_serial()
                        )));
                    }
                    State::IxfrAdd { last, diffs, diff }
                } else {
                    let mut removed = removed;
                    removed.push(r);
                    State::IxfrDelete {
                        last,
                        diffs,
                        old_soa,
                        removed,
                    }
                }
            }
            State::IxfrAdd {
                last,
                mut diffs,
                mut diff,
            } => {
                if !is_soa {
                    diff.added.push(r);
                    State::IxfrAdd { last, diffs, diff }
                } else {
                    let serial = soa_serial(&r.rdata).unwrap_or(0);
                    if serial != diff.to_serial() {
                        return Err(TransferError::IxfrUnusable(format!(
                            "a difference ends at serial {} but the next starts at {serial}",
                            diff.to_serial()
                        )));
                    }
                    diffs.push(diff);
                    if serial == last.soa_serial().unwrap_or(0) {
                        // The closing SOA: the last difference reached the primary's serial.
                        self.finish_ixfr(diffs)?
                    } else {
                        State::IxfrDelete {
                            last,
                            diffs,
                            old_soa: r,
                            removed: Vec::new(),
                        }
                    }
                }
            }
            State::Complete(_) => {
                return Err(TransferError::Malformed(format!(
                    "{r} after the closing SOA"
                )));
            }
            State::Failed => return Err(TransferError::Malformed("transfer failed".into())),
        };
        Ok(())
    }

    /// A new zone holding the opening SOA.
    fn new_zone(&self, soa: &Record) -> Box<ZoneBuilder> {
        let mut zone = Box::new(ZoneBuilder::new(self.zone.clone()));
        zone.add(soa.owner.clone(), soa.rtype, soa.ttl, &soa.rdata, None);
        zone
    }

    fn finish_axfr(
        &self,
        soa: Record,
        zone: ZoneBuilder,
        closing: &Record,
    ) -> Result<State, TransferError> {
        if closing.soa_serial() != soa.soa_serial() {
            return Err(TransferError::Malformed(format!(
                "the closing SOA has serial {}, the opening one {}",
                closing.soa_serial().unwrap_or(0),
                soa.soa_serial().unwrap_or(0)
            )));
        }
        let built = zone.build().map_err(TransferError::Zone)?;
        Ok(State::Complete(Some(Transferred::Full(built.zone))))
    }

    fn finish_ixfr(&self, diffs: Vec<ZoneDiff>) -> Result<State, TransferError> {
        let Some(current) = &self.current else {
            return Err(TransferError::IxfrUnusable("no zone to apply to".into()));
        };
        let built =
            apply_diffs(current, &diffs).map_err(|e| TransferError::IxfrUnusable(e.to_string()))?;
        Ok(State::Complete(Some(Transferred::Incremental {
            zone: built.zone,
            diffs,
        })))
    }

    fn end_of_message(&mut self) -> Result<Progress, TransferError> {
        match &mut self.state {
            State::Complete(done) => {
                let done = done.take();
                if let Some((key, seq)) = self.tsig.take() {
                    seq.done()
                        .map_err(|e| TransferError::Tsig(key.rejected(e)))?;
                }
                done.map(Progress::Done)
                    .ok_or_else(|| TransferError::Malformed("transfer already complete".into()))
            }
            State::FirstSoa(first) if self.kind == TransferKind::Ixfr => {
                // A lone SOA (RFC 1995 section 4): we are current, or the primary cannot send
                // differences and a full transfer is needed.
                let theirs = first.soa_serial().unwrap_or(0);
                let ours = self.current.as_ref().map_or(0, |z| z.serial());
                if serial::is_newer(theirs, ours) {
                    return Err(TransferError::IxfrUnusable(format!(
                        "the primary sent only its SOA (serial {theirs}), a full transfer is needed"
                    )));
                }
                if let Some((key, seq)) = self.tsig.take() {
                    seq.done()
                        .map_err(|e| TransferError::Tsig(key.rejected(e)))?;
                }
                self.state = State::Complete(None);
                Ok(Progress::Done(Transferred::UpToDate { serial: theirs }))
            }
            _ => Ok(Progress::More),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use anyns_zone::{ZoneSet, zone_records};

    use super::*;
    use crate::acl::Acl;
    use crate::primary::{Journal, TransferPolicy, answer_transfer};
    use crate::testutil::*;

    const ID: u16 = 0x1234;

    fn client() -> IpAddr {
        "192.0.2.53".parse().unwrap()
    }

    fn open_policy(keys: &[TsigKey]) -> TransferPolicy {
        TransferPolicy {
            keys: crate::tsig::KeyRing::new(keys.iter().cloned()),
            default_acl: Acl::addresses([client()]),
            ..TransferPolicy::default()
        }
    }

    /// Runs a transfer of `current` → whatever `served` holds, through our primary.
    fn run(
        kind: TransferKind,
        current: Option<Arc<Zone>>,
        served: &Arc<Zone>,
        journal: &Journal,
        policy: &TransferPolicy,
        client_key: Option<&TsigKey>,
    ) -> (Result<Transferred, TransferError>, usize) {
        let (mut t, request) =
            Transfer::new(&origin(), kind, current, ID, client_key, wall()).unwrap();
        let zones = ZoneSet::new([served.clone()]);
        let messages: Vec<Vec<u8>> =
            answer_transfer(&request, client(), &zones, journal, policy, wall()).collect();
        let n = messages.len();
        for m in messages {
            match t.receive(m, wall()) {
                Ok(Progress::More) => {}
                Ok(Progress::Done(done)) => return (Ok(done), n),
                Err(e) => return (Err(e), n),
            }
        }
        (Err(t.eof()), n)
    }

    #[test]
    fn rfc5936_axfr_multi_message_round_trip() {
        let served = big_zone(10, 3000);
        let (result, messages) = run(
            TransferKind::Axfr,
            None,
            &served,
            &Journal::default(),
            &open_policy(&[]),
            None,
        );
        assert!(messages > 3, "{messages} messages");
        let Ok(Transferred::Full(zone)) = result else {
            panic!("{result:?}")
        };
        assert_eq!(zone.serial(), 10);
        assert_eq!(zone_records(&zone), zone_records(&served));
    }

    #[test]
    fn rfc8945_axfr_signed_every_message() {
        let k = key("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0");
        let served = big_zone(10, 2000);
        let policy = TransferPolicy {
            default_acl: Acl::new(vec![crate::acl::AclEntry {
                networks: vec![],
                key: Some(k.name().clone()),
            }]),
            ..open_policy(std::slice::from_ref(&k))
        };
        let (result, messages) = run(
            TransferKind::Axfr,
            None,
            &served,
            &Journal::default(),
            &policy,
            Some(&k),
        );
        assert!(messages > 1);
        assert!(matches!(result, Ok(Transferred::Full(_))), "{result:?}");
        // Unsigned, the ACL that requires the key refuses.
        let (result, _) = run(
            TransferKind::Axfr,
            None,
            &served,
            &Journal::default(),
            &policy,
            None,
        );
        assert_eq!(result.unwrap_err(), TransferError::Rcode(Rcode::REFUSED));
    }

    #[test]
    fn rfc8945_wrong_key_is_named_and_changes_nothing() {
        let ours = key("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0");
        let theirs = key("b3RoZXJvdGhlcm90aGVyb3RoZXJvdGhlcg==");
        let served = zone(2, "");
        let (result, _) = run(
            TransferKind::Axfr,
            None,
            &served,
            &Journal::default(),
            &open_policy(&[theirs]),
            Some(&ours),
        );
        let err = result.unwrap_err();
        assert!(matches!(err, TransferError::Tsig(_)), "{err}");
        assert!(err.to_string().contains("xfr-key."), "{err}");
        assert!(err.to_string().contains("NOTAUTH"), "{err}");
    }

    #[test]
    fn rfc8945_tampered_or_unsigned_messages_fail() {
        let k = key("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0");
        let served = big_zone(3, 1500);
        let policy = open_policy(std::slice::from_ref(&k));
        let (mut t, request) =
            Transfer::new(&origin(), TransferKind::Axfr, None, ID, Some(&k), wall()).unwrap();
        let zones = ZoneSet::new([served.clone()]);
        let mut msgs: Vec<Vec<u8>> = answer_transfer(
            &request,
            client(),
            &zones,
            &Journal::default(),
            &policy,
            wall(),
        )
        .collect();
        assert!(msgs.len() >= 2);
        // Flip one octet of RDATA in the second message: its MAC no longer matches.
        let last = msgs[1].len() - 120;
        msgs[1][last] ^= 1;
        assert!(matches!(
            t.receive(msgs[0].clone(), wall()),
            Ok(Progress::More)
        ));
        let err = t.receive(msgs[1].clone(), wall()).unwrap_err();
        assert!(err.to_string().contains("xfr-key."), "{err}");
        // An unsigned response to a signed request.
        let (mut t, _) =
            Transfer::new(&origin(), TransferKind::Axfr, None, ID, Some(&k), wall()).unwrap();
        let unsigned = response(ID, Rtype::AXFR, true, &[soa(3), soa(3)]);
        assert!(matches!(
            t.receive(unsigned, wall()),
            Err(TransferError::Tsig(_))
        ));
    }

    #[test]
    fn rfc8945_5_3_1_last_message_must_be_signed() {
        let k = key("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0");
        let served = big_zone(3, 1500);
        let policy = open_policy(std::slice::from_ref(&k));
        let (mut t, request) =
            Transfer::new(&origin(), TransferKind::Axfr, None, ID, Some(&k), wall()).unwrap();
        let zones = ZoneSet::new([served.clone()]);
        let mut msgs: Vec<Vec<u8>> = answer_transfer(
            &request,
            client(),
            &zones,
            &Journal::default(),
            &policy,
            wall(),
        )
        .collect();
        // Strip the TSIG record from the last message.
        let last = msgs.pop().unwrap();
        let mut m = domain::base::Message::from_octets(last).unwrap();
        m.remove_last_additional();
        let stripped = m.as_slice().to_vec();
        let end = stripped.len() - tsig_len(&stripped);
        msgs.push(stripped[..end].to_vec());
        let mut outcome = Ok(Progress::More);
        for msg in msgs {
            outcome = t.receive(msg, wall());
        }
        assert!(
            matches!(outcome, Err(TransferError::Tsig(_))),
            "{outcome:?}"
        );
    }

    /// Length of the trailing TSIG record that `remove_last_additional` uncounted.
    fn tsig_len(msg: &[u8]) -> usize {
        // Search backwards for the TSIG type code after the key name "xfr-key.".
        let pat = b"\x07xfr-key\x00\x00\xfa\x00\xff";
        let pos = msg.windows(pat.len()).rposition(|w| w == pat).unwrap();
        msg.len() - pos
    }

    #[test]
    fn rfc5936_cut_mid_stream_is_incomplete() {
        let served = big_zone(4, 2000);
        let (mut t, request) =
            Transfer::new(&origin(), TransferKind::Axfr, None, ID, None, wall()).unwrap();
        let zones = ZoneSet::new([served]);
        let mut msgs: Vec<Vec<u8>> = answer_transfer(
            &request,
            client(),
            &zones,
            &Journal::default(),
            &open_policy(&[]),
            wall(),
        )
        .collect();
        msgs.pop();
        for m in msgs {
            assert!(matches!(t.receive(m, wall()), Ok(Progress::More)));
        }
        assert_eq!(t.eof(), TransferError::Incomplete);
    }

    #[test]
    fn rfc5936_2_2_closing_soa_serial_and_message_id_checked() {
        let body = [
            soa(5),
            Record::new(origin(), Rtype::NS, 300, b"\x02ns\x07example\x04test\x00"),
            a("ns.example.test", [192, 0, 2, 1]),
        ];
        let (mut t, _) =
            Transfer::new(&origin(), TransferKind::Axfr, None, ID, None, wall()).unwrap();
        let mut recs = body.to_vec();
        recs.push(soa(6));
        let err = t
            .receive(response(ID, Rtype::AXFR, true, &recs), wall())
            .unwrap_err();
        assert!(err.to_string().contains("closing SOA"), "{err}");
        let (mut t, _) =
            Transfer::new(&origin(), TransferKind::Axfr, None, ID, None, wall()).unwrap();
        let err = t
            .receive(response(ID + 1, Rtype::AXFR, true, &recs), wall())
            .unwrap_err();
        assert!(err.to_string().contains("message ID"), "{err}");
        // Correct: SOA ... SOA, across two messages, the second without a question.
        let (mut t, _) =
            Transfer::new(&origin(), TransferKind::Axfr, None, ID, None, wall()).unwrap();
        assert!(matches!(
            t.receive(response(ID, Rtype::AXFR, true, &body[..2]), wall()),
            Ok(Progress::More)
        ));
        let done = t.receive(
            response(ID, Rtype::AXFR, false, &[body[2].clone(), soa(5)]),
            wall(),
        );
        assert!(
            matches!(done, Ok(Progress::Done(Transferred::Full(_)))),
            "{done:?}"
        );
        // Records after the closing SOA are refused.
        let (mut t, _) =
            Transfer::new(&origin(), TransferKind::Axfr, None, ID, None, wall()).unwrap();
        let mut recs = body.to_vec();
        recs.push(soa(5));
        recs.push(a("x.example.test", [1, 2, 3, 4]));
        assert!(
            t.receive(response(ID, Rtype::AXFR, true, &recs), wall())
                .is_err()
        );
    }

    #[test]
    fn axfr_of_a_broken_zone_fails_its_checks() {
        let recs = [
            soa(5),
            Record::new(origin(), Rtype::NS, 300, b"\x02ns\x07example\x04test\x00"),
            // In-zone name server without an address: missing glue.
            soa(5),
        ];
        let (mut t, _) =
            Transfer::new(&origin(), TransferKind::Axfr, None, ID, None, wall()).unwrap();
        let err = t
            .receive(response(ID, Rtype::AXFR, true, &recs), wall())
            .unwrap_err();
        assert!(matches!(err, TransferError::Zone(_)), "{err}");
    }

    #[test]
    fn rfc1995_4_incremental_from_journal() {
        let v1 = zone(1, "a A 192.0.2.2\n");
        let v2 = zone(2, "a A 192.0.2.3\n");
        let v3 = zone(3, "a A 192.0.2.3\nb TXT \"new\"\n");
        let mut journal = Journal::new(8);
        journal.record_change(&v1, &v2);
        journal.record_change(&v2, &v3);
        let (result, _) = run(
            TransferKind::Ixfr,
            Some(v1.clone()),
            &v3,
            &journal,
            &open_policy(&[]),
            None,
        );
        let Ok(Transferred::Incremental { zone: got, diffs }) = result else {
            panic!("{result:?}")
        };
        assert_eq!(diffs.len(), 2);
        assert_eq!(zone_records(&got), zone_records(&v3));
        // From v2 only the last step is needed.
        let (result, _) = run(
            TransferKind::Ixfr,
            Some(v2),
            &v3,
            &journal,
            &open_policy(&[]),
            None,
        );
        assert!(
            matches!(result, Ok(Transferred::Incremental { ref diffs, .. }) if diffs.len() == 1)
        );
        // Current: a single SOA.
        let (result, _) = run(
            TransferKind::Ixfr,
            Some(v3.clone()),
            &v3,
            &journal,
            &open_policy(&[]),
            None,
        );
        assert!(
            matches!(result, Ok(Transferred::UpToDate { serial: 3 })),
            "{result:?}"
        );
        // Beyond the journal: the whole zone in AXFR form.
        let v0 = zone(0, "");
        let (result, _) = run(
            TransferKind::Ixfr,
            Some(v0),
            &v3,
            &journal,
            &open_policy(&[]),
            None,
        );
        assert!(matches!(result, Ok(Transferred::Full(_))), "{result:?}");
    }

    #[test]
    fn rfc1995_4_difference_that_does_not_fit_is_unusable() {
        let ours = zone(1, "a A 192.0.2.2\n");
        // Deletes a record we do not have.
        let recs = [
            soa(2),
            soa(1),
            a("a.example.test", [192, 0, 2, 99]),
            soa(2),
            a("a.example.test", [192, 0, 2, 3]),
            soa(2),
        ];
        let (mut t, _) = Transfer::new(
            &origin(),
            TransferKind::Ixfr,
            Some(ours.clone()),
            ID,
            None,
            wall(),
        )
        .unwrap();
        let err = t
            .receive(response(ID, Rtype::IXFR, true, &recs), wall())
            .unwrap_err();
        assert!(
            matches!(err, TransferError::IxfrUnusable(_)) && err.ixfr_fallback(),
            "{err}"
        );
        // Starts at a serial we do not hold.
        let recs = [soa(3), soa(2), soa(3), soa(3)];
        let (mut t, _) = Transfer::new(
            &origin(),
            TransferKind::Ixfr,
            Some(ours.clone()),
            ID,
            None,
            wall(),
        )
        .unwrap();
        assert!(matches!(
            t.receive(response(ID, Rtype::IXFR, true, &recs), wall()),
            Err(TransferError::IxfrUnusable(_))
        ));
        // A lone newer SOA asks for a full transfer.
        let (mut t, _) =
            Transfer::new(&origin(), TransferKind::Ixfr, Some(ours), ID, None, wall()).unwrap();
        assert!(matches!(
            t.receive(response(ID, Rtype::IXFR, true, &[soa(9)]), wall()),
            Err(TransferError::IxfrUnusable(_))
        ));
    }

    #[test]
    fn refused_and_unknown_zone_rcodes() {
        let served = zone(1, "");
        let policy = TransferPolicy::default();
        let (result, _) = run(
            TransferKind::Axfr,
            None,
            &served,
            &Journal::default(),
            &policy,
            None,
        );
        assert_eq!(result.unwrap_err(), TransferError::Rcode(Rcode::REFUSED));
        let (mut t, request) = Transfer::new(
            &name("other.test"),
            TransferKind::Axfr,
            None,
            ID,
            None,
            wall(),
        )
        .unwrap();
        let zones = ZoneSet::new([served]);
        let msgs: Vec<_> = answer_transfer(
            &request,
            client(),
            &zones,
            &Journal::default(),
            &open_policy(&[]),
            wall(),
        )
        .collect();
        assert_eq!(msgs.len(), 1);
        let err = t.receive(msgs[0].clone(), wall()).unwrap_err();
        assert_eq!(err, TransferError::Rcode(Rcode::NOTAUTH));
    }

    #[test]
    fn soa_query_signed_round_trip() {
        let k = key("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0");
        let (q, request) = SoaQuery::new(&origin(), 99, Some(&k), wall()).unwrap();
        // The server side verifies with domain and signs its answer.
        let ring = crate::tsig::KeyRing::new([k.clone()]);
        let mut msg = domain::base::Message::from_octets(request).unwrap();
        let tx = domain::tsig::ServerTransaction::request(&ring, &mut msg, time48(wall()))
            .unwrap()
            .unwrap();
        let mut b = MessageBuilder::new_vec()
            .start_answer(&msg, domain::base::iana::Rcode::NOERROR)
            .unwrap();
        b.push(crate::message::record_for_push(&soa(42)).unwrap())
            .unwrap();
        let mut b = b.additional();
        tx.answer(&mut b, time48(wall())).unwrap();
        assert_eq!(q.response(b.finish(), wall()), Ok(42));
        let (q, _) = SoaQuery::new(&origin(), 99, None, wall()).unwrap();
        let err = q
            .response(response(98, Rtype::SOA, true, &[soa(1)]), wall())
            .unwrap_err();
        assert!(err.to_string().contains("message ID"));
    }

    use domain::base::message_builder::MessageBuilder;
}
