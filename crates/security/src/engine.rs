//! One block cipher chosen by family and key length: DES (8-byte key), 2-key 3DES (16),
//! 3-key 3DES (24), SM4 (16). Every cipher is RustCrypto's (`des`, `sm4`); their key
//! schedules zeroize on drop (the crates' `zeroize` feature).

use cipher::generic_array::GenericArray;
use cipher::{BlockDecrypt, BlockEncrypt, KeyInit};

use crate::{SecurityError, ct};

/// Which cipher family a key belongs to; within DES the key length picks DES or 3DES.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CipherFamily {
    /// DES with an 8-byte key; 3DES (EDE) with a 16-byte (2-key) or 24-byte (3-key) key.
    /// 8-byte blocks.
    Des,
    /// SM4 (GB/T 32907) with a 16-byte key; 16-byte blocks (`spec/cup-pos.md` §3.6).
    Sm4,
}

impl CipherFamily {
    /// The cipher's block size in bytes.
    pub const fn block_bytes(self) -> usize {
        match self {
            CipherFamily::Des => 8,
            CipherFamily::Sm4 => 16,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            CipherFamily::Des => "DES/3DES",
            CipherFamily::Sm4 => "SM4",
        }
    }
}

/// A key with its cipher's key schedule worked out once, for a key used again and again:
/// a terminal's MAC key on every request and answer, its PIN key on every PIN. The
/// schedule zeroizes on drop (RustCrypto's `zeroize` feature); `Debug` shows the family
/// only.
pub struct CipherKey {
    family: CipherFamily,
    pub(crate) engine: Engine,
}

impl CipherKey {
    /// Errors as the one-off functions give them for the same key: a length the family
    /// does not take.
    pub fn new(family: CipherFamily, key: &crate::SecretKey) -> Result<CipherKey, SecurityError> {
        Ok(CipherKey {
            family,
            engine: Engine::new(family, key.dangerous_expose())?,
        })
    }

    pub fn family(&self) -> CipherFamily {
        self.family
    }
}

impl std::fmt::Debug for CipherKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CipherKey({})", self.family.as_str())
    }
}

/// The largest block of any family, for stack buffers.
pub(crate) const BLOCK_BYTES_MAX: usize = 16;

pub(crate) enum Engine {
    Des(des::Des),
    Tdes2(des::TdesEde2),
    Tdes3(des::TdesEde3),
    Sm4(sm4::Sm4),
}

impl Engine {
    pub(crate) fn new(family: CipherFamily, key: &[u8]) -> Result<Engine, SecurityError> {
        let refused = || SecurityError::KeyLength { len: key.len() };
        let engine = match (family, key.len()) {
            (CipherFamily::Des, 8) => {
                Engine::Des(des::Des::new_from_slice(key).map_err(|_| refused())?)
            }
            // EDE under K‖K (or K‖K‖K) is single DES under K — E(D(E(x))) with one key —
            // so it runs as that, a third of the work. Single-length MAKs arrive as K‖K
            // (§3.2), which makes this the case of every CUP ECB MAC.
            (CipherFamily::Des, 16 | 24)
                if key
                    .chunks(8)
                    .fold(true, |same, k| same & ct::bytes_eq(k, &key[..8])) =>
            {
                Engine::Des(des::Des::new_from_slice(&key[..8]).map_err(|_| refused())?)
            }
            (CipherFamily::Des, 16) => {
                Engine::Tdes2(des::TdesEde2::new_from_slice(key).map_err(|_| refused())?)
            }
            (CipherFamily::Des, 24) => {
                Engine::Tdes3(des::TdesEde3::new_from_slice(key).map_err(|_| refused())?)
            }
            (CipherFamily::Des, _) => return Err(refused()),
            (CipherFamily::Sm4, 16) => {
                Engine::Sm4(sm4::Sm4::new_from_slice(key).map_err(|_| refused())?)
            }
            (CipherFamily::Sm4, len) => {
                return Err(SecurityError::KeyLengthFor {
                    algorithm: "SM4",
                    needed: 16,
                    len,
                });
            }
        };
        assert_eq!(engine.block_bytes(), family.block_bytes());
        Ok(engine)
    }

    pub(crate) fn block_bytes(&self) -> usize {
        match self {
            Engine::Sm4(_) => 16,
            Engine::Des(_) | Engine::Tdes2(_) | Engine::Tdes3(_) => 8,
        }
    }

    /// Encrypts one block in place. A block of another size is a bug of ours, not input.
    pub(crate) fn encrypt(&self, block: &mut [u8]) {
        assert_eq!(block.len(), self.block_bytes());
        match self {
            Engine::Des(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
            Engine::Tdes2(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
            Engine::Tdes3(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
            Engine::Sm4(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
        }
    }

    /// Decrypts one block in place. A block of another size is a bug of ours, not input.
    pub(crate) fn decrypt(&self, block: &mut [u8]) {
        assert_eq!(block.len(), self.block_bytes());
        match self {
            Engine::Des(c) => c.decrypt_block(GenericArray::from_mut_slice(block)),
            Engine::Tdes2(c) => c.decrypt_block(GenericArray::from_mut_slice(block)),
            Engine::Tdes3(c) => c.decrypt_block(GenericArray::from_mut_slice(block)),
            Engine::Sm4(c) => c.decrypt_block(GenericArray::from_mut_slice(block)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_of_repeated_halves_encrypts_and_decrypts_as_the_full_triple_des_would() {
        use cipher::BlockEncrypt;
        let k = [0x13u8, 0x34, 0x57, 0x79, 0x9B, 0xBC, 0xDF, 0xF1];
        let kk: Vec<u8> = k.iter().chain(&k).copied().collect();
        let kkk: Vec<u8> = kk.iter().chain(&k).copied().collect();
        let ede2 = des::TdesEde2::new_from_slice(&kk).unwrap();
        let ede3 = des::TdesEde3::new_from_slice(&kkk).unwrap();
        for seed in 0u8..16 {
            let plain: [u8; 8] =
                std::array::from_fn(|i| seed.wrapping_mul(37).wrapping_add(i as u8));
            let mut by_engine2 = plain;
            Engine::new(CipherFamily::Des, &kk)
                .unwrap()
                .encrypt(&mut by_engine2);
            let mut by_ede2 = cipher::generic_array::GenericArray::clone_from_slice(&plain);
            ede2.encrypt_block(&mut by_ede2);
            assert_eq!(by_engine2[..], by_ede2[..]);
            let mut by_engine3 = plain;
            Engine::new(CipherFamily::Des, &kkk)
                .unwrap()
                .encrypt(&mut by_engine3);
            let mut by_ede3 = cipher::generic_array::GenericArray::clone_from_slice(&plain);
            ede3.encrypt_block(&mut by_ede3);
            assert_eq!(by_engine3[..], by_ede3[..]);
            Engine::new(CipherFamily::Des, &kk)
                .unwrap()
                .decrypt(&mut by_engine2);
            assert_eq!(by_engine2, plain);
        }
        // Halves that differ stay triple DES.
        let mut k2 = kk.clone();
        k2[15] ^= 0x02;
        assert!(matches!(
            Engine::new(CipherFamily::Des, &k2).unwrap(),
            Engine::Tdes2(_)
        ));
    }

    #[test]
    fn des_family_takes_8_16_and_24_byte_keys_and_sm4_only_16() {
        for len in [8, 16, 24] {
            assert!(Engine::new(CipherFamily::Des, &vec![1u8; len]).is_ok());
        }
        assert_eq!(
            Engine::new(CipherFamily::Des, &[1u8; 12]).err(),
            Some(SecurityError::KeyLength { len: 12 })
        );
        assert!(Engine::new(CipherFamily::Sm4, &[1u8; 16]).is_ok());
        assert_eq!(
            Engine::new(CipherFamily::Sm4, &[1u8; 8]).err(),
            Some(SecurityError::KeyLengthFor {
                algorithm: "SM4",
                needed: 16,
                len: 8
            })
        );
    }

    #[test]
    fn two_key_3des_with_equal_halves_is_single_des() {
        let single = Engine::new(CipherFamily::Des, &[0x13; 8]).unwrap();
        let double = Engine::new(CipherFamily::Des, &[0x13; 16]).unwrap();
        let (mut a, mut b) = ([0x5Au8; 8], [0x5Au8; 8]);
        single.encrypt(&mut a);
        double.encrypt(&mut b);
        assert_eq!(a, b);
        single.decrypt(&mut a);
        assert_eq!(a, [0x5A; 8]);
    }
}
