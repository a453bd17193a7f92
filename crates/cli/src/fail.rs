//! Exit codes and error reports.
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | success (also when the reader of standard output closed it: see below) |
//! | 1 | the input could not be processed (undecodable message, MAC mismatch, ...), or standard output could not be written |
//! | 2 | bad arguments: one line says what is wrong |
//! | 3 | not found (an unknown response code for `explain`) |
//!
//! A closed pipe on standard output (`poskit host demo-data --json | head`) ends the
//! command quietly with exit 0, as ripgrep does: the reader stopped because it had what it
//! wanted, and what a command records (a journal, a ledger) is durable before it prints.
//! Any other write error on standard output (a full disk) is one line and exit 1.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

use crate::out::StdoutError;

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

/// Prints an error and picks its exit code. The text keeps its own line breaks (a TOML
/// error's line, column and caret lines stay readable).
pub fn report(err: anyhow::Error) -> ExitCode {
    if let Some(stdout) = err.downcast_ref::<StdoutError>()
        && stdout.is_closed_pipe()
    {
        return ExitCode::SUCCESS;
    }
    let code = if err.downcast_ref::<Usage>().is_some() {
        EXIT_USAGE
    } else {
        EXIT_INPUT
    };
    print_error(&chain_text(&err));
    ExitCode::from(code)
}

/// clap's own errors: help and version go out as clap prints them; anything else is a
/// usage error on one line, with the arguments clap names and its tips.
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
            print_error(&clap_text(&err.render().to_string()));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Standard error may be closed too: an error report is never a panic.
fn print_error(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "poskit: {text}");
}

/// The error and its causes joined by ": ", each said once: a cause that its error's text
/// already ends with (a library error that shows its source, `"{path}: {source}"`) is
/// not repeated.
fn chain_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        let part = part.trim_end();
        if part.is_empty() || text.ends_with(part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(part);
    }
    text
}

/// clap's rendered error on one line: the reason, then what it lists (missing arguments,
/// possible values) and its tips; the usage block and "For more information" dropped
/// for "(see --help)".
///
/// ```text
/// error: the following required arguments were not provided:
///   --mid <MID>
///   --tmk <TMK>
///
///   tip: ...
///
/// Usage: ...
/// ```
fn clap_text(rendered: &str) -> String {
    let mut text = String::new();
    for paragraph in rendered.split("\n\n") {
        let paragraph = paragraph.trim();
        if paragraph.is_empty()
            || paragraph.starts_with("Usage:")
            || paragraph.starts_with("For more information")
        {
            continue;
        }
        let mut lines = paragraph.lines().map(str::trim);
        let head = lines.next().unwrap_or_default();
        let head = head.strip_prefix("error: ").unwrap_or(head);
        if !text.is_empty() {
            text.push_str("; ");
        }
        text.push_str(head);
        let items: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
        if !items.is_empty() {
            text.push(' ');
            text.push_str(&items.join(", "));
        }
    }
    if text.is_empty() {
        text.push_str("bad arguments");
    }
    text.push_str(" (see --help)");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_text_names_every_missing_argument_and_keeps_tips() {
        let rendered = "error: the following required arguments were not provided:\n  --mid <MID>\n  --tmk <TMK>\n\n  tip: try this\n\nUsage: poskit pos init --mid <MID>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            clap_text(rendered),
            "the following required arguments were not provided: --mid <MID>, --tmk <TMK>; tip: try this (see --help)"
        );
    }

    #[test]
    fn chain_text_says_a_cause_once() {
        let io = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let io_text = io.to_string();
        #[derive(Debug)]
        struct Shows(std::io::Error);
        impl fmt::Display for Shows {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "127.0.0.1:5800: {}", self.0)
            }
        }
        impl std::error::Error for Shows {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = anyhow::Error::new(Shows(io)).context("--listen");
        assert_eq!(
            chain_text(&err),
            format!("--listen: 127.0.0.1:5800: {io_text}")
        );
    }
}
