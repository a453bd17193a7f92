//! `poskit bench lookup`: how long `poskit lookup` takes on a big ledger — each way in (RRN,
//! terminal and trace, authorization code, card digits with amount and day), a sample of
//! random transactions each, through the same code the command runs (chain and verdict
//! included). The target: ≤ 50 ms on ten million transactions.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use poskit_domain::rand::SplitMix64;
use poskit_host::store::lookup::by_id;
use poskit_recon::lookup::{CardQuery, Query, lookup};
use serde_json::json;

use super::day;
use crate::fail::usage;

#[derive(Debug, clap::Args)]
pub struct LookupArgs {
    /// Transactions in the ledger (1 000 to 50 000 000).
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Lookups of each kind.
    #[arg(long, default_value_t = 200)]
    samples: u32,
    /// A data directory generated before (`--keep`) to look up in, instead of a new one.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep the generated ledger (its path is printed).
    #[arg(long)]
    keep: bool,
    /// Print JSON: per way in, p50, p99 and max in ms.
    #[arg(long)]
    json: bool,
}

pub fn run(a: LookupArgs) -> anyhow::Result<ExitCode> {
    if !(1_000..=50_000_000).contains(&a.rows) || a.samples == 0 || a.samples > 100_000 {
        return Err(usage("--rows: 1000 to 50000000; --samples: 1 to 100000"));
    }
    let temp = tempfile::tempdir().context("temporary directory")?;
    let dir = day::ledger_dir(a.dir.as_ref(), a.rows, temp.path())?;
    let conn = poskit_host::store::sqlite::open(&dir).context("host database")?;
    let mut rng = SplitMix64::new(20_261_204);
    let mut results = Vec::new();
    for way in ["rrn", "tid+trace", "auth_code", "card+amount+date"] {
        let mut ms = Vec::with_capacity(a.samples as usize);
        for _ in 0..a.samples {
            let id = 1 + rng.below(a.rows) as i64;
            let Some(t) = by_id(&conn, id)? else { continue };
            let q = query_for(way, &t);
            let started = Instant::now();
            let found = lookup(&conn, None, &q)?;
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(
                found.iter().any(|m| m.transaction["id"] == id),
                "{way}: transaction {id} not found"
            );
        }
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q) as usize];
        results.push(json!({"way": way, "samples": ms.len(), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)}));
    }
    let out = json!({"rows": a.rows, "lookups": results});
    if a.json {
        outln!("{out}")?;
    } else {
        for r in &results {
            outln!(
                "{:<18} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  ({} lookups on {} rows)",
                r["way"].as_str().unwrap_or(""),
                r["p50_ms"].as_f64().unwrap_or(0.0),
                r["p99_ms"].as_f64().unwrap_or(0.0),
                r["max_ms"].as_f64().unwrap_or(0.0),
                r["samples"],
                a.rows
            )?;
        }
    }
    if a.keep && a.dir.is_none() {
        let kept = temp.keep();
        outln!("kept: {}", kept.join("host").display())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What a person would have in hand for transaction `t`.
fn query_for(way: &str, t: &poskit_host::store::lookup::TxnView) -> Query {
    match way {
        "rrn" => Query {
            rrn: t.rrn.clone(),
            ..Query::default()
        },
        "tid+trace" => Query {
            tid_trace: t.tid.clone().zip(t.stan),
            ..Query::default()
        },
        "auth_code" => Query {
            auth_code: t.auth_code.clone(),
            ..Query::default()
        },
        _ => Query {
            card: Some(CardQuery {
                last4: t
                    .pan_masked
                    .as_deref()
                    .map_or(String::new(), |p| p[p.len() - 4..].to_owned()),
                amount_fen: t.amount_fen.unwrap_or(0),
                day: t.day,
                from_minute: None,
                to_minute: None,
            }),
            ..Query::default()
        },
    }
}
