//! A key-encryption key inside a PKCS#11 token (an HSM; SoftHSM2 in tests).
//!
//! The KEK is an AES-256 secret key object on the token — `CKA_TOKEN`, `CKA_PRIVATE`,
//! `CKA_SENSITIVE`, not `CKA_EXTRACTABLE`, usable only to encrypt and decrypt — found by its
//! `CKA_LABEL`; its `CKA_ID` (8 random bytes chosen when it was generated) is its
//! [`KekId`]. Wrapping is `CKM_AES_GCM` run by the token (`C_Encrypt`/`C_Decrypt`) with a
//! fresh 12-byte IV from the operating system, the context as AAD and a 128-bit tag, stored
//! in the same [`envelope`] as the local KEK's, so the two are interchangeable and a blob
//! says which KEK it needs.
//!
//! Sessions: a small pool ([`SESSIONS_MAX`]), each logged in as the user (login state is
//! the token's, shared by the process's sessions). An error that says the token or the
//! session is gone (`CKR_DEVICE_ERROR`, `CKR_SESSION_HANDLE_INVALID`, a token removed...)
//! answers [`KeyStoreError::Unavailable`] and drops the pooled sessions; the next call opens
//! a new one and logs in again, so the host answers 96 while the HSM is down and recovers
//! by itself when it returns.
//!
//! A module is loaded and `C_Initialize`d once per process ([`module`]) and never finalized:
//! every store on it, and any other user of the module in the process, shares it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::envelope::{self, KekId, NONCE_BYTES, TAG_BYTES};
use crate::hsm_mac::TokenMacs;
use crate::{KEY_BYTES, KeyStore, KeyStoreError, MacDevice, Result, random};

/// Environment variable holding the token's user PIN.
pub const PKCS11_PIN_ENV: &str = "POSKIT_PKCS11_PIN";
/// Sessions a store keeps open at most (callers beyond that wait for one).
pub const SESSIONS_MAX: usize = 4;
/// `CKA_LABEL` of the AES key that wraps the MAKs a token holds ([`TokenMacs`]): one per
/// token, kept through KEK rotations.
pub const MAK_WRAP_LABEL: &str = "poskit.mak-wrap";
/// Context of the round trip [`Pkcs11Store::open`] does to prove the key and mechanism work.
const SELF_TEST_CONTEXT: &str = "poskit pkcs11 self-test";
/// Context of the probe that tells a damaged blob from a failing token (a fixed nonce: the
/// probe is zeros, sealed only to be opened again, and never stored).
const PROBE_CONTEXT: &str = "poskit pkcs11 probe";

/// Which token, which PIN and which key. `Debug` never shows the PIN.
#[derive(Clone)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token's label (`CKA_LABEL` of the token, as `pkcs11-tool -L` shows it).
    pub token_label: String,
    /// The user PIN (from [`PKCS11_PIN_ENV`]).
    pub pin: Zeroizing<String>,
    /// The KEK's `CKA_LABEL`.
    pub key_label: String,
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Pkcs11Config({}, token {:?}, key {:?}, pin ..)",
            self.module.display(),
            self.token_label,
            self.key_label
        )
    }
}

impl Pkcs11Config {
    /// The user PIN from [`PKCS11_PIN_ENV`]; an error naming the variable when unset.
    pub fn pin_from_env() -> Result<Zeroizing<String>> {
        match std::env::var(PKCS11_PIN_ENV) {
            Ok(pin) if !pin.is_empty() => Ok(Zeroizing::new(pin)),
            _ => Err(KeyStoreError::Config(format!(
                "the PKCS#11 token's user PIN is read from {PKCS11_PIN_ENV}, which is not set"
            ))),
        }
    }

    fn token_name(&self) -> String {
        format!("PKCS#11 token {:?}", self.token_label)
    }
}

/// The process's context for `path`: loaded and initialized on first use, then shared.
pub fn module(path: &Path) -> Result<Pkcs11> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = lock(MODULES.get_or_init(Default::default));
    if let Some(ctx) = modules.get(path) {
        return Ok(ctx.clone());
    }
    if !path.is_file() {
        return Err(KeyStoreError::Config(format!(
            "PKCS#11 module {} does not exist (install the HSM's PKCS#11 library, e.g. Debian's softhsm2, or give its path)",
            path.display()
        )));
    }
    let ctx = Pkcs11::new(path).map_err(|e| {
        KeyStoreError::Config(format!(
            "cannot load PKCS#11 module {}: {e}",
            path.display()
        ))
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(KeyStoreError::Unavailable(format!(
                "PKCS#11 module {}: C_Initialize failed ({})",
                path.display(),
                describe_error(&e)
            )));
        }
    }
    modules.insert(path.to_owned(), ctx.clone());
    Ok(ctx)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `CKR_PIN_INCORRECT` for `RvError::PinIncorrect`: the names an HSM's manual uses.
pub fn ckr_name(rv: RvError) -> String {
    let mut out = String::from("CKR");
    for c in format!("{rv:?}").chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// One line for a cryptoki error: `C_Encrypt: CKR_DEVICE_ERROR`.
pub fn describe_error(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("C_{function:?}: {}", ckr_name(*rv)),
        other => other.to_string(),
    }
}

/// Whether `e` says the session, the login or the token is gone: the session is dropped
/// and the next call opens a new one.
fn is_session_fault(e: &CkError) -> bool {
    !matches!(
        e,
        CkError::Pkcs11(
            RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::DataLenRange
                | RvError::DataInvalid,
            _
        )
    )
}

/// A token found by label, with the PIN to log in to it.
#[derive(Clone)]
pub(crate) struct Token {
    ctx: Pkcs11,
    slot: Slot,
    pin: Zeroizing<String>,
    pub(crate) name: String,
}

impl Token {
    fn find(config: &Pkcs11Config) -> Result<Token> {
        let ctx = module(&config.module)?;
        let name = config.token_name();
        let unavailable =
            |e: CkError| KeyStoreError::Unavailable(format!("{name}: {}", describe_error(&e)));
        let mut seen = Vec::new();
        for slot in ctx.get_slots_with_token().map_err(unavailable)? {
            let info = ctx.get_token_info(slot).map_err(unavailable)?;
            let label = info.label().trim_end().to_owned();
            if label == config.token_label {
                return Ok(Token {
                    ctx,
                    slot,
                    pin: config.pin.clone(),
                    name,
                });
            }
            seen.push(format!("{label:?}"));
        }
        Err(KeyStoreError::Config(format!(
            "{name} is not in module {} (tokens there: {})",
            config.module.display(),
            if seen.is_empty() {
                "none".into()
            } else {
                seen.join(", ")
            }
        )))
    }

    /// A new session, logged in as the user (already logged in counts: the login is the
    /// token's, shared by the process's sessions).
    pub(crate) fn session(&self, read_write: bool) -> Result<Session> {
        let opened = if read_write {
            self.ctx.open_rw_session(self.slot)
        } else {
            self.ctx.open_ro_session(self.slot)
        };
        let session = opened.map_err(|e| self.unavailable(&e))?;
        let pin = AuthPin::from(self.pin.as_str());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(CkError::Pkcs11(
                rv @ (RvError::PinIncorrect
                | RvError::PinLenRange
                | RvError::PinLocked
                | RvError::PinExpired
                | RvError::UserPinNotInitialized),
                _,
            )) => Err(KeyStoreError::Config(format!(
                "{}: the user PIN was refused ({}); check {PKCS11_PIN_ENV}",
                self.name,
                ckr_name(rv)
            ))),
            Err(e) => Err(self.unavailable(&e)),
        }
    }

    pub(crate) fn unavailable(&self, e: &CkError) -> KeyStoreError {
        KeyStoreError::Unavailable(format!("{}: {}", self.name, describe_error(e)))
    }
}

/// The template that finds the KEK (and, with its id, the one this store opened).
fn key_template(label: &str, id: Option<KekId>) -> Vec<Attribute> {
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    if let Some(id) = id {
        template.push(Attribute::Id(id.0.to_vec()));
    }
    template
}

/// The key labelled `label` and its id, or `None`; refuses two keys of one label, a key
/// without an 8-byte id, and a key that could leave the token.
fn find_key(
    token: &Token,
    session: &Session,
    label: &str,
    id: Option<KekId>,
) -> Result<Option<(ObjectHandle, KekId)>> {
    let found = session
        .find_objects(&key_template(label, id))
        .map_err(|e| token.unavailable(&e))?;
    let handle = match found[..] {
        [] => return Ok(None),
        [one] => one,
        _ => {
            return Err(KeyStoreError::Config(format!(
                "{}: {} AES keys are labelled {label:?}; keep one",
                token.name,
                found.len()
            )));
        }
    };
    let wanted = [
        AttributeType::Id,
        AttributeType::Sensitive,
        AttributeType::Extractable,
    ];
    let attributes = session
        .get_attributes(handle, &wanted)
        .map_err(|e| token.unavailable(&e))?;
    let (mut kek_id, mut sensitive, mut extractable) = (None, false, true);
    for attribute in attributes {
        match attribute {
            Attribute::Id(bytes) => kek_id = <[u8; 8]>::try_from(&bytes[..]).ok().map(KekId),
            Attribute::Sensitive(b) => sensitive = b,
            Attribute::Extractable(b) => extractable = b,
            _ => {}
        }
    }
    let refuse = |why: &str| {
        KeyStoreError::Config(format!(
            "{}: key {label:?} {why}; generate the KEK with poskit",
            token.name
        ))
    };
    let kek_id = kek_id.ok_or_else(|| refuse("has no 8-byte CKA_ID"))?;
    if !sensitive || extractable {
        return Err(refuse(
            "could leave the token (not sensitive, or extractable)",
        ));
    }
    Ok(Some((handle, kek_id)))
}

/// The error of a token without the configured key.
pub(crate) fn no_key(config: &Pkcs11Config) -> KeyStoreError {
    KeyStoreError::Config(format!(
        "{}: no AES key labelled {:?} (generate it first)",
        config.token_name(),
        config.key_label
    ))
}

/// `clear` sealed by the token: AES-GCM, `context` as AAD, a 128-bit tag.
fn encrypt_gcm(
    live: &Live,
    nonce: &[u8; NONCE_BYTES],
    context: &str,
    clear: &[u8],
) -> cryptoki::error::Result<Vec<u8>> {
    let mut iv = *nonce;
    let params = GcmParams::new(&mut iv, context.as_bytes(), 128.into())?;
    live.session
        .encrypt(&Mechanism::AesGcm(params), live.key, clear)
}

/// The clear bytes of `sealed`, opened by the token. A tag that does not match is
/// `CKR_ENCRYPTED_DATA_INVALID` — which SoftHSM2 reports as `CKR_GENERAL_ERROR`, as it
/// would a failing token: so a general failure of `C_Decrypt` is told apart by a round
/// trip of a probe on the same session (it works: the blob is bad; it fails: the token).
fn decrypt_gcm(
    live: &Live,
    nonce: &[u8; NONCE_BYTES],
    context: &str,
    sealed: &[u8],
) -> cryptoki::error::Result<Vec<u8>> {
    let mut iv = *nonce;
    let params = GcmParams::new(&mut iv, context.as_bytes(), 128.into())?;
    match live
        .session
        .decrypt(&Mechanism::AesGcm(params), live.key, sealed)
    {
        Err(CkError::Pkcs11(
            RvError::GeneralError | RvError::FunctionFailed,
            Function::Decrypt,
        )) if probe(live) => Err(CkError::Pkcs11(
            RvError::EncryptedDataInvalid,
            Function::Decrypt,
        )),
        other => other,
    }
}

/// Whether the token seals and opens a probe with the key on this session.
fn probe(live: &Live) -> bool {
    let nonce = [0x5a; NONCE_BYTES];
    let clear = [0u8; 16];
    let sealed = encrypt_gcm(live, &nonce, PROBE_CONTEXT, &clear);
    let opened = sealed.and_then(|sealed| {
        let mut iv = nonce;
        let params = GcmParams::new(&mut iv, PROBE_CONTEXT.as_bytes(), 128.into())?;
        live.session
            .decrypt(&Mechanism::AesGcm(params), live.key, &sealed)
    });
    opened.is_ok_and(|opened| opened == clear)
}

/// A session of the pool with the KEK's handle in it.
struct Live {
    session: Session,
    key: ObjectHandle,
}

#[derive(Default)]
struct Pool {
    idle: Vec<Live>,
    /// Sessions open: idle ones and those lent out.
    open: usize,
}

/// Why a call through a pooled session failed.
enum Fault {
    /// No session could be had.
    Store(KeyStoreError),
    /// The token refused the operation.
    Op(CkError),
}

/// A KEK inside a PKCS#11 token. Send + Sync: calls from several threads share a pool of
/// at most [`SESSIONS_MAX`] sessions.
pub struct Pkcs11Store {
    token: Token,
    key_label: String,
    id: KekId,
    pool: Mutex<Pool>,
    freed: Condvar,
    /// The terminals' MAC keys on the same token, opened on first use (under the lock, so
    /// that two first uses do not make two key-wrapping keys).
    macs: Mutex<Option<Arc<TokenMacs>>>,
}

impl fmt::Debug for Pkcs11Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pkcs11Store({}, {})", self.describe(), self.id)
    }
}

impl Pkcs11Store {
    /// The KEK labelled `config.key_label` on the token labelled `config.token_label`,
    /// logged in with the PIN; proven to work by one wrap and unwrap.
    pub fn open(config: &Pkcs11Config) -> Result<Pkcs11Store> {
        Pkcs11Store::open_if_present(config)?.ok_or_else(|| no_key(config))
    }

    /// [`Pkcs11Store::open`], or `None` when the token has no key of that label.
    pub fn open_if_present(config: &Pkcs11Config) -> Result<Option<Pkcs11Store>> {
        let token = Token::find(config)?;
        let session = token.session(false)?;
        let Some((key, id)) = find_key(&token, &session, &config.key_label, None)? else {
            return Ok(None);
        };
        let store = Pkcs11Store::new(token, &config.key_label, id, Live { session, key });
        store.self_test()?;
        Ok(Some(store))
    }

    /// Generates the KEK on the token: AES-256, non-extractable, sensitive, a token object
    /// with a random 8-byte id. Refuses when a key of that label exists.
    pub fn create_key(config: &Pkcs11Config) -> Result<Pkcs11Store> {
        let token = Token::find(config)?;
        let session = token.session(true)?;
        if find_key(&token, &session, &config.key_label, None)?.is_some() {
            return Err(KeyStoreError::Config(format!(
                "{}: an AES key labelled {:?} exists already; refusing to make another",
                token.name, config.key_label
            )));
        }
        let id = KekId(*random::<8>()?);
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen((KEY_BYTES as u64).into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::Label(config.key_label.as_bytes().to_vec()),
            Attribute::Id(id.0.to_vec()),
        ];
        let key = session
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(|e| token.unavailable(&e))?;
        let store = Pkcs11Store::new(token, &config.key_label, id, Live { session, key });
        store.self_test()?;
        Ok(store)
    }

    /// A new KEK labelled `new_label` beside the one of `config` (same token and PIN): the
    /// first step of a rotation, whose re-wrapping the caller does with [`crate::rewrap`].
    pub fn generate_rotated(config: &Pkcs11Config, new_label: &str) -> Result<Pkcs11Store> {
        let mut next = config.clone();
        next.key_label = new_label.to_owned();
        Pkcs11Store::create_key(&next)
    }

    /// The KEK's label.
    pub fn key_label(&self) -> &str {
        &self.key_label
    }

    fn new(token: Token, key_label: &str, id: KekId, first: Live) -> Pkcs11Store {
        Pkcs11Store {
            token,
            key_label: key_label.to_owned(),
            id,
            pool: Mutex::new(Pool {
                idle: vec![first],
                open: 1,
            }),
            freed: Condvar::new(),
            macs: Mutex::new(None),
        }
    }

    fn self_test(&self) -> Result<()> {
        let probe = random::<KEY_BYTES>()?;
        let blob = self.wrap(SELF_TEST_CONTEXT, &probe[..])?;
        if self.unwrap(SELF_TEST_CONTEXT, &blob)?[..] != probe[..] {
            return Err(KeyStoreError::Config(format!(
                "{}: key {:?} does not give back what it wrapped",
                self.token.name, self.key_label
            )));
        }
        Ok(())
    }

    /// A session with the key: an idle one, a new one while fewer than [`SESSIONS_MAX`]
    /// are open, else the next one given back.
    fn take(&self) -> Result<Live> {
        let mut pool = lock(&self.pool);
        loop {
            if let Some(live) = pool.idle.pop() {
                return Ok(live);
            }
            if pool.open < SESSIONS_MAX {
                pool.open += 1;
                drop(pool);
                return self.open_live().inspect_err(|_| self.give_back(None));
            }
            pool = self
                .freed
                .wait(pool)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn open_live(&self) -> Result<Live> {
        let session = self.token.session(false)?;
        match find_key(&self.token, &session, &self.key_label, Some(self.id))? {
            Some((key, _)) => Ok(Live { session, key }),
            None => Err(KeyStoreError::Unavailable(format!(
                "{}: key {:?} (id {}) is no longer on the token",
                self.token.name, self.key_label, self.id
            ))),
        }
    }

    /// Returns a session to the pool; `None` for one that failed, which also closes the
    /// idle ones (after a token restart every old session handle is stale).
    fn give_back(&self, live: Option<Live>) {
        let stale = {
            let mut pool = lock(&self.pool);
            match live {
                Some(live) => {
                    pool.idle.push(live);
                    Vec::new()
                }
                None => {
                    let stale = std::mem::take(&mut pool.idle);
                    pool.open -= 1 + stale.len();
                    stale
                }
            }
        };
        self.freed.notify_all();
        drop(stale);
    }

    /// Runs `op` on a pooled session; a session fault drops the session (the next call
    /// opens another).
    fn with_session<T>(
        &self,
        op: impl FnOnce(&Live) -> cryptoki::error::Result<T>,
    ) -> std::result::Result<T, Fault> {
        let live = self.take().map_err(Fault::Store)?;
        match op(&live) {
            Ok(out) => {
                self.give_back(Some(live));
                Ok(out)
            }
            Err(e) => {
                self.give_back((!is_session_fault(&e)).then_some(live));
                Err(Fault::Op(e))
            }
        }
    }

    fn unavailable(&self, fault: Fault) -> KeyStoreError {
        match fault {
            Fault::Store(e) => e,
            Fault::Op(e) => self.token.unavailable(&e),
        }
    }
}

impl KeyStore for Pkcs11Store {
    fn describe(&self) -> String {
        format!("{}, key {:?}", self.token.name, self.key_label)
    }

    fn kek_id(&self) -> KekId {
        self.id
    }

    fn wrap(&self, context: &str, clear: &[u8]) -> Result<Vec<u8>> {
        let nonce: [u8; NONCE_BYTES] = *random::<NONCE_BYTES>()?;
        let sealed = self
            .with_session(|live| encrypt_gcm(live, &nonce, context, clear))
            .map_err(|fault| self.unavailable(fault))?;
        if sealed.len() != clear.len() + TAG_BYTES {
            return Err(KeyStoreError::Unavailable(format!(
                "{}: AES-GCM gave {} bytes for {}",
                self.token.name,
                sealed.len(),
                clear.len()
            )));
        }
        Ok(envelope::build(self.id, &nonce, &sealed))
    }

    fn unwrap(&self, context: &str, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let parts = envelope::parse(context, wrapped)?;
        parts.kek_id.must_be(self.id)?;
        self.with_session(|live| decrypt_gcm(live, &parts.nonce, context, parts.sealed))
            .map(Zeroizing::new)
            .map_err(|fault| match fault {
                Fault::Op(ref e) if !is_session_fault(e) => KeyStoreError::Damaged {
                    context: context.to_owned(),
                },
                fault => self.unavailable(fault),
            })
    }

    /// The token's [`TokenMacs`], under the key labelled [`MAK_WRAP_LABEL`].
    fn mac_device(&self) -> Result<Option<Arc<dyn MacDevice>>> {
        let mut macs = lock(&self.macs);
        if macs.is_none() {
            let opened = TokenMacs::open(self.token.clone(), MAK_WRAP_LABEL.to_owned())?;
            *macs = Some(Arc::new(opened));
        }
        Ok(macs.clone().map(|m| m as Arc<dyn MacDevice>))
    }
}
