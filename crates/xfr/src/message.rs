//! Building and reading the messages of zone transfer and NOTIFY with domain.
//!
//! Records come out as [`Record`]s: owner lowercased, RDATA in uncompressed wire format (names
//! in RDATA are decompressed by parsing the RDATA of the known types, RFC 3597 section 4).

use anyns_wire::{Class, Name, Rcode, Rtype};
use anyns_zone::Record;
use domain::base::iana::{Class as DClass, Opcode as DOpcode, Rtype as DRtype};
use domain::base::message_builder::{AdditionalBuilder, MessageBuilder, PushError};
use domain::base::name::ParsedName;
use domain::base::rdata::{ComposeRecordData, UnknownRecordData};
use domain::base::{Message, ParsedRecord, Record as DRecord, RecordSection, ToName, Ttl};
use domain::rdata::AllRecordData;

pub(crate) type DName = domain::base::Name<Vec<u8>>;

/// A name in domain's type. Our names are checked wire format, so this cannot fail; the root
/// stands in for the impossible case rather than a panic.
pub(crate) fn dname(name: &Name) -> DName {
    DName::from_octets(name.as_wire().to_vec()).unwrap_or_else(|_| DName::root_vec())
}

pub(crate) fn our_name<N: ToName + ?Sized>(name: &N) -> Result<Name, MessageError> {
    Name::from_wire(name.to_vec().as_slice()).map_err(|_| MessageError("bad name".into()))
}

/// A malformed or unexpected message, with what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MessageError(pub String);

impl From<domain::base::wire::ParseError> for MessageError {
    fn from(e: domain::base::wire::ParseError) -> Self {
        MessageError(format!("malformed message: {e}"))
    }
}

/// A request's header fields, question, and the records we push into it.
pub(crate) struct RequestSpec<'a> {
    pub id: u16,
    pub opcode: DOpcode,
    pub qname: &'a Name,
    pub qtype: Rtype,
    pub aa: bool,
    pub answer: &'a [Record],
    pub authority: &'a [Record],
}

/// Builds a request up to the additional section, where a TSIG record may still be added.
pub(crate) fn build_request(
    spec: &RequestSpec<'_>,
) -> Result<AdditionalBuilder<Vec<u8>>, PushError> {
    let mut builder = MessageBuilder::new_vec();
    let header = builder.header_mut();
    header.set_id(spec.id);
    header.set_opcode(spec.opcode);
    header.set_aa(spec.aa);
    let mut q = builder.question();
    q.push((
        dname(spec.qname),
        DRtype::from_int(spec.qtype.0),
        DClass::IN,
    ))?;
    let mut answer = q.answer();
    for r in spec.answer {
        answer.push(record_for_push(r)?)?;
    }
    let mut authority = answer.authority();
    for r in spec.authority {
        authority.push(record_for_push(r)?)?;
    }
    Ok(authority.additional())
}

pub(crate) type PushRecord = DRecord<DName, UnknownRecordData<Vec<u8>>>;

/// A stored record in domain's form for writing. RDATA is written as stored: uncompressed, which
/// every reader accepts.
pub(crate) fn record_for_push(r: &Record) -> Result<PushRecord, PushError> {
    let data = UnknownRecordData::from_octets(DRtype::from_int(r.rtype.0), r.rdata.to_vec())
        .map_err(|_| PushError::ShortBuf)?;
    Ok(DRecord::new(
        dname(&r.owner),
        DClass::IN,
        Ttl::from_secs(r.ttl),
        data,
    ))
}

/// The parts of a received message the transfer and NOTIFY logic look at.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub id: u16,
    pub qr: bool,
    pub opcode: u8,
    pub rcode: Rcode,
    pub tc: bool,
    pub question: Option<(Name, Rtype, Class)>,
    pub qdcount: u16,
}

pub(crate) fn parse_header(msg: &Message<Vec<u8>>) -> Result<Parsed, MessageError> {
    let header = msg.header();
    let counts = msg.header_counts();
    let question = match msg.question().next() {
        Some(q) => {
            let q = q?;
            Some((
                our_name(q.qname())?,
                Rtype(q.qtype().to_int()),
                Class(q.qclass().to_int()),
            ))
        }
        None => None,
    };
    Ok(Parsed {
        id: header.id(),
        qr: header.qr(),
        opcode: header.opcode().to_int(),
        rcode: Rcode(u16::from(header.rcode().to_int())),
        tc: header.tc(),
        question,
        qdcount: counts.qdcount(),
    })
}

/// Every record of a section, class checked to be IN unless `any_class` (NOTIFY may carry others).
pub(crate) fn section_records(
    section: RecordSection<'_, Vec<u8>>,
    mut each: impl FnMut(Record) -> Result<(), MessageError>,
) -> Result<(), MessageError> {
    for record in section {
        let record = record?;
        let converted = convert(&record)?;
        each(converted)?;
    }
    Ok(())
}

fn convert(record: &ParsedRecord<'_, Vec<u8>>) -> Result<Record, MessageError> {
    if record.class() != DClass::IN {
        return Err(MessageError(format!(
            "record {} of class {} (only IN is transferred)",
            record.owner(),
            record.class()
        )));
    }
    let owner = our_name(&record.owner())?;
    let rtype = Rtype(record.rtype().to_int());
    let parsed = record
        .to_any_record::<AllRecordData<&[u8], ParsedName<&[u8]>>>()
        .map_err(|e| MessageError(format!("{owner} {rtype}: bad record data: {e}")))?;
    let mut rdata = Vec::with_capacity(usize::from(record.rdlen()));
    parsed
        .data()
        .compose_rdata(&mut rdata)
        .map_err(|_| MessageError(format!("{owner} {rtype}: record data too long")))?;
    Ok(Record {
        owner,
        rtype,
        ttl: record.ttl().as_secs(),
        rdata: rdata.into_boxed_slice(),
    })
}

/// Parses `bytes` as a message; short ones are malformed.
pub(crate) fn message(bytes: Vec<u8>) -> Result<Message<Vec<u8>>, MessageError> {
    Message::from_octets(bytes).map_err(|_| MessageError("message shorter than a header".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip_decompresses_rdata() {
        let zone = Name::from_text("example.test").unwrap();
        let soa = Record::new(
            zone.clone(),
            Rtype::SOA,
            300,
            b"\x02ns\x07example\x04test\x00\x02hm\x07example\x04test\x00\0\0\0\x05\0\0\0\x3c\0\0\0\x1e\0\0\x02\x58\0\0\0\x3c",
        );
        let builder = build_request(&RequestSpec {
            id: 7,
            opcode: DOpcode::QUERY,
            qname: &zone,
            qtype: Rtype::IXFR,
            aa: false,
            answer: &[],
            authority: std::slice::from_ref(&soa),
        })
        .unwrap();
        let msg = message(builder.finish()).unwrap();
        let p = parse_header(&msg).unwrap();
        assert_eq!(p.id, 7);
        assert_eq!(p.question, Some((zone, Rtype::IXFR, Class::IN)));
        let mut got = Vec::new();
        section_records(msg.authority().unwrap(), |r| {
            got.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(got, vec![soa]);
    }

    #[test]
    fn compressed_rdata_names_come_out_whole() {
        // Header, question example.test SOA at offset 12, then an NS record whose owner and
        // RDATA point back into the question name.
        let mut m = vec![0, 1, 0x80, 0, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(b"\x07example\x04test\x00\x00\x06\x00\x01");
        m.extend_from_slice(b"\xc0\x0c\x00\x02\x00\x01\x00\x00\x0e\x10\x00\x05\x02ns\xc0\x0c");
        let msg = message(m).unwrap();
        let mut got = Vec::new();
        section_records(msg.answer().unwrap(), |r| {
            got.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(&*got[0].rdata, b"\x02ns\x07example\x04test\x00");
        assert_eq!(got[0].ttl, 3600);
    }
}
