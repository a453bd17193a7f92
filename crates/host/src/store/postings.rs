//! Money moved outside a terminal's request — by reconciliation and by disputes: a ledger
//! transaction (its MTI the E-code) with one balanced transfer, naming the transaction it
//! corrects. Callers make it happen once (a unique reference or step, in the same database
//! transaction).

use rusqlite::{Connection, OptionalExtension};

use super::sqlite::{SqliteLedger, account};
use super::{Ledger, NewTxn, StoreError, StoreResult, TxnState};
use crate::clock::HostTime;

/// One transfer to post.
#[derive(Clone, Debug)]
pub struct Transfer<'a> {
    /// The E-code (`E23`, `E24`, `E32`, ...), kept as the row's MTI.
    pub e_code: &'a str,
    /// The transaction it corrects.
    pub original_txn_id: i64,
    pub from_account: i64,
    pub to_account: i64,
    pub amount_fen: u64,
    pub reason: &'a str,
    pub now: HostTime,
}

/// (tid, mid, masked card, through the switch) of the corrected transaction.
type OriginalRow = (Option<String>, Option<String>, Option<String>, bool);

/// Posts the transfer as a ledger transaction of its own; returns its id.
pub fn post_transfer(tx: &Connection, t: &Transfer<'_>) -> StoreResult<i64> {
    assert!(t.amount_fen > 0, "a transfer moves money");
    assert_ne!(
        t.from_account, t.to_account,
        "a transfer moves money between two accounts"
    );
    let original: Option<OriginalRow> = tx
        .query_row(
            "SELECT tid, mid, pan_masked, fwd FROM transactions WHERE id = ?1",
            [t.original_txn_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let (tid, mid, pan, fwd) = original
        .ok_or_else(|| StoreError::Corrupt(format!("no transaction {}", t.original_txn_id)))?;
    let mut ledger = SqliteLedger::new(tx);
    let (mmdd, hhmmss) = (t.now.mmdd(), t.now.hhmmss());
    let mut post = || -> StoreResult<i64> {
        let id = ledger.insert_txn(&NewTxn {
            key: None,
            kind: None,
            reversal: false,
            tid: tid.as_deref(),
            mid: mid.as_deref(),
            batch: None,
            stan: None,
            mti: t.e_code,
            request_hash: None,
            amount_fen: Some(t.amount_fen),
            card_id: None,
            pan_masked: pan.as_deref(),
            auth_code: None,
            day: t.now.day,
            mmdd: &mmdd,
            hhmmss: &hhmmss,
            created_ms: t.now.unix_ms,
            code: "00",
            reason: t.reason,
            state: TxnState::Approved,
            original_id: Some(t.original_txn_id),
            fwd,
        })?;
        ledger.transfer(id, t.from_account, t.to_account, t.amount_fen)?;
        ledger.flush()?;
        Ok(id)
    };
    let posted = post();
    if posted.is_err() {
        ledger.discard();
    }
    posted
}

/// The account a merchant is settled to.
pub fn merchant_account(conn: &Connection, mid: &str) -> StoreResult<i64> {
    conn.query_row("SELECT account FROM merchants WHERE mid = ?1", [mid], |r| {
        r.get(0)
    })
    .optional()?
    .ok_or_else(|| StoreError::Corrupt(format!("no merchant {mid}")))
}

/// The acquirer's settlement account with the switch: what goes back to cardholders
/// through the network (chargebacks, credit adjustments) passes through it.
pub fn switch_settlement_account(conn: &Connection) -> StoreResult<i64> {
    account(conn, "funding", "switch:settlement")
}

/// Where reconciliation holds what the switch paid for a transaction the host did not
/// approve, until it is given back.
pub fn recon_suspense_account(conn: &Connection) -> StoreResult<i64> {
    account(conn, "funding", "recon:suspense")
}
