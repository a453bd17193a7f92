//! A journal's secrets at rest (DESIGN.md, invariant 8): the master and working keys
//! wrapped under the terminal's key-encryption key, card numbers encrypted (with their
//! keyed hash and last four digits beside them), track data never written. The `keys`
//! table keeps the KEK's id and the wrapped data keys.
//!
//! A journal written by an earlier version (clear keys, card data as text, track 2) is
//! sealed in place when first opened: one transaction, with SQLite's `secure_delete` on so
//! that the old values do not stay in free pages, then a checkpoint that empties the WAL.

use std::sync::Arc;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use poskit_domain::message::CardData;
use poskit_keystore::{CardVault, DataKeys, KeyStore, KeyStoreError, envelope};
use poskit_security::SecretKey;

use crate::journal::{JournalError, Result};

pub(crate) const KEYS_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS keys (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    kek_id TEXT NOT NULL, card_key BLOB NOT NULL, card_hash_key BLOB NOT NULL
)";

/// Which key a wrapped journal value is.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Role {
    Tmk,
    Pik,
    Mak,
}

impl Role {
    fn context(self) -> &'static str {
        match self {
            Role::Tmk => "journal:tmk",
            Role::Pik => "journal:pik",
            Role::Mak => "journal:mak",
        }
    }
}

/// A card as a journal row keeps it.
pub(crate) struct SealedCard {
    pub kind: &'static str,
    pub data: Vec<u8>,
    pub last4: String,
    pub hash: String,
}

/// The journal's key store and card vault.
pub(crate) struct Sealed {
    store: Arc<dyn KeyStore>,
    vault: CardVault,
}

impl From<KeyStoreError> for JournalError {
    fn from(e: KeyStoreError) -> JournalError {
        JournalError::Keys(e.to_string())
    }
}

impl Sealed {
    /// The journal's secrets under `store`: data keys made on a journal's first keyed
    /// open; a journal wrapped under another KEK refused before anything is written.
    pub fn load(conn: &Connection, store: Arc<dyn KeyStore>) -> Result<Sealed> {
        conn.execute_batch(KEYS_SCHEMA)?;
        let row: Option<(String, Vec<u8>, Vec<u8>)> = conn
            .query_row(
                "SELECT kek_id, card_key, card_hash_key FROM keys WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let keys = match row {
            Some((id, encryption, hash)) => {
                id.parse::<poskit_keystore::KekId>()?
                    .must_be(store.kek_id())?;
                DataKeys { encryption, hash }
            }
            None => {
                let keys = DataKeys::generate(store.as_ref())?;
                conn.execute(
                    "INSERT INTO keys (id, kek_id, card_key, card_hash_key) VALUES (1, ?1, ?2, ?3)",
                    params![store.kek_id().to_string(), keys.encryption, keys.hash],
                )?;
                keys
            }
        };
        let vault = CardVault::open(store.as_ref(), &keys)?;
        Ok(Sealed { store, vault })
    }

    /// The id of the KEK the journal's keys are wrapped under, once they are.
    pub fn wrapped_under(conn: &Connection) -> Result<Option<poskit_keystore::KekId>> {
        conn.execute_batch(KEYS_SCHEMA)?;
        let id: Option<String> = conn
            .query_row("SELECT kek_id FROM keys WHERE id = 1", [], |r| r.get(0))
            .optional()?;
        Ok(id.map(|id| id.parse()).transpose()?)
    }

    /// Whether the journal was ever opened with keys (else a new KEK may be made for it).
    pub fn ever_wrapped(conn: &Connection) -> Result<bool> {
        conn.execute_batch(KEYS_SCHEMA)?;
        Ok(conn.query_row("SELECT EXISTS (SELECT 1 FROM keys)", [], |r| r.get(0))?)
    }

    pub fn store(&self) -> &dyn KeyStore {
        self.store.as_ref()
    }

    pub fn wrap(&self, role: Role, key: &[u8]) -> Result<Vec<u8>> {
        Ok(self.store.wrap(role.context(), key)?)
    }

    pub fn unwrap(&self, role: Role, blob: &[u8]) -> Result<SecretKey> {
        let clear = self.store.unwrap(role.context(), blob)?;
        SecretKey::from_bytes(&clear).map_err(|e| JournalError::Corrupt(e.to_string()))
    }

    /// What a row keeps of `card`: number and expiry encrypted, never track data.
    pub fn seal_card(&self, card: &CardData) -> Result<SealedCard> {
        let CardData::Kept {
            pan,
            expiry,
            swiped,
        } = card.kept()
        else {
            unreachable!("kept() gives Kept");
        };
        let clear = Zeroizing::new(format!("{pan}={expiry}"));
        Ok(SealedCard {
            kind: if swiped { "swiped" } else { "manual" },
            data: self.vault.encrypt(&clear)?,
            last4: poskit_keystore::vault::last4(&pan).to_owned(),
            hash: self.vault.hash(&pan).to_hex(),
        })
    }

    /// The card of a row: sealed (a blob), or the text an earlier version wrote.
    pub fn open_card(&self, kind: Option<String>, data: Option<Value>) -> Result<Option<CardData>> {
        let (Some(kind), Some(data)) = (kind, data) else {
            return Ok(None);
        };
        let text = match data {
            Value::Blob(blob) => self.vault.decrypt(&blob)?,
            Value::Text(text) => Zeroizing::new(text),
            _ => return Err(JournalError::Corrupt("card data of an unknown type".into())),
        };
        let card = match kind.as_str() {
            "track2" => CardData::Track2(text.to_string()).kept(),
            "swiped" | "manual" => {
                let (pan, expiry) = text.split_once('=').unwrap_or((&text, ""));
                CardData::Kept {
                    pan: pan.to_owned(),
                    expiry: expiry.to_owned(),
                    swiped: kind == "swiped",
                }
            }
            other => return Err(JournalError::Corrupt(format!("card kind {other:?}"))),
        };
        Ok(Some(card))
    }

    /// Seals in place whatever an earlier version left in clear; true when it sealed any.
    pub fn seal_legacy(&self, conn: &Connection) -> Result<bool> {
        if !has_column(conn, "txns", "card_hash")? {
            conn.execute_batch(
                "ALTER TABLE txns ADD COLUMN card_last4 TEXT;
                 ALTER TABLE txns ADD COLUMN card_hash TEXT;",
            )?;
        }
        let clear: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM txns WHERE typeof(card_data) = 'text')
                 OR EXISTS (SELECT 1 FROM reversal WHERE typeof(card_data) = 'text')
                 OR EXISTS (SELECT 1 FROM advices WHERE typeof(card_data) = 'text')
                 OR EXISTS (SELECT 1 FROM config WHERE length(tmk) < ?1)
                 OR EXISTS (SELECT 1 FROM state WHERE length(pik) < ?1 OR length(mak) < ?1)",
            [envelope::NONCE_BYTES + envelope::TAG_BYTES + 9],
            |r| r.get(0),
        )?;
        if !clear {
            return Ok(false);
        }
        conn.pragma_update(None, "secure_delete", true)?;
        let tx = conn.unchecked_transaction()?;
        self.seal_legacy_keys(&tx)?;
        for table in ["txns", "reversal", "advices"] {
            self.seal_legacy_cards(&tx, table)?;
        }
        tx.commit()?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(true)
    }

    fn seal_legacy_keys(&self, tx: &Connection) -> Result<()> {
        let tmk: Zeroizing<Vec<u8>> =
            Zeroizing::new(tx.query_row("SELECT tmk FROM config WHERE id = 1", [], |r| r.get(0))?);
        if !envelope::is_envelope(&tmk) {
            tx.execute(
                "UPDATE config SET tmk = ?1 WHERE id = 1",
                [self.wrap(Role::Tmk, &tmk)?],
            )?;
        }
        let (pik, mak): (Option<Vec<u8>>, Option<Vec<u8>>) =
            tx.query_row("SELECT pik, mak FROM state WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let seal = |role, value: Option<Vec<u8>>| -> Result<Option<Vec<u8>>> {
            match value.map(Zeroizing::new) {
                Some(v) if !envelope::is_envelope(&v) => self.wrap(role, &v).map(Some),
                other => Ok(other.map(|v| v.to_vec())),
            }
        };
        let (pik, mak) = (seal(Role::Pik, pik)?, seal(Role::Mak, mak)?);
        tx.execute(
            "UPDATE state SET pik = ?1, mak = ?2 WHERE id = 1",
            params![pik, mak],
        )?;
        Ok(())
    }

    fn seal_legacy_cards(&self, tx: &Connection, table: &str) -> Result<()> {
        let key = if table == "txns" { "id" } else { "txn_id" };
        let rows: Vec<(i64, Option<String>, Option<Value>)> = tx
            .prepare(&format!(
                "SELECT {key}, card_kind, card_data FROM {table} WHERE typeof(card_data) = 'text'"
            ))?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (id, kind, data) in rows {
            let Some(card) = self.open_card(kind, data)? else {
                continue;
            };
            let sealed = self.seal_card(&card)?;
            tx.execute(
                &format!("UPDATE {table} SET card_kind = ?2, card_data = ?3 WHERE {key} = ?1"),
                params![id, sealed.kind, sealed.data],
            )?;
            if table == "txns" {
                tx.execute(
                    "UPDATE txns SET card_last4 = ?2, card_hash = ?3 WHERE id = ?1",
                    params![id, sealed.last4, sealed.hash],
                )?;
            }
        }
        Ok(())
    }
}

/// Re-wraps the journal's keys from `from` to `to` in one transaction (a KEK rotation):
/// master key, working keys and data keys; card numbers stay as they are.
pub(crate) fn rotate(conn: &Connection, from: &dyn KeyStore, to: &dyn KeyStore) -> Result<usize> {
    let id: String = conn.query_row("SELECT kek_id FROM keys WHERE id = 1", [], |r| r.get(0))?;
    id.parse::<poskit_keystore::KekId>()?
        .must_be(from.kek_id())?;
    let tx = conn.unchecked_transaction()?;
    let again = |role: Role, blob: Vec<u8>| -> Result<Vec<u8>> {
        Ok(poskit_keystore::rewrap(from, to, role.context(), &blob)?)
    };
    let tmk: Vec<u8> = tx.query_row("SELECT tmk FROM config WHERE id = 1", [], |r| r.get(0))?;
    tx.execute(
        "UPDATE config SET tmk = ?1 WHERE id = 1",
        [again(Role::Tmk, tmk)?],
    )?;
    let (pik, mak): (Option<Vec<u8>>, Option<Vec<u8>>) =
        tx.query_row("SELECT pik, mak FROM state WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let pik = pik.map(|b| again(Role::Pik, b)).transpose()?;
    let mak = mak.map(|b| again(Role::Mak, b)).transpose()?;
    tx.execute(
        "UPDATE state SET pik = ?1, mak = ?2 WHERE id = 1",
        params![pik, mak],
    )?;
    // The master key, the working keys on file and the two data keys.
    let moved = 1 + usize::from(pik.is_some()) + usize::from(mak.is_some()) + 2;
    let (encryption, hash): (Vec<u8>, Vec<u8>) = tx.query_row(
        "SELECT card_key, card_hash_key FROM keys WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let keys = DataKeys { encryption, hash }.rewrap(from, to)?;
    tx.execute(
        "UPDATE keys SET kek_id = ?1, card_key = ?2, card_hash_key = ?3 WHERE id = 1",
        params![to.kek_id().to_string(), keys.encryption, keys.hash],
    )?;
    tx.commit()?;
    Ok(moved)
}

fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
        [table, column],
        |r| r.get(0),
    )?)
}
