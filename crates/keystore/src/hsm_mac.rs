//! Terminals' MAC keys held inside a PKCS#11 token, for the host's request path.
//!
//! [`TokenMacs`] is the [`MacDevice`] of a [`crate::Pkcs11Store`]: a MAK (as MACs use it)
//! is put into the token once, at the sign-in that issued it, and comes back wrapped under
//! a key-wrapping key that never leaves the token (AES-KWP, [`hsm_crypto`]). That wrapped
//! form — [`HELD_TAG`], the key's kind, the wrapped bytes — is all the host keeps; the
//! ledger stores it sealed under the KEK as well, bound to its terminal. Every MAC is then
//! computed by the token ([`hsm_crypto::cup_ecb_mac`]) on a session object unwrapped from
//! that form, never readable.
//!
//! Sessions: [`MAC_SESSIONS`] of them, each with its own cache of unwrapped MAKs (session
//! objects die with their session, so a cache belongs to one). A MAK always goes to the same
//! session (chosen by a hash of its wrapped form), so its unwrap is paid once per session.
//! A token fault drops that session and its cache; the call answers
//! [`KeyStoreError::Unavailable`] (96 to the terminal) and the next call opens a new one.
//!
//! The key-wrapping key is labelled [`crate::pkcs11::MAK_WRAP_LABEL`]. It is created on the
//! token the first time a host needs it, and is left alone by a KEK rotation (what it wraps
//! lives one sign-in, a day, and is re-issued at the next).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use crate::hsm_crypto::{self, BLOCK, DesKind, TokenKey};
use crate::pkcs11::Token;
use crate::{KeyStoreError, MacDevice, Result};

/// Sessions that compute MACs at once.
pub const MAC_SESSIONS: usize = 4;
/// Unwrapped MAKs a session keeps at most; past it the session's cache is emptied.
pub const CACHED_PER_SESSION_MAX: usize = 4_096;
/// First byte of a MAK in the form [`TokenMacs::provision`] gives.
pub const HELD_TAG: u8 = b'M';
/// Bytes AES-KWP adds to what it wraps (the integrity block).
const KWP_OVERHEAD_BYTES: usize = 8;

/// One MAC session: its handle of the key-wrapping key and the MAKs unwrapped in it.
struct MacSession {
    session: Session,
    kwk: ObjectHandle,
    keys: HashMap<Vec<u8>, TokenKey>,
}

/// The MAC keys of a token (see the module documentation).
pub struct TokenMacs {
    token: Token,
    kwk_label: String,
    sessions: Vec<Mutex<Option<MacSession>>>,
}

impl std::fmt::Debug for TokenMacs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenMacs({}, {:?})", self.token.name, self.kwk_label)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The template that finds the key-wrapping key of `label`.
fn kwk_template(label: &str) -> [Attribute; 3] {
    [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

/// The key-wrapping key labelled `label`, created when the token has none.
fn find_or_create_kwk(token: &Token, session: &Session, label: &str) -> Result<ObjectHandle> {
    let found = session
        .find_objects(&kwk_template(label))
        .map_err(|e| token.unavailable(&e))?;
    match found[..] {
        [one] => Ok(one),
        [] => hsm_crypto::create_wrapping_key(session, label),
        _ => Err(KeyStoreError::Config(format!(
            "{}: {} AES keys are labelled {label:?}; keep one",
            token.name,
            found.len()
        ))),
    }
}

/// The parts of a held MAK: its kind and its wrapped bytes.
fn parse_held(held: &[u8]) -> Result<(DesKind, &[u8])> {
    let damaged = || KeyStoreError::Damaged {
        context: "a MAK held by the token".into(),
    };
    let [HELD_TAG, len, wrapped @ ..] = held else {
        return Err(damaged());
    };
    let kind = DesKind::of_len(usize::from(*len)).map_err(|_| damaged())?;
    if held.len() != held_bytes(usize::from(*len)) {
        return Err(damaged());
    }
    Ok((kind, wrapped))
}

/// Whether `live` wraps a fresh key and unwraps it again: the token works.
fn probe(live: &MacSession) -> bool {
    let Ok(probe) = crate::random::<16>() else {
        return false;
    };
    let Ok((wrapped, kind)) =
        hsm_crypto::provision_working_key(&live.session, live.kwk, &probe[..])
    else {
        return false;
    };
    match hsm_crypto::unwrap_mak(&live.session, live.kwk, &wrapped, kind) {
        Ok(key) => live.session.destroy_object(key.handle).is_ok(),
        Err(_) => false,
    }
}

impl TokenMacs {
    /// The MAC keys of `token`, wrapped under the key labelled `kwk_label` (created when
    /// absent); proven to work by one provision and MAC.
    pub(crate) fn open(token: Token, kwk_label: String) -> Result<TokenMacs> {
        let session = token.session(true)?;
        find_or_create_kwk(&token, &session, &kwk_label)?;
        drop(session);
        let macs = TokenMacs {
            token,
            kwk_label,
            sessions: (0..MAC_SESSIONS).map(|_| Mutex::new(None)).collect(),
        };
        let probe = crate::random::<16>()?;
        let held = macs.provision(&probe[..])?;
        macs.cup_ecb_mac(&held, b"poskit self-test")?;
        Ok(macs)
    }

    /// The session a held MAK is computed on.
    fn slot(&self, held: &[u8]) -> &Mutex<Option<MacSession>> {
        let mut hasher = DefaultHasher::new();
        held.hash(&mut hasher);
        &self.sessions[(hasher.finish() % MAC_SESSIONS as u64) as usize]
    }

    fn open_session(&self) -> Result<MacSession> {
        let session = self.token.session(false)?;
        let found = session
            .find_objects(&kwk_template(&self.kwk_label))
            .map_err(|e| self.token.unavailable(&e))?;
        let [kwk] = found[..] else {
            return Err(KeyStoreError::Unavailable(format!(
                "{}: the MAK-wrapping key {:?} is no longer on the token",
                self.token.name, self.kwk_label
            )));
        };
        Ok(MacSession {
            session,
            kwk,
            keys: HashMap::new(),
        })
    }

    /// Runs `op` on the session of `held`, opening it when needed; a token fault drops the
    /// session (and the MAKs unwrapped in it).
    fn on_session<T>(
        &self,
        held: &[u8],
        op: impl FnOnce(&mut MacSession) -> Result<T>,
    ) -> Result<T> {
        let mut slot = lock(self.slot(held));
        if slot.is_none() {
            *slot = Some(self.open_session()?);
        }
        let live = slot.as_mut().expect("opened above");
        let out = op(live);
        if matches!(out, Err(KeyStoreError::Unavailable(_))) {
            *slot = None;
        }
        out
    }

    /// The MAK of `held` in `live`, unwrapped on first use.
    fn key_in(&self, live: &mut MacSession, held: &[u8]) -> Result<TokenKey> {
        if let Some(key) = live.keys.get(held) {
            return Ok(*key);
        }
        let (kind, wrapped) = parse_held(held)?;
        let key = match hsm_crypto::unwrap_mak(&live.session, live.kwk, wrapped, kind) {
            Ok(key) => key,
            // SoftHSM2 answers CKR_GENERAL_ERROR for a wrapped key that fails its integrity
            // check, as it would for a failing token: a probe on the session tells them apart.
            Err(KeyStoreError::Unavailable(_)) if probe(live) => {
                return Err(KeyStoreError::Damaged {
                    context: "a MAK held by the token".into(),
                });
            }
            Err(e) => return Err(e),
        };
        if live.keys.len() >= CACHED_PER_SESSION_MAX {
            for (_, old) in live.keys.drain() {
                let _ = live.session.destroy_object(old.handle);
            }
        }
        live.keys.insert(held.to_vec(), key);
        Ok(key)
    }
}

impl MacDevice for TokenMacs {
    fn describe(&self) -> String {
        format!("{}, MAK-wrapping key {:?}", self.token.name, self.kwk_label)
    }

    fn provision(&self, clear: &[u8]) -> Result<Vec<u8>> {
        let kind = DesKind::of_len(clear.len())?;
        let wrapped = self.on_session(clear, |live| {
            hsm_crypto::provision_working_key(&live.session, live.kwk, clear).map(|(w, _)| w)
        })?;
        let mut held = vec![HELD_TAG, clear.len() as u8];
        held.extend_from_slice(&wrapped);
        assert_eq!(
            parse_held(&held).map(|(k, _)| k).ok(),
            Some(kind),
            "the token's AES-KWP output has the length of the form"
        );
        Ok(held)
    }

    fn cup_ecb_mac(&self, held: &[u8], data: &[u8]) -> Result<[u8; BLOCK]> {
        parse_held(held)?;
        self.on_session(held, |live| {
            let key = self.key_in(live, held)?;
            hsm_crypto::cup_ecb_mac(&live.session, key, data)
        })
    }
}

/// Bytes of the held form of a key of `key_bytes` (8, 16 or 24): the tag, the length and
/// the AES-KWP output (a single-DES key `K` is held as `K || K`, [`DesKind`]). Never 8, 16
/// or 24, so a held MAK is told from a clear one by its length.
pub const fn held_bytes(key_bytes: usize) -> usize {
    let value_bytes = if key_bytes < 16 { 16 } else { key_bytes };
    2 + value_bytes + KWP_OVERHEAD_BYTES
}

/// Whether `held` has the form of a MAK held by a token (not a key in clear, which is 8,
/// 16 or 24 bytes).
pub fn is_held(held: &[u8]) -> bool {
    parse_held(held).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_mak_is_told_from_a_clear_key_by_its_form() {
        for (len, wrapped) in [(8u8, 24), (16, 24), (24, 32)] {
            let held = [&[HELD_TAG, len][..], &vec![7u8; wrapped][..]].concat();
            assert!(is_held(&held), "{len}");
            assert!(!is_held(&held[..held.len() - 1]), "{len}: one byte short");
        }
        for clear_len in [8, 16, 24] {
            let mut clear = vec![0u8; clear_len];
            clear[0] = HELD_TAG;
            clear[1] = 16;
            assert!(!is_held(&clear), "a clear key of {clear_len} bytes");
        }
        assert!(!is_held(&[HELD_TAG, 9, 1, 2, 3]), "9 is no DES key length");
        assert!(!is_held(&[HELD_TAG, 16]), "nothing wrapped");
    }
}
