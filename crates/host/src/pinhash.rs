//! PINs are kept as a keyed hash (HMAC-SHA-256 over the PAN and the PIN, under the host's
//! PIN verification key), never in clear. The key lives in its own file in the data
//! directory, apart from the database that holds the hashes.

use std::path::Path;

use hmac::{Hmac, Mac};
use poskit_security::Pin;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::HostError;

/// Bytes of the PIN verification key.
pub const PVK_BYTES: usize = 32;

/// Bytes of a PIN tag (HMAC-SHA-256).
pub const PIN_TAG_BYTES: usize = 32;

/// A PIN under the PIN verification key ([`PinHasher::tag`]).
#[derive(Clone)]
pub struct PinTag(Zeroizing<[u8; PIN_TAG_BYTES]>);

impl std::fmt::Debug for PinTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinTag(..)")
    }
}

/// The host's PIN verification key. Never printed; zeroized on drop.
pub struct PinHasher {
    key: Zeroizing<[u8; PVK_BYTES]>,
}

impl std::fmt::Debug for PinHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinHasher(..)")
    }
}

impl PinHasher {
    pub fn from_key(key: [u8; PVK_BYTES]) -> PinHasher {
        PinHasher {
            key: Zeroizing::new(key),
        }
    }

    /// Reads the key from `path`, creating it (random, mode 0600) when absent.
    pub fn load_or_create(path: &Path) -> Result<PinHasher, HostError> {
        let io = |e: std::io::Error| HostError::Io {
            path: path.display().to_string(),
            source: e,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let key: [u8; PVK_BYTES] =
                    bytes.as_slice().try_into().map_err(|_| HostError::Data {
                        what: format!(
                            "{}: a PIN verification key must be {PVK_BYTES} bytes",
                            path.display()
                        ),
                    })?;
                Ok(PinHasher::from_key(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; PVK_BYTES];
                getrandom::fill(&mut key).map_err(|e| HostError::Data {
                    what: format!("no randomness for the PIN verification key: {e}"),
                })?;
                write_private(path, &key).map_err(io)?;
                Ok(PinHasher::from_key(key))
            }
            Err(e) => Err(io(e)),
        }
    }

    fn mac(&self, pan: &str, pin: &[u8]) -> Hmac<Sha256> {
        // The key is 32 bytes: HMAC takes any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key[..])
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(pan.as_bytes());
        mac.update(&[0]);
        mac.update(pin);
        mac
    }

    /// The stored form of `pin` for the card `pan`.
    pub fn hash(&self, pan: &str, pin: &Pin) -> String {
        hex::encode(
            self.mac(pan, pin.dangerous_expose())
                .finalize()
                .into_bytes(),
        )
    }

    /// What [`PinHasher::hash`] would store for `pin`, as bytes: computed where the PIN
    /// block is decrypted (a connection task), compared with the stored form later by
    /// [`PinHasher::tag_matches`]. Zeroized on drop, never printed.
    pub fn tag(&self, pan: &str, pin: &Pin) -> PinTag {
        let mut out = self
            .mac(pan, pin.dangerous_expose())
            .finalize()
            .into_bytes();
        let mut tag = PinTag(Zeroizing::new([0u8; PIN_TAG_BYTES]));
        tag.0.copy_from_slice(&out);
        zeroize::Zeroize::zeroize(out.as_mut_slice());
        tag
    }

    /// Whether `tag` is the stored form `stored`, compared in constant time.
    pub fn tag_matches(tag: &PinTag, stored: &str) -> bool {
        let mut expected = [0u8; PIN_TAG_BYTES];
        if hex::decode_to_slice(stored, &mut expected).is_err() {
            return false;
        }
        poskit_security::constant_time_eq(&expected, &tag.0[..])
    }

    /// Whether `pin` is the card's PIN, compared in constant time.
    pub fn verify(&self, pan: &str, pin: &Pin, stored: &str) -> bool {
        Self::tag_matches(&self.tag(pan, pin), stored)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_verifies_only_for_its_card() {
        let hasher = PinHasher::from_key([7; PVK_BYTES]);
        let pin = Pin::new("123456").unwrap();
        let stored = hasher.hash("6222021234567890128", &pin);
        assert!(!stored.contains("123456"));
        assert!(hasher.verify("6222021234567890128", &pin, &stored));
        assert!(!hasher.verify("6222021234567890136", &pin, &stored));
        assert!(!hasher.verify("6222021234567890128", &Pin::new("654321").unwrap(), &stored));
        let tag = hasher.tag("6222021234567890128", &pin);
        assert!(PinHasher::tag_matches(&tag, &stored));
        assert!(!PinHasher::tag_matches(
            &hasher.tag("6222021234567890136", &pin),
            &stored
        ));
        assert!(!PinHasher::tag_matches(&tag, &stored[..62]));
        assert!(!format!("{tag:?}").contains(&stored[..8]));
        let other = PinHasher::from_key([8; PVK_BYTES]);
        assert!(!other.verify("6222021234567890128", &pin, &stored));
    }
}
