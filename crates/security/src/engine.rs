//! One block cipher chosen by family and key length: DES (8-byte key), 2-key 3DES (16),
//! 3-key 3DES (24), SM4 (16).

use cipher::generic_array::GenericArray;
use cipher::{BlockDecrypt, BlockEncrypt, KeyInit};

use crate::SecurityError;

/// Which cipher family a key belongs to; the key length then picks DES or 3DES.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CipherFamily {
    /// DES with an 8-byte key, 3DES (EDE) with a 16- or 24-byte key; 8-byte blocks.
    TripleDes,
    /// SM4 (GB/T 32907) with a 16-byte key; 16-byte blocks.
    Sm4,
}

impl CipherFamily {
    pub const fn block_bytes(self) -> usize {
        match self {
            CipherFamily::TripleDes => 8,
            CipherFamily::Sm4 => 16,
        }
    }
}

pub(crate) enum Engine {
    Des(des::Des),
    Tdes2(des::TdesEde2),
    Tdes3(des::TdesEde3),
    Sm4(sm4::Sm4),
}

impl Engine {
    pub(crate) fn new(family: CipherFamily, key: &[u8]) -> Result<Engine, SecurityError> {
        let bad = || SecurityError::KeyLength { len: key.len() };
        Ok(match (family, key.len()) {
            (CipherFamily::TripleDes, 8) => {
                Engine::Des(des::Des::new_from_slice(key).map_err(|_| bad())?)
            }
            (CipherFamily::TripleDes, 16) => {
                Engine::Tdes2(des::TdesEde2::new_from_slice(key).map_err(|_| bad())?)
            }
            (CipherFamily::TripleDes, 24) => {
                Engine::Tdes3(des::TdesEde3::new_from_slice(key).map_err(|_| bad())?)
            }
            (CipherFamily::Sm4, 16) => {
                Engine::Sm4(sm4::Sm4::new_from_slice(key).map_err(|_| bad())?)
            }
            (CipherFamily::Sm4, len) => {
                return Err(SecurityError::KeyLengthFor {
                    algorithm: "SM4",
                    needed: 16,
                    len,
                });
            }
            _ => return Err(bad()),
        })
    }

    pub(crate) fn block_bytes(&self) -> usize {
        match self {
            Engine::Sm4(_) => 16,
            _ => 8,
        }
    }

    /// Encrypts one block in place; `block` is exactly one block long.
    pub(crate) fn encrypt(&self, block: &mut [u8]) {
        assert_eq!(block.len(), self.block_bytes());
        match self {
            Engine::Des(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
            Engine::Tdes2(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
            Engine::Tdes3(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
            Engine::Sm4(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
        }
    }

    /// Decrypts one block in place; `block` is exactly one block long.
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
