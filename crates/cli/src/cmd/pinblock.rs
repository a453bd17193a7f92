//! `poskit pinblock`: an ISO 9564 format 0 PIN block, clear or under a test PIK.

use std::process::ExitCode;

use poskit_security::{Pin, PinBlockFormat, encrypt_pin_block, pin_block_format0};

use crate::fail::usage;
use crate::keys;

/// Help text: this is a tool for test keys.
pub const LONG_ABOUT: &str = "Build an ISO 9564 format 0 (ANSI X9.8 with PAN) PIN block, clear or \
encrypted under a PIK.\n\nA TEST-KEY TOOL: never type a production key or a real cardholder's PIN \
here; they would stay in your shell history. The PIN and the key are never printed.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The card number (13–19 digits).
    #[arg(long)]
    pan: String,
    /// The PIN (4–12 digits).
    #[arg(long)]
    pin: String,
    /// Encrypt under this PIK (hex: 8/16/24 bytes for DES/3DES, 16 for SM4); clear without.
    #[arg(long, value_name = "HEX")]
    key: Option<String>,
    /// The SM4 variant (16-byte block).
    #[arg(long)]
    sm4: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let pin = Pin::new(&args.pin).map_err(|e| usage(format!("--pin: {e}")))?;
    let format = if args.sm4 {
        PinBlockFormat::Iso0Sm4
    } else {
        PinBlockFormat::Iso0
    };
    let (block, algorithm) = match &args.key {
        None => (pin_block_format0(format, &args.pan, &pin), "clear"),
        Some(hex) => {
            let key = keys::key_arg("key", hex)?;
            let algorithm = match (args.sm4, key.len()) {
                (true, _) => "sm4",
                (false, 8) => "des",
                (false, _) => "3des",
            };
            (encrypt_pin_block(format, &key, &args.pan, &pin), algorithm)
        }
    };
    let block = block.map_err(|e| usage(e.to_string()))?;
    let hex = poskit_codec::hex_upper(block.dangerous_expose());
    if args.json {
        println!(
            "{}",
            serde_json::json!({"format": "iso9564-0", "algorithm": algorithm, "pin_block": hex})
        );
    } else {
        println!("{hex}");
    }
    Ok(ExitCode::SUCCESS)
}
