//! Serial number arithmetic (RFC 1982) for SOA serials.

use std::cmp::Ordering;

/// Compares two serials (RFC 1982 section 3.2). `None` when the comparison is undefined: the two
/// are exactly 2^31 apart.
pub fn compare(a: u32, b: u32) -> Option<Ordering> {
    if a == b {
        return Some(Ordering::Equal);
    }
    let diff = b.wrapping_sub(a);
    match diff.cmp(&0x8000_0000) {
        Ordering::Less => Some(Ordering::Less),
        Ordering::Greater => Some(Ordering::Greater),
        Ordering::Equal => None,
    }
}

/// Whether `a` is newer than `b` (RFC 1982 section 3.2: `a > b`).
pub fn is_newer(a: u32, b: u32) -> bool {
    compare(a, b) == Some(Ordering::Greater)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1982_3_2_comparisons_wrap() {
        assert!(is_newer(2, 1));
        assert!(!is_newer(1, 2));
        assert!(!is_newer(5, 5));
        assert!(is_newer(0, u32::MAX));
        assert!(is_newer(100, u32::MAX - 100));
        assert!(is_newer(0x7fff_ffff, 0));
        assert_eq!(compare(0x8000_0000, 0), None);
        assert!(!is_newer(0x8000_0000, 0) && !is_newer(0, 0x8000_0000));
        assert_eq!(compare(0x8000_0001, 0), Some(Ordering::Less));
    }
}
