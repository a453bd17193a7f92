//! `poskit alerts`: the alerts a host raised (from its `stats.db`), each with its
//! diagnosis; acknowledge one; print the shipped rules.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use poskit_codes::Lang;
use poskit_host::clock::{HostTime, UTC_OFFSET_MINUTES_DEFAULT};
use poskit_monitor::alerts::{self, Alert};
use rusqlite::Connection;

use crate::cmd::locale::{self, tr};
use crate::fail::{EXIT_NOT_FOUND, usage};

/// Alerts listed at most.
const LIST_MAX: usize = 500;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The host's data directory.
    #[arg(long, value_name = "DIR", global = true)]
    data: Option<PathBuf>,
    #[command(subcommand)]
    what: Option<What>,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// The alerts firing now (the default), newest first, with their diagnosis.
    List(ListArgs),
    /// Acknowledge an alert: someone is on it (it keeps firing until its condition clears).
    Ack {
        /// The alert's number (from `list`).
        id: i64,
        /// Who acknowledges (default: $USER).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Print the shipped rules (TOML): a file of your own given to `poskit host
    /// --alert-rules` replaces a rule by its name or adds one.
    Rules,
}

#[derive(Debug, Default, clap::Args)]
struct ListArgs {
    /// Also those resolved in the last 24 hours.
    #[arg(long)]
    all: bool,
    /// zh or en (default: the locale).
    #[arg(long, value_name = "zh|en")]
    lang: Option<String>,
    /// Print JSON: an array of {id, rule, severity, scope, subject, title_en, title_zh,
    /// detail, value, fired_ms, last_true_ms, resolved_ms, acked_ms, acked_by, diagnosis}.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let what = args.what.unwrap_or(What::List(ListArgs::default()));
    if let What::Rules = what {
        outln!("{}", alerts::Rules::builtin_text().trim_end())?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(data) = args.data else {
        return Err(usage("--data DIR is required"));
    };
    let conn = open(&data)?;
    match what {
        What::List(list_args) => list(&conn, &list_args),
        What::Ack { id, by } => {
            let by = by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "unknown".into());
            if by.is_empty() || by.len() > 64 {
                return Err(usage("--by: 1 to 64 characters"));
            }
            let now_ms = HostTime::now(UTC_OFFSET_MINUTES_DEFAULT, 0).unix_ms;
            if !alerts::ack(&conn, id, &by, now_ms)? {
                outln!("no alert {id}")?;
                return Ok(ExitCode::from(EXIT_NOT_FOUND));
            }
            let a = alerts::by_id(&conn, id)?.expect("acknowledged just now");
            outln!(
                "alert {id} acknowledged by {} at {}",
                a.acked_by.unwrap_or_default(),
                clock(a.acked_ms.unwrap_or(now_ms))
            )?;
            Ok(ExitCode::SUCCESS)
        }
        What::Rules => unreachable!("answered above"),
    }
}

fn open(data: &Path) -> anyhow::Result<Connection> {
    let path = data.join(poskit_host::run::STATS_FILE);
    if !path.is_file() {
        return Err(usage(format!(
            "--data {}: no alerts there (a host keeps them while it runs)",
            data.display()
        )));
    }
    let conn = Connection::open(&path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    poskit_monitor::stats::migrate(&conn)?;
    Ok(conn)
}

fn list(conn: &Connection, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let lang = locale::chosen(args.lang.as_deref())?;
    let now_ms = HostTime::now(UTC_OFFSET_MINUTES_DEFAULT, 0).unix_ms;
    let since = args.all.then_some(now_ms - 24 * 3_600_000);
    let found = alerts::list(conn, since, LIST_MAX)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&found)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if found.is_empty() {
        outln!(
            "{}",
            tr(lang, "No alert is firing.", "没有正在触发的告警。")
        )?;
    }
    for a in &found {
        print_alert(a, lang)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One alert: what, where, since when, its state, and its most likely causes.
pub fn print_alert(a: &Alert, lang: Lang) -> anyhow::Result<()> {
    let title = if lang == Lang::Zh {
        &a.title_zh
    } else {
        &a.title_en
    };
    let subject = match a.scope.as_str() {
        "all" => tr(lang, "the host", "全部终端").to_owned(),
        "terminal" => format!("{} {}", tr(lang, "terminal", "终端"), a.subject),
        "merchant" => format!("{} {}", tr(lang, "merchant", "商户"), a.subject),
        scope => format!("{scope} {}", a.subject),
    };
    outln!("#{} [{}] {} — {subject}", a.id, a.severity, title)?;
    outln!("   {}", a.detail)?;
    let mut state = format!(
        "{} {}",
        tr(lang, "firing since", "触发于"),
        clock(a.fired_ms)
    );
    if let Some(at) = a.resolved_ms {
        state.push_str(&format!(
            ", {} {}",
            tr(lang, "resolved", "已恢复"),
            clock(at)
        ));
    }
    if let (Some(by), Some(at)) = (&a.acked_by, a.acked_ms) {
        state.push_str(&format!(
            ", {} {by} {}",
            tr(lang, "acknowledged by", "已确认："),
            clock(at)
        ));
    }
    outln!("   {state}")?;
    let key = if lang == Lang::Zh { "zh" } else { "en" };
    let causes = a
        .diagnosis
        .as_ref()
        .and_then(|d| d[key].as_array().cloned())
        .unwrap_or_default();
    let as_of = a.diagnosed_ms.map(clock).unwrap_or_default();
    for c in causes.iter().take(2) {
        outln!(
            "   {} ({as_of}) {} ({:.0} %)",
            tr(lang, "likely", "可能原因"),
            c["label"].as_str().unwrap_or(""),
            c["likelihood"].as_f64().unwrap_or(0.0) * 100.0
        )?;
        for e in c["evidence"].as_array().into_iter().flatten().take(3) {
            outln!("     - {}", e.as_str().unwrap_or(""))?;
        }
        for s in c["steps"].as_array().into_iter().flatten().take(3) {
            outln!("     → {}", s.as_str().unwrap_or(""))?;
        }
    }
    Ok(())
}

/// `MM-DD HH:MM`, Beijing time.
fn clock(ms: i64) -> String {
    let t = HostTime::at(ms, UTC_OFFSET_MINUTES_DEFAULT);
    format!(
        "{:02}-{:02} {:02}:{:02}",
        t.month, t.day_of_month, t.hour, t.minute
    )
}
