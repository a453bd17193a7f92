//! `poskit demo`: the whole system in one command. A host on embedded SQLite, a fleet of
//! virtual terminals with mild faults and the usual cardholder mistakes, a live progress
//! line, then settlement, the checker, and a report a merchant or an operations lead reads.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use poskit_codes::{Catalog, Lang, Table};
use poskit_sim::live::{self, LiveReport, Progress};

use crate::fail::{self, usage};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long the fleet trades, in seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Virtual terminals (1 to 64).
    #[arg(long, default_value_t = 8)]
    terminals: u32,
    /// Where the host's ledger and the terminals' journals go (default: a new directory
    /// under the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Language of the report: zh or en (default: the locale).
    #[arg(long, value_name = "LANG")]
    lang: Option<String>,
}

fn summary(p: &Progress, elapsed: Duration) -> String {
    let rate = p.transactions as f64 / elapsed.as_secs_f64().max(0.001);
    let mut codes: Vec<_> = p.declined.iter().collect();
    codes.sort_by(|a, b| b.1.cmp(a.1));
    let top: Vec<String> = codes
        .iter()
        .take(6)
        .map(|(c, n)| format!("{c}×{n}"))
        .collect();
    format!(
        "{} txn · {:.0}/s · approved {} · declined {} · reversals {}",
        p.transactions,
        rate,
        p.approved,
        if top.is_empty() {
            "-".into()
        } else {
            top.join(" ")
        },
        p.reversals_done
    )
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.seconds == 0 || args.seconds > 3600 {
        return Err(usage("--seconds: 1 to 3600"));
    }
    if args.terminals == 0 || args.terminals > live::TERMINALS_MAX {
        return Err(usage(format!("--terminals: 1 to {}", live::TERMINALS_MAX)));
    }
    let lang = match &args.lang {
        None => Lang::from_env(),
        Some(l) => l.parse().map_err(|e| usage(format!("--lang: {e}")))?,
    };
    let data = match args.data {
        Some(d) => d,
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            std::env::temp_dir().join(format!("poskit-demo-{stamp}"))
        }
    };
    if data.join("host").join("host.sqlite").exists() {
        return Err(usage(format!(
            "--data {}: a demo already ran there; give a new directory",
            data.display()
        )));
    }
    crate::input::create_dir("--data", &data)?;
    outln!(
        "poskit demo: a host on SQLite and {} virtual terminals for {} s, with mild faults (lost and late answers, line noise, dropped connections, a slow issuer)",
        args.terminals,
        args.seconds
    )?;
    let bar = ProgressBar::new(args.seconds);
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let ticking = bar.clone();
    let report = runtime
        .block_on(live::run_live(
            &data,
            args.seconds,
            args.terminals,
            move |p, elapsed| {
                ticking.set_position(elapsed.as_secs());
                ticking.set_message(summary(p, elapsed));
            },
        ))
        .map_err(|e| anyhow::anyhow!(e))?;
    bar.finish_and_clear();
    print_report(&report, lang)?;
    Ok(if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(fail::EXIT_INPUT)
    })
}

fn print_report(r: &LiveReport, lang: Lang) -> anyhow::Result<()> {
    let p = &r.progress;
    let catalog = Catalog::builtin();
    let secs = r.elapsed_ms as f64 / 1000.0;
    outln!()?;
    outln!("== What happened in {:.0} s ==", secs)?;
    outln!(
        "{} transactions ({:.0} per second): {} approved, {} declined or failed",
        p.transactions,
        p.transactions as f64 / secs.max(0.001),
        p.approved,
        p.transactions.saturating_sub(p.approved)
    )?;
    let mut codes: Vec<_> = p.declined.iter().collect();
    codes.sort_by(|a, b| b.1.cmp(a.1));
    if !codes.is_empty() {
        outln!()?;
        outln!("Most frequent codes, what they mean and what to do:")?;
        for (code, n) in codes.iter().take(6) {
            let entry = if code.starts_with('L') {
                catalog.local(code)
            } else {
                catalog.lookup(Table::CupPos, code)
            };
            let (meaning, step) = entry
                .map(|e| {
                    (
                        e.meaning(lang).to_owned(),
                        e.steps(lang).first().cloned().unwrap_or_default(),
                    )
                })
                .unwrap_or_else(|| (poskit_codes::UNKNOWN_CODE_DISPLAY.to_owned(), String::new()));
            outln!("  {code:>3} ×{n:<5} {meaning}")?;
            if !step.is_empty() {
                outln!("              → {step}")?;
            }
        }
    }
    outln!()?;
    outln!(
        "Reversals: {} sent and done (the customer was not charged){}{}",
        p.reversals_done,
        if p.reversals_pending > 0 {
            format!(
                ", {} left pending and sent before the next transaction",
                p.reversals_pending
            )
        } else {
            String::new()
        },
        if p.reversals_failed > 0 {
            format!(", {} FAILED (contact the acquirer)", p.reversals_failed)
        } else {
            String::new()
        }
    )?;
    outln!(
        "Settlement: {} terminals balanced, {} unbalanced and batch-uploaded{}",
        r.settlements_balanced,
        r.settlements_unbalanced,
        if r.settlement_failures.is_empty() {
            String::new()
        } else {
            format!(", {} could not settle", r.settlement_failures.len())
        }
    )?;
    for f in &r.settlement_failures {
        outln!("  {f}")?;
    }
    if r.breaks.is_empty() {
        outln!(
            "Breaks: none — every transaction the terminals reported failed left the customer's money alone"
        )?;
    } else {
        outln!("Breaks for the acquirer ({}):", r.breaks.len())?;
        for b in r.breaks.iter().take(10) {
            outln!("  {b}")?;
        }
    }
    if r.violations.is_empty() {
        outln!("Checker: every journal agrees with the ledger; the ledger balances.")?;
    } else {
        outln!("Checker: {} VIOLATIONS", r.violations.len())?;
        for v in r.violations.iter().take(20) {
            outln!("  {v}")?;
        }
    }
    outln!()?;
    outln!("The data stays for further commands:")?;
    outln!("  poskit host check --data {}", r.host_dir.display())?;
    if let Some(t) = r.terminal_dirs.first() {
        outln!("  poskit pos --terminal {} journal", t.display())?;
        outln!("  poskit pos --terminal {} failures", t.display())?;
    }
    Ok(())
}
