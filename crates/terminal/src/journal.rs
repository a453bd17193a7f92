//! The journal of one terminal: a SQLite file (`journal.sqlite`) in the terminal's
//! directory, WAL with `synchronous = FULL`, each group of engine writes one transaction.
//!
//! It holds what a real terminal keeps in its battery-backed memory: configuration, the
//! working keys (as a software PIN pad would), counters, every transaction, the pending
//! reversal, the advice queue, the failure log and the maintenance log (seed 004), and the
//! closed batches (archived, never deleted).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, Row, params};

use poskit_domain::{AmountFen, AuthCode, ResponseCode, Rrn, TransactionKind};

use poskit_security::WorkingKeys;

use crate::code::Code;
use crate::engine::{
    Advice, Command, Config, JournalOp, PendingReversal, ReversalState, Snapshot, Totals, Txn,
    TxnState,
};
use crate::note::Cause;
use crate::sealed::{Role, Sealed};
use poskit_keystore::KekSource;

pub const JOURNAL_FILE: &str = "journal.sqlite";

mod tls;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal: {0}")]
    Db(#[source] rusqlite::Error),
    #[error("journal {path}: {why}")]
    Missing { path: String, why: String },
    #[error("journal holds bad data: {0}")]
    Corrupt(String),
    /// The key store refused (a wrong key-encryption key) or could not be reached.
    #[error("journal keys: {0}")]
    Keys(String),
    /// The open batch's debits or credits add up to more than the twelve digits of fen a
    /// settlement carries (field 48): it cannot be settled with true totals.
    #[error(
        "batch {batch:06}: its {side} total passes 9999999999.99, more than a settlement can carry (field 48)"
    )]
    TotalsTooLarge { batch: u32, side: &'static str },
}

impl From<rusqlite::Error> for JournalError {
    /// A row conversion that failed on the journal's own terms (a column that does not
    /// read as its type, a card the vault cannot open) is that error, not SQLite's.
    fn from(e: rusqlite::Error) -> JournalError {
        match e {
            rusqlite::Error::FromSqlConversionFailure(column, kind, inner) => {
                match inner.downcast::<JournalError>() {
                    Ok(ours) => *ours,
                    Err(inner) => JournalError::Db(rusqlite::Error::FromSqlConversionFailure(
                        column, kind, inner,
                    )),
                }
            }
            e => JournalError::Db(e),
        }
    }
}

pub type Result<T> = std::result::Result<T, JournalError>;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS config (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    tid TEXT NOT NULL, mid TEXT NOT NULL, tmk BLOB NOT NULL, host TEXT NOT NULL,
    response_timeout_ms INTEGER NOT NULL, reversal_attempts_max INTEGER NOT NULL,
    fail_after_approval INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    stan INTEGER NOT NULL, batch INTEGER NOT NULL, pik BLOB, mak BLOB
);
CREATE TABLE IF NOT EXISTS txns (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, batch INTEGER NOT NULL, stan INTEGER NOT NULL,
    amount_fen INTEGER, card_kind TEXT, card_data TEXT, rrn TEXT, auth_code TEXT, code TEXT,
    state TEXT NOT NULL, reversal TEXT NOT NULL, original_stan INTEGER, original_rrn TEXT,
    original_date TEXT, host_date TEXT, host_time TEXT, time_ms INTEGER NOT NULL,
    card_last4 TEXT, card_hash TEXT
);
CREATE INDEX IF NOT EXISTS txns_trace ON txns (batch, stan);
CREATE INDEX IF NOT EXISTS txns_kind ON txns (kind, batch, state);
CREATE INDEX IF NOT EXISTS txns_pre_auth ON txns (auth_code) WHERE kind = 'pre-auth';
CREATE TABLE IF NOT EXISTS reversal (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    txn_id INTEGER NOT NULL, kind TEXT NOT NULL, batch INTEGER NOT NULL, stan INTEGER NOT NULL,
    amount_fen INTEGER, card_kind TEXT, card_data TEXT, original_stan INTEGER,
    original_rrn TEXT, original_date TEXT, auth_code TEXT, reason TEXT NOT NULL,
    attempts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS advices (
    txn_id INTEGER PRIMARY KEY, kind TEXT NOT NULL, batch INTEGER NOT NULL, stan INTEGER NOT NULL,
    amount_fen INTEGER NOT NULL, card_kind TEXT NOT NULL, card_data TEXT NOT NULL,
    rrn TEXT NOT NULL, original_date TEXT NOT NULL, attempts INTEGER NOT NULL
);
-- cause: a Cause code (`declined:51`, `timeout` ...); English text in rows of earlier versions.
CREATE TABLE IF NOT EXISTS failures (
    id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, tid TEXT NOT NULL, operation TEXT NOT NULL,
    amount_fen INTEGER, code TEXT NOT NULL, cause TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS maintenance (
    id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    batch INTEGER PRIMARY KEY, closed_ms INTEGER NOT NULL, debit_fen INTEGER NOT NULL,
    debit_count INTEGER NOT NULL, credit_fen INTEGER NOT NULL, credit_count INTEGER NOT NULL,
    balanced INTEGER NOT NULL, uploaded INTEGER NOT NULL
);
"#;

/// A settled batch, archived.
#[derive(Clone, Debug)]
pub struct ClosedBatch {
    pub batch: u32,
    pub closed_ms: i64,
    pub totals: Totals,
    pub balanced: bool,
    /// Details uploaded (unbalanced batches).
    pub uploaded: u32,
}

/// One line of the failure log.
#[derive(Clone, Debug)]
pub struct Failure {
    pub time_ms: i64,
    pub tid: String,
    pub operation: String,
    pub amount_fen: Option<AmountFen>,
    pub code: Code,
    /// Kept as [`Cause::code`]; a line logged as English text by an earlier version reads
    /// back as [`Cause::Recorded`], so old journals need no migration.
    pub cause: Cause,
}

/// An amount as the journal stores it: INTEGER fen.
fn fen_column(amount: AmountFen) -> i64 {
    // At most twelve digits (the type's bound): well inside an i64.
    i64::try_from(amount.fen()).unwrap_or_else(|_| unreachable!("twelve digits of fen"))
}

/// Bad data in column `column` (`what`: table and column): a journal error, not a panic.
fn corrupt(column: usize, what: &str, why: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        Box::new(JournalError::Corrupt(format!("{what}: {why}"))),
    )
}

/// Column `column`'s text read by `parse` (NULL: `None`).
fn parsed<T, E: std::fmt::Display>(
    r: &Row<'_>,
    column: usize,
    what: &str,
    parse: impl Fn(&str) -> std::result::Result<T, E>,
) -> rusqlite::Result<Option<T>> {
    let Some(text) = r.get::<_, Option<String>>(column)? else {
        return Ok(None);
    };
    parse(&text)
        .map(Some)
        .map_err(|e| corrupt(column, what, e.to_string()))
}

/// Column `column`'s INTEGER fen as an amount (NULL: `None`).
fn amount_at(r: &Row<'_>, column: usize, what: &str) -> rusqlite::Result<Option<AmountFen>> {
    let Some(fen) = r.get::<_, Option<i64>>(column)? else {
        return Ok(None);
    };
    u64::try_from(fen)
        .ok()
        .and_then(|fen| AmountFen::new(fen).ok())
        .map(Some)
        .ok_or_else(|| corrupt(column, what, format!("{fen} is not 0 to 12 digits of fen")))
}

/// A value a NOT NULL column must have.
fn required<T>(value: Option<T>, column: usize, what: &str) -> rusqlite::Result<T> {
    value.ok_or_else(|| corrupt(column, what, "missing".into()))
}

fn rrn_at(r: &Row<'_>, column: usize, what: &str) -> rusqlite::Result<Option<Rrn>> {
    parsed(r, column, what, Rrn::parse)
}

fn auth_code_at(r: &Row<'_>, column: usize, what: &str) -> rusqlite::Result<Option<AuthCode>> {
    parsed(r, column, what, AuthCode::parse)
}

fn code_at(r: &Row<'_>, column: usize, what: &str) -> rusqlite::Result<Option<Code>> {
    parsed(r, column, what, Code::parse)
}

fn reason_at(r: &Row<'_>, column: usize, what: &str) -> rusqlite::Result<ResponseCode> {
    let reason = parsed(r, column, what, |text| {
        ResponseCode::parse(text).ok_or_else(|| format!("{text:?} is not a response code"))
    })?;
    required(reason, column, what)
}

fn write_txn(tx: &Connection, sealed: &Sealed, t: &Txn) -> Result<()> {
    // What the engine writes: a trace in range (the amount's type bounds it to field 4).
    assert!((1..=999_999).contains(&t.stan), "trace {}", t.stan);
    let card = t.card.as_ref().map(|c| sealed.seal_card(c)).transpose()?;
    let (ck, cd) = (
        card.as_ref().map(|c| c.kind),
        card.as_ref().map(|c| &c.data),
    );
    tx.prepare_cached("INSERT INTO txns (id, kind, batch, stan, amount_fen, card_kind, card_data, rrn, auth_code, code,
                 state, reversal, original_stan, original_rrn, original_date, host_date, host_time, time_ms,
                 card_last4, card_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)
             ON CONFLICT (id) DO UPDATE SET batch = ?3, stan = ?4, rrn = ?8, auth_code = ?9, code = ?10,
                 state = ?11, reversal = ?12, host_date = ?16, host_time = ?17")?.execute(params![
                t.id,
                t.kind.slug(),
                t.batch,
                t.stan,
                t.amount_fen.map(fen_column),
                ck,
                cd,
                t.rrn.as_ref().map(Rrn::as_str),
                t.auth_code.as_ref().map(AuthCode::as_str),
                t.code.as_ref().map(Code::as_str),
                t.state.as_str(),
                t.reversal.as_str(),
                t.original_stan,
                t.original_rrn.as_ref().map(Rrn::as_str),
                t.original_date,
                t.host_date,
                t.host_time,
                t.time_ms,
                card.as_ref().map(|c| &c.last4),
                card.as_ref().map(|c| &c.hash)
            ],
        )?;
    Ok(())
}

fn write_reversal(tx: &Connection, sealed: &Sealed, r: &PendingReversal) -> Result<()> {
    // A reversal keeps its original's trace; it is only ever written for one that was sent.
    assert!((1..=999_999).contains(&r.stan), "trace {}", r.stan);
    let card = r.card.as_ref().map(|c| sealed.seal_card(c)).transpose()?;
    let (ck, cd) = (card.as_ref().map(|c| c.kind), card.map(|c| c.data));
    tx.prepare_cached("INSERT INTO reversal (id, txn_id, kind, batch, stan, amount_fen, card_kind, card_data,
                 original_stan, original_rrn, original_date, auth_code, reason, attempts)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (id) DO UPDATE SET txn_id = ?1, kind = ?2, batch = ?3, stan = ?4,
                 amount_fen = ?5, card_kind = ?6, card_data = ?7, original_stan = ?8,
                 original_rrn = ?9, original_date = ?10, auth_code = ?11, reason = ?12, attempts = ?13")?.execute(params![
                r.txn_id,
                r.kind.slug(),
                r.batch,
                r.stan,
                r.amount_fen.map(fen_column),
                ck,
                cd,
                r.original_stan,
                r.original_rrn.as_ref().map(Rrn::as_str),
                r.original_date,
                r.auth_code.as_ref().map(AuthCode::as_str),
                r.reason.as_str(),
                r.attempts
            ],
        )?;
    tx.prepare_cached("UPDATE txns SET reversal = 'pending' WHERE id = ?1")?
        .execute([r.txn_id])?;
    Ok(())
}

fn write_advice(tx: &Connection, sealed: &Sealed, a: &Advice) -> Result<()> {
    assert!((1..=999_999).contains(&a.stan), "trace {}", a.stan);
    let card = sealed.seal_card(&a.card)?;
    let (ck, cd) = (card.kind, card.data);
    tx.prepare_cached("INSERT INTO advices (txn_id, kind, batch, stan, amount_fen, card_kind, card_data, rrn, original_date, attempts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (txn_id) DO UPDATE SET attempts = ?10")?.execute(params![
                a.txn_id,
                a.kind.slug(),
                a.batch,
                a.stan,
                fen_column(a.amount_fen),
                ck,
                cd,
                a.rrn.as_str(),
                a.original_date,
                a.attempts
            ],
        )?;
    Ok(())
}

pub struct Journal {
    conn: Connection,
    /// The key store and card vault: keys wrapped, card numbers encrypted.
    sealed: Sealed,
    /// The KEK file this open made (a terminal directory's own `kek`, first use).
    created_kek: Option<PathBuf>,
    /// Held while the journal is open: one process per terminal at a time (two would hand
    /// out the same trace and overwrite each other's pending reversal).
    _lock: Option<std::fs::File>,
}

/// The lock file beside the journal.
pub const LOCK_FILE: &str = "journal.lock";

fn lock(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| JournalError::Missing {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
    file.try_lock().map_err(|_| JournalError::Missing {
        path: dir.display().to_string(),
        why: "another poskit pos is using this terminal right now".into(),
    })?;
    Ok(file)
}

fn kind_of(text: &str) -> rusqlite::Result<TransactionKind> {
    TransactionKind::from_slug(text).ok_or(rusqlite::Error::InvalidQuery)
}

/// A failure of the card vault inside a row's conversion.
fn vault_error(e: JournalError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Blob, Box::new(e))
}

const TXN_COLUMNS: &str =
    "id, kind, batch, stan, amount_fen, card_kind, card_data, rrn, auth_code, code,
    state, reversal, original_stan, original_rrn, original_date, host_date, host_time, time_ms";

fn txn_row(sealed: &Sealed, r: &Row<'_>) -> rusqlite::Result<Txn> {
    Ok(Txn {
        id: r.get(0)?,
        kind: kind_of(&r.get::<_, String>(1)?)?,
        batch: r.get(2)?,
        stan: r.get(3)?,
        amount_fen: amount_at(r, 4, "txns.amount_fen")?,
        card: sealed
            .open_card(r.get(5)?, r.get(6)?)
            .map_err(vault_error)?,
        rrn: rrn_at(r, 7, "txns.rrn")?,
        auth_code: auth_code_at(r, 8, "txns.auth_code")?,
        code: code_at(r, 9, "txns.code")?,
        state: TxnState::parse(&r.get::<_, String>(10)?).unwrap_or(TxnState::Failed),
        reversal: ReversalState::parse(&r.get::<_, String>(11)?).unwrap_or(ReversalState::None),
        original_stan: r.get(12)?,
        original_rrn: rrn_at(r, 13, "txns.original_rrn")?,
        original_date: r.get(14)?,
        host_date: r.get(15)?,
        host_time: r.get(16)?,
        time_ms: r.get(17)?,
    })
}

impl Journal {
    /// The journal file of `dir` (created 0600), and its secrets opened with `kek`: a
    /// journal never opened with keys may get a new KEK file in `dir` (its path is
    /// returned, for the caller to tell the operator) and is sealed in place.
    fn connect(dir: &Path, kek: &KekSource) -> Result<(Connection, Sealed, Option<PathBuf>)> {
        let path = dir.join(JOURNAL_FILE);
        poskit_keystore::files::private_database(&path).map_err(|e| JournalError::Missing {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        let conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        tls::migrate(&conn)?;
        if let Some(id) = Sealed::wrapped_under(&conn)? {
            poskit_keystore::source::finish_rotation(kek, id)?;
        }
        let opened = poskit_keystore::open(kek, !Sealed::ever_wrapped(&conn)?)?;
        let sealed = Sealed::load(&conn, opened.store)?;
        sealed.seal_legacy(&conn)?;
        Ok((conn, sealed, opened.created))
    }

    /// Creates (or re-initializes the configuration of) the journal in `dir`.
    pub fn init(dir: &Path, kek: &KekSource, cfg: &Config, host: &str) -> Result<Journal> {
        std::fs::create_dir_all(dir).map_err(|e| JournalError::Missing {
            path: dir.display().to_string(),
            why: e.to_string(),
        })?;
        let lock = lock(dir)?;
        let (conn, sealed, created) = Self::connect(dir, kek)?;
        let mut journal = Self::configure(conn, sealed, cfg, host)?;
        journal._lock = Some(lock);
        journal.created_kek = created;
        Ok(journal)
    }

    /// Starts a clean terminal in `dir` (`poskit pos init --force`): a journal already
    /// there is not deleted but kept beside the new one as `journal-replaced-<now_ms>.sqlite`
    /// (its pending reversal and advices are not sent from the new one), and a new journal
    /// is initialized with `cfg`. Returns the new journal and where the old one was kept.
    pub fn replace(
        dir: &Path,
        kek: &KekSource,
        cfg: &Config,
        host: &str,
        now_ms: u64,
    ) -> Result<(Journal, Option<std::path::PathBuf>)> {
        std::fs::create_dir_all(dir).map_err(|e| JournalError::Missing {
            path: dir.display().to_string(),
            why: e.to_string(),
        })?;
        let lock = lock(dir)?;
        let old = dir.join(JOURNAL_FILE);
        let kept = if old.is_file() {
            // Out of WAL mode first, so that the one file holds everything and no -wal or
            // -shm file is left to be mistaken for the new journal's.
            let conn = Connection::open(&old)?;
            conn.pragma_update(None, "journal_mode", "DELETE")?;
            drop(conn);
            let kept = dir.join(format!("journal-replaced-{now_ms}.sqlite"));
            std::fs::rename(&old, &kept).map_err(|e| JournalError::Missing {
                path: kept.display().to_string(),
                why: e.to_string(),
            })?;
            Some(kept)
        } else {
            None
        };
        assert!(!old.exists(), "the old journal is out of the way");
        let (conn, sealed, created) = Self::connect(dir, kek)?;
        let mut journal = Self::configure(conn, sealed, cfg, host)?;
        journal._lock = Some(lock);
        journal.created_kek = created;
        Ok((journal, kept))
    }

    /// A journal in memory, for simulated fleets: the same tables and writes, no file. A
    /// simulated crash drops the engine, not this journal (it stands for the terminal's
    /// non-volatile memory). No rollback journal either: a simulation ends on the first
    /// failed write, so no write group is ever undone, and copying every page before it
    /// changes was most of the simulation's time in long runs.
    pub fn in_memory(cfg: &Config, host: &str) -> Result<Journal> {
        let conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "journal_mode", "OFF")?;
        conn.execute_batch(SCHEMA)?;
        tls::migrate(&conn)?;
        // Nothing of it reaches a disk; its keys are sealed all the same, under a KEK
        // that lives as long as the process.
        let (kek, _) = poskit_keystore::LocalKek::generate("the memory of a simulated terminal")?;
        let sealed = Sealed::load(&conn, std::sync::Arc::new(kek))?;
        Self::configure(conn, sealed, cfg, host)
    }

    fn configure(conn: Connection, sealed: Sealed, cfg: &Config, host: &str) -> Result<Journal> {
        // A terminal with a reversal or advices still waiting keeps its identity: they
        // must go out under the TID and MID they were made with.
        let identity: Option<(String, String)> = conn
            .query_row("SELECT tid, mid FROM config WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        if let Some((tid, mid)) = identity
            && (tid != cfg.tid || mid != cfg.mid)
        {
            let waiting: i64 = conn.query_row(
                "SELECT (SELECT count(*) FROM reversal) + (SELECT count(*) FROM advices)",
                [],
                |r| r.get(0),
            )?;
            if waiting > 0 {
                return Err(JournalError::Corrupt(format!(
                    "terminal {tid} of merchant {mid} still has a reversal or advices waiting: settle before changing its identity"
                )));
            }
        }
        conn.execute(
            "INSERT INTO config (id, tid, mid, tmk, host, response_timeout_ms, reversal_attempts_max, fail_after_approval)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (id) DO UPDATE SET tid = ?1, mid = ?2, tmk = ?3, host = ?4,
                 response_timeout_ms = ?5, reversal_attempts_max = ?6, fail_after_approval = ?7",
            params![
                cfg.tid,
                cfg.mid,
                sealed.wrap(Role::Tmk, cfg.tmk.dangerous_expose())?,
                host,
                cfg.response_timeout_ms as i64,
                cfg.reversal_attempts_max,
                cfg.fail_after_approval
            ],
        )?;
        conn.execute(
            "INSERT INTO state (id, stan, batch) VALUES (1, 0, 1) ON CONFLICT (id) DO NOTHING",
            [],
        )?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Journal {
            conn,
            sealed,
            created_kek: None,
            _lock: None,
        })
    }

    /// Opens an initialized journal.
    pub fn open(dir: &Path, kek: &KekSource) -> Result<Journal> {
        if !dir.join(JOURNAL_FILE).is_file() {
            return Err(JournalError::Missing {
                path: dir.display().to_string(),
                why: "no terminal journal here (run `poskit pos --terminal DIR init ...` first)"
                    .into(),
            });
        }
        let lock = lock(dir)?;
        let (conn, sealed, created_kek) = Self::connect(dir, kek)?;
        Ok(Journal {
            conn,
            sealed,
            created_kek,
            _lock: Some(lock),
        })
    }

    /// Re-wraps this journal's keys under `to` (`poskit keys rotate --terminal`); the
    /// journal must have been opened with the KEK it is wrapped under now.
    pub fn rotate_kek(&self, to: &dyn poskit_keystore::KeyStore) -> Result<usize> {
        crate::sealed::rotate(&self.conn, self.sealed.store(), to)
    }

    /// The KEK file opening this journal made, if it made one (the operator should know:
    /// a real terminal keeps its KEK elsewhere).
    pub fn created_kek(&self) -> Option<&Path> {
        self.created_kek.as_deref()
    }

    /// The id of the KEK this journal's keys are wrapped under.
    pub fn kek_id(&self) -> poskit_keystore::KekId {
        self.sealed.store().kek_id()
    }

    /// `time_ms` (milliseconds since 1970, as the journal records times) as a local date
    /// and time, `YYYY-MM-DD HH:MM:SS`, in the zone of the process (`TZ`, else the system's).
    pub fn local_time(&self, time_ms: i64) -> Result<String> {
        Ok(self.conn.query_row(
            "SELECT strftime('%Y-%m-%d %H:%M:%S', ?1 / 1000, 'unixepoch', 'localtime')",
            [time_ms],
            |r| r.get(0),
        )?)
    }

    /// The configuration and the host address.
    pub fn config(&self) -> Result<(Config, String)> {
        let row = self
            .conn
            .query_row(
                "SELECT tid, mid, tmk, host, response_timeout_ms, reversal_attempts_max, fail_after_approval FROM config WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, u32>(5)?,
                        r.get::<_, bool>(6)?,
                    ))
                },
            )
            .optional()?
            .ok_or_else(|| JournalError::Corrupt("no configuration".into()))?;
        let tmk = self.sealed.unwrap(Role::Tmk, &row.2)?;
        Ok((
            Config {
                tid: row.0,
                mid: row.1,
                tmk,
                response_timeout_ms: row.4.max(1) as u64,
                reversal_attempts_max: row.5.max(1),
                fail_after_approval: row.6,
            },
            row.3,
        ))
    }

    /// Sets the test switch that makes every approval fail afterwards (printer jam).
    pub fn set_fail_after_approval(&self, on: bool) -> Result<()> {
        self.conn.execute(
            "UPDATE config SET fail_after_approval = ?1 WHERE id = 1",
            [on],
        )?;
        Ok(())
    }

    pub fn set_response_timeout_ms(&self, ms: u64) -> Result<()> {
        self.conn.execute(
            "UPDATE config SET response_timeout_ms = ?1 WHERE id = 1",
            [ms as i64],
        )?;
        Ok(())
    }

    /// What the engine starts from.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let (stan, batch, pik, mak): (u32, u32, Option<Vec<u8>>, Option<Vec<u8>>) = self
            .conn
            .prepare_cached("SELECT stan, batch, pik, mak FROM state WHERE id = 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        let keys = match (pik, mak) {
            (Some(pik), Some(mak)) => Some(WorkingKeys {
                pik: self.sealed.unwrap(Role::Pik, &pik)?,
                mak: self.sealed.unwrap(Role::Mak, &mak)?,
                tdk: None,
            }),
            _ => None,
        };
        let reversal = self
            .conn
            .prepare_cached(
                "SELECT txn_id, kind, batch, stan, amount_fen, card_kind, card_data, original_stan,
                        original_rrn, original_date, auth_code, reason, attempts FROM reversal WHERE id = 1",
            )?
            .query_row([], |r| {
                    Ok(PendingReversal {
                        txn_id: r.get(0)?,
                        kind: kind_of(&r.get::<_, String>(1)?)?,
                        batch: r.get(2)?,
                        stan: r.get(3)?,
                        amount_fen: amount_at(r, 4, "reversal.amount_fen")?,
                        card: self.sealed.open_card(r.get(5)?, r.get(6)?).map_err(vault_error)?,
                        original_stan: r.get(7)?,
                        original_rrn: rrn_at(r, 8, "reversal.original_rrn")?,
                        original_date: r.get(9)?,
                        auth_code: auth_code_at(r, 10, "reversal.auth_code")?,
                        reason: reason_at(r, 11, "reversal.reason")?,
                        attempts: r.get(12)?,
                    })
                },
            )
            .optional()?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT txn_id, kind, batch, stan, amount_fen, card_kind, card_data, rrn, original_date, attempts
             FROM advices ORDER BY txn_id",
        )?;
        let advices = stmt
            .query_map([], |r| {
                Ok(Advice {
                    txn_id: r.get(0)?,
                    kind: kind_of(&r.get::<_, String>(1)?)?,
                    batch: r.get(2)?,
                    stan: r.get(3)?,
                    amount_fen: required(
                        amount_at(r, 4, "advices.amount_fen")?,
                        4,
                        "advices.amount_fen",
                    )?,
                    card: self
                        .sealed
                        .open_card(r.get(5)?, r.get(6)?)
                        .map_err(vault_error)?
                        .ok_or(rusqlite::Error::InvalidQuery)?,
                    rrn: required(rrn_at(r, 7, "advices.rrn")?, 7, "advices.rrn")?,
                    original_date: r.get(8)?,
                    attempts: r.get(9)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let next_txn_id: i64 = self
            .conn
            .prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM txns")?
            .query_row([], |r| r.get(0))?;
        let batch_txns: u32 = self
            .conn
            .prepare_cached("SELECT count(*) FROM txns WHERE batch = ?1 AND kind != 'balance'")?
            .query_row([batch], |r| r.get(0))?;
        Ok(Snapshot {
            batch_txns,
            stan,
            batch,
            keys,
            reversal,
            advices,
            next_txn_id,
        })
    }

    /// Applies one group of engine writes atomically and durably.
    pub fn apply(&mut self, ops: &[JournalOp], now_ms: i64) -> Result<()> {
        let tid: String = self
            .conn
            .prepare_cached("SELECT tid FROM config WHERE id = 1")?
            .query_row([], |r| r.get(0))?;
        let tx = self.conn.transaction()?;
        for op in ops {
            match op {
                JournalOp::Txn(t) => write_txn(&tx, &self.sealed, t)?,
                JournalOp::Counters { stan, batch } => {
                    tx.prepare_cached("UPDATE state SET stan = ?1, batch = ?2 WHERE id = 1")?
                        .execute(params![stan, batch])?;
                }
                JournalOp::Keys(keys) => {
                    let (pik, mak) = match keys {
                        Some((p, m)) => (
                            Some(self.sealed.wrap(Role::Pik, p)?),
                            Some(self.sealed.wrap(Role::Mak, m)?),
                        ),
                        None => (None, None),
                    };
                    tx.prepare_cached("UPDATE state SET pik = ?1, mak = ?2 WHERE id = 1")?
                        .execute(params![pik, mak])?;
                }
                JournalOp::Reversal(None) => {
                    tx.prepare_cached("DELETE FROM reversal")?.execute([])?;
                }
                JournalOp::Reversal(Some(r)) => write_reversal(&tx, &self.sealed, r)?,
                JournalOp::ReversalEnded { txn_id, state } => {
                    // A transaction still "sent" (the terminal crashed before its answer)
                    // ends failed: its answer never came.
                    tx.prepare_cached(
                        "UPDATE txns SET reversal = ?2,
                             state = CASE WHEN state = 'sent' THEN 'failed' ELSE state END,
                             code = coalesce(code, 'L03')
                         WHERE id = ?1",
                    )?
                    .execute(params![txn_id, state.as_str()])?;
                }
                JournalOp::Voided { batch, stan } => {
                    tx.prepare_cached("UPDATE txns SET state = 'voided'
                         WHERE batch = ?1 AND stan = ?2 AND state = 'approved' AND kind IN ('sale', 'completion')")?.execute(params![batch, stan],
                    )?;
                }
                JournalOp::PreAuthClosed { auth_code } => {
                    tx.prepare_cached("UPDATE txns SET state = 'closed' WHERE kind = 'pre-auth' AND auth_code = ?1 AND state = 'approved'")?.execute([auth_code.as_str()],
                    )?;
                }
                JournalOp::AdviceQueued(a) => write_advice(&tx, &self.sealed, a)?,
                JournalOp::AdviceDone { txn_id } => {
                    tx.prepare_cached("DELETE FROM advices WHERE txn_id = ?1")?
                        .execute([txn_id])?;
                }
                JournalOp::Failure {
                    operation,
                    amount_fen,
                    code,
                    cause,
                } => {
                    tx.prepare_cached("INSERT INTO failures (time_ms, tid, operation, amount_fen, code, cause) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(params![now_ms, tid, operation, amount_fen.map(fen_column), code.as_str(), cause.code()],
                    )?;
                }
                JournalOp::Maintenance { event, detail } => {
                    tx.prepare_cached(
                        "INSERT INTO maintenance (time_ms, event, detail) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![now_ms, event, detail])?;
                }
                JournalOp::BatchClosed {
                    batch,
                    totals,
                    balanced,
                    uploaded,
                } => {
                    tx.prepare_cached("INSERT OR REPLACE INTO batches (batch, closed_ms, debit_fen, debit_count, credit_fen, credit_count, balanced, uploaded)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?.execute(params![
                            batch,
                            now_ms,
                            fen_column(totals.debit_fen),
                            totals.debit_count,
                            fen_column(totals.credit_fen),
                            totals.credit_count,
                            balanced,
                            uploaded
                        ],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The transaction of this batch and trace.
    pub fn txn_by_stan(&self, batch: u32, stan: u32) -> Result<Option<Txn>> {
        let sql = format!(
            "SELECT {TXN_COLUMNS} FROM txns WHERE batch = ?1 AND stan = ?2 ORDER BY id DESC LIMIT 1"
        );
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(params![batch, stan], |r| txn_row(&self.sealed, r))
            .optional()?)
    }

    /// The newest approved transaction of `kind` in the open batch.
    pub fn last_approved(&self, kind: TransactionKind, batch: u32) -> Result<Option<Txn>> {
        let sql = format!(
            "SELECT {TXN_COLUMNS} FROM txns WHERE kind = ?1 AND batch = ?2 AND state = 'approved' ORDER BY id DESC LIMIT 1"
        );
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(params![kind.slug(), batch], |r| txn_row(&self.sealed, r))
            .optional()?)
    }

    /// Every transaction, oldest first (`batch` to narrow).
    pub fn txns(&self, batch: Option<u32>) -> Result<Vec<Txn>> {
        let sql =
            format!("SELECT {TXN_COLUMNS} FROM txns WHERE (?1 IS NULL OR batch = ?1) ORDER BY id");
        let mut stmt = self.conn.prepare(&sql)?;
        Ok(stmt
            .query_map([batch], |r| txn_row(&self.sealed, r))?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    pub fn failures(&self) -> Result<Vec<Failure>> {
        let mut stmt = self.conn.prepare(
            "SELECT time_ms, tid, operation, amount_fen, code, cause FROM failures ORDER BY id",
        )?;
        Ok(stmt
            .query_map([], |r| {
                Ok(Failure {
                    time_ms: r.get(0)?,
                    tid: r.get(1)?,
                    operation: r.get(2)?,
                    amount_fen: amount_at(r, 3, "failures.amount_fen")?,
                    code: required(code_at(r, 4, "failures.code")?, 4, "failures.code")?,
                    cause: Cause::parse(&r.get::<_, String>(5)?),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Maintenance log lines: (time, event, detail).
    pub fn maintenance(&self) -> Result<Vec<(i64, String, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT time_ms, event, detail FROM maintenance ORDER BY id")?;
        Ok(stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The settlement of the current batch (§4.4): debits are sales and completions that
    /// went through (voided ones included: their void is a credit), credits are refunds,
    /// voids and completion voids; transactions the terminal reported failed count nowhere.
    pub fn settle_command(&self) -> Result<Command> {
        let snap = self.snapshot()?;
        let mut totals = Totals::ZERO;
        let mut details = Vec::new();
        let too_large = |side| JournalError::TotalsTooLarge {
            batch: snap.batch,
            side,
        };
        for t in self.txns(Some(snap.batch))? {
            let amount = t.amount_fen.unwrap_or(AmountFen::ZERO);
            let debit = matches!(
                t.kind,
                TransactionKind::Sale | TransactionKind::PreAuthCompletion
            ) && matches!(t.state, TxnState::Approved | TxnState::Voided);
            let credit = matches!(
                t.kind,
                TransactionKind::Refund
                    | TransactionKind::Void
                    | TransactionKind::PreAuthCompletionVoid
            ) && t.state == TxnState::Approved;
            if debit {
                totals.add_debit(amount).map_err(|_| too_large("debit"))?;
            }
            if credit {
                totals.add_credit(amount).map_err(|_| too_large("credit"))?;
            }
            if debit || credit {
                details.push(t);
            }
        }
        Ok(Command::Settle { totals, details })
    }

    /// Closed batches, oldest first.
    pub fn batches(&self) -> Result<Vec<ClosedBatch>> {
        let mut stmt = self.conn.prepare(
            "SELECT batch, closed_ms, debit_fen, debit_count, credit_fen, credit_count, balanced, uploaded FROM batches ORDER BY batch",
        )?;
        Ok(stmt
            .query_map([], |r| {
                Ok(ClosedBatch {
                    batch: r.get(0)?,
                    closed_ms: r.get(1)?,
                    totals: Totals {
                        debit_fen: required(
                            amount_at(r, 2, "batches.debit_fen")?,
                            2,
                            "batches.debit_fen",
                        )?,
                        debit_count: r.get(3)?,
                        credit_fen: required(
                            amount_at(r, 4, "batches.credit_fen")?,
                            4,
                            "batches.credit_fen",
                        )?,
                        credit_count: r.get(5)?,
                    },
                    balanced: r.get(6)?,
                    uploaded: r.get(7)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }
}
