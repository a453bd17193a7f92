//! `poskit stats`: a terminal's, a merchant's, a BIN's or the whole host's figures over a
//! window — attempts, approvals, first attempts (a sale retried after a decline counts
//! once), timeouts, reversals, MAC errors, codes — from the minutes the host keeps in
//! `stats.db` (a second after the answers at most).

use std::path::PathBuf;
use std::process::ExitCode;

use poskit_monitor::stats::window;

use crate::fail::usage;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("scope").args(["terminal", "merchant", "bin"])))]
pub struct Args {
    /// The host's data directory.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// One terminal.
    #[arg(long)]
    terminal: Option<String>,
    /// One merchant.
    #[arg(long)]
    merchant: Option<String>,
    /// One BIN (the first six digits of the cards).
    #[arg(long)]
    bin: Option<String>,
    /// The window: 15m, 1h, 1d (whole minutes).
    #[arg(long, default_value = "1h")]
    window: String,
    /// Print JSON: attempts, approved, approval_rate, first_attempt_approval_rate,
    /// by_code, timeouts, reversals, mac_errors, last_seen_ms.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let minutes = window_minutes(&args.window)?;
    let path = args.data.join(poskit_host::run::STATS_FILE);
    if !path.is_file() {
        return Err(usage(format!(
            "--data {}: no statistics there (a host keeps them while it runs)",
            args.data.display()
        )));
    }
    let conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let (scope, id) = match (&args.terminal, &args.merchant, &args.bin) {
        (Some(t), _, _) => ("terminal", t.as_str()),
        (_, Some(m), _) => ("merchant", m.as_str()),
        (_, _, Some(b)) => ("bin", b.as_str()),
        _ => ("all", ""),
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let w = window(&conn, scope, id, minutes, now_ms)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&w)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let name = if id.is_empty() {
        "the host".to_owned()
    } else {
        format!("{scope} {id}")
    };
    outln!(
        "{name}, last {}: {} attempts, {} approved ({:.1} %), first attempts approved {:.1} %",
        args.window,
        w.attempts,
        w.approved,
        w.approval_rate * 100.0,
        w.first_attempt_approval_rate * 100.0
    )?;
    outln!(
        "  timeouts (98) {}, reversals {}, MAC errors (A0) {}",
        w.timeouts,
        w.reversals,
        w.mac_errors
    )?;
    let mut codes: Vec<_> = w.by_code.iter().collect();
    codes.sort_by(|a, b| b.1.cmp(a.1));
    let shown: Vec<String> = codes.iter().map(|(c, n)| format!("{c}×{n}")).collect();
    outln!("  codes: {}", shown.join(" "))?;
    Ok(ExitCode::SUCCESS)
}

/// `15m`, `1h`, `1d` → minutes (at most 31 days).
fn window_minutes(text: &str) -> anyhow::Result<i64> {
    let bad = || {
        usage(format!(
            "--window {text}: a number and m, h or d (15m, 1h, 1d)"
        ))
    };
    let (n, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = n.parse().map_err(|_| bad())?;
    let per = match unit {
        "m" => 1,
        "h" => 60,
        "d" => 1440,
        _ => return Err(bad()),
    };
    let minutes = n.checked_mul(per).ok_or_else(bad)?;
    if !(1..=31 * 1440).contains(&minutes) {
        return Err(bad());
    }
    Ok(minutes)
}
