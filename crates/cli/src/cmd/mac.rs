//! `poskit mac`: a MAC over hex data, as a person reads it.

use std::process::ExitCode;

use poskit_security::{MacAlgorithm, compute_mac};

use crate::fail::usage;
use crate::keys;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// cup-ecb (DES/3DES by key length), cup-ecb-sm4, or x919 (16-byte key).
    #[arg(long, value_name = "ALGO")]
    algo: String,
    /// The MAK in hexadecimal (a test key).
    #[arg(long, value_name = "HEX")]
    key: String,
    /// The MAC input in hexadecimal: the message from the MTI through field 63.
    #[arg(long, value_name = "HEX")]
    data: String,
    /// Print JSON (`{"algo": …, "mac": …}`).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let algo: MacAlgorithm = args.algo.parse().map_err(|_| {
        usage(format!(
            "--algo {:?}: use cup-ecb, cup-ecb-sm4 or x919",
            args.algo
        ))
    })?;
    let key = keys::key_arg("key", &args.key)?;
    let cleaned: String = args.data.chars().filter(|c| !c.is_whitespace()).collect();
    let data =
        hex::decode(&cleaned).map_err(|e| usage(format!("--data: not hexadecimal ({e})")))?;
    let mac = compute_mac(algo, &key, &data).map_err(|e| usage(format!("--key: {e}")))?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"algo": algo.as_str(), "mac": mac.to_string()})
        );
    } else {
        println!("{mac}");
    }
    Ok(ExitCode::SUCCESS)
}
