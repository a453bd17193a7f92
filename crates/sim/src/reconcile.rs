//! The switch's side of the checker (issue 19 §4): after the run, the switch writes its
//! files for the simulated clearing day and the next, reconciliation runs over both, and
//! every divergence the run injected must be found as its class — none missed, none
//! invented — with each cardholder the switch charged for a failure given the money back by
//! a credit adjustment.
//!
//! What each injected divergence must become is decided from the final state of both
//! records, not from the injection alone: a duplicated sale the terminal reversed later is
//! reversed twice at the switch and is no break.

use std::collections::BTreeMap;

use poskit_domain::calendar::ClearingCut;
use poskit_host::engine::EngineConfig;
use poskit_host::switch::{self, Divergence, Forwarded, is_cleared_kind};
use poskit_recon::run::{Options, run};
use poskit_recon::{Action, Break, Class, Status};
use rusqlite::{Connection, OptionalExtension};
use serde_json::json;

use crate::world::{DAY_START_UNIX_MS, World};

/// A request that reached the switch with a divergence drawn for it.
#[derive(Clone, Debug)]
pub(crate) struct Diverged {
    txn_id: i64,
    original_txn_id: Option<i64>,
    divergence: Divergence,
    reversal: bool,
    cleared: bool,
}

impl Diverged {
    pub(crate) fn of(f: &Forwarded, divergence: Divergence) -> Diverged {
        Diverged {
            txn_id: f.txn_id,
            original_txn_id: f.original_txn_id,
            divergence,
            reversal: f.reversal,
            cleared: is_cleared_kind(f.kind),
        }
    }
}

pub(crate) fn check(w: &mut World) {
    let cut = ClearingCut::default();
    let day = cut.day_of(DAY_START_UNIX_MS);
    let diverged = std::mem::take(&mut w.diverged);
    let reported_failed = reported_failed(w);
    let node = w.host_node();
    let clearing = node.dir().join("clearing");
    let node_dir = node.dir().to_path_buf();
    let node_dir = node_dir.as_path();
    let mut violations = Vec::new();
    let mut breaks: BTreeMap<String, Break> = BTreeMap::new();
    let mut matched = 0;
    let conn = node.connection_mut();
    let state = match poskit_recon::state::open(node_dir) {
        Ok(s) => s,
        Err(e) => {
            w.report.violations.push(format!("recon state: {e}"));
            return;
        }
    };
    for d in [day, day + 1] {
        if let Err(e) = switch::export_day(conn, d, &clearing) {
            violations.push(format!("clearing export: {e}"));
            continue;
        }
        let opts = Options {
            day: d,
            clearing_dir: clearing.clone(),
            cut,
            acquirer: EngineConfig::default().acquirer_code,
            near_cut_ms: 0,
            keep_matched: false,
            now_ms: cut.start_ms(day + 2),
        };
        match run(conn, &state, &opts) {
            Ok(report) => {
                matched += report.matched;
                for b in report.breaks {
                    breaks.insert(b.id.clone(), b);
                }
            }
            Err(e) => violations.push(format!("reconciliation of {d}: {e}")),
        }
    }
    let expected = expected(conn, &diverged, &mut violations);
    compare(conn, &expected, &breaks, &mut violations);
    let verdicts = looked_up(conn, &state, &reported_failed, &mut violations);
    let mut by_class: BTreeMap<&str, u64> = BTreeMap::new();
    for b in breaks.values() {
        *by_class.entry(b.class.as_str()).or_default() += 1;
    }
    w.report.recon = Some(json!({
        "matched": matched,
        "breaks": by_class,
        "injected": diverged.len(),
        "credit_adjustments": count(conn, "SELECT count(*) FROM recon_adjustments"),
        "verdicts_of_reported_failures": verdicts,
    }));
    w.report.violations.extend(violations);
    w.diverged = diverged;
}

/// Sales the terminals reported failed (their reversal did not fail): (tid, batch, trace).
fn reported_failed(w: &World) -> Vec<(String, u32, u32)> {
    use poskit_terminal::engine::{ReversalState, TxnState};
    let mut out = Vec::new();
    for (tid, journal) in w.journals() {
        for t in journal.txns(None).unwrap_or_default() {
            let failed = !matches!(
                t.state,
                TxnState::Approved | TxnState::Voided | TxnState::Closed
            );
            if t.kind == poskit_domain::TransactionKind::Sale
                && failed
                && t.reversal != ReversalState::Failed
            {
                out.push((tid.clone(), t.batch, t.stan));
            }
        }
    }
    out
}

/// After reconciliation, `poskit lookup` on every sale a terminal reported failed: none may
/// be `charged` (the customer was told it failed), and the day is reconciled, so none is
/// still `unknown_until_clearing`. Returns the verdicts by count.
fn looked_up(
    conn: &Connection,
    state: &Connection,
    failed: &[(String, u32, u32)],
    violations: &mut Vec<String>,
) -> BTreeMap<&'static str, u64> {
    let mut verdicts = BTreeMap::new();
    for (tid, batch, stan) in failed {
        let q = poskit_recon::lookup::Query {
            tid_trace: Some((tid.clone(), *stan)),
            ..Default::default()
        };
        let found = match poskit_recon::lookup::lookup(conn, Some(state), &q) {
            Ok(found) => found,
            Err(e) => {
                violations.push(format!("lookup of {tid} trace {stan:06}: {e}"));
                continue;
            }
        };
        let this = found.iter().find(|m| {
            m.transaction["batch"].as_u64() == Some(u64::from(*batch))
                && m.transaction["trace"].as_u64() == Some(u64::from(*stan))
                && m.transaction["kind"] == "sale"
        });
        let Some(m) = this else { continue }; // never reached the host
        let v = m.verdict.verdict;
        *verdicts.entry(v).or_default() += 1;
        if matches!(v, "charged" | "unknown_until_clearing") {
            violations.push(format!(
                "lookup says {v} for {tid} trace {stan:06} of batch {batch:06}, which the terminal reported failed: {}",
                m.verdict.because.en
            ));
        }
    }
    verdicts
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap_or(-1)
}

/// (state, code) of a ledger transaction.
fn host_state(conn: &Connection, id: i64) -> Option<(String, String)> {
    conn.query_row(
        "SELECT state, code FROM transactions WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .ok()
    .flatten()
}

/// Whether the switch still charges the card for the host's transaction `id` (approved
/// there, and no reversal reached it).
fn switch_charges(conn: &Connection, id: i64) -> bool {
    switch_copies_charged(conn, id) > 0
}

/// How many of the switch's records of the host's transaction `id` still charge the card.
fn switch_copies_charged(conn: &Connection, id: i64) -> i64 {
    conn.query_row(
        "SELECT count(*) FROM switch_messages
         WHERE rrn = ?1 AND code = '00' AND reversed = 0 AND mti NOT LIKE '04%'",
        [poskit_host::engine::rrn_of(id)],
        |r| r.get::<_, i64>(0),
    )
    .unwrap_or(0)
}

/// The breaks the injected divergences must produce: (class, host transaction).
fn expected(
    conn: &Connection,
    diverged: &[Diverged],
    violations: &mut Vec<String>,
) -> Vec<(Class, i64)> {
    let mut out = Vec::new();
    for d in diverged.iter().filter(|d| d.cleared) {
        let Some((state, code)) = host_state(conn, d.txn_id) else {
            violations.push(format!("transaction {} is not in the ledger", d.txn_id));
            continue;
        };
        let stands = code == "00" && state != "reversed";
        let v = d.divergence;
        if v.late_answer && !d.reversal && code == "98" && switch_charges(conn, d.txn_id) {
            out.push((Class::C, d.txn_id));
        } else if v.lose_reversal && d.reversal && code == "00" {
            let original = d
                .original_txn_id
                .and_then(|o| host_state(conn, o).map(|s| (o, s)));
            if let Some((o, (state, _))) = original
                && state == "reversed"
            {
                out.push((Class::OneSidedReversal, o));
            }
        } else if v.duplicate && !d.reversal {
            if switch_copies_charged(conn, d.txn_id) > 1 {
                out.push((Class::Duplicate, d.txn_id));
            }
        } else if !d.reversal && stands {
            if v.amount_delta_fen != 0 {
                out.push((Class::G, d.txn_id));
            } else if v.next_day {
                out.push((Class::E, d.txn_id));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Found against expected; each credit adjustment posted and sent to the switch.
fn compare(
    conn: &Connection,
    expected: &[(Class, i64)],
    breaks: &BTreeMap<String, Break>,
    violations: &mut Vec<String>,
) {
    let host_id = |b: &Break| b.records.host.as_ref().and_then(|h| h["id"].as_i64());
    let mut found: Vec<(Class, i64)> = breaks
        .values()
        .filter(|b| b.class != Class::BatchTotal)
        .filter_map(|b| host_id(b).map(|id| (b.class, id)))
        .collect();
    found.sort();
    for e in expected {
        if found.binary_search(e).is_err() {
            violations.push(format!(
                "reconciliation missed an injected divergence: class {} on transaction {}",
                e.0.as_str(),
                e.1
            ));
        }
    }
    for b in breaks.values().filter(|b| b.class != Class::BatchTotal) {
        let known = host_id(b).is_some_and(|id| expected.binary_search(&(b.class, id)).is_ok());
        if !known {
            violations.push(format!(
                "reconciliation found a break nobody injected: {} (host {}, switch {})",
                b.id,
                b.records.host.clone().unwrap_or_default(),
                b.records.switch.clone().unwrap_or_default()
            ));
        }
        if b.class == Class::E && b.status != Status::Resolved {
            violations.push(format!("{}: the next day's file did not resolve it", b.id));
        }
        if b.action == Action::CreditAdjustment {
            credit_given(conn, b, violations);
        }
    }
    let unbalanced = count(
        conn,
        "SELECT count(*) FROM settlements s WHERE balanced = 0
         AND id = (SELECT max(id) FROM settlements t WHERE t.tid = s.tid AND t.batch = s.batch)",
    );
    let batch_breaks = breaks
        .values()
        .filter(|b| b.class == Class::BatchTotal)
        .count();
    if unbalanced != batch_breaks as i64 {
        violations.push(format!(
            "{batch_breaks} batch-total breaks for {unbalanced} unbalanced settlements"
        ));
    }
}

/// The cardholder got the money back: the break is resolved, its credit adjustment is in
/// the ledger for its amount, and the switch recorded it.
fn credit_given(conn: &Connection, b: &Break, violations: &mut Vec<String>) {
    let posted: Option<i64> = conn
        .query_row(
            "SELECT t.amount_fen FROM recon_adjustments a JOIN transactions t ON t.id = a.txn_id
             WHERE a.reference = ?1",
            [&b.id],
            |r| r.get(0),
        )
        .optional()
        .ok()
        .flatten();
    let at_switch: i64 = conn
        .query_row(
            "SELECT count(*) FROM switch_disputes WHERE reference = ?1 AND error_type = 'E32'",
            [&b.id],
            |r| r.get(0),
        )
        .unwrap_or(0);
    if b.status != Status::Resolved || posted != Some(b.amount_fen as i64) || at_switch != 1 {
        violations.push(format!(
            "{}: the cardholder was not given {} fen back (status {:?}, posted {posted:?}, at the switch {at_switch})",
            b.id, b.amount_fen, b.status
        ));
    }
}
