//! `poskit diagnose`: the likely causes of what a terminal, a merchant or one transaction
//! went through, ranked, with the evidence and the catalog's steps (the ranking is
//! `poskit_monitor::diagnose`; this module gathers the facts and prints).

use std::path::PathBuf;
use std::process::ExitCode;

use poskit_host::clock::UTC_OFFSET_MINUTES_DEFAULT;
use poskit_host::diagnosis::{Subject, facts};
use poskit_monitor::diagnose::diagnose;
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
    let subject = match (&args.terminal, &args.merchant, &args.rrn) {
        (Some(t), _, _) => Subject::Terminal(t),
        (_, Some(m), _) => Subject::Merchant(m),
        (_, _, Some(rrn)) => Subject::Rrn(
            rrn.trim()
                .parse()
                .map_err(|_| usage(format!("--rrn {rrn}: twelve digits")))?,
        ),
        _ => return Err(usage("--terminal, --merchant or --rrn")),
    };
    let gathered = facts(&conn, subject, since_ms, now_ms, UTC_OFFSET_MINUTES_DEFAULT)?;
    let Some((scope, facts)) = gathered else {
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
