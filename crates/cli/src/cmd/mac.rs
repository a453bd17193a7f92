//! `poskit mac`: the MAC of field 64 over hex data (`spec/cup-pos.md` §3.3, §3.6), as a
//! person reads it: 8 characters for the CUP ECB MACs, 16 hex digits for X9.19.
//!
//! JSON (`--json`): `{"algo": "cup-ecb" | "cup-ecb-sm4" | "x919", "mac": "<as read>"}`.
//! The key is never printed.

use std::process::ExitCode;

use poskit_security::{MacAlgorithm, compute_mac};

use crate::fail::usage;
use crate::keys;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// cup-ecb (DES/3DES by key length), cup-ecb-sm4 (16-byte key), or x919 (16-byte key).
    #[arg(long, value_name = "ALGO")]
    algo: String,
    /// The MAK in hexadecimal (a test key).
    #[arg(long, value_name = "HEX")]
    key: String,
    /// The MAC input in hexadecimal: the message from the MTI through field 63 (spaces
    /// allowed; empty is one zero block).
    #[arg(long, value_name = "HEX")]
    data: String,
    /// Print JSON: {"algo", "mac"}.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let algo: MacAlgorithm = args
        .algo
        .parse()
        .map_err(|e| usage(format!("--algo: {e}")))?;
    let key = keys::key_arg("key", &args.key)?;
    let data_hex: String = args.data.chars().filter(|c| !c.is_whitespace()).collect();
    let data =
        hex::decode(&data_hex).map_err(|e| usage(format!("--data: not hexadecimal ({e})")))?;
    let mac = compute_mac(algo, &key, &data).map_err(|e| usage(format!("--key: {e}")))?;
    if args.json {
        outln!(
            "{}",
            serde_json::json!({"algo": algo.as_str(), "mac": mac.readable()})
        )?;
    } else {
        outln!("{}", mac.readable())?;
    }
    Ok(ExitCode::SUCCESS)
}
