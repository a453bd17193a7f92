//! The `poskit` binary: argument parsing and wiring only. Business logic lives in the
//! library crates; JSON shapes for `--json` are defined here, at the edge.

// First: the `outln!` and `out!` macros are used by every module below.
#[macro_use]
mod out;

mod cmd;
mod fail;
mod input;
mod kek_args;
mod keys;
mod message_json;
mod tls_args;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The host hands buffers between threads at a high rate (frames read on connection
/// tasks, answers built on the writer thread and freed back on them); glibc's arenas
/// spent a tenth of the writer's time on that. mimalloc's free lists per thread do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// poskit — CUP-style POS acquiring: host, virtual POS, fleet simulation, codec, security, response codes.
#[derive(Debug, Parser)]
#[command(name = "poskit", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole system in one command: a host, a fleet of virtual terminals with faults,
    /// settlement, the checker and a report.
    Demo(cmd::demo::Args),
    /// Decode an ISO 8583 message (hex) and print its fields.
    Decode(cmd::decode::Args),
    /// Encode a message from its JSON form into a frame (hex).
    Encode(cmd::encode::Args),
    /// Compute a MAC over hex data (CUP ECB, CUP ECB SM4, ANSI X9.19).
    Mac(cmd::mac::Args),
    /// Build an ISO 9564 format 0 PIN block (test keys only).
    #[command(long_about = cmd::pinblock::LONG_ABOUT)]
    Pinblock(cmd::pinblock::Args),
    /// Explain a response code or a symptom: meaning, class, whether money moved, what to do.
    Explain(cmd::explain::Args),
    /// Run the acquirer host (CUP POS over TCP, SQLite ledger), or manage its data.
    Host(cmd::host::Args),
    /// A virtual POS on the terminal engine: sign in, sell, void, refund, settle.
    Pos(cmd::pos::Args),
    /// Simulate a fleet under faults (deterministic, one seed) and check every journal
    /// against the ledger.
    Sim(cmd::sim::Args),
    /// Reconcile one clearing day: terminal settlements, the host ledger and the switch's
    /// files; every break classified, credit adjustments posted once.
    Recon(cmd::recon::Args),
    /// Was the customer charged? Find a transaction by RRN, trace, authorization code, or
    /// card digits and amount; its whole chain and the verdict.
    Lookup(cmd::lookup::Args),
    /// Disputes (差错): import the switch's AERRA file, open, list and act on cases; list
    /// the cards retained at terminals.
    Disputes(cmd::disputes::Args),
    /// The likely causes of a terminal's, a merchant's or a transaction's trouble, ranked,
    /// with the evidence and what to do.
    Diagnose(cmd::diagnose::Args),
    /// Figures of a terminal, merchant, BIN or the whole host over a window: attempts,
    /// approval rates, codes, timeouts, reversals, MAC errors.
    Stats(cmd::stats::Args),
    /// The alerts a host raised, each with its likely causes; acknowledge one; the rules.
    Alerts(cmd::alerts::Args),
    /// Keys at rest: make, inspect and rotate the key-encryption key a host's data directory
    /// or a terminal's journal keeps its keys and card numbers under.
    Keys(cmd::keys::Args),
    /// The console's users: add (password on standard input), list, remove, API tokens.
    Users(cmd::users::Args),
    /// Serve the HTTP API against a host's data directory.
    Console(cmd::console::Args),
    /// Measure: `bench host` gives durable sales per second and their latency.
    Bench(cmd::bench::Args),
    /// Clearing files of the switch (ACOMN, ACOMA, AERRA): parse them; `export` writes one day's.
    Clearing(cmd::clearing::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return fail::clap_error(err),
    };
    let result = match cli.command {
        Command::Demo(args) => cmd::demo::run(args),
        Command::Decode(args) => cmd::decode::run(args),
        Command::Encode(args) => cmd::encode::run(args),
        Command::Mac(args) => cmd::mac::run(args),
        Command::Pinblock(args) => cmd::pinblock::run(args),
        Command::Explain(args) => cmd::explain::run(args),
        Command::Host(args) => cmd::host::run(args),
        Command::Pos(args) => cmd::pos::run(args),
        Command::Sim(args) => cmd::sim::run(args),
        Command::Recon(args) => cmd::recon::run(args),
        Command::Lookup(args) => cmd::lookup::run(args),
        Command::Disputes(args) => cmd::disputes::run(args),
        Command::Diagnose(args) => cmd::diagnose::run(args),
        Command::Stats(args) => cmd::stats::run(args),
        Command::Alerts(args) => cmd::alerts::run(args),
        Command::Keys(args) => cmd::keys::run(args),
        Command::Users(args) => cmd::users::run(args),
        Command::Console(args) => cmd::console::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Clearing(args) => cmd::clearing::run(args),
    };
    match result.and_then(|code| out::flush().map(|()| code)) {
        Ok(code) => code,
        Err(err) => fail::report(err),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every visible argument and subcommand of `command` and below, as
    /// `"poskit host check --data"`, that `missing` picks out.
    fn walk(
        command: &clap::Command,
        path: &str,
        missing: &dyn Fn(&clap::Command, Option<&clap::Arg>) -> bool,
        found: &mut Vec<String>,
    ) {
        let path = format!("{path} {}", command.get_name()).trim().to_owned();
        if missing(command, None) {
            found.push(path.clone());
        }
        for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
            if missing(command, Some(arg)) {
                found.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, &path, missing, found);
        }
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_argument_of_every_subcommand_has_help_text() {
        let mut found = Vec::new();
        let no_help = |_: &clap::Command, arg: Option<&clap::Arg>| {
            arg.is_some_and(|a| a.get_help().is_none() && a.get_long_help().is_none())
        };
        walk(&Cli::command(), "", &no_help, &mut found);
        assert_eq!(found, Vec::<String>::new(), "arguments without help text");
    }

    #[test]
    fn every_subcommand_is_described_in_english_first() {
        let mut found = Vec::new();
        let not_english = |command: &clap::Command, arg: Option<&clap::Arg>| {
            arg.is_none()
                && !command
                    .get_about()
                    .map(|about| about.to_string())
                    .and_then(|about| about.chars().next())
                    .is_some_and(|first| first.is_ascii_alphabetic())
        };
        walk(&Cli::command(), "", &not_english, &mut found);
        assert_eq!(
            found,
            Vec::<String>::new(),
            "subcommands described in Chinese first or not at all"
        );
    }
}
