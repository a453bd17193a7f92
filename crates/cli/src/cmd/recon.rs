//! `poskit recon`: one clearing day's three-way reconciliation (terminal settlements, the
//! host ledger, the switch's files). Exit 0 when the run completed (breaks or not, complete
//! or incomplete), 1 when an input could not be read (nothing kept), 2 for bad arguments.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use poskit_codes::Lang;
use poskit_codes::advice::break_advice;
use poskit_domain::calendar::{ClearingCut, day_of_yyyymmdd};
use poskit_host::config::parse_hhmm;
use poskit_recon::model::Class;
use poskit_recon::run::{Options, ReconError, Report, run as reconcile};

use crate::cmd::locale;
use crate::cmd::pos::yuan;
use crate::fail::usage;

/// Host transactions this close to the cut-off that the switch lacks wait for the next day.
const NEAR_CUT_MS: i64 = 10 * 60 * 1000;
/// Breaks shown one by one in the summary.
const TOP_BREAKS_SHOWN: usize = 10;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The host's data directory (its ledger; `recon.db` is kept there too).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// The clearing day, YYYYMMDD (it runs from the cut-off of the day before).
    #[arg(long, value_name = "YYYYMMDD")]
    date: String,
    /// Where the switch's files are (`IND{yymmdd}32ACOMA`, ...); default DIR/clearing.
    #[arg(long, value_name = "DIR")]
    clearing: Option<PathBuf>,
    /// The clearing day's cut-off, local time.
    #[arg(long, default_value = "23:00", value_name = "HH:MM")]
    cut: String,
    /// Local time's offset from UTC in minutes (Beijing time: 480).
    #[arg(long, default_value_t = 480, allow_hyphen_values = true)]
    utc_offset_minutes: i32,
    /// This acquirer's institution code (the first part of the CUP key).
    #[arg(long, default_value = "08010000")]
    acquirer: String,
    /// Print the run as JSON (the contract in README).
    #[arg(long)]
    json: bool,
    /// zh or en (default: the locale).
    #[arg(long, value_name = "zh|en")]
    lang: Option<String>,
    /// Also write every break and every matched pair as CSV to this file.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let day = day_of_yyyymmdd(&args.date)
        .ok_or_else(|| usage(format!("--date {}: expected a date YYYYMMDD", args.date)))?;
    let cut_minute = parse_hhmm(&args.cut)
        .ok_or_else(|| usage(format!("--cut {}: expected a time HH:MM", args.cut)))?;
    if !(-14 * 60..=14 * 60).contains(&args.utc_offset_minutes) {
        return Err(usage("--utc-offset-minutes: -840 to 840"));
    }
    let lang = locale::chosen(args.lang.as_deref())?;
    let dir = crate::cmd::host::existing_data_dir(&args.data)?;
    let mut host = dir.open_store()?;
    let state = poskit_recon::state::open(&args.data)?;
    let opts = Options {
        day,
        clearing_dir: args
            .clearing
            .clone()
            .unwrap_or_else(|| args.data.join("clearing")),
        cut: ClearingCut {
            utc_offset_minutes: args.utc_offset_minutes,
            cut_minute_of_day: cut_minute,
        },
        acquirer: args.acquirer.clone(),
        near_cut_ms: NEAR_CUT_MS,
        keep_matched: args.csv.is_some(),
        now_ms: now_ms(),
    };
    let report = match reconcile(&mut host, &state, &opts) {
        Ok(report) => report,
        Err(ReconError::Input(why)) => {
            // Exit 1 (EXIT_INPUT), as for any error that is not a usage error.
            anyhow::bail!("{why} (nothing was kept)");
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(path) = &args.csv {
        write_csv(path, &report)?;
    }
    if report.status == "complete" {
        publish(&args.data, &report, opts.now_ms);
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        summary(&report, lang)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What the run found, by class, for the host's alerts and metrics (`stats.db`); a host
/// that never ran has none, and reconciliation does not need one.
fn publish(data: &std::path::Path, report: &Report, now_ms: i64) {
    let path = data.join(poskit_host::run::STATS_FILE);
    let found: Vec<(&str, u64)> = Class::ALL
        .iter()
        .map(|c| {
            let n = report
                .breaks
                .iter()
                .filter(|b| b.class == *c && b.found_on == report.date)
                .count();
            (c.as_str(), n as u64)
        })
        .collect();
    let kept = rusqlite::Connection::open(&path).and_then(|mut conn| {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        poskit_monitor::stats::migrate(&conn)?;
        poskit_monitor::stats::record_recon(&mut conn, &report.date, &found, now_ms)
    });
    if let Err(e) = kept {
        eprintln!(
            "poskit recon: {}: {e} (alerts will not see this run)",
            path.display()
        );
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Counts and amounts per class, the top breaks, why the run is incomplete.
fn summary(report: &Report, lang: Lang) -> anyhow::Result<()> {
    let zh = lang == Lang::Zh;
    outln!(
        "{} {}: {} ({} {}, {} {})",
        if zh { "对账日" } else { "clearing day" },
        report.date,
        report.status,
        report.matched,
        if zh { "笔对平" } else { "matched" },
        report.breaks.len(),
        if zh { "笔差错" } else { "breaks" }
    )?;
    for why in &report.incomplete_reasons {
        outln!("  {} {why}", if zh { "未完成：" } else { "incomplete:" })?;
    }
    let mut per_class: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for b in &report.breaks {
        let e = per_class.entry(b.class.as_str()).or_default();
        e.0 += 1;
        e.1 += b.amount_fen;
    }
    for (class, (n, fen)) in &per_class {
        let name = break_advice(class).map_or(*class, |a| a.name(lang));
        outln!("  {class:<18} {n:>6}  {:>14}  {name}", yuan(*fen))?;
    }
    for b in report.breaks.iter().take(TOP_BREAKS_SHOWN) {
        outln!(
            "  [{}] {} {:?} {} {}",
            b.priority,
            b.id,
            b.status,
            yuan(b.amount_fen),
            if zh { &b.advice.zh } else { &b.advice.en }
        )?;
        if let Some(how) = &b.resolution {
            outln!("      {how}")?;
        }
    }
    Ok(())
}

/// One line per break (id, class, status, priority, amount, action, fields that differ,
/// host transaction) and one per matched pair (host transaction and CUP key).
fn write_csv(path: &std::path::Path, report: &Report) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).map_err(|e| usage(format!("--csv {}: {e}", path.display())))?;
    let mut out = std::io::BufWriter::new(file);
    writeln!(
        out,
        "record,id,class,status,priority,amount_fen,action,fields_differing,host_txn,key"
    )?;
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for b in &report.breaks {
        let host_txn = b.records.host.as_ref().and_then(|h| h["id"].as_i64());
        writeln!(
            out,
            "break,{},{},{:?},{},{},{:?},{},{},",
            quote(&b.id),
            b.class.as_str(),
            b.status,
            b.priority,
            b.amount_fen,
            b.action,
            quote(&b.fields_differing.join("; ")),
            host_txn.map(|id| id.to_string()).unwrap_or_default(),
        )?;
    }
    for (host_txn, key) in &report.matched_records {
        writeln!(out, "matched,,A,,,,,,{host_txn},{key}")?;
    }
    out.flush()?;
    Ok(())
}
