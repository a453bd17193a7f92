//! `poskit pos --terminal DIR ...`: a virtual POS on the terminal engine. Amounts are typed
//! and shown in yuan, kept in fen; every result says approved or declined, the code with
//! its meaning and the operator's next step from the catalog, and on approval the slip.
//!
//! Exit codes: 0 approved (or the command succeeded); 1 declined or failed; 2 bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use poskit_codes::{Catalog, Lang, Table};
use poskit_domain::message::CardData;
use poskit_domain::{AmountFen, TransactionKind};
use poskit_security::{Pin, SecretKey};
use poskit_terminal::engine::{
    Command, Config, Outcome, RESPONSE_TIMEOUT_MS_DEFAULT, REVERSAL_ATTEMPTS_MAX_DEFAULT,
    ReversalState, Txn, TxnState,
};
use poskit_terminal::journal::Journal;

use crate::fail::{self, usage};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The terminal's directory (its journal).
    #[arg(long, value_name = "DIR")]
    terminal: PathBuf,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Language of the text: zh or en (default: the locale).
    #[arg(long, global = true, value_name = "LANG")]
    lang: Option<String>,
    #[command(subcommand)]
    command: PosCommand,
}

/// The card, keyed in or swiped: exactly one of `--card` and `--track2` (clap enforces it
/// and the usage line shows it).
#[derive(Debug, clap::Args)]
#[group(skip)]
#[command(group(clap::ArgGroup::new("card_entry").required(true).multiple(false)))]
struct CardArgs {
    /// Card number (manual entry: fields 2 and 14).
    #[arg(long, value_name = "PAN", group = "card_entry")]
    card: Option<String>,
    /// Expiry date YYMM, with --card.
    #[arg(long, value_name = "YYMM", conflicts_with = "track2")]
    expiry: Option<String>,
    /// Track 2 as swiped, `PAN=YYMM...` (field 35).
    #[arg(long, value_name = "TRACK2", group = "card_entry")]
    track2: Option<String>,
}

#[derive(Debug, clap::Args)]
struct AmountArgs {
    /// Amount in yuan (12.34).
    #[arg(long, value_name = "YUAN")]
    amount: String,
}

#[derive(Debug, clap::Args)]
struct Switches {
    /// Test switch: the printer jams after the approval (the terminal reverses with 96).
    #[arg(long)]
    fail_after_approval: bool,
    /// Test switch: wait this long for the answer instead of the configured time.
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
}

#[derive(Debug, clap::Subcommand)]
enum PosCommand {
    /// Configure the terminal: identity, master key, host.
    Init {
        /// Terminal ID (TID, 终端号, field 41): 8 characters.
        #[arg(long)]
        tid: String,
        /// Merchant ID (MID, 商户号, field 42): 15 characters.
        #[arg(long)]
        mid: String,
        /// Terminal master key in hex: 16, 32 or 48 digits (test keys only).
        #[arg(long)]
        tmk: String,
        /// Host address (host:port).
        #[arg(long)]
        host: String,
        /// How long to wait for an answer before reversing.
        #[arg(long, default_value_t = RESPONSE_TIMEOUT_MS_DEFAULT)]
        timeout_ms: u64,
        /// Reversal attempts before "reversal failed — contact acquirer".
        #[arg(long, default_value_t = REVERSAL_ATTEMPTS_MAX_DEFAULT)]
        reversal_attempts: u32,
    },
    /// Sign in (签到): get working keys and the batch number.
    SignIn,
    /// Sign off (签退).
    SignOff,
    /// Echo test (回响测试): is the host there?
    Echo,
    /// Sale (消费).
    Sale {
        #[command(flatten)]
        amount: AmountArgs,
        #[command(flatten)]
        card: CardArgs,
        /// The cardholder's PIN, 4 to 12 digits (a test PIN only; sent as a PIN block).
        #[arg(long)]
        pin: Option<String>,
        #[command(flatten)]
        switches: Switches,
    },
    /// Balance inquiry (余额查询).
    Balance {
        #[command(flatten)]
        card: CardArgs,
        /// The cardholder's PIN, 4 to 12 digits (a test PIN only; sent as a PIN block).
        #[arg(long)]
        pin: Option<String>,
        #[command(flatten)]
        switches: Switches,
    },
    /// Pre-authorization (预授权): hold an amount on the card.
    Preauth {
        #[command(flatten)]
        amount: AmountArgs,
        #[command(flatten)]
        card: CardArgs,
        /// The cardholder's PIN, 4 to 12 digits (a test PIN only; sent as a PIN block).
        #[arg(long)]
        pin: Option<String>,
        #[command(flatten)]
        switches: Switches,
    },
    /// Pre-authorization cancellation (预授权撤销): by the pre-authorization's auth code
    /// and date.
    PreauthCancel {
        #[command(flatten)]
        amount: AmountArgs,
        #[command(flatten)]
        card: CardArgs,
        /// The pre-authorization's auth code (授权码, field 38): six letters or digits.
        #[arg(long)]
        auth_code: String,
        /// The pre-authorization's date, MMDD.
        #[arg(long)]
        date: String,
        #[command(flatten)]
        switches: Switches,
    },
    /// Pre-authorization completion (预授权完成): by the pre-authorization's auth code and
    /// date.
    Complete {
        #[command(flatten)]
        amount: AmountArgs,
        #[command(flatten)]
        card: CardArgs,
        /// The pre-authorization's auth code (授权码, field 38): six letters or digits.
        #[arg(long)]
        auth_code: String,
        /// The pre-authorization's date, MMDD.
        #[arg(long)]
        date: String,
        #[command(flatten)]
        switches: Switches,
    },
    /// Void (消费撤销): void a sale of the open batch by its trace number.
    Void {
        /// The sale's trace number (凭证号, field 11), as its slip shows it.
        #[arg(long)]
        trace: u32,
        #[command(flatten)]
        switches: Switches,
    },
    /// Completion void (预授权完成撤销): void a completion of the open batch by its trace
    /// number.
    CompleteVoid {
        /// The completion's trace number (凭证号, field 11), as its slip shows it.
        #[arg(long)]
        trace: u32,
        #[command(flatten)]
        switches: Switches,
    },
    /// Refund (退货, store-and-forward): by the sale's RRN and date.
    Refund {
        /// The sale's retrieval reference number (RRN, 参考号, field 37): 12 characters.
        #[arg(long)]
        rrn: String,
        /// The sale's date, MMDD.
        #[arg(long)]
        date: String,
        #[command(flatten)]
        amount: AmountArgs,
        #[command(flatten)]
        card: CardArgs,
        #[command(flatten)]
        switches: Switches,
    },
    /// Settlement (批结算): reversals and advices first, totals, batch upload when
    /// unbalanced.
    Settle {
        /// Test switch: wait this long for each answer instead of the configured time.
        #[arg(long, value_name = "MS")]
        timeout_ms: Option<u64>,
    },
    /// Keys, counters, pending reversal and advices.
    Status,
    /// Every transaction of the journal.
    Journal,
    /// The failure log: time, terminal, operation, amount, code or local cause.
    Failures,
}

fn lang_of(args: &Args) -> anyhow::Result<Lang> {
    match &args.lang {
        None => Ok(Lang::from_env()),
        Some(l) => l.parse().map_err(|e| usage(format!("--lang: {e}"))),
    }
}

fn amount(a: &AmountArgs) -> anyhow::Result<u64> {
    let fen = AmountFen::parse_yuan(&a.amount).map_err(|e| usage(format!("--amount: {e}")))?;
    if fen.fen() == 0 {
        return Err(usage("--amount: must be more than 0.00"));
    }
    Ok(fen.fen())
}

fn card(c: &CardArgs) -> anyhow::Result<CardData> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(t) = &c.track2 {
        let (pan, rest) = t
            .split_once('=')
            .ok_or_else(|| usage("--track2: expected PAN=YYMM..."))?;
        if !(13..=19).contains(&pan.len()) || !digits(pan) || rest.len() < 4 || !digits(rest) {
            return Err(usage(
                "--track2: expected 13-19 digits, '=', then YYMM and more digits",
            ));
        }
        return Ok(CardData::Track2(t.clone()));
    }
    let pan = c.card.clone().unwrap_or_default();
    if !(13..=19).contains(&pan.len()) || !digits(&pan) {
        return Err(usage("--card: a card number is 13 to 19 digits"));
    }
    let expiry = c.expiry.clone().unwrap_or_default();
    if !expiry.is_empty() && (expiry.len() != 4 || !digits(&expiry)) {
        return Err(usage("--expiry: YYMM, four digits"));
    }
    Ok(CardData::Manual { pan, expiry })
}

fn pin(p: &Option<String>) -> anyhow::Result<Option<Pin>> {
    p.as_deref()
        .map(|p| Pin::new(p).map_err(|e| usage(format!("--pin: {e}"))))
        .transpose()
}

fn auth_code_arg(text: &str) -> anyhow::Result<String> {
    if text.len() == 6 && text.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(text.to_owned())
    } else {
        Err(usage(format!(
            "--auth-code {text:?}: six letters or digits (field 38)"
        )))
    }
}

fn mmdd(text: &str) -> anyhow::Result<String> {
    let ok = text.len() == 4
        && text.bytes().all(|b| b.is_ascii_digit())
        && (1..=12).contains(&text[..2].parse::<u8>().unwrap_or(0))
        && (1..=31).contains(&text[2..].parse::<u8>().unwrap_or(0));
    if ok {
        Ok(text.to_owned())
    } else {
        Err(usage(format!("--date {text:?}: MMDD")))
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let lang = lang_of(&args)?;
    if let PosCommand::Init {
        tid,
        mid,
        tmk,
        host,
        timeout_ms,
        reversal_attempts,
    } = &args.command
    {
        if tid.len() != 8 || !tid.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(usage("--tid: 8 characters"));
        }
        if mid.len() != 15 || !mid.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(usage("--mid: 15 characters"));
        }
        let tmk = SecretKey::from_hex(tmk).map_err(|e| usage(format!("--tmk: {e}")))?;
        if host.parse::<std::net::SocketAddr>().is_err() && !host.contains(':') {
            return Err(usage("--host: host:port"));
        }
        let cfg = Config {
            tid: tid.clone(),
            mid: mid.clone(),
            tmk,
            response_timeout_ms: (*timeout_ms).max(1),
            reversal_attempts_max: (*reversal_attempts).max(1),
            fail_after_approval: false,
        };
        crate::input::create_dir("--terminal", &args.terminal)?;
        Journal::init(&args.terminal, &cfg, host).context("init")?;
        if args.json {
            outln!(
                "{}",
                json!({"initialized": true, "tid": tid, "mid": mid, "host": host})
            )?;
        } else {
            outln!(
                "terminal {tid} of merchant {mid} initialized in {}; host {host}",
                args.terminal.display()
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let journal = Journal::open(&args.terminal).map_err(|e| usage(e.to_string()))?;
    match &args.command {
        PosCommand::Status => return status(&journal, args.json),
        PosCommand::Journal => return list_journal(&journal, args.json),
        PosCommand::Failures => return failures(&journal, args.json),
        _ => {}
    }
    let (cfg, host) = journal.config()?;
    let trace_of = |trace: u32, kinds: &[TransactionKind]| -> anyhow::Result<Txn> {
        let snap = journal.snapshot()?;
        let t = journal
            .txn_by_stan(snap.batch, trace)?
            .filter(|t| kinds.contains(&t.kind))
            .ok_or_else(|| {
                usage(format!(
                    "--trace {trace:06}: no such transaction in the open batch {:06}",
                    snap.batch
                ))
            })?;
        if t.state != TxnState::Approved {
            return Err(usage(format!(
                "--trace {trace:06}: that {} is {}, not approved: nothing to void",
                t.kind.name_en(),
                t.state.as_str()
            )));
        }
        Ok(t)
    };
    let (command, switches) = match &args.command {
        PosCommand::SignIn => (Command::SignIn, None),
        PosCommand::SignOff => (Command::SignOff, None),
        PosCommand::Echo => (Command::Echo, None),
        PosCommand::Sale {
            amount: a,
            card: c,
            pin: p,
            switches,
        } => (
            Command::Sale {
                card: card(c)?,
                amount_fen: amount(a)?,
                pin: pin(p)?,
            },
            Some(switches),
        ),
        PosCommand::Balance {
            card: c,
            pin: p,
            switches,
        } => (
            Command::Balance {
                card: card(c)?,
                pin: pin(p)?,
            },
            Some(switches),
        ),
        PosCommand::Preauth {
            amount: a,
            card: c,
            pin: p,
            switches,
        } => (
            Command::PreAuth {
                card: card(c)?,
                amount_fen: amount(a)?,
                pin: pin(p)?,
            },
            Some(switches),
        ),
        PosCommand::PreauthCancel {
            amount: a,
            card: c,
            auth_code,
            date,
            switches,
        } => (
            Command::PreAuthCancel {
                card: card(c)?,
                amount_fen: amount(a)?,
                auth_code: auth_code_arg(auth_code)?,
                date: mmdd(date)?,
            },
            Some(switches),
        ),
        PosCommand::Complete {
            amount: a,
            card: c,
            auth_code,
            date,
            switches,
        } => (
            Command::Complete {
                card: card(c)?,
                amount_fen: amount(a)?,
                auth_code: auth_code_arg(auth_code)?,
                date: mmdd(date)?,
            },
            Some(switches),
        ),
        PosCommand::Void { trace, switches } => {
            let original = trace_of(*trace, &[TransactionKind::Sale])?;
            (Command::Void { original }, Some(switches))
        }
        PosCommand::CompleteVoid { trace, switches } => {
            let original = trace_of(*trace, &[TransactionKind::PreAuthCompletion])?;
            (Command::Void { original }, Some(switches))
        }
        PosCommand::Refund {
            rrn,
            date,
            amount: a,
            card: c,
            switches,
        } => {
            if rrn.len() != 12 {
                return Err(usage("--rrn: 12 characters"));
            }
            (
                Command::Refund {
                    card: card(c)?,
                    amount_fen: amount(a)?,
                    rrn: rrn.clone(),
                    date: mmdd(date)?,
                },
                Some(switches),
            )
        }
        // The totals are read after the flush (below), once reversals and advices are out.
        // Settlement has no printer-jam switch: there is no slip to jam on.
        PosCommand::Settle { .. } => (Command::Flush, None),
        PosCommand::Init { .. }
        | PosCommand::Status
        | PosCommand::Journal
        | PosCommand::Failures => {
            unreachable!("handled above")
        }
    };
    // Test switches apply to this command only: they are not written to the journal, so
    // that a crash in the middle of the command cannot leave them set for the next ones.
    let mut cfg = cfg;
    if let Some(s) = switches {
        if s.fail_after_approval {
            cfg.fail_after_approval = true;
        }
        if let Some(ms) = s.timeout_ms {
            cfg.response_timeout_ms = ms.max(1);
        }
    }
    if let PosCommand::Settle {
        timeout_ms: Some(ms),
    } = &args.command
    {
        cfg.response_timeout_ms = (*ms).max(1);
    }
    let (tid, mid) = (cfg.tid.clone(), cfg.mid.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut journal = journal;
    let settling = matches!(args.command, PosCommand::Settle { .. });
    let mut outcome = runtime.block_on(poskit_terminal::driver::run_with_config(
        &mut journal,
        cfg.clone(),
        &host,
        command,
    ))?;
    if settling && outcome.approved {
        // §4.4: reversals and advices are out; now the batch's totals.
        let flushed = std::mem::take(&mut outcome.notes);
        let settle = journal.settle_command()?;
        outcome = runtime.block_on(poskit_terminal::driver::run_with_config(
            &mut journal,
            cfg,
            &host,
            settle,
        ))?;
        outcome.notes.splice(
            0..0,
            flushed
                .into_iter()
                .filter(|n| !n.starts_with("nothing left")),
        );
    }
    print_outcome(&outcome, &tid, &mid, lang, args.json)?;
    Ok(if outcome.approved {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(fail::EXIT_INPUT)
    })
}

/// Meaning and next step of a code, from the catalog (host codes and local codes alike).
fn explain(code: &str, lang: Lang) -> (String, String) {
    let catalog = Catalog::builtin();
    let entry = if code.starts_with('L') {
        catalog.local(code)
    } else {
        catalog.lookup(Table::CupPos, code)
    };
    match entry {
        Some(e) => (
            e.meaning(lang).to_owned(),
            e.steps(lang).first().cloned().unwrap_or_default(),
        ),
        None => {
            let guide = catalog.unknown_code_guide();
            (
                poskit_codes::UNKNOWN_CODE_DISPLAY.to_owned(),
                guide.steps(lang).first().cloned().unwrap_or_default(),
            )
        }
    }
}

fn yuan(fen: u64) -> String {
    AmountFen::new(fen)
        .map(|a| a.to_string())
        .unwrap_or_else(|_| format!("{fen} fen"))
}

fn masked(card: &Option<CardData>) -> String {
    card.as_ref()
        .map(|c| poskit_codec::mask::mask_pan(c.pan()))
        .unwrap_or_default()
}

fn outcome_json(o: &Outcome, lang: Lang) -> Value {
    let (meaning, step) = explain(&o.code, lang);
    let t = o.txn.as_ref();
    json!({
        "operation": o.operation,
        "approved": o.approved,
        "code": o.code,
        "meaning": meaning,
        "next_step": step,
        "trace": t.map(|t| format!("{:06}", t.stan)),
        "batch": t.map(|t| format!("{:06}", t.batch)),
        "rrn": t.and_then(|t| t.rrn.clone()),
        "auth_code": t.and_then(|t| t.auth_code.clone()),
        "amount_fen": t.and_then(|t| t.amount_fen),
        "card": t.map(|t| masked(&t.card)),
        "reversal": o.reversal.as_str(),
        "balance_fen": o.balance_fen,
        "settlement": o.settlement.map(|(balanced, uploaded)| json!({"balanced": balanced, "uploaded": uploaded})),
        "notes": o.notes,
    })
}

fn print_outcome(
    o: &Outcome,
    tid: &str,
    mid: &str,
    lang: Lang,
    as_json: bool,
) -> anyhow::Result<()> {
    if as_json {
        outln!("{}", outcome_json(o, lang))?;
        return Ok(());
    }
    let (meaning, step) = explain(&o.code, lang);
    let verdict = if o.approved {
        "APPROVED 交易成功"
    } else {
        "DECLINED 交易失败"
    };
    outln!("{verdict}  {} — {meaning}", o.code)?;
    for n in &o.notes {
        outln!("  · {n}")?;
    }
    match o.reversal {
        ReversalState::None => {}
        ReversalState::Pending => {
            outln!("  reversal: pending — it goes out before the next transaction")?
        }
        ReversalState::Done => outln!("  reversal: done — the customer is not charged")?,
        ReversalState::Failed => {
            outln!("  reversal: FAILED — contact the acquirer (poskit pos failures)")?
        }
    }
    if let Some(b) = o.balance_fen {
        outln!(
            "  available balance: {}{}",
            if b < 0 { "-" } else { "" },
            yuan(b.unsigned_abs())
        )?;
    }
    if let Some((balanced, uploaded)) = o.settlement {
        outln!(
            "  settlement: {}",
            if balanced {
                "balanced (对账平)".to_owned()
            } else {
                format!("unbalanced (对账不平): {uploaded} details uploaded")
            }
        )?;
    }
    if !o.approved && !step.is_empty() {
        outln!("  next step: {step}")?;
    }
    if o.approved
        && let Some(t) = &o.txn
        && t.kind != TransactionKind::BalanceInquiry
    {
        outln!("  ---------------- 签购单 sales slip ----------------")?;
        outln!("  merchant MID 商户号   {mid}")?;
        outln!("  terminal TID 终端号   {tid}")?;
        outln!("  card 卡号             {}", masked(&t.card))?;
        outln!(
            "  type 交易类型         {} {}",
            t.kind.name_zh(),
            t.kind.name_en()
        )?;
        outln!("  batch 批次号          {:06}", t.batch)?;
        outln!("  trace 凭证号          {:06}", t.stan)?;
        outln!(
            "  RRN 参考号            {}",
            t.rrn.as_deref().unwrap_or("-")
        )?;
        outln!(
            "  auth code 授权码      {}",
            t.auth_code.as_deref().unwrap_or("-")
        )?;
        outln!(
            "  date/time 日期时间    {} {}",
            t.host_date
                .as_deref()
                .map(|d| format!("{}-{}", &d[..2.min(d.len())], d.get(2..).unwrap_or("")))
                .unwrap_or_default(),
            t.host_time
                .as_deref()
                .map(|h| format!(
                    "{}:{}:{}",
                    h.get(..2).unwrap_or(""),
                    h.get(2..4).unwrap_or(""),
                    h.get(4..).unwrap_or("")
                ))
                .unwrap_or_default()
        )?;
        if let Some(a) = t.amount_fen {
            outln!("  amount 金额           RMB {}", yuan(a))?;
        }
        outln!("  ---------------------------------------------------")?;
    }
    Ok(())
}

fn txn_json(t: &Txn) -> Value {
    json!({
        "id": t.id,
        "kind": t.kind.slug(),
        "batch": format!("{:06}", t.batch),
        "trace": format!("{:06}", t.stan),
        "amount_fen": t.amount_fen,
        "card": masked(&t.card),
        "rrn": t.rrn,
        "auth_code": t.auth_code,
        "code": t.code,
        "state": t.state.as_str(),
        "reversal": t.reversal.as_str(),
        "original_trace": t.original_stan.map(|s| format!("{s:06}")),
        "original_rrn": t.original_rrn,
        "time_ms": t.time_ms,
    })
}

fn status(journal: &Journal, as_json: bool) -> anyhow::Result<ExitCode> {
    let (cfg, host) = journal.config()?;
    let snap = journal.snapshot()?;
    let reversal = snap.reversal.as_ref().map(|r| {
        json!({"trace": format!("{:06}", r.stan), "kind": r.kind.slug(), "amount_fen": r.amount_fen, "reason": r.reason, "attempts": r.attempts})
    });
    let advices: Vec<Value> = snap
        .advices
        .iter()
        .map(|a| json!({"trace": format!("{:06}", a.stan), "kind": a.kind.slug(), "amount_fen": a.amount_fen, "attempts": a.attempts}))
        .collect();
    if as_json {
        outln!(
            "{}",
            json!({
                "tid": cfg.tid, "mid": cfg.mid, "host": host, "signed_in": snap.keys.is_some(),
                "batch": format!("{:06}", snap.batch), "last_trace": format!("{:06}", snap.stan),
                "pending_reversal": reversal, "advices": advices,
                "response_timeout_ms": cfg.response_timeout_ms, "reversal_attempts_max": cfg.reversal_attempts_max,
            })
        )?;
    } else {
        outln!("terminal {} of merchant {}, host {host}", cfg.tid, cfg.mid)?;
        outln!(
            "  signed in: {}",
            if snap.keys.is_some() {
                "yes"
            } else {
                "no (run sign-in)"
            }
        )?;
        outln!("  batch {:06}, last trace {:06}", snap.batch, snap.stan)?;
        match &snap.reversal {
            Some(r) => outln!(
                "  pending reversal: trace {:06} ({}, {}), reason {}, {} attempts",
                r.stan,
                r.kind.name_en(),
                r.amount_fen.map(yuan).unwrap_or_default(),
                r.reason,
                r.attempts
            )?,
            None => outln!("  pending reversal: none")?,
        }
        outln!("  stored advices: {}", snap.advices.len())?;
        for b in journal.batches()? {
            let t = b.totals;
            outln!(
                "  closed batch {:06}: {} debits {}, {} credits {}, {}",
                b.batch,
                t.debit_count,
                yuan(t.debit_fen),
                t.credit_count,
                yuan(t.credit_fen),
                if b.balanced {
                    "balanced".to_owned()
                } else {
                    format!("unbalanced, {} uploaded", b.uploaded)
                }
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list_journal(journal: &Journal, as_json: bool) -> anyhow::Result<ExitCode> {
    let txns = journal.txns(None)?;
    if as_json {
        outln!("{}", Value::Array(txns.iter().map(txn_json).collect()))?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<6} {:<6} {:<16} {:>10} {:<19} {:<12} {:<4} {:<9} reversal",
        "batch",
        "trace",
        "kind",
        "amount",
        "card",
        "RRN",
        "code",
        "state"
    )?;
    for t in &txns {
        outln!(
            "{:06} {:06} {:<16} {:>10} {:<19} {:<12} {:<4} {:<9} {}",
            t.batch,
            t.stan,
            t.kind.slug(),
            t.amount_fen.map(yuan).unwrap_or_default(),
            masked(&t.card),
            t.rrn.as_deref().unwrap_or("-"),
            t.code.as_deref().unwrap_or("-"),
            t.state.as_str(),
            t.reversal.as_str()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn failures(journal: &Journal, as_json: bool) -> anyhow::Result<ExitCode> {
    let list = journal.failures()?;
    if as_json {
        let v: Vec<Value> = list
            .iter()
            .map(|f| json!({"time_ms": f.time_ms, "tid": f.tid, "operation": f.operation, "amount_fen": f.amount_fen, "code": f.code, "cause": f.cause}))
            .collect();
        outln!("{}", Value::Array(v))?;
        return Ok(ExitCode::SUCCESS);
    }
    for f in &list {
        outln!(
            "{} {} {:<12} {:>10} {:<4} {}",
            f.time_ms,
            f.tid,
            f.operation,
            f.amount_fen.map(yuan).unwrap_or_default(),
            f.code,
            f.cause
        )?;
    }
    if list.is_empty() {
        outln!("no failures")?;
    }
    Ok(ExitCode::SUCCESS)
}
