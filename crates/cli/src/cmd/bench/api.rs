//! `poskit bench api`: "was the customer charged?" through the HTTP API on a big ledger —
//! `--clients` clients at once, each asking `GET /api/v1/lookup?rrn=` of random
//! transactions over a kept-alive connection, while a host process on the same data
//! directory serves terminals selling one at a time. The target: p99 ≤ 50 ms with
//! 50 clients on ten million transactions.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use poskit_domain::rand::SplitMix64;
use poskit_host::client::{CardData, RequestSpec, TestTerminal};
use poskit_host::config::HostConfig;
use poskit_host::{DataDir, demo, run};
use serde_json::json;

use super::day;
use crate::fail::usage;

#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// Transactions in the ledger (1 000 to 50 000 000).
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// API clients asking at once (1 to 200).
    #[arg(long, default_value_t = 50)]
    clients: u32,
    /// Terminals selling meanwhile, one sale at a time each (0 to 16).
    #[arg(long, default_value_t = 2)]
    terminals: u32,
    /// How long, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// A data directory generated before (`bench lookup --keep`) instead of a new one.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Percentiles of latencies in ms: (p50, p99, max).
pub(super) fn percentiles(mut ms: Vec<f64>) -> (f64, f64, f64) {
    if ms.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99), at(1.0))
}

pub fn run(a: ApiArgs) -> anyhow::Result<ExitCode> {
    let ok = (1_000..=50_000_000).contains(&a.rows)
        && (1..=200).contains(&a.clients)
        && a.terminals <= 16
        && (1..=600).contains(&a.seconds);
    if !ok {
        return Err(usage(
            "--rows: 1000 to 50000000; --clients: 1 to 200; --terminals: 0 to 16; --seconds: 1 to 600",
        ));
    }
    let temp = tempfile::tempdir().context("temporary directory")?;
    let dir = day::ledger_dir(a.dir.as_ref(), a.rows, temp.path())?;
    let conn = poskit_web::users::open(&dir)?;
    let name = format!("bench-{}", std::process::id());
    let password = poskit_web::users::random_password()?;
    poskit_web::users::add(
        &conn,
        &name,
        poskit_web::users::Role::Operator,
        None,
        &password,
    )?;
    let token = poskit_web::users::new_token(&conn, &name)?;
    let rrns = Arc::new(sample_rrns(&dir, a.rows)?);
    let (host_addr, api_addr, stop) = start(&dir)?;
    let until = Instant::now() + Duration::from_secs(a.seconds);
    let sellers: Vec<_> = (0..a.terminals)
        .map(|i| {
            let addr = host_addr.clone();
            std::thread::spawn(move || sell(&addr, i, until))
        })
        .collect();
    let askers: Vec<_> = (0..a.clients)
        .map(|i| {
            let (api, token, rrns) = (api_addr.clone(), token.clone(), rrns.clone());
            std::thread::spawn(move || ask(&api, &token, &rrns, i, until))
        })
        .collect();
    let mut lookups = Vec::new();
    for t in askers {
        lookups.extend(
            t.join()
                .map_err(|_| anyhow::anyhow!("a client panicked"))??,
        );
    }
    let mut sales = Vec::new();
    for t in sellers {
        sales.extend(
            t.join()
                .map_err(|_| anyhow::anyhow!("a terminal panicked"))??,
        );
    }
    stop.store(true, Ordering::Relaxed);
    let _ = poskit_web::users::remove(&mut poskit_web::users::open(&dir)?, &name);
    report(&a, lookups, sales)
}

fn report(a: &ApiArgs, lookups: Vec<f64>, sales: Vec<f64>) -> anyhow::Result<ExitCode> {
    let (n_lookups, n_sales) = (lookups.len(), sales.len());
    let (l50, l99, lmax) = percentiles(lookups);
    let (s50, s99, smax) = percentiles(sales);
    let out = json!({
        "rows": a.rows, "clients": a.clients, "seconds": a.seconds,
        "lookups": {"count": n_lookups, "per_second": n_lookups as f64 / a.seconds as f64,
                    "p50_ms": l50, "p99_ms": l99, "max_ms": lmax},
        "sales_meanwhile": {"terminals": a.terminals, "count": n_sales,
                            "p50_ms": s50, "p99_ms": s99, "max_ms": smax},
    });
    if a.json {
        outln!("{out}")?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "API lookups by RRN: {n_lookups} by {} clients in {} s on {} rows: p50 {l50:.2} ms, p99 {l99:.2} ms, max {lmax:.2} ms",
        a.clients,
        a.seconds,
        a.rows
    )?;
    outln!(
        "meanwhile {} terminals sold {n_sales} times: p50 {s50:.2} ms, p99 {s99:.2} ms, max {smax:.2} ms",
        a.terminals
    )?;
    Ok(ExitCode::SUCCESS)
}

/// A host (with the demo terminals) and the API on `dir`, in a thread of their own, until
/// the flag is set: (terminal address, API address, the flag).
fn start(dir: &std::path::Path) -> anyhow::Result<(String, String, Arc<AtomicBool>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<(String, String)>();
    let (dir, flag) = (DataDir::create(dir)?, stop.clone());
    std::thread::spawn(move || -> anyhow::Result<()> {
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(async move {
            let api = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let api_addr = api.local_addr()?.to_string();
            let state = poskit_web::AppState::new(dir.path.clone(), false);
            tokio::spawn(poskit_web::serve(api, state, None, std::future::pending()));
            let config = HostConfig::default();
            let stopped = async move {
                while !flag.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            };
            run::run(&dir, config, "127.0.0.1:0", true, stopped, move |r| {
                let _ = tx.send((r.addr.to_string(), api_addr));
            })
            .await?;
            Ok(())
        })
    });
    let (host, api) = rx
        .recv_timeout(Duration::from_secs(120))
        .context("the host did not start")?;
    Ok((host, api, stop))
}

/// One terminal selling a fen at a time until `until`: each sale's latency in ms.
fn sell(addr: &str, i: u32, until: Instant) -> anyhow::Result<Vec<f64>> {
    let mut t = TestTerminal::connect(
        addr,
        &demo::fleet_tid(i),
        demo::MID_MAIN,
        demo::DEMO_TMK,
        Duration::from_secs(30),
    )?;
    anyhow::ensure!(t.sign_in()?.code() == "00", "sign-in of {}", t.tid);
    let card = CardData::Track2(format!("{}=30121010000000000", demo::fleet_pan(i)));
    let spec = RequestSpec::sale(card, 1, Some(demo::DEMO_PIN));
    let mut out = Vec::new();
    while Instant::now() < until {
        let started = Instant::now();
        let r = t.send(&spec)?;
        anyhow::ensure!(r.code() == "00", "sale at {}: {}", t.tid, r.code());
        out.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

/// Transactions to ask for: the RRNs of up to [`SAMPLE_MAX`] random rows that have one.
fn sample_rrns(dir: &std::path::Path, rows: u64) -> anyhow::Result<Vec<String>> {
    let conn = poskit_host::store::sqlite::open(dir).context("host database")?;
    let mut rng = SplitMix64::new(20_261_204);
    let mut out = Vec::new();
    for _ in 0..SAMPLE_MAX {
        let id = 1 + rng.below(rows) as i64;
        if let Some(rrn) = poskit_host::store::lookup::by_id(&conn, id)?.and_then(|t| t.rrn) {
            out.push(rrn);
        }
    }
    anyhow::ensure!(!out.is_empty(), "no transaction with an RRN in the ledger");
    Ok(out)
}

/// RRNs sampled for the clients to ask for.
const SAMPLE_MAX: usize = 10_000;

/// One API client asking for random transactions by RRN until `until`: each answer's
/// latency in ms (every transaction asked for must be found).
fn ask(
    api: &str,
    token: &str,
    rrns: &[String],
    i: u32,
    until: Instant,
) -> anyhow::Result<Vec<f64>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut rng = SplitMix64::new(0x5eed + u64::from(i));
    let mut out = Vec::new();
    let auth = format!("Bearer {token}");
    while Instant::now() < until {
        let rrn = &rrns[rng.below(rrns.len() as u64) as usize];
        let started = Instant::now();
        let mut r = agent
            .get(format!("http://{api}/api/v1/lookup?rrn={rrn}"))
            .header("authorization", &auth)
            .call()?;
        let body: serde_json::Value = r.body_mut().read_json()?;
        out.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            body["matches"].as_array().is_some_and(|m| !m.is_empty()),
            "RRN {rrn} not found: {body}"
        );
    }
    Ok(out)
}
