//! `poskit pinblock`: an ISO 9564 format 0 PIN block (`spec/cup-pos.md` §3.4), clear or
//! under a test PIK; `--sm4` for the 16-byte SM4 variant (§3.6).
//!
//! JSON (`--json`): `{"format": "iso9564-0", "algorithm": "clear" | "des" | "3des" | "sm4",
//! "pin_block": "<uppercase hex>"}`. Neither the PIN nor the key is ever printed.

use std::process::ExitCode;

use poskit_security::{
    Pin, PinBlockFormat, SecurityError, encrypt_pin, pin_block_format0, pin_block_format0_sm4,
};

use crate::fail::usage;
use crate::keys;

/// Help text: this is a tool for test keys.
pub const LONG_ABOUT: &str = "Build an ISO 9564 format 0 (ANSI X9.8 with PAN) PIN block, clear or \
encrypted under a PIK (DES, 3DES, or SM4 with --sm4).\n\nA TEST-KEY TOOL: never type a production \
key or a real cardholder's PIN here; they would stay in your shell history. The PIN and the key \
are never printed.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The card number (13–19 digits).
    #[arg(long)]
    pan: String,
    /// The PIN (4–12 digits). A test PIN only.
    #[arg(long)]
    pin: String,
    /// Encrypt under this test PIK (hex: 8 bytes DES, 16/24 bytes 3DES; 16 bytes with
    /// --sm4). Without it, the clear block.
    #[arg(long, value_name = "HEX")]
    key: Option<String>,
    /// The SM4 variant: a 16-byte block (and a 16-byte SM4 key).
    #[arg(long)]
    sm4: bool,
    /// Print JSON: {"format", "algorithm", "pin_block"}.
    #[arg(long)]
    json: bool,
}

/// Names the argument a security error is about; all of them are usage errors here.
fn argument_error(err: SecurityError) -> anyhow::Error {
    let argument = match err {
        SecurityError::PanFormat => "--pan",
        SecurityError::PinFormat => "--pin",
        _ => "--key",
    };
    usage(format!("{argument}: {err}"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let pin = Pin::new(&args.pin).map_err(argument_error)?;
    let format = if args.sm4 {
        PinBlockFormat::Iso0Sm4
    } else {
        PinBlockFormat::Iso0
    };
    let (pin_block_hex, algorithm) = match args.key.as_deref() {
        None => {
            let clear = match format {
                PinBlockFormat::Iso0 => pin_block_format0(&args.pan, &pin),
                PinBlockFormat::Iso0Sm4 => pin_block_format0_sm4(&args.pan, &pin),
            }
            .map_err(argument_error)?;
            (hex::encode_upper(clear.dangerous_expose()), "clear")
        }
        Some(key_hex) => {
            let pik = keys::key_arg("key", key_hex)?;
            let block = encrypt_pin(format, &pik, &args.pan, &pin).map_err(argument_error)?;
            let algorithm = match (format, pik.len()) {
                (PinBlockFormat::Iso0Sm4, _) => "sm4",
                (PinBlockFormat::Iso0, 8) => "des",
                (PinBlockFormat::Iso0, _) => "3des",
            };
            (hex::encode_upper(block.dangerous_expose()), algorithm)
        }
    };
    if args.json {
        outln!(
            "{}",
            serde_json::json!({"format": "iso9564-0", "algorithm": algorithm, "pin_block": pin_block_hex})
        )?;
    } else {
        outln!("{pin_block_hex}")?;
    }
    Ok(ExitCode::SUCCESS)
}
