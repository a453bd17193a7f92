//! What reconciliation reads of the ledger, and the one thing it writes: a credit
//! adjustment (E32) that gives a cardholder back money the switch took for a transaction
//! the host did not approve, posted once per reference (the break it resolves).

use poskit_domain::TransactionKind;
use poskit_domain::calendar::ClearingCut;
use rusqlite::{Connection, OptionalExtension, params};

use super::postings;
use super::{StoreError, StoreResult, TxnState};
use crate::clock::HostTime;
use crate::switch::{self, SwitchDispute, forward_stan_of};

/// A money-moving transaction of the ledger (sale, completion, void, completion void,
/// refund; reversal rows are not listed: they show as their original's state).
#[derive(Clone, Debug)]
pub struct LedgerTxn {
    pub id: i64,
    pub kind: TransactionKind,
    pub tid: String,
    pub mid: String,
    pub batch: u32,
    pub stan: u32,
    pub amount_fen: u64,
    pub pan_masked: String,
    pub rrn: String,
    pub code: String,
    pub state: TxnState,
    pub created_ms: i64,
    /// Forwarded to the switch: its STAN there and transmission time (MMDDhhmmss).
    pub forwarded: Option<(u32, String)>,
}

impl LedgerTxn {
    /// The transaction as [`for_each_money_txn`] gives it.
    pub fn as_ref(&self) -> LedgerTxnRef<'_> {
        LedgerTxnRef {
            id: self.id,
            kind: self.kind,
            tid: &self.tid,
            mid: &self.mid,
            batch: self.batch,
            stan: self.stan,
            amount_fen: self.amount_fen,
            pan_masked: &self.pan_masked,
            rrn: &self.rrn,
            code: &self.code,
            state: self.state,
            created_ms: self.created_ms,
            forwarded: self.forwarded.as_ref().map(|(stan, time)| {
                let (mmdd, hhmmss) = time.split_at_checked(4).unwrap_or((time, ""));
                (*stan, mmdd, hhmmss)
            }),
        }
    }
}

/// A money-moving transaction as [`for_each_money_txn`] reads it: its texts borrowed from
/// the row being read (nothing allocated per row), for readers of millions of rows.
#[derive(Clone, Copy, Debug)]
pub struct LedgerTxnRef<'a> {
    pub id: i64,
    pub kind: TransactionKind,
    pub tid: &'a str,
    pub mid: &'a str,
    pub batch: u32,
    pub stan: u32,
    pub amount_fen: u64,
    /// Empty when the row has none.
    pub pan_masked: &'a str,
    /// Empty when the row has none.
    pub rrn: &'a str,
    pub code: &'a str,
    pub state: TxnState,
    pub created_ms: i64,
    /// Forwarded to the switch: its STAN there and transmission time (MMDD, hhmmss).
    pub forwarded: Option<(u32, &'a str, &'a str)>,
}

impl LedgerTxnRef<'_> {
    pub fn to_owned(&self) -> LedgerTxn {
        LedgerTxn {
            id: self.id,
            kind: self.kind,
            tid: self.tid.to_owned(),
            mid: self.mid.to_owned(),
            batch: self.batch,
            stan: self.stan,
            amount_fen: self.amount_fen,
            pan_masked: self.pan_masked.to_owned(),
            rrn: self.rrn.to_owned(),
            code: self.code.to_owned(),
            state: self.state,
            created_ms: self.created_ms,
            forwarded: self
                .forwarded
                .map(|(stan, mmdd, hhmmss)| (stan, format!("{mmdd}{hhmmss}"))),
        }
    }
}

/// The money-moving transactions created in `[from_ms, to_ms)` with an id above `id_above`.
pub fn money_txns(
    conn: &Connection,
    from_ms: i64,
    to_ms: i64,
    id_above: i64,
) -> StoreResult<Vec<LedgerTxn>> {
    let mut out = Vec::new();
    if let Some((lo, hi)) = txn_ids_created(conn, from_ms, to_ms)? {
        let ids = lo.max(id_above.saturating_add(1))..=hi;
        for_each_money_txn(conn, from_ms, to_ms, ids, |t| out.push(t.to_owned()))?;
    }
    Ok(out)
}

/// The lowest and highest id of the transactions created in `[from_ms, to_ms)` (from the
/// index on time, without reading the rows); `None` when there is none. A reader of a day
/// scans that id range in id order, and can cut it in parts read at once.
pub fn txn_ids_created(
    conn: &Connection,
    from_ms: i64,
    to_ms: i64,
) -> StoreResult<Option<(i64, i64)>> {
    let range: (Option<i64>, Option<i64>) = conn.query_row(
        "SELECT min(id), max(id) FROM transactions INDEXED BY transactions_created
         WHERE created_ms >= ?1 AND created_ms < ?2",
        params![from_ms, to_ms],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(range.0.zip(range.1))
}

/// Calls `each` with the money-moving transactions created in `[from_ms, to_ms)` whose id
/// is in `ids`, in id order (a reader of a whole day: [`money_txns`] without an allocation
/// per row; the rows are read by id, so give the day's range, [`txn_ids_created`]).
/// Returns how many it read.
pub fn for_each_money_txn(
    conn: &Connection,
    from_ms: i64,
    to_ms: i64,
    ids: std::ops::RangeInclusive<i64>,
    mut each: impl FnMut(&LedgerTxnRef<'_>),
) -> StoreResult<u64> {
    // SQLite only scans the id range; the other conditions are checked on the columns read
    // anyway, which costs a fifth less per row than SQLite evaluating them.
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, reversal, tid, mid, batch, stan, amount_fen, pan_masked, rrn,
             mmdd, hhmmss, created_ms, code, state, fwd
         FROM transactions NOT INDEXED
         WHERE id >= ?1 AND id <= ?2
         ORDER BY id",
    )?;
    let mut rows = stmt.query(params![ids.start(), ids.end()])?;
    let mut count = 0;
    while let Some(r) = rows.next()? {
        if let Some(t) = ledger_txn_ref(r, from_ms..to_ms)? {
            each(&t);
            count += 1;
        }
    }
    Ok(count)
}

/// A row of [`for_each_money_txn`]'s query when it is a money-moving transaction (not a
/// reversal row, with a terminal) created in `window`.
fn ledger_txn_ref<'a>(
    r: &'a rusqlite::Row<'_>,
    window: std::ops::Range<i64>,
) -> rusqlite::Result<Option<LedgerTxnRef<'a>>> {
    use rusqlite::types::ValueRef;
    let created_ms = match r.get_ref(12)? {
        ValueRef::Integer(ms) if window.contains(&ms) => ms,
        _ => return Ok(None),
    };
    let kind = match r.get_ref(1)? {
        ValueRef::Text(slug) => money_kind(slug),
        _ => None,
    };
    let original = matches!(r.get_ref(2)?, ValueRef::Integer(0));
    let (Some(kind), true, false) = (kind, original, r.get_ref(3)? == ValueRef::Null) else {
        return Ok(None);
    };
    let id: i64 = r.get(0)?;
    let fwd: bool = r.get(15)?;
    Ok(Some(LedgerTxnRef {
        id,
        kind,
        tid: text(r, 3)?,
        mid: text(r, 4)?,
        batch: r.get(5)?,
        stan: r.get(6)?,
        amount_fen: r.get::<_, Option<i64>>(7)?.unwrap_or(0).max(0) as u64,
        pan_masked: text_or_empty(r, 8)?,
        rrn: text_or_empty(r, 9)?,
        code: text(r, 13)?,
        state: TxnState::parse(text(r, 14)?).unwrap_or(TxnState::Declined),
        created_ms,
        forwarded: if fwd {
            Some((forward_stan_of(id), text(r, 10)?, text(r, 11)?))
        } else {
            None
        },
    }))
}

/// The kind of a money-moving row; `None` for any other.
fn money_kind(slug: &[u8]) -> Option<TransactionKind> {
    Some(match slug {
        b"sale" => TransactionKind::Sale,
        b"completion" => TransactionKind::PreAuthCompletion,
        b"void" => TransactionKind::Void,
        b"completion-void" => TransactionKind::PreAuthCompletionVoid,
        b"refund" => TransactionKind::Refund,
        _ => return None,
    })
}

/// A text column, borrowed; NULL or another type is an error, as `get::<String>` has it.
fn text<'a>(r: &'a rusqlite::Row<'_>, index: usize) -> rusqlite::Result<&'a str> {
    let value = r.get_ref(index)?;
    value.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, value.data_type(), Box::new(e))
    })
}

/// A text column that may be NULL (empty then).
fn text_or_empty<'a>(r: &'a rusqlite::Row<'_>, index: usize) -> rusqlite::Result<&'a str> {
    match r.get_ref(index)? {
        rusqlite::types::ValueRef::Null => Ok(""),
        _ => text(r, index),
    }
}

/// The highest transaction id on file (0 when none): where a closed day ends.
pub fn last_txn_id(conn: &Connection) -> StoreResult<i64> {
    Ok(
        conn.query_row("SELECT coalesce(max(id), 0) FROM transactions", [], |r| {
            r.get(0)
        })?,
    )
}

/// One transaction by id.
pub fn money_txn(conn: &Connection, id: i64) -> StoreResult<Option<LedgerTxn>> {
    let created: Option<i64> = conn
        .query_row(
            "SELECT created_ms FROM transactions WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(at) = created else { return Ok(None) };
    let mut found = None;
    for_each_money_txn(conn, at, at + 1, id..=id, |t| found = Some(t.to_owned()))?;
    Ok(found)
}

/// A terminal's batch settlement (0500) and its upload (0320), as the host received them.
#[derive(Clone, Debug)]
pub struct SettlementRow {
    pub tid: String,
    pub batch: u32,
    /// (debit fen, debit count, credit fen, credit count).
    pub terminal: (u64, u32, u64, u32),
    pub host: (u64, u32, u64, u32),
    pub balanced: bool,
    pub closed: bool,
    /// (STAN, masked card, amount in fen) of each uploaded detail.
    pub uploads: Vec<(u32, String, u64)>,
}

/// The settlements received in `[from_ms, to_ms)`: the last one of each batch.
pub fn settlements(conn: &Connection, from_ms: i64, to_ms: i64) -> StoreResult<Vec<SettlementRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT tid, batch, terminal_debit_fen, terminal_debit_count, terminal_credit_fen,
             terminal_credit_count, host_debit_fen, host_debit_count, host_credit_fen,
             host_credit_count, balanced, closed_ms IS NOT NULL
         FROM settlements s WHERE settled_ms >= ?1 AND settled_ms < ?2
             AND id = (SELECT max(id) FROM settlements t WHERE t.tid = s.tid AND t.batch = s.batch)
         ORDER BY tid, batch",
    )?;
    let n = |r: &rusqlite::Row<'_>, i| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
    let rows = stmt.query_map(params![from_ms, to_ms], |r| {
        Ok(SettlementRow {
            tid: r.get(0)?,
            batch: r.get(1)?,
            terminal: (n(r, 2)?, r.get(3)?, n(r, 4)?, r.get(5)?),
            host: (n(r, 6)?, r.get(7)?, n(r, 8)?, r.get(9)?),
            balanced: r.get(10)?,
            closed: r.get(11)?,
            uploads: Vec::new(),
        })
    })?;
    let mut out: Vec<SettlementRow> = rows.collect::<Result<_, _>>()?;
    let mut uploads = conn.prepare_cached(
        "SELECT stan, pan_masked, amount_fen FROM uploads WHERE tid = ?1 AND batch = ?2 ORDER BY id",
    )?;
    for s in &mut out {
        s.uploads = uploads
            .query_map(params![s.tid, s.batch], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64))
            })?
            .collect::<Result<_, _>>()?;
    }
    Ok(out)
}

/// A credit adjustment to post.
#[derive(Clone, Debug)]
pub struct CreditAdjustment<'a> {
    /// What it resolves (a reconciliation break id): posted once per reference.
    pub reference: &'a str,
    /// The transaction the switch charged the card for.
    pub original_txn_id: i64,
    /// What the switch took, in fen.
    pub amount_fen: u64,
    /// The clearing day of the switch's record of the original.
    pub original_clearing_day: i64,
    /// Four digits (`spec/cup-clearing.md` §7): 4502 sale failed but the account was debited.
    pub reason_code: &'a str,
    pub now: HostTime,
    pub cut: ClearingCut,
}

/// Posts a credit adjustment: a ledger transaction moving the amount from the reconciliation
/// suspense account to the switch's settlement account, sent to the switch (which records it for
/// its next AERRA file). `Ok((txn id, false))` when the reference was posted before.
pub fn post_credit_adjustment(
    conn: &mut Connection,
    adj: &CreditAdjustment<'_>,
) -> StoreResult<(i64, bool)> {
    assert!(adj.amount_fen > 0, "an adjustment moves money");
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let known: Option<i64> = tx
        .query_row(
            "SELECT txn_id FROM recon_adjustments WHERE reference = ?1",
            [adj.reference],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = known {
        return Ok((id, false));
    }
    let original = money_txn(&tx, adj.original_txn_id)?.ok_or_else(|| {
        StoreError::Corrupt(format!("no transaction {} to adjust", adj.original_txn_id))
    })?;
    // The acquirer holds what the switch paid it for a transaction it did not approve (in
    // suspense) and pays it back through the switch, which credits the card's issuer.
    let reason = format!(
        "credit adjustment (E32, reason {}) for reconciliation break {}",
        adj.reason_code, adj.reference
    );
    let id = postings::post_transfer(
        &tx,
        &postings::Transfer {
            e_code: "E32",
            original_txn_id: original.id,
            from_account: postings::recon_suspense_account(&tx)?,
            to_account: postings::switch_settlement_account(&tx)?,
            amount_fen: adj.amount_fen,
            reason: &reason,
            now: adj.now,
        },
    )?;
    tx.execute(
        "INSERT INTO recon_adjustments (reference, txn_id, created_ms) VALUES (?1, ?2, ?3)",
        params![adj.reference, id, adj.now.unix_ms],
    )?;
    if let Some((stan, time)) = &original.forwarded {
        let dispute = SwitchDispute {
            clearing_day: adj.cut.day_of(adj.now.unix_ms),
            error_type: "E32".into(),
            reason_code: adj.reason_code.into(),
            fwd_stan: forward_stan_of(id),
            fwd_time: format!("{}{}", adj.now.mmdd(), adj.now.hhmmss()),
            pan_masked: original.pan_masked.clone(),
            amount_fen: adj.amount_fen,
            tid: original.tid.clone(),
            mid: original.mid.clone(),
            merchant_name: String::new(),
            previous_rrn: original.rrn.clone(),
            previous_stan: *stan,
            previous_time: time.clone(),
            previous_clearing_day: adj.original_clearing_day,
            previous_amount_fen: adj.amount_fen,
            reference: adj.reference.into(),
        };
        switch::record_dispute(&tx, &dispute, adj.now.unix_ms)?;
    }
    tx.commit()?;
    Ok((id, true))
}
