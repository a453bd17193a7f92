//! The SQLite store: one database file in WAL mode in the data directory, schema migrations
//! by `user_version`, `synchronous = FULL` so that a commit is on disk before any response
//! that depends on it is written.

use std::path::Path;
use std::sync::Arc;

// The writer's maps: a fast hash, seeded per process, and every map bounded
// (`WRITER_CACHE_ENTRIES_MAX`) since card numbers in requests become keys.
use foldhash::HashMap;
use rusqlite::{CachedStatement, Connection, OptionalExtension, Row, params};

use poskit_domain::{Batch, Mid, Pan, Stan, Tid, TransactionKind};
use poskit_security::SecretKey;

use crate::clock::HostTime;
use crate::mackey::MacKey;

use super::atrest::{self, AtRest, KeyRole};
use super::traces::{TRACE_LOAD_ROWS_MAX, Trace, TraceFilter};
use super::{
    CardState, InstitutionState, Ledger, MerchantState, NewTxn, RetainedCard, StoreError,
    StoreResult, StoredAnswer, TerminalState, Totals, TxnKey, TxnRecord, TxnState, UploadedDetail,
};
use crate::model::{
    CardStatus, DataSet, ExternalIssuer, MerchantStatus, TerminalStatus, kinds_from_text,
    kinds_to_text,
};

/// The database file inside the data directory.
pub const DB_FILE: &str = "host.sqlite";

/// The day's totals per merchant as the transactions give them (what `merchant_counted`
/// counts): for schema 4's first fill and for `check`.
macro_rules! merchant_days_summed {
    () => {
        "SELECT mid, day, coalesce(sum(amount_fen), 0) AS debit_fen FROM transactions
         WHERE mid IS NOT NULL AND reversal = 0 AND state = 'approved'
           AND kind IN ('sale', 'completion')
         GROUP BY mid, day"
    };
}

/// The day's payments per card as the transactions give them (what `card_counted` counts).
macro_rules! card_days_summed {
    () => {
        "SELECT card_id, day, count(*) AS debit_count FROM transactions
         WHERE card_id IS NOT NULL AND reversal = 0 AND state IN ('approved', 'voided')
           AND kind IN ('sale', 'completion', 'pre-auth')
         GROUP BY card_id, day"
    };
}

/// A step from one schema version to the next: SQL, or a function for what SQL alone
/// cannot say (rebuilding every table).
enum Migration {
    Sql(&'static str),
    Rust(fn(&Connection) -> StoreResult<()>),
    /// A step that seals secrets: it needs the key store when there are rows to seal, and a
    /// connection opened without one stops before it (the host's keyed open finishes it).
    Keyed(fn(&Connection, Option<&AtRest>) -> StoreResult<()>),
}

/// Each migration takes the schema from version `index` to `index + 1`.
const MIGRATIONS: &[Migration] = &[
    Migration::Sql(
        r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('card', 'merchant', 'funding')),
    name TEXT NOT NULL UNIQUE,
    balance_fen INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE institutions (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    external INTEGER NOT NULL,
    latency_ms INTEGER NOT NULL,
    down INTEGER NOT NULL,
    account INTEGER NOT NULL REFERENCES accounts(id)
);
CREATE TABLE bins (
    prefix TEXT PRIMARY KEY,
    institution TEXT NOT NULL REFERENCES institutions(code)
);
CREATE TABLE merchants (
    mid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    mcc TEXT NOT NULL,
    status TEXT NOT NULL,
    txn_limit_fen INTEGER,
    daily_limit_fen INTEGER,
    account INTEGER NOT NULL REFERENCES accounts(id)
);
CREATE TABLE terminals (
    tid TEXT PRIMARY KEY,
    mid TEXT NOT NULL REFERENCES merchants(mid),
    status TEXT NOT NULL,
    tmk BLOB NOT NULL,
    pik BLOB,
    mak BLOB,
    batch INTEGER NOT NULL DEFAULT 1,
    signed_in_ms INTEGER,
    txn_limit_fen INTEGER,
    permitted TEXT
);
CREATE TABLE cards (
    id INTEGER PRIMARY KEY,
    pan TEXT NOT NULL UNIQUE,
    expiry TEXT NOT NULL,
    status TEXT NOT NULL,
    pin_hash TEXT,
    pin_tries_max INTEGER NOT NULL,
    pin_tries_used INTEGER NOT NULL DEFAULT 0,
    daily_count_max INTEGER,
    permitted TEXT,
    label TEXT NOT NULL,
    account INTEGER NOT NULL REFERENCES accounts(id)
);
CREATE TABLE transactions (
    id INTEGER PRIMARY KEY,
    kind TEXT,
    reversal INTEGER NOT NULL,
    mti TEXT NOT NULL,
    tid TEXT,
    mid TEXT,
    batch INTEGER,
    stan INTEGER,
    idem INTEGER NOT NULL,
    request_hash TEXT,
    amount_fen INTEGER,
    card_id INTEGER,
    pan_masked TEXT,
    rrn TEXT,
    auth_code TEXT,
    day INTEGER NOT NULL,
    mmdd TEXT NOT NULL,
    hhmmss TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    state TEXT NOT NULL,
    original_id INTEGER,
    refunded_fen INTEGER NOT NULL DEFAULT 0,
    response BLOB
);
CREATE UNIQUE INDEX transactions_key ON transactions (tid, mid, batch, stan, mti) WHERE idem = 1;
CREATE INDEX transactions_trace ON transactions (tid, mid, stan);
CREATE INDEX transactions_rrn ON transactions (mid, rrn);
CREATE INDEX transactions_auth ON transactions (mid, card_id, auth_code);
CREATE INDEX transactions_mid_day ON transactions (mid, day);
CREATE INDEX transactions_card_day ON transactions (card_id, day);
CREATE INDEX transactions_batch ON transactions (tid, batch);
CREATE TABLE postings (
    id INTEGER PRIMARY KEY,
    txn_id INTEGER NOT NULL REFERENCES transactions(id),
    account INTEGER NOT NULL REFERENCES accounts(id),
    amount_fen INTEGER NOT NULL
);
CREATE INDEX postings_txn ON postings (txn_id);
CREATE INDEX postings_account ON postings (account);
CREATE TABLE holds (
    txn_id INTEGER PRIMARY KEY REFERENCES transactions(id),
    account INTEGER NOT NULL REFERENCES accounts(id),
    amount_fen INTEGER NOT NULL,
    open INTEGER NOT NULL
);
CREATE INDEX holds_open ON holds (account) WHERE open = 1;
CREATE TABLE settlements (
    id INTEGER PRIMARY KEY,
    tid TEXT NOT NULL,
    batch INTEGER NOT NULL,
    terminal_debit_fen INTEGER NOT NULL,
    terminal_debit_count INTEGER NOT NULL,
    terminal_credit_fen INTEGER NOT NULL,
    terminal_credit_count INTEGER NOT NULL,
    host_debit_fen INTEGER NOT NULL,
    host_debit_count INTEGER NOT NULL,
    host_credit_fen INTEGER NOT NULL,
    host_credit_count INTEGER NOT NULL,
    balanced INTEGER NOT NULL,
    settled_ms INTEGER NOT NULL,
    uploaded INTEGER,
    closed_ms INTEGER
);
CREATE INDEX settlements_batch ON settlements (tid, batch);
CREATE TABLE uploads (
    id INTEGER PRIMARY KEY,
    tid TEXT NOT NULL,
    batch INTEGER NOT NULL,
    stan INTEGER NOT NULL,
    pan_masked TEXT NOT NULL,
    amount_fen INTEGER NOT NULL,
    received_ms INTEGER NOT NULL
);
CREATE TABLE fault_plan (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    plan TEXT NOT NULL,
    applied_version INTEGER NOT NULL DEFAULT 0
);
"#,
    ),
    Migration::Sql(
        r#"
-- What an account has on hold (open pre-authorizations), kept beside its balance so that an
-- authorization reads it instead of summing every open hold of the card.
ALTER TABLE accounts ADD COLUMN held_fen INTEGER NOT NULL DEFAULT 0;
UPDATE accounts SET held_fen =
    (SELECT coalesce(sum(h.amount_fen), 0) FROM holds h WHERE h.account = accounts.id AND h.open = 1);
"#,
    ),
    Migration::Sql(
        r#"
-- Fewer index entries per approval (each was a B-tree insert in the writer): a void finds
-- its original by the idempotency key (the open batch), a refund by its RRN, which is the
-- row id; batch totals use the key's (tid, mid, batch) prefix; only pre-authorizations are
-- indexed by auth code; postings by account were read only by `check`.
DROP INDEX IF EXISTS transactions_trace;
DROP INDEX IF EXISTS transactions_rrn;
DROP INDEX IF EXISTS transactions_batch;
DROP INDEX IF EXISTS transactions_auth;
DROP INDEX IF EXISTS postings_account;
CREATE INDEX transactions_pre_auth ON transactions (mid, card_id, auth_code) WHERE kind = 'pre-auth';
"#,
    ),
    Migration::Sql(concat!(
        r#"
-- The day's totals the limits read, kept as transactions change instead of summed from
-- every transaction of the day (each sale at a merchant with a daily limit read all of the
-- merchant's sales of that day). What counts is `merchant_counted` / `card_counted`.
CREATE TABLE merchant_days (
    mid TEXT NOT NULL,
    day INTEGER NOT NULL,
    debit_fen INTEGER NOT NULL,
    PRIMARY KEY (mid, day)
) WITHOUT ROWID;
CREATE TABLE card_days (
    card_id INTEGER NOT NULL,
    day INTEGER NOT NULL,
    debit_count INTEGER NOT NULL,
    PRIMARY KEY (card_id, day)
) WITHOUT ROWID;
"#,
        "INSERT INTO merchant_days (mid, day, debit_fen) ",
        merchant_days_summed!(),
        ";\nINSERT INTO card_days (card_id, day, debit_count) ",
        card_days_summed!(),
        r#";
DROP INDEX IF EXISTS transactions_mid_day;
DROP INDEX IF EXISTS transactions_card_day;
"#
    )),
    Migration::Sql(
        r#"
-- Postings stored in their transaction's order, keyed by (transaction, leg), without a
-- rowid, a secondary index or foreign keys: an approval's two legs are two B-tree inserts
-- where they were four, with no parent lookup per leg (the foreign-key checks alone were
-- 7 % of an authorization's instructions). `check` verifies what the foreign keys enforced:
-- every posting names a transaction and an account on file.
CREATE TABLE postings_by_txn (
    txn_id INTEGER NOT NULL,
    leg INTEGER NOT NULL,
    account INTEGER NOT NULL,
    amount_fen INTEGER NOT NULL,
    PRIMARY KEY (txn_id, leg)
) WITHOUT ROWID;
INSERT INTO postings_by_txn (txn_id, leg, account, amount_fen)
    SELECT txn_id, row_number() OVER (PARTITION BY txn_id ORDER BY id) - 1, account, amount_fen
    FROM postings;
DROP TABLE postings;
ALTER TABLE postings_by_txn RENAME TO postings;
"#,
    ),
    Migration::Sql(
        r#"
-- An answer is kept as its fields (`reply`), no longer as its frame (`response`, left on
-- the rows written before): the writer stores the fields and a connection task encodes
-- them, which took a tenth of the writer's instructions per authorization. A resend
-- encodes the same fields into the same frame.
ALTER TABLE transactions ADD COLUMN reply BLOB;
"#,
    ),
    // Every table STRICT (a value of the wrong type, such as a total that overflowed
    // into a float, is refused, not stored).
    Migration::Rust(make_strict),
    Migration::Sql(
        r#"
-- The currencies (field 49, ISO 4217 numeric, comma-separated) a merchant accepts: the host
-- never posts an amount in another (issue 17). The yuan unless set.
ALTER TABLE merchants ADD COLUMN currencies TEXT NOT NULL DEFAULT '156';
"#,
    ),
    Migration::Sql(
        r#"
-- Issue 19. `fwd`: the host forwarded the request to the switch (a card of an external
-- issuer); the STAN it gave the switch's message follows from the row id
-- (`switch::forward_stan_of`) and its transmission time is the row's mmdd and hhmmss.
ALTER TABLE transactions ADD COLUMN fwd INTEGER NOT NULL DEFAULT 0;
-- The switch's own record (crates/host/src/switch.rs writes it, nothing else does): what
-- it received from this acquirer, what it answered and what it clears, on its clearing day.
CREATE TABLE switch_messages (
    id INTEGER PRIMARY KEY,
    clearing_day INTEGER NOT NULL,
    fwd_stan INTEGER NOT NULL,
    fwd_time TEXT NOT NULL,
    mti TEXT NOT NULL,
    processing_code TEXT NOT NULL,
    kind TEXT NOT NULL,
    pan_masked TEXT NOT NULL,
    amount_fen INTEGER NOT NULL,
    tid TEXT NOT NULL,
    mid TEXT NOT NULL,
    mcc TEXT NOT NULL,
    merchant_name TEXT NOT NULL,
    rrn TEXT NOT NULL,
    auth_code TEXT NOT NULL,
    code TEXT NOT NULL,
    condition_code TEXT NOT NULL,
    entry_mode TEXT NOT NULL,
    original_stan INTEGER,
    original_time TEXT,
    issuer TEXT NOT NULL,
    acquirer TEXT NOT NULL,
    reversed INTEGER NOT NULL DEFAULT 0,
    voided INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX switch_messages_key ON switch_messages (fwd_stan, fwd_time);
CREATE INDEX switch_messages_day ON switch_messages (clearing_day);
-- Disputes and error transactions the switch records against this acquirer (AERRA): the
-- credit adjustments (E32) reconciliation sends.
CREATE TABLE switch_disputes (
    id INTEGER PRIMARY KEY,
    clearing_day INTEGER NOT NULL,
    error_type TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    fwd_stan INTEGER NOT NULL,
    fwd_time TEXT NOT NULL,
    pan_masked TEXT NOT NULL,
    amount_fen INTEGER NOT NULL,
    tid TEXT NOT NULL,
    mid TEXT NOT NULL,
    merchant_name TEXT NOT NULL,
    previous_rrn TEXT NOT NULL,
    previous_stan INTEGER NOT NULL,
    previous_time TEXT NOT NULL,
    previous_clearing_day INTEGER NOT NULL,
    previous_amount_fen INTEGER NOT NULL,
    reference TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX switch_disputes_day ON switch_disputes (clearing_day);
-- Credit adjustments reconciliation posted, by the break they resolve: posted once however
-- often reconciliation runs.
CREATE TABLE recon_adjustments (
    reference TEXT PRIMARY KEY,
    txn_id INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
) STRICT;
-- Reconciliation reads a clearing day's transactions by time.
CREATE INDEX transactions_created ON transactions (created_ms);
"#,
    ),
    Migration::Sql(
        r#"
-- Issue 20: `poskit lookup` finds a transaction from what a merchant or cardholder holds —
-- the slip's authorization code, the card's last digits and the amount on a day — and
-- its chain (reversal, void, refund, completion, adjustment name their original). Each
-- index costs the writer one B-tree insert where it applies.
CREATE INDEX transactions_auth_code ON transactions (auth_code) WHERE auth_code IS NOT NULL;
CREATE INDEX transactions_day_amount ON transactions (day, amount_fen);
CREATE INDEX transactions_original ON transactions (original_id) WHERE original_id IS NOT NULL;
CREATE INDEX switch_messages_rrn ON switch_messages (rrn);
CREATE INDEX uploads_trace ON uploads (tid, batch, stan);
-- Cards retained at a terminal (a pick-up answer: 04, 07, 41, 43, ...): what the merchant
-- must do with the card and by when (issue 20 §3).
CREATE TABLE retained_cards (
    txn_id INTEGER PRIMARY KEY,
    pan_masked TEXT NOT NULL,
    tid TEXT NOT NULL,
    mid TEXT NOT NULL,
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    due_ms INTEGER NOT NULL
) STRICT;
"#,
    ),
    Migration::Sql(
        r#"
-- Issue 20 §2: disputes (差错). A card is debit or credit (a debit card's chargeback cannot
-- be represented); a dispute is one case about one transaction, of one type, with its
-- E-code, reason code, state and deadline; every step of it is an event, and the step that
-- moves money names its ledger transaction (one per dispute and step: never posted twice).
ALTER TABLE cards ADD COLUMN card_type TEXT NOT NULL DEFAULT 'debit';
CREATE TABLE disputes (
    id INTEGER PRIMARY KEY,
    txn_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    e_code TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    state TEXT NOT NULL,
    amount_fen INTEGER NOT NULL,
    opened_ms INTEGER NOT NULL,
    due_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    reference TEXT UNIQUE,
    UNIQUE (txn_id, kind)
) STRICT;
CREATE TABLE dispute_events (
    id INTEGER PRIMARY KEY,
    dispute_id INTEGER NOT NULL REFERENCES disputes(id),
    step TEXT NOT NULL,
    e_code TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    note TEXT NOT NULL,
    evidence TEXT,
    posted_txn_id INTEGER,
    UNIQUE (dispute_id, step)
) STRICT;
CREATE INDEX disputes_due ON disputes (state, due_ms);
"#,
    ),
    // Issue 24: no card number, expiry or key in clear. Cards are found by keyed hash; the
    // terminals' keys are wrapped under the key-encryption key.
    Migration::Keyed(seal_at_rest),
];

fn seal_at_rest(conn: &Connection, keys: Option<&AtRest>) -> StoreResult<()> {
    // Freed pages are overwritten, so the old clear values do not stay in the file.
    conn.pragma_update(None, "secure_delete", true)?;
    atrest::seal_cards(conn, keys)?;
    atrest::forget_reply_pans(conn)?;
    if let Some(keys) = keys {
        atrest::wrap_clear_terminal_keys(conn, keys)?;
    }
    Ok(())
}

/// Whether the keyed step has rows to seal (and so needs the key store).
fn sealing_needs_keys(conn: &Connection) -> StoreResult<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM cards) OR EXISTS (SELECT 1 FROM terminals)",
        [],
        |r| r.get(0),
    )?)
}

/// Whether a transaction counts toward its merchant's debits of the day (daily limit):
/// approved sales and completions, not reversals.
fn merchant_counted(kind: Option<&str>, reversal: bool, state: TxnState) -> bool {
    !reversal && state == TxnState::Approved && matches!(kind, Some("sale" | "completion"))
}

/// Whether a transaction counts toward its card's payments of the day (frequency limit):
/// sales, completions and pre-authorizations approved or since voided, not reversals.
fn card_counted(kind: Option<&str>, reversal: bool, state: TxnState) -> bool {
    !reversal
        && matches!(state, TxnState::Approved | TxnState::Voided)
        && matches!(kind, Some("sale" | "completion" | "pre-auth"))
}

/// What a transaction adds to the day's totals.
#[derive(Clone, Copy)]
struct DayShare<'a> {
    kind: Option<&'a str>,
    reversal: bool,
    mid: Option<&'a str>,
    card_id: Option<i64>,
    day: i64,
    amount_fen: i64,
}

impl DayShare<'_> {
    /// How the day's totals move — merchant debits (times the amount), card payments —
    /// when this transaction goes from state `from` (`None`: it did not exist) to `to`.
    fn moves(&self, from: Option<TxnState>, to: TxnState) -> (i64, i64) {
        let sign = |was: bool, is: bool| i64::from(is) - i64::from(was);
        let counted = |f: fn(Option<&str>, bool, TxnState) -> bool| {
            sign(
                from.is_some_and(|s| f(self.kind, self.reversal, s)),
                f(self.kind, self.reversal, to),
            )
        };
        (counted(merchant_counted), counted(card_counted))
    }
}

/// `156,840` → the codes; `None` unless every one is 3 digits and there is one at least.
fn currencies_from_text(text: &str) -> Option<Vec<[u8; 3]>> {
    let codes: Option<Vec<[u8; 3]>> = text
        .split(',')
        .map(|c| {
            let c = c.trim().as_bytes();
            (c.len() == 3 && c.iter().all(u8::is_ascii_digit)).then(|| [c[0], c[1], c[2]])
        })
        .collect();
    codes.filter(|c| !c.is_empty())
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// The longest BIN prefix looked up, in digits.
const BIN_PREFIX_DIGITS_MAX: usize = 12;

/// The row id an RRN of this host names (twelve digits), if it is one.
fn rrn_id(rrn: &str) -> Option<i64> {
    if rrn.len() != 12 || !rrn.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rrn.parse().ok()
}

/// Prepared statements kept per connection.
const STATEMENT_CACHE_MAX: usize = 128;

/// Opens (creating when needed) the database of a data directory and brings its schema up
/// to date. Through SQLite's own VFS, in WAL mode with `synchronous = FULL` and normal
/// locking: the connection is refused if SQLite does not confirm all three, since a commit
/// must be on disk before any answer that depends on it leaves the host.
pub fn open(dir: &Path) -> StoreResult<Connection> {
    let path = dir.join(DB_FILE);
    poskit_keystore::files::private_database(&path)
        .map_err(|e| StoreError::Settings(format!("{}: {e}", path.display())))?;
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A larger page cache and fewer, larger checkpoints: the writer's time goes to pages.
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.pragma_update(None, "wal_autocheckpoint", 8_192)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Every statement of the ledger stays prepared (the default cache of 16 is smaller
    // than the set one authorization walks through).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_MAX);
    check_durable(&conn)?;
    migrate(&conn, None)?;
    Ok(conn)
}

/// Finishes the migrations a connection opened without the key store had to leave (the
/// keyed ones), then makes sure no clear key is left: for the host's keyed open.
pub fn migrate_keyed(conn: &Connection, keys: &AtRest) -> StoreResult<()> {
    migrate(conn, Some(keys))?;
    if atrest::wrap_clear_terminal_keys(conn, keys)? > 0 {
        tracing::warn!("terminal keys found in clear were wrapped under the key-encryption key");
    }
    Ok(())
}

/// `synchronous = FULL` as SQLite reports it.
const SYNCHRONOUS_FULL: i64 = 2;

/// Refuses a connection whose commits would not be durable or shared as the host needs:
/// WAL journal, `synchronous = FULL`, normal (not exclusive) locking.
fn check_durable(conn: &Connection) -> StoreResult<()> {
    let journal: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
    let locking: String = conn.pragma_query_value(None, "locking_mode", |r| r.get(0))?;
    if !journal.eq_ignore_ascii_case("wal")
        || synchronous != SYNCHRONOUS_FULL
        || !locking.eq_ignore_ascii_case("normal")
    {
        return Err(StoreError::Settings(format!(
            "it must run with journal_mode = WAL, synchronous = FULL and normal \
             locking; SQLite reports journal_mode = {journal}, synchronous = {synchronous}, \
             locking_mode = {locking}"
        )));
    }
    Ok(())
}

fn migrate(conn: &Connection, keys: Option<&AtRest>) -> StoreResult<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {version}, newer than this poskit ({SCHEMA_VERSION})"
        )));
    }
    for (index, step) in MIGRATIONS.iter().enumerate().skip(version) {
        let version_after = (index + 1) as i64;
        match step {
            Migration::Sql(sql) => {
                let tx = conn.unchecked_transaction()?;
                tx.execute_batch(sql)?;
                tx.pragma_update(None, "user_version", version_after)?;
                tx.commit()?;
            }
            Migration::Rust(run) => without_foreign_keys(conn, |conn| {
                let tx = conn.unchecked_transaction()?;
                run(&tx)?;
                tx.pragma_update(None, "user_version", version_after)?;
                tx.commit()?;
                Ok(())
            })?,
            Migration::Keyed(_) if keys.is_none() && sealing_needs_keys(conn)? => break,
            Migration::Keyed(run) => {
                without_foreign_keys(conn, |conn| {
                    let tx = conn.unchecked_transaction()?;
                    run(&tx, keys)?;
                    tx.pragma_update(None, "user_version", version_after)?;
                    tx.commit()?;
                    Ok(())
                })?;
                // The old pages leave the write-ahead log too.
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            }
        }
    }
    Ok(())
}

/// Runs `work` with foreign-key enforcement off (a table rebuilt under its own name is
/// dropped while others name it), then checks that every reference still holds and turns
/// enforcement back on as it was.
fn without_foreign_keys(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> StoreResult<()>,
) -> StoreResult<()> {
    let enforced: bool = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let done = work(conn);
    conn.pragma_update(None, "foreign_keys", enforced)?;
    done?;
    let broken: i64 = conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
        r.get(0)
    })?;
    if broken > 0 {
        return Err(StoreError::Corrupt(format!(
            "{broken} rows name a row that is not on file"
        )));
    }
    Ok(())
}

/// Rebuilds every table not yet STRICT as a STRICT one (SQLite cannot alter a table into
/// one): the same columns, constraints and rows, then its indexes again. A value stored
/// with the wrong type (a total that overflowed into a float) makes it fail, and says
/// which table.
fn make_strict(conn: &Connection) -> StoreResult<()> {
    let tables: Vec<(String, String)> = conn
        .prepare(
            "SELECT s.name, s.sql FROM sqlite_schema s
             JOIN pragma_table_list t ON t.schema = 'main' AND t.name = s.name
             WHERE s.type = 'table' AND s.name NOT LIKE 'sqlite_%' AND t.strict = 0
             ORDER BY s.name",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, sql) in &tables {
        let indexes: Vec<String> = conn
            .prepare(
                "SELECT sql FROM sqlite_schema
                 WHERE type = 'index' AND sql IS NOT NULL AND tbl_name = ?1",
            )?
            .query_map([name], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let columns = sql.find('(').map(|at| &sql[at..]).ok_or_else(|| {
            StoreError::Corrupt(format!("table {name} has no column list: {sql}"))
        })?;
        let without_rowid = columns
            .trim_end()
            .to_ascii_uppercase()
            .ends_with("WITHOUT ROWID");
        let options = if without_rowid { ", STRICT" } else { " STRICT" };
        conn.execute_batch(&format!(
            "CREATE TABLE \"{name}_strict\" {columns}{options};
             INSERT INTO \"{name}_strict\" SELECT * FROM \"{name}\";
             DROP TABLE \"{name}\";
             ALTER TABLE \"{name}_strict\" RENAME TO \"{name}\";"
        ))
        .map_err(|e| StoreError::Corrupt(format!("table {name} cannot become STRICT: {e}")))?;
        for sql in &indexes {
            conn.execute_batch(sql)?;
        }
    }
    Ok(())
}

/// Adds or updates a terminal of an import. Its working keys stay only when its master
/// key is the one on file (compared unwrapped: wrapped values differ every time).
fn import_terminal(tx: &Connection, keys: &AtRest, t: &crate::model::Terminal) -> StoreResult<()> {
    let on_file: Option<Vec<u8>> = tx
        .query_row(
            "SELECT tmk FROM terminals WHERE tid = ?1",
            [t.tid.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    let same_tmk = match on_file {
        Some(blob) => keys.unwrap_key(KeyRole::Tmk, t.tid.as_str(), &blob)? == t.tmk,
        None => false,
    };
    let limit = t.txn_limit_fen.map(|a| a.fen() as i64);
    if same_tmk {
        tx.execute(
            "UPDATE terminals SET mid = ?2, status = ?3, txn_limit_fen = ?4, permitted = ?5
             WHERE tid = ?1",
            params![
                t.tid.as_str(),
                t.mid.as_str(),
                t.status.as_str(),
                limit,
                kinds_to_text(&t.permitted)
            ],
        )?;
        return Ok(());
    }
    tx.execute(
        "INSERT INTO terminals (tid, mid, status, tmk, txn_limit_fen, permitted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (tid) DO UPDATE SET mid = ?2, status = ?3, pik = NULL, mak = NULL,
             tmk = ?4, txn_limit_fen = ?5, permitted = ?6",
        params![
            t.tid.as_str(),
            t.mid.as_str(),
            t.status.as_str(),
            keys.wrap_key(KeyRole::Tmk, t.tid.as_str(), &t.tmk)?,
            limit,
            kinds_to_text(&t.permitted)
        ],
    )?;
    Ok(())
}

/// What an import changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub institutions: usize,
    pub merchants: usize,
    pub terminals: usize,
    pub cards_new: usize,
    pub cards_updated: usize,
}

pub(crate) fn account(conn: &Connection, kind: &str, name: &str) -> StoreResult<i64> {
    conn.prepare_cached(
        "INSERT INTO accounts (kind, name) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
    )?
    .execute(params![kind, name])?;
    Ok(conn
        .prepare_cached("SELECT id FROM accounts WHERE name = ?1")?
        .query_row([name], |r| r.get(0))?)
}

/// Loads master data in one transaction. New cards get their opening balance as a
/// balanced entry from their issuer's funding account; existing cards keep their ledger
/// balance (their other attributes are updated).
pub fn import(
    conn: &mut Connection,
    keys: &AtRest,
    set: &DataSet,
    now: &HostTime,
) -> StoreResult<ImportCounts> {
    let (day, mmdd, hhmmss, now_ms) = (now.day, now.mmdd(), now.hhmmss(), now.unix_ms);
    let tx = conn.transaction()?;
    let mut counts = ImportCounts::default();
    for inst in &set.institutions {
        let acct = account(&tx, "funding", &format!("funding:{}", inst.code))?;
        tx.execute(
            "INSERT INTO institutions (code, name, external, latency_ms, down, account)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (code) DO UPDATE SET name = ?2, external = ?3, latency_ms = ?4, down = ?5",
            params![
                inst.code,
                inst.name,
                inst.external.is_some(),
                inst.external.map_or(0, |e| e.latency_ms),
                inst.external.is_some_and(|e| e.down),
                acct
            ],
        )?;
        for bin in &inst.bins {
            tx.execute(
                "INSERT INTO bins (prefix, institution) VALUES (?1, ?2)
                 ON CONFLICT (prefix) DO UPDATE SET institution = ?2",
                params![bin, inst.code],
            )?;
        }
        counts.institutions += 1;
    }
    for m in &set.merchants {
        let acct = account(&tx, "merchant", &format!("merchant:{}", m.mid))?;
        tx.execute(
            "INSERT INTO merchants (mid, name, mcc, status, txn_limit_fen, daily_limit_fen, account)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (mid) DO UPDATE SET name = ?2, mcc = ?3, status = ?4,
                 txn_limit_fen = ?5, daily_limit_fen = ?6",
            params![
                m.mid.as_str(),
                m.name,
                m.mcc,
                m.status.as_str(),
                m.txn_limit_fen.map(|a| a.fen() as i64),
                m.daily_limit_fen.map(|a| a.fen() as i64),
                acct
            ],
        )?;
        counts.merchants += 1;
    }
    for t in &set.terminals {
        let known: Option<String> = tx
            .query_row(
                "SELECT mid FROM merchants WHERE mid = ?1",
                [t.mid.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        if known.is_none() {
            return Err(StoreError::Corrupt(format!(
                "terminal {} belongs to merchant {}, which is not in the data",
                t.tid, t.mid
            )));
        }
        import_terminal(&tx, keys, t)?;
        counts.terminals += 1;
    }
    for c in &set.cards {
        let sealed = keys.seal_card(c.pan.digits(), &c.expiry)?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM cards WHERE pan_hash = ?1",
                [&sealed.hash],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = existing {
            tx.execute(
                "UPDATE cards SET sealed = ?2, status = ?3, pin_hash = ?4, pin_tries_max = ?5,
                     pin_tries_used = ?6, daily_count_max = ?7, permitted = ?8, label = ?9,
                     card_type = ?10 WHERE id = ?1",
                params![
                    id,
                    sealed.sealed,
                    c.status.as_str(),
                    c.pin_hash,
                    c.pin_tries_max,
                    c.pin_tries_used,
                    c.daily_count_max,
                    kinds_to_text(&c.permitted),
                    c.label,
                    c.card_type.as_str()
                ],
            )?;
            counts.cards_updated += 1;
            continue;
        }
        let funding: Option<i64> = tx
            .query_row(
                "SELECT i.account FROM bins b JOIN institutions i ON i.code = b.institution
                 WHERE ?1 LIKE b.prefix || '%' ORDER BY length(b.prefix) DESC LIMIT 1",
                [c.pan.digits()],
                |r| r.get(0),
            )
            .optional()?;
        let Some(funding) = funding else {
            return Err(StoreError::Corrupt(format!(
                "card {} has no issuer: no institution lists its BIN",
                c.pan
            )));
        };
        // Card accounts are named by the card's row id, never by its number.
        let acct = account(&tx, "card", "card:new")?;
        tx.execute(
            "INSERT INTO cards (pan_hash, pan_last4, sealed, status, pin_hash, pin_tries_max,
                 pin_tries_used, daily_count_max, permitted, label, account, card_type)
             VALUES (?1, ?12, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                sealed.hash,
                sealed.sealed,
                c.status.as_str(),
                c.pin_hash,
                c.pin_tries_max,
                c.pin_tries_used,
                c.daily_count_max,
                kinds_to_text(&c.permitted),
                c.label,
                acct,
                c.card_type.as_str(),
                sealed.last4
            ],
        )?;
        let card_id = tx.last_insert_rowid();
        tx.execute(
            "UPDATE accounts SET name = ?2 WHERE id = ?1",
            params![acct, format!("card:{card_id}")],
        )?;
        if c.balance_fen.fen() > 0 {
            let mut ledger = SqliteLedger::new(&tx);
            let masked = c.pan.masked();
            let mut load = || -> StoreResult<()> {
                let txn = ledger.insert_txn(&NewTxn {
                    key: None,
                    kind: None,
                    reversal: false,
                    tid: None,
                    mid: None,
                    batch: None,
                    stan: None,
                    mti: "load",
                    request_hash: None,
                    amount_fen: Some(c.balance_fen.fen()),
                    card_id: Some(card_id),
                    pan_masked: Some(&masked),
                    auth_code: None,
                    day,
                    mmdd: &mmdd,
                    hhmmss: &hhmmss,
                    created_ms: now_ms,
                    code: "00",
                    reason: "opening balance loaded by import",
                    state: TxnState::Approved,
                    original_id: None,
                    fwd: false,
                })?;
                ledger.transfer(txn, funding, acct, c.balance_fen.fen())?;
                ledger.flush()
            };
            let loaded = load();
            if loaded.is_err() {
                ledger.discard();
            }
            loaded?;
        }
        counts.cards_new += 1;
    }
    tx.commit()?;
    Ok(counts)
}

/// A balance check over the whole ledger (`poskit host check`).
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    pub postings: u64,
    pub postings_sum_fen: i64,
    pub accounts: u64,
    pub transactions: u64,
    pub problems: Vec<String>,
}

/// Checks that the sum over all postings is zero, that every transaction's postings sum to
/// zero, that each account's balance is the sum of its postings, that every posting names
/// a transaction and an account on file, and that no approved transaction lacks the reason
/// that produced its code.
pub fn check(conn: &Connection) -> StoreResult<CheckReport> {
    let mut report = CheckReport {
        postings: conn.query_row("SELECT count(*) FROM postings", [], |r| r.get(0))?,
        postings_sum_fen: conn.query_row(
            "SELECT coalesce(sum(amount_fen), 0) FROM postings",
            [],
            |r| r.get(0),
        )?,
        accounts: conn.query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))?,
        transactions: conn.query_row("SELECT count(*) FROM transactions", [], |r| r.get(0))?,
        problems: Vec::new(),
    };
    if report.postings_sum_fen != 0 {
        report.problems.push(format!(
            "the postings sum to {} fen, not zero",
            report.postings_sum_fen
        ));
    }
    let mut stmt = conn.prepare(
        "SELECT txn_id, sum(amount_fen) FROM postings GROUP BY txn_id HAVING sum(amount_fen) != 0 LIMIT 20",
    )?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
        let (txn, sum) = row?;
        report
            .problems
            .push(format!("transaction {txn}: its postings sum to {sum} fen"));
    }
    let mut stmt = conn.prepare(
        "SELECT a.id, a.name, a.balance_fen, coalesce(p.s, 0)
         FROM accounts a
         LEFT JOIN (SELECT account, sum(amount_fen) AS s FROM postings GROUP BY account) p
             ON p.account = a.id
         WHERE a.balance_fen != coalesce(p.s, 0) LIMIT 20",
    )?;
    for row in stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })? {
        let (name, balance, sum) = row?;
        report.problems.push(format!(
            "account {name}: balance {balance} fen but its postings sum to {sum}"
        ));
    }
    // The day's totals the limits read, against the transactions they come from (rows
    // that fell back to zero count as absent).
    let mut stmt = conn.prepare(concat!(
        "WITH kept_m AS (SELECT mid, day, debit_fen FROM merchant_days WHERE debit_fen != 0),
              summed_m AS (SELECT * FROM (",
        merchant_days_summed!(),
        ") WHERE debit_fen != 0),
              kept_c AS (SELECT card_id, day, debit_count FROM card_days WHERE debit_count != 0),
              summed_c AS (",
        card_days_summed!(),
        ")
         SELECT 'merchant ' || mid || ' on day ' || day
             FROM (SELECT * FROM kept_m EXCEPT SELECT * FROM summed_m)
         UNION
         SELECT 'merchant ' || mid || ' on day ' || day
             FROM (SELECT * FROM summed_m EXCEPT SELECT * FROM kept_m)
         UNION
         SELECT 'card ' || card_id || ' on day ' || day
             FROM (SELECT * FROM kept_c EXCEPT SELECT * FROM summed_c)
         UNION
         SELECT 'card ' || card_id || ' on day ' || day
             FROM (SELECT * FROM summed_c EXCEPT SELECT * FROM kept_c)
         LIMIT 20"
    ))?;
    for row in stmt.query_map([], |r| r.get::<_, String>(0))? {
        let what = row?;
        report.problems.push(format!(
            "{what}: the day's total kept for its limit is not what its transactions add up to"
        ));
    }
    let mut stmt = conn.prepare(
        "SELECT a.name, a.held_fen, coalesce(sum(h.amount_fen), 0) AS s
         FROM accounts a LEFT JOIN holds h ON h.account = a.id AND h.open = 1
         GROUP BY a.id HAVING a.held_fen != s LIMIT 20",
    )?;
    for row in stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })? {
        let (name, held, sum) = row?;
        report.problems.push(format!(
            "account {name}: {held} fen on hold but its open holds sum to {sum}"
        ));
    }
    // What foreign keys enforced before schema 5: every posting names a transaction and an
    // account on file.
    let orphans: i64 = conn.query_row(
        "SELECT count(*) FROM postings p
         WHERE NOT EXISTS (SELECT 1 FROM transactions t WHERE t.id = p.txn_id)
            OR NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = p.account)",
        [],
        |r| r.get(0),
    )?;
    if orphans > 0 {
        report.problems.push(format!(
            "{orphans} postings name a transaction or an account that is not on file"
        ));
    }
    let unexplained: i64 = conn.query_row(
        "SELECT count(*) FROM transactions WHERE reason = ''",
        [],
        |r| r.get(0),
    )?;
    if unexplained > 0 {
        report.problems.push(format!(
            "{unexplained} transactions carry no reason for their code"
        ));
    }
    let bad_holds: i64 = conn.query_row(
        "SELECT count(*) FROM holds h JOIN transactions t ON t.id = h.txn_id
         WHERE h.open = 1 AND t.state != 'approved'",
        [],
        |r| r.get(0),
    )?;
    if bad_holds > 0 {
        report.problems.push(format!(
            "{bad_holds} holds are open for pre-authorizations that are no longer approved"
        ));
    }
    Ok(report)
}

/// Entries a [`WriterCache`] map holds before it starts again from empty.
pub const WRITER_CACHE_ENTRIES_MAX: usize = 65_536;

/// What the one writer keeps between (and within) its transactions.
///
/// Master data — terminals, merchants, cards, BINs — so that an authorization reads them
/// from memory instead of four or five statements; and the running totals an
/// authorization reads and moves — account balances and holds, the day's totals of
/// merchants and cards — together with the next transaction id, so that a sale moves them
/// in memory and each changed total is written once per transaction
/// ([`WriterCache::write_back`]), not once per request. It is only right while nobody
/// else writes:
/// - a write through the ledger forgets the master-data row it changes (read again, as
///   written, next time), and moves the totals it changes;
/// - [`WriterCache::revalidate`] at the start of every transaction forgets everything
///   when another connection has committed since (`PRAGMA data_version`), as `poskit host
///   import` does beside a running host;
/// - the owner calls [`WriterCache::write_back`] before every commit, and
///   [`WriterCache::clear`] after any rollback (what it holds was never committed).
#[derive(Default)]
pub struct WriterCache {
    data_version: Option<i64>,
    terminals: HashMap<Tid, Option<Arc<TerminalState>>>,
    merchants: HashMap<Mid, Option<Arc<MerchantState>>>,
    cards: HashMap<String, Option<Arc<CardState>>>,
    /// Card id → PAN of the cached cards, to forget a card written by id.
    card_pans: HashMap<i64, String>,
    bins: Option<Bins>,
    /// Account id → balance and amount on hold.
    accounts: HashMap<i64, (Tally, Tally)>,
    /// (merchant, day) → approved debits in fen.
    merchant_days: HashMap<(Mid, i64), Tally>,
    /// (card id, day) → payments counted.
    card_days: HashMap<(i64, i64), Tally>,
    /// The id the next transaction row gets (SQLite's own choice: the largest + 1).
    next_txn_id: Option<i64>,
    /// The totals moved since the last write-back (a key may appear more than once), so
    /// that `write_back` visits those and not every total it keeps.
    moved_accounts: Vec<i64>,
    moved_merchant_days: Vec<(Mid, i64)>,
    moved_card_days: Vec<(i64, i64)>,
    /// The STANs on file under the idempotency key, per batch asked about.
    traces: TraceFilter,
}

/// A total as it is now and as the database holds it.
#[derive(Clone, Copy, Debug)]
struct Tally {
    value: i64,
    stored: i64,
}

impl Tally {
    fn loaded(value: i64) -> Tally {
        Tally {
            value,
            stored: value,
        }
    }

    fn dirty(&self) -> bool {
        self.value != self.stored
    }

    /// Moves the total by `delta`; a total that would leave `i64` is refused (a storage
    /// error: the request is rolled back and answered 96), never wrapped.
    fn add(&mut self, delta: i64) -> StoreResult<()> {
        self.value = checked_total(self.value, delta)?;
        Ok(())
    }
}

/// `total + delta`, or a storage error when it overflows.
fn checked_total(total: i64, delta: i64) -> StoreResult<i64> {
    total.checked_add(delta).ok_or_else(|| {
        StoreError::Corrupt(format!("a total of {total} moved by {delta} overflows"))
    })
}

/// The BINs on file: prefix → institution, and the prefix lengths there are, longest first.
struct Bins {
    by_prefix: HashMap<String, Arc<InstitutionState>>,
    lengths: Vec<usize>,
}

impl Bins {
    /// The institution of the longest BIN that begins `digits`: one lookup per length on
    /// file (a LIKE over every BIN cost more than the rest of an authorization's reads).
    fn longest_prefix_of(&self, digits: &str) -> Option<&Arc<InstitutionState>> {
        self.lengths
            .iter()
            .filter(|&&n| n <= digits.len())
            .find_map(|&n| self.by_prefix.get(&digits[..n]))
    }
}

impl WriterCache {
    /// Forgets everything, totals not yet written back included: call it after a rollback.
    pub fn clear(&mut self) {
        self.terminals.clear();
        self.merchants.clear();
        self.cards.clear();
        self.card_pans.clear();
        self.bins = None;
        self.accounts.clear();
        self.merchant_days.clear();
        self.card_days.clear();
        self.next_txn_id = None;
        self.moved_accounts.clear();
        self.moved_merchant_days.clear();
        self.moved_card_days.clear();
        self.traces.clear();
    }

    /// Writes every total changed in memory since the last write-back; call it inside the
    /// transaction, before the commit. A map grown to its bound is then emptied (all of it
    /// is stored by now).
    pub fn write_back(&mut self, conn: &Connection) -> StoreResult<()> {
        let mut account = conn
            .prepare_cached("UPDATE accounts SET balance_fen = ?2, held_fen = ?3 WHERE id = ?1")?;
        for id in self.moved_accounts.drain(..) {
            let Some((balance, held)) = self.accounts.get_mut(&id) else {
                continue;
            };
            if !balance.dirty() && !held.dirty() {
                continue;
            }
            if account.execute(params![id, balance.value, held.value])? != 1 {
                return Err(StoreError::Corrupt(format!("account {id} is not on file")));
            }
            *balance = Tally::loaded(balance.value);
            *held = Tally::loaded(held.value);
        }
        let mut merchant_day = conn.prepare_cached(
            "INSERT INTO merchant_days (mid, day, debit_fen) VALUES (?1, ?2, ?3)
             ON CONFLICT (mid, day) DO UPDATE SET debit_fen = excluded.debit_fen",
        )?;
        for key in self.moved_merchant_days.drain(..) {
            let Some(total) = self.merchant_days.get_mut(&key).filter(|t| t.dirty()) else {
                continue;
            };
            let (mid, day) = key;
            merchant_day.execute(params![mid.as_str(), day, total.value])?;
            *total = Tally::loaded(total.value);
        }
        let mut card_day = conn.prepare_cached(
            "INSERT INTO card_days (card_id, day, debit_count) VALUES (?1, ?2, ?3)
             ON CONFLICT (card_id, day) DO UPDATE SET debit_count = excluded.debit_count",
        )?;
        for key in self.moved_card_days.drain(..) {
            let Some(total) = self.card_days.get_mut(&key).filter(|t| t.dirty()) else {
                continue;
            };
            let (card_id, day) = key;
            card_day.execute(params![card_id, day, total.value])?;
            *total = Tally::loaded(total.value);
        }
        if self.accounts.len() >= WRITER_CACHE_ENTRIES_MAX {
            self.accounts.clear();
        }
        if self.merchant_days.len() >= WRITER_CACHE_ENTRIES_MAX {
            self.merchant_days.clear();
        }
        if self.card_days.len() >= WRITER_CACHE_ENTRIES_MAX {
            self.card_days.clear();
        }
        Ok(())
    }

    /// Forgets everything if another connection has committed since the last look. Call
    /// it inside the transaction (which holds the write lock, so nobody commits between
    /// this and the end of the transaction).
    pub fn revalidate(&mut self, conn: &Connection) -> StoreResult<()> {
        let version: i64 = conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        if self.data_version != Some(version) {
            self.clear();
            self.data_version = Some(version);
        }
        Ok(())
    }

    fn forget_card(&mut self, card_id: i64) {
        if let Some(pan) = self.card_pans.remove(&card_id) {
            self.cards.remove(&pan);
        }
    }
}

/// Inserts into a bounded map: a full map starts again from empty.
fn bounded_insert<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, value: V) {
    if map.len() >= WRITER_CACHE_ENTRIES_MAX {
        map.clear();
    }
    map.insert(key, value);
}

/// Terminal, merchant, batch and trace: a request's key without its message class.
type TraceKey = (Tid, Mid, Batch, Stan);

/// A [`Ledger`] over a connection that is inside a transaction (or savepoint).
///
/// A transaction row is written when its answer is known, in one `INSERT` with the
/// postings that name it ([`PendingTxn`]): the engine records the row, moves money and
/// then sets the answer, and each of those was a statement of its own. Anything that could
/// read the row writes it first ([`SqliteLedger::db`], [`SqliteLedger::settled`]), and
/// [`Ledger::flush`] writes it at the end of the request.
pub struct SqliteLedger<'c, 'h> {
    conn: &'c Connection,
    /// The BINs on file, when there is no cache to keep them (read once per ledger).
    bins: Option<Bins>,
    cache: Option<&'h mut WriterCache>,
    /// The statements every authorization runs, prepared for the whole group.
    hot: Option<&'h mut HotStatements<'c>>,
    /// The reversal row (or its absence) `find_by_key` saw for a trace, until the next
    /// write to transactions.
    reversal_seen: Option<(TraceKey, Option<TxnRecord>)>,
    pending: Option<PendingTxn>,
    /// The secrets at rest, for terminal keys and cards (absent: those reads fail).
    keys: Option<&'h AtRest>,
}

/// The postings one transaction makes at most (a void of a completion undoes two).
const PENDING_POSTINGS_MAX: usize = 8;

/// A transaction row recorded but not yet written, with the postings that name it.
struct PendingTxn {
    id: i64,
    kind: Option<&'static str>,
    reversal: bool,
    mti: String,
    tid: Option<String>,
    mid: Option<String>,
    batch: Option<u32>,
    stan: Option<u32>,
    idem: bool,
    request_hash: Option<String>,
    amount_fen: Option<i64>,
    card_id: Option<i64>,
    pan_masked: Option<String>,
    rrn: Option<String>,
    auth_code: Option<String>,
    day: i64,
    mmdd: String,
    hhmmss: String,
    created_ms: i64,
    code: String,
    reason: String,
    state: TxnState,
    original_id: Option<i64>,
    reply: Option<Vec<u8>>,
    fwd: bool,
    /// (account, amount in fen) in the order posted.
    postings: Vec<(i64, i64)>,
}

/// The statements of an approval — the key lookup, the transaction row and its postings —
/// prepared once for a group of requests: taking each from the connection's statement cache
/// hashed its text twice per use (5 % of an authorization's instructions).
pub struct HotStatements<'c> {
    find_by_key: CachedStatement<'c>,
    insert_txn: CachedStatement<'c>,
    insert_posting: CachedStatement<'c>,
    insert_postings_2: CachedStatement<'c>,
}

impl<'c> HotStatements<'c> {
    pub fn prepare(conn: &'c Connection) -> StoreResult<HotStatements<'c>> {
        Ok(HotStatements {
            find_by_key: conn.prepare_cached(FIND_BY_KEY_SQL)?,
            insert_txn: conn.prepare_cached(INSERT_TXN_SQL)?,
            insert_posting: conn.prepare_cached(INSERT_POSTING_SQL)?,
            insert_postings_2: conn.prepare_cached(INSERT_POSTINGS_2_SQL)?,
        })
    }
}

// The hot inserts say `OR FAIL` where the default is `OR ABORT`: under ABORT, SQLite opens
// a statement journal for each of them inside the group's transaction, to undo a
// statement's partial work on a constraint error (6 % of an authorization's instructions).
// Nothing here needs that: a single-row insert checks its constraints before it writes,
// and any error from these statements rolls back the whole request (its savepoint, or the
// group) before anything commits; SQLite rolls back the whole transaction on a full disk
// or an I/O error either way.
const INSERT_TXN_SQL: &str =
    "INSERT OR FAIL INTO transactions (id, kind, reversal, mti, tid, mid, batch, stan, idem,
         request_hash, amount_fen, card_id, pan_masked, rrn, auth_code, day, mmdd,
         hhmmss, created_ms, code, reason, state, original_id, reply, fwd)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
         ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)";

const INSERT_POSTING_SQL: &str =
    "INSERT OR FAIL INTO postings (txn_id, leg, account, amount_fen) VALUES (?1, ?2, ?3, ?4)";

/// The two legs of a transfer in one statement.
const INSERT_POSTINGS_2_SQL: &str =
    "INSERT OR FAIL INTO postings (txn_id, leg, account, amount_fen)
     VALUES (?1, 0, ?2, ?3), (?1, 1, ?4, ?5)";

impl<'c, 'h> SqliteLedger<'c, 'h> {
    pub fn new(conn: &'c Connection) -> SqliteLedger<'c, 'h> {
        SqliteLedger {
            conn,
            bins: None,
            cache: None,
            hot: None,
            reversal_seen: None,
            pending: None,
            keys: None,
        }
    }

    /// A ledger that reads master data and keeps running totals through `cache` (see
    /// [`WriterCache`] for the rules its owner keeps).
    pub fn cached(conn: &'c Connection, cache: &'h mut WriterCache) -> SqliteLedger<'c, 'h> {
        SqliteLedger {
            conn,
            bins: None,
            cache: Some(cache),
            hot: None,
            reversal_seen: None,
            pending: None,
            keys: None,
        }
    }

    /// [`SqliteLedger::cached`] with the group's [`HotStatements`] (prepared on `conn`).
    pub fn hot(
        conn: &'c Connection,
        cache: &'h mut WriterCache,
        hot: &'h mut HotStatements<'c>,
    ) -> SqliteLedger<'c, 'h> {
        SqliteLedger {
            conn,
            bins: None,
            cache: Some(cache),
            hot: Some(hot),
            reversal_seen: None,
            pending: None,
            keys: None,
        }
    }

    /// This ledger, reading and writing terminal keys and cards with `keys`.
    pub fn with_keys(mut self, keys: &'h AtRest) -> SqliteLedger<'c, 'h> {
        self.keys = Some(keys);
        self
    }

    fn keys(&self) -> StoreResult<&'h AtRest> {
        self.keys
            .ok_or_else(|| StoreError::Keys("this ledger was opened without its key store".into()))
    }

    /// The connection, once the pending row (if any) is written: for any statement that
    /// could read or change it.
    fn db(&mut self) -> StoreResult<&'c Connection> {
        self.write_pending()?;
        Ok(self.conn)
    }

    /// The connection for a statement about transaction `txn_id` alone: the pending row is
    /// written first only if it is that one.
    fn settled(&mut self, txn_id: i64) -> StoreResult<&'c Connection> {
        if self.pending.as_ref().is_some_and(|p| p.id == txn_id) {
            self.write_pending()?;
        }
        Ok(self.conn)
    }

    fn write_pending(&mut self) -> StoreResult<()> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        assert_eq!(
            p.postings.iter().map(|(_, amount)| amount).sum::<i64>(),
            0,
            "the postings of a transaction balance"
        );
        let row = params![
            p.id,
            p.kind,
            p.reversal,
            p.mti,
            p.tid,
            p.mid,
            p.batch,
            p.stan,
            p.idem,
            p.request_hash,
            p.amount_fen,
            p.card_id,
            p.pan_masked,
            p.rrn,
            p.auth_code,
            p.day,
            p.mmdd,
            p.hhmmss,
            p.created_ms,
            p.code,
            p.reason,
            p.state.as_str(),
            p.original_id,
            p.reply,
            p.fwd
        ];
        match self.hot.as_deref_mut() {
            Some(hot) => hot.insert_txn.execute(row)?,
            None => self.conn.prepare_cached(INSERT_TXN_SQL)?.execute(row)?,
        };
        match (p.postings.as_slice(), self.hot.as_deref_mut()) {
            ([], _) => {}
            // A transfer: its two legs in one statement.
            (&[(debit, debit_fen), (credit, credit_fen)], Some(hot)) => {
                hot.insert_postings_2
                    .execute(params![p.id, debit, debit_fen, credit, credit_fen])?;
            }
            (legs, hot) => {
                let mut fallback;
                let post = match hot {
                    Some(hot) => &mut hot.insert_posting,
                    None => {
                        fallback = self.conn.prepare_cached(INSERT_POSTING_SQL)?;
                        &mut fallback
                    }
                };
                for (leg, (account, amount)) in legs.iter().enumerate() {
                    post.execute(params![p.id, leg as i64, account, amount])?;
                }
            }
        }
        Ok(())
    }

    /// Whether the writer's trace filter knows that no row of the key's trace is on file,
    /// reading the batch's keyed STANs the first time it is asked about (false without a
    /// cache: the lookup decides).
    fn trace_unseen(&mut self, key: &TxnKey) -> StoreResult<bool> {
        let (tid, mid, batch, stan) = (key.tid, key.mid, key.batch, key.stan);
        match self
            .cache
            .as_deref()
            .map(|c| c.traces.trace(tid, mid, batch, stan))
        {
            None | Some(Trace::Maybe) => return Ok(false),
            Some(Trace::Unseen) => return Ok(true),
            Some(Trace::BatchUnknown) => {}
        }
        let conn = self.db()?;
        let mut stmt = conn.prepare_cached(
            "SELECT stan FROM transactions
             WHERE tid = ?1 AND mid = ?2 AND batch = ?3 AND idem = 1 LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![
                tid.as_str(),
                mid.as_str(),
                batch.value(),
                TRACE_LOAD_ROWS_MAX as i64 + 1
            ],
            |r| r.get::<_, Option<i64>>(0),
        )?;
        let mut stans = Some(Vec::new());
        for row in rows {
            match (row?.and_then(|s| u32::try_from(s).ok()), stans.as_mut()) {
                (Some(s), Some(list)) if s <= Stan::MAX && list.len() < TRACE_LOAD_ROWS_MAX => {
                    list.push(s)
                }
                // More than a load takes, or a STAN no request could carry: looked up.
                _ => stans = None,
            }
        }
        let Some(cache) = self.cache.as_deref_mut() else {
            return Ok(false);
        };
        cache.traces.load(tid, mid, batch, stans);
        Ok(cache.traces.trace(tid, mid, batch, stan) == Trace::Unseen)
    }

    /// The id the next transaction row gets.
    fn take_txn_id(&mut self) -> StoreResult<i64> {
        assert!(self.pending.is_none(), "the pending row is written first");
        let id = match self.cache.as_deref().and_then(|c| c.next_txn_id) {
            Some(id) => id,
            None => self
                .conn
                .prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM transactions")?
                .query_row([], |r| r.get(0))?,
        };
        if let Some(cache) = self.cache.as_deref_mut() {
            cache.next_txn_id = Some(id + 1);
        }
        Ok(id)
    }

    /// A posting: kept with the pending row when it is that row's, written now otherwise.
    fn post(&mut self, txn_id: i64, account: i64, amount_fen: i64) -> StoreResult<()> {
        if let Some(p) = self.pending.as_mut().filter(|p| p.id == txn_id) {
            assert!(
                p.postings.len() < PENDING_POSTINGS_MAX,
                "transaction {txn_id} posts more than {PENDING_POSTINGS_MAX} times"
            );
            p.postings.push((account, amount_fen));
            return Ok(());
        }
        // After the transaction's legs already written.
        self.db()?
            .prepare_cached(
                "INSERT INTO postings (txn_id, leg, account, amount_fen)
                 SELECT ?1, coalesce(max(leg) + 1, 0), ?2, ?3 FROM postings WHERE txn_id = ?1",
            )?
            .execute(params![txn_id, account, amount_fen])?;
        Ok(())
    }

    /// The account's balance and amount on hold as kept in the cache (read on first use);
    /// `None` without a cache, or when the cache is full and the account is not in it.
    fn account_tally(&mut self, account: i64) -> StoreResult<Option<&mut (Tally, Tally)>> {
        let conn = self.conn;
        let Some(cache) = self.cache.as_deref_mut() else {
            return Ok(None);
        };
        if !cache.accounts.contains_key(&account) {
            if cache.accounts.len() >= WRITER_CACHE_ENTRIES_MAX {
                return Ok(None);
            }
            let (balance, held): (i64, i64) = conn
                .prepare_cached("SELECT balance_fen, held_fen FROM accounts WHERE id = ?1")?
                .query_row([account], |r| Ok((r.get(0)?, r.get(1)?)))?;
            cache
                .accounts
                .insert(account, (Tally::loaded(balance), Tally::loaded(held)));
        }
        Ok(cache.accounts.get_mut(&account))
    }

    /// Moves the account's balance.
    fn add_balance(&mut self, account: i64, delta_fen: i64) -> StoreResult<()> {
        self.add_to_account(account, AccountTotal::Balance, delta_fen)
    }

    /// Moves the account's amount on hold (kept beside its balance).
    fn add_held(&mut self, account: i64, delta_fen: i64) -> StoreResult<()> {
        self.add_to_account(account, AccountTotal::Held, delta_fen)
    }

    fn add_to_account(
        &mut self,
        account: i64,
        which: AccountTotal,
        delta_fen: i64,
    ) -> StoreResult<()> {
        if let Some((balance, held)) = self.account_tally(account)? {
            match which {
                AccountTotal::Balance => balance.add(delta_fen)?,
                AccountTotal::Held => held.add(delta_fen)?,
            }
            self.moved(|c| c.moved_accounts.push(account));
            return Ok(());
        }
        let sql = match which {
            AccountTotal::Balance => {
                "UPDATE accounts SET balance_fen = balance_fen + ?2 WHERE id = ?1"
            }
            AccountTotal::Held => "UPDATE accounts SET held_fen = held_fen + ?2 WHERE id = ?1",
        };
        if self
            .conn
            .prepare_cached(sql)?
            .execute(params![account, delta_fen])?
            != 1
        {
            return Err(StoreError::Corrupt(format!(
                "account {account} is not on file"
            )));
        }
        Ok(())
    }

    /// The merchant's approved debits of the day as kept in the cache (read on first use).
    fn merchant_day_tally(&mut self, mid: &Mid, day: i64) -> StoreResult<Option<&mut Tally>> {
        let conn = self.conn;
        let Some(cache) = self.cache.as_deref_mut() else {
            return Ok(None);
        };
        cached_tally(&mut cache.merchant_days, (*mid, day), || {
            read_merchant_day(conn, mid, day)
        })
    }

    /// The card's payments of the day as kept in the cache (read on first use).
    fn card_day_tally(&mut self, card_id: i64, day: i64) -> StoreResult<Option<&mut Tally>> {
        let conn = self.conn;
        let Some(cache) = self.cache.as_deref_mut() else {
            return Ok(None);
        };
        cached_tally(&mut cache.card_days, (card_id, day), || {
            read_card_day(conn, card_id, day)
        })
    }

    /// Moves the day's totals by `share` going from state `from` (`None`: it did not
    /// exist) to `to`.
    fn move_days(
        &mut self,
        share: &DayShare<'_>,
        from: Option<TxnState>,
        to: TxnState,
    ) -> StoreResult<()> {
        let (merchant, card) = share.moves(from, to);
        if merchant != 0
            && let Some(raw_mid) = share.mid
        {
            let delta_fen = merchant.checked_mul(share.amount_fen).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "a day's total moved by {merchant} x {}",
                    share.amount_fen
                ))
            })?;
            // A merchant ID that does not parse (a row recorded from hostile input) is
            // totalled as stored, without the cache.
            let cached = match Mid::parse(raw_mid) {
                Ok(mid) => match self.merchant_day_tally(&mid, share.day)? {
                    Some(total) => {
                        total.add(delta_fen)?;
                        self.moved(|c| c.moved_merchant_days.push((mid, share.day)));
                        true
                    }
                    None => false,
                },
                Err(_) => false,
            };
            if !cached {
                self.conn
                    .prepare_cached(
                        "INSERT INTO merchant_days (mid, day, debit_fen) VALUES (?1, ?2, ?3)
                         ON CONFLICT (mid, day) DO UPDATE SET debit_fen = debit_fen + excluded.debit_fen",
                    )?
                    .execute(params![raw_mid, share.day, delta_fen])?;
            }
        }
        if card != 0
            && let Some(card_id) = share.card_id
        {
            match self.card_day_tally(card_id, share.day)? {
                Some(total) => {
                    total.add(card)?;
                    self.moved(|c| c.moved_card_days.push((card_id, share.day)));
                }
                None => {
                    self.conn
                        .prepare_cached(
                            "INSERT INTO card_days (card_id, day, debit_count) VALUES (?1, ?2, ?3)
                             ON CONFLICT (card_id, day) DO UPDATE SET debit_count = debit_count + excluded.debit_count",
                        )?
                        .execute(params![card_id, share.day, card])?;
                }
            }
        }
        Ok(())
    }

    /// Notes in the cache which total moved (for `write_back`).
    fn moved(&mut self, note: impl FnOnce(&mut WriterCache)) {
        if let Some(cache) = self.cache.as_deref_mut() {
            note(cache);
        }
    }

    fn bins(&self) -> Option<&Bins> {
        match self.cache.as_deref() {
            Some(cache) => cache.bins.as_ref(),
            None => self.bins.as_ref(),
        }
    }

    fn forget_terminal(&mut self, tid: &Tid) {
        if let Some(cache) = self.cache.as_deref_mut() {
            cache.terminals.remove(tid);
        }
    }
}

impl Drop for SqliteLedger<'_, '_> {
    fn drop(&mut self) {
        // A row held back and never written would be lost without a word when the caller
        // commits: every request ends in `flush`, or in `discard` when it failed.
        if let Some(p) = &self.pending
            && !std::thread::panicking()
        {
            panic!(
                "transaction row {} was held back and never written (flush or discard)",
                p.id
            );
        }
    }
}

/// Which of an account's totals moves.
#[derive(Clone, Copy)]
enum AccountTotal {
    Balance,
    Held,
}

/// The total under `key`, read with `load` on first use; `None` when the map is full and
/// the key is not in it (the caller then writes through).
fn cached_tally<K: std::hash::Hash + Eq + Copy>(
    map: &mut HashMap<K, Tally>,
    key: K,
    load: impl FnOnce() -> StoreResult<i64>,
) -> StoreResult<Option<&mut Tally>> {
    if !map.contains_key(&key) {
        if map.len() >= WRITER_CACHE_ENTRIES_MAX {
            return Ok(None);
        }
        map.insert(key, Tally::loaded(load()?));
    }
    Ok(map.get_mut(&key))
}

fn read_merchant_day(conn: &Connection, mid: &Mid, day: i64) -> StoreResult<i64> {
    Ok(conn
        .prepare_cached("SELECT debit_fen FROM merchant_days WHERE mid = ?1 AND day = ?2")?
        .query_row(params![mid.as_str(), day], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

fn read_card_day(conn: &Connection, card_id: i64, day: i64) -> StoreResult<i64> {
    Ok(conn
        .prepare_cached("SELECT debit_count FROM card_days WHERE card_id = ?1 AND day = ?2")?
        .query_row(params![card_id, day], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// The columns [`txn_row`] reads, in its order.
macro_rules! txn_columns {
    () => {
        "id, kind, reversal, tid, mid, batch, stan, request_hash, amount_fen, card_id, rrn,
        auth_code, day, mmdd, code, state, original_id, refunded_fen, response, reply, fwd,
        hhmmss"
    };
}

/// `SELECT` of [`txn_columns`] and then the rest of the statement: a literal, so that the
/// hot lookups hand the statement cache a fixed string (no formatting per call).
macro_rules! select_txn {
    ($rest:literal) => {
        concat!("SELECT ", txn_columns!(), " ", $rest)
    };
}

const TXN_COLUMNS: &str = txn_columns!();

/// The rows of a trace under the idempotency key (its MTIs next to each other).
const FIND_BY_KEY_SQL: &str = concat!(
    "SELECT ",
    txn_columns!(),
    ", mti FROM transactions
     WHERE tid = ?1 AND mid = ?2 AND batch = ?3 AND stan = ?4 AND idem = 1"
);

fn txn_row(r: &Row<'_>) -> rusqlite::Result<TxnRecord> {
    let kind: Option<String> = r.get(1)?;
    let state: String = r.get(15)?;
    Ok(TxnRecord {
        id: r.get(0)?,
        kind: kind.as_deref().and_then(TransactionKind::from_slug),
        reversal: r.get(2)?,
        tid: r.get(3)?,
        mid: r.get(4)?,
        batch: r.get(5)?,
        stan: r.get(6)?,
        request_hash: r.get(7)?,
        amount_fen: r.get::<_, Option<i64>>(8)?.map(|a| a as u64),
        card_id: r.get(9)?,
        rrn: r.get(10)?,
        auth_code: r.get(11)?,
        day: r.get(12)?,
        mmdd: r.get(13)?,
        code: r.get(14)?,
        state: TxnState::parse(&state).unwrap_or(TxnState::Declined),
        original_id: r.get(16)?,
        refunded_fen: r.get::<_, i64>(17)? as u64,
        answer: match (
            r.get::<_, Option<Vec<u8>>>(19)?,
            r.get::<_, Option<Vec<u8>>>(18)?,
        ) {
            (Some(reply), _) => Some(StoredAnswer::Reply(reply)),
            (None, frame) => frame.map(StoredAnswer::Frame),
        },
        fwd: r.get(20)?,
        hhmmss: r.get(21)?,
    })
}

fn kind_list(kinds: &[TransactionKind]) -> String {
    kinds
        .iter()
        .map(|k| format!("'{}'", k.slug()))
        .collect::<Vec<_>>()
        .join(",")
}

impl SqliteLedger<'_, '_> {
    fn read_terminal(&mut self, tid: &Tid) -> StoreResult<Option<TerminalState>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT mid, status, tmk, pik, mak, batch, txn_limit_fen, permitted FROM terminals WHERE tid = ?1",
            )?
            .query_row([tid.as_str()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Option<Vec<u8>>>(3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                    r.get::<_, u32>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })
            .optional()?;
        let Some((mid, status, tmk, pik, mak, batch, limit, permitted)) = row else {
            return Ok(None);
        };
        let corrupt = |what: &str| StoreError::Corrupt(format!("terminal {tid}: {what}"));
        let at_rest = self.keys()?;
        let unwrap = |role, blob: Option<Vec<u8>>| {
            blob.map(|b| at_rest.unwrap_key(role, tid.as_str(), &zeroize::Zeroizing::new(b)))
                .transpose()
        };
        let mak = match mak {
            Some(blob) => at_rest.unwrap_mak(tid.as_str(), &zeroize::Zeroizing::new(blob))?,
            None => None,
        };
        let working = unwrap(KeyRole::Pik, pik)?.zip(mak);
        Ok(Some(TerminalState {
            tid: *tid,
            mid: Mid::parse(&mid).map_err(|_| corrupt("merchant ID"))?,
            status: TerminalStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
            tmk: at_rest.unwrap_key(KeyRole::Tmk, tid.as_str(), &tmk)?,
            keys: working,
            batch: Batch::new(batch).map_err(|_| corrupt("batch"))?,
            txn_limit_fen: limit.map(|l| l as u64),
            permitted: kinds_from_text(permitted.as_deref())
                .map_err(|_| corrupt("permitted kinds"))?,
        }))
    }

    fn read_merchant(&mut self, mid: &Mid) -> StoreResult<Option<MerchantState>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT name, status, txn_limit_fen, daily_limit_fen, account, currencies, mcc FROM merchants WHERE mid = ?1",
            )?
            .query_row([mid.as_str()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })
            .optional()?;
        let Some((name, status, txn_limit, daily_limit, account, currencies, mcc)) = row else {
            return Ok(None);
        };
        Ok(Some(MerchantState {
            mid: *mid,
            name,
            mcc,
            status: MerchantStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("merchant {mid}: status")))?,
            txn_limit_fen: txn_limit.map(|l| l as u64),
            daily_limit_fen: daily_limit.map(|l| l as u64),
            account,
            currencies: currencies_from_text(&currencies)
                .ok_or_else(|| StoreError::Corrupt(format!("merchant {mid}: currencies")))?,
        }))
    }

    fn read_card(&mut self, pan: &Pan) -> StoreResult<Option<CardState>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT id, sealed, status, pin_hash, pin_tries_max, pin_tries_used, daily_count_max,
                        permitted, account FROM cards WHERE pan_hash = ?1",
            )?
            .query_row([self.keys()?.pan_hash(pan.digits())], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, u8>(4)?,
                    r.get::<_, u8>(5)?,
                    r.get::<_, Option<u32>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, i64>(8)?,
                ))
            })
            .optional()?;
        let Some((
            id,
            sealed,
            status,
            pin_hash,
            tries_max,
            tries_used,
            count_max,
            permitted,
            account,
        )) = row
        else {
            return Ok(None);
        };
        let corrupt = |what: &str| StoreError::Corrupt(format!("card {pan}: {what}"));
        let (stored_pan, expiry) = self.keys()?.open_card(&sealed)?;
        if stored_pan.as_str() != pan.digits() {
            return Err(corrupt("its sealed number is another card's"));
        }
        Ok(Some(CardState {
            id,
            pan: pan.clone(),
            expiry,
            status: CardStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
            pin_hash,
            pin_tries_max: tries_max,
            pin_tries_used: tries_used,
            daily_count_max: count_max,
            permitted: kinds_from_text(permitted.as_deref())
                .map_err(|_| corrupt("permitted kinds"))?,
            account,
        }))
    }

    /// Every BIN on file with its institution.
    fn read_bins(&mut self) -> StoreResult<Bins> {
        let mut bins = HashMap::default();
        let mut stmt = self.conn.prepare_cached(
            "SELECT b.prefix, i.code, i.name, i.external, i.latency_ms, i.down
             FROM bins b JOIN institutions i ON i.code = b.institution",
        )?;
        let rows = stmt.query_map([], |r| {
            let external: bool = r.get(3)?;
            Ok((
                r.get::<_, String>(0)?,
                InstitutionState {
                    code: r.get(1)?,
                    name: r.get(2)?,
                    external: external.then_some(ExternalIssuer {
                        latency_ms: r.get(4)?,
                        down: r.get(5)?,
                    }),
                },
            ))
        })?;
        for row in rows {
            let (prefix, institution) = row?;
            if (1..=BIN_PREFIX_DIGITS_MAX).contains(&prefix.len()) {
                bins.insert(prefix, Arc::new(institution));
            }
        }
        let mut lengths: Vec<usize> = bins.keys().map(String::len).collect();
        lengths.sort_unstable_by(|a, b| b.cmp(a));
        lengths.dedup();
        Ok(Bins {
            by_prefix: bins,
            lengths,
        })
    }
}

impl Ledger for SqliteLedger<'_, '_> {
    fn open_chargeback_of(&mut self, txn_id: i64) -> StoreResult<Option<(i64, String)>> {
        Ok(self
            .db()?
            .prepare_cached(
                "SELECT id, state FROM disputes
                 WHERE txn_id = ?1 AND kind = 'chargeback' AND state != 'accepted'",
            )?
            .query_row([txn_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    fn record_retained(&mut self, card: &RetainedCard<'_>) -> StoreResult<()> {
        self.db()?
            .prepare_cached(
                "INSERT INTO retained_cards (txn_id, pan_masked, tid, mid, code, reason, created_ms, due_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (txn_id) DO NOTHING",
            )?
            .execute(params![
                card.txn_id,
                card.pan_masked,
                card.tid,
                card.mid,
                card.code,
                card.reason,
                card.created_ms,
                card.due_ms
            ])?;
        Ok(())
    }

    fn flush(&mut self) -> StoreResult<()> {
        self.write_pending()
    }

    fn discard(&mut self) {
        self.pending = None;
        // The totals this request moved are in the cache, and its transaction is rolled
        // back: nothing the cache holds may outlive it.
        if let Some(cache) = self.cache.as_deref_mut() {
            cache.clear();
        }
    }

    fn terminal(&mut self, tid: &Tid) -> StoreResult<Option<Arc<TerminalState>>> {
        if let Some(hit) = self.cache.as_deref().and_then(|c| c.terminals.get(tid)) {
            return Ok(hit.clone());
        }
        let found = self.read_terminal(tid)?.map(Arc::new);
        if let Some(cache) = self.cache.as_deref_mut() {
            bounded_insert(&mut cache.terminals, *tid, found.clone());
        }
        Ok(found)
    }

    fn merchant(&mut self, mid: &Mid) -> StoreResult<Option<Arc<MerchantState>>> {
        if let Some(hit) = self.cache.as_deref().and_then(|c| c.merchants.get(mid)) {
            return Ok(hit.clone());
        }
        let found = self.read_merchant(mid)?.map(Arc::new);
        if let Some(cache) = self.cache.as_deref_mut() {
            bounded_insert(&mut cache.merchants, *mid, found.clone());
        }
        Ok(found)
    }

    fn card(&mut self, pan: &Pan) -> StoreResult<Option<Arc<CardState>>> {
        if let Some(hit) = self
            .cache
            .as_deref()
            .and_then(|c| c.cards.get(pan.digits()))
        {
            return Ok(hit.clone());
        }
        let found = self.read_card(pan)?.map(Arc::new);
        if let Some(cache) = self.cache.as_deref_mut() {
            if cache.cards.len() >= WRITER_CACHE_ENTRIES_MAX {
                cache.cards.clear();
                cache.card_pans.clear();
            }
            if let Some(card) = &found {
                cache.card_pans.insert(card.id, pan.digits().to_owned());
            }
            cache.cards.insert(pan.digits().to_owned(), found.clone());
        }
        Ok(found)
    }

    fn institution_for(&mut self, pan: &Pan) -> StoreResult<Option<Arc<InstitutionState>>> {
        // The BINs are read once: for the writer's cache, or for this ledger alone.
        if self.bins().is_none() {
            let bins = self.read_bins()?;
            match self.cache.as_deref_mut() {
                Some(cache) => cache.bins = Some(bins),
                None => self.bins = Some(bins),
            }
        }
        Ok(self
            .bins()
            .and_then(|b| b.longest_prefix_of(pan.digits()))
            .cloned())
    }

    fn set_working_keys(
        &mut self,
        tid: &Tid,
        pik: &SecretKey,
        mak: &SecretKey,
        mac_key: &SecretKey,
        now_ms: i64,
    ) -> StoreResult<MacKey> {
        let keys = self.keys()?;
        let pik = keys.wrap_key(KeyRole::Pik, tid.as_str(), pik)?;
        let (mak, in_use) = keys.wrap_mak(tid.as_str(), mak, mac_key)?;
        self.conn
            .prepare_cached(
                "UPDATE terminals SET pik = ?2, mak = ?3, signed_in_ms = ?4 WHERE tid = ?1",
            )?
            .execute(params![tid.as_str(), pik, mak, now_ms])?;
        self.forget_terminal(tid);
        Ok(in_use)
    }

    fn clear_working_keys(&mut self, tid: &Tid) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE terminals SET pik = NULL, mak = NULL WHERE tid = ?1")?
            .execute([tid.as_str()])?;
        self.forget_terminal(tid);
        Ok(())
    }

    fn set_terminal_batch(&mut self, tid: &Tid, batch: Batch) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE terminals SET batch = ?2 WHERE tid = ?1")?
            .execute(params![tid.as_str(), batch.value()])?;
        self.forget_terminal(tid);
        Ok(())
    }

    fn set_pin_tries(&mut self, card_id: i64, tries_used: u8) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE cards SET pin_tries_used = ?2 WHERE id = ?1")?
            .execute(params![card_id, tries_used])?;
        if let Some(cache) = self.cache.as_deref_mut() {
            cache.forget_card(card_id);
        }
        Ok(())
    }

    fn find_by_key(&mut self, key: &TxnKey) -> StoreResult<Option<TxnRecord>> {
        // One seek answers both questions an original request asks of its trace: was it
        // seen (this MTI), and did its reversal (0400) arrive first — the second is kept
        // for `find_reversal_of` until the next write.
        let class = std::str::from_utf8(&key.class).unwrap_or("????");
        if self.trace_unseen(key)? {
            self.reversal_seen =
                (class != "0400").then_some(((key.tid, key.mid, key.batch, key.stan), None));
            return Ok(None);
        }
        let conn = self.db()?;
        let mut fallback;
        let stmt = match self.hot.as_deref_mut() {
            Some(hot) => &mut hot.find_by_key,
            None => {
                fallback = conn.prepare_cached(FIND_BY_KEY_SQL)?;
                &mut fallback
            }
        };
        // The trace's rows are next to each other in the key (tid, mid, batch, stan, mti):
        // one seek and a step or two (an `IN` list would build a temporary table).
        let rows = stmt.query_map(
            params![
                key.tid.as_str(),
                key.mid.as_str(),
                key.batch.value(),
                key.stan.value()
            ],
            |r| Ok((txn_row(r)?, r.get::<_, String>(22)?)),
        )?;
        let (mut found, mut reversal) = (None, None);
        for row in rows {
            let (record, mti) = row?;
            if mti == class {
                found = Some(record);
            } else if mti == "0400" && record.reversal {
                reversal = Some(record);
            }
        }
        self.reversal_seen =
            (class != "0400").then_some(((key.tid, key.mid, key.batch, key.stan), reversal));
        Ok(found)
    }

    fn find_reversal_of(
        &mut self,
        tid: &Tid,
        mid: &Mid,
        batch: Batch,
        stan: Stan,
    ) -> StoreResult<Option<TxnRecord>> {
        if let Some((seen_key, seen)) = self.reversal_seen.take()
            && seen_key == (*tid, *mid, batch, stan)
        {
            return Ok(seen);
        }
        const SQL: &str = select_txn!(
            "FROM transactions
             WHERE tid = ?1 AND mid = ?2 AND batch = ?3 AND stan = ?4 AND mti = '0400' AND idem = 1
               AND reversal = 1"
        );
        Ok(self
            .db()?
            .prepare_cached(SQL)?
            .query_row(
                params![tid.as_str(), mid.as_str(), batch.value(), stan.value()],
                txn_row,
            )
            .optional()?)
    }

    fn find_by_trace(
        &mut self,
        tid: &Tid,
        mid: &Mid,
        batch: Option<Batch>,
        stan: Stan,
        kinds: &[TransactionKind],
    ) -> StoreResult<Option<TxnRecord>> {
        // With a batch, a seek in the idempotency key; without, a scan of the terminal's
        // rows under the key's (tid, mid) prefix.
        let batch_rule = if batch.is_some() {
            "batch = ?4"
        } else {
            "?4 IS NULL"
        };
        let sql = format!(
            "SELECT {TXN_COLUMNS} FROM transactions
             WHERE tid = ?1 AND mid = ?2 AND {batch_rule} AND stan = ?3
               AND reversal = 0 AND idem = 1 AND kind IN ({})
             ORDER BY id DESC LIMIT 1",
            kind_list(kinds)
        );
        Ok(self
            .db()?
            .prepare_cached(&sql)?
            .query_row(
                params![
                    tid.as_str(),
                    mid.as_str(),
                    stan.value(),
                    batch.map(|b| b.value())
                ],
                txn_row,
            )
            .optional()?)
    }

    fn find_by_rrn(
        &mut self,
        mid: &Mid,
        rrn: &str,
        kinds: &[TransactionKind],
    ) -> StoreResult<Option<TxnRecord>> {
        // The host's RRN is its row id in twelve digits (`engine::rrn_of`): the row is
        // found by its key, and its stored RRN must still be the one asked for.
        let Some(id) = rrn_id(rrn) else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {TXN_COLUMNS} FROM transactions
             WHERE id = ?3 AND mid = ?1 AND rrn = ?2 AND reversal = 0 AND kind IN ({})",
            kind_list(kinds)
        );
        Ok(self
            .settled(id)?
            .prepare_cached(&sql)?
            .query_row(params![mid.as_str(), rrn, id], txn_row)
            .optional()?)
    }

    fn find_pre_auth(
        &mut self,
        mid: &Mid,
        card_id: i64,
        auth_code: &str,
    ) -> StoreResult<Option<TxnRecord>> {
        const SQL: &str = select_txn!(
            "FROM transactions
             WHERE mid = ?1 AND card_id = ?2 AND auth_code = ?3 AND kind = 'pre-auth'
               AND reversal = 0 AND code = '00'
             ORDER BY id DESC LIMIT 1"
        );
        Ok(self
            .db()?
            .prepare_cached(SQL)?
            .query_row(params![mid.as_str(), card_id, auth_code], txn_row)
            .optional()?)
    }

    fn txn(&mut self, id: i64) -> StoreResult<Option<TxnRecord>> {
        const SQL: &str = select_txn!("FROM transactions WHERE id = ?1");
        Ok(self
            .settled(id)?
            .prepare_cached(SQL)?
            .query_row([id], txn_row)
            .optional()?)
    }

    fn insert_txn(&mut self, t: &NewTxn<'_>) -> StoreResult<i64> {
        self.reversal_seen = None;
        self.write_pending()?;
        let (tid, mid, batch, stan, mti, idem) = match &t.key {
            Some(k) => (
                Some(k.tid.as_str()),
                Some(k.mid.as_str()),
                Some(k.batch.value()),
                Some(k.stan.value()),
                std::str::from_utf8(&k.class).unwrap_or(t.mti),
                true,
            ),
            None => (t.tid, t.mid, t.batch, t.stan, t.mti, false),
        };
        let id = self.take_txn_id()?;
        if let (Some(k), Some(cache)) = (&t.key, self.cache.as_deref_mut()) {
            cache.traces.insert(k.tid, k.mid, k.batch, k.stan);
        }
        let amount_fen = t
            .amount_fen
            .map(|a| {
                i64::try_from(a)
                    .map_err(|_| StoreError::Corrupt(format!("amount {a} fen too large")))
            })
            .transpose()?;
        self.move_days(
            &DayShare {
                kind: t.kind.map(|k| k.slug()),
                reversal: t.reversal,
                mid,
                card_id: t.card_id,
                day: t.day,
                amount_fen: amount_fen.unwrap_or(0),
            },
            None,
            t.state,
        )?;
        self.pending = Some(PendingTxn {
            id,
            kind: t.kind.map(|k| k.slug()),
            reversal: t.reversal,
            mti: mti.to_owned(),
            tid: tid.map(str::to_owned),
            mid: mid.map(str::to_owned),
            batch,
            stan,
            idem,
            request_hash: t.request_hash.map(str::to_owned),
            amount_fen,
            card_id: t.card_id,
            pan_masked: t.pan_masked.map(str::to_owned),
            rrn: None,
            auth_code: t.auth_code.map(str::to_owned),
            day: t.day,
            mmdd: t.mmdd.to_owned(),
            hhmmss: t.hhmmss.to_owned(),
            created_ms: t.created_ms,
            code: t.code.to_owned(),
            reason: t.reason.to_owned(),
            state: t.state,
            original_id: t.original_id,
            reply: None,
            fwd: t.fwd,
            postings: Vec::new(),
        });
        Ok(id)
    }

    fn set_txn_answer(
        &mut self,
        id: i64,
        rrn: &str,
        auth_code: Option<&str>,
        reply: Vec<u8>,
    ) -> StoreResult<()> {
        self.reversal_seen = None;
        if let Some(p) = self.pending.as_mut().filter(|p| p.id == id) {
            p.rrn = Some(rrn.to_owned());
            if let Some(auth) = auth_code {
                p.auth_code = Some(auth.to_owned());
            }
            p.reply = Some(reply);
            return self.write_pending();
        }
        self.db()?
            .prepare_cached(
                "UPDATE transactions SET rrn = ?2, auth_code = coalesce(?3, auth_code), reply = ?4 WHERE id = ?1",
            )?
            .execute(params![id, rrn, auth_code, reply])?;
        Ok(())
    }

    fn set_txn_state(&mut self, id: i64, state: TxnState) -> StoreResult<()> {
        self.reversal_seen = None;
        let conn = self.settled(id)?;
        let row = conn
            .prepare_cached(
                "SELECT kind, reversal, state, mid, card_id, day, amount_fen
                 FROM transactions WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                ))
            })
            .optional()?;
        let Some((kind, reversal, from, mid, card_id, day, amount_fen)) = row else {
            return Err(StoreError::Corrupt(format!(
                "transaction {id} is not on file"
            )));
        };
        let from = TxnState::parse(&from)
            .ok_or_else(|| StoreError::Corrupt(format!("transaction {id}: state {from:?}")))?;
        conn.prepare_cached("UPDATE transactions SET state = ?2 WHERE id = ?1")?
            .execute(params![id, state.as_str()])?;
        self.move_days(
            &DayShare {
                kind: kind.as_deref(),
                reversal,
                mid: mid.as_deref(),
                card_id,
                day,
                amount_fen: amount_fen.unwrap_or(0),
            },
            Some(from),
            state,
        )
    }

    fn add_refunded(&mut self, id: i64, amount_fen: u64) -> StoreResult<()> {
        self.reversal_seen = None;
        self.settled(id)?
            .prepare_cached(
                "UPDATE transactions SET refunded_fen = refunded_fen + ?2 WHERE id = ?1",
            )?
            .execute(params![id, amount_fen as i64])?;
        Ok(())
    }

    fn note_txn_link(&mut self, id: i64, original_id: i64) -> StoreResult<()> {
        self.reversal_seen = None;
        self.settled(id)?
            .prepare_cached("UPDATE transactions SET original_id = ?2 WHERE id = ?1")?
            .execute(params![id, original_id])?;
        Ok(())
    }

    fn transfer(
        &mut self,
        txn_id: i64,
        debit: i64,
        credit: i64,
        amount_fen: u64,
    ) -> StoreResult<()> {
        let amount = i64::try_from(amount_fen)
            .map_err(|_| StoreError::Corrupt(format!("amount {amount_fen} fen too large")))?;
        assert!(
            debit != credit,
            "a transfer moves money between two accounts"
        );
        self.post(txn_id, debit, -amount)?;
        self.post(txn_id, credit, amount)?;
        self.add_balance(debit, -amount)?;
        self.add_balance(credit, amount)
    }

    fn undo_postings(&mut self, txn_id: i64, original_id: i64) -> StoreResult<()> {
        let rows: Vec<(i64, i64)> = self
            .settled(original_id)?
            .prepare_cached(
                "SELECT account, amount_fen FROM postings WHERE txn_id = ?1 ORDER BY leg",
            )?
            .query_map([original_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        assert_eq!(
            rows.iter().map(|r| r.1).sum::<i64>(),
            0,
            "the postings of a transaction balance"
        );
        for (account, amount) in rows {
            self.post(txn_id, account, -amount)?;
            self.add_balance(account, -amount)?;
        }
        Ok(())
    }

    fn balance(&mut self, account: i64) -> StoreResult<i64> {
        if let Some((balance, _)) = self.account_tally(account)? {
            return Ok(balance.value);
        }
        Ok(self
            .conn
            .prepare_cached("SELECT balance_fen FROM accounts WHERE id = ?1")?
            .query_row([account], |r| r.get(0))?)
    }

    fn held(&mut self, account: i64) -> StoreResult<u64> {
        let held: i64 = match self.account_tally(account)? {
            Some((_, held)) => held.value,
            None => self
                .conn
                .prepare_cached("SELECT held_fen FROM accounts WHERE id = ?1")?
                .query_row([account], |r| r.get(0))?,
        };
        u64::try_from(held).map_err(|_| {
            StoreError::Corrupt(format!(
                "account {account} holds {held} fen, less than nothing"
            ))
        })
    }

    fn place_hold(&mut self, txn_id: i64, account: i64, amount_fen: u64) -> StoreResult<()> {
        // The hold names its transaction row, which is written first.
        self.settled(txn_id)?
            .prepare_cached(
                "INSERT INTO holds (txn_id, account, amount_fen, open) VALUES (?1, ?2, ?3, 1)",
            )?
            .execute(params![txn_id, account, amount_fen as i64])?;
        self.add_held(account, amount_fen as i64)
    }

    fn set_hold_open(&mut self, txn_id: i64, open: bool) -> StoreResult<()> {
        // Only a hold that changes state moves the account's held amount.
        let changed: Option<(i64, i64)> = self
            .conn
            .prepare_cached(
                "UPDATE holds SET open = ?2 WHERE txn_id = ?1 AND open != ?2
                 RETURNING account, amount_fen",
            )?
            .query_row(params![txn_id, open], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match changed {
            Some((account, amount)) => self.add_held(account, if open { amount } else { -amount }),
            None => Ok(()),
        }
    }

    fn hold_amount(&mut self, txn_id: i64) -> StoreResult<Option<(u64, bool)>> {
        Ok(self
            .conn
            .prepare_cached("SELECT amount_fen, open FROM holds WHERE txn_id = ?1")?
            .query_row([txn_id], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
            .optional()?)
    }

    fn merchant_debits_on(&mut self, mid: &Mid, day: i64) -> StoreResult<u64> {
        let sum = match self.merchant_day_tally(mid, day)? {
            Some(total) => total.value,
            None => read_merchant_day(self.conn, mid, day)?,
        };
        u64::try_from(sum).map_err(|_| {
            StoreError::Corrupt(format!("merchant {mid}: debits of day {day} are {sum} fen"))
        })
    }

    fn card_debit_count_on(&mut self, card_id: i64, day: i64) -> StoreResult<u32> {
        let count = match self.card_day_tally(card_id, day)? {
            Some(total) => total.value,
            None => read_card_day(self.conn, card_id, day)?,
        };
        u32::try_from(count).map_err(|_| {
            StoreError::Corrupt(format!("card {card_id}: {count} payments on day {day}"))
        })
    }

    fn batch_totals(&mut self, tid: &Tid, mid: &Mid, batch: Batch) -> StoreResult<Totals> {
        let mut totals = Totals::default();
        let mut stmt = self.db()?.prepare_cached(
            "SELECT kind, count(*), coalesce(sum(amount_fen), 0) FROM transactions
             WHERE tid = ?1 AND mid = ?3 AND batch = ?2
               AND reversal = 0 AND idem = 1 AND code = '00' AND state != 'reversed'
               AND kind IN ('sale', 'completion', 'completion-advice', 'refund', 'void', 'completion-void')
             GROUP BY kind",
        )?;
        let rows = stmt.query_map(params![tid.as_str(), batch.value(), mid.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (kind, count, sum) = row?;
            let sum = u64::try_from(sum)
                .map_err(|_| StoreError::Corrupt(format!("a batch's {kind} sum to {sum} fen")))?;
            let (count_total, fen_total) = match kind.as_str() {
                "sale" | "completion" | "completion-advice" => {
                    (&mut totals.debit_count, &mut totals.debit_fen)
                }
                _ => (&mut totals.credit_count, &mut totals.credit_fen),
            };
            let overflow = || StoreError::Corrupt(format!("a batch's {kind} totals overflow"));
            *count_total = count_total.checked_add(count).ok_or_else(overflow)?;
            *fen_total = fen_total.checked_add(sum).ok_or_else(overflow)?;
        }
        Ok(totals)
    }

    fn record_settlement(
        &mut self,
        tid: &Tid,
        batch: Batch,
        t: &Totals,
        h: &Totals,
        balanced: bool,
        now_ms: i64,
    ) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO settlements (tid, batch, terminal_debit_fen, terminal_debit_count,
                     terminal_credit_fen, terminal_credit_count, host_debit_fen, host_debit_count,
                     host_credit_fen, host_credit_count, balanced, settled_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                tid.as_str(),
                batch.value(),
                t.debit_fen as i64,
                t.debit_count,
                t.credit_fen as i64,
                t.credit_count,
                h.debit_fen as i64,
                h.debit_count,
                h.credit_fen as i64,
                h.credit_count,
                balanced,
                now_ms
            ])?;
        Ok(())
    }

    fn record_upload(
        &mut self,
        tid: &Tid,
        batch: Batch,
        d: &UploadedDetail,
        now_ms: i64,
    ) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO uploads (tid, batch, stan, pan_masked, amount_fen, received_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                tid.as_str(),
                batch.value(),
                d.stan,
                d.pan_masked,
                d.amount_fen as i64,
                now_ms
            ])?;
        Ok(())
    }

    fn close_batch(
        &mut self,
        tid: &Tid,
        batch: Batch,
        uploaded: u32,
        now_ms: i64,
    ) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE settlements SET uploaded = ?3, closed_ms = ?4
                 WHERE id = (SELECT max(id) FROM settlements WHERE tid = ?1 AND batch = ?2)",
            )?
            .execute(params![tid.as_str(), batch.value(), uploaded, now_ms])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_total_that_would_overflow_is_a_storage_error_not_a_wrap() {
        let mut tally = Tally::loaded(i64::MAX - 1);
        tally.add(1).unwrap();
        assert_eq!(tally.value, i64::MAX);
        assert!(matches!(tally.add(1), Err(StoreError::Corrupt(_))));
        assert_eq!(tally.value, i64::MAX, "a refused move leaves the total");
        assert!(checked_total(i64::MIN, -1).is_err());
        assert_eq!(checked_total(-5, 7).unwrap(), 2);
    }

    fn strict_tables(conn: &Connection) -> Vec<(String, bool)> {
        conn.prepare("SELECT name, strict FROM pragma_table_list WHERE schema = 'main' AND name NOT LIKE 'sqlite_%'")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn every_table_is_strict_and_an_overflowing_total_is_refused_not_made_a_float() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(dir.path()).unwrap();
        let tables = strict_tables(&conn);
        assert!(tables.len() >= 14, "{tables:?}");
        assert!(tables.iter().all(|(_, strict)| *strict), "{tables:?}");
        conn.execute(
            "INSERT INTO accounts (kind, name, balance_fen) VALUES ('card', 'c', ?1)",
            [i64::MAX],
        )
        .unwrap();
        // Without STRICT, SQLite turns an integer overflow into a REAL and stores it.
        let overflow = conn.execute("UPDATE accounts SET balance_fen = balance_fen + 1", []);
        assert!(overflow.is_err(), "a float in an INTEGER column is refused");
        let kind: String = conn
            .query_row("SELECT typeof(balance_fen) FROM accounts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kind, "integer");
    }

    #[test]
    fn a_database_of_schema_6_becomes_strict_with_its_rows_and_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        for (index, step) in MIGRATIONS.iter().enumerate().take(6) {
            let Migration::Sql(sql) = step else {
                panic!("the first six migrations are SQL")
            };
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", (index + 1) as i64)
                .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO accounts (id, kind, name, balance_fen) VALUES (1, 'funding', 'f', -500), (2, 'card', 'c', 500);
             INSERT INTO institutions VALUES ('I1', 'Bank', 0, 0, 0, 1);
             INSERT INTO postings (txn_id, leg, account, amount_fen) VALUES (9, 0, 1, -500), (9, 1, 2, 500);",
        )
        .unwrap();
        let indexes_before: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'index'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        drop(conn);
        let conn = open(dir.path()).unwrap();
        assert!(strict_tables(&conn).iter().all(|(_, strict)| *strict));
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version as usize, SCHEMA_VERSION);
        let sum: i64 = conn
            .query_row("SELECT sum(amount_fen) FROM postings", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sum, 0);
        let balances: i64 = conn
            .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(balances, 2);
        let indexes_after: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'index'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        // Schema 9 adds four indexes and two unique keys (`recon_adjustments`'s primary
        // key, `switch_disputes.reference`); schema 10 five indexes; schema 11 one index and
        // three unique keys.
        assert_eq!(indexes_after, indexes_before + 15, "every index rebuilt");
        let enforced: bool = conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert!(enforced, "foreign keys enforced again after the rebuild");
    }

    #[test]
    fn open_refuses_a_connection_that_is_not_durable() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(dir.path()).unwrap();
        check_durable(&conn).unwrap();
        conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
        assert!(matches!(check_durable(&conn), Err(StoreError::Settings(_))));
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .unwrap();
        assert!(matches!(check_durable(&conn), Err(StoreError::Settings(_))));
        let memory = Connection::open_in_memory().unwrap();
        assert!(check_durable(&memory).is_err(), "no WAL in memory");
    }
}
