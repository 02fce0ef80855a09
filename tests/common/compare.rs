//! Comparing two servers' responses to the same query, section by section.
//!
//! A response is reduced to a [`Summary`]: rcode (with the EDNS extended bits), opcode, header
//! flags, the question exactly as sent back (case kept: RFC 1035 section 7.3 servers copy the
//! question; RFC 4343 section 4.1 says case should be preserved), a few OPT fields, and each
//! record section as a sorted multiset. Records compare on their owner in canonical (lower)
//! case, type, class, TTL and canonical RDATA (RFC 4034 section 6.2), so neither record order
//! within a section (RFC 2181 section 5 makes an RRset unordered) nor name compression nor the
//! case of names in data matters.

use std::fmt;

use domain::base::iana::Rtype;
use domain::base::name::ParsedName;
use domain::base::rdata::ComposeRecordData;
use domain::base::{Message, ParsedRecord, ToName};
use domain::rdata::AllRecordData;

use super::dns::name_text;

/// One record, ready to compare: a canonical key and a text for reports.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rec {
    pub key: Vec<u8>,
    pub rtype: Rtype,
    pub text: String,
}

/// The three record sections, in wire order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    Answer,
    Authority,
    Additional,
}

impl Section {
    pub const ALL: [Section; 3] = [Section::Answer, Section::Authority, Section::Additional];
}

/// What of a response is compared.
#[derive(Clone, Debug)]
pub struct Summary {
    pub rcode: String,
    pub opcode: String,
    pub flags: String,
    pub truncated: bool,
    pub question: Vec<String>,
    /// OPT presence and the fields compared: version and DO (payload size and options such as
    /// NSID are server-specific and ignored).
    pub opt: Option<String>,
    /// Answer, authority, additional (without OPT), each sorted.
    pub sections: [Vec<Rec>; 3],
}

impl Summary {
    pub fn section(&self, section: Section) -> &[Rec] {
        &self.sections[section as usize]
    }

    /// Parses a response. Any parse error is a finding in itself.
    pub fn parse(bytes: Vec<u8>) -> Result<Summary, String> {
        let msg = Message::from_octets(bytes).map_err(|e| format!("short message: {e}"))?;
        let header = msg.header();
        let mut flags = Vec::new();
        for (set, name) in [
            (header.qr(), "qr"),
            (header.aa(), "aa"),
            (header.tc(), "tc"),
            (header.rd(), "rd"),
            (header.ra(), "ra"),
            (header.z(), "z"),
            (header.ad(), "ad"),
            (header.cd(), "cd"),
        ] {
            if set {
                flags.push(name);
            }
        }
        let mut question = Vec::new();
        for q in msg.question() {
            let q = q.map_err(|e| format!("question section: {e}"))?;
            question.push(format!(
                "{} {} {}",
                name_text(q.qname()),
                q.qclass(),
                q.qtype()
            ));
        }
        let mut opt_count = 0;
        let mut sections: [Vec<Rec>; 3] = Default::default();
        let mut section = msg.answer().map_err(|e| format!("answer section: {e}"))?;
        for which in Section::ALL {
            for rr in &mut section {
                let rr = rr.map_err(|e| format!("{which:?} section: {e}"))?;
                if rr.rtype() == Rtype::OPT {
                    opt_count += 1;
                    continue;
                }
                sections[which as usize]
                    .push(record(rr).map_err(|e| format!("{which:?} section: {e}"))?);
            }
            match section
                .next_section()
                .map_err(|e| format!("after {which:?}: {e}"))?
            {
                Some(next) => section = next,
                None => break,
            }
        }
        for list in &mut sections {
            list.sort();
        }
        let opt = msg.opt().map(|opt| {
            let count = if opt_count > 1 {
                format!(" ({opt_count} OPT records)")
            } else {
                String::new()
            };
            format!(
                "version={} do={}{count}",
                opt.version(),
                u8::from(opt.dnssec_ok())
            )
        });
        Ok(Summary {
            rcode: msg.opt_rcode().to_string(),
            opcode: header.opcode().to_string(),
            flags: flags.join(" "),
            truncated: header.tc(),
            question,
            opt,
            sections,
        })
    }
}

fn record(rr: ParsedRecord<'_, Vec<u8>>) -> Result<Rec, String> {
    let rec = rr
        .into_any_record::<AllRecordData<&[u8], ParsedName<&[u8]>>>()
        .map_err(|e| format!("bad record data: {e}"))?;
    let mut key = Vec::new();
    let _ = rec.owner().compose_canonical(&mut key);
    key.extend_from_slice(&rec.rtype().to_int().to_be_bytes());
    key.extend_from_slice(&rec.class().to_int().to_be_bytes());
    key.extend_from_slice(&rec.ttl().as_secs().to_be_bytes());
    let _ = rec.data().compose_canonical_rdata(&mut key);
    let text = format!(
        "{} {} {} {} {}",
        name_text(rec.owner()),
        rec.ttl().as_secs(),
        rec.class(),
        rec.rtype(),
        rec.data()
    );
    Ok(Rec {
        key,
        rtype: rec.rtype(),
        text,
    })
}

//------------ Difference -----------------------------------------------------

/// The part of a response where two servers differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// One server gave no usable answer (timeout, parse error).
    Response,
    Rcode,
    Opcode,
    Flags,
    Question,
    Opt,
    Section(Section),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Response => f.write_str("response"),
            Field::Rcode => f.write_str("rcode"),
            Field::Opcode => f.write_str("opcode"),
            Field::Flags => f.write_str("flags"),
            Field::Question => f.write_str("question"),
            Field::Opt => f.write_str("opt"),
            Field::Section(s) => write!(f, "{}", format!("{s:?}").to_lowercase()),
        }
    }
}

/// One difference: the field, and what each server had there. For a section, the records
/// only the reference had, and those only the subject had.
#[derive(Clone, Debug)]
pub struct Difference {
    pub field: Field,
    pub reference: String,
    pub subject: String,
    /// For sections: the records on each side that the other lacks.
    pub only_reference: Vec<Rec>,
    pub only_subject: Vec<Rec>,
}

impl Difference {
    fn plain(field: Field, reference: impl fmt::Display, subject: impl fmt::Display) -> Self {
        Difference {
            field,
            reference: reference.to_string(),
            subject: subject.to_string(),
            only_reference: Vec::new(),
            only_subject: Vec::new(),
        }
    }
}

/// Compares a subject's response with the reference's. With TC=1 on either side only the
/// rcode, opcode, flags and question are compared: a truncated response may carry any part of
/// the data that fitted (RFC 2181 section 9), and servers choose differently.
pub fn compare(
    reference: &Result<Summary, String>,
    subject: &Result<Summary, String>,
) -> Vec<Difference> {
    let (reference, subject) = match (reference, subject) {
        (Ok(r), Ok(s)) => (r, s),
        (Err(r), Err(s)) if r == s => return Vec::new(),
        (r, s) => {
            let text = |x: &Result<Summary, String>| match x {
                Ok(sum) => format!("{} {}", sum.rcode, sum.flags),
                Err(e) => e.clone(),
            };
            return vec![Difference::plain(Field::Response, text(r), text(s))];
        }
    };
    let mut diffs = Vec::new();
    let mut plain = |field, r: &String, s: &String| {
        if r != s {
            diffs.push(Difference::plain(field, r, s));
        }
    };
    plain(Field::Rcode, &reference.rcode, &subject.rcode);
    plain(Field::Opcode, &reference.opcode, &subject.opcode);
    plain(Field::Flags, &reference.flags, &subject.flags);
    plain(
        Field::Question,
        &reference.question.join(", "),
        &subject.question.join(", "),
    );
    if reference.truncated || subject.truncated {
        return diffs;
    }
    let opt_text = |o: &Option<String>| o.clone().unwrap_or_else(|| "no OPT".to_owned());
    plain(
        Field::Opt,
        &opt_text(&reference.opt),
        &opt_text(&subject.opt),
    );
    for section in Section::ALL {
        let (only_reference, only_subject) =
            multiset_difference(reference.section(section), subject.section(section));
        if !only_reference.is_empty() || !only_subject.is_empty() {
            let join = |recs: &[Rec]| {
                recs.iter()
                    .map(|r| r.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" | ")
            };
            diffs.push(Difference {
                field: Field::Section(section),
                reference: join(&only_reference),
                subject: join(&only_subject),
                only_reference,
                only_subject,
            });
        }
    }
    diffs
}

/// The elements of two sorted lists that the other lacks, counting duplicates.
fn multiset_difference(a: &[Rec], b: &[Rec]) -> (Vec<Rec>, Vec<Rec>) {
    let (mut i, mut j) = (0, 0);
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.key == y.key => {
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.key < y.key => {
                only_a.push(x.clone());
                i += 1;
            }
            (Some(_), Some(y)) | (None, Some(y)) => {
                only_b.push(y.clone());
                j += 1;
            }
            (Some(x), None) => {
                only_a.push(x.clone());
                i += 1;
            }
            (None, None) => break,
        }
    }
    (only_a, only_b)
}
