//! A response writer over a caller-provided buffer, with name compression (RFC 1035 section
//! 4.1.4) and all-or-nothing record writes so that truncation leaves a well-formed message.

use crate::HEADER_LEN;
use crate::name::{MAX_LABELS, uncompressed_len};
use crate::types::Rtype;

/// How many name positions the compressor remembers. Answers that need more simply compress less.
const COMPRESSION_SLOTS: usize = 96;

/// The four sections of a message, in the order they must be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Question = 0,
    Answer = 1,
    Authority = 2,
    Additional = 3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The record does not fit in the size limit; nothing of it was written.
    #[error("message size limit reached")]
    Truncated,
    /// Stored record data did not have the layout its type requires.
    #[error("record data does not match its type")]
    BadRdata,
}

/// A position in the message to roll back to.
#[derive(Clone, Copy)]
pub struct Mark {
    pos: usize,
    counts: [u16; 4],
    slots: usize,
}

pub struct MessageWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
    limit: usize,
    counts: [u16; 4],
    section: Section,
    slots: [u16; COMPRESSION_SLOTS],
    slot_count: usize,
}

impl<'a> MessageWriter<'a> {
    /// Starts a message with the given header; nothing past `limit` octets will be written.
    pub fn new(buf: &'a mut [u8], limit: usize, id: u16, flags: u16) -> Self {
        let limit = limit.min(buf.len());
        buf[..2].copy_from_slice(&id.to_be_bytes());
        buf[2..4].copy_from_slice(&flags.to_be_bytes());
        buf[4..HEADER_LEN].fill(0);
        MessageWriter {
            buf,
            pos: HEADER_LEN,
            limit,
            counts: [0; 4],
            section: Section::Question,
            slots: [0; COMPRESSION_SLOTS],
            slot_count: 0,
        }
    }

    pub fn flags(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }

    pub fn set_flags(&mut self, flags: u16) {
        self.buf[2..4].copy_from_slice(&flags.to_be_bytes());
    }

    pub fn count(&self, section: Section) -> u16 {
        self.counts[section as usize]
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos == HEADER_LEN
    }

    /// Lowers the size limit by `n` octets, to keep room for a record written last (the OPT).
    pub fn reserve(&mut self, n: usize) {
        self.limit = self.limit.saturating_sub(n);
    }

    /// Gives back room taken by [`reserve`](Self::reserve).
    pub fn unreserve(&mut self, n: usize) {
        self.limit = (self.limit + n).min(self.buf.len());
    }

    pub fn mark(&self) -> Mark {
        Mark {
            pos: self.pos,
            counts: self.counts,
            slots: self.slot_count,
        }
    }

    pub fn rollback(&mut self, mark: Mark) {
        self.pos = mark.pos;
        self.counts = mark.counts;
        self.slot_count = mark.slots;
        self.section = match self.counts {
            [_, 0, 0, 0] => Section::Question,
            [_, _, 0, 0] => self.section.min(Section::Answer),
            [_, _, _, 0] => self.section.min(Section::Authority),
            _ => Section::Additional,
        };
    }

    /// Copies a question as received (case preserved) and makes its name a compression target.
    pub fn push_question(&mut self, question: &[u8]) -> Result<(), WriteError> {
        debug_assert!(self.section == Section::Question);
        let start = self.pos;
        self.put(question)?;
        // Register every suffix of the question name (uncompressed, checked by the parser).
        let mut p = start;
        while p < self.pos && self.buf[p] != 0 && self.buf[p] & 0xc0 == 0 {
            self.remember(p);
            p += 1 + usize::from(self.buf[p]);
        }
        self.counts[Section::Question as usize] += 1;
        Ok(())
    }

    /// Appends one resource record; on failure nothing is written.
    pub fn push_rr(
        &mut self,
        section: Section,
        owner: &[u8],
        rtype: Rtype,
        class: u16,
        ttl: u32,
        rdata: &[u8],
    ) -> Result<(), WriteError> {
        debug_assert!(section >= self.section, "sections out of order");
        let mark = self.mark();
        let result = self.push_rr_inner(owner, rtype, class, ttl, rdata);
        self.settle(section, mark, result)
    }

    /// Counts a record just written, or removes what was written of it.
    fn settle(
        &mut self,
        section: Section,
        mark: Mark,
        result: Result<(), WriteError>,
    ) -> Result<(), WriteError> {
        match result {
            Ok(()) => {
                self.section = section;
                self.counts[section as usize] += 1;
                Ok(())
            }
            Err(e) => {
                self.rollback(mark);
                Err(e)
            }
        }
    }

    fn push_rr_inner(
        &mut self,
        owner: &[u8],
        rtype: Rtype,
        class: u16,
        ttl: u32,
        rdata: &[u8],
    ) -> Result<(), WriteError> {
        self.put_name(owner)?;
        self.put(&rtype.0.to_be_bytes())?;
        self.put(&class.to_be_bytes())?;
        self.put(&ttl.to_be_bytes())?;
        let rdlen_at = self.pos;
        self.put(&[0, 0])?;
        self.put_rdata(rtype, rdata)?;
        let rdlen = u16::try_from(self.pos - rdlen_at - 2).map_err(|_| WriteError::Truncated)?;
        self.buf[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        Ok(())
    }

    /// Writes RDATA, compressing the embedded names of the RFC 1035 types only (RFC 3597
    /// section 4: names in other types' RDATA must not be compressed).
    fn put_rdata(&mut self, rtype: Rtype, rdata: &[u8]) -> Result<(), WriteError> {
        let (prefix, names, suffix) = match rtype {
            Rtype::NS
            | Rtype::CNAME
            | Rtype::PTR
            | Rtype::MD
            | Rtype::MF
            | Rtype::MB
            | Rtype::MG
            | Rtype::MR => (0, 1, true),
            Rtype::SOA | Rtype::MINFO => (0, 2, true),
            Rtype::MX => (2, 1, false),
            _ => return self.put(rdata),
        };
        let head = rdata.get(..prefix).ok_or(WriteError::BadRdata)?;
        self.put(head)?;
        let mut rest = &rdata[prefix..];
        for _ in 0..names {
            let len = uncompressed_len(rest).ok_or(WriteError::BadRdata)?;
            self.put_name(&rest[..len])?;
            rest = &rest[len..];
        }
        if suffix {
            self.put(rest)
        } else if rest.is_empty() {
            Ok(())
        } else {
            Err(WriteError::BadRdata)
        }
    }

    /// Writes an uncompressed wire name, replacing its longest known suffix by a pointer.
    pub fn put_name(&mut self, name: &[u8]) -> Result<(), WriteError> {
        let mut p = 0;
        loop {
            let &len = name.get(p).ok_or(WriteError::BadRdata)?;
            if len == 0 {
                return self.put(&[0]);
            }
            if let Some(target) = self.find(&name[p..]) {
                return self.put(&(0xc000 | target).to_be_bytes());
            }
            let label_end = p + 1 + usize::from(len);
            let label = name.get(p..label_end).ok_or(WriteError::BadRdata)?;
            let at = self.pos;
            self.put(label)?;
            self.remember(at);
            p = label_end;
        }
    }

    /// Writes the OPT pseudo-record (RFC 6891 section 6.1.2) into room kept by `reserve`.
    pub fn push_opt(
        &mut self,
        udp_payload: u16,
        extended_rcode: u8,
        dnssec_ok: bool,
        options: &[(u16, &[u8])],
    ) -> Result<(), WriteError> {
        let ttl = (u32::from(extended_rcode) << 24) | if dnssec_ok { 0x8000 } else { 0 };
        let mark = self.mark();
        let result = (|| {
            self.put(&[0])?;
            self.put(&Rtype::OPT.0.to_be_bytes())?;
            self.put(&udp_payload.to_be_bytes())?;
            self.put(&ttl.to_be_bytes())?;
            let rdlen: usize = options.iter().map(|(_, d)| 4 + d.len()).sum();
            let rdlen = u16::try_from(rdlen).map_err(|_| WriteError::Truncated)?;
            self.put(&rdlen.to_be_bytes())?;
            for (code, data) in options {
                self.put(&code.to_be_bytes())?;
                let len = u16::try_from(data.len()).map_err(|_| WriteError::Truncated)?;
                self.put(&len.to_be_bytes())?;
                self.put(data)?;
            }
            Ok(())
        })();
        self.settle(Section::Additional, mark, result)
    }

    /// Writes the section counts and returns the message length.
    pub fn finish(self) -> usize {
        for (i, count) in self.counts.iter().enumerate() {
            self.buf[4 + 2 * i..6 + 2 * i].copy_from_slice(&count.to_be_bytes());
        }
        self.pos
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        let end = self.pos + bytes.len();
        if end > self.limit {
            return Err(WriteError::Truncated);
        }
        self.buf[self.pos..end].copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    fn remember(&mut self, offset: usize) {
        // Pointers hold 14 bits of offset.
        if self.slot_count < COMPRESSION_SLOTS && offset < 0x4000 {
            self.slots[self.slot_count] = offset as u16;
            self.slot_count += 1;
        }
    }

    fn find(&self, suffix: &[u8]) -> Option<u16> {
        self.slots[..self.slot_count]
            .iter()
            .copied()
            .find(|&at| self.name_at_equals(usize::from(at), suffix))
    }

    /// Compares the (possibly compressed) name written at `at` with `name`, ignoring ASCII case.
    fn name_at_equals(&self, mut at: usize, name: &[u8]) -> bool {
        let mut p = 0;
        for _ in 0..MAX_LABELS * 2 {
            let Some(&len) = self.buf[..self.pos].get(at) else {
                return false;
            };
            if len & 0xc0 == 0xc0 {
                let Some(&low) = self.buf[..self.pos].get(at + 1) else {
                    return false;
                };
                at = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                continue;
            }
            let end = at + 1 + usize::from(len);
            let (Some(ours), Some(theirs)) = (self.buf.get(at..end), name.get(p..p + end - at))
            else {
                return false;
            };
            if !ours.eq_ignore_ascii_case(theirs) {
                return false;
            }
            if len == 0 {
                return true;
            }
            p += end - at;
            at = end;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Name;

    #[test]
    fn rfc1035_4_1_4_owner_and_rdata_compressed_against_question() {
        let mut buf = [0u8; 512];
        let mut w = MessageWriter::new(&mut buf, 512, 7, 0x8400);
        w.push_question(b"\x03WWW\x07example\x03com\x00\x00\x05\x00\x01")
            .unwrap();
        let owner = Name::from_text("www.example.com").unwrap();
        let target = Name::from_text("host.example.com").unwrap();
        w.push_rr(
            Section::Answer,
            owner.as_wire(),
            Rtype::CNAME,
            1,
            300,
            target.as_wire(),
        )
        .unwrap();
        let len = w.finish();
        let msg = &buf[..len];
        // Owner: pointer to offset 12. RDATA: "host" + pointer to "example.com" at 16.
        assert_eq!(&msg[33..35], &[0xc0, 0x0c]);
        assert_eq!(&msg[43..45], &[0, 7]);
        assert_eq!(&msg[45..52], b"\x04host\xc0\x10");
        assert_eq!(&msg[4..12], &[0, 1, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn rfc3597_4_unknown_types_are_not_compressed() {
        let mut buf = [0u8; 512];
        let mut w = MessageWriter::new(&mut buf, 512, 7, 0x8400);
        w.push_question(b"\x01a\x00\x00\x01\x00\x01").unwrap();
        w.push_rr(
            Section::Answer,
            b"\x01a\x00",
            Rtype(65000),
            1,
            0,
            b"\x01a\x00",
        )
        .unwrap();
        let len = w.finish();
        assert_eq!(&buf[len - 3..len], b"\x01a\x00");
    }

    #[test]
    fn full_buffer_rolls_back_whole_record() {
        let mut buf = [0u8; 512];
        let mut w = MessageWriter::new(&mut buf, 40, 1, 0);
        w.push_question(b"\x01a\x00\x00\x01\x00\x01").unwrap();
        let before = w.len();
        let big = [0u8; 30];
        assert_eq!(
            w.push_rr(Section::Answer, b"\x01b\x00", Rtype::TXT, 1, 0, &big),
            Err(WriteError::Truncated)
        );
        assert_eq!(w.len(), before);
        assert_eq!(w.count(Section::Answer), 0);
    }

    #[test]
    fn opt_fits_in_reserved_room() {
        let mut buf = [0u8; 512];
        let mut w = MessageWriter::new(&mut buf, 30, 1, 0);
        w.push_question(b"\x01a\x00\x00\x01\x00\x01").unwrap();
        w.reserve(11);
        assert!(
            w.push_rr(Section::Answer, b"\x01a\x00", Rtype::A, 1, 0, &[1, 2, 3, 4])
                .is_err()
        );
        w.unreserve(11);
        w.push_opt(1232, 0, false, &[]).unwrap();
        assert_eq!(w.finish(), 30);
    }
}
