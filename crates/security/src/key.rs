//! Secret keys, key check values, and keys wrapped under a key-encryption key (the TMK),
//! `spec/cup-pos.md` §3.1–§3.2.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::SecurityError;
use crate::ct;
use crate::engine::{BLOCK_BYTES_MAX, CipherFamily, Engine};

/// Key bytes: 8 (DES), 16 (2-key 3DES, or SM4) or 24 (3-key 3DES).
///
/// Zeroized on drop. `Debug` and `Display` show only the length (`SecretKey(16 bytes)`);
/// there is no `Serialize`. Reading the bytes takes [`SecretKey::dangerous_expose`].
/// Equality is compared in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey {
    bytes: Vec<u8>,
}

impl SecretKey {
    /// A key of 8, 16 or 24 bytes; any other length is [`SecurityError::KeyLength`].
    /// Whether the length suits the algorithm (SM4 and X9.19 need 16) is checked where the
    /// key is used.
    pub fn from_bytes(bytes: &[u8]) -> Result<SecretKey, SecurityError> {
        if !matches!(bytes.len(), 8 | 16 | 24) {
            return Err(SecurityError::KeyLength { len: bytes.len() });
        }
        Ok(SecretKey {
            bytes: bytes.to_vec(),
        })
    }

    /// Parses hexadecimal digits of either case (16, 32 or 48 of them). No spaces.
    pub fn from_hex(text: &str) -> Result<SecretKey, SecurityError> {
        let text = text.as_bytes();
        if !text.len().is_multiple_of(2) {
            return Err(SecurityError::KeyNotHex);
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(text.len() / 2));
        for pair in text.chunks_exact(2) {
            let high = hex_digit(pair[0]).ok_or(SecurityError::KeyNotHex)?;
            let low = hex_digit(pair[1]).ok_or(SecurityError::KeyNotHex)?;
            bytes.push(high << 4 | low);
        }
        SecretKey::from_bytes(&bytes)
    }

    /// The key bytes. Named so that every read of a key stands out in review.
    pub fn dangerous_expose(&self) -> &[u8] {
        &self.bytes
    }

    /// The key length in bytes: 8, 16 or 24.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// K‖K from the 8-byte K: the 2-key 3DES key that encrypts as single DES with K.
    pub(crate) fn doubled(half: &[u8]) -> SecretKey {
        assert_eq!(half.len(), 8);
        let mut bytes = Vec::with_capacity(16);
        bytes.extend_from_slice(half);
        bytes.extend_from_slice(half);
        let key = SecretKey { bytes };
        assert_eq!(key.len(), 16);
        key
    }

    /// Always false: a key has 8 bytes or more. (Present because `len` is.)
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &SecretKey) -> bool {
        ct::bytes_eq(&self.bytes, &other.bytes)
    }
}

impl Eq for SecretKey {}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({} bytes)", self.bytes.len())
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Key check value (§3.2): the first 4 bytes of the key encrypting a zero block, 8 zero
/// bytes for DES/3DES and 16 for SM4.
pub fn check_value(family: CipherFamily, key: &SecretKey) -> Result<[u8; 4], SecurityError> {
    let engine = Engine::new(family, key.dangerous_expose())?;
    let mut block = [0u8; BLOCK_BYTES_MAX];
    let block = &mut block[..engine.block_bytes()];
    engine.encrypt(block);
    Ok([block[0], block[1], block[2], block[3]])
}

/// Encrypts `key` under the key-encryption key `kek` in ECB, block by block, as a host
/// sends working keys under a terminal's TMK (§3.1). The key must be whole blocks of the
/// family (an 8-byte key cannot be wrapped under SM4).
pub fn wrap_key(
    family: CipherFamily,
    kek: &SecretKey,
    key: &SecretKey,
) -> Result<Vec<u8>, SecurityError> {
    let engine = Engine::new(family, kek.dangerous_expose())?;
    let block_bytes = engine.block_bytes();
    if !key.len().is_multiple_of(block_bytes) {
        return Err(SecurityError::NotWholeBlocks {
            block_bytes,
            len: key.len(),
        });
    }
    let mut wrapped = key.dangerous_expose().to_vec();
    wrapped
        .chunks_exact_mut(block_bytes)
        .for_each(|block| engine.encrypt(block));
    assert_eq!(wrapped.len(), key.len());
    Ok(wrapped)
}

/// Decrypts a key wrapped under `kek` (ECB). The clear key must come out 8, 16 or 24
/// bytes long.
pub fn unwrap_key(
    family: CipherFamily,
    kek: &SecretKey,
    wrapped: &[u8],
) -> Result<SecretKey, SecurityError> {
    let engine = Engine::new(family, kek.dangerous_expose())?;
    let block_bytes = engine.block_bytes();
    if wrapped.is_empty() || !wrapped.len().is_multiple_of(block_bytes) {
        return Err(SecurityError::NotWholeBlocks {
            block_bytes,
            len: wrapped.len(),
        });
    }
    let mut clear = Zeroizing::new(wrapped.to_vec());
    clear
        .chunks_exact_mut(block_bytes)
        .for_each(|block| engine.decrypt(block));
    SecretKey::from_bytes(&clear)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> SecretKey {
        SecretKey::from_hex(text).unwrap()
    }

    #[test]
    fn a_key_never_shows_its_bytes_in_debug_or_display() {
        let k = key("0123456789ABCDEFFEDCBA9876543210");
        assert_eq!(format!("{k:?}"), "SecretKey(16 bytes)");
        assert_eq!(format!("{k}"), "SecretKey(16 bytes)");
        assert_eq!(format!("{:?}", Some(&k)), "Some(SecretKey(16 bytes))");
    }

    #[test]
    fn a_key_is_8_16_or_24_bytes_of_hex_in_either_case() {
        assert_eq!(key("0123456789abcdef"), key("0123456789ABCDEF"));
        assert_eq!(key("0123456789ABCDEF").dangerous_expose()[0], 0x01);
        for len in [8, 16, 24] {
            assert_eq!(SecretKey::from_bytes(&vec![7; len]).unwrap().len(), len);
        }
        for len in [0, 7, 9, 15, 17, 23, 25, 32] {
            assert_eq!(
                SecretKey::from_bytes(&vec![7; len]).unwrap_err(),
                SecurityError::KeyLength { len }
            );
        }
        for text in [
            "0123456789ABCDE",
            "0123456789ABCDEG",
            "0123456789ABCDE ",
            "０1234567",
        ] {
            assert_eq!(
                SecretKey::from_hex(text).unwrap_err(),
                SecurityError::KeyNotHex,
                "{text}"
            );
        }
        assert_eq!(
            SecretKey::from_hex("0123").unwrap_err(),
            SecurityError::KeyLength { len: 2 }
        );
    }

    #[test]
    fn des_wrap_matches_the_classic_fips_46_worked_example() {
        // The textbook DES example: key 133457799BBCDFF1, plaintext 0123456789ABCDEF,
        // ciphertext 85E813540F0AB405.
        let kek = key("133457799BBCDFF1");
        let wrapped = wrap_key(CipherFamily::Des, &kek, &key("0123456789ABCDEF")).unwrap();
        assert_eq!(wrapped, [0x85, 0xE8, 0x13, 0x54, 0x0F, 0x0A, 0xB4, 0x05]);
    }

    #[test]
    fn sm4_wrap_matches_the_example_of_gb_t_32907() {
        // GB/T 32907-2016 appendix A: key = plaintext = 0123456789ABCDEFFEDCBA9876543210.
        let k = key("0123456789ABCDEFFEDCBA9876543210");
        let wrapped = wrap_key(CipherFamily::Sm4, &k, &k).unwrap();
        assert_eq!(
            wrapped,
            [
                0x68, 0x1E, 0xDF, 0x34, 0xD2, 0x06, 0x96, 0x5E, 0x86, 0xB3, 0xE9, 0x4F, 0x53, 0x6E,
                0x42, 0x46
            ]
        );
        assert_eq!(unwrap_key(CipherFamily::Sm4, &k, &wrapped).unwrap(), k);
    }

    #[test]
    fn the_des_check_value_of_0123456789abcdef_is_d5d44ff7() {
        let cv = check_value(CipherFamily::Des, &key("0123456789ABCDEF")).unwrap();
        assert_eq!(cv, [0xD5, 0xD4, 0x4F, 0xF7]);
    }

    #[test]
    fn wrapped_keys_unwrap_to_themselves_under_every_kek() {
        let keks = [
            (CipherFamily::Des, key("0123456789ABCDEF")),
            (CipherFamily::Des, key("0123456789ABCDEFFEDCBA9876543210")),
            (
                CipherFamily::Des,
                key("0123456789ABCDEFFEDCBA987654321089ABCDEF01234567"),
            ),
            (CipherFamily::Sm4, key("0123456789ABCDEFFEDCBA9876543210")),
        ];
        let working = [
            key("1A2B3C4D5E6F7081"),
            key("1A2B3C4D5E6F70818192A3B4C5D6E7F8"),
            key("1A2B3C4D5E6F70818192A3B4C5D6E7F80F1E2D3C4B5A6978"),
        ];
        for (family, kek) in &keks {
            for k in &working {
                let wrapped = match wrap_key(*family, kek, k) {
                    Ok(w) => w,
                    Err(e) => {
                        assert_eq!(*family, CipherFamily::Sm4, "{e}");
                        assert_eq!(
                            e,
                            SecurityError::NotWholeBlocks {
                                block_bytes: 16,
                                len: k.len()
                            }
                        );
                        continue;
                    }
                };
                assert_ne!(wrapped.as_slice(), k.dangerous_expose());
                assert_eq!(&unwrap_key(*family, kek, &wrapped).unwrap(), k);
            }
        }
    }

    #[test]
    fn unwrapping_partial_blocks_is_refused() {
        let kek = key("0123456789ABCDEF");
        for len in [0, 7, 12] {
            assert_eq!(
                unwrap_key(CipherFamily::Des, &kek, &vec![0; len]).unwrap_err(),
                SecurityError::NotWholeBlocks {
                    block_bytes: 8,
                    len
                }
            );
        }
        // Whole blocks, but no key is 32 bytes long.
        assert_eq!(
            unwrap_key(CipherFamily::Des, &kek, &[0; 32]).unwrap_err(),
            SecurityError::KeyLength { len: 32 }
        );
    }
}
