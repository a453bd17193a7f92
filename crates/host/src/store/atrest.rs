//! The ledger's secrets at rest (DESIGN.md, invariant 8): terminal master and working keys
//! wrapped under the key-encryption key, card numbers encrypted and found by keyed hash,
//! the PIN verification key wrapped too. [`AtRest`] holds what the key store unwrapped —
//! the card vault's data keys and the PIN key — for the process's life, so that nothing
//! on the request path waits for the key store but a terminal's first request after a
//! start or a sign-in.
//!
//! The `meta` table keeps the KEK's id (`kek_id`), the wrapped data keys and the wrapped
//! PIN key. A KEK whose id differs is refused before anything is written.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use poskit_keystore::{
    CardVault, DataKeys, KekId, KeyStore, KeyStoreError, MacDevice, envelope, hsm_mac,
};
use poskit_security::SecretKey;

use super::{StoreError, StoreResult};
use crate::mackey::{HeldMac, MacKey};
use crate::pinhash::{PVK_BYTES, PinHasher};

const META_KEK_ID: &str = "kek_id";
const META_CARD_KEY: &str = "card_key";
const META_CARD_HASH_KEY: &str = "card_hash_key";
const META_PIN_KEY: &str = "pin_key";
const META_ROTATED_MS: &str = "kek_rotated_ms";
const PIN_KEY_CONTEXT: &str = "pin-verification-key";

/// Which of a terminal's keys a wrapped value is (the context it is wrapped for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRole {
    Tmk,
    Pik,
    Mak,
}

impl KeyRole {
    fn context(self, tid: &str) -> String {
        let role = match self {
            KeyRole::Tmk => "tmk",
            KeyRole::Pik => "pik",
            KeyRole::Mak => "mak",
        };
        format!("{role}:{tid}")
    }
}

/// The unwrapped secrets of one ledger, and the key store that wraps new ones.
pub struct AtRest {
    store: Arc<dyn KeyStore>,
    vault: CardVault,
    pins: Arc<PinHasher>,
    /// The HSM that holds the terminals' MAKs, when the key store has one.
    macs: Option<Arc<dyn MacDevice>>,
}

impl std::fmt::Debug for AtRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AtRest({})", self.store.kek_id())
    }
}

impl From<KeyStoreError> for StoreError {
    fn from(e: KeyStoreError) -> StoreError {
        StoreError::Keys(e.to_string())
    }
}

/// A card as stored: its encrypted `PAN=expiry`, keyed hash and last four digits.
pub struct SealedCard {
    pub hash: String,
    pub last4: String,
    pub sealed: Vec<u8>,
}

impl AtRest {
    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    pub fn pins(&self) -> &Arc<PinHasher> {
        &self.pins
    }

    /// `key` wrapped as terminal `tid`'s key of `role`.
    pub fn wrap_key(&self, role: KeyRole, tid: &str, key: &SecretKey) -> StoreResult<Vec<u8>> {
        Ok(self
            .store
            .wrap(&role.context(tid), key.dangerous_expose())?)
    }

    /// Terminal `tid`'s key of `role`, unwrapped.
    pub fn unwrap_key(&self, role: KeyRole, tid: &str, wrapped: &[u8]) -> StoreResult<SecretKey> {
        let clear = self.store.unwrap(&role.context(tid), wrapped)?;
        SecretKey::from_bytes(&clear).map_err(|_| {
            StoreError::Corrupt(format!("terminal {tid}: a wrapped key of bad length"))
        })
    }

    /// Terminal `tid`'s MAK as stored: the key as delivered, wrapped (`mak_delivered`) —
    /// or, with an HSM, the key as MACs use it (`mac_key`) put into the HSM and the form it
    /// gave wrapped. Returns the stored value and the key MACs are computed with.
    pub fn wrap_mak(
        &self,
        tid: &str,
        mak_delivered: &SecretKey,
        mac_key: &SecretKey,
    ) -> StoreResult<(Vec<u8>, MacKey)> {
        let context = KeyRole::Mak.context(tid);
        match &self.macs {
            Some(device) => {
                let held = device.provision(mac_key.dangerous_expose())?;
                let stored = self.store.wrap(&context, &held)?;
                Ok((stored, MacKey::Held(HeldMac::new(device.clone(), held))))
            }
            None => Ok((
                self.store
                    .wrap(&context, mak_delivered.dangerous_expose())?,
                MacKey::Clear(mac_key.clone()),
            )),
        }
    }

    /// Terminal `tid`'s stored MAK ([`AtRest::wrap_mak`]): clear as delivered, or held by the
    /// HSM. `None` for a MAK held by an HSM this host does not use (its keys moved out of
    /// it): the terminal must sign in again.
    pub fn unwrap_mak(&self, tid: &str, wrapped: &[u8]) -> StoreResult<Option<MacKey>> {
        let clear = self.store.unwrap(&KeyRole::Mak.context(tid), wrapped)?;
        if !hsm_mac::is_held(&clear) {
            let key = SecretKey::from_bytes(&clear).map_err(|_| {
                StoreError::Corrupt(format!("terminal {tid}: a wrapped MAK of bad length"))
            })?;
            return Ok(Some(MacKey::Clear(key)));
        }
        Ok(self
            .macs
            .as_ref()
            .map(|device| MacKey::Held(HeldMac::new(device.clone(), clear.to_vec()))))
    }

    /// Whether the terminals' MAKs are held by an HSM.
    pub fn macs_in_hsm(&self) -> bool {
        self.macs.is_some()
    }

    /// The keyed hash a card is found by (hex).
    pub fn pan_hash(&self, pan: &str) -> String {
        self.vault.hash(pan).to_hex()
    }

    /// A card number and expiry as the cards table keeps them.
    pub fn seal_card(&self, pan: &str, expiry: &str) -> StoreResult<SealedCard> {
        let clear = Zeroizing::new(format!("{pan}={expiry}"));
        Ok(SealedCard {
            hash: self.pan_hash(pan),
            last4: poskit_keystore::vault::last4(pan).to_owned(),
            sealed: self.vault.encrypt(&clear)?,
        })
    }

    /// The card number and expiry of a sealed card.
    pub fn open_card(&self, sealed: &[u8]) -> StoreResult<(Zeroizing<String>, String)> {
        let clear = self.vault.decrypt(sealed)?;
        let (pan, expiry) = clear
            .split_once('=')
            .ok_or_else(|| StoreError::Corrupt("a sealed card without its expiry".into()))?;
        Ok((Zeroizing::new(pan.to_owned()), expiry.to_owned()))
    }
}

/// Registers `pan_hash(pan)` on `conn`: the keyed hash a card is found by, so that an
/// operator's (or a test's) SQL can find a card by its number without it being stored.
pub fn register_functions(conn: &Connection, keys: &Arc<AtRest>) -> StoreResult<()> {
    use rusqlite::functions::FunctionFlags;
    let keys = keys.clone();
    conn.create_scalar_function(
        "pan_hash",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| {
            let pan = Zeroizing::new(ctx.get::<String>(0)?);
            Ok(keys.pan_hash(&pan))
        },
    )?;
    Ok(())
}

fn meta(conn: &Connection, key: &str) -> StoreResult<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

fn set_meta(conn: &Connection, key: &str, value: &str) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
        params![key, value],
    )?;
    Ok(())
}

fn meta_blob(conn: &Connection, key: &str) -> StoreResult<Vec<u8>> {
    let text = meta(conn, key)?
        .ok_or_else(|| StoreError::Corrupt(format!("meta {key} is missing beside kek_id")))?;
    hex::decode(text).map_err(|_| StoreError::Corrupt(format!("meta {key} is not hex")))
}

/// The KEK id the ledger's keys are wrapped under, if they are wrapped at all yet.
pub fn wrapped_under(conn: &Connection) -> StoreResult<Option<KekId>> {
    meta(conn, META_KEK_ID)?
        .map(|t| {
            t.parse()
                .map_err(|_| StoreError::Corrupt("meta kek_id".into()))
        })
        .transpose()
}

/// Opens the ledger's secrets with `store`. A ledger never opened with keys gets fresh data
/// keys and its PIN key (from `pvk_file`, the file earlier versions kept it in, when
/// present) wrapped under `store`, in one transaction. A ledger wrapped under another KEK
/// is refused with nothing written.
pub fn load(conn: &Connection, store: Arc<dyn KeyStore>, pvk_file: &Path) -> StoreResult<AtRest> {
    match wrapped_under(conn)? {
        Some(id) => id.must_be(store.kek_id())?,
        None => first_wrap(conn, store.as_ref(), pvk_file)?,
    }
    let keys = DataKeys {
        encryption: meta_blob(conn, META_CARD_KEY)?,
        hash: meta_blob(conn, META_CARD_HASH_KEY)?,
    };
    let vault = CardVault::open(store.as_ref(), &keys)?;
    let pin = store.unwrap(PIN_KEY_CONTEXT, &meta_blob(conn, META_PIN_KEY)?)?;
    let pin: [u8; PVK_BYTES] = pin[..]
        .try_into()
        .map_err(|_| StoreError::Corrupt("the PIN verification key has a bad length".into()))?;
    let pins = Arc::new(PinHasher::from_key(pin));
    let macs = store.mac_device()?;
    Ok(AtRest {
        store,
        vault,
        pins,
        macs,
    })
}

fn first_wrap(conn: &Connection, store: &dyn KeyStore, pvk_file: &Path) -> StoreResult<()> {
    let pin = match std::fs::read(pvk_file) {
        Ok(bytes) if bytes.len() == PVK_BYTES => Zeroizing::new(bytes),
        Ok(_) => {
            return Err(StoreError::Corrupt(format!(
                "{}: a PIN verification key must be {PVK_BYTES} bytes",
                pvk_file.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Zeroizing::new(poskit_keystore::random::<PVK_BYTES>()?.to_vec())
        }
        Err(e) => return Err(StoreError::Keys(format!("{}: {e}", pvk_file.display()))),
    };
    let keys = DataKeys::generate(store)?;
    let tx = conn.unchecked_transaction()?;
    set_meta(&tx, META_CARD_KEY, &hex::encode(&keys.encryption))?;
    set_meta(&tx, META_CARD_HASH_KEY, &hex::encode(&keys.hash))?;
    set_meta(
        &tx,
        META_PIN_KEY,
        &hex::encode(store.wrap(PIN_KEY_CONTEXT, &pin)?),
    )?;
    set_meta(&tx, META_KEK_ID, &store.kek_id().to_string())?;
    tx.commit()?;
    Ok(())
}

/// Rewrites every terminal key on file through `f` (role, terminal, stored value).
fn rewrite_terminal_keys(
    conn: &Connection,
    mut f: impl FnMut(KeyRole, &str, Vec<u8>) -> StoreResult<Vec<u8>>,
) -> StoreResult<()> {
    type Row = (String, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);
    let rows: Vec<Row> = conn
        .prepare("SELECT tid, tmk, pik, mak FROM terminals")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (tid, tmk, pik, mak) in rows {
        let was = (tmk.clone(), pik.clone(), mak.clone());
        let tmk = f(KeyRole::Tmk, &tid, tmk)?;
        let pik = pik.map(|v| f(KeyRole::Pik, &tid, v)).transpose()?;
        let mak = mak.map(|v| f(KeyRole::Mak, &tid, v)).transpose()?;
        if (&tmk, &pik, &mak) == (&was.0, &was.1, &was.2) {
            continue;
        }
        // Only if the row is still what was read: a running host may have signed the
        // terminal in since (its new keys are wrapped already).
        conn.prepare_cached(
            "UPDATE terminals SET tmk = ?2, pik = ?3, mak = ?4
             WHERE tid = ?1 AND tmk = ?5 AND pik IS ?6 AND mak IS ?7",
        )?
        .execute(params![tid, tmk, pik, mak, was.0, was.1, was.2])?;
    }
    Ok(())
}

/// Wraps, in place, every terminal key still kept in clear (a ledger of an earlier
/// version); returns how many keys it wrapped.
pub fn wrap_clear_terminal_keys(conn: &Connection, keys: &AtRest) -> StoreResult<usize> {
    let mut wrapped = 0;
    rewrite_terminal_keys(conn, |role, tid, value| {
        let value = Zeroizing::new(value);
        if envelope::is_envelope(&value) {
            return Ok(value.to_vec());
        }
        wrapped += 1;
        let key = SecretKey::from_bytes(&value)
            .map_err(|_| StoreError::Corrupt(format!("terminal {tid}: a key of bad length")))?;
        keys.wrap_key(role, tid, &key)
    })?;
    Ok(wrapped)
}

/// What `poskit keys status` shows of a ledger.
#[derive(Debug, serde::Serialize)]
pub struct Status {
    pub kek_id: Option<String>,
    pub rotated_ms: Option<i64>,
    pub terminal_keys_wrapped: i64,
    pub terminal_keys_clear: i64,
    /// Terminals whose MAK is held by an HSM (the ledger keeps only the HSM's form of it).
    pub terminal_maks_in_hsm: i64,
    pub cards_encrypted: i64,
}

/// Bytes of a wrapped MAK in the form an HSM holds it, for a key of `key_bytes`: its
/// length tells it from a clear key's (see `hsm_mac::is_held`).
fn held_len(key_bytes: usize) -> i64 {
    let envelope = 1 + 8 + envelope::NONCE_BYTES + envelope::TAG_BYTES;
    (envelope + hsm_mac::held_bytes(key_bytes)) as i64
}

/// The ledger's key status, read without the KEK.
pub fn status(conn: &Connection) -> StoreResult<Status> {
    let count = |sql: &str| -> StoreResult<i64> { Ok(conn.query_row(sql, [], |r| r.get(0))?) };
    let wrapped_len = (1 + 8 + envelope::NONCE_BYTES + envelope::TAG_BYTES) as i64;
    let keys_where = |cond: &str| {
        format!(
            "SELECT (SELECT count(*) FROM terminals WHERE length(tmk) {cond} {wrapped_len})
                  + (SELECT count(*) FROM terminals WHERE pik IS NOT NULL AND length(pik) {cond} {wrapped_len})
                  + (SELECT count(*) FROM terminals WHERE mak IS NOT NULL AND length(mak) {cond} {wrapped_len})"
        )
    };
    Ok(Status {
        kek_id: wrapped_under(conn)?.map(|id| id.to_string()),
        rotated_ms: meta(conn, META_ROTATED_MS)?.and_then(|t| t.parse().ok()),
        terminal_keys_wrapped: count(&keys_where(">="))?,
        terminal_keys_clear: count(&keys_where("<"))?,
        terminal_maks_in_hsm: count(&format!(
            "SELECT count(*) FROM terminals WHERE length(mak) IN ({}, {})",
            held_len(8),
            held_len(24)
        ))?,
        cards_encrypted: count("SELECT count(*) FROM cards")?,
    })
}

/// Re-wraps every key of the ledger from `from` to `to` in one transaction (a KEK
/// rotation): the terminals' keys, the data keys and the PIN key, and records `to`'s id.
/// Card numbers stay as they are: their data key is what moves. Returns the keys re-wrapped.
pub fn rotate(
    conn: &Connection,
    from: &dyn KeyStore,
    to: &dyn KeyStore,
    now_ms: i64,
) -> StoreResult<usize> {
    match wrapped_under(conn)? {
        Some(id) => id.must_be(from.kek_id())?,
        None => {
            return Err(StoreError::Keys(
                "the ledger's keys are not wrapped yet: start the host once first".into(),
            ));
        }
    }
    let tx = conn.unchecked_transaction()?;
    let mut moved = 0;
    rewrite_terminal_keys(&tx, |role, tid, blob| {
        moved += 1;
        Ok(poskit_keystore::rewrap(
            from,
            to,
            &role.context(tid),
            &blob,
        )?)
    })?;
    let keys = DataKeys {
        encryption: meta_blob(&tx, META_CARD_KEY)?,
        hash: meta_blob(&tx, META_CARD_HASH_KEY)?,
    }
    .rewrap(from, to)?;
    set_meta(&tx, META_CARD_KEY, &hex::encode(&keys.encryption))?;
    set_meta(&tx, META_CARD_HASH_KEY, &hex::encode(&keys.hash))?;
    let pin = poskit_keystore::rewrap(from, to, PIN_KEY_CONTEXT, &meta_blob(&tx, META_PIN_KEY)?)?;
    set_meta(&tx, META_PIN_KEY, &hex::encode(pin))?;
    set_meta(&tx, META_KEK_ID, &to.kek_id().to_string())?;
    set_meta(&tx, META_ROTATED_MS, &now_ms.to_string())?;
    tx.commit()?;
    Ok(moved + 3)
}

/// Stored replies of an earlier version kept the card number (field 2, echoed to the
/// terminal): stored again without it (a resend takes it from the request).
pub fn forget_reply_pans(conn: &Connection) -> StoreResult<usize> {
    /// Rows read at a time: a ledger of ten million rows is not read into memory at once.
    const CHUNK_ROWS: i64 = 10_000;
    let mut select = conn.prepare(
        "SELECT id, reply FROM transactions WHERE id > ?1 AND reply IS NOT NULL
         ORDER BY id LIMIT ?2",
    )?;
    let mut update = conn.prepare("UPDATE transactions SET reply = ?2 WHERE id = ?1")?;
    let (mut after, mut forgotten) = (i64::MIN, 0);
    loop {
        let rows: Vec<(i64, Vec<u8>)> = select
            .query_map(params![after, CHUNK_ROWS], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let Some(&(last, _)) = rows.last() else {
            return Ok(forgotten);
        };
        after = last;
        for (id, stored) in rows {
            let Some(reply) = crate::response::Reply::from_stored(&stored) else {
                continue;
            };
            if reply.keeps_pan() {
                update.execute(params![id, reply.to_stored()])?;
                forgotten += 1;
            }
        }
    }
}

/// The card table as this version keeps it (schema 13): no card number, no expiry in
/// clear.
pub const SEALED_CARDS_SQL: &str = "CREATE TABLE cards_sealed (
    id INTEGER PRIMARY KEY,
    pan_hash TEXT NOT NULL UNIQUE,
    pan_last4 TEXT NOT NULL,
    sealed BLOB NOT NULL,
    status TEXT NOT NULL,
    pin_hash TEXT,
    pin_tries_max INTEGER NOT NULL,
    pin_tries_used INTEGER NOT NULL DEFAULT 0,
    daily_count_max INTEGER,
    permitted TEXT,
    label TEXT NOT NULL,
    account INTEGER NOT NULL REFERENCES accounts(id),
    card_type TEXT NOT NULL DEFAULT 'debit'
) STRICT";

/// Rebuilds the cards table without card numbers: each row's number and expiry sealed,
/// found by keyed hash. Needs `keys` only when there are cards.
pub fn seal_cards(conn: &Connection, keys: Option<&AtRest>) -> StoreResult<()> {
    let clear: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('cards') WHERE name = 'pan')",
        [],
        |r| r.get(0),
    )?;
    if !clear {
        return Ok(());
    }
    conn.execute_batch(SEALED_CARDS_SQL)?;
    let rows: Vec<(i64, Zeroizing<String>, String)> = conn
        .prepare("SELECT id, pan, expiry FROM cards")?
        .query_map([], |r| {
            Ok((r.get(0)?, Zeroizing::new(r.get::<_, String>(1)?), r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (id, pan, expiry) in rows {
        let keys = keys.ok_or_else(|| StoreError::Keys("cards to seal and no key store".into()))?;
        let card = keys.seal_card(&pan, &expiry)?;
        conn.execute(
            "INSERT INTO cards_sealed (id, pan_hash, pan_last4, sealed, status, pin_hash,
                 pin_tries_max, pin_tries_used, daily_count_max, permitted, label, account, card_type)
             SELECT id, ?2, ?3, ?4, status, pin_hash, pin_tries_max, pin_tries_used,
                 daily_count_max, permitted, label, account, card_type FROM cards WHERE id = ?1",
            params![id, card.hash, card.last4, card.sealed],
        )?;
    }
    conn.execute_batch(
        "DROP TABLE cards;
         ALTER TABLE cards_sealed RENAME TO cards;",
    )?;
    Ok(())
}
