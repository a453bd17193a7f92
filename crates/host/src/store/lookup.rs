//! What `poskit lookup` reads of the ledger: a transaction found from what a merchant or a
//! cardholder holds (a slip's RRN, trace or authorization code; the card's last digits and
//! the amount on a day), and the rows that name it as their original (reversal, void,
//! refund, completion, adjustment). Every query is served by an index (schema 10), so a
//! ledger of ten million rows answers in milliseconds.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreResult;

/// Rows one query returns at most (a day's amount at a busy acquirer can repeat).
pub const ROWS_MAX: usize = 200;

/// A transaction as a person reads it (card masked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnView {
    pub id: i64,
    pub kind: Option<String>,
    pub reversal: bool,
    pub mti: String,
    pub tid: Option<String>,
    pub mid: Option<String>,
    pub batch: Option<u32>,
    pub stan: Option<u32>,
    pub amount_fen: Option<u64>,
    pub pan_masked: Option<String>,
    pub rrn: Option<String>,
    pub auth_code: Option<String>,
    /// The business day (days since 1970-01-01, local).
    pub day: i64,
    pub mmdd: String,
    pub hhmmss: String,
    pub created_ms: i64,
    pub code: String,
    pub reason: String,
    pub state: String,
    pub original_id: Option<i64>,
    pub refunded_fen: u64,
    /// Went through the switch (a card of an external issuer).
    pub fwd: bool,
}

const COLUMNS: &str = "id, kind, reversal, mti, tid, mid, batch, stan, amount_fen, pan_masked,
    rrn, auth_code, day, mmdd, hhmmss, created_ms, code, reason, state, original_id,
    refunded_fen, fwd";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TxnView> {
    Ok(TxnView {
        id: r.get(0)?,
        kind: r.get(1)?,
        reversal: r.get(2)?,
        mti: r.get(3)?,
        tid: r.get(4)?,
        mid: r.get(5)?,
        batch: r.get(6)?,
        stan: r.get(7)?,
        amount_fen: r.get::<_, Option<i64>>(8)?.map(|a| a.max(0) as u64),
        pan_masked: r.get(9)?,
        rrn: r.get(10)?,
        auth_code: r.get(11)?,
        day: r.get(12)?,
        mmdd: r.get(13)?,
        hhmmss: r.get(14)?,
        created_ms: r.get(15)?,
        code: r.get(16)?,
        reason: r.get(17)?,
        state: r.get(18)?,
        original_id: r.get(19)?,
        refunded_fen: r.get::<_, i64>(20)?.max(0) as u64,
        fwd: r.get(21)?,
    })
}

fn query(
    conn: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<TxnView>> {
    let sql =
        format!("SELECT {COLUMNS} FROM transactions WHERE {filter} ORDER BY id LIMIT {ROWS_MAX}");
    let mut stmt = conn.prepare_cached(&sql)?;
    Ok(stmt.query_map(params, row)?.collect::<Result<_, _>>()?)
}

/// The transaction with this id (its RRN is the id, twelve digits).
pub fn by_id(conn: &Connection, id: i64) -> StoreResult<Option<TxnView>> {
    let sql = format!("SELECT {COLUMNS} FROM transactions WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id], row).optional()?)
}

/// Batches of one terminal a trace lookup walks at most (years of daily settlements).
pub const BATCHES_MAX: usize = 20_000;

/// A terminal's transactions with this trace (field 11), in any batch. `transactions_key`
/// leads with (terminal, merchant, batch, trace): the lookup hops from one (merchant,
/// batch) of the terminal to the next — a seek each — and seeks the trace in each, instead
/// of reading every entry of a terminal that has hundreds of thousands.
pub fn by_tid_trace(conn: &Connection, tid: &str, stan: u32) -> StoreResult<Vec<TxnView>> {
    // Each hop is a seek past a whole (merchant, batch) prefix of the key: the next batch
    // of the same merchant, else the first batch of the next merchant. (A row-value
    // comparison `(mid, batch) > (?, ?)` would step through every entry of the current
    // batch instead.)
    let mut next_batch = conn.prepare_cached(
        "SELECT batch FROM transactions WHERE tid = ?1 AND mid = ?2 AND batch > ?3 AND idem = 1
         ORDER BY batch LIMIT 1",
    )?;
    let mut next_mid = conn.prepare_cached(
        "SELECT mid, batch FROM transactions WHERE tid = ?1 AND mid > ?2 AND idem = 1
         ORDER BY mid, batch LIMIT 1",
    )?;
    let mut out = Vec::new();
    let mut at: Option<(String, i64)> = None;
    for _ in 0..BATCHES_MAX {
        let found: Option<(String, i64)> = match &at {
            Some((mid, batch)) => match next_batch
                .query_row(params![tid, mid, batch], |r| r.get::<_, i64>(0))
                .optional()?
            {
                Some(b) => Some((mid.clone(), b)),
                None => next_mid
                    .query_row(params![tid, mid], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?,
            },
            None => next_mid
                .query_row(params![tid, ""], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?,
        };
        let Some((mid, batch)) = found else { break };
        out.extend(query(
            conn,
            "tid = ?1 AND mid = ?2 AND batch = ?3 AND stan = ?4 AND idem = 1",
            params![tid, mid, batch, stan],
        )?);
        at = Some((mid, batch));
    }
    Ok(out)
}

/// Transactions with this authorization code (field 38).
pub fn by_auth_code(conn: &Connection, auth_code: &str) -> StoreResult<Vec<TxnView>> {
    query(conn, "auth_code = ?1", params![auth_code])
}

/// Transactions of this amount on business day `day` (equality on both columns of
/// `transactions_day_amount`: a range on the day would leave the amount unsought).
pub fn by_day_amount(conn: &Connection, day: i64, amount_fen: u64) -> StoreResult<Vec<TxnView>> {
    let amount = i64::try_from(amount_fen).unwrap_or(i64::MAX);
    query(conn, "day = ?1 AND amount_fen = ?2", params![day, amount])
}

/// The rows that name `id` as their original: reversal, void, refund, completion,
/// adjustment, and answers to requests that reused its trace (94).
pub fn naming(conn: &Connection, id: i64) -> StoreResult<Vec<TxnView>> {
    query(conn, "original_id = ?1", params![id])
}

/// A terminal's settlement of a batch: (balanced, settled at, closed at).
pub fn settlement_of(
    conn: &Connection,
    tid: &str,
    batch: u32,
) -> StoreResult<Option<(bool, i64, Option<i64>)>> {
    Ok(conn
        .prepare_cached(
            "SELECT balanced, settled_ms, closed_ms FROM settlements
             WHERE tid = ?1 AND batch = ?2 ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![tid, batch], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?)
}

/// The credit adjustment reconciliation posted for a break, if any: its ledger id.
pub fn adjustment_for(conn: &Connection, reference: &str) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT txn_id FROM recon_adjustments WHERE reference = ?1")?
        .query_row([reference], |r| r.get(0))
        .optional()?)
}

/// A card a pick-up answer told the merchant to retain.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Retained {
    pub txn_id: i64,
    pub pan_masked: String,
    pub tid: String,
    pub mid: String,
    pub code: String,
    pub reason: String,
    pub created_ms: i64,
    /// By when the merchant hands it to the acquirer.
    pub due_ms: i64,
}

/// Every retained card, newest first.
pub fn retained_cards(conn: &Connection) -> StoreResult<Vec<Retained>> {
    let mut stmt = conn.prepare_cached(
        "SELECT txn_id, pan_masked, tid, mid, code, reason, created_ms, due_ms
         FROM retained_cards ORDER BY txn_id DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Retained {
            txn_id: r.get(0)?,
            pan_masked: r.get(1)?,
            tid: r.get(2)?,
            mid: r.get(3)?,
            code: r.get(4)?,
            reason: r.get(5)?,
            created_ms: r.get(6)?,
            due_ms: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What the terminal sent of a transaction in its batch upload (0320), if it uploaded it:
/// (masked card, amount in fen, received at).
pub fn upload_of(
    conn: &Connection,
    tid: &str,
    batch: u32,
    stan: u32,
) -> StoreResult<Option<(String, u64, i64)>> {
    Ok(conn
        .prepare_cached(
            "SELECT pan_masked, amount_fen, received_ms FROM uploads
             WHERE tid = ?1 AND batch = ?2 AND stan = ?3 ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![tid, batch, stan], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64, r.get(2)?))
        })
        .optional()?)
}

/// An answer as diagnosis reads it: (at, code, the terminal's reason when a reversal).
pub type Answered = (i64, String, Option<String>);

/// The terminal's reason for a reversal, as the engine writes it into the row's reason
/// ("reversal (terminal's reason 98) of ...").
fn reversal_reason(reason: &str) -> Option<String> {
    let rest = reason.split("terminal's reason ").nth(1)?;
    Some(
        rest.chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect(),
    )
}

fn answered(
    conn: &Connection,
    filter: &str,
    p: impl rusqlite::Params,
) -> StoreResult<Vec<Answered>> {
    let sql = format!(
        "SELECT created_ms, code, reversal, reason FROM transactions WHERE {filter}
         ORDER BY id DESC LIMIT {ANSWERS_MAX}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(p, |r| {
        let reversal: bool = r.get(2)?;
        let reason: String = r.get(3)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            reversal.then(|| reversal_reason(&reason)).flatten(),
        ))
    })?;
    let mut out: Vec<Answered> = rows.collect::<Result<_, _>>()?;
    out.reverse();
    Ok(out)
}

/// Requests about a card (management messages — sign-in, echo, settlement — aside).
const FINANCIAL: &str = "kind NOT IN ('sign-in', 'sign-off', 'echo', 'settlement', 'batch-upload')";

/// Answers diagnosis reads at most, newest kept.
pub const ANSWERS_MAX: usize = 20_000;

/// A terminal's answers since `since_ms`, oldest first.
pub fn answers_of_terminal(
    conn: &Connection,
    tid: &str,
    since_ms: i64,
) -> StoreResult<Vec<Answered>> {
    answered(
        conn,
        &format!("tid = ?1 AND created_ms >= ?2 AND {FINANCIAL}"),
        params![tid, since_ms],
    )
}

/// A merchant's answers since `since_ms`, oldest first.
pub fn answers_of_merchant(
    conn: &Connection,
    mid: &str,
    since_ms: i64,
) -> StoreResult<Vec<Answered>> {
    answered(
        conn,
        &format!("created_ms >= ?2 AND mid = ?1 AND {FINANCIAL}"),
        params![mid, since_ms],
    )
}

/// Every terminal's answers since `since_ms`, oldest first (the newest [`ANSWERS_MAX`]).
pub fn answers_since(conn: &Connection, since_ms: i64) -> StoreResult<Vec<Answered>> {
    answered(
        conn,
        &format!("created_ms >= ?1 AND {FINANCIAL}"),
        params![since_ms],
    )
}

/// Reversals for a timeout (the terminal's reason 98) per request, over every terminal
/// since `since_ms`.
pub fn timeout_rate_since(conn: &Connection, since_ms: i64) -> StoreResult<f64> {
    let (reversals, requests): (i64, i64) = conn.query_row(
        "SELECT coalesce(sum(reversal = 1 AND reason LIKE '%terminal''s reason 98)%'), 0),
                coalesce(sum(reversal = 0), 0)
         FROM transactions WHERE created_ms >= ?1 AND kind IS NOT NULL",
        [since_ms],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(reversals as f64 / requests.max(1) as f64)
}

/// A terminal's (merchant, status, last sign-in) and its merchant's status.
pub type TerminalFacts = (String, String, Option<i64>, String);

/// What the host knows of a terminal (`None`: not registered).
pub fn terminal_facts(conn: &Connection, tid: &str) -> StoreResult<Option<TerminalFacts>> {
    Ok(conn
        .prepare_cached(
            "SELECT t.mid, t.status, t.signed_in_ms, m.status FROM terminals t
             JOIN merchants m ON m.mid = t.mid WHERE t.tid = ?1",
        )?
        .query_row([tid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?)
}

/// A merchant's status.
pub fn merchant_status(conn: &Connection, mid: &str) -> StoreResult<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT status FROM merchants WHERE mid = ?1")?
        .query_row([mid], |r| r.get(0))
        .optional()?)
}

/// A terminal as the console lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TerminalRow {
    pub tid: String,
    pub mid: String,
    pub status: String,
    pub batch: i64,
    /// When its working keys were last exchanged: its last sign-in.
    pub signed_in_ms: Option<i64>,
    pub txn_limit_fen: Option<i64>,
    /// The kinds it may do (`None`: all).
    pub permitted: Option<Vec<String>>,
}

const TERMINAL_COLUMNS: &str = "tid, mid, status, batch, signed_in_ms, txn_limit_fen, permitted";

/// One terminal by its TID.
pub fn terminal(conn: &Connection, tid: &str) -> StoreResult<Option<TerminalRow>> {
    let sql = format!("SELECT {TERMINAL_COLUMNS} FROM terminals WHERE tid = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([tid], terminal_row)
        .optional()?)
}

fn terminal_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TerminalRow> {
    let permitted: Option<String> = r.get(6)?;
    Ok(TerminalRow {
        tid: r.get(0)?,
        mid: r.get(1)?,
        status: r.get(2)?,
        batch: r.get(3)?,
        signed_in_ms: r.get(4)?,
        txn_limit_fen: r.get(5)?,
        permitted: permitted.map(|text| {
            text.split([',', ';'])
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect()
        }),
    })
}

/// Terminals, of one merchant or all, by TID; `limit` at most.
pub fn terminals(
    conn: &Connection,
    mid: Option<&str>,
    limit: usize,
) -> StoreResult<Vec<TerminalRow>> {
    terminals_after(conn, mid, None, limit)
}

/// Terminals whose TID sorts after `after`, of one merchant or all, by TID; `limit` at
/// most (the primary key is the order: a page is a seek and `limit` rows).
pub fn terminals_after(
    conn: &Connection,
    mid: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> StoreResult<Vec<TerminalRow>> {
    let sql = format!(
        "SELECT {TERMINAL_COLUMNS} FROM terminals
         WHERE tid > ?3 AND (?1 IS NULL OR mid = ?1) ORDER BY tid LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![mid, limit, after.unwrap_or("")], terminal_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A merchant as the console lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MerchantRow {
    pub mid: String,
    pub name: String,
    pub mcc: String,
    pub status: String,
    pub txn_limit_fen: Option<i64>,
    pub daily_limit_fen: Option<i64>,
}

/// Merchants, one or all, by MID; `limit` at most.
pub fn merchants(
    conn: &Connection,
    mid: Option<&str>,
    limit: usize,
) -> StoreResult<Vec<MerchantRow>> {
    merchants_after(conn, mid, None, limit)
}

/// Merchants whose MID sorts after `after` (one, or all), by MID; `limit` at most.
pub fn merchants_after(
    conn: &Connection,
    mid: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> StoreResult<Vec<MerchantRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT mid, name, mcc, status, txn_limit_fen, daily_limit_fen FROM merchants
         WHERE mid > ?3 AND (?1 IS NULL OR mid = ?1) ORDER BY mid LIMIT ?2",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![mid, limit, after.unwrap_or("")], |r| {
        Ok(MerchantRow {
            mid: r.get(0)?,
            name: r.get(1)?,
            mcc: r.get(2)?,
            status: r.get(3)?,
            txn_limit_fen: r.get(4)?,
            daily_limit_fen: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A terminal's answers a look at its recent failures reads at most, newest first.
pub const RECENT_ANSWERS_MAX: usize = 2_000;

/// A terminal's recent failures at merchant `mid`: among its newest [`RECENT_ANSWERS_MAX`]
/// requests under the idempotency key (`transactions_key`, read backwards from its newest
/// batch and trace: the rows read are bounded whatever the terminal's history), those not
/// approved, and reversals (a failure the terminal saw); newest first, `limit` at most.
/// Refusals that claim no key (a deactivated terminal, an inactive merchant, a malformed
/// field) have no such index and are not listed; the statistics count them.
pub fn recent_failures(
    conn: &Connection,
    tid: &str,
    mid: &str,
    limit: usize,
) -> StoreResult<Vec<TxnView>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM transactions WHERE id IN (
             SELECT id FROM transactions WHERE tid = ?1 AND mid = ?2 AND idem = 1
             ORDER BY batch DESC, stan DESC LIMIT ?3)
         AND (code <> '00' OR reversal = 1) ORDER BY id DESC LIMIT ?4"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let (scan, limit) = (RECENT_ANSWERS_MAX as i64, limit.min(ROWS_MAX) as i64);
    Ok(stmt
        .query_map(params![tid, mid, scan, limit], row)?
        .collect::<Result<_, _>>()?)
}

/// The ledger's newest rows an activity poll reads at most: a poll that comes after more
/// than this many new rows sees the newest of them.
pub const ACTIVITY_SCAN_MAX: i64 = 10_000;

/// The newest transactions of terminals after id `after` (of one merchant, or all; a
/// dispute's or an adjustment's row names its transaction's terminal, an opening balance
/// loaded by an import none), newest first, `limit` at most, from the newest
/// [`ACTIVITY_SCAN_MAX`] rows; and the newest id read, where the next poll starts (rows
/// written meanwhile come in that one).
pub fn newest(
    conn: &Connection,
    after: i64,
    mid: Option<&str>,
    limit: usize,
) -> StoreResult<(Vec<TxnView>, i64)> {
    let last: i64 = conn
        .prepare_cached("SELECT coalesce(max(id), 0) FROM transactions")?
        .query_row([], |r| r.get(0))?;
    let from = after.max(last - ACTIVITY_SCAN_MAX);
    let sql = format!(
        "SELECT {COLUMNS} FROM transactions
         WHERE id > ?1 AND id <= ?2 AND tid IS NOT NULL AND (?3 IS NULL OR mid = ?3)
         ORDER BY id DESC LIMIT ?4"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let limit = limit.min(ROWS_MAX) as i64;
    let rows = stmt
        .query_map(params![from, last, mid, limit], row)?
        .collect::<Result<Vec<_>, _>>()?;
    assert!(rows.iter().all(|r| r.id > after && r.id <= last));
    Ok((rows, last.max(after)))
}
