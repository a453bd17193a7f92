//! The CUP POS MAC run with its key held *inside* a PKCS#11 token, with only the standard
//! mechanisms SoftHSM2 2.6 offers (no payment-HSM commands) — the host's request path uses
//! it through [`crate::hsm_mac::TokenMacs`] — and why the PIN check cannot be done there.
//!
//! What runs inside the token here, proven against SoftHSM2 2.6.1 in `tests/softhsm.rs`:
//!
//! - **Working keys as session objects** ([`TokenKey`]), sensitive and never extractable,
//!   brought in with `C_UnwrapKey(CKM_AES_KEY_WRAP_PAD)` under an AES-256 key-wrapping key
//!   that stays on the token ([`create_wrapping_key`]); their clear value is not in the
//!   host after provisioning ([`provision_working_key`]).
//! - **The CUP ECB MAC** ([`cup_ecb_mac`], [`verify_cup_ecb_mac`]): the XOR of the blocks
//!   and the hex expansions are public arithmetic done by the host; the two block
//!   encryptions are `C_Encrypt(CKM_DES3_ECB)` on the MAK's handle. Equal to
//!   `poskit_security::compute_mac(cup-ecb)` for 8-, 16- and 24-byte MAKs, parity-correct
//!   or not (SoftHSM ignores DES parity bits, as the software cipher does); 30–55 µs a
//!   MAC of 100 bytes here (two `C_EncryptInit`+`C_Encrypt`).
//!
//! What does not run inside SoftHSM2 2.6.1 (Debian's), and why:
//!
//! - **Single DES**: `CKM_DES_ECB`/`CKM_DES_CBC` are in `C_GetMechanismList`, but every use
//!   is `CKR_MECHANISM_INVALID`: the package is built on OpenSSL 3, whose default provider
//!   has no DES. Worked around: an 8-byte key `K` is held as the 2-key 3DES key `K || K`
//!   (3DES-EDE with equal halves is DES).
//! - **The PIN check** (field 52 against a reference, or PIN translation): every way to
//!   have the token encrypt a *secret* under the PIK is `C_WrapKey` of that secret, and
//!   SoftHSM's `C_WrapKey` implements only AES key wrap (RFC 3394/5649), although
//!   `C_GetMechanismInfo` flags DES-ECB, DES-CBC, DES-CBC-PAD and DES3-CBC with `CKF_WRAP`:
//!   DES3-CBC (zero IV, one block = ECB), DES3-ECB, DES-ECB and DES-CBC wraps are all
//!   `CKR_MECHANISM_INVALID`, for an 8-byte generic secret or a DES2 key alike. So
//!   `E_PIK(reference clear PIN block)` cannot be made inside the token to compare with
//!   field 52. The other directions are closed too: bringing field 52 in as an object needs
//!   a DES unwrap (`C_UnwrapKey` unwraps only with AES-KW/KWP and RSA: DES3-ECB, DES3-CBC,
//!   DES-ECB are `CKR_MECHANISM_INVALID`); `C_Decrypt` of field 52 hands the clear block to
//!   the host; `CKM_DES3_ECB_ENCRYPT_DATA` derivation takes the data in clear from the
//!   host. On an HSM whose `C_WrapKey` does DES3-CBC the design works as planned: the
//!   reference stored AES-KWP-wrapped, unwrapped as an extractable generic secret with
//!   `CKA_WRAP_WITH_TRUSTED` (so only an SO-marked `CKA_TRUSTED` PIK can wrap it), wrapped
//!   under the PIK, compared in constant time.
//! - **Loading working keys from field 62** (3DES-ECB under the TMK): the same missing
//!   DES unwrap. The sign-in's keys are decrypted in the host (as today) and then
//!   provisioned into the token.
//! - **A MAK that only MACs**: the MAK needs `CKA_ENCRYPT`, so a logged-in session can have
//!   the token 3DES-ECB-encrypt any block with it (an encryption oracle; a payment HSM
//!   offers "generate/verify MAC" instead), and the MAC's intermediate block is seen by
//!   the host. (`CKM_DES3_MAC`/`CMAC` compute other MACs than CUP's.)
//! - **SM4** (`cup-ecb-sm4`, SM4 PIN blocks) and **X9.19** (single DES with the key's left
//!   half: a separate `KL || KL` object would be needed beside the `KL || KR` one): not
//!   done; SoftHSM has no SM4 at all.
//!
//! Session objects live as long as the session that made them: `TokenMacs` unwraps each
//! MAK once in the session it is always computed on.

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::pkcs11::describe_error;
use crate::{KeyStoreError, Result};

/// Bytes of a DES block, a CUP MAC on the wire and a format 0 PIN block.
pub const BLOCK: usize = 8;

/// The DES key types a working key may have, by its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DesKind {
    /// 8 bytes, single DES.
    Des,
    /// 16 bytes, 2-key 3DES.
    Des2,
    /// 24 bytes, 3-key 3DES.
    Des3,
}

impl DesKind {
    /// The kind of a key of `len` bytes.
    pub fn of_len(len: usize) -> Result<DesKind> {
        match len {
            8 => Ok(DesKind::Des),
            16 => Ok(DesKind::Des2),
            24 => Ok(DesKind::Des3),
            _ => Err(KeyStoreError::Config(format!(
                "a DES working key is 8, 16 or 24 bytes, not {len}"
            ))),
        }
    }

    /// The token's key type: a single-DES key `K` is held as the 2-key 3DES key `K || K`
    /// (EDE with equal halves is DES), because SoftHSM2 built on OpenSSL 3 refuses every
    /// single-DES mechanism (`CKR_MECHANISM_INVALID`: DES is in OpenSSL's legacy provider).
    fn key_type(self) -> KeyType {
        match self {
            DesKind::Des | DesKind::Des2 => KeyType::DES2,
            DesKind::Des3 => KeyType::DES3,
        }
    }
}

/// ECB encryption of one block (3DES; see [`DesKind::key_type`] for single DES).
const ECB: Mechanism<'static> = Mechanism::Des3Ecb;

/// A working key held inside the token as a session object: usable through its handle,
/// never readable. Gone when the session that made it closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenKey {
    pub handle: ObjectHandle,
    pub kind: DesKind,
}

fn failed(what: &str, e: &cryptoki::error::Error) -> KeyStoreError {
    KeyStoreError::Unavailable(format!("{what}: {}", describe_error(e)))
}

/// An AES-256 key-wrapping key on the token (a token object), which wraps and unwraps
/// working keys and reference PIN blocks and does nothing else; never extractable.
pub fn create_wrapping_key(session: &Session, label: &str) -> Result<ObjectHandle> {
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32.into()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    session
        .generate_key(&Mechanism::AesKeyGen, &template)
        .map_err(|e| failed("generating the key-wrapping key", &e))
}

/// The attributes of a MAK of `kind` as a session object: it encrypts, nothing else.
fn mak_template(kind: DesKind) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(kind.key_type()),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
    ]
}

/// Provisioning (where the clear key is known anyway, e.g. just after a sign-in decrypted
/// field 62 in the host): a DES/3DES working key put into the token for a moment and taken
/// out wrapped under `kwk` (AES-KWP), the form stored at rest; a single-DES key is stored
/// as `K || K` ([`DesKind::key_type`]).
pub fn provision_working_key(
    session: &Session,
    kwk: ObjectHandle,
    clear: &[u8],
) -> Result<(Vec<u8>, DesKind)> {
    let kind = DesKind::of_len(clear.len())?;
    let mut value = Zeroizing::new(clear.to_vec());
    if kind == DesKind::Des {
        value.extend_from_slice(clear);
    }
    Ok((wrap_clear(session, kwk, &value)?, kind))
}

/// `clear` put into the token as an extractable generic secret for a moment and taken
/// out wrapped under `kwk` (AES-KWP).
fn wrap_clear(session: &Session, kwk: ObjectHandle, clear: &[u8]) -> Result<Vec<u8>> {
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::Value(clear.to_vec()),
    ];
    let object = session
        .create_object(&template)
        .map_err(|e| failed("importing a key to wrap it", &e))?;
    let wrapped = session.wrap_key(&Mechanism::AesKeyWrapPad, kwk, object);
    let destroyed = session.destroy_object(object);
    let wrapped = wrapped.map_err(|e| failed("wrapping a key under the key-wrapping key", &e))?;
    destroyed.map_err(|e| failed("destroying the imported key", &e))?;
    Ok(wrapped)
}

/// A MAK brought into the token from its stored form ([`provision_working_key`]'s
/// output): `C_UnwrapKey(CKM_AES_KEY_WRAP_PAD)`, a session object that only encrypts.
pub fn unwrap_mak(
    session: &Session,
    kwk: ObjectHandle,
    wrapped: &[u8],
    kind: DesKind,
) -> Result<TokenKey> {
    let handle = session
        .unwrap_key(&Mechanism::AesKeyWrapPad, kwk, wrapped, &mak_template(kind))
        .map_err(|e| match e {
            // The wrapped bytes, not the token: altered, or wrapped under another key.
            CkError::Pkcs11(
                RvError::WrappedKeyInvalid
                | RvError::WrappedKeyLenRange
                | RvError::EncryptedDataInvalid,
                _,
            ) => KeyStoreError::Damaged {
                context: "a working key wrapped by the token".into(),
            },
            e => failed("unwrapping a working key into the token", &e),
        })?;
    Ok(TokenKey { handle, kind })
}

/// Uppercase hex of `bytes` into `out` (twice as long).
fn expand_hex(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0x0F)];
    }
}

fn encrypt_block(session: &Session, mak: TokenKey, block: &[u8]) -> Result<Vec<u8>> {
    let out = session
        .encrypt(&ECB, mak.handle, block)
        .map_err(|e| failed("C_Encrypt with the MAK", &e))?;
    if out.len() != BLOCK {
        return Err(KeyStoreError::Unavailable(format!(
            "the token's ECB encryption gave {} bytes for one block",
            out.len()
        )));
    }
    Ok(out)
}

/// The CUP ECB MAC (`spec/cup-pos.md` §3.3) of `data` with the MAK inside the token: field
/// 64's 8 uppercase hex characters, as `poskit_security::compute_mac(CupEcb, ..)` gives.
pub fn cup_ecb_mac(session: &Session, mak: TokenKey, data: &[u8]) -> Result<[u8; BLOCK]> {
    let mut xor = [0u8; BLOCK];
    for chunk in data.chunks(BLOCK) {
        xor.iter_mut().zip(chunk).for_each(|(x, b)| *x ^= b);
    }
    let mut expanded = [0u8; 2 * BLOCK];
    expand_hex(&xor, &mut expanded);
    let (first, last) = expanded.split_at(BLOCK);
    let mut temp = encrypt_block(session, mak, first)?;
    temp.iter_mut().zip(last).for_each(|(t, l)| *t ^= l);
    let temp = encrypt_block(session, mak, &temp)?;
    let mut mac = [0u8; BLOCK];
    expand_hex(&temp[..BLOCK / 2], &mut mac);
    Ok(mac)
}

/// Whether `wire` (field 64 as received) is the CUP ECB MAC of `data` under the MAK.
pub fn verify_cup_ecb_mac(
    session: &Session,
    mak: TokenKey,
    data: &[u8],
    wire: &[u8],
) -> Result<bool> {
    Ok(bool::from(cup_ecb_mac(session, mak, data)?[..].ct_eq(wire)))
}
