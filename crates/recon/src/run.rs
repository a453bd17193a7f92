//! A reconciliation run over one clearing day: the three sides read (the host's ledger and
//! settlements through its store's API, the switch's ACOMA file), compared, breaks carried
//! from earlier runs, safe resolutions applied once, and the run kept.
//!
//! Run discipline (`spec/cup-clearing.md` §5): a day is cut by the ledger's insertion order
//! as well as by time — a complete run closes its day at the last transaction id it saw, and
//! a row written later with a time inside the closed day belongs to the next open day; a
//! closed day's report never changes. A run that could not see the whole day (still open,
//! a file missing, a terminal not settled) is *incomplete* and says why.

use std::path::{Path, PathBuf};

use poskit_clearing::{Records, TxnRecord};
use poskit_domain::calendar::{ClearingCut, yyyymmdd};
use poskit_domain::{AmountFen, Mid, ResponseCode, Rrn, Tid, TransactionKind};
use poskit_host::clock::HostTime;
use poskit_host::store::TxnState;
use poskit_host::store::books::{self, CreditAdjustment, LedgerTxn};
use rusqlite::Connection;
use serde::Serialize;

use crate::matching::{Day, compare};
use crate::model::{
    Action, Break, Class, Direction, HostState, HostTxn, MaskedPan, Settlement, Status, SwitchKey,
    SwitchTxn, Totals, Upload,
};
use crate::state;

/// Unsettled batches named one by one in the reasons, at most.
const UNSETTLED_NAMED_MAX: usize = 20;

/// Why a run could not be done (nothing of it is kept).
#[derive(Debug, thiserror::Error)]
pub enum ReconError {
    /// An input could not be read: a bad clearing file, an unreadable ledger.
    #[error("{0}")]
    Input(String),
    #[error("ledger: {0}")]
    Store(#[from] poskit_host::store::StoreError),
    #[error("reconciliation state: {0}")]
    State(#[from] rusqlite::Error),
}

/// What a run is asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    /// The clearing day (days since 1970-01-01).
    pub day: i64,
    /// Where the switch's files are.
    pub clearing_dir: PathBuf,
    pub cut: ClearingCut,
    /// This acquirer's institution code (the first part of the CUP key).
    pub acquirer: String,
    /// A host transaction this close to the cut-off that the switch lacks is awaited on the
    /// next day's file.
    pub near_cut_ms: i64,
    pub now_ms: i64,
}

/// A run's result: the JSON contract of `poskit recon --json` (README).
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Report {
    pub date: String,
    /// `complete` or `incomplete`.
    pub status: String,
    pub incomplete_reasons: Vec<String>,
    pub matched: u64,
    pub breaks: Vec<Break>,
}

/// Runs (or, for a closed day, reads back) the reconciliation of `opts.day`.
pub fn run(
    host: &mut Connection,
    state: &Connection,
    opts: &Options,
) -> Result<Report, ReconError> {
    state::migrate(state)?;
    if let Some(report) = state::closed_report(state, opts.day)? {
        return Ok(report);
    }
    let switch = read_switch(&opts.clearing_dir, opts.day)?;
    let id_hi = books::last_txn_id(host)?;
    let (host_txns, settlements) = read_host(host, state, opts)?;
    let mut reasons = incomplete_reasons(opts, switch.is_none(), &host_txns, &settlements);
    let awaited = awaited(host, state, opts)?;
    let earlier = earlier(
        host,
        opts,
        &host_txns,
        switch.as_deref().unwrap_or_default(),
        &awaited,
    )?;
    let found = compare(Day {
        date: yyyymmdd(opts.day),
        end_ms: opts.cut.start_ms(opts.day + 1),
        near_cut_ms: opts.near_cut_ms,
        host: host_txns,
        awaited,
        earlier,
        switch: switch.unwrap_or_default(),
        settlements,
    });
    let mut breaks = state::merge(state, opts.day, found.breaks, &found.resolved)?;
    resolve(host, opts, &mut breaks, &mut reasons)?;
    let report = Report {
        date: yyyymmdd(opts.day),
        status: if reasons.is_empty() {
            "complete"
        } else {
            "incomplete"
        }
        .into(),
        incomplete_reasons: reasons,
        matched: found.matched,
        breaks,
    };
    state::keep(state, opts.day, &report, id_hi, opts.now_ms)?;
    Ok(report)
}

/// The switch's transactions of the day, from its ACOMA file; `None` when there is none.
fn read_switch(dir: &Path, day: i64) -> Result<Option<Vec<SwitchTxn>>, ReconError> {
    let date = clearing_date(day)?;
    let path = dir.join(poskit_clearing::file_name(
        poskit_clearing::FileKind::Acoma,
        date,
    ));
    if !path.exists() {
        return Ok(None);
    }
    let parsed = poskit_clearing::parse_file(&path, None)
        .map_err(|e| ReconError::Input(format!("{}: {e}", path.display())))?;
    let Records::Txn(records) = parsed.records else {
        return Err(ReconError::Input(format!(
            "{}: not a transaction file",
            path.display()
        )));
    };
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            switch_txn(i as u32 + 1, r).ok_or_else(|| {
                ReconError::Input(format!(
                    "{}: line {}: unreadable key or identifiers",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The file date of a clearing day.
pub fn clearing_date(day: i64) -> Result<poskit_clearing::ClearingDate, ReconError> {
    let text = yyyymmdd(day);
    poskit_clearing::ClearingDate::from_yymmdd(&text[2..])
        .ok_or_else(|| ReconError::Input(format!("{text}: no clearing file can name this date")))
}

fn switch_txn(line: u32, r: &TxnRecord) -> Option<SwitchTxn> {
    Some(SwitchTxn {
        line,
        key: SwitchKey::parse(&r.acquirer_inst, r.stan, &r.transmission_time)?,
        direction: if r.processing_code.starts_with("20") {
            Direction::Credit
        } else {
            Direction::Debit
        },
        amount: AmountFen::new(r.amount_fen).ok()?,
        pan: MaskedPan::parse(&r.pan_masked)?,
        tid: Tid::parse(r.tid.trim()).ok()?,
        mid: Mid::parse(r.mid.trim()).ok()?,
        rrn: Rrn::parse(r.rrn.trim()).ok()?,
        code: ResponseCode::parse(&r.response_code)?,
        is_reversal: r.mti.starts_with("04"),
        reversed: r.reversal,
        voided: r.voided,
    })
}

/// The host's money-moving transactions of the day (and those written after an earlier
/// day closed, which belong here), and the settlements received in it.
fn read_host(
    host: &Connection,
    state: &Connection,
    opts: &Options,
) -> Result<(Vec<HostTxn>, Vec<Settlement>), ReconError> {
    let (from, to) = (opts.cut.start_ms(opts.day), opts.cut.start_ms(opts.day + 1));
    let mut rows = books::money_txns(host, from, to, 0)?;
    // Late writes of the closed days just before this one.
    let mut day = opts.day - 1;
    while let Some(id_hi) = state::closed_id_hi(state, day)? {
        rows.extend(books::money_txns(
            host,
            opts.cut.start_ms(day),
            opts.cut.start_ms(day + 1),
            id_hi,
        )?);
        day -= 1;
    }
    let txns = rows
        .iter()
        .filter_map(|r| host_txn(r, &opts.acquirer))
        .collect();
    let settlements = books::settlements(host, from, to)?
        .into_iter()
        .filter_map(|s| {
            let totals = |t: (u64, u32, u64, u32)| Totals {
                debit_fen: t.0,
                debit_count: t.1,
                credit_fen: t.2,
                credit_count: t.3,
            };
            Some(Settlement {
                tid: Tid::parse(&s.tid).ok()?,
                batch: s.batch,
                terminal: totals(s.terminal),
                host: totals(s.host),
                balanced: s.balanced,
                closed: s.closed,
                uploads: s
                    .uploads
                    .into_iter()
                    .map(|(stan, pan_masked, amount_fen)| Upload {
                        stan,
                        pan_masked,
                        amount_fen,
                    })
                    .collect(),
            })
        })
        .collect();
    Ok((txns, settlements))
}

/// A ledger row as reconciliation compares it.
pub fn host_txn(r: &LedgerTxn, acquirer: &str) -> Option<HostTxn> {
    use TransactionKind as K;
    let direction = match r.kind {
        K::Sale | K::PreAuthCompletion => Direction::Debit,
        K::Void | K::PreAuthCompletionVoid | K::Refund => Direction::Credit,
        _ => return None,
    };
    let state = match r.state {
        TxnState::Reversed => HostState::Reversed,
        TxnState::Approved | TxnState::Voided | TxnState::Closed if r.code == "00" => {
            HostState::Approved
        }
        _ => HostState::Declined,
    };
    Some(HostTxn {
        id: r.id,
        key: match &r.forwarded {
            Some((stan, time)) => Some(SwitchKey::parse(acquirer, *stan, time)?),
            None => None,
        },
        direction,
        tid: Tid::parse(&r.tid).ok()?,
        mid: Mid::parse(&r.mid).ok()?,
        batch: r.batch,
        stan: r.stan,
        amount: AmountFen::new(r.amount_fen).ok()?,
        pan: MaskedPan::parse(&r.pan_masked)?,
        rrn: Rrn::parse(&r.rrn).unwrap_or(Rrn::parse("000000000000").ok()?),
        code: ResponseCode::parse(&r.code).unwrap_or(ResponseCode::SYSTEM_MALFUNCTION),
        state,
        created_ms: r.created_ms,
    })
}

/// Why the run cannot call the day complete.
fn incomplete_reasons(
    opts: &Options,
    no_file: bool,
    host: &[HostTxn],
    settlements: &[Settlement],
) -> Vec<String> {
    let mut reasons = Vec::new();
    let end_ms = opts.cut.start_ms(opts.day + 1);
    if opts.now_ms < end_ms {
        let end = HostTime::at(end_ms, opts.cut.utc_offset_minutes);
        let hhmmss = end.hhmmss();
        reasons.push(format!(
            "day still open: clearing day {} ends at {} {}:{}",
            yyyymmdd(opts.day),
            end.date_iso(),
            &hhmmss[..2],
            &hhmmss[2..4]
        ));
    }
    if no_file {
        reasons.push(format!(
            "no ACOMA file of the switch for {} in {}",
            yyyymmdd(opts.day),
            opts.clearing_dir.display()
        ));
    }
    let mut unsettled: Vec<(Tid, u32)> = host
        .iter()
        .filter(|h| h.state == HostState::Approved)
        .map(|h| (h.tid, h.batch))
        .filter(|(tid, batch)| {
            !settlements
                .iter()
                .any(|s| s.tid == *tid && s.batch == *batch && s.closed)
        })
        .collect();
    unsettled.sort();
    unsettled.dedup();
    for (tid, batch) in unsettled.iter().take(UNSETTLED_NAMED_MAX) {
        reasons.push(format!(
            "terminal {} batch {batch:06} not settled",
            tid.as_str()
        ));
    }
    if unsettled.len() > UNSETTLED_NAMED_MAX {
        reasons.push(format!(
            "and {} more batches not settled",
            unsettled.len() - UNSETTLED_NAMED_MAX
        ));
    }
    reasons
}

/// Host transactions of earlier days that open breaks wait for on a later file.
fn awaited(
    host: &Connection,
    state: &Connection,
    opts: &Options,
) -> Result<Vec<(String, HostTxn)>, ReconError> {
    let mut out = Vec::new();
    for (id, txn_id) in state::awaiting(state, opts.day)? {
        if let Some(h) = books::money_txn(host, txn_id)?.and_then(|r| host_txn(&r, &opts.acquirer))
        {
            out.push((id, h));
        }
    }
    Ok(out)
}

/// The host transactions of earlier days that this day's switch records name by RRN (the
/// host's RRN is its transaction id) when the day's own do not: cleared a day late.
fn earlier(
    host: &Connection,
    opts: &Options,
    today: &[HostTxn],
    switch: &[SwitchTxn],
    awaited: &[(String, HostTxn)],
) -> Result<Vec<HostTxn>, ReconError> {
    let known: std::collections::HashSet<SwitchKey> = today
        .iter()
        .chain(awaited.iter().map(|(_, h)| h))
        .filter_map(|h| h.key)
        .collect();
    let day_start_ms = opts.cut.start_ms(opts.day);
    let mut out = Vec::new();
    for s in switch
        .iter()
        .filter(|s| !s.is_reversal && !known.contains(&s.key))
    {
        let Ok(id) = s.rrn.as_str().parse::<i64>() else {
            continue;
        };
        if let Some(h) = books::money_txn(host, id)?
            .filter(|r| r.created_ms < day_start_ms)
            .and_then(|r| host_txn(&r, &opts.acquirer))
            .filter(|h| h.key == Some(s.key))
        {
            out.push(h);
        }
    }
    Ok(out)
}

/// Applies the safe resolutions: a credit adjustment (E32) for each open break that asks
/// for one, posted once whatever the number of runs.
fn resolve(
    host: &mut Connection,
    opts: &Options,
    breaks: &mut [Break],
    reasons: &mut Vec<String>,
) -> Result<(), ReconError> {
    for b in breaks.iter_mut() {
        if b.action != Action::CreditAdjustment || b.status == Status::Resolved {
            continue;
        }
        let Some(txn_id) = b.records.host.as_ref().and_then(|h| h["id"].as_i64()) else {
            reasons.push(format!("break {}: no host transaction to adjust", b.id));
            continue;
        };
        let reason_code = if b.class == Class::C { "4502" } else { "9654" };
        let (adj, _) = books::post_credit_adjustment(
            host,
            &CreditAdjustment {
                reference: &b.id,
                original_txn_id: txn_id,
                amount_fen: b.amount_fen,
                original_clearing_day: opts.day,
                reason_code,
                now: HostTime::at(opts.now_ms, opts.cut.utc_offset_minutes),
                cut: opts.cut,
            },
        )?;
        b.status = Status::Resolved;
        b.resolution = Some(format!(
            "credit adjustment (E32, reason {reason_code}) posted as ledger transaction {adj}; the switch lists it in its next AERRA file"
        ));
    }
    Ok(())
}
