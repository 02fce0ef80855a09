//! Domain names in uncompressed wire format.
//!
//! A name is a sequence of length-prefixed labels ending with the empty root label (RFC 1035
//! section 3.1). Lookup keys are lowercased ASCII (RFC 4343 section 3: comparisons are
//! case-insensitive), so a hash lookup on the key is a case-insensitive lookup.

use std::borrow::Borrow;
use std::fmt;

/// Longest name in wire format, root label included (RFC 1035 section 2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// Longest label (RFC 1035 section 2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Most labels a name can have, root included: 127 one-octet labels plus the root.
pub const MAX_LABELS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is longer than 255 octets")]
    TooLong,
    #[error("label is longer than 63 octets")]
    LabelTooLong,
    #[error("empty label inside the name")]
    EmptyLabel,
    #[error("name is not terminated by the root label")]
    Unterminated,
    #[error("bad escape sequence")]
    BadEscape,
    #[error("compression pointer is invalid or loops")]
    BadPointer,
    #[error("reserved label type")]
    BadLabelType,
}

/// An owned domain name in uncompressed wire format, lowercased.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Box<[u8]>);

impl Name {
    /// The root name.
    pub fn root() -> Self {
        Name(Box::new([0]))
    }

    /// Builds a name from wire bytes, checking the structure and lowercasing it.
    pub fn from_wire(wire: &[u8]) -> Result<Self, NameError> {
        check_wire(wire)?;
        Ok(Name(wire.to_ascii_lowercase().into_boxed_slice()))
    }

    /// Parses presentation format (`www.example.com.`, `\065`, `\.`); relative names are made
    /// absolute by treating them as fully qualified, so callers pass absolute names.
    pub fn from_text(text: &str) -> Result<Self, NameError> {
        let mut buf = NameBuf::new();
        buf.push_text(text)?;
        Ok(buf.to_name())
    }

    pub fn as_wire(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a name holds at least the root label. Present for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn is_root(&self) -> bool {
        self.0.len() == 1
    }

    /// Number of labels, not counting the root.
    pub fn label_count(&self) -> usize {
        label_count(&self.0)
    }

    /// Whether `self` is `zone` or below it.
    pub fn ends_with(&self, zone: &Name) -> bool {
        is_subdomain(&self.0, &zone.0)
    }

    /// The name with its first label removed; `None` for the root.
    pub fn parent(&self) -> Option<Name> {
        parent(&self.0).map(|p| Name(p.into()))
    }

    /// `*.` prepended, as used for wildcard owner names (RFC 4592 section 2.1.1).
    pub fn wildcard_child(&self) -> Result<Name, NameError> {
        let mut wire = Vec::with_capacity(self.0.len() + 2);
        wire.extend_from_slice(b"\x01*");
        wire.extend_from_slice(&self.0);
        if wire.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        Ok(Name(wire.into_boxed_slice()))
    }

    /// Whether the first label is the asterisk label (RFC 4592 section 2.1.1).
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with(b"\x01*")
    }
}

impl Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_text(&self.0, f)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

impl std::str::FromStr for Name {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Name::from_text(s)
    }
}

/// A name in a fixed buffer, for the query path where nothing may allocate.
#[derive(Clone)]
pub struct NameBuf {
    len: u8,
    bytes: [u8; MAX_NAME_LEN],
}

impl Default for NameBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl NameBuf {
    /// An empty buffer (not yet a valid name: push labels, then the root).
    pub fn new() -> Self {
        NameBuf {
            len: 0,
            bytes: [0; MAX_NAME_LEN],
        }
    }

    pub fn as_wire(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn to_name(&self) -> Name {
        Name(self.as_wire().into())
    }

    /// Replaces the content with `wire` (already checked wire format).
    pub fn set(&mut self, wire: &[u8]) -> Result<(), NameError> {
        if wire.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        self.bytes[..wire.len()].copy_from_slice(wire);
        self.len = wire.len() as u8;
        Ok(())
    }

    /// Appends raw wire octets (labels and possibly the root), lowercasing them.
    pub fn extend_lowercase(&mut self, wire: &[u8]) -> Result<(), NameError> {
        let start = usize::from(self.len);
        let end = start + wire.len();
        if end > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        for (dst, src) in self.bytes[start..end].iter_mut().zip(wire) {
            *dst = src.to_ascii_lowercase();
        }
        self.len = end as u8;
        Ok(())
    }

    /// Appends a name in presentation format, ending with the root label.
    fn push_text(&mut self, text: &str) -> Result<(), NameError> {
        let text = text.as_bytes();
        if text == b"." || text.is_empty() {
            return self.extend_lowercase(&[0]);
        }
        let mut label = [0u8; MAX_LABEL_LEN];
        let mut label_len = 0usize;
        let mut i = 0;
        let flush = |buf: &mut NameBuf, label: &[u8]| -> Result<(), NameError> {
            if label.is_empty() {
                return Err(NameError::EmptyLabel);
            }
            buf.extend_lowercase(&[label.len() as u8])?;
            buf.extend_lowercase(label)
        };
        while i < text.len() {
            let c = text[i];
            let octet = match c {
                b'.' => {
                    flush(self, &label[..label_len])?;
                    label_len = 0;
                    i += 1;
                    continue;
                }
                b'\\' => {
                    let rest = &text[i + 1..];
                    match rest {
                        [a, b, c, ..] if a.is_ascii_digit() => {
                            if !b.is_ascii_digit() || !c.is_ascii_digit() {
                                return Err(NameError::BadEscape);
                            }
                            let v = u16::from(a - b'0') * 100
                                + u16::from(b - b'0') * 10
                                + u16::from(c - b'0');
                            i += 4;
                            u8::try_from(v).map_err(|_| NameError::BadEscape)?
                        }
                        [a, ..] if !a.is_ascii_digit() => {
                            i += 2;
                            *a
                        }
                        _ => return Err(NameError::BadEscape),
                    }
                }
                _ => {
                    i += 1;
                    c
                }
            };
            if label_len == MAX_LABEL_LEN {
                return Err(NameError::LabelTooLong);
            }
            label[label_len] = octet;
            label_len += 1;
        }
        if label_len > 0 {
            flush(self, &label[..label_len])?;
        }
        self.extend_lowercase(&[0])
    }
}

impl fmt::Display for NameBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_text(self.as_wire(), f)
    }
}

/// Checks that `wire` is exactly one uncompressed name.
pub fn check_wire(wire: &[u8]) -> Result<(), NameError> {
    if wire.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    let mut pos = 0;
    loop {
        let Some(&len) = wire.get(pos) else {
            return Err(NameError::Unterminated);
        };
        if len == 0 {
            return if pos + 1 == wire.len() {
                Ok(())
            } else {
                Err(NameError::Unterminated)
            };
        }
        if usize::from(len) > MAX_LABEL_LEN {
            return Err(NameError::LabelTooLong);
        }
        pos += 1 + usize::from(len);
    }
}

/// Reads a possibly compressed name from `msg` at `start` (RFC 1035 section 4.1.4) into `out`,
/// lowercased. Returns the offset just past the name's bytes at `start`.
pub fn read_compressed(msg: &[u8], start: usize, out: &mut NameBuf) -> Result<usize, NameError> {
    out.clear();
    let mut pos = start;
    let mut end = None;
    // Each pointer must go strictly backwards, so the loop ends; the hop count bounds it anyway.
    let mut hops = 0;
    loop {
        let &len = msg.get(pos).ok_or(NameError::Unterminated)?;
        match len & 0xc0 {
            0x00 => {
                let label_end = pos + 1 + usize::from(len);
                let label = msg.get(pos..label_end).ok_or(NameError::Unterminated)?;
                out.extend_lowercase(label)?;
                if len == 0 {
                    return Ok(end.unwrap_or(label_end));
                }
                pos = label_end;
            }
            0xc0 => {
                let &low = msg.get(pos + 1).ok_or(NameError::Unterminated)?;
                let target = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                if target >= pos || hops > MAX_LABELS {
                    return Err(NameError::BadPointer);
                }
                hops += 1;
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return Err(NameError::BadLabelType),
        }
    }
}

/// Length of the uncompressed name at the start of `wire`, or `None` if there is none.
pub fn uncompressed_len(wire: &[u8]) -> Option<usize> {
    let mut p = 0;
    loop {
        let &len = wire.get(p)?;
        if len & 0xc0 != 0 {
            return None;
        }
        p += 1 + usize::from(len);
        if len == 0 {
            return (p <= wire.len() && p <= MAX_NAME_LEN).then_some(p);
        }
    }
}

/// Number of labels of a wire name, root not counted.
pub fn label_count(wire: &[u8]) -> usize {
    let mut count = 0;
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            break;
        }
        count += 1;
        pos += 1 + usize::from(len);
    }
    count
}

/// The name with its first label removed; `None` for the root.
pub fn parent(wire: &[u8]) -> Option<&[u8]> {
    let &len = wire.first()?;
    if len == 0 {
        return None;
    }
    wire.get(1 + usize::from(len)..)
}

/// Whether `name` equals `zone` or lies below it (both lowercase wire names).
pub fn is_subdomain(name: &[u8], zone: &[u8]) -> bool {
    if name.len() < zone.len() || !name.ends_with(zone) {
        return false;
    }
    // The suffix must start on a label boundary: walk the labels of `name`.
    let mut pos = 0;
    let cut = name.len() - zone.len();
    while pos < cut {
        pos += 1 + usize::from(name[pos]);
    }
    pos == cut
}

/// Offsets of every label start in `wire`, first label first, root included; returns the count.
pub fn label_offsets(wire: &[u8], out: &mut [u8; MAX_LABELS]) -> usize {
    let mut n = 0;
    let mut pos = 0usize;
    while let Some(&len) = wire.get(pos) {
        if n == MAX_LABELS {
            break;
        }
        out[n] = pos as u8;
        n += 1;
        if len == 0 {
            break;
        }
        pos += 1 + usize::from(len);
    }
    n
}

/// Writes a wire name in presentation format with RFC 1035 section 5.1 escapes.
pub fn write_text(wire: &[u8], f: &mut impl fmt::Write) -> fmt::Result {
    let mut pos = 0;
    if wire.first() == Some(&0) {
        return f.write_char('.');
    }
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            break;
        }
        let Some(label) = wire.get(pos + 1..pos + 1 + usize::from(len)) else {
            break;
        };
        for &c in label {
            match c {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    f.write_char('\\')?;
                    f.write_char(char::from(c))?;
                }
                0x21..=0x7e => f.write_char(char::from(c))?,
                _ => write!(f, "\\{c:03}")?,
            }
        }
        f.write_char('.')?;
        pos += 1 + usize::from(len);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_text(s).unwrap()
    }

    #[test]
    fn text_round_trip_with_escapes() {
        let name = n("A\\.b.Ex\\065mple.COM.");
        assert_eq!(name.as_wire(), b"\x03a.b\x07example\x03com\x00");
        assert_eq!(name.to_string(), "a\\.b.example.com.");
        assert_eq!(n(".").as_wire(), b"\x00");
        assert_eq!(n("\\000.x").to_string(), "\\000.x.");
    }

    #[test]
    fn rfc1035_2_3_4_limits() {
        let label = "a".repeat(64);
        assert_eq!(Name::from_text(&label), Err(NameError::LabelTooLong));
        let long = ["a".repeat(63).as_str(); 4].join(".");
        assert_eq!(Name::from_text(&long), Err(NameError::TooLong));
        assert_eq!(Name::from_text("a..b"), Err(NameError::EmptyLabel));
    }

    #[test]
    fn subdomain_respects_label_boundaries() {
        assert!(n("www.example.com").ends_with(&n("example.com")));
        assert!(n("example.com").ends_with(&n("example.com")));
        assert!(!n("www.xexample.com").ends_with(&n("example.com")));
        assert!(n("anything").ends_with(&Name::root()));
    }

    #[test]
    fn rfc1035_4_1_4_compression_pointers() {
        // "example.com" at 12, then "www" + pointer to 12 at 25.
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(b"\x07example\x03com\x00");
        msg.extend_from_slice(b"\x03WWW\xc0\x0c");
        let mut out = NameBuf::new();
        let end = read_compressed(&msg, 25, &mut out).unwrap();
        assert_eq!(end, msg.len());
        assert_eq!(out.as_wire(), b"\x03www\x07example\x03com\x00");
        // A pointer to itself or forwards is refused.
        let looped = [0u8, 0, 0xc0, 0x02];
        assert_eq!(
            read_compressed(&looped, 2, &mut out),
            Err(NameError::BadPointer)
        );
    }

    #[test]
    fn parent_and_offsets() {
        let name = n("a.b.c");
        assert_eq!(parent(name.as_wire()), Some(&b"\x01b\x01c\x00"[..]));
        let mut offs = [0u8; MAX_LABELS];
        assert_eq!(label_offsets(name.as_wire(), &mut offs), 4);
        assert_eq!(&offs[..4], &[0, 2, 4, 6]);
        assert_eq!(name.label_count(), 3);
    }
}
