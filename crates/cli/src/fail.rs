//! Exit codes and one-line error reports.
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the input could not be processed (undecodable message, MAC mismatch, ...) |
//! | 2 | bad arguments: one line says what is wrong |
//! | 3 | not found (an unknown response code for `explain`) |

use std::fmt;
use std::process::ExitCode;

/// A command-line argument that parsed but makes no sense (bad hex, wrong key length, ...).
/// Reported on one line with exit code 2.
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Shorthand for returning a usage error from a command.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(message.into()))
}

pub const EXIT_INPUT: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NOT_FOUND: u8 = 3;

/// Prints an error on one line and picks its exit code.
pub fn report(err: anyhow::Error) -> ExitCode {
    let code = if err.downcast_ref::<Usage>().is_some() {
        EXIT_USAGE
    } else {
        EXIT_INPUT
    };
    eprintln!("poskit: {}", one_line(&format!("{err:#}")));
    ExitCode::from(code)
}

/// clap's own errors: help and version go out as clap prints them; anything else is a
/// usage error reduced to its first line.
pub fn clap_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let text = err.render().to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("bad arguments");
            let first = first.trim_start_matches("error: ");
            eprintln!("poskit: {first} (see --help)");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
