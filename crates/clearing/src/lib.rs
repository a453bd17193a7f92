//! The CUP switch's clearing files (spec `cup-clearing.md` §2–§4) as data.
//!
//! - **Layouts are profiles** (`profiles/*.toml`, compiled in; others loaded with
//!   [`Profile::load`]): fields `{ name, width, kind }` in order, one space between
//!   fields. ACOMN 34 fields / 299 bytes, ACOMA 69 / 951, AERRA 56 / 581. The spec gives
//!   every ACOMN width and some ACOMA/AERRA ones; the others are guesses, marked in the
//!   TOML comments.
//! - **Names**: [`file_name`] and [`detect`] (`IND{yymmdd}01ACOMN`, `IND{yymmdd}32ACOMA`,
//!   `IND{yymmdd}32AERRA`).
//! - **Typed records**: [`TxnRecord`] (ACOMN, ACOMA) and [`DisputeRecord`] (AERRA).
//! - **Writing** ([`write_file`]): GBK, `\n` line ends, atomic rename; too-wide values
//!   are errors, only text is cut (at a character boundary).
//! - **Reading**: [`parse_file`] is all or nothing; errors name the line and the field.
//!   [`RecordReader`] and [`for_each_txn_key`] / [`par_fold_txn_keys`] read in place for
//!   reconciliation's millions of records, with the same checks;
//!   [`for_each_txn_key_in_file`] does so over a file of any size in bounded memory.
//!
//! Fee fields: `C` = credit to the acquirer = positive, `D` = negative.

mod error;
mod fast;
mod gbk;
mod kind;
mod parse;
mod profile;
mod reader;
mod record;
mod write;

pub use error::ParseError;
pub use fast::{
    FILE_CHUNK_BYTES, KeyView, for_each_txn_key, for_each_txn_key_in_chunk,
    for_each_txn_key_in_file, for_each_txn_record_in_chunk, for_each_txn_record_in_file,
    par_fold_txn_keys,
};
pub use kind::{ClearingDate, FileKind, detect, file_name};
pub use parse::{ParsedFile, detect_path, parse_bytes, parse_file, parse_records};
pub use profile::{Field, FieldKind, FieldRef, Key, Profile, ProfileError};
pub use reader::{RawRecord, RecordReader, digits_u64, fee_i64, split_at_lines};
pub use record::{ClearingRecord, DisputeRecord, Records, TxnRecord};
pub use write::{WriteError, mask_pan, write_file, write_file_with, write_records};
