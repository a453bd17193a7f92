//! `poskit lookup`: was the customer charged? A transaction found from what the merchant or
//! the cardholder holds, its chain and the verdict (the contract is in README). Exit 0 when
//! something matched, 3 when nothing did, 2 for bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use poskit_codes::Lang;
use poskit_domain::AmountFen;
use poskit_domain::calendar::day_of_yyyymmdd;
use poskit_host::config::parse_hhmm;
use poskit_recon::lookup::{CardQuery, Match, Query, lookup};
use serde_json::json;

use crate::cmd::locale::{self, tr};
use crate::cmd::pos::yuan;
use crate::fail::{EXIT_NOT_FOUND, usage};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The host's data directory.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// The slip's reference number (参考号, field 37).
    #[arg(long)]
    rrn: Option<String>,
    /// The terminal (终端号), with --trace.
    #[arg(long, requires = "trace")]
    tid: Option<String>,
    /// The slip's trace number (凭证号/流水号, field 11), with --tid.
    #[arg(long, requires = "tid")]
    trace: Option<u32>,
    /// The slip's authorization code (授权码, field 38).
    #[arg(long)]
    auth_code: Option<String>,
    /// The card's last four digits, with --amount and --date.
    #[arg(long, requires_all = ["amount", "date"])]
    card_last4: Option<String>,
    /// The amount in yuan (as `poskit pos` takes it: 12.50), with --card-last4.
    #[arg(long, requires = "card_last4")]
    amount: Option<String>,
    /// The day, YYYYMMDD, with --card-last4.
    #[arg(long, requires = "card_last4")]
    date: Option<String>,
    /// From this local time of the day, HH:MM.
    #[arg(long, requires = "card_last4")]
    from: Option<String>,
    /// Up to this local time of the day, HH:MM.
    #[arg(long, requires = "card_last4")]
    to: Option<String>,
    /// Only this merchant's transactions (商户号, field 42).
    #[arg(long)]
    mid: Option<String>,
    /// Print JSON: {"matches": [{"score", "matched_on", "transaction", "chain", "verdict"}], "hints"}.
    #[arg(long)]
    json: bool,
    /// zh or en (default: the locale).
    #[arg(long, value_name = "zh|en")]
    lang: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let lang = locale::chosen(args.lang.as_deref())?;
    let query = query_of(&args)?;
    let dir = crate::cmd::host::existing_data_dir(&args.data)?;
    let host = dir.open_store()?;
    let state_path = args.data.join("recon.db");
    let state = if state_path.is_file() {
        let conn = rusqlite::Connection::open(&state_path)?;
        poskit_recon::state::migrate(&conn)?;
        Some(conn)
    } else {
        None
    };
    let matches = lookup(&host, state.as_ref(), &query)?;
    let hints = if matches.is_empty() {
        hints(&args)
    } else {
        Vec::new()
    };
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"matches": matches, "hints": hints}))?
        )?;
    } else if matches.is_empty() {
        outln!("{}", tr(lang, "Nothing matches.", "没有找到匹配的交易。"))?;
        for h in &hints {
            outln!("  - {h}")?;
        }
    } else {
        for (i, m) in matches.iter().enumerate() {
            print_match(i + 1, m, lang)?;
        }
    }
    Ok(if matches.is_empty() {
        ExitCode::from(EXIT_NOT_FOUND)
    } else {
        ExitCode::SUCCESS
    })
}

fn query_of(args: &Args) -> anyhow::Result<Query> {
    let card = match (&args.card_last4, &args.amount, &args.date) {
        (Some(last4), Some(amount), Some(date)) => {
            if last4.len() != 4 || !last4.bytes().all(|b| b.is_ascii_digit()) {
                return Err(usage(format!("--card-last4 {last4}: four digits")));
            }
            let amount = AmountFen::parse_yuan(amount)
                .map_err(|e| usage(format!("--amount {amount}: {e}")))?;
            let day = day_of_yyyymmdd(date)
                .ok_or_else(|| usage(format!("--date {date}: expected YYYYMMDD")))?;
            let minute = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<u32>> {
                v.as_deref()
                    .map(|t| {
                        parse_hhmm(t)
                            .map(|m| m as u32)
                            .ok_or_else(|| usage(format!("--{flag} {t}: expected HH:MM")))
                    })
                    .transpose()
            };
            Some(CardQuery {
                last4: last4.clone(),
                amount_fen: amount.fen(),
                day,
                from_minute: minute("from", &args.from)?,
                to_minute: minute("to", &args.to)?,
            })
        }
        _ => None,
    };
    let q = Query {
        rrn: args.rrn.clone(),
        tid_trace: args.tid.clone().zip(args.trace),
        auth_code: args.auth_code.clone(),
        card,
        mid: args.mid.clone(),
    };
    if q.rrn.is_none() && q.tid_trace.is_none() && q.auth_code.is_none() && q.card.is_none() {
        return Err(usage(
            "give --rrn, --tid with --trace, --auth-code, or --card-last4 with --amount and --date",
        ));
    }
    Ok(q)
}

/// What to check when nothing matched.
fn hints(args: &Args) -> Vec<String> {
    let mut out = vec![
        "another terminal of the shop: the slip's 终端号 (TID) names the one that took it".to_owned(),
        "another day: a payment late in the evening may be on the next day's records".to_owned(),
        "the amount exactly as printed on the slip (yuan and fen)".to_owned(),
        "a card read by another acquirer's terminal is not in this host's ledger: ask that acquirer".to_owned(),
    ];
    if args.mid.is_some() {
        out.insert(
            0,
            "without --mid: the merchant number may differ from the one given".into(),
        );
    }
    out
}

fn print_match(n: usize, m: &Match, lang: Lang) -> anyhow::Result<()> {
    let t = &m.transaction;
    let zh = lang == Lang::Zh;
    outln!(
        "#{n} {} {} {} {} {} {} {} RRN {} {} {}",
        t["date"].as_str().unwrap_or(""),
        t["time"].as_str().unwrap_or(""),
        t["kind"].as_str().unwrap_or(""),
        t["pan"].as_str().unwrap_or(""),
        yuan(t["amount_fen"].as_u64().unwrap_or(0)),
        t["tid"].as_str().unwrap_or(""),
        t["mid"].as_str().unwrap_or(""),
        t["rrn"].as_str().unwrap_or(""),
        tr(lang, "code", "应答码"),
        t["code"].as_str().unwrap_or("")
    )?;
    for s in m.chain.iter().skip(1) {
        let what = s["step"].as_str().unwrap_or("");
        let detail = match what {
            "settlement" => format!("batch {} closed {}", s["batch"], s["closed"]),
            "clearing" => format!(
                "clearing day {} code {} reversed {}",
                s["clearing_day"], s["code"], s["reversed"]
            ),
            "reconciliation_break" => format!("{} {} {}", s["id"], s["status"], s["action"]),
            _ => format!(
                "{} {} {}",
                s["rrn"],
                s["code"],
                yuan(s["amount_fen"].as_u64().unwrap_or(0))
            ),
        };
        outln!("    → {what}: {detail}")?;
    }
    let v = &m.verdict;
    outln!(
        "  {} {} — {}",
        tr(lang, "Verdict:", "结论："),
        v.verdict,
        if zh { &v.zh } else { &v.en }
    )?;
    let because = if zh { &v.because.zh } else { &v.because.en };
    outln!("    {} {because}", tr(lang, "Because:", "依据："))?;
    let (next, say) = if zh {
        (&v.next_step.zh, &v.say_to_customer.zh)
    } else {
        (&v.next_step.en, &v.say_to_customer.en)
    };
    outln!("    {} {next}", tr(lang, "Next step:", "下一步："))?;
    outln!("    {} {say}", tr(lang, "Tell the customer:", "对顾客说："))?;
    Ok(())
}
