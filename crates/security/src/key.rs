//! Secret keys, key check values, keys wrapped under a key-encryption key (the TMK).

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::SecurityError;
use crate::engine::{CipherFamily, Engine};

/// Key bytes: 8 (DES), 16 (2-key 3DES or SM4) or 24 (3-key 3DES). Zeroized on drop;
/// `Debug` shows only the length.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretKey {
    bytes: Vec<u8>,
}

impl SecretKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<SecretKey, SecurityError> {
        if !matches!(bytes.len(), 8 | 16 | 24) {
            return Err(SecurityError::KeyLength { len: bytes.len() });
        }
        Ok(SecretKey {
            bytes: bytes.to_vec(),
        })
    }

    /// Parses hexadecimal (either case).
    pub fn from_hex(text: &str) -> Result<SecretKey, SecurityError> {
        let text = text.as_bytes();
        if text.len() % 2 == 1 {
            return Err(SecurityError::KeyNotHex);
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(text.len() / 2));
        for pair in text.chunks_exact(2) {
            let hi = (pair[0] as char)
                .to_digit(16)
                .ok_or(SecurityError::KeyNotHex)?;
            let lo = (pair[1] as char)
                .to_digit(16)
                .ok_or(SecurityError::KeyNotHex)?;
            bytes.push((hi << 4 | lo) as u8);
        }
        SecretKey::from_bytes(&bytes)
    }

    /// The key bytes. Named so that every read of a key stands out in review.
    pub fn dangerous_expose(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({} bytes)", self.bytes.len())
    }
}

/// Key check value: the first 4 bytes of the key encrypting a zero block
/// (`spec/cup-pos.md` §3.2).
pub fn check_value(family: CipherFamily, key: &SecretKey) -> Result<[u8; 4], SecurityError> {
    let engine = Engine::new(family, key.dangerous_expose())?;
    let mut block = [0u8; 16];
    let block = &mut block[..engine.block_bytes()];
    engine.encrypt(block);
    Ok([block[0], block[1], block[2], block[3]])
}

/// Encrypts `key` under the key-encryption key `kek` (ECB, block by block), as a host
/// sends working keys under the terminal's TMK.
pub fn wrap_key(
    family: CipherFamily,
    kek: &SecretKey,
    key: &SecretKey,
) -> Result<Vec<u8>, SecurityError> {
    let engine = Engine::new(family, kek.dangerous_expose())?;
    let block = engine.block_bytes();
    let mut out = key.dangerous_expose().to_vec();
    if !out.len().is_multiple_of(block) {
        out.zeroize();
        return Err(SecurityError::NotWholeBlocks {
            block,
            len: key.len(),
        });
    }
    out.chunks_exact_mut(block).for_each(|b| engine.encrypt(b));
    Ok(out)
}

/// Decrypts a key wrapped under `kek` (ECB).
pub fn unwrap_key(
    family: CipherFamily,
    kek: &SecretKey,
    wrapped: &[u8],
) -> Result<SecretKey, SecurityError> {
    let engine = Engine::new(family, kek.dangerous_expose())?;
    let block = engine.block_bytes();
    if wrapped.is_empty() || !wrapped.len().is_multiple_of(block) {
        return Err(SecurityError::NotWholeBlocks {
            block,
            len: wrapped.len(),
        });
    }
    let mut clear = Zeroizing::new(wrapped.to_vec());
    clear
        .chunks_exact_mut(block)
        .for_each(|b| engine.decrypt(b));
    SecretKey::from_bytes(&clear)
}
