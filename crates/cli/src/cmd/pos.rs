//! `poskit pos --terminal DIR ...`: a virtual POS on the terminal engine. Amounts are typed
//! and shown in yuan, kept in fen; every result says approved or declined, the code with
//! its meaning and the operator's next step from the catalog, and on approval the slip.
//!
//! Exit codes: 0 approved (or the command succeeded); 1 declined or failed; 2 bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use poskit_codes::{Catalog, Lang, Operation, Table};
use poskit_domain::message::CardData;
use poskit_domain::{AmountFen, AuthCode, Rrn, TransactionKind};
use poskit_security::{Pin, SecretKey};
use poskit_terminal::engine::{
    Balance, Command, Config, Note, Outcome, RESPONSE_TIMEOUT_MS_DEFAULT,
    REVERSAL_ATTEMPTS_MAX_DEFAULT, ReversalState, Txn, TxnState,
};
use poskit_terminal::journal::Journal;

use crate::cmd::locale::{self, tr};

mod notes;
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
    /// Where the journal's key-encryption key comes from (default: DIR/kek).
    #[command(flatten)]
    kek: crate::kek_args::KekArgs,
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

/// `--timeout-ms` alone, for the management messages (no slip to jam).
#[derive(Debug, clap::Args)]
struct TimeoutSwitch {
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
        /// Start a clean terminal where one is already set up with another TID, MID or
        /// key: its journal is kept aside (journal-replaced-TIME.sqlite), not used again.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        tls: crate::tls_args::TerminalTls,
    },
    /// Sign in (签到): get working keys and the batch number.
    SignIn {
        #[command(flatten)]
        wait: TimeoutSwitch,
    },
    /// Sign off (签退).
    SignOff {
        #[command(flatten)]
        wait: TimeoutSwitch,
    },
    /// Echo test (回响测试): is the host there?
    Echo {
        #[command(flatten)]
        wait: TimeoutSwitch,
    },
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
        #[command(flatten)]
        wait: TimeoutSwitch,
    },
    /// Keys, counters, pending reversal and advices.
    Status,
    /// Every transaction of the journal.
    Journal,
    /// The failure log: time, terminal, operation, amount, code or local cause.
    Failures,
}

fn amount(a: &AmountArgs) -> anyhow::Result<AmountFen> {
    let fen = AmountFen::parse_yuan(&a.amount).map_err(|e| usage(format!("--amount: {e}")))?;
    if fen == AmountFen::ZERO {
        return Err(usage("--amount: must be more than 0.00"));
    }
    Ok(fen)
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

fn auth_code_arg(text: &str) -> anyhow::Result<AuthCode> {
    let bad = || {
        usage(format!(
            "--auth-code {text:?}: six letters or digits (field 38)"
        ))
    };
    if !text.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad());
    }
    AuthCode::parse(text).map_err(|_| bad())
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
    let lang = locale::chosen(args.lang.as_deref())?;
    if let PosCommand::Init { .. } = &args.command {
        return init_terminal(&args, lang);
    }
    let kek = args.kek.source(&args.terminal)?;
    let journal = Journal::open(&args.terminal, &kek).map_err(|e| usage(e.to_string()))?;
    match &args.command {
        PosCommand::Status => return status(&journal, lang, args.json),
        PosCommand::Journal => return list_journal(&journal, lang, args.json),
        PosCommand::Failures => return failures(&journal, lang, args.json),
        _ => {}
    }
    let (command, wait) = request(&args.command, &journal)?;
    // Test switches apply to this command only: they are not written to the journal, so
    // that a crash in the middle of the command cannot leave them set for the next ones.
    let (mut cfg, host) = journal.config()?;
    cfg.fail_after_approval |= wait.fail_after_approval;
    if let Some(ms) = wait.timeout_ms {
        cfg.response_timeout_ms = ms.max(1);
    }
    let (tid, mid) = (cfg.tid.clone(), cfg.mid.clone());
    let settling = matches!(args.command, PosCommand::Settle { .. });
    let outcome = execute(journal, cfg, &host, command, settling)?;
    let operation = operation_of(&args.command);
    print_outcome(&outcome, operation, &tid, &mid, lang, args.json)?;
    Ok(if outcome.approved {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(fail::EXIT_INPUT)
    })
}

/// `init`: a new terminal; the same one pointed at another host (its state kept); or,
/// with `--force`, a clean terminal where another one was.
fn init_terminal(args: &Args, lang: Lang) -> anyhow::Result<ExitCode> {
    let PosCommand::Init {
        tid,
        mid,
        tmk,
        host,
        timeout_ms,
        reversal_attempts,
        force,
        tls,
    } = &args.command
    else {
        unreachable!("init_terminal is called for init only")
    };
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
    let tls = tls.files(host)?;
    let cfg = Config {
        tid: tid.clone(),
        mid: mid.clone(),
        tmk,
        response_timeout_ms: (*timeout_ms).max(1),
        reversal_attempts_max: (*reversal_attempts).max(1),
        fail_after_approval: false,
    };
    let dir = &args.terminal;
    let kek = args.kek.source(dir)?;
    let kept = if *force {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let (journal, kept) = Journal::replace(dir, &kek, &cfg, host, now_ms).context("init")?;
        journal.set_tls(tls.as_ref()).context("init")?;
        tell_created_kek(&journal, lang);
        kept
    } else {
        refuse_another_identity(dir, &kek, &cfg)?;
        let journal = Journal::init(dir, &kek, &cfg, host).context("init")?;
        journal.set_tls(tls.as_ref()).context("init")?;
        tell_created_kek(&journal, lang);
        None
    };
    if args.json {
        let kept = kept.as_ref().map(|k| k.display().to_string());
        outln!(
            "{}",
            json!({"initialized": true, "tid": tid, "mid": mid, "host": host, "replaced_journal": kept})
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let (terminal, place) = (tr(lang, "terminal", "终端"), dir.display());
    match lang {
        Lang::En => {
            outln!("terminal {tid} of merchant {mid} initialized in {place}; host {host}")
        }
        Lang::Zh => outln!("{terminal} {tid}（商户 {mid}）已在 {place} 初始化；主机 {host}"),
    }?;
    if let Some(k) = kept {
        let k = k.display();
        match lang {
            Lang::En => outln!(
                "  the terminal it replaces keeps its journal in {k}; nothing in it will be sent"
            ),
            Lang::Zh => outln!("  被替换终端的流水保存在 {k}，其中的内容不会再发送"),
        }?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Says on standard error where a new key-encryption key was made, and that a real
/// terminal keeps it elsewhere.
fn tell_created_kek(journal: &Journal, lang: Lang) {
    if let Some(path) = journal.created_kek() {
        let path = path.display();
        match lang {
            Lang::En => eprintln!(
                "note: made this terminal's key-encryption key in {path} (mode 0600); a real terminal keeps it elsewhere (--kek-file, POSKIT_KEK_FILE or POSKIT_KEK)"
            ),
            Lang::Zh => eprintln!(
                "提示：已在 {path} 生成本终端的密钥加密密钥（权限 0600）；真实终端应将其保存在别处（--kek-file、POSKIT_KEK_FILE 或 POSKIT_KEK）"
            ),
        }
    }
}

/// A journal already in `dir` belongs to one terminal: `init` may point it at another host
/// or change its timeouts, but a new TID, MID or master key needs `--force` (its batch,
/// trace, keys and any pending reversal belong to the old identity).
fn refuse_another_identity(
    dir: &std::path::Path,
    kek: &poskit_keystore::KekSource,
    cfg: &Config,
) -> anyhow::Result<()> {
    if !dir.join(poskit_terminal::journal::JOURNAL_FILE).is_file() {
        return Ok(());
    }
    let journal = Journal::open(dir, kek).map_err(|e| usage(e.to_string()))?;
    let (old, _) = journal.config()?;
    if old.tid == cfg.tid && old.mid == cfg.mid && old.tmk == cfg.tmk {
        return Ok(());
    }
    let snap = journal.snapshot()?;
    Err(usage(format!(
        "--terminal {}: already terminal {} of merchant {} (batch {:06}, trace {:06}, {}{}); init again only with its --tid, --mid and --tmk, or give --force to start a clean terminal there",
        dir.display(),
        old.tid,
        old.mid,
        snap.batch,
        snap.stan,
        if snap.keys.is_some() {
            "signed in"
        } else {
            "signed out"
        },
        if snap.reversal.is_some() {
            ", a reversal pending"
        } else {
            ""
        },
    )))
}

/// The test switches of one command.
#[derive(Default)]
struct Wait {
    fail_after_approval: bool,
    timeout_ms: Option<u64>,
}

impl From<&Switches> for Wait {
    fn from(s: &Switches) -> Wait {
        Wait {
            fail_after_approval: s.fail_after_approval,
            timeout_ms: s.timeout_ms,
        }
    }
}

impl From<&TimeoutSwitch> for Wait {
    fn from(s: &TimeoutSwitch) -> Wait {
        Wait {
            fail_after_approval: false,
            timeout_ms: s.timeout_ms,
        }
    }
}

/// The catalog's name of the operation a subcommand runs (its steps fit that operation:
/// a declined pre-authorization gets no void advice); `None` for the journal's own commands.
fn operation_of(command: &PosCommand) -> Option<Operation> {
    Some(match command {
        PosCommand::SignIn { .. } => Operation::SignIn,
        PosCommand::SignOff { .. } => Operation::SignOff,
        PosCommand::Echo { .. } => Operation::Echo,
        PosCommand::Sale { .. } => Operation::Sale,
        PosCommand::Balance { .. } => Operation::Balance,
        PosCommand::Preauth { .. } => Operation::Preauth,
        PosCommand::PreauthCancel { .. } => Operation::PreauthCancel,
        PosCommand::Complete { .. } => Operation::Complete,
        PosCommand::Void { .. } => Operation::Void,
        PosCommand::CompleteVoid { .. } => Operation::CompleteVoid,
        PosCommand::Refund { .. } => Operation::Refund,
        PosCommand::Settle { .. } => Operation::Settle,
        PosCommand::Init { .. }
        | PosCommand::Status
        | PosCommand::Journal
        | PosCommand::Failures => return None,
    })
}

/// The engine command for a terminal operation, with its test switches.
fn request(command: &PosCommand, journal: &Journal) -> anyhow::Result<(Command, Wait)> {
    Ok(match command {
        PosCommand::SignIn { wait } => (Command::SignIn, wait.into()),
        PosCommand::SignOff { wait } => (Command::SignOff, wait.into()),
        PosCommand::Echo { wait } => (Command::Echo, wait.into()),
        // The totals are read after the flush (in `execute`), once reversals and advices
        // are out.
        // Settlement has no printer-jam switch: there is no slip to jam on.
        PosCommand::Settle { wait } => (Command::Flush, wait.into()),
        PosCommand::Void { trace, switches } => {
            let original = approved_by_trace(journal, *trace, TransactionKind::Sale)?;
            (Command::Void { original }, switches.into())
        }
        PosCommand::CompleteVoid { trace, switches } => {
            let original = approved_by_trace(journal, *trace, TransactionKind::PreAuthCompletion)?;
            (Command::Void { original }, switches.into())
        }
        PosCommand::Init { .. }
        | PosCommand::Status
        | PosCommand::Journal
        | PosCommand::Failures => unreachable!("handled before a request is built"),
        financial => return card_request(financial),
    })
}

/// The operations that carry a card: sale, balance, pre-authorization and its family,
/// refund.
fn card_request(command: &PosCommand) -> anyhow::Result<(Command, Wait)> {
    Ok(match command {
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
            switches.into(),
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
            switches.into(),
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
            switches.into(),
        ),
        other => return reference_request(other),
    })
}

/// The operations that name an earlier transaction by its auth code or RRN and date:
/// pre-authorization cancellation and completion, refund.
fn reference_request(command: &PosCommand) -> anyhow::Result<(Command, Wait)> {
    Ok(match command {
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
            switches.into(),
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
            switches.into(),
        ),
        PosCommand::Refund {
            rrn,
            date,
            amount: a,
            card: c,
            switches,
        } => {
            let rrn = Rrn::parse(rrn).map_err(|_| usage("--rrn: 12 characters"))?;
            let refund = Command::Refund {
                card: card(c)?,
                amount_fen: amount(a)?,
                rrn,
                date: mmdd(date)?,
            };
            (refund, switches.into())
        }
        other => unreachable!("not an operation with a card: {other:?}"),
    })
}

/// The approved transaction of `kind` with trace `trace` in the open batch.
fn approved_by_trace(journal: &Journal, trace: u32, kind: TransactionKind) -> anyhow::Result<Txn> {
    let snap = journal.snapshot()?;
    let t = journal
        .txn_by_stan(snap.batch, trace)?
        .filter(|t| t.kind == kind)
        .ok_or_else(|| {
            usage(format!(
                "--trace {trace:06}: no {} with that trace in the open batch {:06} (see `poskit pos --terminal DIR journal`)",
                kind.name_en(),
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
}

/// Runs one operation; for a settlement, the flush of reversals and advices first, then
/// the batch's totals.
fn execute(
    mut journal: Journal,
    cfg: Config,
    host: &str,
    command: Command,
    settling: bool,
) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let drive = |journal: &mut Journal, command| {
        runtime.block_on(poskit_terminal::driver::run_with_config(
            journal,
            cfg.clone(),
            host,
            command,
        ))
    };
    let mut outcome = drive(&mut journal, command)?;
    if settling && outcome.approved {
        // §4.4: reversals and advices are out; now the batch's totals.
        let flushed = std::mem::take(&mut outcome.notes);
        let settle = journal.settle_command()?;
        outcome = drive(&mut journal, settle)?;
        outcome.notes.splice(
            0..0,
            flushed
                .into_iter()
                .filter(|n| !matches!(n, Note::NothingWaiting)),
        );
    }
    Ok(outcome)
}

/// What the catalog says of a code, in one language.
struct Explained {
    meaning: String,
    step: String,
    /// What the terminal's screen shows (Chinese by nature).
    display: String,
    local: bool,
}

/// Meaning and next step of a code, from the catalog (host codes and local codes alike);
/// the step is the one for `operation` where the catalog has steps of its own for it.
fn explain(code: &str, operation: Option<Operation>, lang: Lang) -> Explained {
    let catalog = Catalog::builtin();
    let entry = if code.starts_with('L') {
        catalog.local(code)
    } else {
        catalog.lookup(Table::CupPos, code)
    };
    match entry {
        Some(e) => Explained {
            meaning: e.meaning(lang).to_owned(),
            step: operation
                .map_or(e.steps(lang), |op| e.steps_for(op, lang))
                .first()
                .cloned()
                .unwrap_or_default(),
            display: e.display().to_owned(),
            local: e.is_local(),
        },
        None => {
            let guide = catalog.unknown_code_guide();
            Explained {
                meaning: guide.title(lang).to_owned(),
                step: guide.steps(lang).first().cloned().unwrap_or_default(),
                display: poskit_codes::UNKNOWN_CODE_DISPLAY.to_owned(),
                local: false,
            }
        }
    }
}

pub(crate) fn yuan(fen: u64) -> String {
    AmountFen::new(fen)
        .map(|a| a.to_string())
        .unwrap_or_else(|_| format!("{fen} fen"))
}

fn masked(card: &Option<CardData>) -> String {
    card.as_ref()
        .map(|c| poskit_codec::mask::mask_pan(c.pan()))
        .unwrap_or_default()
}

fn outcome_json(o: &Outcome, operation: Option<Operation>, lang: Lang) -> Value {
    let e = explain(o.code.as_str(), operation, lang);
    let t = o.txn.as_ref();
    json!({
        "operation": o.operation,
        "approved": o.approved,
        "code": o.code.as_str(),
        "local_code": e.local,
        "meaning": e.meaning,
        "display": e.display,
        "next_step": e.step,
        "trace": t.map(|t| format!("{:06}", t.stan)),
        "batch": t.map(|t| format!("{:06}", t.batch)),
        "rrn": t.and_then(|t| t.rrn).map(|r| r.to_string()),
        "auth_code": t.and_then(|t| t.auth_code).map(|a| a.to_string()),
        "amount_fen": t.and_then(|t| t.amount_fen).map(AmountFen::fen),
        "card": t.map(|t| masked(&t.card)),
        "reversal": o.reversal.as_str(),
        "balance_fen": o.balance.map(Balance::fen_signed),
        "issuer": o.institutions.as_ref().map(|(issuer, _)| issuer),
        "acquirer": o.institutions.as_ref().map(|(_, acquirer)| acquirer),
        "settlement": o.settlement.map(|(balanced, uploaded)| json!({"balanced": balanced, "uploaded": uploaded})),
        "notes": o.notes.iter().map(|n| notes::note_text(n, lang)).collect::<Vec<_>>(),
    })
}

fn print_outcome(
    o: &Outcome,
    operation: Option<Operation>,
    tid: &str,
    mid: &str,
    lang: Lang,
    as_json: bool,
) -> anyhow::Result<()> {
    if as_json {
        outln!("{}", outcome_json(o, operation, lang))?;
        return Ok(());
    }
    let e = explain(o.code.as_str(), operation, lang);
    let verdict = match o.approved {
        true => tr(lang, "APPROVED", "交易成功"),
        false => tr(lang, "DECLINED", "交易失败"),
    };
    let local = match e.local {
        true => tr(lang, " (terminal-local code)", "（终端本地码）"),
        false => "",
    };
    outln!("{verdict}  {}{local} — {}", o.code, e.meaning)?;
    if !o.approved && !e.display.is_empty() {
        let shows = tr(lang, "the terminal shows (in Chinese)", "终端显示");
        outln!("  {shows}{}{}", tr(lang, ": ", "："), e.display)?;
    }
    for n in &o.notes {
        outln!("  · {}", notes::note_text(n, lang))?;
    }
    print_reversal(o.reversal, lang)?;
    if let Some(b) = o.balance {
        let sign = if b.fen_signed() < 0 { "-" } else { "" };
        let label = tr(lang, "available balance", "可用余额");
        outln!("  {label}: {sign}{}", b.amount_fen)?;
    }
    if let Some((balanced, uploaded)) = o.settlement {
        match (balanced, lang) {
            (true, Lang::En) => outln!("  settlement: balanced"),
            (true, Lang::Zh) => outln!("  结算：对账平"),
            (false, Lang::En) => outln!("  settlement: unbalanced: {uploaded} details uploaded"),
            (false, Lang::Zh) => outln!("  结算：对账不平，已上送 {uploaded} 笔明细"),
        }?;
    }
    if !o.approved && !e.step.is_empty() {
        outln!("  {}{}", tr(lang, "next step: ", "下一步："), e.step)?;
    }
    if o.approved
        && let Some(t) = &o.txn
        && t.kind != TransactionKind::BalanceInquiry
    {
        print_slip(t, o.institutions.as_ref(), (tid, mid), lang)?;
    }
    Ok(())
}

fn print_reversal(reversal: ReversalState, lang: Lang) -> anyhow::Result<()> {
    let text = match reversal {
        ReversalState::None => return Ok(()),
        ReversalState::Pending => tr(
            lang,
            "reversal: pending — it goes out before the next transaction",
            "冲正：待发送——下一笔交易之前自动发出",
        ),
        ReversalState::Done => tr(
            lang,
            "reversal: done — the customer is not charged",
            "冲正：已完成——顾客没有被扣款",
        ),
        ReversalState::Failed => tr(
            lang,
            "reversal: FAILED — contact the acquirer (poskit pos failures)",
            "冲正：失败——请联系收单机构（poskit pos failures）",
        ),
    };
    outln!("  {text}")?;
    Ok(())
}

/// One line of a table: each cell padded to its column's width (the last one not).
fn table_line(cells: &[String], widths: &[usize]) -> anyhow::Result<()> {
    assert_eq!(cells.len(), widths.len(), "a cell per column");
    let row: Vec<String> = cells
        .iter()
        .zip(widths)
        .map(|(c, w)| padded(c, *w))
        .collect();
    outln!("{}", row.join(" ").trim_end())
}

/// `label` padded to `width` terminal columns (Chinese characters take two).
fn padded(label: &str, width: usize) -> String {
    let used = unicode_width::UnicodeWidthStr::width(label);
    format!("{label}{}", " ".repeat(width.saturating_sub(used)))
}

fn print_slip(
    t: &Txn,
    institutions: Option<&(String, String)>,
    (tid, mid): (&str, &str),
    lang: Lang,
) -> anyhow::Result<()> {
    let date = t
        .host_date
        .as_deref()
        .map(|d| format!("{}-{}", d.get(..2).unwrap_or(""), d.get(2..).unwrap_or("")));
    let time = t.host_time.as_deref().map(|h| {
        let part = |r: std::ops::Range<usize>| h.get(r).unwrap_or("");
        format!("{}:{}:{}", part(0..2), part(2..4), part(4..6))
    });
    let slip = Slip {
        mid,
        tid,
        card: masked(&t.card),
        kind: t.kind,
        batch: t.batch,
        trace: t.stan,
        rrn: t.rrn.as_ref().map(Rrn::as_str),
        auth_code: t.auth_code.as_ref().map(AuthCode::as_str),
        date_time: format!("{} {}", date.unwrap_or_default(), time.unwrap_or_default()),
        institutions,
        amount_fen: t.amount_fen.map(AmountFen::fen),
    };
    for line in slip.lines(lang) {
        outln!("{line}")?;
    }
    Ok(())
}

/// What a sales slip (签购单) shows.
pub(crate) struct Slip<'a> {
    pub mid: &'a str,
    pub tid: &'a str,
    /// Masked.
    pub card: String,
    pub kind: poskit_domain::TransactionKind,
    pub batch: u32,
    pub trace: u32,
    pub rrn: Option<&'a str>,
    pub auth_code: Option<&'a str>,
    pub date_time: String,
    /// Field 44: the card's issuer and the acquirer.
    pub institutions: Option<&'a (String, String)>,
    pub amount_fen: Option<u64>,
}

impl Slip<'_> {
    /// The slip as `poskit pos` prints it, a line each.
    pub(crate) fn lines(&self, lang: Lang) -> Vec<String> {
        let kind = match lang {
            Lang::En => self.kind.name_en(),
            Lang::Zh => self.kind.name_zh(),
        };
        let mut rows = vec![
            (tr(lang, "merchant (MID)", "商户号"), self.mid.to_owned()),
            (tr(lang, "terminal (TID)", "终端号"), self.tid.to_owned()),
            (tr(lang, "card", "卡号"), self.card.clone()),
            (tr(lang, "type", "交易类型"), kind.to_owned()),
            (tr(lang, "batch", "批次号"), format!("{:06}", self.batch)),
            (tr(lang, "trace", "凭证号"), format!("{:06}", self.trace)),
            (
                tr(lang, "RRN", "参考号"),
                self.rrn.unwrap_or("-").to_owned(),
            ),
            (
                tr(lang, "auth code", "授权码"),
                self.auth_code.unwrap_or("-").to_owned(),
            ),
            (tr(lang, "date/time", "日期时间"), self.date_time.clone()),
        ];
        if let Some((issuer, acquirer)) = self.institutions {
            rows.push((tr(lang, "issuer", "发卡行"), issuer.clone()));
            rows.push((tr(lang, "acquirer", "收单行"), acquirer.clone()));
        }
        if let Some(a) = self.amount_fen {
            rows.push((tr(lang, "amount", "金额"), format!("RMB {}", yuan(a))));
        }
        let title = tr(lang, " sales slip ", " 签购单 ");
        let mut out = vec![format!("  ----------------{title}----------------")];
        out.extend(
            rows.into_iter()
                .map(|(label, value)| format!("  {}{value}", padded(label, 16))),
        );
        out.push("  ---------------------------------------------".to_owned());
        out
    }
}

fn txn_json(t: &Txn, time: Option<String>) -> Value {
    json!({
        "id": t.id,
        "kind": t.kind.slug(),
        "batch": format!("{:06}", t.batch),
        "trace": format!("{:06}", t.stan),
        "amount_fen": t.amount_fen.map(AmountFen::fen),
        "card": masked(&t.card),
        "rrn": t.rrn.as_ref().map(Rrn::as_str),
        "auth_code": t.auth_code.as_ref().map(AuthCode::as_str),
        "code": t.code.as_ref().map(|c| c.as_str()),
        "state": t.state.as_str(),
        "reversal": t.reversal.as_str(),
        "original_trace": t.original_stan.map(|s| format!("{s:06}")),
        "original_rrn": t.original_rrn.as_ref().map(Rrn::as_str),
        "time": time,
        "time_ms": t.time_ms,
    })
}

fn status(journal: &Journal, lang: Lang, as_json: bool) -> anyhow::Result<ExitCode> {
    let (cfg, host) = journal.config()?;
    let snap = journal.snapshot()?;
    let reversal = snap.reversal.as_ref().map(|r| {
        json!({"trace": format!("{:06}", r.stan), "kind": r.kind.slug(), "amount_fen": r.amount_fen.map(AmountFen::fen), "reason": r.reason.as_str(), "attempts": r.attempts})
    });
    let advices: Vec<Value> = snap
        .advices
        .iter()
        .map(|a| json!({"trace": format!("{:06}", a.stan), "kind": a.kind.slug(), "amount_fen": a.amount_fen.fen(), "attempts": a.attempts}))
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
        print_status(journal, &cfg, &host, &snap, lang)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(
    journal: &Journal,
    cfg: &Config,
    host: &str,
    snap: &poskit_terminal::engine::Snapshot,
    lang: Lang,
) -> anyhow::Result<()> {
    let (tid, mid) = (&cfg.tid, &cfg.mid);
    match lang {
        Lang::En => outln!("terminal {tid} of merchant {mid}, host {host}"),
        Lang::Zh => outln!("终端 {tid}（商户 {mid}），主机 {host}"),
    }?;
    let signed = match snap.keys.is_some() {
        true => tr(lang, "signed in: yes", "已签到：是"),
        false => tr(
            lang,
            "signed in: no (run sign-in)",
            "已签到：否（请先签到 sign-in）",
        ),
    };
    outln!("  {signed}")?;
    match lang {
        Lang::En => outln!("  batch {:06}, last trace {:06}", snap.batch, snap.stan),
        Lang::Zh => outln!("  批次号 {:06}，最近凭证号 {:06}", snap.batch, snap.stan),
    }?;
    match (&snap.reversal, lang) {
        (Some(r), Lang::En) => outln!(
            "  pending reversal: trace {:06} ({}, {}), reason {}, {} attempts",
            r.stan,
            r.kind.name_en(),
            r.amount_fen.map(|a| a.to_string()).unwrap_or_default(),
            r.reason,
            r.attempts
        ),
        (Some(r), Lang::Zh) => outln!(
            "  待发冲正：凭证号 {:06}（{}，{}），原因 {}，已尝试 {} 次",
            r.stan,
            r.kind.name_zh(),
            r.amount_fen.map(|a| a.to_string()).unwrap_or_default(),
            r.reason,
            r.attempts
        ),
        (None, _) => outln!("  {}", tr(lang, "pending reversal: none", "待发冲正：无")),
    }?;
    let advices = snap.advices.len();
    match lang {
        Lang::En => outln!("  stored advices: {advices}"),
        Lang::Zh => outln!("  待发通知：{advices}"),
    }?;
    for b in journal.batches()? {
        let t = b.totals;
        let (debits, credits) = (t.debit_fen, t.credit_fen);
        let (dn, cn, batch) = (t.debit_count, t.credit_count, b.batch);
        match (lang, b.balanced) {
            (Lang::En, true) => outln!(
                "  closed batch {batch:06}: {dn} debits {debits}, {cn} credits {credits}, balanced"
            ),
            (Lang::En, false) => outln!(
                "  closed batch {batch:06}: {dn} debits {debits}, {cn} credits {credits}, unbalanced, {} uploaded",
                b.uploaded
            ),
            (Lang::Zh, true) => outln!(
                "  已结批次 {batch:06}：借记 {dn} 笔 {debits}，贷记 {cn} 笔 {credits}，对账平"
            ),
            (Lang::Zh, false) => outln!(
                "  已结批次 {batch:06}：借记 {dn} 笔 {debits}，贷记 {cn} 笔 {credits}，对账不平，已上送 {} 笔",
                b.uploaded
            ),
        }?;
    }
    Ok(())
}

fn list_journal(journal: &Journal, lang: Lang, as_json: bool) -> anyhow::Result<ExitCode> {
    let txns = journal.txns(None)?;
    if as_json {
        let list: Vec<Value> = txns
            .iter()
            .map(|t| txn_json(t, journal.local_time(t.time_ms).ok()))
            .collect();
        outln!("{}", Value::Array(list))?;
        return Ok(ExitCode::SUCCESS);
    }
    let head = [
        tr(lang, "time", "时间"),
        tr(lang, "batch", "批次号"),
        tr(lang, "trace", "凭证号"),
        tr(lang, "kind", "交易类型"),
        tr(lang, "amount", "金额"),
        tr(lang, "card", "卡号"),
        tr(lang, "RRN", "参考号"),
        tr(lang, "code", "应答码"),
        tr(lang, "state", "状态"),
        tr(lang, "reversal", "冲正"),
    ];
    let widths = [19, 6, 6, 16, 10, 19, 12, 6, 9, 0];
    let line = |cells: &[String]| table_line(cells, &widths);
    line(&head.map(str::to_owned))?;
    for t in &txns {
        let kind = match lang {
            Lang::En => t.kind.slug(),
            Lang::Zh => t.kind.name_zh(),
        };
        line(&[
            journal.local_time(t.time_ms)?,
            format!("{:06}", t.batch),
            format!("{:06}", t.stan),
            kind.to_owned(),
            format!(
                "{:>10}",
                t.amount_fen.map(|a| a.to_string()).unwrap_or_default()
            ),
            masked(&t.card),
            t.rrn.map_or("-".into(), |r| r.to_string()),
            t.code.map_or("-".into(), |c| c.to_string()),
            state_text(t.state, lang).to_owned(),
            reversal_text(t.reversal, lang).to_owned(),
        ])?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A transaction's state as the journal lists it.
fn state_text(state: TxnState, lang: Lang) -> &'static str {
    match lang {
        Lang::En => state.as_str(),
        Lang::Zh => match state {
            TxnState::Sent => "已发送",
            TxnState::Approved => "成功",
            TxnState::Declined => "拒绝",
            TxnState::Failed => "失败",
            TxnState::Voided => "已撤销",
            TxnState::Queued => "待上送",
            TxnState::Closed => "已结算",
        },
    }
}

/// A transaction's reversal as the journal lists it.
fn reversal_text(reversal: ReversalState, lang: Lang) -> &'static str {
    match lang {
        Lang::En => reversal.as_str(),
        Lang::Zh => match reversal {
            ReversalState::None => "无",
            ReversalState::Pending => "待冲正",
            ReversalState::Done => "已冲正",
            ReversalState::Failed => "冲正失败",
        },
    }
}

fn failures(journal: &Journal, lang: Lang, as_json: bool) -> anyhow::Result<ExitCode> {
    let list = journal.failures()?;
    if as_json {
        let mut v = Vec::new();
        for f in &list {
            let time = journal.local_time(f.time_ms)?;
            v.push(json!({"time": time, "time_ms": f.time_ms, "tid": f.tid, "operation": f.operation, "amount_fen": f.amount_fen.map(AmountFen::fen), "code": f.code.as_str(), "cause": notes::cause_text(&f.cause, lang), "cause_code": f.cause.code()}));
        }
        outln!("{}", Value::Array(v))?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        outln!("{}", tr(lang, "no failures", "没有失败记录"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let head = [
        tr(lang, "time", "时间"),
        tr(lang, "terminal", "终端号"),
        tr(lang, "operation", "操作"),
        tr(lang, "amount", "金额"),
        tr(lang, "code", "应答码"),
        tr(lang, "cause", "原因"),
    ];
    let widths = [19, 8, 12, 10, 4, 0];
    let line = |cells: &[String]| table_line(cells, &widths);
    line(&head.map(str::to_owned))?;
    for f in &list {
        line(&[
            journal.local_time(f.time_ms)?,
            f.tid.clone(),
            f.operation.clone(),
            format!(
                "{:>10}",
                f.amount_fen.map(|a| a.to_string()).unwrap_or_default()
            ),
            f.code.to_string(),
            notes::cause_text(&f.cause, lang),
        ])?;
    }
    Ok(ExitCode::SUCCESS)
}
