//! `poskit diagnose`: the likely causes of what a terminal, a merchant or one transaction
//! went through, ranked, with the evidence and the catalog's steps (the ranking is
//! `poskit_monitor::diagnose`; this module gathers the facts and prints).

use std::path::PathBuf;
use std::process::ExitCode;

use poskit_host::clock::UTC_OFFSET_MINUTES_DEFAULT;
use poskit_host::store::lookup;
use poskit_monitor::diagnose::{Facts, Seen, diagnose};
use serde_json::json;

use crate::cmd::locale::{self, tr};
use crate::fail::{EXIT_NOT_FOUND, usage};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["terminal", "merchant", "rrn"])))]
pub struct Args {
    /// The host's data directory.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// A terminal (终端号).
    #[arg(long)]
    terminal: Option<String>,
    /// A merchant (商户号).
    #[arg(long)]
    merchant: Option<String>,
    /// One transaction's reference number: its terminal around its time.
    #[arg(long)]
    rrn: Option<String>,
    /// How far back to look, in hours.
    #[arg(long, default_value_t = 24)]
    hours: u32,
    /// zh or en (default: the locale).
    #[arg(long, value_name = "zh|en")]
    lang: Option<String>,
    /// Print JSON: {"scope", "answers", "causes": [{"cause", "label", "likelihood",
    /// "evidence", "steps"}]}.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let lang = locale::chosen(args.lang.as_deref())?;
    if args.hours == 0 || args.hours > 24 * 31 {
        return Err(usage("--hours: 1 to 744"));
    }
    let conn = crate::cmd::host::existing_data_dir(&args.data)?.open_store()?;
    let now_ms = poskit_host::clock::HostTime::now(UTC_OFFSET_MINUTES_DEFAULT, 0).unix_ms;
    let since_ms = now_ms - i64::from(args.hours) * 3_600_000;
    let mut facts = Facts {
        now_ms,
        utc_offset_minutes: UTC_OFFSET_MINUTES_DEFAULT,
        fleet_timeout_rate: Some(lookup::timeout_rate_since(&conn, since_ms)?),
        ..Facts::default()
    };
    let scope = gather(&conn, &args, since_ms, &mut facts)?;
    let Some(scope) = scope else {
        outln!(
            "{}",
            tr(
                lang,
                "Nothing known of it at this host.",
                "主机上没有它的记录。"
            )
        )?;
        return Ok(ExitCode::from(EXIT_NOT_FOUND));
    };
    let causes = diagnose(&facts, lang);
    if args.json {
        let v = json!({"scope": scope, "answers": facts.seen.len(), "causes": causes});
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{scope}: {} {}",
        facts.seen.len(),
        tr(lang, "answers in the window", "笔应答")
    )?;
    if causes.is_empty() {
        outln!(
            "  {}",
            tr(
                lang,
                "no failures: nothing to diagnose",
                "没有失败，无需诊断"
            )
        )?;
    }
    for (i, c) in causes.iter().enumerate() {
        outln!("{}. {} ({:.0} %)", i + 1, c.label, c.likelihood * 100.0)?;
        for e in &c.evidence {
            outln!("   - {e}")?;
        }
        for s in &c.steps {
            outln!("   → {s}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The answers and facts of the scope; its name, or `None` when the host knows nothing of it.
fn gather(
    conn: &rusqlite::Connection,
    args: &Args,
    since_ms: i64,
    facts: &mut Facts,
) -> anyhow::Result<Option<String>> {
    let seen = |rows: Vec<lookup::Answered>| -> Vec<Seen> {
        rows.into_iter()
            .map(|(at_ms, code, reversal_reason)| Seen {
                at_ms,
                code,
                reversal_reason,
            })
            .collect()
    };
    let tid = match (&args.terminal, &args.rrn) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(rrn)) => {
            let id: i64 = rrn
                .trim()
                .parse()
                .map_err(|_| usage(format!("--rrn {rrn}: twelve digits")))?;
            lookup::by_id(conn, id)?.and_then(|t| t.tid)
        }
        (None, None) => None,
    };
    if let Some(tid) = tid {
        let Some((mid, status, signed_in_ms, merchant_status)) =
            lookup::terminal_facts(conn, &tid)?
        else {
            return Ok(None);
        };
        facts.seen = seen(lookup::answers_of_terminal(conn, &tid, since_ms)?);
        facts.signed_in_ms = signed_in_ms;
        facts.terminal_status = Some(status);
        facts.merchant_status = Some(merchant_status);
        return Ok(Some(format!("terminal {tid} (merchant {mid})")));
    }
    let Some(mid) = &args.merchant else {
        return Ok(None);
    };
    let Some(status) = lookup::merchant_status(conn, mid)? else {
        return Ok(None);
    };
    facts.seen = seen(lookup::answers_of_merchant(conn, mid, since_ms)?);
    facts.merchant_status = Some(status);
    Ok(Some(format!("merchant {mid}")))
}
