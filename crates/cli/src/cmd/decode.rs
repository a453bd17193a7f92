//! `poskit decode`: a message in hex → its fields, for people or as JSON.

use std::process::ExitCode;

use poskit_codec::describe::{Options, describe};
use poskit_codec::frame::decode_frame;
use poskit_codec::spec::Framing;
use poskit_codec::{Message, Profile};

use crate::fail::usage;
use crate::{input, keys, message_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The message in hexadecimal (spaces allowed); `-` reads it from standard input.
    #[arg(
        long,
        value_name = "HEX",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    hex: Option<String>,
    /// A file holding the message in hexadecimal.
    #[arg(long, value_name = "PATH")]
    file: Option<std::path::PathBuf>,
    /// Message profile.
    #[arg(long, default_value = "cup-pos", value_parser = ["cup-pos", "iso87-ascii"])]
    profile: String,
    /// The input starts at the MTI (no length, TPDU or header).
    #[arg(long)]
    no_frame: bool,
    /// Verify the MAC (field 64) with this MAK (hex; a test key).
    #[arg(long, value_name = "HEX")]
    mak: Option<String>,
    /// MAC algorithm when it differs from the profile's (cup-ecb, cup-ecb-sm4, x919).
    #[arg(long, value_name = "ALGO")]
    mac_algo: Option<String>,
    /// Show PANs and track data in full (PIN data is never shown).
    #[arg(long)]
    unmask: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // `source` names where the text came from, for its errors.
    let (source, text) = match (&args.hex, &args.file) {
        (Some(h), _) if h == "-" => ("--hex -".to_owned(), input::read_text("--hex", "-")?),
        (Some(h), _) => ("--hex".to_owned(), h.clone()),
        (None, Some(path)) => {
            let path = path.to_string_lossy();
            let text = input::read_text("--file", &path)?;
            (format!("--file {path}"), text)
        }
        (None, None) => return Err(usage("give --hex or --file")),
    };
    let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes =
        hex::decode(&cleaned).map_err(|e| usage(format!("{source}: not hexadecimal ({e})")))?;
    let profile = Profile::by_name(&args.profile).ok_or_else(|| usage("unknown profile"))?;
    let options = Options {
        unmask: args.unmask,
    };
    // Arguments are checked before the input is looked at.
    let mac_key = match &args.mak {
        None => None,
        Some(mak) => Some((
            keys::key_arg("mak", mak)?,
            keys::mac_algorithm(args.mac_algo.as_deref(), profile)?,
        )),
    };

    let framed = profile.framing == Framing::CupPos && !args.no_frame;
    let (frame_parts, message) = if framed {
        let frame = decode_frame(profile, &bytes)?;
        (Some((frame.tpdu, frame.header)), frame.message)
    } else {
        (None, Message::decode(profile, &bytes)?)
    };
    let frame_refs = frame_parts.as_ref().map(|(t, h)| (t, h));

    let mac_ok = match &mac_key {
        None => None,
        Some((key, algo)) => {
            let (key, algo) = (key, *algo);
            Some(
                match (
                    message.mac_input(),
                    profile.mac_field.and_then(|n| message.field(n)),
                ) {
                    (Some(data), Some(mac)) => {
                        poskit_security::verify_mac(algo, key, data, mac.wire())?
                    }
                    _ => false,
                },
            )
        }
    };

    if args.json {
        let mut value = message_json::to_json(frame_refs, &message, options);
        if let (Some(ok), Some(object)) = (mac_ok, value.as_object_mut()) {
            object.insert("mac_ok".into(), serde_json::Value::Bool(ok));
        }
        outln!("{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        let mut text = describe(frame_refs, &message, options);
        let verdict = match mac_ok {
            Some(true) => Some("ok"),
            Some(false) if message.mac_input().is_none() => Some("absent (no field 64)"),
            Some(false) => Some("MISMATCH"),
            None => None,
        };
        if let Some(verdict) = verdict {
            poskit_codec::describe::line(&mut text, "MAC check 报文鉴别码校验", verdict);
        }
        out!("{text}")?;
    }
    Ok(if mac_ok == Some(false) {
        ExitCode::from(crate::fail::EXIT_INPUT)
    } else {
        ExitCode::SUCCESS
    })
}
