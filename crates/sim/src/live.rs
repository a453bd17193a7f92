//! The live demo: a real host on loopback (SQLite in a data directory), a fleet of virtual
//! terminals over TCP (the terminal engine and its driver, journals on disk), mild faults
//! from the host's fault plan, cardholders who make the usual mistakes. Afterwards every
//! terminal settles and the checker compares the journals with the ledger.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poskit_domain::{AmountFen, TransactionKind};
use poskit_host::config::HostConfig;
use poskit_host::faults::FaultPlan;
use poskit_host::{DataDir, demo, run, writer};
use poskit_security::SecretKey;
use poskit_terminal::driver;
use poskit_terminal::engine::{Command, Config, Outcome, ReversalState};
use poskit_terminal::journal::Journal;

use crate::knobs;
use crate::workload::{self, Cards};

/// Terminals the demo may run (the demo data's fleet).
pub const TERMINALS_MAX: u32 = demo::FLEET_TERMINALS;
/// How long `sim --host` waits for the host to accept a first connection.
pub const CONNECT_TIMEOUT_MS: u64 = 3_000;
/// How long a virtual terminal waits for an answer before it reverses.
pub const TERMINAL_TIMEOUT_MS: u64 = 1_500;

const MID: &str = "898310048160001";

/// The host's fault plan during the demo: what a shop network does on a bad day. The
/// same file is shipped for `poskit host faults set`, so the README's plan is the demo's.
pub const MILD_FAULTS: &str = include_str!("../../../samples/faults-mild.toml");

/// Latencies kept for the report's percentiles (about an hour of a busy fleet).
pub const LATENCY_SAMPLES_MAX: usize = 1_000_000;

/// What the demo did, for the report.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Operations the terminals finished, sign-ins aside.
    pub transactions: u64,
    pub approved: u64,
    pub declined: BTreeMap<String, u64>,
    /// Sign-ins the fleet made on its own (at the start, and when the host asked for one):
    /// they use up an operation of `sim --transactions` too.
    pub sign_ins: u64,
    /// Operations that ended before the terminal could reach the host (its driver gave up:
    /// no connection, or the journal refused).
    pub unreachable: u64,
    /// Approved debits (sales, completions) and credits (voids, refunds, cancellations).
    pub approved_debit_fen: u64,
    pub approved_credit_fen: u64,
    /// Amounts whose reversal went through: the customer was not charged.
    pub reversed_fen: u64,
    pub reversals_done: u64,
    /// Operations that ended with their reversal still to send (it goes before the next).
    pub reversals_pending: u64,
    pub reversals_failed: u64,
    /// How long each finished operation took, in milliseconds (the first
    /// [`LATENCY_SAMPLES_MAX`]).
    pub latencies_ms: Vec<u64>,
}

impl Progress {
    /// The `percent`th percentile of the latencies, in milliseconds.
    pub fn latency_ms(&self, percent: u64) -> Option<u64> {
        assert!(percent <= 100);
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_unstable();
        let last = sorted.len().checked_sub(1)?;
        Some(sorted[(last as u64 * percent / 100) as usize])
    }
}

/// One terminal's settlement: the totals of the batch it closed.
#[derive(Clone, Debug)]
pub struct Settled {
    pub tid: String,
    pub debit_count: u32,
    pub debit_fen: u64,
    pub credit_count: u32,
    pub credit_fen: u64,
    pub balanced: bool,
}

#[derive(Clone, Debug)]
pub struct LiveReport {
    pub progress: Progress,
    pub elapsed_ms: u64,
    pub settlements_balanced: u64,
    pub settlements_unbalanced: u64,
    pub settlement_failures: Vec<String>,
    /// Per terminal, the batch its settlement closed.
    pub settled: Vec<Settled>,
    /// Reversals still waiting in a journal after the settlements (none when all is well).
    pub reversals_left: u64,
    /// Faults the host's plan injected, by rule name.
    pub faults: BTreeMap<String, u64>,
    pub breaks: Vec<String>,
    pub violations: Vec<String>,
    pub host_dir: PathBuf,
    pub terminal_dirs: Vec<PathBuf>,
    /// The day's reconciliation with the switch's files (`Err`: why it could not run).
    pub recon: Option<Result<poskit_recon::run::Report, String>>,
}

/// Adds `amount` to a fleet total. A total of amounts of twelve digits each passes a u64
/// only after some ten million of them: an overflow is a bug, never wrapped.
fn add_fen(total: &mut u64, amount: AmountFen) {
    *total = total
        .checked_add(amount.fen())
        .unwrap_or_else(|| panic!("a fleet total passed u64: {total} + {amount}"));
}

fn record(p: &mut Progress, o: &Outcome, latency_ms: u64) {
    let amount_fen = o
        .txn
        .as_ref()
        .and_then(|t| t.amount_fen)
        .unwrap_or(AmountFen::ZERO);
    match o.reversal {
        ReversalState::Done => {
            p.reversals_done += 1;
            add_fen(&mut p.reversed_fen, amount_fen);
        }
        ReversalState::Pending => p.reversals_pending += 1,
        ReversalState::Failed => p.reversals_failed += 1,
        ReversalState::None => {}
    }
    if o.operation == "sign-in" {
        p.sign_ins += 1;
        return;
    }
    if o.operation == "settle" || o.operation == "flush" {
        return;
    }
    p.transactions += 1;
    if p.latencies_ms.len() < LATENCY_SAMPLES_MAX {
        p.latencies_ms.push(latency_ms);
    }
    if !o.approved {
        *p.declined.entry(o.code.to_string()).or_default() += 1;
        return;
    }
    p.approved += 1;
    match o.txn.as_ref().map(|t| t.kind) {
        Some(TransactionKind::Sale | TransactionKind::PreAuthCompletion) => {
            add_fen(&mut p.approved_debit_fen, amount_fen)
        }
        Some(
            TransactionKind::Void
            | TransactionKind::Refund
            | TransactionKind::PreAuthCompletionVoid,
        ) => add_fen(&mut p.approved_credit_fen, amount_fen),
        _ => {}
    }
}

/// When a fleet stops trading.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    Deadline(Instant),
    /// This many operations in all.
    Operations(u64),
}

/// Runs `terminals` fleet terminals against `addr` (journals under `journals_dir`) until
/// `until`; `tick` sees the progress about five times a second.
pub async fn trade(
    addr: &str,
    journals_dir: &Path,
    terminals: u32,
    timeout_ms: u64,
    until: Until,
    tick: impl Fn(&Progress, Duration) + Send + 'static,
) -> Result<(Vec<Journal>, Arc<Mutex<Progress>>), String> {
    let started = Instant::now();
    let progress = Arc::new(Mutex::new(Progress::default()));
    let budget = Arc::new(std::sync::atomic::AtomicU64::new(match until {
        Until::Operations(n) => n,
        Until::Deadline(_) => u64::MAX,
    }));
    let tmk = SecretKey::from_hex(demo::DEMO_TMK).map_err(|e| e.to_string())?;
    let mut tasks = Vec::new();
    for i in 0..terminals {
        let dir = journals_dir.join(demo::fleet_tid(i));
        // Each terminal its own key-encryption key, as `poskit pos` makes one (DIR/kek;
        // POSKIT_KEK_FILE or POSKIT_KEK when set), so `poskit pos --terminal DIR` opens it.
        let kek = poskit_keystore::KekSource::resolve(None, &dir);
        let cfg = Config {
            tid: demo::fleet_tid(i),
            mid: MID.into(),
            tmk: tmk.clone(),
            response_timeout_ms: timeout_ms,
            reversal_attempts_max: 5,
            fail_after_approval: false,
        };
        let mut journal = Journal::init(&dir, &kek, &cfg, addr).map_err(|e| e.to_string())?;
        let progress = progress.clone();
        let budget = budget.clone();
        let addr = addr.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut rng = knobs::rng(u64::from(i) + 1);
            // Three customers' cards per terminal and one for wrong PINs (the fleet
            // cards), so that no one runs out of money.
            let own = (0..3)
                .map(|k| demo::fleet_pan(i + k * TERMINALS_MAX))
                .collect();
            let cards = Cards {
                own,
                wrong_pin: demo::fleet_pan(i + 3 * TERMINALS_MAX),
                external: demo::scenario("external_issuer").map(|s| s.pan),
            };
            loop {
                match until {
                    Until::Deadline(at) if Instant::now() >= at => break,
                    Until::Operations(_) => {
                        let left = budget.fetch_update(
                            std::sync::atomic::Ordering::Relaxed,
                            std::sync::atomic::Ordering::Relaxed,
                            |n| n.checked_sub(1),
                        );
                        if left.is_err() {
                            break;
                        }
                    }
                    Until::Deadline(_) => {}
                }
                let signed_in = journal
                    .snapshot()
                    .map(|s| s.keys.is_some())
                    .unwrap_or(false);
                let command = if signed_in {
                    let batch = journal.snapshot().map(|s| s.batch).unwrap_or(1);
                    workload::choose(&mut rng, &cards, |kind| {
                        journal.last_approved(kind, batch).ok().flatten()
                    })
                } else {
                    Command::SignIn
                };
                run_one(&mut journal, &addr, command, &progress).await;
                // A cardholder at the counter: a short pause between customers.
                tokio::time::sleep(Duration::from_millis(20 + rng.below(80))).await;
            }
            journal
        }));
    }
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let p = progress.lock().map(|p| p.clone()).unwrap_or_default();
                tick(&p, started.elapsed());
            }
        })
    };
    let mut journals = Vec::new();
    for t in tasks {
        journals.push(t.await.map_err(|e| e.to_string())?);
    }
    ticker.abort();
    Ok((journals, progress))
}

/// Runs one operation of a fleet terminal and records how it ended and how long it took.
async fn run_one(journal: &mut Journal, addr: &str, command: Command, progress: &Mutex<Progress>) {
    let began = Instant::now();
    match driver::run(journal, addr, command).await {
        Ok(o) => {
            let latency_ms = began.elapsed().as_millis() as u64;
            if let Ok(mut p) = progress.lock() {
                record(&mut p, &o, latency_ms);
            }
        }
        Err(_) => {
            if let Ok(mut p) = progress.lock() {
                p.unreachable += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await
        }
    }
}

/// Every terminal signs in if it must, flushes its reversal and advices, and settles
/// (three tries each). Returns (balanced, unbalanced, failures).
pub async fn settle_all(
    journals: &mut [Journal],
    addr: &str,
    progress: &Mutex<Progress>,
) -> Result<(u64, u64, Vec<String>), String> {
    let (mut balanced, mut unbalanced, mut failures) = (0, 0, Vec::new());
    for journal in journals.iter_mut() {
        let (cfg, _) = journal.config().map_err(|e| e.to_string())?;
        let mut settled = None;
        for _attempt in 0..3 {
            if journal.snapshot().map(|s| s.keys.is_none()).unwrap_or(true) {
                let _ = driver::run(journal, addr, Command::SignIn).await;
            }
            let flushed = driver::run(journal, addr, Command::Flush)
                .await
                .map_err(|e| e.to_string())?;
            if let Ok(mut p) = progress.lock() {
                record(&mut p, &flushed, 0);
            }
            if !flushed.approved {
                continue;
            }
            let settle = journal.settle_command().map_err(|e| e.to_string())?;
            let o = driver::run(journal, addr, settle)
                .await
                .map_err(|e| e.to_string())?;
            if o.approved {
                settled = o.settlement;
                break;
            }
        }
        match settled {
            Some((true, _)) => balanced += 1,
            Some((false, _)) => unbalanced += 1,
            None => failures.push(format!("terminal {} could not settle", cfg.tid)),
        }
    }
    Ok((balanced, unbalanced, failures))
}

fn named(journals: &[Journal]) -> impl Iterator<Item = (String, &Journal)> {
    journals
        .iter()
        .map(|j| (j.config().map(|(c, _)| c.tid).unwrap_or_default(), j))
}

/// Runs the demo in `data` for `seconds` with `terminals` terminals; `metrics` is told
/// where the host serves `/metrics` once it listens; `tick` is called about five times a
/// second with the progress so far.
/// The demo evaluates its alert rules more often than a host does by default: it runs
/// for seconds, not days.
const DEMO_EVALUATE_EVERY_MS: u64 = 2_000;

pub async fn run_live(
    data: &Path,
    seconds: u64,
    terminals: u32,
    metrics: impl FnOnce(Option<std::net::SocketAddr>) + Send + 'static,
    tick: impl Fn(&Progress, Duration) + Send + 'static,
) -> Result<LiveReport, String> {
    let terminals = terminals.clamp(1, TERMINALS_MAX);
    let host_dir = DataDir::create(data.join("host")).map_err(|e| e.to_string())?;
    let mut config = HostConfig::default();
    config.limits.issuer_timeout_ms = 500;
    config.faults = FaultPlan::parse(MILD_FAULTS).map_err(|e| e.to_string())?;
    config.admin_listen = Some("127.0.0.1:0".into());
    config.alerts.evaluate_every_ms = DEMO_EVALUATE_EVERY_MS;
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let host_data = host_dir.clone();
    let host = tokio::spawn(async move {
        run::run(
            &host_data,
            config,
            "127.0.0.1:0",
            true,
            async {
                let _ = stop_rx.await;
            },
            move |r| {
                metrics(r.admin_addr);
                let _ = addr_tx.send((r.addr.to_string(), r.shared.clone()));
            },
        )
        .await
        .map_err(|e| e.to_string())
    });
    let (addr, shared) = addr_rx
        .await
        .map_err(|_| "the host did not start".to_owned())?;
    let started = Instant::now();
    let until = Until::Deadline(started + Duration::from_secs(seconds));
    let journals_dir = data.join("terminals");
    let (mut journals, progress) = trade(
        &addr,
        &journals_dir,
        terminals,
        TERMINAL_TIMEOUT_MS,
        until,
        tick,
    )
    .await?;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    // What the plan injected, read before the plan is cleared (a new plan counts afresh).
    let faults: BTreeMap<String, u64> = shared
        .faults
        .lock()
        .map(|f| {
            f.iter()
                .flat_map(|state| state.fired())
                .filter(|(_, n)| *n > 0)
                .map(|(name, n)| (name.to_owned(), n))
                .collect()
        })
        .unwrap_or_default();
    // The network heals: clear the fault plan, then every terminal settles.
    {
        let conn = host_dir.open_store().map_err(|e| e.to_string())?;
        let version = writer::store_fault_plan(&conn, "").map_err(|e| e.to_string())?;
        for _ in 0..40 {
            if writer::stored_fault_plan(&conn)
                .ok()
                .flatten()
                .is_some_and(|(_, applied, _)| applied == version)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (balanced, unbalanced, failures) = settle_all(&mut journals, &addr, &progress).await?;
    let _ = stop_tx.send(());
    host.await.map_err(|e| e.to_string())??;
    let conn = host_dir.open_store().map_err(|e| e.to_string())?;
    let settled = (balanced, unbalanced, failures);
    let mut report = checked(
        &conn,
        &journals,
        &progress,
        elapsed_ms,
        settled,
        &host_dir.path,
        &journals_dir,
    );
    report.faults = faults;
    report.recon = Some(reconcile_today(&host_dir));
    Ok(report)
}

/// Host transactions this close to the cut-off that the switch lacks wait for the next day.
const NEAR_CUT_MS: i64 = 10 * 60 * 1000;

/// The switch writes today's clearing files into the host's `clearing/` and the day is
/// reconciled against them (the day is still open: the run says so).
fn reconcile_today(dir: &DataDir) -> Result<poskit_recon::run::Report, String> {
    use poskit_domain::calendar::ClearingCut;
    let cut = ClearingCut::default();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let day = cut.day_of(now_ms);
    let mut conn = dir.open_store().map_err(|e| e.to_string())?;
    let clearing = dir.path.join("clearing");
    poskit_host::switch::export_day(&conn, day, &clearing).map_err(|e| e.to_string())?;
    let state = poskit_recon::state::open(&dir.path).map_err(|e| e.to_string())?;
    let opts = poskit_recon::run::Options {
        day,
        clearing_dir: clearing,
        cut,
        acquirer: poskit_host::engine::EngineConfig::default().acquirer_code,
        near_cut_ms: NEAR_CUT_MS,
        keep_matched: false,
        now_ms,
    };
    poskit_recon::run::run(&mut conn, &state, &opts).map_err(|e| e.to_string())
}

/// The real-network mode of `poskit sim`: fleet terminals over TCP through a fault proxy
/// to a separate host process (started with `--demo`) whose data directory is `host_data`.
pub async fn run_network(
    host: &crate::proxy::Upstream,
    host_data: &Path,
    journals_dir: &Path,
    terminals: u32,
    operations: u64,
    seed: u64,
    knobs: crate::knobs::Knobs,
) -> Result<(LiveReport, BTreeMap<String, u64>), String> {
    let terminals = terminals.clamp(1, TERMINALS_MAX);
    // A host that is not there is said at once, not found out by every terminal's
    // timeouts and reported as violations.
    // With TLS the probe does the handshake: a wrong CA or name is said here too.
    let host_addr = &host.addr;
    let connect = host.connect();
    match tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), connect).await {
        Ok(Ok(_probe)) => {}
        Ok(Err(e)) => return Err(format!("cannot connect to {host_addr}: {e}")),
        Err(_) => {
            return Err(format!(
                "cannot connect to {host_addr}: no answer within {} ms",
                CONNECT_TIMEOUT_MS
            ));
        }
    }
    let proxy = crate::proxy::Proxy::start(host.clone(), knobs.clone(), seed)
        .await
        .map_err(|e| format!("fault proxy: {e}"))?;
    let started = Instant::now();
    let timeout_ms = knobs.timeout_ms.min(2_000);
    let (mut journals, progress) = trade(
        &proxy.addr,
        journals_dir,
        terminals,
        timeout_ms,
        Until::Operations(operations),
        |_, _| {},
    )
    .await?;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    proxy.heal();
    let (balanced, unbalanced, failures) =
        settle_all(&mut journals, &proxy.addr, &progress).await?;
    let store = DataDir::existing(host_data);
    let conn = store.open_store().map_err(|e| e.to_string())?;
    let faults = proxy.faults.lock().map(|f| f.clone()).unwrap_or_default();
    let settled = (balanced, unbalanced, failures);
    Ok((
        checked(
            &conn,
            &journals,
            &progress,
            elapsed_ms,
            settled,
            host_data,
            journals_dir,
        ),
        faults,
    ))
}

/// The report: the fleet's progress, its settlements, and the checker's findings.
fn checked(
    host: &rusqlite::Connection,
    journals: &[Journal],
    progress: &Mutex<Progress>,
    elapsed_ms: u64,
    (balanced, unbalanced, failures): (u64, u64, Vec<String>),
    host_dir: &Path,
    journals_dir: &Path,
) -> LiveReport {
    let (violations, breaks) = crate::check::compare(host, named(journals), MID);
    let reversals_left = journals
        .iter()
        .filter(|j| j.snapshot().is_ok_and(|s| s.reversal.is_some()))
        .count() as u64;
    LiveReport {
        settled: journals.iter().filter_map(settled_batch).collect(),
        reversals_left,
        faults: BTreeMap::new(),
        progress: progress.lock().map(|p| p.clone()).unwrap_or_default(),
        elapsed_ms,
        settlements_balanced: balanced,
        settlements_unbalanced: unbalanced,
        settlement_failures: failures,
        breaks,
        violations,
        host_dir: host_dir.to_path_buf(),
        terminal_dirs: journals
            .iter()
            .filter_map(|j| j.config().ok())
            .map(|(c, _)| journals_dir.join(c.tid))
            .collect(),
        recon: None,
    }
}

/// The last batch a terminal closed, if it settled.
fn settled_batch(journal: &Journal) -> Option<Settled> {
    let (cfg, _) = journal.config().ok()?;
    let last = journal.batches().ok()?.pop()?;
    Some(Settled {
        tid: cfg.tid,
        debit_count: last.totals.debit_count,
        debit_fen: last.totals.debit_fen.fen(),
        credit_count: last.totals.credit_count,
        credit_fen: last.totals.credit_fen.fen(),
        balanced: last.balanced,
    })
}
