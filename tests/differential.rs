//! Differential test: the same zones loaded into Knot DNS (the reference) and into anyns (the
//! subject), the same queries sent to both, the responses compared section by section
//! (tests/common/compare.rs). Every difference fails the test unless [`ALLOWED`] lists it
//! with the RFC text that permits it.
//!
//! `cargo test --test differential` runs it. It is skipped, with a message, when `knotd` is not
//! installed — unless `ANYNS_REQUIRE_LAB=1`, which makes a missing `knotd` a failure.
//! `ANYNS_DIFF_SUBJECT=knot` or `=nsd` puts a second Knot or an NSD in the subject's seat, to
//! check the harness itself (Knot against Knot must show no difference). The full report goes
//! to `target/tmp/differential-report.txt`.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use domain::base::Name;
use domain::base::iana::Rtype;

use common::anyns::Anyns;
use common::compare::{Difference, Field, Rec, Section, Summary, compare};
use common::dns::{Edns, Query, TcpClient, UdpClient, name_text};
use common::knot::Knot;
use common::nsd::Nsd;
use common::process::lab_required;
use common::querygen::{self, Probe, ZoneNames};
use common::{DnsServer, ZoneFile};

/// The zones served, from zones/diff/.
const ZONES: [(&str, &str); 4] = [
    ("diff.test.", "diff.test.zone"),
    ("rfc4592.test.", "rfc4592.test.zone"),
    ("parent.test.", "parent.test.zone"),
    ("child.parent.test.", "child.parent.test.zone"),
];

const UDP_TIMEOUT: Duration = Duration::from_millis(1500);
const TCP_TIMEOUT: Duration = Duration::from_secs(3);
/// After this many unanswered queries a server is taken as down and no longer asked, so that
/// a dead subject costs seconds, not minutes.
const MAX_FAILURES: usize = 8;
/// How many differences the test prints (all of them go to the report file).
const PRINT_LIMIT: usize = 150;

//------------ Allowed differences --------------------------------------------

/// A known difference that the RFCs permit. Each entry quotes the text that permits it; a
/// difference that no RFC permits is a bug and does not belong here.
struct Allowance {
    /// What differs, in a few words.
    what: &'static str,
    /// The RFC text that permits the difference, quoted.
    rfc: &'static str,
    /// Whether a difference is this one.
    applies: fn(&Seen<'_>) -> bool,
}

/// A difference with what the allow-list may look at to judge it.
struct Seen<'a> {
    case: &'a Case,
    diff: &'a Difference,
    reference: Option<&'a Summary>,
    subject: Option<&'a Summary>,
}

const ALLOWED: &[Allowance] = &[
    Allowance {
        what: "ANY: a different subset of the RRsets at the name",
        rfc: "RFC 8482 section 4: \"A DNS responder that receives an ANY query MAY decline to \
              provide a conventional ANY response or MAY instead send a response with a single \
              RRset (or a larger subset of available RRsets) in the answer section.\"",
        applies: |seen| {
            seen.case.probe.qtype == Rtype::ANY
                && seen.diff.field == Field::Section(Section::Answer)
                && seen
                    .subject
                    .is_some_and(|s| !s.section(Section::Answer).is_empty())
                && owned_by_qname(seen.case, &seen.diff.only_reference)
                && owned_by_qname(seen.case, &seen.diff.only_subject)
        },
    },
    Allowance {
        what: "ANY: no additional-section addresses for the MX/SRV targets in the answer",
        rfc: "RFC 1034 section 4.3.2 step 6: \"Using local data only, attempt to add other RRs \
              which may be useful to the additional section of the query.\"",
        applies: |seen| {
            seen.case.probe.qtype == Rtype::ANY
                && seen.diff.field == Field::Section(Section::Additional)
                && seen.diff.only_subject.is_empty()
                && seen
                    .diff
                    .only_reference
                    .iter()
                    .all(|r| matches!(r.rtype, Rtype::A | Rtype::AAAA))
        },
    },
    Allowance {
        what: "DNAME substitution longer than 255 octets: YXDOMAIN with the DNAME (Knot 3.2 \
               answers NXDOMAIN with the SOA)",
        rfc: "RFC 6672 section 2.2: \"If this occurs, the server returns an RCODE of YXDOMAIN \
              [RFC2136]. The DNAME record and its signature (if the zone is signed) are included \
              in the answer as proof for the YXDOMAIN (value 6) RCODE.\"",
        applies: |seen| {
            let yxdomain = seen.subject.is_some_and(|s| s.rcode == "YXDOMAIN");
            yxdomain
                && match seen.diff.field {
                    Field::Rcode => seen.diff.reference == "NXDOMAIN",
                    Field::Section(Section::Authority) => {
                        seen.diff.only_subject.is_empty()
                            && seen
                                .diff
                                .only_reference
                                .iter()
                                .all(|r| r.rtype == Rtype::SOA)
                    }
                    _ => false,
                }
        },
    },
    Allowance {
        what: "CD copied from the query into the response (Knot clears it)",
        rfc: "RFC 4035 section 3: \"The CD bit is controlled by resolvers; a security-aware name \
              server MUST copy the CD bit from a query into the corresponding response.\"",
        applies: |seen| {
            seen.case.variant.cd
                && seen.diff.field == Field::Flags
                && flags_plus(&seen.diff.reference, "cd") == flag_set(&seen.diff.subject)
        },
    },
    Allowance {
        what: "TC set where Knot leaves the SOA out of an NXDOMAIN answer to fit the payload",
        rfc: "RFC 2308 section 3: \"Name servers authoritative for a zone MUST include the SOA \
              record of the zone in the authority section of the response when reporting an \
              NXDOMAIN\"; RFC 2181 section 9: \"The TC bit should be set in responses only when an \
              RRSet is required as a part of the response, but could not be included in its \
              entirety.\"",
        applies: |seen| {
            seen.diff.field == Field::Flags
                && flags_plus(&seen.diff.reference, "tc") == flag_set(&seen.diff.subject)
                && seen.reference.is_some_and(|r| {
                    r.rcode == "NXDOMAIN"
                        && !r
                            .section(Section::Authority)
                            .iter()
                            .any(|rec| rec.rtype == Rtype::SOA)
                })
        },
    },
];

/// Whether every record is owned by the query name (compared case-insensitively).
fn owned_by_qname(case: &Case, records: &[Rec]) -> bool {
    let qname = querygen::canonical(&case.probe.qname);
    records.iter().all(|r| r.key.starts_with(&qname))
}

fn flag_set(flags: &str) -> BTreeSet<&str> {
    flags.split_whitespace().collect()
}

fn flags_plus<'a>(flags: &'a str, extra: &'a str) -> BTreeSet<&'a str> {
    let mut set = flag_set(flags);
    set.insert(extra);
    set
}

//------------ Queries --------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// How a question is sent.
#[derive(Clone, Copy, Debug)]
struct Variant {
    transport: Transport,
    ipv6: bool,
    edns: Option<Edns>,
    rd: bool,
    cd: bool,
}

impl Variant {
    const fn new(transport: Transport, edns: Option<Edns>) -> Self {
        Variant {
            transport,
            ipv6: false,
            edns,
            rd: false,
            cd: false,
        }
    }
}

const fn edns(udp_payload_size: u16, dnssec_ok: bool, version: u8) -> Option<Edns> {
    Some(Edns {
        udp_payload_size,
        dnssec_ok,
        version,
    })
}

/// Every probe is sent in each of these: without EDNS (512 octets, RFC 1035 section 4.2.1),
/// with the common 1232, with 512 (truncation), with DO (RFC 3225: echoed, no DNSSEC data here);
/// over UDP and TCP.
const VARIANTS: [Variant; 8] = [
    Variant::new(Transport::Udp, None),
    Variant::new(Transport::Udp, edns(1232, false, 0)),
    Variant::new(Transport::Udp, edns(512, false, 0)),
    Variant::new(Transport::Udp, edns(1232, true, 0)),
    Variant::new(Transport::Tcp, None),
    Variant::new(Transport::Tcp, edns(1232, false, 0)),
    Variant::new(Transport::Tcp, edns(512, false, 0)),
    Variant::new(Transport::Tcp, edns(1232, true, 0)),
];

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        })?;
        if self.ipv6 {
            f.write_str("6")?;
        }
        match self.edns {
            None => f.write_str(" no-edns")?,
            Some(e) => {
                write!(f, " edns={}", e.udp_payload_size)?;
                if e.dnssec_ok {
                    f.write_str(" do")?;
                }
                if e.version != 0 {
                    write!(f, " v{}", e.version)?;
                }
            }
        }
        if self.rd {
            f.write_str(" rd")?;
        }
        if self.cd {
            f.write_str(" cd")?;
        }
        Ok(())
    }
}

/// One query sent to both servers.
#[derive(Clone, Debug)]
struct Case {
    probe: Probe,
    variant: Variant,
}

impl Case {
    fn query(&self, id: u16) -> Vec<u8> {
        let mut query = Query::new(self.probe.qname.clone(), self.probe.qtype)
            .with_id(id)
            .with_edns(self.variant.edns);
        query.rd = self.variant.rd;
        query.cd = self.variant.cd;
        query.to_wire()
    }
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} [{}] ({})",
            name_text(&self.probe.qname),
            self.probe.qtype,
            self.variant,
            self.probe.why
        )
    }
}

fn probe(qname: &str, qtype: Rtype, why: &str) -> Probe {
    let qname =
        Name::<Vec<u8>>::from_str(qname).unwrap_or_else(|e| panic!("test name {qname:?}: {e}"));
    Probe {
        qname,
        qtype,
        why: why.to_owned(),
    }
}

/// Questions the generator cannot derive from the zone files, each with its reason.
fn explicit_probes() -> Vec<Probe> {
    let yx_label = "y".repeat(63);
    vec![
        // RFC 4592 section 2.2.1: "The following responses would be synthesized from one of
        // the wildcards in the zone" / "The following cases would not be synthesized".
        probe(
            "host3.rfc4592.test.",
            Rtype::MX,
            "RFC 4592 2.2.1: synthesized from *",
        ),
        probe(
            "host3.rfc4592.test.",
            Rtype::A,
            "RFC 4592 2.2.1: wildcard matches, no A: NODATA",
        ),
        probe(
            "foo.bar.rfc4592.test.",
            Rtype::TXT,
            "RFC 4592 2.2.1: synthesized, two labels",
        ),
        probe(
            "host1.rfc4592.test.",
            Rtype::MX,
            "RFC 4592 2.2.1: name exists, no MX",
        ),
        probe(
            "sub.*.rfc4592.test.",
            Rtype::MX,
            "RFC 4592 2.2.1: not a wildcard",
        ),
        probe(
            "_telnet._tcp.host1.rfc4592.test.",
            Rtype::SRV,
            "RFC 4592 2.2.1: _tcp.host1 exists",
        ),
        probe(
            "host.subdel.rfc4592.test.",
            Rtype::A,
            "RFC 4592 2.2.1: below a cut",
        ),
        probe(
            "ghost.*.rfc4592.test.",
            Rtype::MX,
            "RFC 4592 2.2.1: * is the closest encloser",
        ),
        // RFC 6672 section 2.2: a substitution longer than 255 octets gives YXDOMAIN.
        probe(
            &format!("{yx_label}.yx.diff.test."),
            Rtype::A,
            "RFC 6672 2.2: YXDOMAIN",
        ),
        probe(
            &format!("x.{yx_label}.yx.diff.test."),
            Rtype::TXT,
            "RFC 6672 2.2: YXDOMAIN",
        ),
        // Zone selection: the most specific zone answers (RFC 1034 section 4.3.2 step 2).
        probe(
            "www.child.parent.test.",
            Rtype::A,
            "child zone, not the occluded parent data",
        ),
        probe(
            "child.parent.test.",
            Rtype::DS,
            "RFC 4035 3.1.4.1: DS from the parent",
        ),
        probe("child.parent.test.", Rtype::NS, "child apex NS"),
        probe(
            "host.grandchild.child.parent.test.",
            Rtype::A,
            "referral from the child zone",
        ),
        probe(
            "x.other-child.parent.test.",
            Rtype::A,
            "referral to a zone not served",
        ),
        // Outside every zone: REFUSED (RFC 8906 section 3.1.3.1 tells what to expect).
        probe("outside.example.", Rtype::A, "outside all zones"),
        probe("test.", Rtype::SOA, "parent of the zones, not served"),
        probe(".", Rtype::NS, "root, not served"),
        probe(
            "xdiff.test.",
            Rtype::A,
            "shares a suffix string, not a label",
        ),
        probe(
            "diff.test.outside.example.",
            Rtype::A,
            "a zone name as a prefix",
        ),
        probe(
            "\\042.diff.test.",
            Rtype::A,
            "an escaped asterisk is a plain * label",
        ),
    ]
}

/// Cases sent in one variant only: EDNS version 1 (BADVERS, RFC 6891 section 6.1.3), RD and
/// CD copied (RFC 1035 section 4.1.1, RFC 4035 section 3.1.6 on CD), and IPv6 transport.
fn special_cases(zones: &[ZoneFile]) -> Vec<Case> {
    let mut cases = Vec::new();
    let base = Variant::new(Transport::Udp, None);
    for (qname, qtype) in [
        ("www.diff.test.", Rtype::A),
        ("nx.diff.test.", Rtype::A),
        ("outside.example.", Rtype::A),
    ] {
        for variant in [
            Variant {
                edns: edns(1232, false, 1),
                ..base
            },
            Variant {
                edns: edns(1232, true, 1),
                transport: Transport::Tcp,
                ..base
            },
            Variant { rd: true, ..base },
            Variant {
                cd: true,
                edns: edns(1232, true, 0),
                ..base
            },
        ] {
            cases.push(Case {
                probe: probe(qname, qtype, "header and EDNS handling"),
                variant,
            });
        }
    }
    for zone in zones {
        for (qname, qtype) in [
            (zone.apex.clone(), Rtype::SOA),
            (format!("nx-v6.{}", zone.apex), Rtype::A),
        ] {
            for transport in [Transport::Udp, Transport::Tcp] {
                let variant = Variant {
                    transport,
                    ipv6: true,
                    edns: edns(1232, false, 0),
                    ..base
                };
                cases.push(Case {
                    probe: probe(&qname, qtype, "over IPv6"),
                    variant,
                });
            }
        }
    }
    cases
}

fn zone_files() -> Vec<ZoneFile> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/diff");
    ZONES
        .iter()
        .map(|(apex, file)| ZoneFile::new(apex, dir.join(file)))
        .collect()
}

fn all_cases(zones: &[ZoneFile]) -> Vec<Case> {
    let names: Vec<ZoneNames> = zones
        .iter()
        .map(|z| ZoneNames::load(z).unwrap_or_else(|e| panic!("reading test zone: {e}")))
        .collect();
    let mut probes = querygen::probes(&names);
    probes.extend(explicit_probes());
    let mut cases: Vec<Case> = probes
        .into_iter()
        .flat_map(|probe| {
            VARIANTS.iter().map(move |&variant| Case {
                probe: probe.clone(),
                variant,
            })
        })
        .collect();
    cases.extend(special_cases(zones));
    cases
}

//------------ Asking ---------------------------------------------------------

/// Sends every case to one server, in order, and returns the raw answers (or why there is none).
fn ask_all(addrs: &[SocketAddr], cases: &[Case]) -> Vec<Result<Vec<u8>, String>> {
    let v4 = addrs[0];
    let v6 = addrs.get(1).copied();
    let mut udp4 = UdpClient::connect(v4, UDP_TIMEOUT).ok();
    let mut udp6 = v6.and_then(|a| UdpClient::connect(a, UDP_TIMEOUT).ok());
    let mut tcp4 = TcpClient::new(v4, TCP_TIMEOUT);
    let mut tcp6 = v6.map(|a| TcpClient::new(a, TCP_TIMEOUT));
    let mut failures = 0;
    let mut answers = Vec::with_capacity(cases.len());
    for (index, case) in cases.iter().enumerate() {
        if failures >= MAX_FAILURES {
            answers.push(Err(format!(
                "not asked: {MAX_FAILURES} queries failed before"
            )));
            continue;
        }
        // IDs differ between consecutive queries, so a late answer is never taken for the next.
        let query = case.query(index as u16);
        let answer = match (case.variant.transport, case.variant.ipv6) {
            (Transport::Udp, false) => udp4.as_mut().map(|c| c.exchange(&query)),
            (Transport::Udp, true) => udp6.as_mut().map(|c| c.exchange(&query)),
            (Transport::Tcp, false) => Some(tcp4.exchange(&query)),
            (Transport::Tcp, true) => tcp6.as_mut().map(|c| c.exchange(&query)),
        };
        let answer = match answer {
            Some(Ok(bytes)) => Ok(bytes),
            Some(Err(e)) => {
                failures += 1;
                Err(format!("no answer: {e}"))
            }
            None => Err("no socket for this address family".to_owned()),
        };
        answers.push(answer);
    }
    answers
}

//------------ The test -------------------------------------------------------

/// The server in the subject's seat.
enum Subject {
    Anyns(Anyns),
    Knot(Knot),
    Nsd(Nsd),
}

impl Subject {
    fn start(zones: &[ZoneFile]) -> Result<Subject, String> {
        match std::env::var("ANYNS_DIFF_SUBJECT").as_deref() {
            Ok("knot") => Knot::start(zones).map(Subject::Knot),
            Ok("nsd") => Nsd::start(zones).map(Subject::Nsd),
            Ok("anyns") | Err(_) => {
                Anyns::start(Path::new(env!("CARGO_BIN_EXE_anyns")), zones, &[]).map(Subject::Anyns)
            }
            Ok(other) => Err(format!(
                "ANYNS_DIFF_SUBJECT={other}: expected anyns, knot or nsd"
            )),
        }
    }

    fn server(&self) -> &dyn DnsServer {
        match self {
            Subject::Anyns(s) => s,
            Subject::Knot(s) => s,
            Subject::Nsd(s) => s,
        }
    }
}

#[test]
fn anyns_answers_like_knot() {
    if Knot::binary().is_none() {
        assert!(
            !lab_required(),
            "ANYNS_REQUIRE_LAB=1 but knotd is not installed (apt-get install knot)"
        );
        eprintln!(
            "SKIPPED differential test: knotd is not installed (apt-get install knot); set ANYNS_REQUIRE_LAB=1 to make this a failure"
        );
        return;
    }
    let started = Instant::now();
    let zones = zone_files();
    let cases = all_cases(&zones);

    let knot = Knot::start(&zones).unwrap_or_else(|e| panic!("starting the reference Knot: {e}"));
    let mut subject =
        Subject::start(&zones).unwrap_or_else(|e| panic!("starting the subject: {e}"));
    let subject_name = subject.server().name().to_owned();

    let knot_addrs = knot.addrs().to_vec();
    let (reference_answers, subject_answers) = std::thread::scope(|scope| {
        let reference = scope.spawn(|| ask_all(&knot_addrs, &cases));
        let theirs = ask_all(subject.server().addrs(), &cases);
        (
            reference
                .join()
                .unwrap_or_else(|_| panic!("the reference thread panicked")),
            theirs,
        )
    });
    let asked = started.elapsed();
    if let Subject::Anyns(anyns) = &mut subject {
        assert!(
            anyns.is_running(),
            "anyns died under the queries\n{}",
            anyns.log_tail()
        );
    }

    let mut found: Vec<(usize, Difference)> = Vec::new();
    let mut allowed: BTreeMap<usize, usize> = BTreeMap::new();
    let mut coverage: BTreeMap<String, usize> = BTreeMap::new();
    for (index, (reference, theirs)) in reference_answers
        .into_iter()
        .zip(subject_answers)
        .enumerate()
    {
        let reference = reference.and_then(Summary::parse);
        let theirs = theirs.and_then(Summary::parse);
        if let Ok(summary) = &reference {
            *coverage.entry(summary.rcode.clone()).or_default() += 1;
            if summary.truncated {
                *coverage.entry("TC".to_owned()).or_default() += 1;
            }
        }
        for diff in compare(&reference, &theirs) {
            let seen = Seen {
                case: &cases[index],
                diff: &diff,
                reference: reference.as_ref().ok(),
                subject: theirs.as_ref().ok(),
            };
            match ALLOWED.iter().position(|a| (a.applies)(&seen)) {
                Some(allowance) => *allowed.entry(allowance).or_default() += 1,
                None => found.push((index, diff)),
            }
        }
    }

    // The reference must have shown every kind of answer the zones are built for; if not, the
    // zones or the harness changed and the test would prove less than it claims. (Not
    // YXDOMAIN: Knot 3.2 answers NXDOMAIN where RFC 6672 section 2.2 asks for it.)
    for rcode in ["NOERROR", "NXDOMAIN", "REFUSED", "BADVERS", "TC"] {
        assert!(
            coverage.contains_key(rcode),
            "Knot gave no {rcode} answer: the harness lost coverage ({coverage:?})"
        );
    }

    let report_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("differential-report.txt");
    let _ = std::fs::write(
        &report_path,
        report(&cases, &found, &allowed, &subject_name, usize::MAX),
    );
    eprintln!(
        "differential: {} queries to each of knot and {subject_name} in {asked:.1?}, {} differences, {} allowed; \
         reference rcodes {coverage:?}; report in {}",
        cases.len(),
        found.len(),
        allowed.values().sum::<usize>(),
        report_path.display()
    );
    if !found.is_empty() {
        let printed = report(&cases, &found, &allowed, &subject_name, PRINT_LIMIT);
        panic!(
            "{subject_name} differs from knot in {} places:\n{printed}",
            found.len()
        );
    }
}

/// The readable list: a count per field, then each difference with its query, the same
/// difference in several variants of one query (UDP/TCP, EDNS sizes) shown once.
fn report(
    cases: &[Case],
    found: &[(usize, Difference)],
    allowed: &BTreeMap<usize, usize>,
    subject: &str,
    limit: usize,
) -> String {
    let mut per_field: BTreeMap<Field, usize> = BTreeMap::new();
    // (qname as sent, qtype, field, knot's value, subject's value) -> the cases it occurs in.
    let mut groups: Vec<(usize, &Difference, Vec<String>)> = Vec::new();
    let mut group_of: HashMap<(Vec<u8>, u16, Field, &str, &str), usize> = HashMap::new();
    for (index, diff) in found {
        *per_field.entry(diff.field).or_default() += 1;
        let probe = &cases[*index].probe;
        let key = (
            probe.qname.as_slice().to_vec(),
            probe.qtype.to_int(),
            diff.field,
            diff.reference.as_str(),
            diff.subject.as_str(),
        );
        let group = *group_of.entry(key).or_insert_with(|| {
            groups.push((*index, diff, Vec::new()));
            groups.len() - 1
        });
        groups[group].2.push(cases[*index].variant.to_string());
    }
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{} differences ({} distinct) per field: {}",
        found.len(),
        groups.len(),
        fields_text(&per_field)
    );
    for (&allowance, count) in allowed {
        let Allowance { what, rfc, .. } = &ALLOWED[allowance];
        let _ = writeln!(text, "allowed {count} times: {what} ({rfc})");
    }
    for (number, (index, diff, variants)) in groups.iter().enumerate() {
        if number == limit {
            let _ = writeln!(
                text,
                "... and {} more (the report file has all)",
                groups.len() - limit
            );
            break;
        }
        let probe = &cases[*index].probe;
        let variants = if variants.len() == VARIANTS.len() {
            "all variants".to_owned()
        } else {
            variants.join(", ")
        };
        let _ = writeln!(
            text,
            "- {} {} ({}) [{variants}]\n    {}: knot: {}\n    {}{subject}: {}",
            name_text(&probe.qname),
            probe.qtype,
            probe.why,
            diff.field,
            empty_dash(&diff.reference),
            " ".repeat(diff.field.to_string().len() + 2),
            empty_dash(&diff.subject)
        );
    }
    text
}

fn fields_text(per_field: &BTreeMap<Field, usize>) -> String {
    per_field
        .iter()
        .map(|(f, n)| format!("{f}={n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn empty_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}
