//! `poskit bench flood`: the junk flood of issue 17 against a `poskit host --demo` process
//! on loopback, and what it costs the host. Attacking connections (a thread each) send
//! frames the host cannot read and connect again whenever it closes them, for a fixed
//! time; meanwhile a real terminal sells, each sale on a new connection from the same
//! address as the flood (127.0.0.1: terminals behind the attacker's NAT gateway). Measured:
//! the host process's CPU (user + system time from `/proc/PID/stat`) per wall second, the
//! connections and frames the attackers got through, the ledger rows the junk added (must
//! be 0), the bytes the host logged, and the terminal's sale latency before and during the
//! flood. `--compare` measures another poskit binary (the build before a change) in turn
//! with this one, so that both figures come from one run on the same machine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use poskit_host::client::{CardData, RequestSpec, TestTerminal};
use poskit_host::{DataDir, demo};
use serde_json::json;

use super::api::percentiles;
use crate::fail::usage;

#[derive(Debug, clap::Args)]
pub struct FloodArgs {
    /// Attacking connections at once, a thread each (0 to 64; 0: no flood, the terminal's
    /// sales alone at the same pace, for comparison).
    #[arg(long, default_value_t = 4)]
    attackers: u32,
    /// How long an attacker waits for an answer before it drops the connection and
    /// connects again; 0: it sends one frame and closes without reading. Without it an
    /// attacker waits until the host answers or closes (the flood of issue 17).
    #[arg(long, value_name = "MS")]
    patience_ms: Option<u64>,
    /// How long each flood lasts, in seconds (1 to 600).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Measurements of each binary, taken in turn (1 to 20).
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Another poskit binary (the build before a change), measured in turn with this one;
    /// its host runs without `--config`.
    #[arg(long, value_name = "POSKIT")]
    compare: Option<PathBuf>,
    /// Host configuration for this binary's host (`poskit host --config`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print JSON: one object per measurement.
    #[arg(long)]
    json: bool,
}

/// A frame the host cannot read: length, TPDU, header and a sale's MTI, then a bitmap
/// whose fields are not there. Answered 30, recorded nowhere (a stranger's).
const JUNK: [u8; 23] = [
    0x00, 0x15, 0x60, 0x00, 0x03, 0x00, 0x00, 0x60, 0x31, 0x00, 0x31, 0x00, 0x00, 0x02, 0x00, b'J',
    b'U', b'N', b'K', b'!', b'!', b'!', b'!',
];
/// The measuring terminal (a fleet terminal of the demo data).
const TERMINAL: u32 = 0;
/// Sales before the flood: the terminal's latency on a quiet host.
const QUIET_SALES: usize = 10;
/// A sale every so often during the flood.
const SALE_EVERY_MS: u64 = 200;
/// How often a waiting attacker looks whether the flood is over.
const STOP_POLL_MS: u64 = 100;
/// A host must start, and stop on SIGTERM, within this time.
const HOST_WAIT_MS: u64 = 30_000;

/// What the attackers got through, counted by them.
#[derive(Default)]
struct Tally {
    connections: AtomicU64,
    frames: AtomicU64,
    answers: AtomicU64,
}

/// One flood against one host.
struct Measured {
    label: String,
    seconds: f64,
    host_cpu_seconds: f64,
    connections: u64,
    frames: u64,
    answers: u64,
    junk_rows: i64,
    log_bytes: u64,
    quiet_ms: Vec<f64>,
    flood_ms: Vec<f64>,
    sales_failed: u64,
    /// What the first sale that was not approved got.
    first_failure: Option<String>,
}

pub fn run(a: FloodArgs) -> anyhow::Result<ExitCode> {
    let ok = a.attackers <= 64 && (1..=600).contains(&a.seconds) && (1..=20).contains(&a.rounds);
    if !ok {
        return Err(usage(
            "--attackers: 0 to 64; --seconds: 1 to 600; --rounds: 1 to 20",
        ));
    }
    let this = std::env::current_exe().context("this binary's path")?;
    let mut hosts = vec![("this".to_owned(), this, a.config.clone())];
    if let Some(other) = &a.compare {
        anyhow::ensure!(
            other.is_file(),
            "--compare {}: no such file",
            other.display()
        );
        hosts.push((format!("compare {}", other.display()), other.clone(), None));
    }
    let mut all = Vec::new();
    for _ in 0..a.rounds {
        for (label, binary, config) in &hosts {
            let m = measure(label, binary, config.as_deref(), &a)?;
            if !a.json {
                outln!("{}", line(&m))?;
            }
            all.push(m);
        }
    }
    if a.json {
        let list: Vec<_> = all.iter().map(to_json).collect();
        outln!("{}", serde_json::Value::Array(list))?;
    } else {
        summary(&a, &hosts, &all)?;
    }
    let clean = all.iter().all(|m| m.junk_rows == 0);
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One flood against a host of `binary`, from its start to its stop.
fn measure(
    label: &str,
    binary: &Path,
    config: Option<&Path>,
    a: &FloodArgs,
) -> anyhow::Result<Measured> {
    let temp = tempfile::tempdir().context("temporary directory")?;
    let mut host = HostChild::start(binary, config, temp.path())?;
    let addr = host.addr.clone();
    let mut t = TestTerminal::connect(
        &addr,
        &demo::fleet_tid(TERMINAL),
        demo::MID_MAIN,
        demo::DEMO_TMK,
        Duration::from_secs(5),
    )?;
    anyhow::ensure!(t.sign_in()?.code() == "00", "the terminal's sign-in");
    let quiet = sell(&mut t, &addr, Instant::now(), Some(QUIET_SALES));
    let rows_before = junk_rows(&host.data, &t.tid)?;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let patience = a.patience_ms.map(Duration::from_millis);
    let target: SocketAddr = addr.parse().context("the host's address")?;
    let cpu_before = host.cpu_ns().context("the host's CPU time")?;
    let started = Instant::now();
    let attackers: Vec<_> = (0..a.attackers)
        .map(|_| {
            let (tally, stop) = (tally.clone(), stop.clone());
            std::thread::spawn(move || attack(target, patience, &stop, &tally))
        })
        .collect();
    let until = started + Duration::from_secs(a.seconds);
    let flood = sell(&mut t, &addr, until, None);
    stop.store(true, Ordering::Relaxed);
    let host_cpu_ns = host
        .cpu_ns()
        .context("the host's CPU time")?
        .saturating_sub(cpu_before);
    let seconds = started.elapsed().as_secs_f64();
    for attacker in attackers {
        let _ = attacker.join();
    }
    let junk_rows = junk_rows(&host.data, &t.tid)? - rows_before;
    drop(t);
    host.stop()?;
    let log_bytes = std::fs::metadata(&host.log).map_or(0, |m| m.len());
    Ok(Measured {
        label: label.to_owned(),
        seconds,
        host_cpu_seconds: host_cpu_ns as f64 / 1e9,
        connections: tally.connections.load(Ordering::Relaxed),
        frames: tally.frames.load(Ordering::Relaxed),
        answers: tally.answers.load(Ordering::Relaxed),
        junk_rows,
        log_bytes,
        quiet_ms: quiet.latencies_ms,
        flood_ms: flood.latencies_ms,
        sales_failed: flood.failed + quiet.failed,
        first_failure: quiet.first_failure.or(flood.first_failure),
    })
}

/// A terminal's sales: the latencies of those approved, and those not.
#[derive(Default)]
struct Sales {
    /// Connecting included.
    latencies_ms: Vec<f64>,
    failed: u64,
    first_failure: Option<String>,
}

/// Sales of the terminal, each on a new connection, until `until` or `count` of them.
fn sell(t: &mut TestTerminal, addr: &str, until: Instant, count: Option<usize>) -> Sales {
    let card = CardData::Manual {
        pan: demo::fleet_pan(TERMINAL),
        expiry: "3012".into(),
    };
    let sale = RequestSpec::sale(card, 1, Some(demo::DEMO_PIN));
    let mut sales = Sales::default();
    loop {
        let done = match count {
            Some(n) => sales.latencies_ms.len() + sales.failed as usize >= n,
            None => Instant::now() >= until,
        };
        if done {
            return sales;
        }
        std::thread::sleep(Duration::from_millis(SALE_EVERY_MS / 10));
        let started = Instant::now();
        let answered = t
            .reconnect(addr, Duration::from_secs(5))
            .and_then(|()| t.send(&sale));
        let failure = match answered {
            Ok(r) if r.code() == "00" => {
                sales
                    .latencies_ms
                    .push(started.elapsed().as_secs_f64() * 1e3);
                None
            }
            Ok(r) => Some(format!("answered {}", r.code())),
            Err(e) => Some(e.to_string()),
        };
        if let Some(failure) = failure {
            sales.failed += 1;
            sales.first_failure.get_or_insert(failure);
        }
        if count.is_none() {
            std::thread::sleep(Duration::from_millis(SALE_EVERY_MS));
        }
    }
}

/// One attacker until `stop`: connect, send junk, read the answer, send junk again; connect
/// again whenever the host closes (or, past `patience`, when it has not answered).
fn attack(addr: SocketAddr, patience: Option<Duration>, stop: &AtomicBool, tally: &Tally) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        tally.connections.fetch_add(1, Ordering::Relaxed);
        if patience.is_some_and(|p| p.is_zero()) {
            // Hit and run: one frame, then close without reading.
            if s.write_all(&JUNK).is_ok() {
                tally.frames.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        let _ = s.set_read_timeout(Some(Duration::from_millis(STOP_POLL_MS)));
        converse(&mut s, patience, stop, tally);
    }
}

/// Junk on one connection until the host closes it, `patience` runs out or `stop`.
fn converse(s: &mut TcpStream, patience: Option<Duration>, stop: &AtomicBool, tally: &Tally) {
    let mut buf = [0u8; 1024];
    'frames: loop {
        if s.write_all(&JUNK).is_err() {
            return;
        }
        tally.frames.fetch_add(1, Ordering::Relaxed);
        let asked = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            match s.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {
                    tally.answers.fetch_add(1, Ordering::Relaxed);
                    continue 'frames;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if patience.is_some_and(|p| asked.elapsed() >= p) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        return;
    }
}

/// Ledger rows of other terminals than `tid` (the junk's, if any).
fn junk_rows(data: &Path, tid: &str) -> anyhow::Result<i64> {
    let conn = DataDir::existing(data).open_store()?;
    let n = conn.query_row(
        "SELECT count(*) FROM transactions WHERE tid IS NOT ?1",
        [tid],
        |r| r.get(0),
    )?;
    Ok(n)
}

/// A `poskit host --demo` process on loopback, its log in a file.
struct HostChild {
    child: Child,
    addr: String,
    data: PathBuf,
    log: PathBuf,
    /// Kept open: the host may print again.
    _stdout: BufReader<ChildStdout>,
}

impl HostChild {
    fn start(binary: &Path, config: Option<&Path>, dir: &Path) -> anyhow::Result<HostChild> {
        let (data, log) = (dir.join("data"), dir.join("host.log"));
        let mut cmd = Command::new(binary);
        cmd.args([
            "host",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--demo")
        .arg("--data")
        .arg(&data);
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        let mut child = cmd
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).context("the host's log file")?)
            .spawn()
            .with_context(|| format!("{} host", binary.display()))?;
        let mut stdout = BufReader::new(child.stdout.take().context("the host's output")?);
        let mut first = String::new();
        stdout.read_line(&mut first)?;
        let addr = first
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned);
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!(
                "the host did not start: {first:?} (its log: {})",
                log.display()
            );
        };
        Ok(HostChild {
            child,
            addr,
            data,
            log,
            _stdout: stdout,
        })
    }

    fn cpu_ns(&self) -> Option<u64> {
        super::cpu_ns_of(&format!("/proc/{}/stat", self.child.id()))
    }

    /// SIGTERM, then the host's drain; killed if it has not ended in time.
    fn stop(&mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_millis(HOST_WAIT_MS);
        while Instant::now() < until {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        anyhow::bail!("the host did not stop within {HOST_WAIT_MS} ms of SIGTERM")
    }
}

impl Drop for HostChild {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn line(m: &Measured) -> String {
    let (q50, _, _) = percentiles(m.quiet_ms.clone());
    let (f50, f99, fmax) = percentiles(m.flood_ms.clone());
    let failure = m
        .first_failure
        .as_ref()
        .map_or(String::new(), |f| format!(" (first not approved: {f})"));
    format!(
        "{}: host CPU {:.3} cores; {:.0} connections/s, {:.0} frames/s, {:.0} answers/s; \
         junk rows {}; log {} bytes; sales {} approved, {} not{failure}, ms p50 {:.1} p99 {:.1} \
         max {:.1} (quiet p50 {:.1})",
        m.label,
        m.host_cpu_seconds / m.seconds,
        m.connections as f64 / m.seconds,
        m.frames as f64 / m.seconds,
        m.answers as f64 / m.seconds,
        m.junk_rows,
        m.log_bytes,
        m.flood_ms.len(),
        m.sales_failed,
        f50,
        f99,
        fmax,
        q50,
    )
}

fn to_json(m: &Measured) -> serde_json::Value {
    let (q50, q99, qmax) = percentiles(m.quiet_ms.clone());
    let (f50, f99, fmax) = percentiles(m.flood_ms.clone());
    json!({
        "host": m.label, "seconds": m.seconds,
        "host_cpu_seconds": m.host_cpu_seconds,
        "host_cores": m.host_cpu_seconds / m.seconds,
        "connections": m.connections, "frames": m.frames, "answers": m.answers,
        "connections_per_second": m.connections as f64 / m.seconds,
        "junk_rows": m.junk_rows, "log_bytes": m.log_bytes,
        "sales": {"approved": m.flood_ms.len(), "not_approved": m.sales_failed,
                  "p50_ms": f50, "p99_ms": f99, "max_ms": fmax},
        "quiet_sales": {"p50_ms": q50, "p99_ms": q99, "max_ms": qmax},
        "first_failure": m.first_failure,
    })
}

/// The median of each binary's measurements.
fn summary(
    a: &FloodArgs,
    hosts: &[(String, PathBuf, Option<PathBuf>)],
    all: &[Measured],
) -> anyhow::Result<()> {
    let waits = match a.patience_ms {
        None => "each waiting for its answer or the close".to_owned(),
        Some(0) => "each sending one frame and closing".to_owned(),
        Some(ms) => format!("each waiting {ms} ms at most"),
    };
    outln!(
        "junk flood: {} attackers {waits}, {} s, {} round(s); medians:",
        a.attackers,
        a.seconds,
        a.rounds
    )?;
    for (label, _, _) in hosts {
        let of: Vec<&Measured> = all.iter().filter(|m| &m.label == label).collect();
        let median = |f: &dyn Fn(&Measured) -> f64| {
            let (m, _, _) = percentiles(of.iter().map(|m| f(m)).collect());
            m
        };
        outln!(
            "  {label}: host CPU {:.3} cores, {:.0} connections/s, sale p50 {:.1} ms, junk rows {}",
            median(&|m| m.host_cpu_seconds / m.seconds),
            median(&|m| m.connections as f64 / m.seconds),
            median(&|m| percentiles(m.flood_ms.clone()).0),
            of.iter().map(|m| m.junk_rows).sum::<i64>(),
        )?;
    }
    Ok(())
}
