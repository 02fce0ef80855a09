//! NOTIFY (RFC 1996): answering the ones we receive as a secondary, and sending ours as a
//! primary, with retries, sans I/O.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyns_wire::{Name, Rcode, Rtype};
use anyns_zone::Record;
use domain::base::Message;
use domain::base::iana::{Opcode as DOpcode, Rcode as DRcode};
use domain::base::message_builder::MessageBuilder;
use domain::tsig::{ClientTransaction, Key, ServerTransaction};

use crate::acl::Acl;
use crate::message::{
    MessageError, RequestSpec, build_request, message, our_name, parse_header, section_records,
};
use crate::transfer::TransferError;
use crate::tsig::{KeyRing, TsigError, TsigKey, time48, tsig_error_response};

/// A NOTIFY we accepted: check this zone's primaries now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyReceived {
    pub zone: Name,
    /// The serial in the NOTIFY's answer section, if any (RFC 1996 section 3.7: a hint only).
    pub serial: Option<u32>,
    pub from: IpAddr,
}

/// The answer to a NOTIFY request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotifyAnswer {
    /// The response to send back; `None` when the input deserves none.
    pub response: Option<Vec<u8>>,
    /// Set when the NOTIFY was accepted.
    pub accepted: Option<NotifyReceived>,
}

/// Answers a NOTIFY received from `client`. `acl` gives, for a zone we are secondary for, who
/// may notify us about it; `None` for other zones (answered NOTAUTH). A signed NOTIFY is
/// verified with `keys` and answered signed (RFC 8945); one that fails is answered per RFC
/// 8945 section 5.2.
pub fn answer_notify<'a>(
    request: &[u8],
    client: IpAddr,
    keys: &KeyRing,
    acl: impl Fn(&Name) -> Option<&'a Acl>,
    now: SystemTime,
) -> NotifyAnswer {
    let Ok(mut msg) = Message::from_octets(request.to_vec()) else {
        return NotifyAnswer::default();
    };
    if msg.header().qr() || msg.header().opcode() != DOpcode::NOTIFY {
        return NotifyAnswer::default();
    }
    let tx = match ServerTransaction::request(keys, &mut msg, time48(now)) {
        Ok(tx) => tx,
        Err(e) => {
            let response = tsig_error_response(e, &msg);
            return NotifyAnswer {
                response,
                accepted: None,
            };
        }
    };
    let key_name = tx.as_ref().and_then(|t| our_name(t.key().name()).ok());
    let respond = |rcode: DRcode, tx: Option<ServerTransaction<Arc<Key>>>| -> Option<Vec<u8>> {
        let mut b = MessageBuilder::new_vec().start_error(&msg, rcode);
        // RFC 1996 section 4.7: the response echoes the question, with AA set.
        b.header_mut().set_aa(rcode == DRcode::NOERROR);
        let mut b = b.additional();
        if let Some(tx) = tx {
            tx.answer(&mut b, time48(now)).ok()?;
        }
        Some(b.finish())
    };
    let Ok(question) = msg.sole_question() else {
        return NotifyAnswer {
            response: respond(DRcode::FORMERR, tx),
            accepted: None,
        };
    };
    let Ok(zone) = our_name(question.qname()) else {
        return NotifyAnswer {
            response: respond(DRcode::FORMERR, tx),
            accepted: None,
        };
    };
    if Rtype(question.qtype().to_int()) != Rtype::SOA {
        // RFC 1996 section 3.2: only QTYPE SOA is defined.
        return NotifyAnswer {
            response: respond(DRcode::NOTIMP, tx),
            accepted: None,
        };
    }
    let Some(acl) = acl(&zone) else {
        return NotifyAnswer {
            response: respond(DRcode::NOTAUTH, tx),
            accepted: None,
        };
    };
    if !acl.allows(client, key_name.as_ref()) {
        return NotifyAnswer {
            response: respond(DRcode::REFUSED, tx),
            accepted: None,
        };
    }
    let mut serial = None;
    if let Ok(answer) = msg.answer() {
        let _ = section_records(answer, |r| {
            if r.rtype == Rtype::SOA && r.owner == zone {
                serial = r.soa_serial();
            }
            Ok(())
        });
    }
    NotifyAnswer {
        response: respond(DRcode::NOERROR, tx),
        accepted: Some(NotifyReceived {
            zone,
            serial,
            from: client,
        }),
    }
}

/// A NOTIFY we send, waiting for its answer.
pub struct NotifyRequest {
    id: u16,
    zone: Name,
    tsig: Option<(TsigKey, ClientTransaction<Arc<Key>>)>,
}

impl NotifyRequest {
    /// A NOTIFY for `zone` carrying its current SOA (RFC 1996 section 3.7), signed with `key`.
    pub fn new(
        zone: &Name,
        soa: Option<&Record>,
        id: u16,
        key: Option<&TsigKey>,
        now: SystemTime,
    ) -> Result<(NotifyRequest, Vec<u8>), TransferError> {
        let answer: Vec<Record> = soa.cloned().into_iter().collect();
        let mut builder = build_request(&RequestSpec {
            id,
            opcode: DOpcode::NOTIFY,
            qname: zone,
            qtype: Rtype::SOA,
            aa: true,
            answer: &answer,
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
        Ok((
            NotifyRequest {
                id,
                zone: zone.clone(),
                tsig,
            },
            builder.finish(),
        ))
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    /// Checks the answer: `Ok` when the secondary acknowledged the NOTIFY.
    pub fn response(&self, bytes: Vec<u8>, now: SystemTime) -> Result<(), TransferError> {
        let mut msg = message(bytes)?;
        if let Some((key, tx)) = &self.tsig {
            tx.answer(&mut msg, time48(now))
                .map_err(|e| TransferError::Tsig(key.rejected(e)))?;
        }
        let p = parse_header(&msg)?;
        if p.id != self.id || !p.qr || p.opcode != DOpcode::NOTIFY.to_int() {
            return Err(MessageError("not the answer to our NOTIFY".into()).into());
        }
        if p.rcode != Rcode::NOERROR {
            return Err(TransferError::Rcode(p.rcode));
        }
        if let Some((name, _, _)) = &p.question {
            if name != &self.zone {
                return Err(MessageError("answer for another zone".into()).into());
            }
        }
        Ok(())
    }
}

/// How NOTIFYs are retransmitted (RFC 1996 section 3.6: until answered, a few times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyRetry {
    pub first_interval: Duration,
    pub max_attempts: u32,
}

impl Default for NotifyRetry {
    fn default() -> Self {
        NotifyRetry {
            first_interval: Duration::from_secs(2),
            max_attempts: 5,
        }
    }
}

/// One NOTIFY to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySend {
    pub zone: Name,
    pub target: SocketAddr,
    pub attempt: u32,
}

struct Pending {
    zone: Name,
    target: SocketAddr,
    attempt: u32,
    due: Instant,
}

/// The primary's NOTIFY schedule: on a change, each secondary is notified and the NOTIFY
/// repeated with doubling intervals until it answers or the attempts run out.
#[derive(Default)]
pub struct Notifier {
    retry: NotifyRetry,
    pending: Vec<Pending>,
}

impl Notifier {
    pub fn new(retry: NotifyRetry) -> Self {
        Notifier {
            retry,
            pending: Vec::new(),
        }
    }

    /// `zone` changed: notify every target, replacing NOTIFYs still pending for it.
    pub fn zone_changed(&mut self, zone: &Name, targets: &[SocketAddr], now: Instant) {
        self.pending.retain(|p| &p.zone != zone);
        for &target in targets {
            self.pending.push(Pending {
                zone: zone.clone(),
                target,
                attempt: 0,
                due: now,
            });
        }
    }

    /// The secondary at `target` answered the NOTIFY for `zone`.
    pub fn acknowledged(&mut self, zone: &Name, target: SocketAddr) {
        self.pending
            .retain(|p| !(&p.zone == zone && p.target == target));
    }

    /// The NOTIFYs due at `now`; each is rescheduled for its retransmission.
    pub fn poll_transmit(&mut self, now: Instant) -> Vec<NotifySend> {
        let mut out = Vec::new();
        let retry = self.retry;
        let due = |p: &&mut Pending| p.due <= now && p.attempt < retry.max_attempts;
        for p in self.pending.iter_mut().filter(due) {
            p.attempt += 1;
            out.push(NotifySend {
                zone: p.zone.clone(),
                target: p.target,
                attempt: p.attempt,
            });
            p.due = now + retry.first_interval * 2u32.saturating_pow(p.attempt - 1);
        }
        out
    }

    /// Gives up on NOTIFYs whose last attempt went unanswered; returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<(Name, SocketAddr)> {
        let max = self.retry.max_attempts;
        let mut gone = Vec::new();
        self.pending.retain(|p| {
            let keep = !(p.attempt >= max && p.due <= now);
            if !keep {
                gone.push((p.zone.clone(), p.target));
            }
            keep
        });
        gone
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.due).min()
    }

    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn from() -> IpAddr {
        "192.0.2.1".parse().unwrap()
    }

    #[test]
    fn rfc1996_notify_round_trip_with_tsig_and_acl() {
        let k = key("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0");
        let keys = KeyRing::new([k.clone()]);
        let acl = Acl::addresses([from()]);
        let (req, bytes) =
            NotifyRequest::new(&origin(), Some(&soa(9)), 77, Some(&k), wall()).unwrap();
        let ans = answer_notify(
            &bytes,
            from(),
            &keys,
            |z| (z == &origin()).then_some(&acl),
            wall(),
        );
        assert_eq!(
            ans.accepted,
            Some(NotifyReceived {
                zone: origin(),
                serial: Some(9),
                from: from()
            })
        );
        assert_eq!(req.response(ans.response.unwrap(), wall()), Ok(()));
        // Another source: REFUSED; another zone: NOTAUTH.
        let ans = answer_notify(
            &bytes,
            "198.51.100.1".parse().unwrap(),
            &keys,
            |_| Some(&acl),
            wall(),
        );
        assert!(ans.accepted.is_none());
        assert_eq!(
            req.response(ans.response.unwrap(), wall()),
            Err(TransferError::Rcode(Rcode::REFUSED))
        );
        let ans = answer_notify(&bytes, from(), &keys, |_| None, wall());
        assert_eq!(
            req.response(ans.response.unwrap(), wall()),
            Err(TransferError::Rcode(Rcode::NOTAUTH))
        );
    }

    #[test]
    fn rfc8945_notify_with_unknown_key_is_refused_and_unsigned_answer_rejected() {
        let k = key("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0");
        let other = TsigKey::new("other.", "hmac-sha512", "c2VjcmV0").unwrap();
        let acl = Acl::addresses([from()]);
        let (req, bytes) = NotifyRequest::new(&origin(), None, 5, Some(&k), wall()).unwrap();
        let ans = answer_notify(
            &bytes,
            from(),
            &KeyRing::new([other]),
            |_| Some(&acl),
            wall(),
        );
        assert!(ans.accepted.is_none());
        let err = req.response(ans.response.unwrap(), wall()).unwrap_err();
        assert!(err.to_string().contains("xfr-key."), "{err}");
        // A key-only ACL refuses an unsigned NOTIFY.
        let acl = Acl::new(vec![crate::acl::AclEntry {
            networks: vec![],
            key: Some(k.name().clone()),
        }]);
        let (req, bytes) = NotifyRequest::new(&origin(), None, 6, None, wall()).unwrap();
        let ans = answer_notify(&bytes, from(), &KeyRing::new([k]), |_| Some(&acl), wall());
        assert_eq!(
            req.response(ans.response.unwrap(), wall()),
            Err(TransferError::Rcode(Rcode::REFUSED))
        );
    }

    #[test]
    fn rfc1996_3_6_notifier_retransmits_until_acknowledged() {
        let t0 = Instant::now();
        let a: SocketAddr = "192.0.2.2:53".parse().unwrap();
        let b: SocketAddr = "192.0.2.3:53".parse().unwrap();
        let mut n = Notifier::new(NotifyRetry {
            first_interval: Duration::from_secs(1),
            max_attempts: 3,
        });
        n.zone_changed(&origin(), &[a, b], t0);
        assert_eq!(n.poll_transmit(t0).len(), 2);
        n.acknowledged(&origin(), a);
        assert_eq!(n.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        let sent = n.poll_transmit(t0 + Duration::from_secs(1));
        assert_eq!(
            sent,
            vec![NotifySend {
                zone: origin(),
                target: b,
                attempt: 2
            }]
        );
        let sent = n.poll_transmit(t0 + Duration::from_secs(3));
        assert_eq!(sent[0].attempt, 3);
        assert!(n.poll_transmit(t0 + Duration::from_secs(4)).is_empty());
        assert_eq!(n.expire(t0 + Duration::from_secs(7)), vec![(origin(), b)]);
        assert!(n.is_idle());
    }
}
