//! Whole files to typed records, all or nothing: the first bad line is the error and no
//! record is returned, because a reconciliation over part of a day's file would report
//! every missing record as a break.

use std::path::Path;

use serde::Serialize;

use crate::error::ParseError;
use crate::kind::{ClearingDate, FileKind, detect};
use crate::profile::Profile;
use crate::reader::RecordReader;
use crate::record::{ClearingRecord, DisputeRecord, Records, TxnRecord};

/// A file read whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParsedFile {
    pub kind: FileKind,
    pub date: ClearingDate,
    pub records: Records,
}

/// The type and date of the file at `path`, from its name.
pub fn detect_path(path: &Path) -> Result<(FileKind, ClearingDate), ParseError> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    detect(&name).ok_or(ParseError::UnknownFileType { name })
}

/// Reads the file at `path`: its type and date from its name, its records with `profile`
/// (`None`: the built-in profile of its type; a profile of another type is an error).
pub fn parse_file(path: &Path, profile: Option<&Profile>) -> Result<ParsedFile, ParseError> {
    let (kind, date) = detect_path(path)?;
    let profile = profile.unwrap_or_else(|| Profile::builtin(kind));
    if profile.kind() != kind {
        return Err(ParseError::ProfileKind {
            profile: profile.kind(),
            file: kind,
        });
    }
    let bytes = std::fs::read(path).map_err(|source| ParseError::Read {
        path: path.to_owned(),
        source,
    })?;
    let records = parse_bytes(&bytes, profile, date)?;
    Ok(ParsedFile {
        kind,
        date,
        records,
    })
}

/// The records of a file's bytes, of `profile`'s type, for clearing day `date`.
pub fn parse_bytes(
    bytes: &[u8],
    profile: &Profile,
    date: ClearingDate,
) -> Result<Records, ParseError> {
    Ok(if profile.kind().holds_transactions() {
        Records::Txn(parse_records::<TxnRecord>(bytes, profile, Some(date), 1)?)
    } else {
        Records::Dispute(parse_records::<DisputeRecord>(
            bytes,
            profile,
            Some(date),
            1,
        )?)
    })
}

/// The typed records of a chunk of a file (starting at a line start, numbered from
/// `first_line`): `R` is [`TxnRecord`] for ACOMN/ACOMA, [`DisputeRecord`] for AERRA.
pub fn parse_records<R: ClearingRecord>(
    bytes: &[u8],
    profile: &Profile,
    date: Option<ClearingDate>,
    first_line: u64,
) -> Result<Vec<R>, ParseError> {
    if !R::fits(profile.kind()) {
        return Err(ParseError::wrong_records(profile.kind(), R::NAME));
    }
    let mut records = Vec::with_capacity(bytes.len() / (profile.record_len() + 1));
    for raw in RecordReader::new(bytes, profile, first_line, date) {
        records.push(R::from_raw(&raw?));
    }
    Ok(records)
}
