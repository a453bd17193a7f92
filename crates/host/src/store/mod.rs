//! The ledger store: what the engine reads and writes inside one database transaction.
//!
//! [`Ledger`] is the boundary: the engine only ever talks to it, so a PostgreSQL store can
//! follow the SQLite one ([`sqlite`]) and be run through the same tests. A `Ledger` is
//! always inside a transaction the caller opened; the caller commits (group commit) and
//! only then are responses written.

pub mod atrest;
pub mod books;
pub mod lookup;
pub mod postings;
pub mod sqlite;
pub mod traces;

use std::sync::Arc;

use poskit_domain::{Batch, Mid, Pan, Stan, Tid, TransactionKind};
use poskit_security::SecretKey;

use crate::mackey::MacKey;
use crate::model::{CardStatus, ExternalIssuer, MerchantStatus, TerminalStatus};

/// A storage failure: the host answers 96 and posts nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("injected storage failure (fault plan)")]
    Injected,
    /// SQLite did not confirm a setting the ledger's durability relies on.
    #[error("the database is not set up as the ledger needs: {0}")]
    Settings(String),
    /// The key store refused or could not be reached (answered 96 on the request path).
    #[error("{0}")]
    Keys(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A terminal as the engine needs it.
#[derive(Clone, Debug)]
pub struct TerminalState {
    pub tid: Tid,
    pub mid: Mid,
    pub status: TerminalStatus,
    pub tmk: SecretKey,
    /// PIK and MAK after a sign-in: the MAK as delivered, or held by an HSM
    /// ([`MacKey::as_used`] gives the key MACs are computed with).
    pub keys: Option<(SecretKey, MacKey)>,
    pub batch: Batch,
    pub txn_limit_fen: Option<u64>,
    pub permitted: Option<Vec<TransactionKind>>,
}

#[derive(Clone, Debug)]
pub struct MerchantState {
    pub mid: Mid,
    pub name: String,
    /// Merchant category code (ISO 18245).
    pub mcc: String,
    pub status: MerchantStatus,
    pub txn_limit_fen: Option<u64>,
    pub daily_limit_fen: Option<u64>,
    pub account: i64,
    /// Field 49 values the merchant accepts (ISO 4217 numeric); never empty.
    pub currencies: Vec<[u8; 3]>,
}

#[derive(Clone, Debug)]
pub struct CardState {
    pub id: i64,
    pub pan: Pan,
    pub expiry: String,
    pub status: CardStatus,
    pub pin_hash: Option<String>,
    pub pin_tries_max: u8,
    pub pin_tries_used: u8,
    pub daily_count_max: Option<u32>,
    pub permitted: Option<Vec<TransactionKind>>,
    pub account: i64,
}

#[derive(Clone, Debug)]
pub struct InstitutionState {
    pub code: String,
    pub name: String,
    pub external: Option<ExternalIssuer>,
}

/// What happened to a transaction after it was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnState {
    Approved,
    Declined,
    /// Undone by a reversal.
    Reversed,
    /// A sale or completion undone by a void.
    Voided,
    /// A pre-authorization cancelled or completed: its hold is released.
    Closed,
    /// A reversal that found no original: the original, arriving late, cannot post.
    Tombstone,
}

impl TxnState {
    pub const fn as_str(self) -> &'static str {
        match self {
            TxnState::Approved => "approved",
            TxnState::Declined => "declined",
            TxnState::Reversed => "reversed",
            TxnState::Voided => "voided",
            TxnState::Closed => "closed",
            TxnState::Tombstone => "tombstone",
        }
    }

    pub fn parse(text: &str) -> Option<TxnState> {
        [
            TxnState::Approved,
            TxnState::Declined,
            TxnState::Reversed,
            TxnState::Voided,
            TxnState::Closed,
            TxnState::Tombstone,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// The idempotency key of §4.3: terminal, merchant, batch, trace and message class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TxnKey {
    pub tid: Tid,
    pub mid: Mid,
    pub batch: Batch,
    pub stan: Stan,
    /// The request MTI (`0200`, `0400`, ...).
    pub class: [u8; 4],
}

/// A recorded transaction.
#[derive(Clone, Debug)]
pub struct TxnRecord {
    pub id: i64,
    pub kind: Option<TransactionKind>,
    pub reversal: bool,
    pub tid: Option<String>,
    pub mid: Option<String>,
    pub batch: Option<u32>,
    pub stan: Option<u32>,
    pub request_hash: Option<String>,
    pub amount_fen: Option<u64>,
    pub card_id: Option<i64>,
    pub rrn: Option<String>,
    pub auth_code: Option<String>,
    pub day: i64,
    pub mmdd: String,
    pub hhmmss: String,
    pub code: String,
    pub state: TxnState,
    pub original_id: Option<i64>,
    pub refunded_fen: u64,
    /// Forwarded to the switch (a card of an external issuer).
    pub fwd: bool,
    /// The first answer, to send again on a resend (its MAC is recomputed with the
    /// current MAK).
    pub answer: Option<StoredAnswer>,
}

/// A transaction's first answer as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredAnswer {
    /// Its fields, as `Reply::to_stored` gives them; encoded when sent (schema 6 on).
    Reply(Vec<u8>),
    /// The frame as it was sent (rows written before schema 6).
    Frame(Vec<u8>),
}

/// A transaction about to be recorded.
#[derive(Clone, Debug)]
pub struct NewTxn<'a> {
    /// Set when the request is subject to idempotency; `None` for answers given before the
    /// key could be trusted (unknown terminal, bad MAC, format error, batch mismatch).
    pub key: Option<TxnKey>,
    pub kind: Option<TransactionKind>,
    pub reversal: bool,
    pub tid: Option<&'a str>,
    pub mid: Option<&'a str>,
    pub batch: Option<u32>,
    pub stan: Option<u32>,
    pub mti: &'a str,
    pub request_hash: Option<&'a str>,
    pub amount_fen: Option<u64>,
    pub card_id: Option<i64>,
    pub pan_masked: Option<&'a str>,
    pub auth_code: Option<&'a str>,
    pub day: i64,
    pub mmdd: &'a str,
    pub hhmmss: &'a str,
    pub created_ms: i64,
    pub code: &'a str,
    pub reason: &'a str,
    pub state: TxnState,
    pub original_id: Option<i64>,
    /// Forwarded to the switch (a card of an external issuer).
    pub fwd: bool,
}

/// Settlement totals (§4.4): debits are sales and completions, credits are refunds,
/// voids and completion voids; reversed transactions count nowhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub debit_fen: u64,
    pub debit_count: u32,
    pub credit_fen: u64,
    pub credit_count: u32,
}

/// One line of a batch upload (0320) as the terminal sent it.
#[derive(Clone, Debug)]
pub struct UploadedDetail {
    pub stan: u32,
    pub pan_masked: String,
    pub amount_fen: u64,
}

/// A card a pick-up answer told the merchant to retain.
#[derive(Clone, Debug)]
pub struct RetainedCard<'a> {
    pub txn_id: i64,
    pub pan_masked: &'a str,
    pub tid: &'a str,
    pub mid: &'a str,
    pub code: &'a str,
    pub reason: &'a str,
    pub created_ms: i64,
    /// By when the card is to be handed to the acquirer.
    pub due_ms: i64,
}

/// The engine's view of storage, inside one transaction.
pub trait Ledger {
    // Master data.
    // Master data is shared, not copied: the writer keeps it between requests and hands out
    // the same value to each.
    fn terminal(&mut self, tid: &Tid) -> StoreResult<Option<Arc<TerminalState>>>;
    fn merchant(&mut self, mid: &Mid) -> StoreResult<Option<Arc<MerchantState>>>;
    fn card(&mut self, pan: &Pan) -> StoreResult<Option<Arc<CardState>>>;
    /// The institution whose BIN is the longest prefix of `pan`.
    fn institution_for(&mut self, pan: &Pan) -> StoreResult<Option<Arc<InstitutionState>>>;
    /// Stores the working keys a sign-in issued: the PIK, the MAK as delivered and the key
    /// MACs are computed with (`mac_key`, by the MAK rule). Returns the MAC key to use from
    /// now on: `mac_key` itself, or the same key held by an HSM.
    fn set_working_keys(
        &mut self,
        tid: &Tid,
        pik: &SecretKey,
        mak: &SecretKey,
        mac_key: &SecretKey,
        now_ms: i64,
    ) -> StoreResult<MacKey>;
    fn clear_working_keys(&mut self, tid: &Tid) -> StoreResult<()>;
    fn set_terminal_batch(&mut self, tid: &Tid, batch: Batch) -> StoreResult<()>;
    fn set_pin_tries(&mut self, card_id: i64, tries_used: u8) -> StoreResult<()>;

    // Transactions.
    fn find_by_key(&mut self, key: &TxnKey) -> StoreResult<Option<TxnRecord>>;
    /// Any reversal recorded for this terminal, merchant, batch and trace.
    fn find_reversal_of(
        &mut self,
        tid: &Tid,
        mid: &Mid,
        batch: Batch,
        stan: Stan,
    ) -> StoreResult<Option<TxnRecord>>;
    /// The transaction of `kinds` with this trace at this terminal and merchant, in
    /// `batch` (or any batch when `None`), newest first.
    fn find_by_trace(
        &mut self,
        tid: &Tid,
        mid: &Mid,
        batch: Option<Batch>,
        stan: Stan,
        kinds: &[TransactionKind],
    ) -> StoreResult<Option<TxnRecord>>;
    /// The approved-or-since-changed transaction of `kinds` with this RRN at this merchant.
    fn find_by_rrn(
        &mut self,
        mid: &Mid,
        rrn: &str,
        kinds: &[TransactionKind],
    ) -> StoreResult<Option<TxnRecord>>;
    /// The pre-authorization with this authorization code for this card.
    fn find_pre_auth(
        &mut self,
        mid: &Mid,
        card_id: i64,
        auth_code: &str,
    ) -> StoreResult<Option<TxnRecord>>;
    fn txn(&mut self, id: i64) -> StoreResult<Option<TxnRecord>>;
    /// Records a transaction; returns its id (its RRN is derived from it). The store may
    /// hold the row back until its answer is set or [`Ledger::flush`].
    fn insert_txn(&mut self, txn: &NewTxn<'_>) -> StoreResult<i64>;
    /// Sets a transaction's RRN, its authorization code and its answer (`reply`: the
    /// answer's fields as `Reply::to_stored` gives them).
    fn set_txn_answer(
        &mut self,
        id: i64,
        rrn: &str,
        auth_code: Option<&str>,
        reply: Vec<u8>,
    ) -> StoreResult<()>;
    fn set_txn_state(&mut self, id: i64, state: TxnState) -> StoreResult<()>;
    fn add_refunded(&mut self, id: i64, amount_fen: u64) -> StoreResult<()>;
    /// Another answer for a request whose key was taken by a different one (94).
    fn note_txn_link(&mut self, id: i64, original_id: i64) -> StoreResult<()>;

    // Money.
    /// A balanced pair of postings: `amount_fen` from `debit` to `credit`, for `txn_id`.
    fn transfer(
        &mut self,
        txn_id: i64,
        debit: i64,
        credit: i64,
        amount_fen: u64,
    ) -> StoreResult<()>;
    /// Posts the exact negation of every posting of `original_id`, for `txn_id`.
    fn undo_postings(&mut self, txn_id: i64, original_id: i64) -> StoreResult<()>;
    fn balance(&mut self, account: i64) -> StoreResult<i64>;
    fn held(&mut self, account: i64) -> StoreResult<u64>;
    fn place_hold(&mut self, txn_id: i64, account: i64, amount_fen: u64) -> StoreResult<()>;
    /// Opens or releases the hold of a pre-authorization.
    fn set_hold_open(&mut self, txn_id: i64, open: bool) -> StoreResult<()>;
    fn hold_amount(&mut self, txn_id: i64) -> StoreResult<Option<(u64, bool)>>;
    /// Approved debits today at a merchant (for its daily limit), in fen.
    fn merchant_debits_on(&mut self, mid: &Mid, day: i64) -> StoreResult<u64>;
    /// Approved debits of a card today (for its frequency limit).
    fn card_debit_count_on(&mut self, card_id: i64, day: i64) -> StoreResult<u32>;

    // Settlement.
    fn batch_totals(&mut self, tid: &Tid, mid: &Mid, batch: Batch) -> StoreResult<Totals>;
    fn record_settlement(
        &mut self,
        tid: &Tid,
        batch: Batch,
        terminal: &Totals,
        host: &Totals,
        balanced: bool,
        now_ms: i64,
    ) -> StoreResult<()>;
    fn record_upload(
        &mut self,
        tid: &Tid,
        batch: Batch,
        detail: &UploadedDetail,
        now_ms: i64,
    ) -> StoreResult<()>;
    /// Closes the batch: marks its settlement finished with the number of uploaded details.
    fn close_batch(
        &mut self,
        tid: &Tid,
        batch: Batch,
        uploaded: u32,
        now_ms: i64,
    ) -> StoreResult<()>;

    /// The open chargeback of a transaction, if any: (dispute id, state). A disputed
    /// transaction cannot be refunded.
    fn open_chargeback_of(&mut self, txn_id: i64) -> StoreResult<Option<(i64, String)>>;

    /// Records a card the terminal was told to retain (a pick-up answer), once per
    /// transaction: what the merchant must do with it by `due_ms`.
    fn record_retained(&mut self, card: &RetainedCard<'_>) -> StoreResult<()>;

    /// Writes whatever the store held back for the request (a row waiting for its
    /// answer): the engine calls it once per request, after the answer is recorded.
    fn flush(&mut self) -> StoreResult<()>;
    /// Drops what the store held back for a request that failed (its transaction is about
    /// to be rolled back).
    fn discard(&mut self);
}
