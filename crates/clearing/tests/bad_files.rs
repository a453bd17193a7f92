//! Every kind of bad file is refused whole, with the line and the field named.

mod common;

use std::path::PathBuf;

use common::{date, dispute, txn};
use poskit_clearing::{
    FileKind, ParseError, Profile, TxnRecord, file_name, parse_file, write_records,
};

/// A good file of `kind` with 20 records, as bytes.
fn good(kind: FileKind) -> Vec<u8> {
    let mut bytes = Vec::new();
    let profile = Profile::builtin(kind);
    if kind == FileKind::Aerra {
        let records: Vec<_> = (0..20).map(dispute).collect();
        write_records(&mut bytes, profile, date(), &records).unwrap();
    } else {
        let records: Vec<TxnRecord> = (0..20).map(txn).collect();
        write_records(&mut bytes, profile, date(), &records).unwrap();
    }
    bytes
}

/// Where field `name` of line `line` (1-based) starts in a file of `kind`.
fn at(kind: FileKind, line: usize, name: &str) -> usize {
    let profile = Profile::builtin(kind);
    let field = &profile.fields()[profile.index_of(name).unwrap()];
    (line - 1) * (profile.record_len() + 1) + field.offset
}

/// Writes `bytes` under the switch's name of `kind` and parses it: must fail.
fn refused(kind: FileKind, bytes: &[u8]) -> (tempfile::TempDir, ParseError) {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join(file_name(kind, date()));
    std::fs::write(&path, bytes).unwrap();
    match parse_file(&path, None) {
        Ok(parsed) => panic!("accepted, {} records", parsed.records.len()),
        Err(err) => (dir, err),
    }
}

#[test]
fn a_record_of_the_wrong_width() {
    let mut bytes = good(FileKind::Acoma);
    let start = at(FileKind::Acoma, 12, "acquirer_inst");
    bytes.remove(start + 5);
    let (_dir, err) = refused(FileKind::Acoma, &bytes);
    assert_eq!(err.to_string(), "line 12: 950 bytes, ACOMA records are 951");
    assert_eq!(err.line(), Some(12));
}

#[test]
fn bytes_that_are_not_gbk() {
    let mut bytes = good(FileKind::Acoma);
    let start = at(FileKind::Acoma, 3, "merchant_name");
    bytes[start] = 0xB1;
    bytes[start + 1] = b'!'; // a lead byte, then not a trail byte
    let (_dir, err) = refused(FileKind::Acoma, &bytes);
    assert_eq!(err.to_string(), "line 3, field merchant_name (41): not GBK");

    let mut bytes = good(FileKind::Aerra);
    bytes[at(FileKind::Aerra, 2, "merchant_name") + 3] = 0xFF;
    let (_dir, err) = refused(FileKind::Aerra, &bytes);
    assert_eq!(err.to_string(), "line 2, field merchant_name (44): not GBK");
}

#[test]
fn a_name_cut_mid_character_is_read_without_its_last_byte() {
    let mut bytes = good(FileKind::Acoma);
    // Record 1 is "北京市朝阳区某某便利店" (22 bytes): cut its last character in half.
    bytes[at(FileKind::Acoma, 1, "merchant_name") + 21] = b' ';
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name(FileKind::Acoma, date()));
    std::fs::write(&path, &bytes).unwrap();
    let parsed = parse_file(&path, None).unwrap();
    let poskit_clearing::Records::Txn(records) = parsed.records else {
        panic!("transactions")
    };
    assert_eq!(records[0].merchant_name, "北京市朝阳区某某便利");
}

#[test]
fn a_truncated_last_line() {
    let mut bytes = good(FileKind::Acoma);
    bytes.truncate(bytes.len() - 400);
    let (_dir, err) = refused(FileKind::Acoma, &bytes);
    assert_eq!(
        err.to_string(),
        "line 20: truncated: 552 bytes and no line end at the end of the file, ACOMA records are 951"
    );
}

#[test]
fn a_record_of_another_clearing_date() {
    let mut bytes = good(FileKind::Acoma);
    let start = at(FileKind::Acoma, 7, "clearing_mmdd");
    bytes[start..start + 4].copy_from_slice(b"0305");
    let (_dir, err) = refused(FileKind::Acoma, &bytes);
    assert_eq!(
        err.to_string(),
        "line 7, field clearing_mmdd (39): a record of clearing date 0305, the file is of 0304"
    );

    let mut bytes = good(FileKind::Aerra);
    let start = at(FileKind::Aerra, 4, "clearing_mmdd");
    bytes[start..start + 4].copy_from_slice(b"0303");
    let (_dir, err) = refused(FileKind::Aerra, &bytes);
    assert!(
        err.to_string()
            .starts_with("line 4, field clearing_mmdd (40)"),
        "{err}"
    );
}

#[test]
fn a_non_digit_in_a_numeric_field() {
    let mut bytes = good(FileKind::Acomn);
    bytes[at(FileKind::Acomn, 5, "amount_fen") + 3] = b'x';
    let (_dir, err) = refused(FileKind::Acomn, &bytes);
    assert_eq!(
        err.to_string(),
        "line 5, field amount_fen (6): not digits: \"000x00001028\""
    );
    let mut bytes = good(FileKind::Acoma);
    bytes[at(FileKind::Acoma, 9, "stan")] = b' ';
    let (_dir, err) = refused(FileKind::Acoma, &bytes);
    assert!(
        err.to_string()
            .starts_with("line 9, field stan (3): not digits"),
        "{err}"
    );
}

#[test]
fn a_bad_fee_sign() {
    let mut bytes = good(FileKind::Acoma);
    bytes[at(FileKind::Acoma, 2, "switch_fee_fen")] = b'+';
    let (_dir, err) = refused(FileKind::Acoma, &bytes);
    assert_eq!(
        err.to_string(),
        "line 2, field switch_fee_fen (23): bad fee sign \"+\" (C or D)"
    );
}

#[test]
fn a_bad_flag_and_a_missing_separator() {
    let mut bytes = good(FileKind::Acoma);
    bytes[at(FileKind::Acoma, 4, "reversal_flag")] = b'X';
    let (_dir, err) = refused(FileKind::Acoma, &bytes);
    assert_eq!(
        err.to_string(),
        "line 4, field reversal_flag (37): \"X\" is not a flag ('R' or a space)"
    );
    let mut bytes = good(FileKind::Acoma);
    bytes[at(FileKind::Acoma, 6, "tid") - 1] = b'0';
    let (_dir, err) = refused(FileKind::Acoma, &bytes);
    assert_eq!(
        err.to_string(),
        "line 6: no space between fields before field tid (12)"
    );
}

#[test]
fn an_unknown_file_type() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["IND25030432ACOMA.txt", "IND25030499ALFEE", "report.csv"] {
        let path = dir.path().join(name);
        std::fs::write(&path, good(FileKind::Acoma)).unwrap();
        let err = parse_file(&path, None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{name}: unknown file type")),
            "{err}"
        );
    }
}

#[test]
fn a_profile_of_another_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name(FileKind::Acoma, date()));
    std::fs::write(&path, good(FileKind::Acoma)).unwrap();
    let err = parse_file(&path, Some(Profile::builtin(FileKind::Acomn))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the profile is for ACOMN files, this is an ACOMA file"
    );
}

#[test]
fn an_empty_line_in_the_middle() {
    let mut bytes = good(FileKind::Acomn);
    let at = 3 * 300;
    bytes.insert(at, b'\n');
    let (_dir, err) = refused(FileKind::Acomn, &bytes);
    assert_eq!(err.to_string(), "line 4: 0 bytes, ACOMN records are 299");
}
