//! Why a file could not be read. Every error about a record names its line (1-based) and,
//! where one field is at fault, the field: `line 3, field merchant_name (41): not GBK`.

use std::path::PathBuf;

use crate::kind::FileKind;
use crate::profile::{FieldRef, ProfileError};

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{name}: unknown file type (the switch's names are IND{{yymmdd}}01ACOMN, IND{{yymmdd}}32ACOMA, IND{{yymmdd}}32AERRA)"
    )]
    UnknownFileType { name: String },
    #[error("the profile is for {profile} files, this is an {file} file")]
    ProfileKind { profile: FileKind, file: FileKind },
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("line {line}: {len} bytes, {kind} records are {expected}")]
    Width {
        line: u64,
        len: usize,
        kind: FileKind,
        expected: usize,
    },
    #[error(
        "line {line}: truncated: {len} bytes and no line end at the end of the file, {kind} records are {expected}"
    )]
    Truncated {
        line: u64,
        len: usize,
        kind: FileKind,
        expected: usize,
    },
    #[error("line {line}, {field}: not GBK")]
    NotGbk { line: u64, field: FieldRef },
    #[error("line {line}, {field}: not digits: {value:?}")]
    NotDigits {
        line: u64,
        field: FieldRef,
        value: String,
    },
    #[error("line {line}, {field}: not printable ASCII: {value:?}")]
    NotAscii {
        line: u64,
        field: FieldRef,
        value: String,
    },
    #[error("line {line}, {field}: bad fee sign {sign:?} (C or D)")]
    FeeSign {
        line: u64,
        field: FieldRef,
        sign: String,
    },
    #[error("line {line}, {field}: {value:?} is not a flag ({allowed:?} or a space)")]
    Flag {
        line: u64,
        field: FieldRef,
        value: String,
        allowed: char,
    },
    #[error("line {line}: no space between fields before {field}")]
    Separator { line: u64, field: FieldRef },
    #[error("line {line}, {field}: a record of clearing date {found}, the file is of {expected}")]
    OtherDate {
        line: u64,
        field: FieldRef,
        found: String,
        expected: String,
    },
    #[error("{kind} files hold {holds}, not {wanted}")]
    WrongRecords {
        kind: FileKind,
        holds: &'static str,
        wanted: &'static str,
    },
}

impl ParseError {
    /// The line the error is about, if it is about one.
    pub fn line(&self) -> Option<u64> {
        match self {
            ParseError::Width { line, .. }
            | ParseError::Truncated { line, .. }
            | ParseError::NotGbk { line, .. }
            | ParseError::NotDigits { line, .. }
            | ParseError::NotAscii { line, .. }
            | ParseError::FeeSign { line, .. }
            | ParseError::Flag { line, .. }
            | ParseError::Separator { line, .. }
            | ParseError::OtherDate { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The same error with its line moved down by `by` lines: a chunk read from line 1
    /// that starts at line `by + 1` of the file.
    pub fn shift_lines(mut self, by: u64) -> ParseError {
        match &mut self {
            ParseError::Width { line, .. }
            | ParseError::Truncated { line, .. }
            | ParseError::NotGbk { line, .. }
            | ParseError::NotDigits { line, .. }
            | ParseError::NotAscii { line, .. }
            | ParseError::FeeSign { line, .. }
            | ParseError::Flag { line, .. }
            | ParseError::Separator { line, .. }
            | ParseError::OtherDate { line, .. } => *line += by,
            _ => {}
        }
        self
    }

    pub(crate) fn wrong_records(kind: FileKind, wanted: &'static str) -> ParseError {
        let holds = if kind.holds_transactions() {
            "transactions"
        } else {
            "disputes"
        };
        ParseError::WrongRecords {
            kind,
            holds,
            wanted,
        }
    }
}
