//! MACs of field 64 (`spec/cup-pos.md` §3.3, §3.6).
//!
//! The caller passes the MAC input: the message from the MTI through field 63.

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::engine::{CipherFamily, Engine};
use crate::{SecretKey, SecurityError};

/// The MAC algorithm, a per-profile (per-acquirer) setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacAlgorithm {
    /// CUP "ECB" MAC with DES (8-byte MAK) or 3DES (16/24-byte MAK): XOR the 8-byte blocks,
    /// expand to hex, encrypt the first half, XOR the second, encrypt, expand, keep 8 chars.
    CupEcb,
    /// The same scheme with SM4 and 16-byte blocks.
    CupEcbSm4,
    /// ANSI X9.19 retail MAC: CBC-DES with the left key half, then decrypt with the right
    /// half and encrypt with the left on the last block.
    X919,
}

impl MacAlgorithm {
    pub const ALL: [MacAlgorithm; 3] = [
        MacAlgorithm::CupEcb,
        MacAlgorithm::CupEcbSm4,
        MacAlgorithm::X919,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            MacAlgorithm::CupEcb => "cup-ecb",
            MacAlgorithm::CupEcbSm4 => "cup-ecb-sm4",
            MacAlgorithm::X919 => "x919",
        }
    }
}

impl FromStr for MacAlgorithm {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MacAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or(())
    }
}

impl fmt::Display for MacAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The 8 bytes of field 64: uppercase ASCII hex characters for the CUP ECB MACs, binary
/// for X9.19.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mac {
    algorithm: MacAlgorithm,
    bytes: [u8; 8],
}

impl Mac {
    /// The bytes that go into field 64.
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.bytes
    }

    pub fn algorithm(&self) -> MacAlgorithm {
        self.algorithm
    }
}

impl fmt::Display for Mac {
    /// The MAC as a person reads it: 8 characters for the CUP ECB MACs, 16 uppercase hex
    /// digits for X9.19.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.algorithm {
            MacAlgorithm::CupEcb | MacAlgorithm::CupEcbSm4 => {
                f.write_str(std::str::from_utf8(&self.bytes).unwrap_or("????????"))
            }
            MacAlgorithm::X919 => self.bytes.iter().try_for_each(|b| write!(f, "{b:02X}")),
        }
    }
}

fn hex_upper_into(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[(b >> 4) as usize];
        pair[1] = HEX[(b & 15) as usize];
    }
}

/// XOR of the data's blocks, the last one padded with zeros.
fn xor_blocks(data: &[u8], block: usize) -> Zeroizing<[u8; 16]> {
    let mut acc = Zeroizing::new([0u8; 16]);
    for chunk in data.chunks(block) {
        for (a, b) in acc.iter_mut().zip(chunk) {
            *a ^= b;
        }
    }
    acc
}

/// The CUP ECB scheme over a cipher of block size `n` (8 or 16).
fn cup_ecb(engine: &Engine, data: &[u8]) -> [u8; 8] {
    let n = engine.block_bytes();
    let result = xor_blocks(data, n);
    let mut expanded = Zeroizing::new([0u8; 32]);
    hex_upper_into(&result[..n], &mut expanded[..2 * n]);
    let (first, second) = expanded[..2 * n].split_at(n);
    let mut temp = Zeroizing::new([0u8; 16]);
    temp[..n].copy_from_slice(first);
    engine.encrypt(&mut temp[..n]);
    for (t, s) in temp[..n].iter_mut().zip(second) {
        *t ^= s;
    }
    engine.encrypt(&mut temp[..n]);
    let mut out = Zeroizing::new([0u8; 32]);
    hex_upper_into(&temp[..n], &mut out[..2 * n]);
    let mut mac = [0u8; 8];
    mac.copy_from_slice(&out[..8]);
    mac
}

/// ANSI X9.19 with a 16-byte key: zero padding (empty data is one zero block).
fn x919(key: &[u8], data: &[u8]) -> Result<[u8; 8], SecurityError> {
    if key.len() != 16 {
        return Err(SecurityError::KeyLengthFor {
            algorithm: "X9.19",
            needed: 16,
            len: key.len(),
        });
    }
    let left = Engine::new(CipherFamily::TripleDes, &key[..8])?;
    let right = Engine::new(CipherFamily::TripleDes, &key[8..])?;
    let mut state = [0u8; 8];
    let mut blocks = data.chunks(8).peekable();
    if blocks.peek().is_none() {
        left.encrypt(&mut state);
    }
    for chunk in blocks {
        for (s, b) in state.iter_mut().zip(chunk) {
            *s ^= b;
        }
        left.encrypt(&mut state);
    }
    right.decrypt(&mut state);
    left.encrypt(&mut state);
    Ok(state)
}

/// Computes the MAC of `data` (the message from the MTI through field 63).
pub fn compute_mac(
    algorithm: MacAlgorithm,
    key: &SecretKey,
    data: &[u8],
) -> Result<Mac, SecurityError> {
    let bytes = match algorithm {
        MacAlgorithm::CupEcb => cup_ecb(
            &Engine::new(CipherFamily::TripleDes, key.dangerous_expose())?,
            data,
        ),
        MacAlgorithm::CupEcbSm4 => cup_ecb(
            &Engine::new(CipherFamily::Sm4, key.dangerous_expose())?,
            data,
        ),
        MacAlgorithm::X919 => x919(key.dangerous_expose(), data)?,
    };
    Ok(Mac { algorithm, bytes })
}

/// Whether `wire` (field 64 as received) is the MAC of `data`, compared in constant time.
pub fn verify_mac(
    algorithm: MacAlgorithm,
    key: &SecretKey,
    data: &[u8],
    wire: &[u8],
) -> Result<bool, SecurityError> {
    let expected = compute_mac(algorithm, key, data)?;
    if wire.len() != 8 {
        return Ok(false);
    }
    let diff = expected
        .bytes
        .iter()
        .zip(wire)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    Ok(diff == 0)
}
