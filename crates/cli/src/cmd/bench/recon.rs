//! `poskit bench recon`: one generated clearing day reconciled by the production path
//! (`poskit_recon::run`), timed, its peak memory measured, and its breaks checked against
//! the ones injected. The run happens in a child process (`bench recon-run`, hidden), so
//! that its peak resident memory (`VmHWM`) is the run's alone, not the generator's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::Context;
use serde_json::{Value, json};

use poskit_domain::calendar::day_of_yyyymmdd;
use poskit_host::DataDir;
use poskit_recon::Class;
use poskit_recon::run::{Options, run_timed};

use super::day::{self, ACQUIRER, Plan};
use crate::fail::usage;

/// As `poskit recon`: what the switch lacks this close to the cut-off waits for a day.
const NEAR_CUT_MS: i64 = 10 * 60 * 1000;

#[derive(Debug, clap::Args)]
pub struct ReconArgs {
    /// Transactions of the day (ids on the host's ledger and the switch's file; 1 000 to
    /// 50 000 000). Ten million make an ACOMA file of 9.5 GB and a ledger of about 2 GB.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Breaks injected of each class (C, B, E, G, duplicate, one-sided reversal, batch
    /// total); at most a fiftieth of --rows.
    #[arg(long, default_value_t = 1_000)]
    breaks: u64,
    /// Where to write the day (a host data directory, the files in DIR/clearing); it must
    /// not exist. Default: a temporary directory.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print JSON: the timings, peak memory, and found and expected counts per class.
    #[arg(long)]
    json: bool,
    /// Keep the generated day (and the run's recon.db) instead of deleting it.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, clap::Args)]
pub struct ReconRunArgs {
    /// The generated data directory.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
}

pub fn run(a: ReconArgs) -> anyhow::Result<ExitCode> {
    if !(1_000..=50_000_000).contains(&a.rows) || a.breaks == 0 || a.breaks * 50 > a.rows {
        return Err(usage(
            "--rows: 1000 to 50000000; --breaks: 1 to a fiftieth of --rows",
        ));
    }
    let (dir, _temp) = match &a.dir {
        Some(dir) if dir.exists() => {
            return Err(usage(format!("--dir {}: already exists", dir.display())));
        }
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = tempfile::tempdir().context("temporary directory")?;
            (temp.path().join("day"), Some(temp))
        }
    };
    let plan = Plan::new(a.rows, a.breaks);
    let started = Instant::now();
    let generated = day::generate(&plan, &dir);
    let generate_ms = started.elapsed().as_millis() as u64;
    let measured = generated.and_then(|_| run_child(&dir));
    if !a.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let measured = measured?;
    let expected = expected_counts(&plan);
    let found = &measured["classes"];
    let matched_expected = plan.expected().matched;
    let exact = expected
        .iter()
        .all(|(class, n)| found[class].as_u64() == Some(*n))
        && found.as_object().is_some_and(|o| o.len() == expected.len())
        && measured["matched"].as_u64() == Some(matched_expected);
    let summary = json!({
        "rows": a.rows, "breaks_per_class": a.breaks, "generate_ms": generate_ms,
        "expected": {"classes": expected, "matched": matched_expected},
        "run": measured, "exact": exact,
        "dir": a.keep.then(|| dir.display().to_string()),
    });
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?)?;
    } else {
        print_summary(&summary)?;
    }
    Ok(if exact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::fail::EXIT_INPUT)
    })
}

/// The class counts the day was generated with (D and F: none, see `day.rs`).
fn expected_counts(plan: &Plan) -> BTreeMap<&'static str, u64> {
    [
        Class::B,
        Class::C,
        Class::E,
        Class::G,
        Class::Duplicate,
        Class::BatchTotal,
        Class::OneSidedReversal,
    ]
    .into_iter()
    .map(|c| (c.as_str(), plan.breaks))
    .collect()
}

/// Runs `bench recon-run` on the day; its JSON.
fn run_child(dir: &Path) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("this program's path")?;
    let out = Command::new(exe)
        .args(["bench", "recon-run", "--data"])
        .arg(dir)
        .output()
        .context("the reconciliation run")?;
    anyhow::ensure!(
        out.status.success(),
        "the reconciliation run failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    serde_json::from_slice(&out.stdout).context("the reconciliation run's JSON")
}

fn print_summary(s: &Value) -> anyhow::Result<()> {
    let run = &s["run"];
    let secs = |v: &Value| v.as_f64().unwrap_or(0.0) / 1000.0;
    outln!(
        "{} ids, {} breaks of each class: generated in {:.1} s",
        s["rows"],
        s["breaks_per_class"],
        secs(&s["generate_ms"])
    )?;
    outln!(
        "reconciled in {:.2} s ({:.2} s without posting {} credit adjustments): read {:.2} s, compare {:.2} s, post {:.2} s, keep {:.2} s",
        secs(&run["total_ms"]),
        secs(&run["without_posting_ms"]),
        run["adjustments"],
        secs(&run["read_ms"]),
        secs(&run["compare_ms"]),
        secs(&run["resolve_ms"]),
        secs(&run["keep_ms"]),
    )?;
    let mib = run["peak_rss_bytes"].as_f64().unwrap_or(0.0) / (1u64 << 20) as f64;
    outln!(
        "peak memory (VmHWM) {mib:.0} MiB; {} matched",
        run["matched"]
    )?;
    for (class, n) in s["expected"]["classes"].as_object().into_iter().flatten() {
        outln!(
            "  {class:<18} found {:>8}  injected {n:>8}",
            run["classes"][class]
        )?;
    }
    let verdict = if s["exact"] == true {
        "every injected break found, nothing else"
    } else {
        "MISMATCH: the breaks found are not the ones injected"
    };
    outln!("{verdict}")?;
    Ok(())
}

/// `bench recon-run`: the production run on a generated day, as JSON (times, peak memory,
/// counts per class).
pub fn run_generated(a: ReconRunArgs) -> anyhow::Result<ExitCode> {
    let dir = DataDir::existing(&a.data);
    let started = Instant::now();
    let mut host = dir.open_store()?;
    let state = rusqlite::Connection::open(a.data.join("recon.db"))?;
    let day = day_of_yyyymmdd(day::DATE).context("the day")?;
    let opts = Options {
        day,
        clearing_dir: a.data.join("clearing"),
        cut: Default::default(),
        acquirer: ACQUIRER.into(),
        near_cut_ms: NEAR_CUT_MS,
        keep_matched: false,
        now_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    };
    let (report, t) = run_timed(&mut host, &state, &opts)?;
    let total_ms = started.elapsed().as_millis() as u64;
    let mut classes: BTreeMap<&str, u64> = BTreeMap::new();
    for b in &report.breaks {
        *classes.entry(b.class.as_str()).or_default() += 1;
    }
    let adjustments = report
        .breaks
        .iter()
        .filter(|b| b.resolution.is_some())
        .count();
    outln!(
        "{}",
        json!({
            "total_ms": total_ms, "without_posting_ms": total_ms.saturating_sub(t.resolve_ms),
            "read_ms": t.read_ms, "compare_ms": t.compare_ms, "resolve_ms": t.resolve_ms,
            "keep_ms": t.keep_ms, "adjustments": adjustments, "peak_rss_bytes": peak_rss_bytes(),
            "status": report.status, "incomplete_reasons": report.incomplete_reasons,
            "matched": report.matched, "classes": classes,
        })
    )?;
    Ok(ExitCode::SUCCESS)
}

/// This process's peak resident memory (`VmHWM` of /proc/self/status), in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
