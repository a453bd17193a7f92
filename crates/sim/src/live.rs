//! The live demo: a real host on loopback (SQLite in a data directory), a fleet of virtual
//! terminals over TCP (the terminal engine and its driver, journals on disk), mild faults
//! from the host's fault plan, cardholders who make the usual mistakes. Afterwards every
//! terminal settles and the checker compares the journals with the ledger.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poskit_host::config::HostConfig;
use poskit_host::faults::FaultPlan;
use poskit_host::{DataDir, demo, run, writer};
use poskit_security::SecretKey;
use poskit_terminal::driver;
use poskit_terminal::engine::{Command, Config, Outcome, ReversalState};
use poskit_terminal::journal::Journal;

use crate::knobs::Rng;
use crate::workload::{self, Cards};

/// Terminals the demo may run (the demo data's fleet).
pub const TERMINALS_MAX: u32 = demo::FLEET_TERMINALS;
/// How long a virtual terminal waits for an answer before it reverses.
pub const TERMINAL_TIMEOUT_MS: u64 = 1_500;

const MID: &str = "898310048160001";

/// The host's fault plan during the demo: what a shop network does on a bad day.
pub const MILD_FAULTS: &str = r#"
seed = 20261201
[[rules]]
name = "answer lost on the way back"
kind = "sale"
reversal = false
action = "drop"
probability = 0.02
[[rules]]
name = "answer later than the terminal waits"
kind = "sale"
reversal = false
action = "delay"
delay_ms = 2000
probability = 0.01
[[rules]]
name = "line noise on an approval"
action = "corrupt-mac"
probability = 0.005
[[rules]]
name = "connection dropped"
action = "close"
probability = 0.005
[[rules]]
name = "issuer slow to answer"
kind = "sale"
reversal = false
action = "issuer-timeout"
probability = 0.005
"#;

/// What the demo did, for the report.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub transactions: u64,
    pub approved: u64,
    pub declined: BTreeMap<String, u64>,
    pub reversals_done: u64,
    pub reversals_pending: u64,
    pub reversals_failed: u64,
}

#[derive(Clone, Debug)]
pub struct LiveReport {
    pub progress: Progress,
    pub elapsed_ms: u64,
    pub settlements_balanced: u64,
    pub settlements_unbalanced: u64,
    pub settlement_failures: Vec<String>,
    pub breaks: Vec<String>,
    pub violations: Vec<String>,
    pub host_dir: PathBuf,
    pub terminal_dirs: Vec<PathBuf>,
}

fn record(p: &mut Progress, o: &Outcome) {
    match o.reversal {
        ReversalState::Done => p.reversals_done += 1,
        ReversalState::Pending => p.reversals_pending += 1,
        ReversalState::Failed => p.reversals_failed += 1,
        ReversalState::None => {}
    }
    if o.operation == "sign-in" || o.operation == "settle" || o.operation == "flush" {
        return;
    }
    p.transactions += 1;
    if o.approved {
        p.approved += 1;
    } else {
        *p.declined.entry(o.code.clone()).or_default() += 1;
    }
}

/// Runs the demo in `data` for `seconds` with `terminals` terminals; `tick` is called
/// about five times a second with the progress so far.
pub async fn run_live(
    data: &Path,
    seconds: u64,
    terminals: u32,
    tick: impl Fn(&Progress, Duration) + Send + 'static,
) -> Result<LiveReport, String> {
    let terminals = terminals.clamp(1, TERMINALS_MAX);
    let host_dir = DataDir::create(data.join("host")).map_err(|e| e.to_string())?;
    let mut config = HostConfig::default();
    config.limits.issuer_timeout_ms = 500;
    config.faults = FaultPlan::parse(MILD_FAULTS).map_err(|e| e.to_string())?;
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
                let _ = addr_tx.send(r.addr.to_string());
            },
        )
        .await
        .map_err(|e| e.to_string())
    });
    let addr = addr_rx
        .await
        .map_err(|_| "the host did not start".to_owned())?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let progress = Arc::new(Mutex::new(Progress::default()));
    let tmk = SecretKey::from_hex(demo::DEMO_TMK).map_err(|e| e.to_string())?;
    let mut tasks = Vec::new();
    let mut terminal_dirs = Vec::new();
    for i in 0..terminals {
        let dir = data.join("terminals").join(demo::fleet_tid(i));
        terminal_dirs.push(dir.clone());
        let cfg = Config {
            tid: demo::fleet_tid(i),
            mid: MID.into(),
            tmk: tmk.clone(),
            response_timeout_ms: TERMINAL_TIMEOUT_MS,
            reversal_attempts_max: 5,
            fail_after_approval: false,
        };
        let mut journal = Journal::init(&dir, &cfg, &addr).map_err(|e| e.to_string())?;
        let progress = progress.clone();
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(u64::from(i) + 1);
            // Three customers' cards per terminal and one for wrong PINs (the fleet cards),
            // so that no one runs out of money in a demo.
            let own = (0..3)
                .map(|k| demo::fleet_pan(i + k * TERMINALS_MAX))
                .collect();
            let cards = Cards {
                own,
                wrong_pin: demo::fleet_pan(i + 3 * TERMINALS_MAX),
            };
            while Instant::now() < deadline {
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
                match driver::run(&mut journal, &addr, command).await {
                    Ok(o) => {
                        if let Ok(mut p) = progress.lock() {
                            record(&mut p, &o);
                        }
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
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
                if Instant::now() >= deadline {
                    break;
                }
            }
        })
    };
    let mut journals = Vec::new();
    for t in tasks {
        journals.push(t.await.map_err(|e| e.to_string())?);
    }
    let _ = ticker.await;
    let elapsed_ms = started.elapsed().as_millis() as u64;

    // The network heals: clear the fault plan, then every terminal settles (reversals and
    // advices first).
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
    let mut report = LiveReport {
        progress: Progress::default(),
        elapsed_ms,
        settlements_balanced: 0,
        settlements_unbalanced: 0,
        settlement_failures: Vec::new(),
        breaks: Vec::new(),
        violations: Vec::new(),
        host_dir: host_dir.path.clone(),
        terminal_dirs,
    };
    for journal in &mut journals {
        let (cfg, _) = journal.config().map_err(|e| e.to_string())?;
        let tid = cfg.tid.clone();
        let mut settled = None;
        for _attempt in 0..3 {
            if journal.snapshot().map(|s| s.keys.is_none()).unwrap_or(true) {
                let _ = driver::run(journal, &addr, Command::SignIn).await;
            }
            let flushed = driver::run(journal, &addr, Command::Flush)
                .await
                .map_err(|e| e.to_string())?;
            if let Ok(mut p) = progress.lock() {
                record(&mut p, &flushed);
            }
            if !flushed.approved {
                continue;
            }
            let settle = journal.settle_command().map_err(|e| e.to_string())?;
            let o = driver::run(journal, &addr, settle)
                .await
                .map_err(|e| e.to_string())?;
            if o.approved {
                settled = o.settlement;
                break;
            }
        }
        match settled {
            Some((true, _)) => report.settlements_balanced += 1,
            Some((false, _)) => report.settlements_unbalanced += 1,
            None => report
                .settlement_failures
                .push(format!("terminal {tid} could not settle")),
        }
    }
    let _ = stop_tx.send(());
    host.await.map_err(|e| e.to_string())??;
    report.progress = progress.lock().map(|p| p.clone()).unwrap_or_default();
    let conn = host_dir.open_store().map_err(|e| e.to_string())?;
    let named = journals
        .iter()
        .map(|j| (j.config().map(|(c, _)| c.tid).unwrap_or_default(), j));
    let (violations, breaks) = crate::check::compare(&conn, named, MID);
    report.violations = violations;
    report.breaks = breaks;
    Ok(report)
}
