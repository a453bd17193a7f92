//! Disputes (差错, issue 20 §2): one case per transaction and kind, with the E-codes and
//! reason codes of Q/CUP 054.2 (`spec/cup-clearing.md` §6–§7), a state machine with reply
//! deadlines, evidence, and the ledger postings money moves by — each exactly once (the step
//! that posts is unique per dispute, in the same database transaction as its posting).
//!
//! | kind | opened as | then |
//! |---|---|---|
//! | retrieval | E04 request | reply (E05) |
//! | chargeback | E23: the merchant is debited | accept; or represent (E24: credited back) → second chargeback (E25: debited again) → accept |
//! | credit adjustment | E32: the merchant's money goes back to the cardholder | — |
//! | one-sided account | E06 notice | reply (E07) |
//! | retained card | E08 registration | reply (E09) |

use poskit_host::clock::HostTime;
use poskit_host::store::postings::{self, Transfer};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

/// A dispute of a transaction older than this is refused (the standard's limit).
pub const DISPUTE_AGE_DAYS_MAX: i64 = 180;
const DAY_MS: i64 = 86_400_000;

/// Why a dispute action was refused.
#[derive(Debug, thiserror::Error)]
pub enum DisputeError {
    /// A rule of the standard refuses it (exit 1).
    #[error("{0}")]
    Refused(String),
    /// Not a step this dispute can take now (exit 2), with the ones it can.
    #[error("{what} is not allowed in state {state}; allowed: {allowed}")]
    Transition {
        what: String,
        state: String,
        allowed: String,
    },
    #[error("ledger: {0}")]
    Store(#[from] poskit_host::store::StoreError),
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
}

/// The kinds of case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Retrieval,
    Chargeback,
    CreditAdjustment,
    OneSided,
    Retained,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Retrieval,
        Kind::Chargeback,
        Kind::CreditAdjustment,
        Kind::OneSided,
        Kind::Retained,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Retrieval => "retrieval",
            Kind::Chargeback => "chargeback",
            Kind::CreditAdjustment => "credit-adjustment",
            Kind::OneSided => "one-sided",
            Kind::Retained => "retained",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The E-code that opens it, and its first state.
    fn opening(self) -> (&'static str, &'static str) {
        match self {
            Kind::Retrieval => ("E04", "requested"),
            Kind::Chargeback => ("E23", "charged_back"),
            Kind::CreditAdjustment => ("E32", "adjusted"),
            Kind::OneSided => ("E06", "noticed"),
            Kind::Retained => ("E08", "registered"),
        }
    }

    /// Days the acquirer has for its next step after opening.
    fn reply_days(self) -> i64 {
        match self {
            Kind::Chargeback => 30,
            Kind::CreditAdjustment => 0,
            _ => 7,
        }
    }

    /// The kind an AERRA error type opens.
    pub fn of_e_code(code: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.opening().0 == code)
    }
}

/// A step on an open dispute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Accept,
    Represent,
    SecondChargeback,
    Reply,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Accept => "accept",
            Step::Represent => "represent",
            Step::SecondChargeback => "second-chargeback",
            Step::Reply => "reply",
        }
    }
}

/// What a step does: (E-code, next state, days to the next deadline, money to the merchant
/// (+) or from it (−), sign only).
fn transition(
    kind: Kind,
    state: &str,
    step: Step,
) -> Option<(&'static str, &'static str, i64, i8)> {
    use Step::*;
    Some(match (kind, state, step) {
        (Kind::Chargeback, "charged_back" | "second_charged_back", Accept) => {
            ("E23", "accepted", 0, 0)
        }
        (Kind::Chargeback, "charged_back", Represent) => ("E24", "represented", 30, 1),
        (Kind::Chargeback, "represented", SecondChargeback) => {
            ("E25", "second_charged_back", 30, -1)
        }
        (Kind::Retrieval, "requested", Reply) => ("E05", "replied", 0, 0),
        (Kind::OneSided, "noticed", Reply) => ("E07", "replied", 0, 0),
        (Kind::Retained, "registered", Reply) => ("E09", "replied", 0, 0),
        _ => return None,
    })
}

/// The steps a dispute in `state` can take.
fn allowed(kind: Kind, state: &str) -> Vec<&'static str> {
    [
        Step::Accept,
        Step::Represent,
        Step::SecondChargeback,
        Step::Reply,
    ]
    .into_iter()
    .filter(|s| transition(kind, state, *s).is_some())
    .map(Step::name)
    .collect()
}

/// A dispute as listed.
#[derive(Clone, Debug, Serialize)]
pub struct Dispute {
    pub id: i64,
    pub txn_id: i64,
    pub kind: String,
    pub e_code: String,
    pub reason_code: String,
    pub state: String,
    pub amount_fen: u64,
    pub opened_ms: i64,
    pub due_ms: i64,
    pub source: String,
    /// The steps it can take now.
    pub allowed: Vec<&'static str>,
    pub events: Vec<Event>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub step: String,
    pub e_code: String,
    pub at_ms: i64,
    pub note: String,
    pub evidence: Option<String>,
    pub posted_txn_id: Option<i64>,
}

/// A dispute to open.
#[derive(Clone, Debug)]
pub struct Opening<'a> {
    pub txn_id: i64,
    pub kind: Kind,
    /// Four digits (`spec/cup-clearing.md` §7).
    pub reason_code: &'a str,
    /// `manual` or the file it came from.
    pub source: &'a str,
    /// What the source names it by (an AERRA record): opened once per reference.
    pub reference: Option<&'a str>,
    pub amount_fen: Option<u64>,
    pub now: HostTime,
}

/// Opens a dispute, or returns the one already open for the same transaction and kind
/// (`false`: nothing new, nothing posted).
pub fn open(conn: &mut Connection, o: &Opening<'_>) -> Result<(i64, bool), DisputeError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let result = open_in(&tx, o)?;
    tx.commit()?;
    Ok(result)
}

/// [`open`] inside the caller's transaction.
pub fn open_in(tx: &Connection, o: &Opening<'_>) -> Result<(i64, bool), DisputeError> {
    if !(o.reason_code.len() == 4 && o.reason_code.bytes().all(|b| b.is_ascii_digit())) {
        return Err(DisputeError::Refused(format!(
            "reason code {:?}: four digits (spec/cup-clearing.md §7: 4502, 4512, 9601, ...)",
            o.reason_code
        )));
    }
    let existing: Option<i64> = tx
        .query_row(
            "SELECT id FROM disputes WHERE (txn_id = ?1 AND kind = ?2) OR (reference IS NOT NULL AND reference = ?3)",
            params![o.txn_id, o.kind.as_str(), o.reference],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = existing {
        return Ok((id, false));
    }
    let original = original_of(tx, o.txn_id, o.now, o.kind)?;
    let money = matches!(o.kind, Kind::Chargeback | Kind::CreditAdjustment);
    if money && original.refunded_fen > 0 {
        return Err(DisputeError::Refused(format!(
            "transaction {} was refunded ({} fen): a refunded transaction cannot be disputed",
            o.txn_id, original.refunded_fen
        )));
    }
    let amount = o.amount_fen.unwrap_or(original.amount_fen);
    if money && (amount == 0 || amount > original.amount_fen) {
        return Err(DisputeError::Refused(format!(
            "amount {amount} fen: more than 0 and at most the transaction's {} fen",
            original.amount_fen
        )));
    }
    let (e_code, state) = o.kind.opening();
    tx.execute(
        "INSERT INTO disputes (txn_id, kind, e_code, reason_code, state, amount_fen, opened_ms, due_ms, source, reference)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            o.txn_id,
            o.kind.as_str(),
            e_code,
            o.reason_code,
            state,
            amount as i64,
            o.now.unix_ms,
            o.now.unix_ms + o.kind.reply_days() * DAY_MS,
            o.source,
            o.reference
        ],
    )?;
    let id = tx.last_insert_rowid();
    let sign = if money { -1 } else { 0 };
    let note = format!("opened from {} (reason {})", o.source, o.reason_code);
    event(
        tx, id, "open", e_code, &note, None, sign, &original, amount, o.now,
    )?;
    Ok((id, true))
}

/// The transaction a dispute is about.
struct Original {
    mid: String,
    amount_fen: u64,
    refunded_fen: u64,
    card_type: String,
}

/// (mid, kind, code, amount, refunded, created at, card type) of a disputed transaction.
type OriginalRow = (
    Option<String>,
    Option<String>,
    String,
    Option<i64>,
    i64,
    i64,
    Option<String>,
);

fn original_of(
    tx: &Connection,
    txn_id: i64,
    now: HostTime,
    case: Kind,
) -> Result<Original, DisputeError> {
    let row: Option<OriginalRow> = tx
        .query_row(
            "SELECT t.mid, t.kind, t.code, t.amount_fen, t.refunded_fen, t.created_ms, c.card_type
             FROM transactions t LEFT JOIN cards c ON c.id = t.card_id WHERE t.id = ?1",
            [txn_id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .optional()?;
    let Some((mid, kind, code, amount, refunded, created_ms, card_type)) = row else {
        return Err(DisputeError::Refused(format!(
            "no transaction {txn_id} in the ledger"
        )));
    };
    if case == Kind::Retained {
        let retained: Option<i64> = tx
            .query_row(
                "SELECT txn_id FROM retained_cards WHERE txn_id = ?1",
                [txn_id],
                |r| r.get(0),
            )
            .optional()?;
        if retained.is_none() {
            return Err(DisputeError::Refused(format!(
                "transaction {txn_id} retained no card (no pick-up answer): nothing to register"
            )));
        }
    } else if !matches!(kind.as_deref(), Some("sale" | "completion")) || code != "00" {
        return Err(DisputeError::Refused(format!(
            "transaction {txn_id} is no approved sale or completion ({} answered {code}): nothing to dispute",
            kind.as_deref().unwrap_or("a management message")
        )));
    }
    if now.unix_ms - created_ms > DISPUTE_AGE_DAYS_MAX * DAY_MS {
        return Err(DisputeError::Refused(format!(
            "transaction {txn_id} is older than {DISPUTE_AGE_DAYS_MAX} days: past the dispute window"
        )));
    }
    Ok(Original {
        mid: mid.unwrap_or_default(),
        amount_fen: amount.unwrap_or(0).max(0) as u64,
        refunded_fen: refunded.max(0) as u64,
        card_type: card_type.unwrap_or_else(|| "debit".into()),
    })
}

/// Records a step, and posts its money (−1: from the merchant to the switch, +1: back).
#[allow(clippy::too_many_arguments)]
fn event(
    tx: &Connection,
    dispute: i64,
    step: &str,
    e_code: &str,
    note: &str,
    evidence: Option<&str>,
    sign: i8,
    original: &Original,
    amount_fen: u64,
    now: HostTime,
) -> Result<(), DisputeError> {
    let posted = if sign == 0 {
        None
    } else {
        let merchant = postings::merchant_account(tx, &original.mid)?;
        let switch = postings::switch_settlement_account(tx)?;
        let (from, to) = if sign < 0 {
            (merchant, switch)
        } else {
            (switch, merchant)
        };
        let txn_id: i64 = tx.query_row(
            "SELECT txn_id FROM disputes WHERE id = ?1",
            [dispute],
            |r| r.get(0),
        )?;
        let reason = format!("dispute {dispute}: {step} ({e_code})");
        Some(postings::post_transfer(
            tx,
            &Transfer {
                e_code,
                original_txn_id: txn_id,
                from_account: from,
                to_account: to,
                amount_fen,
                reason: &reason,
                now,
            },
        )?)
    };
    tx.execute(
        "INSERT INTO dispute_events (dispute_id, step, e_code, at_ms, note, evidence, posted_txn_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![dispute, step, e_code, now.unix_ms, note, evidence, posted],
    )?;
    Ok(())
}

/// Takes a step on dispute `id`.
pub fn respond(
    conn: &mut Connection,
    id: i64,
    step: Step,
    evidence: Option<&str>,
    now: HostTime,
) -> Result<Dispute, DisputeError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let d = get(&tx, id)?.ok_or_else(|| DisputeError::Refused(format!("no dispute {id}")))?;
    let kind = Kind::parse(&d.kind).unwrap_or(Kind::Retrieval);
    let Some((e_code, next, days, sign)) = transition(kind, &d.state, step) else {
        return Err(DisputeError::Transition {
            what: step.name().into(),
            state: d.state.clone(),
            allowed: match allowed(kind, &d.state) {
                a if a.is_empty() => "none (the case is closed)".into(),
                a => a.join(", "),
            },
        });
    };
    let original = original_of(&tx, d.txn_id, now, kind)?;
    if matches!(step, Step::Represent | Step::SecondChargeback) && original.card_type == "debit" {
        return Err(DisputeError::Refused(format!(
            "transaction {} was paid with a debit card: a debit card's chargeback cannot be {}",
            d.txn_id,
            if step == Step::Represent {
                "represented"
            } else {
                "charged back a second time"
            }
        )));
    }
    let note = format!("{} → {next}", d.state);
    advance(
        &tx,
        id,
        step,
        (e_code, next, days, sign),
        &original,
        d.amount_fen,
        &note,
        evidence,
        now,
    )?;
    let d = get(&tx, id)?.ok_or_else(|| DisputeError::Refused(format!("no dispute {id}")))?;
    tx.commit()?;
    Ok(d)
}

/// (E-code, next state, days to the next deadline, money sign) of a step.
type Move = (&'static str, &'static str, i64, i8);

/// A step taken: its event (and money), then the case's new state and deadline.
#[allow(clippy::too_many_arguments)]
fn advance(
    tx: &Connection,
    id: i64,
    step: Step,
    (e_code, next, days, sign): Move,
    original: &Original,
    amount_fen: u64,
    note: &str,
    evidence: Option<&str>,
    now: HostTime,
) -> Result<(), DisputeError> {
    event(
        tx,
        id,
        step.name(),
        e_code,
        note,
        evidence,
        sign,
        original,
        amount_fen,
        now,
    )?;
    tx.execute(
        "UPDATE disputes SET state = ?2, e_code = ?3, due_ms = ?4 WHERE id = ?1",
        params![id, next, e_code, now.unix_ms + days * DAY_MS],
    )?;
    Ok(())
}

/// One dispute with its events.
pub fn get(conn: &Connection, id: i64) -> Result<Option<Dispute>, DisputeError> {
    let list = query(conn, "id = ?1", params![id])?;
    Ok(list.into_iter().next())
}

/// Disputes, open ones due within `due_within_ms` of `now` (all when `None`), soonest first.
pub fn list(
    conn: &Connection,
    due_within_ms: Option<i64>,
    now_ms: i64,
) -> Result<Vec<Dispute>, DisputeError> {
    match due_within_ms {
        Some(ms) => query(
            conn,
            "state NOT IN ('accepted', 'replied', 'adjusted') AND due_ms <= ?1",
            params![now_ms + ms],
        ),
        None => query(conn, "1 = 1", params![]),
    }
}

fn query(
    conn: &Connection,
    filter: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<Dispute>, DisputeError> {
    let sql = format!(
        "SELECT id, txn_id, kind, e_code, reason_code, state, amount_fen, opened_ms, due_ms, source
         FROM disputes WHERE {filter} ORDER BY due_ms, id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(p, |r| {
        let kind: String = r.get(2)?;
        let state: String = r.get(5)?;
        Ok(Dispute {
            id: r.get(0)?,
            txn_id: r.get(1)?,
            allowed: Kind::parse(&kind)
                .map(|k| allowed(k, &state))
                .unwrap_or_default(),
            kind,
            e_code: r.get(3)?,
            reason_code: r.get(4)?,
            state,
            amount_fen: r.get::<_, i64>(6)?.max(0) as u64,
            opened_ms: r.get(7)?,
            due_ms: r.get(8)?,
            source: r.get(9)?,
            events: Vec::new(),
        })
    })?;
    let mut out: Vec<Dispute> = rows.collect::<Result<_, _>>()?;
    let mut ev = conn.prepare(
        "SELECT step, e_code, at_ms, note, evidence, posted_txn_id FROM dispute_events
         WHERE dispute_id = ?1 ORDER BY id",
    )?;
    for d in &mut out {
        d.events = ev
            .query_map([d.id], |r| {
                Ok(Event {
                    step: r.get(0)?,
                    e_code: r.get(1)?,
                    at_ms: r.get(2)?,
                    note: r.get(3)?,
                    evidence: r.get(4)?,
                    posted_txn_id: r.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
    }
    Ok(out)
}

/// Parses `Step` names as the CLI gives them.
pub fn step_of(name: &str) -> Option<Step> {
    [
        Step::Accept,
        Step::Represent,
        Step::SecondChargeback,
        Step::Reply,
    ]
    .into_iter()
    .find(|s| s.name() == name)
}

/// What an AERRA import did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Imported {
    /// Disputes opened.
    pub opened: u64,
    /// Second chargebacks applied to open chargebacks.
    pub second_chargebacks: u64,
    /// Records already on file (an earlier import, or this acquirer's own E32s).
    pub known: u64,
}

/// Imports a switch's AERRA file: every record opens its dispute (E04 retrieval, E23
/// chargeback, E32 credit adjustment, E06 one-sided account, E08 retained card) or takes a
/// step on one (E25 second chargeback). All or nothing: a bad file or a record naming no
/// transaction imports nothing.
pub fn import_aerra(
    conn: &mut Connection,
    path: &std::path::Path,
    now: HostTime,
) -> Result<Imported, DisputeError> {
    let parsed = poskit_clearing::parse_file(path, None)
        .map_err(|e| DisputeError::Refused(format!("{}: {e}", path.display())))?;
    let poskit_clearing::Records::Dispute(records) = parsed.records else {
        return Err(DisputeError::Refused(format!(
            "{}: not an AERRA file (disputes and errors)",
            path.display()
        )));
    };
    let source = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut done = Imported::default();
    for (i, r) in records.iter().enumerate() {
        let line = i + 1;
        let refused = |why: String| DisputeError::Refused(format!("{source}: line {line}: {why}"));
        let reference = format!(
            "{source}:{}:{:06}:{}",
            r.error_type, r.stan, r.transmission_time
        );
        let ours: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM switch_disputes WHERE fwd_stan = ?1 AND fwd_time = ?2 AND error_type = ?3",
                params![r.stan, r.transmission_time, r.error_type],
                |row| row.get(0),
            )
            .optional()?;
        if ours.is_some() {
            done.known += 1; // this acquirer's own message, sent by reconciliation
            continue;
        }
        let txn_id = r
            .previous_rrn
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| {
                refused(format!(
                    "previous RRN {:?} names no transaction",
                    r.previous_rrn
                ))
            })?;
        if r.error_type == "E25" {
            second_chargeback(&tx, txn_id, now, &mut done).map_err(|e| refused(e.to_string()))?;
            continue;
        }
        let kind = Kind::of_e_code(&r.error_type).ok_or_else(|| {
            refused(format!(
                "error type {} is not one poskit handles",
                r.error_type
            ))
        })?;
        let (_, new) = open_in(
            &tx,
            &Opening {
                txn_id,
                kind,
                reason_code: &r.reason_code,
                source: &source,
                reference: Some(&reference),
                amount_fen: Some(r.amount_fen).filter(|a| *a > 0),
                now,
            },
        )
        .map_err(|e| refused(e.to_string()))?;
        if new {
            done.opened += 1
        } else {
            done.known += 1
        }
    }
    tx.commit()?;
    Ok(done)
}

/// An E25 from the file: the open chargeback of `txn_id` takes its second chargeback.
fn second_chargeback(
    tx: &Connection,
    txn_id: i64,
    now: HostTime,
    done: &mut Imported,
) -> Result<(), DisputeError> {
    let found: Option<(i64, String)> = tx
        .query_row(
            "SELECT id, state FROM disputes WHERE txn_id = ?1 AND kind = 'chargeback'",
            [txn_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((id, state)) = found else {
        return Err(DisputeError::Refused(format!(
            "an E25 for transaction {txn_id}, which has no chargeback"
        )));
    };
    if state == "second_charged_back" {
        done.known += 1;
        return Ok(());
    }
    let Some((e_code, next, days, sign)) =
        transition(Kind::Chargeback, &state, Step::SecondChargeback)
    else {
        return Err(DisputeError::Transition {
            what: "second-chargeback".into(),
            state,
            allowed: allowed(Kind::Chargeback, "charged_back").join(", "),
        });
    };
    let original = original_of(tx, txn_id, now, Kind::Chargeback)?;
    let amount: i64 = tx.query_row("SELECT amount_fen FROM disputes WHERE id = ?1", [id], |r| {
        r.get(0)
    })?;
    let note = "second chargeback from the switch's file";
    let step = Step::SecondChargeback;
    let how = (e_code, next, days, sign);
    advance(
        tx,
        id,
        step,
        how,
        &original,
        amount.max(0) as u64,
        note,
        None,
        now,
    )?;
    done.second_chargebacks += 1;
    Ok(())
}
