//! Writing clearing files as the switch would: GBK, one record per line, lines ended by
//! `\n` (the reader takes `\r\n` too; `\n` because the public readers split on it and a
//! file of poskit's is compared byte for byte in tests), no space after the last field.
//!
//! A value wider than its field is an error naming the field: cutting an amount or an id
//! would make a wrong record that looks right. Only `text` (a merchant's name and address)
//! is cut, at a GBK character boundary, as the switch's own files cut it.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::gbk;
use crate::kind::{ClearingDate, FileKind, file_name};
use crate::profile::{FieldKind, FieldRef, Profile};
use crate::record::{ClearingRecord, Value};

/// A record that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("record {record}, {field}: {problem}")]
    Field {
        /// 1-based, in the order given.
        record: usize,
        field: FieldRef,
        problem: String,
    },
    #[error("{kind} files do not hold {records}")]
    WrongRecords {
        kind: FileKind,
        records: &'static str,
    },
}

impl From<WriteError> for io::Error {
    fn from(err: WriteError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, err)
    }
}

/// Writes `records` as a file of `profile` to `out`. The clearing-date fields of records
/// that leave them empty get `date`.
pub fn write_records<R: ClearingRecord, W: Write>(
    mut out: W,
    profile: &Profile,
    date: ClearingDate,
    records: &[R],
) -> io::Result<()> {
    if !R::fits(profile.kind()) {
        let (kind, records) = (profile.kind(), R::NAME);
        return Err(WriteError::WrongRecords { kind, records }.into());
    }
    let mut line = Vec::with_capacity(profile.record_len() + 1);
    for (i, record) in records.iter().enumerate() {
        line.clear();
        encode_record(&mut line, profile, date, record).map_err(|(index, problem)| {
            WriteError::Field {
                record: i + 1,
                field: profile.field_ref(index),
                problem,
            }
        })?;
        line.push(b'\n');
        out.write_all(&line)?;
    }
    out.flush()
}

/// Writes the file of `kind` for `date` into `dir` with the built-in profile; returns its
/// path (`dir/IND{yymmdd}32ACOMA`, ...).
pub fn write_file<R: ClearingRecord>(
    dir: &Path,
    kind: FileKind,
    date: ClearingDate,
    records: &[R],
) -> io::Result<PathBuf> {
    write_file_with(dir, Profile::builtin(kind), date, records)
}

/// [`write_file`] with another profile. The file is written under a temporary name in
/// `dir`, synced, then renamed: a reader never sees a half-written file under the
/// switch's name, and a failed write leaves no file of that name.
pub fn write_file_with<R: ClearingRecord>(
    dir: &Path,
    profile: &Profile,
    date: ClearingDate,
    records: &[R],
) -> io::Result<PathBuf> {
    let name = file_name(profile.kind(), date);
    let path = dir.join(&name);
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&temp)?;
        let mut out = io::BufWriter::with_capacity(1 << 16, file);
        write_records(&mut out, profile, date, records)?;
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map(|()| path)
}

/// Appends one record's fields to `line`; `Err((field index, problem))`.
fn encode_record<R: ClearingRecord>(
    line: &mut Vec<u8>,
    profile: &Profile,
    date: ClearingDate,
    record: &R,
) -> Result<(), (usize, String)> {
    let mmdd = date.mmdd();
    for (index, field) in profile.fields().iter().enumerate() {
        if index > 0 {
            line.push(b' ');
        }
        let key = profile.key_of_field(index);
        let mut value = key.map_or(Value::Absent, |key| record.value(key));
        if key == Some(crate::profile::Key::ClearingMmdd) && matches!(value, Value::Str("")) {
            value = Value::Str(&mmdd);
        }
        if key == Some(crate::profile::Key::PanMasked)
            && let Value::Str(pan) = value
            && looks_unmasked(pan)
        {
            return Err((
                index,
                "a full PAN: files carry PANs masked (mask_pan)".into(),
            ));
        }
        encode_field(line, field.kind, field.width, value).map_err(|problem| (index, problem))?;
    }
    Ok(())
}

/// More than 10 digits and no mask: poskit never writes a full PAN to a file.
fn looks_unmasked(pan: &str) -> bool {
    !pan.contains('*') && pan.bytes().filter(u8::is_ascii_digit).count() > 10
}

/// `pan` masked as the files carry it: first 6 and last 4 digits, `*` between.
pub fn mask_pan(pan: &str) -> String {
    let len = pan.chars().count();
    if len <= 10 {
        return "*".repeat(len);
    }
    pan.chars()
        .enumerate()
        .map(|(i, ch)| if i < 6 || i >= len - 4 { ch } else { '*' })
        .collect()
}

fn too_wide(value: impl fmt::Display, width: usize) -> String {
    format!("{value:?} is wider than {width}", value = value.to_string())
}

fn encode_field(
    line: &mut Vec<u8>,
    kind: FieldKind,
    width: usize,
    value: Value<'_>,
) -> Result<(), String> {
    let pad = |line: &mut Vec<u8>, byte: u8, count: usize| {
        line.extend(std::iter::repeat_n(byte, count));
    };
    match (kind, value) {
        (FieldKind::N, Value::Num(n)) => {
            let digits = n.to_string();
            if digits.len() > width {
                return Err(too_wide(n, width));
            }
            pad(line, b'0', width - digits.len());
            line.extend_from_slice(digits.as_bytes());
        }
        (FieldKind::N, Value::Str(text)) => {
            if !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{text:?} is not digits"));
            }
            if text.len() > width {
                return Err(too_wide(text, width));
            }
            pad(line, b'0', width - text.len());
            line.extend_from_slice(text.as_bytes());
        }
        (FieldKind::An, Value::Str(text)) => {
            if !text.bytes().all(|b| (0x20..=0x7E).contains(&b)) {
                return Err(format!("{text:?} is not printable ASCII"));
            }
            if text.len() > width {
                return Err(too_wide(text, width));
            }
            line.extend_from_slice(text.as_bytes());
            pad(line, b' ', width - text.len());
        }
        (FieldKind::An, Value::Flag(set, letter)) => line.push(if set { letter } else { b' ' }),
        (FieldKind::Text, Value::Str(text)) => {
            let bytes = gbk::encode_cut(text, width)
                .map_err(|ch| format!("{ch:?} cannot be written in GBK"))?;
            line.extend_from_slice(&bytes);
            pad(line, b' ', width - bytes.len());
        }
        (FieldKind::Fee, Value::Fee(fee)) => {
            let digits = fee.unsigned_abs().to_string();
            if digits.len() > width - 1 {
                return Err(too_wide(fee, width));
            }
            line.push(if fee < 0 { b'D' } else { b'C' });
            pad(line, b'0', width - 1 - digits.len());
            line.extend_from_slice(digits.as_bytes());
        }
        (kind, Value::Absent) => match kind {
            FieldKind::N => pad(line, b'0', width),
            FieldKind::An | FieldKind::Text => pad(line, b' ', width),
            FieldKind::Fee => {
                line.push(b'C');
                pad(line, b'0', width - 1);
            }
        },
        (kind, _) => unreachable!("profile validation matches key shapes to kinds ({kind:?})"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pans_are_masked() {
        assert_eq!(mask_pan("6222021234567890123"), "622202*********0123");
        assert_eq!(mask_pan("6222021234567890"), "622202******7890");
        assert!(looks_unmasked("6222021234567890"));
        assert!(!looks_unmasked("622202******7890"));
        assert!(!looks_unmasked(""));
    }

    #[test]
    fn fees_carry_their_sign() {
        let mut line = Vec::new();
        encode_field(&mut line, FieldKind::Fee, 12, Value::Fee(150)).unwrap();
        encode_field(&mut line, FieldKind::Fee, 12, Value::Fee(-7)).unwrap();
        assert_eq!(line, b"C00000000150D00000000007");
        assert!(encode_field(&mut line, FieldKind::Fee, 3, Value::Fee(100)).is_err());
    }
}
