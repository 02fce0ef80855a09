//! Numeric DNS parameters as newtypes (IANA "Domain Name System (DNS) Parameters").

use std::fmt;

macro_rules! code_type {
    ($(#[$doc:meta])* $name:ident($int:ty) { $($konst:ident = $value:expr, $text:expr;)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $name(pub $int);

        impl $name {
            $(pub const $konst: $name = $name($value);)*

            /// The mnemonic, if this value has one.
            pub fn mnemonic(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }

            /// Parses a mnemonic (case-insensitive).
            pub fn from_mnemonic(text: &str) -> Option<Self> {
                $(if text.eq_ignore_ascii_case($text) {
                    return Some($name($value));
                })*
                None
            }
        }
    };
}

code_type! {
    /// Resource record TYPE (RFC 1035 section 3.2.2 and later registrations).
    Rtype(u16) {
        A = 1, "A";
        NS = 2, "NS";
        MD = 3, "MD";
        MF = 4, "MF";
        CNAME = 5, "CNAME";
        SOA = 6, "SOA";
        MB = 7, "MB";
        MG = 8, "MG";
        MR = 9, "MR";
        NULL = 10, "NULL";
        WKS = 11, "WKS";
        PTR = 12, "PTR";
        HINFO = 13, "HINFO";
        MINFO = 14, "MINFO";
        MX = 15, "MX";
        TXT = 16, "TXT";
        RP = 17, "RP";
        AFSDB = 18, "AFSDB";
        AAAA = 28, "AAAA";
        LOC = 29, "LOC";
        SRV = 33, "SRV";
        NAPTR = 35, "NAPTR";
        KX = 36, "KX";
        CERT = 37, "CERT";
        DNAME = 39, "DNAME";
        OPT = 41, "OPT";
        DS = 43, "DS";
        SSHFP = 44, "SSHFP";
        RRSIG = 46, "RRSIG";
        NSEC = 47, "NSEC";
        DNSKEY = 48, "DNSKEY";
        NSEC3 = 50, "NSEC3";
        NSEC3PARAM = 51, "NSEC3PARAM";
        TLSA = 52, "TLSA";
        CDS = 59, "CDS";
        CDNSKEY = 60, "CDNSKEY";
        OPENPGPKEY = 61, "OPENPGPKEY";
        CSYNC = 62, "CSYNC";
        ZONEMD = 63, "ZONEMD";
        SVCB = 64, "SVCB";
        HTTPS = 65, "HTTPS";
        SPF = 99, "SPF";
        TKEY = 249, "TKEY";
        TSIG = 250, "TSIG";
        IXFR = 251, "IXFR";
        AXFR = 252, "AXFR";
        MAILB = 253, "MAILB";
        MAILA = 254, "MAILA";
        ANY = 255, "ANY";
        URI = 256, "URI";
        CAA = 257, "CAA";
    }
}

impl Rtype {
    /// Meta and question-only types that can never be stored in a zone (RFC 6895 section 3.1).
    pub fn is_meta(self) -> bool {
        self == Rtype::OPT || (128..=255).contains(&self.0)
    }
}

impl fmt::Display for Rtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mnemonic() {
            Some(m) => f.write_str(m),
            // RFC 3597 section 5 generic type name.
            None => write!(f, "TYPE{}", self.0),
        }
    }
}

code_type! {
    /// CLASS (RFC 1035 section 3.2.4).
    Class(u16) {
        IN = 1, "IN";
        CH = 3, "CH";
        HS = 4, "HS";
        NONE = 254, "NONE";
        ANY = 255, "ANY";
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mnemonic() {
            Some(m) => f.write_str(m),
            None => write!(f, "CLASS{}", self.0),
        }
    }
}

code_type! {
    /// RCODE, including the extended values carried in OPT (RFC 6891 section 6.1.3).
    Rcode(u16) {
        NOERROR = 0, "NOERROR";
        FORMERR = 1, "FORMERR";
        SERVFAIL = 2, "SERVFAIL";
        NXDOMAIN = 3, "NXDOMAIN";
        NOTIMP = 4, "NOTIMP";
        REFUSED = 5, "REFUSED";
        YXDOMAIN = 6, "YXDOMAIN";
        NOTAUTH = 9, "NOTAUTH";
        BADVERS = 16, "BADVERS";
    }
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mnemonic() {
            Some(m) => f.write_str(m),
            None => write!(f, "RCODE{}", self.0),
        }
    }
}

code_type! {
    /// OPCODE (RFC 1035 section 4.1.1, RFC 1996, RFC 2136).
    Opcode(u8) {
        QUERY = 0, "QUERY";
        IQUERY = 1, "IQUERY";
        STATUS = 2, "STATUS";
        NOTIFY = 4, "NOTIFY";
        UPDATE = 5, "UPDATE";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3597_5_generic_type_names() {
        assert_eq!(Rtype(65280).to_string(), "TYPE65280");
        assert_eq!(Rtype::from_mnemonic("aaaa"), Some(Rtype::AAAA));
        assert!(Rtype::AXFR.is_meta() && Rtype::OPT.is_meta() && !Rtype::CAA.is_meta());
    }
}
