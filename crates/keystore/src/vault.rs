//! Card numbers at rest: encrypted under a data key (AES-256-GCM), found by a keyed hash
//! (HMAC-SHA-256 under a second data key) and shown by their last four digits. Both data
//! keys are stored wrapped under the KEK ([`DataKeys`]).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::envelope::{self, NONCE_BYTES, SoftAead};
use crate::{KEY_BYTES, KeyStore, KeyStoreError, Result, random};

/// Context of the wrapped data keys.
const ENC_CONTEXT: &str = "data-key:card-encryption";
const HASH_CONTEXT: &str = "data-key:card-hash";
/// Associated data of an encrypted card number.
const CARD_AAD: &[u8] = b"poskit card";

/// The two data keys of a vault, as stored: each wrapped under the KEK.
#[derive(Clone)]
pub struct DataKeys {
    pub encryption: Vec<u8>,
    pub hash: Vec<u8>,
}

impl DataKeys {
    /// Two fresh data keys, wrapped under `store`.
    pub fn generate(store: &dyn KeyStore) -> Result<DataKeys> {
        Ok(DataKeys {
            encryption: store.wrap(ENC_CONTEXT, &random::<KEY_BYTES>()?[..])?,
            hash: store.wrap(HASH_CONTEXT, &random::<KEY_BYTES>()?[..])?,
        })
    }

    /// The same keys wrapped under `to` (a KEK rotation).
    pub fn rewrap(&self, from: &dyn KeyStore, to: &dyn KeyStore) -> Result<DataKeys> {
        Ok(DataKeys {
            encryption: crate::rewrap(from, to, ENC_CONTEXT, &self.encryption)?,
            hash: crate::rewrap(from, to, HASH_CONTEXT, &self.hash)?,
        })
    }
}

/// A card number's keyed hash: equal for equal numbers, useless without the hash key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PanHash(pub [u8; 32]);

impl PanHash {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for PanHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PanHash({}..)", hex::encode(&self.0[..4]))
    }
}

/// Encrypts, decrypts and hashes card data with the data keys unwrapped in memory.
pub struct CardVault {
    aead: SoftAead,
    hash_key: Zeroizing<[u8; KEY_BYTES]>,
}

impl fmt::Debug for CardVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CardVault(..)")
    }
}

fn key_of(context: &str, bytes: &[u8]) -> Result<Zeroizing<[u8; KEY_BYTES]>> {
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    if bytes.len() != KEY_BYTES {
        return Err(KeyStoreError::Damaged {
            context: context.to_owned(),
        });
    }
    key.copy_from_slice(bytes);
    Ok(key)
}

impl CardVault {
    /// The vault of `keys`, unwrapped under `store`.
    pub fn open(store: &dyn KeyStore, keys: &DataKeys) -> Result<CardVault> {
        let enc = key_of(ENC_CONTEXT, &store.unwrap(ENC_CONTEXT, &keys.encryption)?)?;
        let hash_key = key_of(HASH_CONTEXT, &store.unwrap(HASH_CONTEXT, &keys.hash)?)?;
        Ok(CardVault {
            aead: SoftAead::new(&enc),
            hash_key,
        })
    }

    /// `clear` (a card number, or card number and expiry) encrypted: `nonce || sealed`.
    pub fn encrypt(&self, clear: &str) -> Result<Vec<u8>> {
        let (nonce, sealed) = self.aead.seal(CARD_AAD, clear.as_bytes())?;
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The clear text of [`CardVault::encrypt`]'s output.
    pub fn decrypt(&self, blob: &[u8]) -> Result<Zeroizing<String>> {
        let damaged = || KeyStoreError::Damaged {
            context: "an encrypted card number".into(),
        };
        if blob.len() < NONCE_BYTES + envelope::TAG_BYTES {
            return Err(damaged());
        }
        let mut nonce = [0u8; NONCE_BYTES];
        nonce.copy_from_slice(&blob[..NONCE_BYTES]);
        let clear = self.aead.open(
            "an encrypted card number",
            CARD_AAD,
            &nonce,
            &blob[NONCE_BYTES..],
        )?;
        String::from_utf8(clear.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| damaged())
    }

    /// The keyed hash of a card number (digits only).
    pub fn hash(&self, pan: &str) -> PanHash {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.hash_key[..])
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(pan.as_bytes());
        PanHash(mac.finalize().into_bytes().into())
    }
}

/// The last four digits of a card number (fewer when it is shorter).
pub fn last4(pan: &str) -> &str {
    &pan[pan.len().saturating_sub(4)..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalKek;

    #[test]
    fn a_card_number_is_encrypted_found_by_its_hash_and_survives_a_kek_rotation() {
        let (kek, _) = LocalKek::generate("a").unwrap();
        let keys = DataKeys::generate(&kek).unwrap();
        let vault = CardVault::open(&kek, &keys).unwrap();
        let blob = vault.encrypt("6222021234567890123").unwrap();
        assert!(!String::from_utf8_lossy(&blob).contains("1234567890"));
        assert_eq!(&vault.decrypt(&blob).unwrap()[..], "6222021234567890123");
        assert_eq!(
            vault.hash("6222021234567890123"),
            vault.hash("6222021234567890123")
        );
        assert_ne!(
            vault.hash("6222021234567890123"),
            vault.hash("6222021234567890124")
        );
        assert_ne!(
            vault.encrypt("6222021234567890123").unwrap(),
            blob,
            "fresh nonce"
        );

        let (next, _) = LocalKek::generate("b").unwrap();
        let moved = keys.rewrap(&kek, &next).unwrap();
        assert!(CardVault::open(&kek, &moved).is_err());
        let vault2 = CardVault::open(&next, &moved).unwrap();
        assert_eq!(&vault2.decrypt(&blob).unwrap()[..], "6222021234567890123");
        assert_eq!(
            vault2.hash("6222021234567890123"),
            vault.hash("6222021234567890123")
        );
        assert_eq!(last4("6222021234567890123"), "0123");
        assert_eq!(last4("12"), "12");
    }
}
