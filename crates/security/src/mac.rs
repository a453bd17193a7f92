//! The MAC of field 64 (`spec/cup-pos.md` §3.3, §3.6).
//!
//! The caller passes the MAC input: the message bytes from the MTI through field 63
//! (no length, TPDU, header or field 64). This module does not parse messages.
//!
//! | algorithm | key | field 64 (8 bytes) | as a person reads it |
//! |---|---|---|---|
//! | `cup-ecb` | 8 (DES), 16 or 24 (3DES) | 8 uppercase ASCII hex characters | those 8 characters |
//! | `cup-ecb-sm4` | 16 (SM4) | 8 uppercase ASCII hex characters | those 8 characters |
//! | `x919` | 16 (two DES halves) | 8 binary bytes | 16 uppercase hex digits |
//!
//! Padding, every algorithm: the input is padded with 0x00 to a whole number of blocks;
//! input already a whole number of blocks gets no padding; **empty input is one zero
//! block**. (For the CUP ECB MACs that is what XOR-ing no blocks gives anyway; for X9.19 it
//! is the common rule of terminal implementations, and it keeps "no data" from being a
//! MAC of nothing.)

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::engine::{BLOCK_BYTES_MAX, CipherFamily, CipherKey, Engine};
use crate::{SecretKey, SecurityError, ct};

/// Bytes of field 64, whatever the algorithm.
pub const MAC_BYTES: usize = 8;

/// The MAC algorithm: a per-profile (per-acquirer) setting (§3.3 "Variants seen").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MacAlgorithm {
    /// CUP "ECB" POS MAC (§3.3) with DES (8-byte MAK), 2-key 3DES (16) or 3-key 3DES (24):
    /// XOR the 8-byte blocks, expand to 16 hex characters, encrypt the first 8, XOR the last
    /// 8, encrypt, expand, keep the first 8 characters.
    CupEcb,
    /// The same scheme with SM4 and 16-byte blocks (§3.6): 32 hex characters, halves of 16;
    /// field 64 is again the first 8 characters.
    CupEcbSm4,
    /// ANSI X9.19 retail MAC with a 16-byte key (§3.3 variants): CBC-DES with the left
    /// half, then decrypt with the right half and encrypt with the left on the last block.
    X919,
}

impl MacAlgorithm {
    pub const ALL: [MacAlgorithm; 3] = [
        MacAlgorithm::CupEcb,
        MacAlgorithm::CupEcbSm4,
        MacAlgorithm::X919,
    ];

    /// The name used in profiles and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            MacAlgorithm::CupEcb => "cup-ecb",
            MacAlgorithm::CupEcbSm4 => "cup-ecb-sm4",
            MacAlgorithm::X919 => "x919",
        }
    }
}

impl FromStr for MacAlgorithm {
    type Err = SecurityError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        MacAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == name)
            .ok_or_else(|| SecurityError::UnknownMacAlgorithm {
                name: name.to_owned(),
            })
    }
}

impl fmt::Display for MacAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A computed MAC: the 8 bytes of field 64 and the algorithm that made them.
///
/// A MAC authenticates a message but protects no secret, so it is not masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mac {
    algorithm: MacAlgorithm,
    wire: [u8; MAC_BYTES],
}

impl Mac {
    /// A CUP ECB MAC computed elsewhere (by an HSM holding the MAK): `None` unless `wire` is
    /// 8 uppercase hex characters, the only form that algorithm gives.
    pub fn cup_ecb_from_wire(wire: [u8; MAC_BYTES]) -> Option<Mac> {
        wire.iter()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
            .then_some(Mac {
                algorithm: MacAlgorithm::CupEcb,
                wire,
            })
    }

    /// The bytes that go into field 64: ASCII hex characters for the CUP ECB MACs,
    /// binary for X9.19.
    pub fn as_bytes(&self) -> &[u8; MAC_BYTES] {
        &self.wire
    }

    pub fn algorithm(&self) -> MacAlgorithm {
        self.algorithm
    }

    /// The MAC as a person reads it: the 8 characters of field 64 for the CUP ECB MACs,
    /// 16 uppercase hex digits for X9.19. `Display` prints the same.
    pub fn readable(&self) -> String {
        match self.algorithm {
            // Built only from the uppercase hex alphabet, so each byte is one character.
            MacAlgorithm::CupEcb | MacAlgorithm::CupEcbSm4 => {
                self.wire.iter().map(|&b| char::from(b)).collect()
            }
            MacAlgorithm::X919 => {
                let mut text = String::with_capacity(2 * MAC_BYTES);
                for b in self.wire {
                    text.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
                    text.push(char::from(HEX_UPPER[usize::from(b & 0x0F)]));
                }
                text
            }
        }
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.readable())
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Writes the uppercase hex expansion of `bytes` into `out` (twice as long).
fn expand_hex(bytes: &[u8], out: &mut [u8]) {
    assert_eq!(out.len(), 2 * bytes.len());
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX_UPPER[usize::from(b >> 4)];
        pair[1] = HEX_UPPER[usize::from(b & 0x0F)];
    }
}

/// The CUP ECB scheme (§3.3 steps 2–7, §3.6) over a cipher of block size `n` (8 or 16).
fn cup_ecb(engine: &Engine, data: &[u8]) -> [u8; MAC_BYTES] {
    let n = engine.block_bytes();
    assert!(n == 8 || n == 16);
    // Step 2: pad with zeros to whole blocks and XOR them all (a short last block XORs
    // as if padded; no data XORs to the zero block).
    let mut result_block = Zeroizing::new([0u8; BLOCK_BYTES_MAX]);
    for chunk in data.chunks(n) {
        for (r, b) in result_block.iter_mut().zip(chunk) {
            *r ^= b;
        }
    }
    // Step 3: hex-expand to 2n characters.
    let mut expanded = Zeroizing::new([0u8; 2 * BLOCK_BYTES_MAX]);
    expand_hex(&result_block[..n], &mut expanded[..2 * n]);
    let (first, last) = expanded[..2 * n].split_at(n);
    // Steps 4–6: encrypt the first half, XOR the last half, encrypt.
    let mut temp_block = Zeroizing::new([0u8; BLOCK_BYTES_MAX]);
    temp_block[..n].copy_from_slice(first);
    engine.encrypt(&mut temp_block[..n]);
    for (t, l) in temp_block[..n].iter_mut().zip(last) {
        *t ^= l;
    }
    engine.encrypt(&mut temp_block[..n]);
    // Step 7: hex-expand, keep the first 8 characters.
    let mut mac = [0u8; MAC_BYTES];
    expand_hex(&temp_block[..MAC_BYTES / 2], &mut mac);
    // Only the uppercase hex alphabet by construction (`expand_hex`); checked in tests
    // (the check cost a connection task a twentieth of its time).
    debug_assert!(mac.iter().all(|c| HEX_UPPER.contains(c)));
    mac
}

/// ANSI X9.19 with a 16-byte key: zero padding, empty data is one zero block.
fn x919(key: &[u8], data: &[u8]) -> Result<[u8; MAC_BYTES], SecurityError> {
    if key.len() != 16 {
        return Err(SecurityError::KeyLengthFor {
            algorithm: "X9.19",
            needed: 16,
            len: key.len(),
        });
    }
    let (left_half, right_half) = key.split_at(8);
    let left = Engine::new(CipherFamily::Des, left_half)?;
    let right = Engine::new(CipherFamily::Des, right_half)?;
    let mut state = Zeroizing::new([0u8; 8]);
    if data.is_empty() {
        // One zero block: XOR-ing zeros into the zero IV leaves it as it is.
        left.encrypt(&mut state[..]);
    }
    for chunk in data.chunks(8) {
        for (s, b) in state.iter_mut().zip(chunk) {
            *s ^= b;
        }
        left.encrypt(&mut state[..]);
    }
    right.decrypt(&mut state[..]);
    left.encrypt(&mut state[..]);
    Ok(*state)
}

/// Computes the MAC of `data` (the message from the MTI through field 63) under `key`.
///
/// Errors: [`SecurityError::KeyLengthFor`] when `cup-ecb-sm4` or `x919` is given a key
/// that is not 16 bytes.
pub fn compute_mac(
    algorithm: MacAlgorithm,
    key: &SecretKey,
    data: &[u8],
) -> Result<Mac, SecurityError> {
    match algorithm.cipher_family() {
        Some(family) => CipherKey::new(family, key)?.mac(algorithm, data),
        None => Ok(Mac {
            algorithm,
            wire: x919(key.dangerous_expose(), data)?,
        }),
    }
}

/// Whether `wire` (field 64 as received) is the MAC of `data`, compared in constant time.
///
/// `wire` must be exactly what [`compute_mac`] puts in field 64: for the CUP ECB MACs the
/// characters are uppercase (a lowercase field 64 does not verify). A `wire` that is not 8
/// bytes long is `Ok(false)`; errors are only for unusable keys, as in [`compute_mac`].
pub fn verify_mac(
    algorithm: MacAlgorithm,
    key: &SecretKey,
    data: &[u8],
    wire: &[u8],
) -> Result<bool, SecurityError> {
    let expected = compute_mac(algorithm, key, data)?;
    Ok(ct::bytes_eq(expected.as_bytes(), wire))
}

impl MacAlgorithm {
    /// The cipher family whose prepared key ([`CipherKey`]) computes this MAC; `None` for
    /// X9.19, which works with the two halves of its key.
    pub const fn cipher_family(self) -> Option<CipherFamily> {
        match self {
            MacAlgorithm::CupEcb => Some(CipherFamily::Des),
            MacAlgorithm::CupEcbSm4 => Some(CipherFamily::Sm4),
            MacAlgorithm::X919 => None,
        }
    }
}

impl CipherKey {
    /// [`compute_mac`] with this prepared key. Errors: the algorithm does not run on this
    /// key's family ([`SecurityError::MacKeyFamily`]).
    pub fn mac(&self, algorithm: MacAlgorithm, data: &[u8]) -> Result<Mac, SecurityError> {
        if algorithm.cipher_family() != Some(self.family()) {
            return Err(SecurityError::MacKeyFamily {
                algorithm: algorithm.as_str(),
                family: self.family().as_str(),
            });
        }
        Ok(Mac {
            algorithm,
            wire: cup_ecb(&self.engine, data),
        })
    }

    /// [`verify_mac`] with this prepared key.
    pub fn verify_mac(
        &self,
        algorithm: MacAlgorithm,
        data: &[u8],
        wire: &[u8],
    ) -> Result<bool, SecurityError> {
        let expected = self.mac(algorithm, data)?;
        Ok(ct::bytes_eq(expected.as_bytes(), wire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> SecretKey {
        SecretKey::from_hex(text).unwrap()
    }

    /// DES-encrypts one block with an 8-byte key, for building expectations by hand.
    fn des(k: &[u8], block: [u8; 8]) -> [u8; 8] {
        let mut b = block;
        Engine::new(CipherFamily::Des, k).unwrap().encrypt(&mut b);
        b
    }

    #[test]
    fn algorithm_names_round_trip_and_unknown_names_are_typed_errors() {
        for algo in MacAlgorithm::ALL {
            assert_eq!(algo.as_str().parse::<MacAlgorithm>(), Ok(algo));
        }
        assert_eq!(
            "CUP-ECB".parse::<MacAlgorithm>(),
            Err(SecurityError::UnknownMacAlgorithm {
                name: "CUP-ECB".into()
            })
        );
    }

    #[test]
    fn cup_ecb_follows_the_seven_steps_of_the_spec() {
        // §3.3 by hand for data of two blocks, with single DES.
        let k = key("0123456789ABCDEF");
        let data = *b"0200\x30\x20\x04\xC0ABCDEFGH";
        let mut xor = [0u8; 8];
        for (i, b) in data.iter().enumerate() {
            xor[i % 8] ^= b;
        }
        let expanded: Vec<u8> = xor
            .iter()
            .flat_map(|b| format!("{b:02X}").into_bytes())
            .collect();
        let enc1 = des(k.dangerous_expose(), expanded[..8].try_into().unwrap());
        let mut temp = [0u8; 8];
        for i in 0..8 {
            temp[i] = enc1[i] ^ expanded[8 + i];
        }
        let enc2 = des(k.dangerous_expose(), temp);
        let expected = format!(
            "{:02X}{:02X}{:02X}{:02X}",
            enc2[0], enc2[1], enc2[2], enc2[3]
        );
        let mac = compute_mac(MacAlgorithm::CupEcb, &k, &data).unwrap();
        assert_eq!(mac.readable(), expected);
        assert_eq!(mac.as_bytes(), expected.as_bytes());
    }

    #[test]
    fn x919_with_equal_key_halves_is_the_plain_des_cbc_mac() {
        let k = key("0123456789ABCDEF0123456789ABCDEF");
        let data = b"0200 twenty bytes...";
        let mut state = [0u8; 8];
        for chunk in data.chunks(8) {
            for (s, b) in state.iter_mut().zip(chunk) {
                *s ^= b;
            }
            state = des(&k.dangerous_expose()[..8], state);
        }
        let mac = compute_mac(MacAlgorithm::X919, &k, data).unwrap();
        assert_eq!(mac.as_bytes(), &state);
        assert_eq!(mac.readable(), hex_of(&state));
    }

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02X}")).collect()
    }

    #[test]
    fn empty_data_macs_as_one_zero_block_for_every_algorithm() {
        for (algo, k, block_bytes) in [
            (MacAlgorithm::CupEcb, key("0123456789ABCDEF"), 8),
            (
                MacAlgorithm::CupEcbSm4,
                key("0123456789ABCDEFFEDCBA9876543210"),
                16,
            ),
            (
                MacAlgorithm::X919,
                key("0123456789ABCDEFFEDCBA9876543210"),
                8,
            ),
        ] {
            let empty = compute_mac(algo, &k, &[]).unwrap();
            let zero_block = compute_mac(algo, &k, &vec![0; block_bytes]).unwrap();
            assert_eq!(empty, zero_block, "{algo}");
        }
    }

    #[test]
    fn keys_of_the_wrong_length_for_the_algorithm_are_refused() {
        let k8 = key("0123456789ABCDEF");
        let k24 = key("0123456789ABCDEFFEDCBA987654321089ABCDEF01234567");
        for (algo, k, algorithm) in [
            (MacAlgorithm::X919, &k8, "X9.19"),
            (MacAlgorithm::X919, &k24, "X9.19"),
            (MacAlgorithm::CupEcbSm4, &k8, "SM4"),
            (MacAlgorithm::CupEcbSm4, &k24, "SM4"),
        ] {
            assert_eq!(
                compute_mac(algo, k, b"0200").unwrap_err(),
                SecurityError::KeyLengthFor {
                    algorithm,
                    needed: 16,
                    len: k.len()
                }
            );
            assert!(verify_mac(algo, k, b"0200", b"00000000").is_err());
        }
    }

    #[test]
    fn a_field_64_of_another_length_or_case_does_not_verify() {
        let k = key("0123456789ABCDEFFEDCBA9876543210");
        let mac = compute_mac(MacAlgorithm::CupEcb, &k, b"0200").unwrap();
        assert!(verify_mac(MacAlgorithm::CupEcb, &k, b"0200", mac.as_bytes()).unwrap());
        assert!(!verify_mac(MacAlgorithm::CupEcb, &k, b"0200", &mac.as_bytes()[..7]).unwrap());
        assert!(!verify_mac(MacAlgorithm::CupEcb, &k, b"0200", &[]).unwrap());
        // 49AD4849 has letters: its lowercase form is other bytes, and does not verify.
        assert_eq!(mac.readable(), "49AD4849");
        assert!(!verify_mac(MacAlgorithm::CupEcb, &k, b"0200", b"49ad4849").unwrap());
    }

    #[test]
    fn a_prepared_key_gives_the_mac_the_one_off_function_gives() {
        let data: Vec<u8> = (0u8..=200).collect();
        for (algorithm, family, hex) in [
            (MacAlgorithm::CupEcb, CipherFamily::Des, "0123456789ABCDEF"),
            (
                MacAlgorithm::CupEcb,
                CipherFamily::Des,
                "0123456789ABCDEFFEDCBA9876543210",
            ),
            (
                MacAlgorithm::CupEcb,
                CipherFamily::Des,
                "0123456789ABCDEF0123456789ABCDEF",
            ),
            (
                MacAlgorithm::CupEcbSm4,
                CipherFamily::Sm4,
                "0123456789ABCDEFFEDCBA9876543210",
            ),
        ] {
            let k = key(hex);
            let prepared = CipherKey::new(family, &k).unwrap();
            for len in [0, 1, 8, 13, 16, 100, 201] {
                let one_off = compute_mac(algorithm, &k, &data[..len]).unwrap();
                assert_eq!(prepared.mac(algorithm, &data[..len]).unwrap(), one_off);
                assert!(
                    prepared
                        .verify_mac(algorithm, &data[..len], one_off.as_bytes())
                        .unwrap()
                );
            }
            let mut wrong = *compute_mac(algorithm, &k, &data).unwrap().as_bytes();
            wrong[7] ^= 0x01;
            assert!(!prepared.verify_mac(algorithm, &data, &wrong).unwrap());
        }
    }

    #[test]
    fn a_prepared_key_refuses_an_algorithm_of_another_family() {
        let k = key("0123456789ABCDEFFEDCBA9876543210");
        let des = CipherKey::new(CipherFamily::Des, &k).unwrap();
        assert_eq!(
            des.mac(MacAlgorithm::CupEcbSm4, b"0200"),
            Err(SecurityError::MacKeyFamily {
                algorithm: "cup-ecb-sm4",
                family: "DES/3DES"
            })
        );
        assert!(matches!(
            des.mac(MacAlgorithm::X919, b"0200"),
            Err(SecurityError::MacKeyFamily { .. })
        ));
        assert_eq!(format!("{des:?}"), "CipherKey(DES/3DES)");
    }
}
