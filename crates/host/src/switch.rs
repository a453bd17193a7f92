//! The switch (the CUP network) and the external issuers behind it, as the host simulates
//! them: its **own record** of what this acquirer forwarded, what the issuer answered and
//! what the switch clears, on the switch's clearing day (`spec/cup-clearing.md` §1–§3).
//!
//! Only requests for cards of external issuers reach the switch; on-us transactions never
//! do. The acquirer gives each forwarded message its own STAN ([`forward_stan_of`], unique
//! per day up to 999 999 messages, then it wraps as STANs do) and transmission time (the
//! row's local MMDDhhmmss): with the acquirer's institution they are the matching key of
//! the clearing files, not the terminal's trace.
//!
//! This module is the only writer of `switch_messages` and `switch_disputes`. The writer
//! calls [`record`] in the same database transaction as the acquirer's answer, so both
//! records are as durable as the answer; they still differ the way real networks do, by the
//! [`Divergence`] the fault plan or the simulation draws for a message:
//!
//! | divergence | acquirer's ledger | switch's record | reconciliation finds |
//! |---|---|---|---|
//! | late answer | 98 (timed out) | approved | class C |
//! | reversal lost | original reversed | original stands | one-sided reversal |
//! | duplicate | once | twice | duplicate |
//! | amount | the amount | amount + delta | class G |
//! | next day | clearing day D | clearing day D + 1 | class E on D, resolved on D + 1 |
//!
//! A late answer also comes without a fault: an external issuer slower than the host's
//! timeout answers after the host has said 98, and the switch records that answer (the
//! simulated issuer approves). poskit's host does not send a timeout reversal to the switch
//! (a real acquirer would, reason 4354): the late approval is left for reconciliation to
//! find, which is the case merchants meet as "charged but the POS said failed".

use poskit_domain::TransactionKind;
use poskit_domain::calendar::ClearingCut;
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::{StoreError, StoreResult};

/// STANs the acquirer gives forwarded messages: 000001 to 999999.
pub const FORWARD_STAN_MAX: u32 = 999_999;

/// The STAN of the message the acquirer sent the switch for its transaction `txn_id`.
pub fn forward_stan_of(txn_id: i64) -> u32 {
    assert!(txn_id > 0, "transaction ids start at 1");
    ((txn_id - 1).rem_euclid(i64::from(FORWARD_STAN_MAX)) + 1) as u32
}

/// How the switch's record of one message departs from what the acquirer decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Divergence {
    /// The issuer answers after the acquirer's timeout: the acquirer said 98, the issuer
    /// approved.
    pub late_answer: bool,
    /// A reversal reaches the acquirer's ledger but is lost before the switch (only
    /// reversals: an original cannot be approved without the switch).
    pub lose_reversal: bool,
    /// The switch records the message twice.
    pub duplicate: bool,
    /// The switch clears this many fen more (or fewer) than the acquirer's amount.
    pub amount_delta_fen: i64,
    /// The switch stamps the message on the next clearing day (a message near the cut-off
    /// that the switch's clock put past it).
    pub next_day: bool,
}

impl Divergence {
    pub fn any(&self) -> bool {
        *self != Divergence::default()
    }
}

/// The message the acquirer sent the switch, and the acquirer's own answer to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forwarded {
    pub txn_id: i64,
    pub fwd_stan: u32,
    /// MMDDhhmmss, local time.
    pub fwd_time: String,
    pub created_ms: i64,
    pub mti: String,
    pub processing_code: String,
    pub kind: TransactionKind,
    pub reversal: bool,
    pub pan_masked: String,
    pub amount_fen: u64,
    pub tid: String,
    pub mid: String,
    pub mcc: String,
    pub merchant_name: String,
    pub rrn: String,
    pub auth_code: Option<String>,
    /// The acquirer's answer (field 39).
    pub code: String,
    pub condition_code: String,
    pub entry_mode: String,
    /// The original's forwarded STAN and time (void, refund, completion, reversal).
    pub original: Option<(u32, String)>,
    /// The original's transaction in the host's ledger.
    pub original_txn_id: Option<i64>,
    pub issuer: String,
    pub acquirer: String,
}

/// Kinds whose approvals move money and so are cleared (in the files).
pub fn is_cleared_kind(kind: TransactionKind) -> bool {
    use TransactionKind as K;
    matches!(
        kind,
        K::Sale | K::PreAuthCompletion | K::Void | K::PreAuthCompletionVoid | K::Refund
    )
}

/// Records one forwarded message as the switch sees it.
pub fn record(
    conn: &Connection,
    f: &Forwarded,
    d: Divergence,
    cut: &ClearingCut,
) -> StoreResult<()> {
    assert!(f.fwd_stan >= 1 && f.fwd_stan <= FORWARD_STAN_MAX);
    if f.reversal && d.lose_reversal {
        return Ok(()); // lost between the acquirer and the switch
    }
    let late = d.late_answer && f.code == "98" && !f.reversal;
    let code = if late { "00" } else { f.code.as_str() };
    // The issuer's authorization code for a late approval: the acquirer never saw one.
    let auth_code = match (&f.auth_code, late) {
        (_, true) => format!("{:06}", f.fwd_stan),
        (Some(a), false) => a.clone(),
        (None, false) => String::new(),
    };
    let amount_fen = f
        .amount_fen
        .checked_add_signed(d.amount_delta_fen)
        .filter(|a| *a > 0)
        .unwrap_or(f.amount_fen);
    let day = cut.day_of(f.created_ms) + i64::from(d.next_day);
    let copies = if d.duplicate { 2 } else { 1 };
    for _ in 0..copies {
        insert_message(conn, f, code, &auth_code, amount_fen, day)?;
    }
    if code == "00"
        && let Some((stan, time)) = &f.original
    {
        mark_original(conn, f, *stan, time)?;
    }
    Ok(())
}

fn insert_message(
    conn: &Connection,
    f: &Forwarded,
    code: &str,
    auth_code: &str,
    amount_fen: u64,
    day: i64,
) -> StoreResult<()> {
    let amount = i64::try_from(amount_fen)
        .map_err(|_| StoreError::Corrupt(format!("amount {amount_fen} fen too large")))?;
    conn.prepare_cached(
        "INSERT INTO switch_messages (clearing_day, fwd_stan, fwd_time, mti, processing_code,
             kind, pan_masked, amount_fen, tid, mid, mcc, merchant_name, rrn, auth_code, code,
             condition_code, entry_mode, original_stan, original_time, issuer, acquirer,
             created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
             ?18, ?19, ?20, ?21, ?22)",
    )?
    .execute(params![
        day,
        f.fwd_stan,
        f.fwd_time,
        f.mti,
        f.processing_code,
        f.kind.slug(),
        f.pan_masked,
        amount,
        f.tid,
        f.mid,
        f.mcc,
        f.merchant_name,
        f.rrn,
        auth_code,
        code,
        f.condition_code,
        f.entry_mode,
        f.original.as_ref().map(|o| o.0),
        f.original.as_ref().map(|o| o.1.as_str()),
        f.issuer,
        f.acquirer,
        f.created_ms,
    ])?;
    Ok(())
}

/// An approved reversal flags its original `R`, an approved void `C` (ACOMA 37 and 38).
fn mark_original(conn: &Connection, f: &Forwarded, stan: u32, time: &str) -> StoreResult<()> {
    use TransactionKind as K;
    let column = if f.reversal {
        "reversed"
    } else if matches!(f.kind, K::Void | K::PreAuthCompletionVoid) {
        "voided"
    } else {
        return Ok(()); // a refund or a completion leaves its original as it is
    };
    // The original is the approved, not reversed message with that key (a reversal of a
    // void names the void).
    let sql = format!(
        "UPDATE switch_messages SET {column} = 1
         WHERE fwd_stan = ?1 AND fwd_time = ?2 AND code = '00' AND mti NOT LIKE '04%'"
    );
    conn.prepare_cached(&sql)?.execute(params![stan, time])?;
    Ok(())
}

/// One message of the switch's record, as the clearing files carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchMessage {
    pub id: i64,
    pub clearing_day: i64,
    pub fwd_stan: u32,
    pub fwd_time: String,
    pub mti: String,
    pub processing_code: String,
    pub kind: Option<TransactionKind>,
    pub pan_masked: String,
    pub amount_fen: u64,
    pub tid: String,
    pub mid: String,
    pub mcc: String,
    pub merchant_name: String,
    pub rrn: String,
    pub auth_code: String,
    pub code: String,
    pub condition_code: String,
    pub entry_mode: String,
    pub original: Option<(u32, String)>,
    pub issuer: String,
    pub acquirer: String,
    pub reversed: bool,
    pub voided: bool,
}

/// The columns [`message_row`] reads.
const MESSAGE_COLUMNS: &str = "id, clearing_day, fwd_stan, fwd_time, mti, processing_code, kind,
    pan_masked, amount_fen, tid, mid, mcc, merchant_name, rrn, auth_code, code, condition_code,
    entry_mode, original_stan, original_time, issuer, acquirer, reversed, voided";

fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SwitchMessage> {
    let kind: String = r.get(6)?;
    let original: (Option<u32>, Option<String>) = (r.get(18)?, r.get(19)?);
    Ok(SwitchMessage {
        id: r.get(0)?,
        clearing_day: r.get(1)?,
        fwd_stan: r.get(2)?,
        fwd_time: r.get(3)?,
        mti: r.get(4)?,
        processing_code: r.get(5)?,
        kind: TransactionKind::from_slug(&kind),
        pan_masked: r.get(7)?,
        amount_fen: r.get::<_, i64>(8)?.max(0) as u64,
        tid: r.get(9)?,
        mid: r.get(10)?,
        mcc: r.get(11)?,
        merchant_name: r.get(12)?,
        rrn: r.get(13)?,
        auth_code: r.get(14)?,
        code: r.get(15)?,
        condition_code: r.get(16)?,
        entry_mode: r.get(17)?,
        original: match original {
            (Some(stan), Some(time)) => Some((stan, time)),
            _ => None,
        },
        issuer: r.get(20)?,
        acquirer: r.get(21)?,
        reversed: r.get(22)?,
        voided: r.get(23)?,
    })
}

/// The messages the switch clears on `clearing_day`: approved money-moving messages and
/// approved reversals of them, in the order received.
pub fn cleared_on(conn: &Connection, clearing_day: i64) -> StoreResult<Vec<SwitchMessage>> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM switch_messages
         WHERE clearing_day = ?1 AND code = '00' ORDER BY id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut out = Vec::new();
    for row in stmt.query_map([clearing_day], message_row)? {
        let m = row?;
        if m.kind.is_some_and(is_cleared_kind) {
            out.push(m);
        }
    }
    Ok(out)
}

/// Every message the switch holds with this RRN (the host's transaction and, for a
/// reversal, the reversal's own), oldest first: what the network says of a transaction.
pub fn messages_with_rrn(conn: &Connection, rrn: &str) -> StoreResult<Vec<SwitchMessage>> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM switch_messages WHERE rrn = ?1 ORDER BY id");
    let mut stmt = conn.prepare_cached(&sql)?;
    Ok(stmt
        .query_map([rrn], message_row)?
        .collect::<Result<_, _>>()?)
}

/// A dispute or error transaction the switch records against this acquirer (AERRA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchDispute {
    pub clearing_day: i64,
    /// E32 credit adjustment, ...
    pub error_type: String,
    /// Four digits (`spec/cup-clearing.md` §7).
    pub reason_code: String,
    pub fwd_stan: u32,
    pub fwd_time: String,
    pub pan_masked: String,
    pub amount_fen: u64,
    pub tid: String,
    pub mid: String,
    pub merchant_name: String,
    pub previous_rrn: String,
    pub previous_stan: u32,
    pub previous_time: String,
    pub previous_clearing_day: i64,
    pub previous_amount_fen: u64,
    /// What the acquirer names it by (a reconciliation break): recorded once.
    pub reference: String,
}

/// Records a dispute the acquirer sent; `false` when one with its reference is on file
/// already (nothing is recorded twice).
pub fn record_dispute(conn: &Connection, d: &SwitchDispute, now_ms: i64) -> StoreResult<bool> {
    let known: Option<i64> = conn
        .prepare_cached("SELECT id FROM switch_disputes WHERE reference = ?1")?
        .query_row([&d.reference], |r| r.get(0))
        .optional()?;
    if known.is_some() {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT INTO switch_disputes (clearing_day, error_type, reason_code, fwd_stan,
             fwd_time, pan_masked, amount_fen, tid, mid, merchant_name, previous_rrn,
             previous_stan, previous_time, previous_clearing_day, previous_amount_fen,
             reference, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(params![
        d.clearing_day,
        d.error_type,
        d.reason_code,
        d.fwd_stan,
        d.fwd_time,
        d.pan_masked,
        d.amount_fen as i64,
        d.tid,
        d.mid,
        d.merchant_name,
        d.previous_rrn,
        d.previous_stan,
        d.previous_time,
        d.previous_clearing_day,
        d.previous_amount_fen as i64,
        d.reference,
        now_ms,
    ])?;
    Ok(true)
}

/// The disputes recorded on `clearing_day`.
pub fn disputes_on(conn: &Connection, clearing_day: i64) -> StoreResult<Vec<SwitchDispute>> {
    let mut stmt = conn.prepare_cached(
        "SELECT clearing_day, error_type, reason_code, fwd_stan, fwd_time, pan_masked,
             amount_fen, tid, mid, merchant_name, previous_rrn, previous_stan, previous_time,
             previous_clearing_day, previous_amount_fen, reference
         FROM switch_disputes WHERE clearing_day = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([clearing_day], |r| {
        Ok(SwitchDispute {
            clearing_day: r.get(0)?,
            error_type: r.get(1)?,
            reason_code: r.get(2)?,
            fwd_stan: r.get(3)?,
            fwd_time: r.get(4)?,
            pan_masked: r.get(5)?,
            amount_fen: r.get::<_, i64>(6)?.max(0) as u64,
            tid: r.get(7)?,
            mid: r.get(8)?,
            merchant_name: r.get(9)?,
            previous_rrn: r.get(10)?,
            previous_stan: r.get(11)?,
            previous_time: r.get(12)?,
            previous_clearing_day: r.get(13)?,
            previous_amount_fen: r.get::<_, i64>(14)?.max(0) as u64,
            reference: r.get(15)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The three files of one clearing day written into `dir` (ACOMN, ACOMA, AERRA): what the
/// switch sends this acquirer the next morning. Returns their paths.
pub fn export_day(
    conn: &Connection,
    clearing_day: i64,
    dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>, crate::HostError> {
    use poskit_clearing::{ClearingDate, FileKind, write_file};
    let text = poskit_domain::calendar::yyyymmdd(clearing_day);
    let date = ClearingDate::from_yymmdd(&text[2..]).ok_or_else(|| crate::HostError::Data {
        what: format!("{text}: no clearing file can carry this date"),
    })?;
    let txns: Vec<_> = cleared_on(conn, clearing_day)?
        .iter()
        .map(txn_record)
        .collect();
    let disputes: Vec<_> = disputes_on(conn, clearing_day)?
        .iter()
        .map(dispute_record)
        .collect();
    let io = |e: std::io::Error| crate::HostError::Io {
        path: dir.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    Ok(vec![
        write_file(dir, FileKind::Acomn, date, &txns).map_err(io)?,
        write_file(dir, FileKind::Acoma, date, &txns).map_err(io)?,
        write_file(dir, FileKind::Aerra, date, &disputes).map_err(io)?,
    ])
}

fn txn_record(m: &SwitchMessage) -> poskit_clearing::TxnRecord {
    poskit_clearing::TxnRecord {
        acquirer_inst: m.acquirer.clone(),
        forwarding_inst: m.acquirer.clone(),
        stan: m.fwd_stan,
        transmission_time: m.fwd_time.clone(),
        pan_masked: m.pan_masked.clone(),
        amount_fen: m.amount_fen,
        mti: m.mti.clone(),
        processing_code: m.processing_code.clone(),
        mcc: m.mcc.clone(),
        tid: m.tid.clone(),
        mid: m.mid.clone(),
        rrn: m.rrn.clone(),
        pos_condition: m.condition_code.clone(),
        auth_code: m.auth_code.clone(),
        receiving_inst: m.issuer.clone(),
        original_stan: m.original.as_ref().map(|o| o.0),
        response_code: m.code.clone(),
        entry_mode: m.entry_mode.clone(),
        original_time: m.original.as_ref().map(|o| o.1.clone()),
        issuer_inst: m.issuer.clone(),
        reversal: m.reversed,
        voided: m.voided,
        currency: "156".into(),
        merchant_name: m.merchant_name.clone(),
        ..Default::default()
    }
}

fn dispute_record(d: &SwitchDispute) -> poskit_clearing::DisputeRecord {
    let mmdd = poskit_domain::calendar::yyyymmdd(d.previous_clearing_day)[4..].to_owned();
    poskit_clearing::DisputeRecord {
        error_type: d.error_type.clone(),
        stan: d.fwd_stan,
        transmission_time: d.fwd_time.clone(),
        pan_masked: d.pan_masked.clone(),
        amount_fen: d.amount_fen,
        mti: "0422".into(),
        processing_code: "220000".into(),
        tid: d.tid.clone(),
        previous_rrn: d.previous_rrn.clone(),
        previous_stan: Some(d.previous_stan),
        response_code: "00".into(),
        reason_code: d.reason_code.clone(),
        previous_time: d.previous_time.clone(),
        previous_clearing_mmdd: mmdd,
        previous_amount_fen: d.previous_amount_fen,
        mid: d.mid.clone(),
        merchant_name: d.merchant_name.clone(),
        ..Default::default()
    }
}
