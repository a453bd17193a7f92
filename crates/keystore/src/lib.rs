//! Keys and card data at rest (DESIGN.md, invariant 8).
//!
//! Every key poskit stores — a terminal's master key and working keys, the host's PIN
//! verification key, the keys that encrypt card numbers — is kept *wrapped* under a
//! key-encryption key (KEK) that never sits beside the data it protects:
//!
//! - [`local::LocalKek`]: a 32-byte KEK read from a 0600 file (`--kek-file`,
//!   `POSKIT_KEK_FILE`) or from the environment (`POSKIT_KEK`, 64 hex digits);
//! - [`pkcs11::Pkcs11Store`]: a non-extractable AES key inside a PKCS#11 token (an HSM;
//!   SoftHSM2 in tests), which wraps and unwraps with AES-GCM run by the token.
//!
//! Both produce the same [`envelope`]: version, the KEK's id, a nonce, and AES-256-GCM
//! ciphertext whose associated data names what the key is for (`tmk:10100001`), so a blob
//! cannot be moved to another row and unwrap there. A blob wrapped under another KEK is
//! refused as [`KeyStoreError::WrongKek`] before any decryption is tried, which is how a
//! host told the wrong KEK refuses to start and changes nothing.
//!
//! Card numbers ([`vault::CardVault`]) are encrypted under a data key, itself wrapped under
//! the KEK, and found by a keyed hash (HMAC-SHA-256 under a second data key) and their last
//! four digits. Rotating the KEK re-wraps the data keys, not every card.

pub mod envelope;
pub mod files;
pub mod hsm_crypto;
pub mod hsm_mac;
pub mod local;
pub mod pkcs11;
pub mod source;
pub mod tls;
pub mod vault;

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

pub use envelope::KekId;
pub use local::LocalKek;
pub use pkcs11::{PKCS11_PIN_ENV, Pkcs11Config, Pkcs11Store};
pub use source::{KekSource, Opened, open};
pub use vault::{CardVault, DataKeys, PanHash};

/// Environment variable holding a local KEK as 64 hex digits.
pub const KEK_ENV: &str = "POSKIT_KEK";
/// Environment variable naming a local KEK file.
pub const KEK_FILE_ENV: &str = "POSKIT_KEK_FILE";
/// The KEK file created in a data directory when no KEK is given (demo and first start).
pub const KEK_FILE: &str = "kek";
/// Bytes of a key-encryption key and of the data keys.
pub const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// The blob was wrapped under another key-encryption key.
    #[error(
        "the key-encryption key given ({given}) is not the one these keys were wrapped under ({wrapped_under}); give the right one (--kek-file, POSKIT_KEK_FILE or POSKIT_KEK)"
    )]
    WrongKek { given: KekId, wrapped_under: KekId },
    /// The blob does not decrypt under the right KEK: altered, truncated, or moved from
    /// another row (its context differs).
    #[error("a wrapped value for {context} is damaged or belongs elsewhere")]
    Damaged { context: String },
    /// The KEK cannot be read or is not acceptable (bad length, wrong file mode).
    #[error("key-encryption key: {0}")]
    Config(String),
    /// The key store cannot be reached now (an HSM down); the caller answers 96.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T> = std::result::Result<T, KeyStoreError>;

/// Where keys are wrapped. Implementations never print a key and zeroize what they unwrap.
pub trait KeyStore: Send + Sync {
    /// What it is, for people: "key file /d/kek", "PKCS#11 token poskit, key poskit-kek".
    fn describe(&self) -> String;
    /// The id of the KEK this store wraps under (not secret).
    fn kek_id(&self) -> KekId;
    /// `clear` wrapped for `context` (what the key is for, e.g. `tmk:10100001`).
    fn wrap(&self, context: &str, clear: &[u8]) -> Result<Vec<u8>>;
    /// The clear value of `wrapped`, when it was wrapped under this KEK for `context`.
    fn unwrap(&self, context: &str, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
    /// The device that holds terminals' MAC keys and computes MACs with them, when this
    /// store has one (an HSM); `None` when MACs are computed in the process.
    fn mac_device(&self) -> Result<Option<Arc<dyn MacDevice>>> {
        Ok(None)
    }
}

/// Holds MAC keys and computes the CUP ECB MAC (`spec/cup-pos.md` §3.3) with them; their
/// clear value never comes back out ([`hsm_mac::TokenMacs`]).
pub trait MacDevice: Send + Sync {
    /// What it is, for people.
    fn describe(&self) -> String;
    /// The MAC key `clear` (8, 16 or 24 bytes, as MACs use it) put into the device: the
    /// form to keep, from which the device finds the key again (not secret on its own).
    fn provision(&self, clear: &[u8]) -> Result<Vec<u8>>;
    /// Field 64 (8 uppercase hex characters) for `data` under the key `held`.
    fn cup_ecb_mac(&self, held: &[u8], data: &[u8]) -> Result<[u8; hsm_crypto::BLOCK]>;
}

impl fmt::Debug for dyn MacDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacDevice({})", self.describe())
    }
}

impl fmt::Debug for dyn KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyStore({}, {})", self.describe(), self.kek_id())
    }
}

/// `wrapped` unwrapped under `from` and wrapped again under `to`: one step of a rotation.
pub fn rewrap(
    from: &dyn KeyStore,
    to: &dyn KeyStore,
    context: &str,
    wrapped: &[u8],
) -> Result<Vec<u8>> {
    let clear = from.unwrap(context, wrapped)?;
    to.wrap(context, &clear)
}

/// Fresh random bytes from the operating system.
pub fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>> {
    let mut out = Zeroizing::new([0u8; N]);
    getrandom::fill(&mut out[..])
        .map_err(|e| KeyStoreError::Config(format!("no randomness from the system: {e}")))?;
    Ok(out)
}
