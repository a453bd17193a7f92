//! One generated clearing day for `poskit bench recon`: the host's ledger (a real data
//! directory), the switch's ACOMA file and the terminals' settlements, with a known number
//! of breaks of each class. Every row follows from its id ([`Plan::role`]), so the ledger
//! and the file are written on two threads without sharing anything.
//!
//! Classes D and F need a host transaction still being processed, which poskit's ledger
//! never keeps (it commits each answer whole): none is generated.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::Context;
use poskit_clearing::{ClearingDate, FileKind, Profile, TxnRecord, file_name, write_records};
use poskit_domain::calendar::ClearingCut;
use poskit_host::clock::HostTime;
use poskit_host::switch::forward_stan_of;
use rusqlite::{Connection, params};

/// The acquirer the files and the run use (`poskit recon`'s default).
pub const ACQUIRER: &str = "08010000";
/// The generated clearing day.
pub const DATE: &str = "20260304";
/// Rows written per ledger transaction and per chunk of the file.
const ROWS_PER_COMMIT: u64 = 200_000;
const RECORDS_PER_CHUNK: u64 = 20_000;
/// Nothing is generated this close to the cut-off (the run awaits what the switch lacks
/// there rather than calling it class E).
const CUT_MARGIN_MS: i64 = 30 * 60 * 1000;

/// What one id of the day is on each side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Approved on both sides, the same.
    Matched,
    /// An on-us card: the host's ledger only, never at the switch.
    OnUs,
    /// C: the host said 98 (timeout), the switch approved.
    C,
    /// B: the switch's record only (the id is absent from the ledger).
    B,
    /// E: approved by the host, not in the switch's file.
    E,
    /// G: the switch's amount is one fen more.
    G,
    /// The switch's record twice.
    Duplicate,
    /// The host reversed it, the switch did not.
    OneSidedReversal,
}

const BREAK_ROLES: [Role; 6] = [
    Role::C,
    Role::B,
    Role::E,
    Role::G,
    Role::Duplicate,
    Role::OneSidedReversal,
];

/// The day's shape.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Ids 1..=rows.
    pub rows: u64,
    /// Breaks of each class, batch totals included.
    pub breaks: u64,
    pub terminals: u64,
    pub day: i64,
    pub cut: ClearingCut,
}

/// What the run must find.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    pub matched: u64,
    pub host_rows: u64,
    pub switch_records: u64,
}

impl Plan {
    pub fn new(rows: u64, breaks: u64) -> Plan {
        let day = poskit_domain::calendar::day_of_yyyymmdd(DATE).unwrap_or_default();
        Plan {
            rows,
            breaks,
            // One batch per terminal; a terminal's traces stay within six digits.
            terminals: (2 * breaks).max(rows / 500_000 + 1).max(10),
            day,
            cut: ClearingCut::default(),
        }
    }

    /// Ids between two breaks: the breaks are spread over the day.
    fn step(&self) -> u64 {
        (self.rows / (BREAK_ROLES.len() as u64 * self.breaks).max(1)).max(1)
    }

    pub fn role(&self, id: u64) -> Role {
        let (step, i) = (self.step(), id - 1);
        if i.is_multiple_of(step) && i / step < BREAK_ROLES.len() as u64 * self.breaks {
            return BREAK_ROLES[(i / step) as usize % BREAK_ROLES.len()];
        }
        if id % 20 == 7 {
            Role::OnUs
        } else {
            Role::Matched
        }
    }

    fn created_ms(&self, id: u64) -> i64 {
        let start = self.cut.start_ms(self.day) + 1_000;
        let span = self.cut.start_ms(self.day + 1) - CUT_MARGIN_MS - start;
        start + ((id - 1) as i128 * span as i128 / self.rows as i128) as i64
    }

    fn terminal(&self, id: u64) -> u64 {
        (id - 1) % self.terminals
    }

    pub fn date(&self) -> ClearingDate {
        poskit_recon::run::clearing_date(self.day).unwrap_or_else(|_| unreachable!())
    }

    pub fn expected(&self) -> Expected {
        let mut e = Expected::default();
        for id in 1..=self.rows {
            let role = self.role(id);
            e.matched += u64::from(matches!(role, Role::Matched | Role::Duplicate));
            e.host_rows += u64::from(role != Role::B);
            e.switch_records += match role {
                Role::OnUs | Role::E => 0,
                Role::Duplicate => 2,
                _ => 1,
            };
        }
        e
    }
}

/// One id's transaction, as both sides describe it.
struct Txn {
    id: u64,
    refund: bool,
    tid: String,
    mid: String,
    terminal_stan: u64,
    amount_fen: u64,
    pan_masked: String,
    created_ms: i64,
    mmdd: String,
    hhmmss: String,
}

fn txn(plan: &Plan, id: u64) -> Txn {
    let terminal = plan.terminal(id);
    let created_ms = plan.created_ms(id);
    let at = HostTime::at(created_ms, plan.cut.utc_offset_minutes);
    Txn {
        id,
        refund: id % 50 == 3,
        tid: tid_of(terminal),
        mid: format!("8983100{:08}", terminal),
        terminal_stan: (id - 1) / plan.terminals + 1,
        amount_fen: 100 + (id * 7_919) % 500_000,
        pan_masked: format!("622202******{:04}", id % 10_000),
        created_ms,
        mmdd: at.mmdd(),
        hhmmss: at.hhmmss(),
    }
}

fn tid_of(terminal: u64) -> String {
    format!("{:08}", 10_000_000 + terminal)
}

/// Writes the day into `dir` (a host data directory, the file in `dir/clearing`): the
/// ledger on this thread, the file on another.
pub fn generate(plan: &Plan, dir: &Path) -> anyhow::Result<PathBuf> {
    let clearing = dir.join("clearing");
    std::fs::create_dir_all(&clearing).context("clearing directory")?;
    drop(poskit_host::store::sqlite::open(dir).context("host database")?);
    std::thread::scope(|scope| {
        let file = scope.spawn(|| write_acoma(plan, &clearing));
        write_ledger(plan, dir)?;
        file.join()
            .map_err(|_| anyhow::anyhow!("the file writer panicked"))?
    })
}

/// The switch's ACOMA file, a chunk of records at a time.
fn write_acoma(plan: &Plan, clearing: &Path) -> anyhow::Result<PathBuf> {
    let date = plan.date();
    let path = clearing.join(file_name(FileKind::Acoma, date));
    let file = std::fs::File::create(&path).with_context(|| path.display().to_string())?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let profile = Profile::builtin(FileKind::Acoma);
    let mut records = Vec::with_capacity(RECORDS_PER_CHUNK as usize + 1);
    for id in 1..=plan.rows {
        let role = plan.role(id);
        if !matches!(role, Role::OnUs | Role::E) {
            let record = switch_record(&txn(plan, id), role);
            if role == Role::Duplicate {
                records.push(record.clone());
            }
            records.push(record);
        }
        if records.len() as u64 >= RECORDS_PER_CHUNK || id == plan.rows {
            write_records(&mut out, profile, date, &records)?;
            records.clear();
        }
    }
    out.into_inner()
        .map_err(std::io::IntoInnerError::into_error)?
        .sync_all()?;
    Ok(path)
}

fn switch_record(t: &Txn, role: Role) -> TxnRecord {
    TxnRecord {
        acquirer_inst: ACQUIRER.into(),
        forwarding_inst: ACQUIRER.into(),
        stan: forward_stan_of(t.id as i64),
        transmission_time: format!("{}{}", t.mmdd, t.hhmmss),
        pan_masked: t.pan_masked.clone(),
        amount_fen: t.amount_fen + u64::from(role == Role::G),
        mti: if t.refund { "0220" } else { "0200" }.into(),
        processing_code: if t.refund { "200000" } else { "000000" }.into(),
        mcc: "5411".into(),
        tid: t.tid.clone(),
        mid: t.mid.clone(),
        rrn: format!("{:012}", t.id),
        pos_condition: "00".into(),
        auth_code: format!("{:06}", t.id % 1_000_000),
        receiving_inst: "01020000".into(),
        response_code: "00".into(),
        entry_mode: "051".into(),
        fee_receivable_fen: (t.amount_fen / 200) as i64,
        fee_payable_fen: -((t.amount_fen / 500) as i64),
        switch_fee_fen: -2,
        issuer_inst: "01020000".into(),
        merchant_name: "北京市朝阳区某某便利店".into(),
        currency: "156".into(),
        merchant_fee_fen: -((t.amount_fen / 160) as i64),
        ..TxnRecord::default()
    }
}

/// Per terminal: (debit fen, debit count, credit fen, credit count) the host approved.
type BatchTotals = Vec<(u64, u32, u64, u32)>;

/// The host's side alone: a data directory whose ledger holds the day (for `bench
/// lookup`).
pub fn generate_ledger(plan: &Plan, dir: &Path) -> anyhow::Result<()> {
    drop(poskit_host::store::sqlite::open(dir).context("host database")?);
    write_ledger(plan, dir)
}

/// The host's ledger: every row but the B ones, then one closed settlement per terminal.
fn write_ledger(plan: &Plan, dir: &Path) -> anyhow::Result<()> {
    let mut conn = Connection::open(dir.join(poskit_host::store::sqlite::DB_FILE))?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    // The unique key index takes rows in terminal order, not id order: keep it in memory.
    conn.pragma_update(None, "cache_size", -1_048_576)?;
    let mut totals: BatchTotals = vec![(0, 0, 0, 0); plan.terminals as usize];
    let mut id = 1;
    while id <= plan.rows {
        let last = (id + ROWS_PER_COMMIT - 1).min(plan.rows);
        let tx = conn.transaction()?;
        insert_rows(&tx, plan, id..=last, &mut totals)?;
        tx.commit()?;
        id = last + 1;
    }
    let tx = conn.transaction()?;
    insert_settlements(&tx, plan, &totals)?;
    tx.commit()?;
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
    Ok(())
}

fn insert_rows(
    tx: &Connection,
    plan: &Plan,
    ids: std::ops::RangeInclusive<u64>,
    totals: &mut BatchTotals,
) -> anyhow::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO transactions (id, kind, reversal, mti, tid, mid, batch, stan, idem,
             amount_fen, pan_masked, rrn, auth_code, day, mmdd, hhmmss, created_ms, code,
             reason, state, fwd)
         VALUES (?1, ?2, 0, ?3, ?4, ?5, 1, ?6, 1, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
             '', ?16, ?17)",
    )?;
    for id in ids {
        let role = plan.role(id);
        if role == Role::B {
            continue;
        }
        let t = txn(plan, id);
        let (code, state) = match role {
            Role::C => ("98", "declined"),
            Role::OneSidedReversal => ("00", "reversed"),
            _ => ("00", "approved"),
        };
        if state == "approved" {
            let total = &mut totals[plan.terminal(id) as usize];
            if t.refund {
                (total.2, total.3) = (total.2 + t.amount_fen, total.3 + 1);
            } else {
                (total.0, total.1) = (total.0 + t.amount_fen, total.1 + 1);
            }
        }
        stmt.execute(params![
            id as i64,
            if t.refund { "refund" } else { "sale" },
            if t.refund { "0220" } else { "0200" },
            t.tid,
            t.mid,
            t.terminal_stan as i64,
            t.amount_fen as i64,
            t.pan_masked,
            format!("{:012}", t.id),
            format!("{:06}", t.id % 1_000_000),
            HostTime::at(t.created_ms, plan.cut.utc_offset_minutes).day,
            t.mmdd,
            t.hhmmss,
            t.created_ms,
            code,
            state,
            role != Role::OnUs,
        ])?;
    }
    Ok(())
}

/// One closed settlement per terminal; the first `breaks` terminals report one sale more
/// than the host has (a batch total break, with that sale in their upload).
fn insert_settlements(tx: &Connection, plan: &Plan, totals: &BatchTotals) -> anyhow::Result<()> {
    let settled_ms = plan.cut.start_ms(plan.day + 1) - CUT_MARGIN_MS / 2;
    for (terminal, &host) in totals.iter().enumerate() {
        let differs = (terminal as u64) < plan.breaks;
        let mut sent = host;
        if differs {
            (sent.0, sent.1) = (sent.0 + 100, sent.1 + 1);
            tx.execute(
                "INSERT INTO uploads (tid, batch, stan, pan_masked, amount_fen, received_ms)
                 VALUES (?1, 1, 999999, '622202******0000', 100, ?2)",
                params![tid_of(terminal as u64), settled_ms],
            )?;
        }
        tx.execute(
            "INSERT INTO settlements (tid, batch, terminal_debit_fen, terminal_debit_count,
                 terminal_credit_fen, terminal_credit_count, host_debit_fen, host_debit_count,
                 host_credit_fen, host_credit_count, balanced, settled_ms, uploaded, closed_ms)
             VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?11)",
            params![
                tid_of(terminal as u64),
                sent.0 as i64,
                sent.1,
                sent.2 as i64,
                sent.3,
                host.0 as i64,
                host.1,
                host.2 as i64,
                host.3,
                !differs,
                settled_ms,
                differs,
            ],
        )?;
    }
    Ok(())
}

/// The data directory a benchmark reads: `given` (generated before and kept), or a ledger
/// of `rows` transactions generated now under `temp`.
pub fn ledger_dir(
    given: Option<&std::path::PathBuf>,
    rows: u64,
    temp: &std::path::Path,
) -> anyhow::Result<std::path::PathBuf> {
    if let Some(dir) = given {
        return Ok(dir.clone());
    }
    let dir = temp.join("host");
    std::fs::create_dir_all(&dir).context("data directory")?;
    let started = std::time::Instant::now();
    generate_ledger(&Plan::new(rows, 1), &dir)?;
    eprintln!(
        "generated {rows} rows in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(dir)
}
