//! Answer tests named after the RFC text they check. Responses are parsed with domain's
//! message parser, independent of our writer.

use std::sync::Arc;

use anyns_wire::Name;
use anyns_zone::{ZoneSet, load_zone_text};
use domain::base::iana::Rcode as DRcode;
use domain::base::{Message, ParsedName};
use domain::rdata::AllRecordData;

use super::*;

/// The zone of RFC 4592 section 2.2.1, plus names for CNAME, DNAME and truncation cases.
const RFC4592_ZONE: &str = r#"$ORIGIN example.
$TTL 3600
example.                 SOA   ns.example.com. hostmaster.example. 1 7200 900 1209600 300
example.                 NS    ns.example.com.
example.                 NS    ns.example.net.
*.example.               TXT   "this is a wildcard"
*.example.               MX    10 host1.example.
sub.*.example.           TXT   "this is not a wildcard"
host1.example.           A     192.0.2.1
_ssh._tcp.host1.example. SRV   0 0 22 host1.example.
_ssh._tcp.host2.example. SRV   0 0 22 host1.example.
subdel.example.          NS    ns.example.com.
subdel.example.          NS    ns.example.net.
inner.example.           NS    ns.inner.example.
ns.inner.example.        A     192.0.2.53
alias.example.           CNAME chain.example.
chain.example.           CNAME host1.example.
dangling.example.        CNAME nothere.host1.example.
out.example.             CNAME www.elsewhere.test.
wildalias.example.       CNAME foo.bar.example.
dn.example.              DNAME host1.example.
loop1.example.           CNAME loop2.example.
loop2.example.           CNAME loop1.example.
big.example.             TXT   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
big.example.             TXT   "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
big.example.             TXT   "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
big.example.             TXT   "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
big.example.             TXT   "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
big.example.             TXT   "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
"#;

fn zones() -> ZoneSet {
    let origin = Name::from_text("example.").unwrap();
    let built = load_zone_text(&origin, "rfc4592.zone", RFC4592_ZONE).unwrap();
    ZoneSet::new([Arc::new(built.zone)])
}

fn engine() -> Engine {
    Engine::new(EngineConfig {
        identity: Identity {
            nsid: Some(b"n1.ams".to_vec().into()),
            server_id: Some("n1.ams".into()),
            version: None,
        },
        max_udp_payload: 1232,
    })
}

/// Builds a query; `edns` is the advertised payload size, with the DO bit and NSID request.
fn query(name: &str, qtype: u16, qclass: u16, edns: Option<u16>) -> Vec<u8> {
    let mut q = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&qclass.to_be_bytes());
    if let Some(size) = edns {
        q[11] = 1;
        q.extend_from_slice(&[0, 0, 41]);
        q.extend_from_slice(&size.to_be_bytes());
        q.extend_from_slice(&[0, 0, 0x80, 0, 0, 4, 0, 3, 0, 0]);
    }
    q
}

struct Response {
    msg: Message<Vec<u8>>,
}

impl Response {
    fn section(&self, which: usize) -> Vec<String> {
        let section = match which {
            1 => self.msg.answer().unwrap(),
            2 => self.msg.authority().unwrap(),
            _ => self.msg.additional().unwrap(),
        };
        section
            .map(|rr| {
                let rr = rr.unwrap();
                let rec = rr
                    .to_any_record::<AllRecordData<_, ParsedName<_>>>()
                    .unwrap();
                rec.to_string().replace('\t', " ")
            })
            .filter(|s| !s.contains(" OPT "))
            .collect()
    }
    fn answer(&self) -> Vec<String> {
        self.section(1)
    }
    fn authority(&self) -> Vec<String> {
        self.section(2)
    }
    fn additional(&self) -> Vec<String> {
        self.section(3)
    }
    fn rcode(&self) -> DRcode {
        self.msg.header().rcode()
    }
    fn aa(&self) -> bool {
        self.msg.header().aa()
    }
    fn tc(&self) -> bool {
        self.msg.header().tc()
    }
}

fn ask_with(engine: &Engine, req: &[u8], transport: Transport) -> Option<Response> {
    let mut out = vec![0u8; 65535];
    let len = engine.respond(&zones(), req, transport, &mut out)?;
    out.truncate(len);
    Some(Response {
        msg: Message::from_octets(out).unwrap(),
    })
}

fn ask(name: &str, qtype: Rtype) -> Response {
    ask_with(
        &engine(),
        &query(name, qtype.0, 1, Some(1232)),
        Transport::Udp,
    )
    .unwrap()
}

#[test]
fn rfc1034_4_3_2_exact_match_is_authoritative() {
    let r = ask("host1.example", Rtype::A);
    assert_eq!(r.rcode(), DRcode::NOERROR);
    assert!(r.aa());
    assert_eq!(r.answer(), ["host1.example. 3600 IN A 192.0.2.1"]);
    assert!(r.authority().is_empty());
}

#[test]
fn rfc4592_2_2_1_wildcard_synthesis() {
    // "host3.example. MX" is synthesized from *.example.
    let r = ask("host3.example", Rtype::MX);
    assert_eq!(r.answer(), ["host3.example. 3600 IN MX 10 host1.example."]);
    assert_eq!(r.additional(), ["host1.example. 3600 IN A 192.0.2.1"]);
    // "host3.example. A" matches the wildcard, which has no A: NODATA.
    let r = ask("host3.example", Rtype::A);
    assert_eq!(r.rcode(), DRcode::NOERROR);
    assert!(r.answer().is_empty());
    assert_eq!(r.authority().len(), 1);
    // "foo.bar.example. TXT": bar.example does not exist, so *.example applies.
    let r = ask("foo.bar.example", Rtype::TXT);
    assert_eq!(
        r.answer(),
        ["foo.bar.example. 3600 IN TXT \"this is a wildcard\""]
    );
}

#[test]
fn rfc4592_2_2_1_names_that_do_not_match_the_wildcard() {
    // host1.example exists: NODATA, no synthesis.
    let r = ask("host1.example", Rtype::MX);
    assert_eq!(r.rcode(), DRcode::NOERROR);
    assert!(r.answer().is_empty());
    // sub.*.example exists; "*" is not a wildcard there.
    let r = ask("sub.*.example", Rtype::MX);
    assert_eq!(r.rcode(), DRcode::NOERROR);
    assert!(r.answer().is_empty());
    // _tcp.host1.example is an empty non-terminal and the closest encloser: no *._tcp.host1.
    let r = ask("_telnet._tcp.host1.example", Rtype::SRV);
    assert_eq!(r.rcode(), DRcode::NXDOMAIN);
    // The closest encloser of ghost.*.example is *.example, whose wildcard child does not exist.
    let r = ask("ghost.*.example", Rtype::MX);
    assert_eq!(r.rcode(), DRcode::NXDOMAIN);
    // An empty non-terminal exists: NODATA (RFC 4592 section 2.2.2).
    let r = ask("_tcp.host1.example", Rtype::A);
    assert_eq!(r.rcode(), DRcode::NOERROR);
    assert!(r.answer().is_empty());
}

#[test]
fn rfc4592_2_2_1_referral_below_a_cut() {
    let r = ask("host.subdel.example", Rtype::A);
    assert_eq!(r.rcode(), DRcode::NOERROR);
    assert!(!r.aa(), "a referral is not authoritative");
    assert!(r.answer().is_empty());
    assert_eq!(
        r.authority(),
        [
            "subdel.example. 3600 IN NS ns.example.com.",
            "subdel.example. 3600 IN NS ns.example.net."
        ]
    );
}

#[test]
fn rfc1034_4_3_2_referral_carries_glue() {
    let r = ask("www.inner.example", Rtype::A);
    assert!(!r.aa());
    assert_eq!(
        r.authority(),
        ["inner.example. 3600 IN NS ns.inner.example."]
    );
    assert_eq!(r.additional(), ["ns.inner.example. 3600 IN A 192.0.2.53"]);
    // The cut itself is also referred, except for DS (RFC 4035 section 3.1.4.1).
    let r = ask("inner.example", Rtype::A);
    assert!(!r.aa());
    let r = ask("inner.example", Rtype::DS);
    assert!(r.aa());
    assert_eq!(
        r.authority().len(),
        1,
        "NODATA with SOA from the parent side"
    );
    assert!(r.authority()[0].contains(" SOA "));
}

#[test]
fn rfc2308_3_negative_ttl_is_min_of_soa_ttl_and_minimum() {
    let r = ask("nothere.host1.example", Rtype::A);
    assert_eq!(r.rcode(), DRcode::NXDOMAIN);
    assert!(r.aa());
    assert!(r.answer().is_empty());
    assert_eq!(
        r.authority(),
        ["example. 300 IN SOA ns.example.com. hostmaster.example. 1 7200 900 1209600 300"]
    );
}

#[test]
fn rfc1034_3_6_2_cname_chain_followed_in_zone() {
    let r = ask("alias.example", Rtype::A);
    assert_eq!(
        r.answer(),
        [
            "alias.example. 3600 IN CNAME chain.example.",
            "chain.example. 3600 IN CNAME host1.example.",
            "host1.example. 3600 IN A 192.0.2.1"
        ]
    );
    // Asking for the CNAME itself returns it alone.
    let r = ask("alias.example", Rtype::CNAME);
    assert_eq!(r.answer(), ["alias.example. 3600 IN CNAME chain.example."]);
    // A chain leaving the zone stops at the last name we are authoritative for.
    let r = ask("out.example", Rtype::A);
    assert_eq!(r.rcode(), DRcode::NOERROR);
    assert_eq!(
        r.answer(),
        ["out.example. 3600 IN CNAME www.elsewhere.test."]
    );
    // A chain through a wildcard.
    let r = ask("wildalias.example", Rtype::TXT);
    assert_eq!(r.answer().len(), 2);
}

#[test]
fn rfc1034_3_6_2_cname_loops_end_with_each_cname_once() {
    let r = ask("loop1.example", Rtype::A);
    assert_eq!(r.rcode(), DRcode::NOERROR);
    assert_eq!(
        r.answer(),
        [
            "loop1.example. 3600 IN CNAME loop2.example.",
            "loop2.example. 3600 IN CNAME loop1.example."
        ]
    );
}

#[test]
fn rfc6604_3_rcode_of_a_dangling_cname_is_nxdomain() {
    let r = ask("dangling.example", Rtype::A);
    assert_eq!(r.rcode(), DRcode::NXDOMAIN);
    assert_eq!(
        r.answer(),
        ["dangling.example. 3600 IN CNAME nothere.host1.example."]
    );
    assert_eq!(r.authority().len(), 1);
}

#[test]
fn rfc6672_3_2_dname_substitution() {
    let r = ask("x.dn.example", Rtype::A);
    assert_eq!(
        r.rcode(),
        DRcode::NXDOMAIN,
        "x.host1.example does not exist"
    );
    assert_eq!(
        r.answer(),
        [
            "dn.example. 3600 IN DNAME host1.example.",
            "x.dn.example. 3600 IN CNAME x.host1.example."
        ]
    );
    // A CNAME query is answered by the synthesized CNAME; the chain is not followed.
    let r = ask("x.dn.example", Rtype::CNAME);
    assert_eq!(r.rcode(), DRcode::NOERROR);
    assert_eq!(r.answer().len(), 2);
    // The DNAME owner itself is not redirected.
    let r = ask("dn.example", Rtype::DNAME);
    assert_eq!(r.answer(), ["dn.example. 3600 IN DNAME host1.example."]);
}

#[test]
fn rfc1034_refused_outside_our_zones() {
    let r = ask("www.example.org", Rtype::A);
    assert_eq!(r.rcode(), DRcode::REFUSED);
    assert!(!r.aa());
    assert!(r.answer().is_empty() && r.authority().is_empty());
}

#[test]
fn rfc1035_4_1_1_notimp_for_other_opcodes() {
    let mut q = query("host1.example", 1, 1, None);
    q[2] = 0x10; // opcode 2 (STATUS)
    let r = ask_with(&engine(), &q, Transport::Udp).unwrap();
    assert_eq!(r.rcode(), DRcode::NOTIMP);
}

#[test]
fn rfc1035_4_1_1_formerr_and_drops() {
    let q = query("host1.example", 1, 1, None);
    let r = ask_with(&engine(), &q[..q.len() - 1], Transport::Udp).unwrap();
    assert_eq!(r.rcode(), DRcode::FORMERR);
    assert_eq!(r.msg.header().id(), 0xbeef);
    assert!(r.msg.header().qr());
    // A response is never answered.
    let mut resp = q.clone();
    resp[2] |= 0x80;
    assert!(ask_with(&engine(), &resp, Transport::Udp).is_none());
}

#[test]
fn rfc6891_6_1_3_badvers() {
    let mut q = query("host1.example", 1, 1, Some(1232));
    let opt_ttl = q.len() - 10;
    q[opt_ttl + 1] = 1; // version 1
    let r = ask_with(&engine(), &q, Transport::Udp).unwrap();
    assert_eq!(r.msg.opt_rcode().to_int(), 16);
    assert_eq!(r.msg.opt().unwrap().version(), 0);
}

#[test]
fn rfc6891_opt_echoes_do_and_rfc5001_nsid() {
    let r = ask("host1.example", Rtype::A);
    let opt = r.msg.opt().unwrap();
    assert!(opt.dnssec_ok());
    assert_eq!(opt.udp_payload_size(), 1232);
    let rdata = r.msg.as_slice().to_vec();
    // option code 3, length 6, "n1.ams"
    assert!(rdata.windows(10).any(|w| w == b"\x00\x03\x00\x06n1.ams"));
}

#[test]
fn rfc2181_9_truncation_sets_tc_and_tcp_gets_it_all() {
    // 6 TXT records of ~100 octets do not fit in 512 octets.
    let q = query("big.example", Rtype::TXT.0, 1, None);
    let r = ask_with(&engine(), &q, Transport::Udp).unwrap();
    assert!(r.tc());
    assert!(r.answer().is_empty());
    let r = ask_with(&engine(), &q, Transport::Tcp).unwrap();
    assert!(!r.tc());
    assert_eq!(r.answer().len(), 6);
    // With EDNS and 1232 octets it fits over UDP.
    let r = ask("big.example", Rtype::TXT);
    assert!(!r.tc());
    assert_eq!(r.answer().len(), 6);
}

#[test]
fn rfc8482_any_is_minimal_over_udp() {
    let r = ask("example", Rtype::ANY);
    assert_eq!(r.answer().len(), 2, "one RRset (the two NS records)");
    let q = query("example", Rtype::ANY.0, 1, None);
    let r = ask_with(&engine(), &q, Transport::Tcp).unwrap();
    assert_eq!(r.answer().len(), 3, "NS x2 and SOA: all RRsets at the apex");
}

#[test]
fn rfc1035_7_2_question_case_preserved() {
    let mut q = query("HoSt1.ExAmPlE", 1, 1, None);
    let r = ask_with(&engine(), &q, Transport::Udp).unwrap();
    let len = q.len();
    assert_eq!(&r.msg.as_slice()[12..len], &q[12..len]);
    // The answer owner points at the question: same case.
    assert!(r.answer()[0].starts_with("HoSt1.ExAmPlE."));
    q[2] = 0x01;
}

#[test]
fn rfc4892_chaos_identity() {
    let q = query("id.server", Rtype::TXT.0, 3, None);
    let r = ask_with(&engine(), &q, Transport::Udp).unwrap();
    assert_eq!(r.rcode(), DRcode::NOERROR);
    assert_eq!(r.answer(), ["id.server. 0 CH TXT \"n1.ams\""]);
    let q = query("version.bind", Rtype::TXT.0, 3, None);
    let r = ask_with(&engine(), &q, Transport::Udp).unwrap();
    assert_eq!(r.rcode(), DRcode::REFUSED, "version hidden");
}

proptest::proptest! {
    #[test]
    fn arbitrary_requests_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let mut out = vec![0u8; 65535];
        let zones = zones();
        let _ = engine().respond(&zones, &bytes, Transport::Udp, &mut out);
    }
}

#[test]
fn transfers_notify_and_tsig_are_declined_when_asked() {
    let engine = engine();
    let mut out = vec![0u8; 65535];
    let zones = zones();
    let mut notify = query("example", 6, 1, None);
    notify[2] = 0x20; // opcode 4 (NOTIFY)
    let axfr = query("example", 252, 1, None);
    let ixfr = query("example", 251, 1, None);
    // A TSIG record as the last additional record (its content is not checked here).
    let mut signed = query("example", 6, 1, None);
    signed[11] = 1;
    signed.extend_from_slice(&[0, 0, 250, 0, 255, 0, 0, 0, 0, 0, 0]);
    for request in [&notify, &axfr, &ixfr, &signed] {
        assert_eq!(
            engine.respond_or_decline(&zones, request, Transport::Tcp, &mut out),
            Reply::Declined
        );
        // Without the transfer side they still get an answer (NOTIMP, REFUSED, NOTAUTH).
        assert!(
            engine
                .respond(&zones, request, Transport::Udp, &mut out)
                .is_some()
        );
    }
    let plain = query("host1.example", 1, 1, None);
    assert!(matches!(
        engine.respond_or_decline(&zones, &plain, Transport::Udp, &mut out),
        Reply::Answer(_)
    ));
}

#[test]
fn rfc1035_3_3_13_unavailable_zone_is_servfail() {
    let expired = Name::from_text("sub.example.").unwrap();
    let zones = zones().with_unavailable([expired, Name::from_text("other.test.").unwrap()]);
    let mut out = vec![0u8; 65535];
    let ask = |name: &str, out: &mut Vec<u8>| {
        let len = engine()
            .respond(&zones, &query(name, 1, 1, None), Transport::Udp, out)
            .unwrap();
        Message::from_octets(out[..len].to_vec()).unwrap()
    };
    // Inside an unavailable zone (also below a zone we do serve): SERVFAIL, not authoritative.
    for name in ["www.sub.example", "other.test"] {
        let msg = ask(name, &mut out);
        assert_eq!(msg.header().rcode(), DRcode::SERVFAIL, "{name}");
        assert!(!msg.header().aa());
    }
    assert_eq!(
        ask("host1.example", &mut out).header().rcode(),
        DRcode::NOERROR
    );
    assert_eq!(
        ask("www.else.test", &mut out).header().rcode(),
        DRcode::REFUSED
    );
}
