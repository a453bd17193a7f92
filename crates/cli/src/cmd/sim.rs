//! `poskit sim`: a deterministic fleet simulation under faults, then the checker. Exit 1
//! on any violation, with the command that reproduces the run.

use std::process::ExitCode;

use poskit_sim::{Knobs, simulate};

use crate::fail::{self, usage};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Virtual terminals (each with its own cards).
    #[arg(long, default_value_t = 16)]
    terminals: u32,
    /// Operations the terminals are asked to do in all.
    #[arg(long, default_value_t = 10_000)]
    transactions: u64,
    /// The seed every fault and choice is drawn from.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// none, mild, harsh, or a TOML file of knobs (request_loss, answer_loss, duplicate,
    /// delay, reset, corrupt_mac, issuer_timeout, host_crash, host_down_ms, terminal_crash,
    /// printer_jam, partition, partition_ms, clog, clog_ms, latency_ms, timeout_ms;
    /// partitions and clogs are simulated only, not through the real-network proxy).
    #[arg(long, default_value = "mild", value_name = "none|mild|harsh|FILE")]
    faults: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Real-network mode: run the terminals over TCP, through a fault proxy, against a
    /// separate host process at this address (started with `poskit host --demo`).
    #[arg(long, value_name = "ADDR", requires = "host_data")]
    host: Option<String>,
    /// The data directory of that host (the checker reads its ledger).
    #[arg(long, value_name = "DIR", requires = "host")]
    host_data: Option<std::path::PathBuf>,
    // With --host: the host's TLS (the fault proxy connects to it over TLS).
    #[command(flatten)]
    tls: crate::tls_args::TerminalTls,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.terminals == 0 || args.terminals > poskit_sim::world::TERMINALS_MAX {
        return Err(usage(format!(
            "--terminals: 1 to {}",
            poskit_sim::world::TERMINALS_MAX
        )));
    }
    if args.transactions == 0 || args.transactions > poskit_sim::world::TRANSACTIONS_MAX {
        return Err(usage(format!(
            "--transactions: 1 to {}",
            poskit_sim::world::TRANSACTIONS_MAX
        )));
    }
    let knobs = Knobs::named_or_file(&args.faults).map_err(usage)?;
    if args.host.is_none() && args.tls.tls_ca.is_some() {
        return Err(usage("--tls-ca: only with --host (the real-network mode)"));
    }
    if let (Some(host), Some(host_data)) = (&args.host, &args.host_data) {
        return network(&args, host, host_data, knobs);
    }
    let report = simulate(args.terminals, args.transactions, args.seed, knobs)
        .map_err(|e| anyhow::anyhow!(e))?;
    let reproduce = format!(
        "poskit sim --terminals {} --transactions {} --seed {} --faults {}",
        args.terminals, args.transactions, args.seed, args.faults
    );
    if args.json {
        let mut v = report.json();
        v["reproduce"] = serde_json::Value::String(reproduce.clone());
        outln!("{v}")?;
    } else {
        let per_minute = report.transactions as f64 * 60_000.0 / report.elapsed_ms.max(1) as f64;
        outln!(
            "seed {}: {} transactions on {} terminals in {:.1} s ({:.0} per minute)",
            report.seed,
            report.transactions,
            args.terminals,
            report.elapsed_ms as f64 / 1000.0,
            per_minute
        )?;
        outln!("  approved {}", report.approved)?;
        let declined: Vec<String> = report
            .declined
            .iter()
            .map(|(c, n)| format!("{c}×{n}"))
            .collect();
        outln!("  declined or failed: {}", declined.join(" "))?;
        let faults: Vec<String> = report
            .faults
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        outln!("  faults injected: {}", faults.join(", "))?;
        outln!(
            "  reversals delivered {}, failed {}; settlements balanced {}, unbalanced then uploaded {}",
            report.reversals_delivered,
            report.reversals_failed,
            report.settlements_balanced,
            report.settlements_unbalanced
        )?;
        for b in &report.breaks {
            outln!("  break: {b}")?;
        }
        if let Some(recon) = &report.recon {
            outln!(
                "  reconciliation with the switch: {} matched, breaks {}, divergences injected {}, credit adjustments {}; lookup of every sale reported failed: {}",
                recon["matched"],
                recon["breaks"],
                recon["injected"],
                recon["credit_adjustments"],
                recon["verdicts_of_reported_failures"]
            )?;
        }
        let alerts: Vec<String> = report
            .alerts
            .iter()
            .map(|(rule, n)| format!("{rule} ×{n}"))
            .collect();
        outln!(
            "  alerts the host's rules raised: {}",
            if alerts.is_empty() {
                "none".to_owned()
            } else {
                alerts.join(", ")
            }
        )?;
        if report.ok() {
            outln!(
                "  no violations: no customer charged for a reported failure, no double posting, ledger balanced"
            )?;
        } else {
            outln!("  {} VIOLATIONS:", report.violations.len())?;
            for v in report.violations.iter().take(20) {
                outln!("    {v}")?;
            }
        }
    }
    if report.ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("poskit: violations found; reproduce with: {reproduce}");
        Ok(ExitCode::from(fail::EXIT_INPUT))
    }
}

/// The real-network mode: fault proxy, terminals over TCP, a separate host process.
fn network(
    args: &Args,
    host: &str,
    host_data: &std::path::Path,
    knobs: Knobs,
) -> anyhow::Result<ExitCode> {
    if !host_data.join("host.sqlite").is_file() {
        return Err(usage(format!(
            "--host-data {}: no host database there",
            host_data.display()
        )));
    }
    let upstream = poskit_sim::proxy::Upstream {
        addr: host.to_owned(),
        tls: args.tls.client(host)?,
    };
    let journals = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (report, faults) = runtime
        .block_on(poskit_sim::live::run_network(
            &upstream,
            host_data,
            journals.path(),
            args.terminals,
            args.transactions,
            args.seed,
            knobs,
        ))
        .map_err(|e| anyhow::anyhow!(e))?;
    let p = &report.progress;
    let ok = report.violations.is_empty() && report.settlement_failures.is_empty();
    if args.json {
        outln!(
            "{}",
            serde_json::json!({
                "mode": "network", "seed": args.seed, "operations": args.transactions,
                "transactions": p.transactions, "sign_ins": p.sign_ins, "unreachable": p.unreachable,
                "approved": p.approved,
                "declined": p.declined, "faults": faults, "reversals": p.reversals_done,
                "reversals_failed": p.reversals_failed,
                "settlements": {"balanced": report.settlements_balanced, "unbalanced_then_uploaded": report.settlements_unbalanced},
                "settlement_failures": report.settlement_failures,
                "breaks": report.breaks, "violations": report.violations, "elapsed_ms": report.elapsed_ms,
            })
        )?;
    } else {
        outln!(
            "network mode, seed {}: {} operations on {} terminals through the fault proxy in {:.1} s",
            args.seed,
            args.transactions,
            args.terminals,
            report.elapsed_ms as f64 / 1000.0
        )?;
        outln!(
            "  {} transactions, {} sign-ins the terminals made on their own, {} that could not reach the host",
            p.transactions,
            p.sign_ins,
            p.unreachable
        )?;
        let faults: Vec<String> = faults.iter().map(|(k, n)| format!("{k} {n}")).collect();
        outln!(
            "  approved {}; faults injected: {}",
            p.approved,
            faults.join(", ")
        )?;
        outln!(
            "  reversals done {}, failed {}; settlements balanced {}, unbalanced then uploaded {}",
            p.reversals_done,
            p.reversals_failed,
            report.settlements_balanced,
            report.settlements_unbalanced
        )?;
        for v in report
            .violations
            .iter()
            .chain(&report.settlement_failures)
            .take(20)
        {
            outln!("  VIOLATION: {v}")?;
        }
        if ok {
            outln!("  no violations")?;
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(fail::EXIT_INPUT)
    })
}
