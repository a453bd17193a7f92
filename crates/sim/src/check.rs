//! The checker: after recovery, each terminal's journal against the host's ledger.
//!
//! Violations (exit 1): a transaction the terminal reported failed that left money moved
//! at the host without its reversal being marked failed; a transaction printed as
//! approved that the host does not hold as approved; a transaction posted twice; postings
//! that do not sum to zero; an answer recorded without its reason; a reversal or advice
//! still pending after recovery. A reversal that gave up is a break, with its fix.

use rusqlite::OptionalExtension;

use poskit_domain::TransactionKind as K;
use poskit_host::store::sqlite;
use poskit_terminal::engine::{ReversalState, TxnState};

use crate::world::{SIM_MID, World};

pub(crate) fn check(w: &mut World) {
    let (violations, breaks) = compare(w.host_conn(), w.journals(), SIM_MID);
    w.report.violations = violations;
    w.report.breaks = breaks;
}

/// Compares terminal journals (by TID, all at merchant `mid`) with the host's ledger:
/// returns (violations, breaks).
pub fn compare<'j>(
    host: &rusqlite::Connection,
    journals: impl Iterator<Item = (String, &'j poskit_terminal::journal::Journal)>,
    mid: &str,
) -> (Vec<String>, Vec<String>) {
    let mut violations = Vec::new();
    let mut breaks = Vec::new();
    match sqlite::check(host) {
        Ok(r) => violations.extend(r.problems.into_iter().map(|p| format!("ledger: {p}"))),
        Err(e) => violations.push(format!("ledger check failed: {e}")),
    }
    let doubles: i64 = host
        .query_row(
            "SELECT count(*) FROM (SELECT txn_id FROM postings GROUP BY txn_id HAVING count(*) > 2)",
            [],
            |r| r.get(0),
        )
        .unwrap_or(-1);
    if doubles != 0 {
        violations.push(format!("{doubles} transactions posted more than one pair"));
    }
    let mut stmt = match host.prepare(
        "SELECT code, state FROM transactions
         WHERE tid = ?1 AND mid = ?2 AND batch = ?3 AND stan = ?4 AND mti = ?5 AND idem = 1",
    ) {
        Ok(s) => s,
        Err(e) => {
            violations.push(format!("ledger query: {e}"));
            return (violations, breaks);
        }
    };
    for (tid, journal) in journals {
        let snap = match journal.snapshot() {
            Ok(s) => s,
            Err(e) => {
                violations.push(format!("terminal {tid}: journal: {e}"));
                continue;
            }
        };
        if let Some(r) = &snap.reversal {
            violations.push(format!(
                "terminal {tid}: the reversal of trace {:06} is still pending after recovery",
                r.stan
            ));
        }
        if !snap.advices.is_empty() {
            violations.push(format!(
                "terminal {tid}: {} advices still stored after recovery",
                snap.advices.len()
            ));
        }
        let Ok(txns) = journal.txns(None) else {
            continue;
        };
        for t in txns {
            if t.kind == K::BalanceInquiry {
                continue;
            }
            let mti = std::str::from_utf8(t.kind.mti()).unwrap_or("????");
            let row: Option<(String, String)> = stmt
                .query_row(rusqlite::params![tid, mid, t.batch, t.stan, mti], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .unwrap_or(None);
            let what = format!(
                "terminal {tid} {} trace {:06} of batch {:06}",
                t.kind.name_en(),
                t.stan,
                t.batch
            );
            let moved = row
                .as_ref()
                .is_some_and(|(code, state)| code == "00" && state != "reversed");
            match t.state {
                TxnState::Approved | TxnState::Voided | TxnState::Closed => {
                    if !moved {
                        violations.push(format!(
                            "{what}: approved on the terminal, but the host has {row:?}"
                        ));
                    }
                }
                _ => {
                    if moved {
                        if t.reversal == ReversalState::Failed {
                            breaks.push(format!(
                                "{what}: the host holds it approved but the terminal reported {}; its reversal failed — the acquirer must reverse it",
                                t.code.map_or("a failure".to_owned(), |c| c.to_string())
                            ));
                        } else {
                            violations.push(format!(
                                "{what}: the terminal reported {} ({}), yet the host holds it approved: the customer is charged",
                                t.code.map_or("?".to_owned(), |c| c.to_string()),
                                t.state.as_str()
                            ));
                        }
                    }
                }
            }
        }
    }
    (violations, breaks)
}
