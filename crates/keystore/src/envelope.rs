//! The stored form of a wrapped key: `version (1) | KEK id (8) | nonce (12) | AES-256-GCM
//! ciphertext and tag`, the context as associated data. Shared by every backend, so a
//! store can tell whose KEK a blob needs before it tries to decrypt it.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::Zeroizing;

use crate::{KEY_BYTES, KeyStoreError, Result, random};

/// The envelope's version byte.
pub const VERSION: u8 = 1;
pub const NONCE_BYTES: usize = 12;
pub const TAG_BYTES: usize = 16;
const HEADER_BYTES: usize = 1 + 8 + NONCE_BYTES;

/// Identifies a key-encryption key without revealing it (a keyed hash of the key for a
/// local KEK, an id stored on the HSM's key object for PKCS#11).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KekId(pub [u8; 8]);

impl fmt::Display for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KekId({self})")
    }
}

impl KekId {
    /// `Ok` when data wrapped under this KEK is opened with `given`; `WrongKek` otherwise.
    pub fn must_be(self, given: KekId) -> Result<()> {
        if self == given {
            return Ok(());
        }
        Err(KeyStoreError::WrongKek {
            given,
            wrapped_under: self,
        })
    }
}

impl std::str::FromStr for KekId {
    type Err = KeyStoreError;
    fn from_str(s: &str) -> Result<KekId> {
        let mut id = [0u8; 8];
        hex::decode_to_slice(s, &mut id)
            .map_err(|_| KeyStoreError::Config(format!("{s:?} is not a key id (16 hex digits)")))?;
        Ok(KekId(id))
    }
}

/// The parts of a stored envelope.
pub struct Parts<'a> {
    pub kek_id: KekId,
    pub nonce: [u8; NONCE_BYTES],
    /// Ciphertext followed by the 16-byte tag.
    pub sealed: &'a [u8],
}

/// Splits a stored envelope; `context` names it in the error.
pub fn parse<'a>(context: &str, blob: &'a [u8]) -> Result<Parts<'a>> {
    if blob.len() < HEADER_BYTES + TAG_BYTES || blob[0] != VERSION {
        return Err(KeyStoreError::Damaged {
            context: context.to_owned(),
        });
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&blob[1..9]);
    let mut nonce = [0u8; NONCE_BYTES];
    nonce.copy_from_slice(&blob[9..HEADER_BYTES]);
    Ok(Parts {
        kek_id: KekId(id),
        nonce,
        sealed: &blob[HEADER_BYTES..],
    })
}

/// Assembles an envelope from its parts.
pub fn build(kek_id: KekId, nonce: &[u8; NONCE_BYTES], sealed: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + sealed.len());
    out.push(VERSION);
    out.extend_from_slice(&kek_id.0);
    out.extend_from_slice(nonce);
    out.extend_from_slice(sealed);
    out
}

/// Whether `blob` looks like an envelope (a migration tells wrapped from clear columns).
pub fn is_envelope(blob: &[u8]) -> bool {
    blob.len() >= HEADER_BYTES + TAG_BYTES && blob[0] == VERSION
}

/// AES-256-GCM in software, for a key held in memory (the local KEK, the data keys).
pub struct SoftAead(Aes256Gcm);

impl SoftAead {
    pub fn new(key: &[u8; KEY_BYTES]) -> SoftAead {
        SoftAead(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)))
    }

    /// `clear` sealed under a fresh random nonce: `(nonce, ciphertext || tag)`.
    pub fn seal(&self, aad: &[u8], clear: &[u8]) -> Result<([u8; NONCE_BYTES], Vec<u8>)> {
        let nonce = *random::<NONCE_BYTES>()?;
        let sealed = self
            .0
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: clear, aad })
            .map_err(|_| KeyStoreError::Config("AES-GCM refused to encrypt".into()))?;
        Ok((nonce, sealed))
    }

    /// The clear bytes of `sealed`, when it was sealed under this key with `aad`.
    pub fn open(
        &self,
        context: &str,
        aad: &[u8],
        nonce: &[u8; NONCE_BYTES],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.0
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
            .map(Zeroizing::new)
            .map_err(|_| KeyStoreError::Damaged {
                context: context.to_owned(),
            })
    }
}

impl fmt::Debug for SoftAead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SoftAead(..)")
    }
}
