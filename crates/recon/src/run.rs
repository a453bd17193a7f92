//! A reconciliation run over one clearing day: the three sides read (the host's ledger and
//! settlements through its store's API, the switch's ACOMA file), compared, breaks carried
//! from earlier runs, safe resolutions applied once, and the run kept.
//!
//! Run discipline (`spec/cup-clearing.md` §5): a day is cut by the ledger's insertion order
//! as well as by time — a complete run closes its day at the last transaction id it saw, and
//! a row written later with a time inside the closed day belongs to the next open day; a
//! closed day's report never changes. A run that could not see the whole day (still open,
//! a file missing, a terminal not settled) is *incomplete* and says why.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use foldhash::fast::RandomState;
use poskit_clearing::{FileKind, Key, Profile, RawRecord};
use poskit_domain::calendar::{ClearingCut, yyyymmdd};
use poskit_domain::{AmountFen, Mid, ResponseCode, Rrn, Tid, TransactionKind};
use poskit_host::clock::HostTime;
use poskit_host::store::TxnState;
use poskit_host::store::books::{self, CreditAdjustment, LedgerTxn, LedgerTxnRef};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::matching::{Day, Found, compare, sort_host, sort_switch};
use crate::merchants::Merchants;
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
    /// Keep the matched records' (host transaction, CUP key) in the report, for `--csv`.
    pub keep_matched: bool,
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
    /// (host transaction, CUP key) of each matched pair, when asked (never stored).
    #[serde(skip)]
    pub matched_records: Vec<(i64, String)>,
}

impl Report {
    /// Breaks of each class (classes with none left out), in the classes' order.
    pub fn counts(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut by_class = std::collections::BTreeMap::new();
        for b in &self.breaks {
            *by_class.entry(b.class).or_insert(0) += 1;
        }
        by_class.into_iter().map(|(c, n)| (c.as_str(), n)).collect()
    }

    /// Balanced: the run completed and every break it lists is resolved.
    pub fn balanced(&self) -> bool {
        self.status == "complete"
            && self
                .breaks
                .iter()
                .all(|b| b.status == crate::model::Status::Resolved)
    }
}

/// Where a run's time went, in ms (all zero for a closed day read back).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Timings {
    /// The three sides read: the ACOMA file parsed and the ledger read, at once.
    pub read_ms: u64,
    /// The comparison and the breaks merged with earlier runs.
    pub compare_ms: u64,
    /// The credit adjustments (E32) posted: one durable ledger transaction each.
    pub resolve_ms: u64,
    /// The run kept in `recon.db`.
    pub keep_ms: u64,
}

/// Runs (or, for a closed day, reads back) the reconciliation of `opts.day`.
pub fn run(
    host: &mut Connection,
    state: &Connection,
    opts: &Options,
) -> Result<Report, ReconError> {
    run_timed(host, state, opts).map(|(report, _)| report)
}

/// [`run`], with where its time went.
pub fn run_timed(
    host: &mut Connection,
    state: &Connection,
    opts: &Options,
) -> Result<(Report, Timings), ReconError> {
    state::migrate(state)?;
    if let Some(report) = state::closed_report(state, opts.day)? {
        return Ok((report, Timings::default()));
    }
    let ms_since = |at: Instant| at.elapsed().as_millis() as u64;
    let mut timings = Timings::default();
    let started = Instant::now();
    let Sides {
        switch,
        id_hi,
        host: host_txns,
        settlements,
        mut merchants,
    } = read_sides(host, state, opts)?;
    let mut reasons = incomplete_reasons(opts, switch.is_none(), &host_txns, &settlements);
    let awaited = awaited(host, state, opts, &mut merchants)?;
    timings.read_ms = ms_since(started);
    let started = Instant::now();
    let merchants = Arc::new(merchants);
    let mut found = compare(Day {
        date: yyyymmdd(opts.day),
        end_ms: opts.cut.start_ms(opts.day + 1),
        near_cut_ms: opts.near_cut_ms,
        host: host_txns,
        awaited,
        switch: switch.unwrap_or_default(),
        settlements,
        merchants: Arc::clone(&merchants),
        keep_matched: opts.keep_matched,
    });
    cleared_late(host, opts, &merchants, &mut found)?;
    host_rrns(host, &mut found.breaks)?;
    let mut breaks = state::merge(state, opts.day, found.breaks, &found.resolved)?;
    timings.compare_ms = ms_since(started);
    let started = Instant::now();
    resolve(host, opts, &mut breaks, &mut reasons)?;
    timings.resolve_ms = ms_since(started);
    let started = Instant::now();
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
        matched_records: found
            .matched_pairs
            .iter()
            .map(|(id, key)| (*id, key.text()))
            .collect(),
    };
    state::keep(state, opts.day, &report, id_hi, opts.now_ms)?;
    timings.keep_ms = ms_since(started);
    Ok((report, timings))
}

/// The day's sides as read, their merchant ids in one table.
struct Sides {
    /// `None`: no ACOMA file.
    switch: Option<Vec<SwitchTxn>>,
    /// The last transaction id on file when the ledger was read.
    id_hi: i64,
    host: Vec<HostTxn>,
    settlements: Vec<Settlement>,
    merchants: Merchants,
}

/// The switch's file parsed on a thread of its own while this one reads the ledger; the
/// last transaction id on file is taken before the ledger is read (where a complete run
/// closes the day).
fn read_sides(host: &Connection, state: &Connection, opts: &Options) -> Result<Sides, ReconError> {
    std::thread::scope(|scope| {
        let switch = scope.spawn(|| read_switch(&opts.clearing_dir, opts.day));
        let host_side = (|| -> Result<_, ReconError> {
            let id_hi = books::last_txn_id(host)?;
            Ok((id_hi, read_host(host, state, opts)?))
        })();
        // The file's error first, as when the sides were read one after the other.
        let switch = switch
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        let (id_hi, (host_txns, mut merchants)) = host_side?;
        let switch = switch.map(|(mut txns, of_file)| {
            let renumbering = merchants.absorb(&of_file);
            for s in &mut txns {
                s.mid = renumbering.of(s.mid);
            }
            txns
        });
        let (from, to) = (opts.cut.start_ms(opts.day), opts.cut.start_ms(opts.day + 1));
        Ok(Sides {
            switch,
            id_hi,
            host: host_txns,
            settlements: settlements(host, from, to)?,
            merchants,
        })
    })
}

/// The switch's transactions of the day, from its ACOMA file (read in chunks, each record
/// straight into a [`SwitchTxn`]), with the merchant ids they refer to; `None` when there
/// is no file. All or nothing: the first bad line of the file is the error.
fn read_switch(dir: &Path, day: i64) -> Result<Option<(Vec<SwitchTxn>, Merchants)>, ReconError> {
    let date = clearing_date(day)?;
    let path = dir.join(poskit_clearing::file_name(FileKind::Acoma, date));
    if !path.exists() {
        return Ok(None);
    }
    let profile = Profile::builtin(FileKind::Acoma);
    let file_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    let record_bytes = profile.record_len() as u64 + 1;
    let mut txns = Vec::with_capacity((file_bytes / record_bytes) as usize);
    let mut merchants = Merchants::default();
    let mut unreadable_line = None;
    poskit_clearing::for_each_txn_record_in_file(
        &path,
        profile,
        Some(date),
        poskit_clearing::FILE_CHUNK_BYTES,
        |raw| match switch_txn(&raw, &mut merchants) {
            Some(t) => txns.push(t),
            None => {
                unreadable_line.get_or_insert(raw.line());
            }
        },
    )
    .map_err(|e| ReconError::Input(format!("{}: {e}", path.display())))?;
    if let Some(line) = unreadable_line {
        return Err(ReconError::Input(format!(
            "{}: line {line}: unreadable key or identifiers",
            path.display()
        )));
    }
    // Sorted here, while the ledger may still be read: the comparison finds them in order.
    sort_switch(&mut txns);
    Ok(Some((txns, merchants)))
}

/// The file date of a clearing day.
pub fn clearing_date(day: i64) -> Result<poskit_clearing::ClearingDate, ReconError> {
    let text = yyyymmdd(day);
    poskit_clearing::ClearingDate::from_yymmdd(&text[2..])
        .ok_or_else(|| ReconError::Input(format!("{text}: no clearing file can name this date")))
}

/// A record of the file as reconciliation compares it (read from its bytes: the fields
/// it takes are ASCII, see [`RawRecord::key`]), its merchant id in `merchants`.
fn switch_txn(raw: &RawRecord<'_>, merchants: &mut Merchants) -> Option<SwitchTxn> {
    // A field without its padding.
    let text = |key| {
        let bytes = raw.key(key).unwrap_or_default();
        &bytes[..bytes.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1)]
    };
    let str_of = |key| std::str::from_utf8(text(key).trim_ascii()).ok();
    let time = text(Key::TransmissionTime);
    Some(SwitchTxn {
        line: u32::try_from(raw.line()).ok()?,
        key: SwitchKey::of_digits(
            text(Key::AcquirerInst).trim_ascii(),
            raw.key_u64(Key::Stan) as u32,
            [time, b""],
        )?,
        direction: if text(Key::ProcessingCode).starts_with(b"20") {
            Direction::Credit
        } else {
            Direction::Debit
        },
        amount: AmountFen::new(raw.key_u64(Key::AmountFen)).ok()?,
        pan: MaskedPan::of_bytes(text(Key::PanMasked).trim_ascii())?,
        tid: Tid::parse(str_of(Key::Tid)?).ok()?,
        mid: merchants.intern(raw.key(Key::Mid).unwrap_or_default(), |padded| {
            Mid::parse(std::str::from_utf8(padded).ok()?.trim()).ok()
        })?,
        rrn: Rrn::parse(str_of(Key::Rrn)?).ok()?,
        code: ResponseCode::parse(std::str::from_utf8(text(Key::ResponseCode)).ok()?)?,
        is_reversal: text(Key::Mti).starts_with(b"04"),
        reversed: raw.key_flag(Key::ReversalFlag),
        voided: raw.key_flag(Key::VoidFlag),
    })
}

/// Readers of the ledger at once (with the file's, one thread per core of the machine the
/// target was set on).
const HOST_READERS: usize = 2;

/// The host's money-moving transactions of the day (and those written after an earlier
/// day closed, which belong here), with the merchant ids they refer to.
fn read_host(
    host: &Connection,
    state: &Connection,
    opts: &Options,
) -> Result<(Vec<HostTxn>, Merchants), ReconError> {
    let mut merchants = Merchants::default();
    // Late writes, read first (the day's vector is then allocated once with room for them):
    // rows with a time in the closed days just before this one, written after the last of
    // them closed. The run that closed that day took every late row written before it
    // closed (its id_hi is the ledger's last id then), so one pass over the ids since then
    // finds them all, once, however long the chain of closed days.
    let mut late = Vec::new();
    if let Some(id_hi) = state::closed_id_hi(state, opts.day - 1)? {
        let mut oldest = opts.day - 1;
        while state::closed_id_hi(state, oldest - 1)?.is_some() {
            oldest -= 1;
        }
        let (from, to) = (opts.cut.start_ms(oldest), opts.cut.start_ms(opts.day));
        let last = books::last_txn_id(host)?;
        books::for_each_money_txn(host, from, to, id_hi + 1..=last, |r| {
            late.extend(host_txn_of(r, &opts.acquirer, &mut merchants));
        })?;
    }
    let (from, to) = (opts.cut.start_ms(opts.day), opts.cut.start_ms(opts.day + 1));
    let mut txns = match books::txn_ids_created(host, from, to)? {
        Some(ids) => read_day_in_parts(host, opts, ids, late, &mut merchants)?,
        None => late,
    };
    // Sorted here, while the file may still be parsed: the comparison finds them in order.
    sort_host(&mut txns);
    Ok((txns, merchants))
}

/// The day's transactions, then `late`: the day's id range (`lo..=hi`) cut in
/// [`HOST_READERS`] parts read at once, the first on `host`, the others on read-only
/// connections of their own to the same database (one part when it has no file). One
/// vector holds them all, allocated once: a slot per id, each part filling its own, the
/// gaps closed after.
fn read_day_in_parts(
    host: &Connection,
    opts: &Options,
    (lo, hi): (i64, i64),
    late: Vec<HostTxn>,
    merchants: &mut Merchants,
) -> Result<Vec<HostTxn>, ReconError> {
    let path = host.path().filter(|p| !p.is_empty()).map(PathBuf::from);
    let parts = if path.is_some() { HOST_READERS } else { 1 };
    let ids_len = (hi - lo + 1) as usize;
    let part_len = ids_len.div_ceil(parts);
    let mut txns = Vec::with_capacity(ids_len + late.len());
    txns.resize(ids_len, HostTxn::placeholder());
    let (first_len, parts_read) = std::thread::scope(|scope| -> Result<_, ReconError> {
        let mut slots = txns.chunks_mut(part_len).enumerate();
        let (_, first) = slots
            .next()
            .unwrap_or_else(|| unreachable!("a day has an id"));
        let others: Vec<_> = slots
            .map(|(i, slots)| {
                let path = path.clone().unwrap_or_default();
                let ids = lo + (i * part_len) as i64..=hi.min(lo + ((i + 1) * part_len) as i64 - 1);
                scope.spawn(move || -> Result<_, ReconError> {
                    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                    let conn = Connection::open_with_flags(path, flags)?;
                    let mut merchants = Merchants::default();
                    let n = fill_part(&conn, opts, ids, slots, &mut merchants)?;
                    Ok((n, merchants))
                })
            })
            .collect();
        let ids = lo..=hi.min(lo + part_len as i64 - 1);
        let first_len = fill_part(host, opts, ids, first, merchants)?;
        let mut read = Vec::new();
        for other in others {
            read.push(
                other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?,
            );
        }
        Ok((first_len, read))
    })?;
    let mut end = first_len;
    for (i, (len, of_part)) in parts_read.into_iter().enumerate() {
        let start = (i + 1) * part_len;
        let renumbering = merchants.absorb(&of_part);
        for h in &mut txns[start..start + len] {
            h.mid = renumbering.of(h.mid);
        }
        txns.copy_within(start..start + len, end);
        end += len;
    }
    txns.truncate(end);
    txns.extend(late);
    Ok(txns)
}

/// Reads the money-moving transactions of the day with an id in `ids` into `slots` (one
/// per id); how many.
fn fill_part(
    conn: &Connection,
    opts: &Options,
    ids: std::ops::RangeInclusive<i64>,
    slots: &mut [HostTxn],
    merchants: &mut Merchants,
) -> Result<usize, ReconError> {
    let (from, to) = (opts.cut.start_ms(opts.day), opts.cut.start_ms(opts.day + 1));
    let mut filled = 0;
    books::for_each_money_txn(conn, from, to, ids, |r| {
        if let Some(h) = host_txn_of(r, &opts.acquirer, merchants) {
            // An id is one row at most: the part has a slot for each of its rows.
            slots[filled] = h;
            filled += 1;
        }
    })?;
    Ok(filled)
}

/// The settlements received in `[from_ms, to_ms)`.
fn settlements(host: &Connection, from_ms: i64, to_ms: i64) -> Result<Vec<Settlement>, ReconError> {
    let totals = |t: (u64, u32, u64, u32)| Totals {
        debit_fen: t.0,
        debit_count: t.1,
        credit_fen: t.2,
        credit_count: t.3,
    };
    Ok(books::settlements(host, from_ms, to_ms)?
        .into_iter()
        .filter_map(|s| {
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
        .collect())
}

/// A ledger row as reconciliation compares it, its merchant id in `merchants`.
pub fn host_txn(r: &LedgerTxn, acquirer: &str, merchants: &mut Merchants) -> Option<HostTxn> {
    host_txn_of(&r.as_ref(), acquirer, merchants)
}

/// [`host_txn`] of a row as [`books::for_each_money_txn`] reads it.
pub fn host_txn_of(
    r: &LedgerTxnRef<'_>,
    acquirer: &str,
    merchants: &mut Merchants,
) -> Option<HostTxn> {
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
        key: match r.forwarded {
            Some((stan, mmdd, hhmmss)) => {
                Some(SwitchKey::parse_split(acquirer, stan, mmdd, hhmmss)?)
            }
            None => None,
        },
        direction,
        tid: Tid::parse(r.tid).ok()?,
        mid: merchants.intern(r.mid.as_bytes(), |_| Mid::parse(r.mid).ok())?,
        batch: r.batch,
        stan: r.stan,
        amount: AmountFen::new(r.amount_fen).ok()?,
        pan: MaskedPan::parse(r.pan_masked)?,
        code: ResponseCode::parse(r.code).unwrap_or(ResponseCode::SYSTEM_MALFUNCTION),
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
    let closed: HashSet<(Tid, u32), RandomState> = settlements
        .iter()
        .filter(|s| s.closed)
        .map(|s| (s.tid, s.batch))
        .collect();
    let batches: HashSet<(Tid, u32), RandomState> = host
        .iter()
        .filter(|h| h.state == HostState::Approved)
        .map(|h| (h.tid, h.batch))
        .collect();
    let unsettled: BTreeSet<(Tid, u32)> = batches
        .into_iter()
        .filter(|batch| !closed.contains(batch))
        .collect();
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
    merchants: &mut Merchants,
) -> Result<Vec<(String, HostTxn)>, ReconError> {
    let mut out = Vec::new();
    for (id, txn_id) in state::awaiting(state, opts.day)? {
        if let Some(h) =
            books::money_txn(host, txn_id)?.and_then(|r| host_txn(&r, &opts.acquirer, merchants))
        {
            out.push((id, h));
        }
    }
    Ok(out)
}

/// Switch records alone on this day (class B) whose host transaction is of an earlier day
/// (the switch cleared it late; named by its RRN, the host's row id): compared with it
/// instead. Only the few records alone are looked up.
fn cleared_late(
    host: &Connection,
    opts: &Options,
    merchants: &Merchants,
    found: &mut Found,
) -> Result<(), ReconError> {
    let day_start_ms = opts.cut.start_ms(opts.day);
    for s in std::mem::take(&mut found.alone_at_switch) {
        let Ok(id) = s.rrn.as_str().parse::<i64>() else {
            continue;
        };
        // The pair's merchant ids in a table of their own.
        let mut of_pair = Merchants::default();
        let Some(h) = books::money_txn(host, id)?
            .filter(|r| r.created_ms < day_start_ms)
            .and_then(|r| host_txn(&r, &opts.acquirer, &mut of_pair))
            .filter(|h| h.key == Some(s.key))
        else {
            continue;
        };
        let s = SwitchTxn {
            mid: of_pair.add(merchants.mid(s.mid)),
            ..s
        };
        found.breaks.retain(|b| {
            !(b.class == Class::B
                && b.records
                    .switch
                    .as_ref()
                    .is_some_and(|j| j["line"] == s.line))
        });
        let pair = compare(Day {
            date: yyyymmdd(opts.day),
            end_ms: opts.cut.start_ms(opts.day + 1),
            near_cut_ms: opts.near_cut_ms,
            host: vec![h],
            switch: vec![s],
            merchants: Arc::new(of_pair),
            ..Day::default()
        });
        found.matched += pair.matched;
        found.breaks.extend(pair.breaks);
    }
    Ok(())
}

/// The RRNs of the host's transactions in the breaks, read back from the ledger (a
/// [`HostTxn`] does not hold one): as the ledger has it, twelve zeros when it has none.
fn host_rrns(host: &Connection, breaks: &mut [Break]) -> Result<(), ReconError> {
    for b in breaks {
        let Some(record) = b.records.host.as_mut() else {
            continue;
        };
        let Some(id) = record.get("rrn").and(record["id"].as_i64()) else {
            continue;
        };
        let rrn = books::money_txn(host, id)?.and_then(|t| Rrn::parse(&t.rrn).ok());
        record["rrn"] = rrn.as_ref().map_or("000000000000", Rrn::as_str).into();
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    /// A sale at the demo's main merchant created at `created_ms`, row `id`.
    fn insert(host: &Connection, id: i64, created_ms: i64) {
        host.execute(
            "INSERT INTO transactions (id, kind, reversal, mti, tid, mid, batch, stan, idem,
                 amount_fen, pan_masked, rrn, auth_code, day, mmdd, hhmmss, created_ms, code,
                 reason, state, fwd)
             VALUES (?1, 'sale', 0, '0200', '10000001', '898310048160001', 1, ?1, 1, 100,
                 '622202******0018', printf('%012d', ?1), '000001', 0, '1201', '120000', ?2,
                 '00', '', 'approved', 1)",
            params![id, created_ms],
        )
        .unwrap();
    }

    fn ids(txns: &[HostTxn]) -> Vec<i64> {
        let mut ids: Vec<i64> = txns.iter().map(|t| t.id).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn a_late_write_of_a_closed_day_is_read_once_by_the_next_open_day() {
        let dir = tempfile::tempdir().unwrap();
        let host = poskit_host::store::sqlite::open(dir.path()).unwrap();
        let state = Connection::open_in_memory().unwrap();
        state::migrate(&state).unwrap();
        let cut = ClearingCut::default();
        let day = 20_400; // any day
        let mid_of = |d: i64| cut.start_ms(d) + 3_600_000;
        let opts = |d: i64| Options {
            day: d,
            clearing_dir: dir.path().into(),
            cut,
            acquirer: "08010000".into(),
            near_cut_ms: 0,
            keep_matched: false,
            now_ms: cut.start_ms(d + 2),
        };
        let close = |d: i64, id_hi: i64| {
            state
                .execute(
                    "INSERT INTO recon_days (day, closed, id_hi, report, run_ms) VALUES (?1, 1, ?2, '{}', 0)",
                    params![d, id_hi],
                )
                .unwrap();
        };
        // Day d-2 closed at id 2; a row with its time written after (id 3); day d-1 closed
        // at id 4, which took id 3 as its late write; then ids 5 (d-2's time) and 6
        // (d-1's time) written after d-1 closed; id 7 is day d's own.
        insert(&host, 1, mid_of(day - 2));
        insert(&host, 2, mid_of(day - 2));
        close(day - 2, 2);
        insert(&host, 3, mid_of(day - 2));
        insert(&host, 4, mid_of(day - 1));
        close(day - 1, 4);
        insert(&host, 5, mid_of(day - 2));
        insert(&host, 6, mid_of(day - 1));
        insert(&host, 7, mid_of(day));
        let (txns, _) = read_host(&host, &state, &opts(day)).unwrap();
        // 3 was d-1's late write: not again. 5 and 6 are late writes of this day.
        assert_eq!(ids(&txns), [5, 6, 7]);
        // A day after an open one takes no late writes: they wait for it.
        let (txns, _) = read_host(&host, &state, &opts(day + 1)).unwrap();
        assert_eq!(ids(&txns), Vec::<i64>::new());
    }
}
