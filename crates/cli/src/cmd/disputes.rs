//! `poskit disputes`: the dispute (差错) cases of a host's ledger — imported from the
//! switch's AERRA file or opened by hand, listed by deadline, acted on — and the cards
//! retained at terminals. A rule of the standard that refuses an action exits 1 with the
//! reason; a step the case cannot take now exits 2 naming the ones it can.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use poskit_host::clock::HostTime;
use poskit_host::store::lookup;
use poskit_recon::disputes::{self, DisputeError, Kind, Opening};
use serde_json::json;

use crate::fail::usage;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Import the switch's AERRA file: each record opens its case (E04, E23, E32, E06,
    /// E08) or takes a step on one (E25); all or nothing.
    Import(ImportArgs),
    /// Open a case by hand for the transaction with this RRN.
    Open(OpenArgs),
    /// List the cases, soonest deadline first.
    List(ListArgs),
    /// Take a step on a case: --accept, --represent, --second-chargeback or --reply.
    Respond(RespondArgs),
    /// The cards retained at terminals (pick-up answers), and what to do with them.
    Retained(RetainedArgs),
    /// One case with its evidence: its events and files, and its transaction's whole chain
    /// (as `poskit lookup` tells it), as JSON.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
struct ShowArgs {
    #[command(flatten)]
    data: Data,
    /// The case number.
    id: i64,
}

#[derive(Debug, clap::Args)]
struct Data {
    /// The host's data directory.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
}

#[derive(Debug, clap::Args)]
struct ImportArgs {
    #[command(flatten)]
    data: Data,
    /// The AERRA file (IND{yymmdd}32AERRA).
    file: PathBuf,
}

#[derive(Debug, clap::Args)]
struct OpenArgs {
    #[command(flatten)]
    data: Data,
    /// The transaction's reference number (field 37).
    #[arg(long)]
    rrn: String,
    /// retrieval, chargeback, credit-adjustment, one-sided or retained.
    #[arg(long = "type", value_name = "TYPE")]
    kind: String,
    /// The reason code, four digits (4502: sale failed but the account was debited; 4512:
    /// cleared twice; 4515: cardholder denies it; ...).
    #[arg(long)]
    reason: String,
    /// Part of the amount, in yuan (default: all of it).
    #[arg(long)]
    amount: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    data: Data,
    /// Only open cases due within this long: 3d, 12h.
    #[arg(long, value_name = "DURATION")]
    due_within: Option<String>,
    /// Print JSON: every case with its events and allowed steps.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("step")
        .required(true)
        .args(["accept", "represent", "second_chargeback", "reply"])
))]
struct RespondArgs {
    #[command(flatten)]
    data: Data,
    /// The case number (from `disputes list`).
    id: i64,
    /// Accept the chargeback: the merchant keeps the debit.
    #[arg(long)]
    accept: bool,
    /// Represent (再请款, E24): the merchant is credited back. Needs --evidence.
    #[arg(long, requires = "evidence")]
    represent: bool,
    /// Second chargeback (二次退单, E25), as the issuer files it.
    #[arg(long)]
    second_chargeback: bool,
    /// Reply to a retrieval request, a one-sided account notice or a retained-card
    /// registration.
    #[arg(long)]
    reply: bool,
    /// A file supporting the step (the slip's image, the journal extract): copied into
    /// DIR/evidence/.
    #[arg(long, value_name = "FILE")]
    evidence: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct RetainedArgs {
    #[command(flatten)]
    data: Data,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Import(a) => import(a),
        Command::Open(a) => open(a),
        Command::List(a) => list(a),
        Command::Respond(a) => respond(a),
        Command::Retained(a) => retained(a),
        Command::Show(a) => show(a),
    }
}

/// The sales slip of a ledger transaction, as the terminal printed it: evidence.
fn slip_of(t: &lookup::TxnView) -> crate::cmd::pos::Slip<'_> {
    let hh = |r: std::ops::Range<usize>| t.hhmmss.get(r).unwrap_or("");
    crate::cmd::pos::Slip {
        mid: t.mid.as_deref().unwrap_or(""),
        tid: t.tid.as_deref().unwrap_or(""),
        card: t.pan_masked.clone().unwrap_or_default(),
        kind: t
            .kind
            .as_deref()
            .and_then(poskit_domain::TransactionKind::from_slug)
            .unwrap_or(poskit_domain::TransactionKind::Sale),
        batch: t.batch.unwrap_or(0),
        trace: t.stan.unwrap_or(0),
        rrn: t.rrn.as_deref(),
        auth_code: t.auth_code.as_deref(),
        date_time: format!(
            "{} {}:{}:{}",
            poskit_domain::calendar::yyyymmdd(t.day),
            hh(0..2),
            hh(2..4),
            hh(4..6)
        ),
        institutions: None,
        amount_fen: t.amount_fen,
    }
}

fn show(a: ShowArgs) -> anyhow::Result<ExitCode> {
    let conn = store(&a.data)?;
    let d = disputes::get(&conn, a.id)
        .map_err(refused)?
        .ok_or_else(|| anyhow::anyhow!("no dispute {}", a.id))?;
    let state_path = a.data.data.join("recon.db");
    let state = match state_path.is_file() {
        true => {
            let c = rusqlite::Connection::open(&state_path)?;
            poskit_recon::state::migrate(&c)?;
            Some(c)
        }
        false => None,
    };
    let query = poskit_recon::lookup::Query {
        rrn: Some(format!("{:012}", d.txn_id)),
        ..Default::default()
    };
    let story = poskit_recon::lookup::lookup(&conn, state.as_ref(), &query)?;
    let slip = lookup::by_id(&conn, d.txn_id)?.map(|t| {
        let s = slip_of(&t);
        json!({"zh": s.lines(poskit_codes::Lang::Zh), "en": s.lines(poskit_codes::Lang::En)})
    });
    outln!(
        "{}",
        serde_json::to_string_pretty(
            &json!({"dispute": d, "slip": slip, "transaction": story.first()})
        )?
    )?;
    Ok(ExitCode::SUCCESS)
}

fn store(data: &Data) -> anyhow::Result<rusqlite::Connection> {
    Ok(crate::cmd::host::existing_data_dir(&data.data)?.open_store()?)
}

fn now() -> HostTime {
    HostTime::now(poskit_host::clock::UTC_OFFSET_MINUTES_DEFAULT, 0)
}

/// A refused action: exit 1 (a rule) or 2 (a step not allowed now).
fn refused(e: DisputeError) -> anyhow::Error {
    match e {
        DisputeError::Transition { .. } => usage(e.to_string()),
        other => anyhow::anyhow!(other),
    }
}

fn import(a: ImportArgs) -> anyhow::Result<ExitCode> {
    let mut conn = store(&a.data)?;
    let done = disputes::import_aerra(&mut conn, &a.file, now()).map_err(refused)?;
    outln!(
        "{}: {} opened, {} second chargebacks, {} already on file",
        a.file.display(),
        done.opened,
        done.second_chargebacks,
        done.known
    )?;
    Ok(ExitCode::SUCCESS)
}

fn open(a: OpenArgs) -> anyhow::Result<ExitCode> {
    let kind = Kind::parse(&a.kind).ok_or_else(|| {
        usage(format!(
            "--type {}: one of {}",
            a.kind,
            Kind::ALL.map(Kind::as_str).join(", ")
        ))
    })?;
    let txn_id: i64 = a
        .rrn
        .trim()
        .parse()
        .map_err(|_| usage(format!("--rrn {}: twelve digits", a.rrn)))?;
    let amount_fen = match &a.amount {
        Some(y) => Some(
            poskit_domain::AmountFen::parse_yuan(y)
                .map_err(|e| usage(format!("--amount {y}: {e}")))?
                .fen(),
        ),
        None => None,
    };
    let mut conn = store(&a.data)?;
    let (id, new) = disputes::open(
        &mut conn,
        &Opening {
            txn_id,
            kind,
            reason_code: &a.reason,
            source: "manual",
            reference: None,
            amount_fen,
            now: now(),
        },
    )
    .map_err(refused)?;
    let what = if new { "opened" } else { "already open" };
    outln!("dispute {id} {what}: {} of RRN {}", kind.as_str(), a.rrn)?;
    Ok(ExitCode::SUCCESS)
}

fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let within_ms = a.due_within.as_deref().map(duration_ms).transpose()?;
    let conn = store(&a.data)?;
    let now = now();
    let cases = disputes::list(&conn, within_ms, now.unix_ms).map_err(refused)?;
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"disputes": cases}))?
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    for d in &cases {
        let due_days = (d.due_ms - now.unix_ms) as f64 / 86_400_000.0;
        outln!(
            "{:>5}  {:<18} {} reason {}  {:<20} RRN {:012}  {}.{:02} yuan  due in {due_days:.1} days  next: {}",
            d.id,
            d.kind,
            d.e_code,
            d.reason_code,
            d.state,
            d.txn_id,
            d.amount_fen / 100,
            d.amount_fen % 100,
            if d.allowed.is_empty() {
                "closed".to_owned()
            } else {
                d.allowed.join(", ")
            }
        )?;
    }
    if cases.is_empty() {
        outln!("no disputes")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `3d`, `12h`, `90m` → milliseconds.
fn duration_ms(text: &str) -> anyhow::Result<i64> {
    let bad = || {
        usage(format!(
            "--due-within {text}: a number and d, h or m (3d, 12h)"
        ))
    };
    let (n, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = n.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_ms).filter(|ms| *ms >= 0).ok_or_else(bad)
}

fn respond(a: RespondArgs) -> anyhow::Result<ExitCode> {
    let step = match (a.accept, a.represent, a.second_chargeback) {
        (true, _, _) => disputes::Step::Accept,
        (_, true, _) => disputes::Step::Represent,
        (_, _, true) => disputes::Step::SecondChargeback,
        _ => disputes::Step::Reply,
    };
    let evidence = match &a.evidence {
        Some(file) => Some(keep_evidence(&a.data.data, a.id, file)?),
        None => None,
    };
    let mut conn = store(&a.data)?;
    let d =
        disputes::respond(&mut conn, a.id, step, evidence.as_deref(), now()).map_err(refused)?;
    outln!("dispute {}: {} ({})", d.id, d.state, d.e_code)?;
    Ok(ExitCode::SUCCESS)
}

/// Copies an evidence file under DIR/evidence/<case>/ and gives its path there.
fn keep_evidence(data: &Path, id: i64, file: &Path) -> anyhow::Result<String> {
    let name = file
        .file_name()
        .ok_or_else(|| usage(format!("--evidence {}: not a file", file.display())))?;
    let dir = data.join("evidence").join(id.to_string());
    std::fs::create_dir_all(&dir)?;
    let kept = dir.join(name);
    std::fs::copy(file, &kept).map_err(|e| usage(format!("--evidence {}: {e}", file.display())))?;
    Ok(kept.display().to_string())
}

fn retained(a: RetainedArgs) -> anyhow::Result<ExitCode> {
    let conn = store(&a.data)?;
    let cards = lookup::retained_cards(&conn)?;
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"retained": cards}))?
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let catalog = poskit_codes::Catalog::builtin();
    for c in &cards {
        let meaning = catalog
            .lookup(poskit_codes::Table::CupPos, &c.code)
            .map(|e| e.meaning(poskit_codes::Lang::En).to_owned())
            .unwrap_or_default();
        let due = HostTime::at(c.due_ms, poskit_host::clock::UTC_OFFSET_MINUTES_DEFAULT);
        outln!(
            "RRN {:012}  {}  terminal {}  merchant {}  {} {meaning}  hand to the acquirer by {}",
            c.txn_id,
            c.pan_masked,
            c.tid,
            c.mid,
            c.code,
            due.date_iso()
        )?;
    }
    if cards.is_empty() {
        outln!("no retained cards")?;
    } else {
        outln!(
            "Register one with the switch (E08): poskit disputes open --data DIR --rrn RRN --type retained --reason 0000"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
