//! `poskit clearing`: the switch's clearing files (ACOMN, ACOMA, AERRA). `parse` reads one
//! and prints its type, date and first records, or every record as JSON. All of the file
//! or nothing: a bad line is one error naming the file, the line and the field (exit 1).
//!
//! Subcommands are an enum so that `export` (one day's files from the switch simulator's
//! record) slots in beside `parse`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use poskit_clearing::{
    DisputeRecord, ParseError, ParsedFile, Profile, ProfileError, Records, TxnRecord, parse_file,
};

use crate::fail;

/// Records shown by the text output; `--json` gives all.
const FIRST_RECORDS_SHOWN: usize = 10;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Read a clearing file named as the switch names it (IND{yymmdd}01ACOMN,
    /// IND{yymmdd}32ACOMA, IND{yymmdd}32AERRA) and print its records.
    Parse(ParseArgs),
    /// Write the switch's files (ACOMN, ACOMA, AERRA) of one clearing day from its record
    /// in a host's data directory; a day still open gives what is there so far.
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// The host's data directory.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// The clearing day, YYYYMMDD.
    #[arg(long, value_name = "YYYYMMDD")]
    date: String,
    /// Where to write the files (created when absent).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct ParseArgs {
    /// The clearing file; its name gives its type and clearing date.
    file: PathBuf,
    /// Print JSON: {"kind", "date", "records": [every field of every record]}; amounts
    /// and fees in fen.
    #[arg(long)]
    json: bool,
    /// A record layout of the file's type other than the built-in one: a TOML file shaped
    /// like the built-in ones (crates/clearing/profiles/*.toml in poskit's source).
    #[arg(long, value_name = "FILE")]
    profile: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Parse(args) => parse(args),
        Command::Export(args) => export(args),
    }
}

fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let day = poskit_domain::calendar::day_of_yyyymmdd(&args.date).ok_or_else(|| {
        crate::fail::usage(format!("--date {}: expected a date YYYYMMDD", args.date))
    })?;
    let dir = crate::cmd::host::existing_data_dir(&args.data)?;
    let conn = dir.open_store()?;
    for path in poskit_host::switch::export_day(&conn, day, &args.out)? {
        outln!("{}", path.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn parse(args: ParseArgs) -> anyhow::Result<ExitCode> {
    let profile = match &args.profile {
        None => None,
        Some(path) => Some(load_profile(path)?),
    };
    let parsed =
        parse_file(&args.file, profile.as_ref()).map_err(|err| parse_error(&args.file, err))?;
    if args.json {
        let text = serde_json::to_string_pretty(&parsed).context("records as JSON")?;
        outln!("{text}")?;
    } else {
        print_summary(&args.file, &parsed)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn load_profile(path: &Path) -> anyhow::Result<Profile> {
    match Profile::load(path) {
        Ok(profile) => Ok(profile),
        Err(err @ ProfileError::Read { .. }) => Err(fail::usage(err.to_string())),
        Err(err) => Err(anyhow::anyhow!(
            "{}: the profile cannot be used: {err}",
            path.display()
        )),
    }
}

/// The error on one line that starts with the file: errors that name it already
/// (cannot read, unknown type) as they are.
fn parse_error(path: &Path, err: ParseError) -> anyhow::Error {
    match err {
        ParseError::Read { .. } | ParseError::UnknownFileType { .. } => anyhow::Error::new(err),
        err => anyhow::anyhow!("{}: {err}", path.display()),
    }
}

/// Fen as yuan with two decimals, `-` for negatives.
fn yuan(fen: i128) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    format!("{sign}{}.{:02}", fen / 100, fen % 100)
}

fn print_summary(path: &Path, parsed: &ParsedFile) -> anyhow::Result<()> {
    let count = parsed.records.len();
    outln!(
        "{}: {}, clearing date {}, {count} record{}",
        path.display(),
        parsed.kind,
        parsed.date,
        if count == 1 { "" } else { "s" }
    )?;
    match &parsed.records {
        Records::Txn(records) => print_txns(records)?,
        Records::Dispute(records) => print_disputes(records)?,
    }
    let more = parsed.records.len().saturating_sub(FIRST_RECORDS_SHOWN);
    if more > 0 {
        outln!("... and {more} more (--json prints every record)")?;
    }
    Ok(())
}

fn print_txns(records: &[TxnRecord]) -> anyhow::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    outln!(
        "{:>6}  {:<6}  {:<10}  {:<19}  {:>13}  {:<4}  {:<6}  {:<12}  {:<2}  {:<5}  merchant",
        "line",
        "stan",
        "time",
        "PAN",
        "amount (yuan)",
        "MTI",
        "proc",
        "RRN",
        "rc",
        "flags"
    )?;
    for (i, r) in records.iter().take(FIRST_RECORDS_SHOWN).enumerate() {
        let flags = format!(
            "{}{}",
            if r.reversal { "R" } else { "" },
            if r.voided { "C" } else { "" }
        );
        outln!(
            "{:>6}  {:06}  {:<10}  {:<19}  {:>13}  {:<4}  {:<6}  {:<12}  {:<2}  {:<5}  {}",
            i + 1,
            r.stan,
            r.transmission_time,
            r.pan_masked,
            yuan(r.amount_fen.into()),
            r.mti,
            r.processing_code,
            r.rrn,
            r.response_code,
            flags,
            r.merchant_name
        )?;
    }
    Ok(())
}

fn print_disputes(records: &[DisputeRecord]) -> anyhow::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    outln!(
        "{:>6}  {:<4}  {:<6}  {:<19}  {:>13}  {:<6}  {:<12}  {:<13}  merchant",
        "line",
        "type",
        "stan",
        "PAN",
        "amount (yuan)",
        "reason",
        "previous RRN",
        "previous date"
    )?;
    for (i, r) in records.iter().take(FIRST_RECORDS_SHOWN).enumerate() {
        outln!(
            "{:>6}  {:<4}  {:06}  {:<19}  {:>13}  {:<6}  {:<12}  {:<13}  {}",
            i + 1,
            r.error_type,
            r.stan,
            r.pan_masked,
            yuan(r.amount_fen.into()),
            r.reason_code,
            r.previous_rrn,
            r.previous_clearing_mmdd,
            r.merchant_name
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::yuan;

    #[test]
    fn yuan_has_two_decimals() {
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(yuan(123_456), "1234.56");
        assert_eq!(yuan(-75), "-0.75");
    }
}
