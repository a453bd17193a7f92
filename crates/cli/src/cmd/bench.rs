//! `poskit bench host`: durable authorizations per second and their latency, over
//! loopback, with MAC and PIN verification: a real host (SQLite, `synchronous = FULL`, group
//! commit) in this process and a load generator of signed-in terminals on threads.
//! `poskit bench recon` (`bench/recon.rs`): one generated clearing day reconciled.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use serde_json::json;

use poskit_host::client::{CardData, RequestSpec, TestTerminal};
use poskit_host::config::HostConfig;
use poskit_host::writer::Shared;
use poskit_host::{DataDir, demo, run};
use poskit_keystore::tls::ClientFiles;

use crate::fail::usage;

mod api;
mod day;
mod flood;
mod lookup;
mod recon;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Sales per second and latency of the host over loopback.
    Host(HostArgs),
    /// Reconciliation of one generated clearing day: time, peak memory, and the injected
    /// breaks found exactly (exit 1 if not).
    Recon(recon::ReconArgs),
    /// How long `poskit lookup` takes on a generated ledger, each way in.
    Lookup(lookup::LookupArgs),
    /// Lookups through the HTTP API by many clients at once on a generated ledger, while a
    /// host on it serves terminals: p50/p99 of both.
    Api(api::ApiArgs),
    /// The junk flood of issue 17 against a host process: its CPU per wall second, the
    /// rows the junk added (exit 1 unless none), a real terminal's sales meanwhile.
    Flood(flood::FloodArgs),
    /// The timed run of `bench recon` on its generated day (run by it, in a child process).
    #[command(hide = true)]
    ReconRun(recon::ReconRunArgs),
}

#[derive(Debug, clap::Args)]
struct HostArgs {
    /// Terminals connected at once (1 to 64).
    #[arg(long, default_value_t = 4)]
    connections: u32,
    /// Requests each terminal keeps in flight (pipelining), as a switch link or a
    /// terminal concentrator does.
    #[arg(long, default_value_t = 32)]
    depth: u32,
    /// How long to load, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Print JSON: sales, per_second, latency percentiles (p50_ms, p99_ms, p999_ms) and
    /// CPU microseconds per request.
    #[arg(long)]
    json: bool,
    /// Run the host without its metrics (to measure what they cost).
    #[arg(long)]
    no_metrics: bool,
    /// Terminals over TLS (a throwaway self-signed certificate), to measure what it costs.
    #[arg(long)]
    tls: bool,
    /// Where the host's KEK is (a PKCS#11 token also holds the terminals' MAC keys and
    /// computes every MAC): to measure what an HSM costs. Default: a throwaway local KEK.
    #[command(flatten)]
    kek: crate::kek_args::KekArgs,
}

/// With `--tls`: the host's set-up from a self-signed certificate for `localhost` written
/// into `dir`, and the client's that trusts it.
fn bench_tls(
    dir: &std::path::Path,
) -> anyhow::Result<(Arc<poskit_keystore::tls::ServerConfig>, ClientFiles)> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .context("a certificate for the benchmark")?;
    let (cert, key) = (dir.join("bench.crt"), dir.join("bench.key"));
    std::fs::write(&cert, made.cert.pem()).context("bench.crt")?;
    std::fs::write(&key, made.signing_key.serialize_pem()).context("bench.key")?;
    let server =
        poskit_keystore::tls::server_config(&cert, &key, None).map_err(anyhow::Error::msg)?;
    let client = ClientFiles {
        ca: cert,
        cert: None,
        key: None,
        name: Some("localhost".to_owned()),
    };
    Ok((server, client))
}

/// Requests one load terminal sends at most (its traces stay unique: field 11 has six digits).
const STANS_PER_TERMINAL_MAX: u32 = 999_000;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.what {
        What::Host(a) => run_host(a),
        What::Lookup(a) => lookup::run(a),
        What::Recon(a) => recon::run(a),
        What::Api(a) => api::run(a),
        What::Flood(a) => flood::run(a),
        What::ReconRun(a) => recon::run_generated(a),
    }
}

fn run_host(a: HostArgs) -> anyhow::Result<ExitCode> {
    if a.connections == 0 || a.connections > demo::FLEET_TERMINALS {
        return Err(usage(format!(
            "--connections: 1 to {}",
            demo::FLEET_TERMINALS
        )));
    }
    if a.depth == 0 || a.depth > 32 || a.seconds == 0 || a.seconds > 600 {
        return Err(usage("--depth: 1 to 32; --seconds: 1 to 600"));
    }
    let temp = tempfile::tempdir().context("temporary directory")?;
    let dir = DataDir::create(temp.path())
        .context("data directory")?
        .with_kek(a.kek.source(temp.path())?);
    let no_metrics = a.no_metrics;
    let tls = a.tls.then(|| bench_tls(temp.path())).transpose()?;
    let server_tls = tls.as_ref().map(|(server, _)| server.clone());
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<(String, Arc<Shared>)>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let host = std::thread::spawn(move || -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(run::connection_threads())
            .thread_name(CONNECTION_THREAD)
            .enable_all()
            .build()?;
        let config = HostConfig {
            metrics: !no_metrics,
            tls: server_tls,
            ..HostConfig::default()
        };
        rt.block_on(run::run(
            &dir,
            config,
            "127.0.0.1:0",
            true,
            async {
                let _ = stop_rx.await;
            },
            move |r| {
                let _ = addr_tx.send((r.addr.to_string(), r.shared.clone()));
            },
        ))?;
        Ok(())
    });
    let (addr, shared) = addr_rx
        .recv_timeout(Duration::from_secs(60))
        .context("the host did not start")?;
    // The writer names itself when it starts running: wait for that (bounded).
    let mut cpu_before_ns = threads_cpu_ns(WRITER_THREAD);
    for _ in 0..50 {
        if cpu_before_ns.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        cpu_before_ns = threads_cpu_ns(WRITER_THREAD);
    }
    let connections_before_ns = threads_cpu_ns(CONNECTION_THREAD);
    let process_before_ns = process_cpu_ns();
    let machine_before = machine_cpu_ticks();
    let groups_before = shared.groups_committed.load(Ordering::Relaxed);
    let requests_before = shared.requests_committed.load(Ordering::Relaxed);
    let client = match &tls {
        Some((_, files)) => {
            Some(poskit_keystore::tls::Client::new(files, &addr).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let started = Instant::now();
    let until = started + Duration::from_secs(a.seconds);
    let loaders: Vec<_> = (0..a.connections)
        .map(|i| {
            let addr = addr.clone();
            let depth = a.depth;
            let client = client.clone();
            std::thread::spawn(move || -> anyhow::Result<(Vec<u32>, u64, u64)> {
                let cpu_start_ns = own_cpu_ns().unwrap_or(0);
                let mut t = TestTerminal::connect_with(
                    &addr,
                    &demo::fleet_tid(i),
                    "898310048160001",
                    demo::DEMO_TMK,
                    Duration::from_secs(30),
                    client.as_ref(),
                )?;
                let signed = t.sign_in()?;
                anyhow::ensure!(
                    signed.code() == "00",
                    "sign-in of {}: {}",
                    t.tid,
                    signed.code()
                );
                let card = CardData::Track2(format!("{}=30121010000000000", demo::fleet_pan(i)));
                let spec = RequestSpec::sale(card, 1, Some(demo::DEMO_PIN));
                // One sale built in full; each request is it under a new trace, MAC'd
                // again, and each answer is checked for its code and its MAC.
                let mut template = t.template(&spec)?;
                let mut latencies = Vec::new();
                let mut declined = 0u64;
                let mut burst = Vec::new();
                let mut sent_count = 0u32;
                // Traces are six digits: a terminal stops before they would come round.
                while Instant::now() < until && sent_count + depth < STANS_PER_TERMINAL_MAX {
                    sent_count += depth;
                    burst.clear();
                    for _ in 0..depth {
                        let stan = t.take_stan();
                        burst.extend_from_slice(template.frame(stan));
                    }
                    let sent = Instant::now();
                    t.send_raw(&burst)?;
                    for _ in 0..depth {
                        let r = t.receive_summary()?;
                        latencies.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                        if !r.approved() {
                            declined += 1;
                        }
                    }
                }
                let cpu_ns = own_cpu_ns().unwrap_or(0).saturating_sub(cpu_start_ns);
                Ok((latencies, declined, cpu_ns))
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut declined = 0;
    let mut load_ns = 0u64;
    for l in loaders {
        let (lat, d, cpu_ns) = l
            .join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        latencies.extend(lat);
        declined += d;
        load_ns += cpu_ns;
    }
    let connections_after_ns = threads_cpu_ns(CONNECTION_THREAD);
    let elapsed = started.elapsed();
    let groups = shared.groups_committed.load(Ordering::Relaxed) - groups_before;
    let requests = shared.requests_committed.load(Ordering::Relaxed) - requests_before;
    // The writer's own CPU time per request: the figure that load on the other core
    // (the load generator, anything else running) does not move much.
    let per_request = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(a), Some(b)) if requests > 0 => {
            Some(b.saturating_sub(a) as f64 / 1000.0 / requests as f64)
        }
        _ => None,
    };
    let writer_us = per_request(cpu_before_ns, threads_cpu_ns(WRITER_THREAD));
    // The connection tasks (reading, prechecks, answers' MACs, writing) and the load
    // generator: with the writer, where the two cores go.
    let connections_us = per_request(connections_before_ns, connections_after_ns);
    let load_us = per_request(Some(0), Some(load_ns));
    // The share of the machine's CPU time the hypervisor gave to others (steal): a VM's
    // throughput falls with it, and no change to poskit moves it.
    let steal_percent = match (machine_before, machine_cpu_ticks()) {
        (Some((total_a, steal_a)), Some((total_b, steal_b))) if total_b > total_a => {
            Some(100.0 * steal_b.saturating_sub(steal_a) as f64 / (total_b - total_a) as f64)
        }
        _ => None,
    };
    // Everything in this process (host, load generator, their threads), per request.
    let process_us = match (process_before_ns, process_cpu_ns()) {
        (Some(a), Some(b)) if requests > 0 => Some((b - a) as f64 / 1000.0 / requests as f64),
        _ => None,
    };
    let group_mean = if groups > 0 {
        requests as f64 / groups as f64
    } else {
        0.0
    };
    let _ = stop_tx.send(());
    host.join()
        .map_err(|_| anyhow::anyhow!("the host thread panicked"))??;
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        f64::from(latencies[i]) / 1000.0
    };
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    if a.json {
        outln!(
            "{}",
            json!({
                "sales": latencies.len(), "declined": declined, "seconds": elapsed.as_secs_f64(),
                "per_second": rate, "connections": a.connections, "depth": a.depth, "tls": a.tls,
                "p50_ms": pct(0.5), "p99_ms": pct(0.99), "p999_ms": pct(0.999),
                "writer_cpu_us_per_request": writer_us, "group_commit_mean": group_mean,
                "connections_cpu_us_per_request": connections_us,
                "load_generator_cpu_us_per_request": load_us,
                "process_cpu_us_per_request": process_us,
                "steal_percent": steal_percent,
            })
        )?;
    } else {
        outln!(
            "{} durable sales in {:.1} s over {} {}connections × {} in flight: {:.0} per second",
            latencies.len(),
            elapsed.as_secs_f64(),
            a.connections,
            if a.tls { "TLS " } else { "" },
            a.depth,
            rate
        )?;
        outln!(
            "latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms ({declined} not approved or MAC not verified)",
            pct(0.5),
            pct(0.99),
            pct(0.999)
        )?;
        match writer_us {
            Some(us) => outln!(
                "writer: {us:.1} µs of CPU per request, {group_mean:.1} requests per commit"
            )?,
            None => outln!("writer: {group_mean:.1} requests per commit")?,
        }
        if let (Some(c), Some(l)) = (connections_us, load_us) {
            outln!("connection tasks: {c:.1} µs of CPU per request; load generator: {l:.1} µs")?;
        }
        if let Some(us) = process_us {
            outln!("all threads (host and load generator): {us:.1} µs of CPU per request")?;
        }
        if let Some(steal) = steal_percent {
            outln!("CPU time the hypervisor gave to others meanwhile (steal): {steal:.1} %")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// CPU time of this process so far (every thread, ended ones included), in ns, from
/// `/proc/self/stat` (user and system time in clock ticks of 10 ms, Linux's USER_HZ).
fn process_cpu_ns() -> Option<u64> {
    cpu_ns_of("/proc/self/stat")
}

/// CPU time so far of the process whose `stat` file this is (`/proc/PID/stat`), in ns.
fn cpu_ns_of(stat_path: &str) -> Option<u64> {
    const NS_PER_TICK: u64 = 10_000_000;
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) * NS_PER_TICK)
}

/// The machine's CPU time so far, all of it and what was stolen, in clock ticks (the
/// `cpu` line of `/proc/stat`; steal is the eighth value).
fn machine_cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let steal = *values.get(7)?;
    Some((values.iter().sum(), steal))
}

/// Thread names the measurement looks for.
const WRITER_THREAD: &str = "poskit-writer";
const CONNECTION_THREAD: &str = "poskit-conn";

/// CPU time so far of this process's threads named `name`, in ns (Linux `schedstat`), if
/// any is there.
fn threads_cpu_ns(name: &str) -> Option<u64> {
    let mut total = None;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
            total = Some(total.unwrap_or(0) + ns);
        }
    }
    total
}

/// CPU time of the calling thread so far, in ns.
fn own_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}
