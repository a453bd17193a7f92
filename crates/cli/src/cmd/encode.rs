//! `poskit encode`: a message in the JSON shape of `decode --json` → a frame in hex.

use std::process::ExitCode;

use anyhow::Context;
use poskit_codec::frame::{Header, Tpdu, encode_frame_into};
use poskit_codec::spec::Framing;
use poskit_codec::{CUP_POS, Profile};

use crate::fail::usage;
use crate::{input, keys, message_json};

/// TPDU used when the JSON gives none: ID 60, destination 0003, source 0000.
const DEFAULT_TPDU: Tpdu = Tpdu([0x60, 0x00, 0x03, 0x00, 0x00]);
/// Header used when the JSON gives none: magnetic stripe, version 31, normal.
const DEFAULT_HEADER: Header = Header([0x60, 0x31, 0x00, 0x00, 0x00, 0x00]);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON file with the message (`-` for standard input), shaped as `decode --json` prints.
    #[arg(long = "json", value_name = "FILE")]
    input: String,
    /// Profile when the JSON does not name one.
    #[arg(long, default_value = "cup-pos", value_parser = ["cup-pos", "iso87-ascii"])]
    profile: String,
    /// Compute the MAC with this MAK (hex; a test key) and put it in field 64.
    #[arg(long, value_name = "HEX")]
    mak: Option<String>,
    /// MAC algorithm when it differs from the profile's (cup-ecb, cup-ecb-sm4, x919).
    #[arg(long, value_name = "ALGO")]
    mac_algo: Option<String>,
    /// Write the message without the CUP length, TPDU and header.
    #[arg(long)]
    no_frame: bool,
    /// Print JSON (`{"hex": "…", "length": N}`).
    #[arg(long = "output-json")]
    output_json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = input::read_text("--json", &args.input)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).context("the message is not valid JSON")?;
    let default_profile = Profile::by_name(&args.profile).unwrap_or(&CUP_POS);
    let mut parsed = message_json::Parsed::from_json(&value, default_profile)?;
    let profile = parsed.profile;

    let mac = match &args.mak {
        None => None,
        Some(mak) => {
            let key = keys::key_arg("mak", mak)?;
            let algo = keys::mac_algorithm(args.mac_algo.as_deref(), profile)?;
            let field = profile
                .mac_field
                .ok_or_else(|| usage("the profile has no MAC field"))?;
            // A placeholder of the right size, so that the bitmap announces field 64.
            parsed.fields.retain(|(n, _)| *n != field);
            parsed.fields.push((field, vec![0u8; 8]));
            Some((key, algo))
        }
    };

    let builder = parsed.builder()?;
    let mut out = Vec::with_capacity(builder.encoded_len() + 16);
    let framed = profile.framing == Framing::CupPos && !args.no_frame;
    let message_range = if framed {
        encode_frame_into(
            &parsed.tpdu.unwrap_or(DEFAULT_TPDU),
            &parsed.header.unwrap_or(DEFAULT_HEADER),
            &builder,
            &mut out,
        )
    } else {
        builder.encode_into(&mut out);
        0..out.len()
    };
    if let Some((key, algo)) = mac {
        // Field 64 is the last field: the MAC covers everything before it.
        let mac_at = message_range.end - 8;
        let computed = poskit_security::compute_mac(algo, &key, &out[message_range.start..mac_at])?;
        out[mac_at..message_range.end].copy_from_slice(computed.as_bytes());
    }
    let hex = poskit_codec::hex_upper(&out);
    if args.output_json {
        outln!("{}", serde_json::json!({"hex": hex, "length": out.len()}))?;
    } else {
        outln!("{hex}")?;
    }
    Ok(ExitCode::SUCCESS)
}
