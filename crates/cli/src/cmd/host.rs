//! `poskit host`: run the acquirer host, load its data, check its ledger, print the demo
//! data, change its fault plan. The host itself lives in `poskit-host`; this module parses
//! arguments, sets up logging and signals, and prints.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use poskit_host::clock::HostTime;
use poskit_host::config::HostConfig;
use poskit_host::dataset::{self, IMPORT_BYTES_MAX};
use poskit_host::store::sqlite;
use poskit_host::{DataDir, HostError, demo, run, writer};

use crate::fail::{self, usage};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// Where `/metrics` is served unless `--admin-listen` says otherwise.
const ADMIN_LISTEN_DEFAULT: &str = "127.0.0.1:9464";

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on, HOST:PORT (CUP POS framing over TCP).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5800", value_parser = listen_addr)]
    listen: String,
    /// Data directory: the ledger database (its keys and card numbers sealed under the
    /// key-encryption key).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    #[command(flatten)]
    kek: crate::kek_args::KekArgs,
    /// Host configuration (TOML): limits, timeouts, acquirer code, fault plan.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Load the built-in demo data set (once; `poskit host demo-data` lists it).
    #[arg(long)]
    demo: bool,
    /// Where to serve `/metrics` (Prometheus text format), HOST:PORT; `off` for nowhere.
    /// Default 127.0.0.1:9464, skipped with a warning when another process has it.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<String>,
    /// Serve the HTTP API (`/api/v1/`, `/openapi.json`) beside the terminal port, HOST:PORT
    /// (users: `poskit users`).
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    #[command(flatten)]
    tls: crate::cmd::console::TlsArgs,
    #[command(flatten)]
    terminal_tls: crate::tls_args::HostTls,
    /// Alert rules (TOML) over the shipped ones: a rule of the same name replaces it,
    /// `enabled = false` turns it off (`poskit alerts rules` prints the shipped file).
    #[arg(long, value_name = "FILE")]
    alert_rules: Option<PathBuf>,
    /// POST each alert (firing and resolved) as JSON to this http:// or https:// URL,
    /// retried with backoff.
    #[arg(long, value_name = "URL")]
    alert_webhook: Option<String>,
    /// Shift the host's clock by whole days (for testing next-day refunds and cross-day
    /// reversals).
    #[arg(
        long,
        value_name = "DAYS",
        default_value_t = 0,
        allow_negative_numbers = true,
        hide = true
    )]
    clock_offset_days: i32,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Load institutions, merchants, terminals and cards from a TOML or CSV file.
    Import(ImportArgs),
    /// Check the ledger: postings sum to zero, balances are their postings' sums.
    Check(CheckArgs),
    /// Print the demo data: a card or terminal for every scenario, and what it answers.
    DemoData(DemoDataArgs),
    /// Show, set or clear the fault plan a running host applies (within 250 ms).
    Faults(FaultsArgs),
}

#[derive(Debug, clap::Args)]
struct ImportArgs {
    /// The data file: `.toml`, or `.csv` of one entity (the header says which).
    file: PathBuf,
    /// Data directory of the host to load into (created when missing).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    #[command(flatten)]
    kek: crate::kek_args::KekArgs,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// Data directory of the host whose ledger to check.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Print JSON: {"ok", "postings", "postings_sum_fen", "accounts", "transactions", "problems"}.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct DemoDataArgs {
    /// Print JSON: every field of every scenario (track 2, TMK, expected code, ...).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct FaultsArgs {
    /// Data directory of the host (running or not) whose fault plan to show or change.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    #[command(subcommand)]
    action: FaultsAction,
}

#[derive(Debug, clap::Subcommand)]
enum FaultsAction {
    /// Print the stored plan and whether a running host has applied it.
    Show,
    /// Store a plan (TOML, `-` for standard input).
    Set {
        /// The plan: a TOML file, or `-` for standard input.
        file: String,
    },
    /// Store an empty plan: no faults.
    Clear,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        None => serve(args.serve),
        Some(Command::Import(a)) => import(a),
        Some(Command::Check(a)) => check(a),
        Some(Command::DemoData(a)) => demo_data(a),
        Some(Command::Faults(a)) => faults(a),
    }
}

/// `--listen`: an address to bind, `HOST:PORT` with a host that resolves, checked before
/// anything is created (a bad one is an argument error, exit 2).
fn listen_addr(text: &str) -> Result<String, String> {
    use std::net::ToSocketAddrs;
    match text.to_socket_addrs().map(|mut addrs| addrs.next()) {
        Ok(Some(_)) => Ok(text.to_owned()),
        Ok(None) => Err("the host has no address".to_owned()),
        Err(e) => Err(format!("expected HOST:PORT such as 127.0.0.1:5800 ({e})")),
    }
}

pub(crate) fn existing_data_dir(path: &Path) -> anyhow::Result<DataDir> {
    if !path.join(sqlite::DB_FILE).is_file() {
        return Err(usage(format!(
            "--data {}: no host database there (start `poskit host --data {}` or import first)",
            path.display(),
            path.display()
        )));
    }
    Ok(DataDir::existing(path))
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let Some(data) = args.data else {
        return Err(usage("--data DIR is required to run the host"));
    };
    let mut config = match &args.config {
        Some(path) => {
            let text = crate::input::read_text("--config", &path.to_string_lossy())?;
            HostConfig::parse(&text)
                .map_err(|e| usage(format!("--config {}: {e}", path.display())))?
        }
        None => HostConfig::default(),
    };
    config.clock_offset_days = args.clock_offset_days;
    if let Some(tls) = args.terminal_tls.config()? {
        config.tls = Some(tls);
    }
    if let Some(path) = &args.alert_rules {
        config
            .alerts
            .with_rules_file(path)
            .map_err(|e| usage(format!("--alert-rules {e}")))?;
    }
    if let Some(url) = &args.alert_webhook {
        poskit_monitor::webhook::check_url(url)
            .map_err(|e| usage(format!("--alert-webhook {e}")))?;
        config.alerts.webhook = Some(url.clone());
    }
    config.admin_required = args.admin_listen.is_some();
    config.admin_listen = match args.admin_listen.as_deref().unwrap_or(ADMIN_LISTEN_DEFAULT) {
        "off" => None,
        at => Some(listen_addr(at).map_err(|e| usage(format!("--admin-listen {at}: {e}")))?),
    };
    crate::input::create_dir("--data", &data)?;
    let dir = DataDir::create(&data)
        .with_context(|| format!("--data {}", data.display()))?
        .with_kek(args.kek.source(&data)?);
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(poskit_host::run::connection_threads())
        .enable_all()
        .thread_name("poskit-host")
        .build()
        .context("cannot start the async runtime")?;
    let http = args
        .http
        .as_deref()
        .map(|at| args.tls.http(at))
        .transpose()?;
    let listen = args.listen.clone();
    let data_shown = data.display().to_string();
    runtime
        .block_on(async move {
            let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
            let mut console = None;
            if let Some(http) = http {
                let (listener, state) = crate::cmd::console::bind(&dir, &http)
                    .await
                    .map_err(|e| HostError::Config(e.to_string()))?;
                console = listener
                    .local_addr()
                    .ok()
                    .map(|a| format!("{}://{a}", http.scheme()));
                tokio::spawn(poskit_web::serve(listener, state, http.tls, async move {
                    let _ = stop_rx.changed().await;
                }));
            }
            let stop = async move {
                shutdown_signal().await;
                let _ = stop_tx.send(true);
            };
            run::run(&dir, config, &listen, args.demo, stop, |running| {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(
                    out,
                    "poskit host: listening on {} (data {data_shown})",
                    running.addr
                );
                if let Some(admin) = running.admin_addr {
                    let _ = writeln!(out, "poskit host: metrics on http://{admin}/metrics");
                }
                if let Some(at) = &console {
                    let _ = writeln!(out, "poskit host: API on {at}/api/v1/");
                }
                let _ = out.flush();
            })
            .await
        })
        .map_err(|e| match e {
            // A second host on the same directory is a wrong argument, not a failure of it.
            HostError::Busy { .. } | HostError::Keys(_) => usage(e.to_string()),
            other => anyhow::Error::new(other),
        })?;
    // Standard output may be gone (a supervisor that only read the first line).
    let _ = writeln!(std::io::stdout(), "poskit host: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Logs go to standard error, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let file = std::fs::File::open(&args.file)
        .map_err(|e| usage(format!("{}: {e}", args.file.display())))?;
    let mut text = String::new();
    file.take(IMPORT_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|e| usage(format!("{}: {e}", args.file.display())))?;
    if text.len() as u64 > IMPORT_BYTES_MAX {
        return Err(usage(format!(
            "{}: larger than {IMPORT_BYTES_MAX} bytes",
            args.file.display()
        )));
    }
    crate::input::create_dir("--data", &args.data)?;
    let dir = DataDir::create(&args.data)
        .with_context(|| format!("--data {}", args.data.display()))?
        .with_kek(args.kek.source(&args.data)?);
    let (mut conn, keys) = dir.open_keys()?;
    let hasher = keys.pins();
    let is_csv = args
        .file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let set = if is_csv {
        dataset::parse_csv(&text, hasher)
    } else {
        dataset::parse_toml(&text, hasher)
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let now = HostTime::now(poskit_host::clock::UTC_OFFSET_MINUTES_DEFAULT, 0);
    let counts = sqlite::import(&mut conn, &keys, &set, &now)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    outln!(
        "imported {}: {} institutions, {} merchants, {} terminals, {} new cards, {} cards updated (balances of existing cards unchanged)",
        args.file.display(),
        counts.institutions,
        counts.merchants,
        counts.terminals,
        counts.cards_new,
        counts.cards_updated
    )?;
    Ok(ExitCode::SUCCESS)
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let dir = existing_data_dir(&args.data)?;
    let conn = dir.open_store()?;
    let report = sqlite::check(&conn)?;
    let ok = report.problems.is_empty();
    if args.json {
        outln!(
            "{}",
            json!({
                "ok": ok,
                "postings": report.postings,
                "postings_sum_fen": report.postings_sum_fen,
                "accounts": report.accounts,
                "transactions": report.transactions,
                "problems": report.problems,
            })
        )?;
    } else {
        outln!(
            "{}: {} transactions, {} postings over {} accounts, sum of postings {} fen",
            if ok { "balanced" } else { "NOT BALANCED" },
            report.transactions,
            report.postings,
            report.accounts,
            report.postings_sum_fen
        )?;
        for p in &report.problems {
            outln!("  problem: {p}")?;
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(fail::EXIT_INPUT)
    })
}

fn demo_data(args: DemoDataArgs) -> anyhow::Result<ExitCode> {
    let scenarios = demo::scenarios();
    if args.json {
        let list: Vec<_> = scenarios
            .iter()
            .map(|s| {
                json!({
                    "scenario": s.name,
                    "description": s.description,
                    "operation": s.operation.slug(),
                    "amount_fen": s.amount_fen,
                    "pan": s.pan,
                    "expiry": s.expiry,
                    "pin": s.pin,
                    "track2": s.track2(),
                    "tid": s.tid,
                    "mid": s.mid,
                    "tmk": s.tmk,
                    "expected_code": s.expected.as_str(),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "Demo data (test cards only; PIN {} for every card, TMK {}):",
        demo::DEMO_PIN,
        demo::DEMO_TMK
    )?;
    outln!(
        "{:<24} {:<21} {:<6} {:<8} {:<15} {:>4}  what happens",
        "scenario",
        "card",
        "expiry",
        "TID",
        "MID",
        "code"
    )?;
    for s in &scenarios {
        outln!(
            "{:<24} {:<21} {:<6} {:<8} {:<15} {:>4}  {}",
            s.name,
            s.pan,
            s.expiry,
            s.tid,
            s.mid,
            s.expected.as_str(),
            s.description
        )?;
    }
    outln!(
        "Fleet: terminals {}..{} at merchant 898310048160001, {} ordinary cards (poskit host demo-data --json for all fields).",
        demo::fleet_tid(0),
        demo::fleet_tid(demo::FLEET_TERMINALS - 1),
        demo::FLEET_CARDS
    )?;
    Ok(ExitCode::SUCCESS)
}

fn faults(args: FaultsArgs) -> anyhow::Result<ExitCode> {
    let dir = existing_data_dir(&args.data)?;
    let conn = dir.open_store()?;
    let applied_version = || {
        writer::stored_fault_plan(&conn)
            .ok()
            .flatten()
            .map(|(_, applied, _)| applied)
    };
    match args.action {
        FaultsAction::Show => match writer::stored_fault_plan(&conn)? {
            None => outln!("no fault plan stored (a host applies its --config plan, if any)")?,
            Some((version, applied, text)) => {
                let state = if applied == version {
                    "applied by a running host"
                } else {
                    "not yet applied (no host running, or within 250 ms)"
                };
                outln!("fault plan version {version}, {state}:")?;
                out!("{text}")?;
                if !text.ends_with('\n') {
                    outln!()?;
                }
            }
        },
        FaultsAction::Set { file } => {
            let text = crate::input::read_text("faults set", &file)?;
            let version = writer::store_fault_plan(&conn, &text)
                .map_err(|e| usage(format!("{file}: {e}")))?;
            outln!(
                "fault plan version {version} stored; {}",
                applied(applied_version, version)
            )?;
        }
        FaultsAction::Clear => {
            let version = writer::store_fault_plan(&conn, "")?;
            outln!(
                "fault plan version {version} stored: no faults; {}",
                applied(applied_version, version)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How long `faults set|clear` waits for a running host to apply the plan (it looks every
/// 250 ms), so that the next command, pasted right after, meets the plan in force.
const FAULTS_APPLIED_WAIT_MS: u64 = 1_000;

/// Waits until a running host has applied plan `version`, and says whether one did.
fn applied(applied_version: impl Fn() -> Option<i64>, version: i64) -> &'static str {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_millis(FAULTS_APPLIED_WAIT_MS) {
        if applied_version() == Some(version) {
            return "the running host applied it";
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    "no running host applied it within a second (a host applies it when it starts)"
}
