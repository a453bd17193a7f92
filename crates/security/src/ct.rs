//! Comparison of secret or authenticating bytes in time independent of their contents.

use subtle::ConstantTimeEq;

/// Whether `a` and `b` are equal, looking at every byte whatever the first difference
/// (`subtle`'s `ConstantTimeEq`). The lengths are not secret (a MAC is 8 bytes, a key
/// 8/16/24), so unequal lengths answer at once.
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::bytes_eq;

    #[test]
    fn equal_only_when_every_byte_and_the_length_agree() {
        assert!(bytes_eq(b"", b""));
        assert!(bytes_eq(b"12345678", b"12345678"));
        assert!(!bytes_eq(b"12345678", b"12345679"));
        assert!(!bytes_eq(b"12345678", b"02345678"));
        assert!(!bytes_eq(b"1234567", b"12345678"));
    }
}
