//! DNS wire format for the anyns hot path.
//!
//! Everything here works on borrowed byte slices and fixed-size buffers so that parsing a query and
//! writing its answer allocates nothing. Names are kept in uncompressed wire format, lowercased
//! (RFC 4343) wherever they are used as lookup keys.

pub mod name;
pub mod query;
pub mod types;
pub mod writer;

pub use name::{Name, NameBuf, NameError};
pub use query::{Edns, ParseError, Query};
pub use types::{Class, Opcode, Rcode, Rtype};
pub use writer::{MessageWriter, Section, WriteError};

/// Size of the fixed DNS message header (RFC 1035 section 4.1.1).
pub const HEADER_LEN: usize = 12;

/// Largest DNS message over TCP: the two-octet length prefix limits it (RFC 1035 section 4.2.2).
pub const MAX_MESSAGE_LEN: usize = 65_535;

/// Header flag bits (RFC 1035 section 4.1.1, RFC 4035 section 3.2 for AD and CD).
pub mod flags {
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
    pub const AD: u16 = 0x0020;
    pub const CD: u16 = 0x0010;
    pub const OPCODE_MASK: u16 = 0x7800;
    pub const RCODE_MASK: u16 = 0x000f;
}
