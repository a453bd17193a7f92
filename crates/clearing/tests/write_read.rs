//! Writing and reading back: every file type, Chinese names, fees, line ends, atomicity.

mod common;

use common::{LONG_SHOP, SHOP, as_acomn, date, dispute, txn};
use poskit_clearing::{
    FileKind, Profile, Records, TxnRecord, parse_file, write_file, write_records,
};

#[test]
fn acoma_round_trips_with_chinese_names() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<TxnRecord> = (0..50).map(txn).collect();
    let path = write_file(dir.path(), FileKind::Acoma, date(), &records).unwrap();
    assert_eq!(path.file_name().unwrap(), "IND25030432ACOMA");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 50 * 952, "951 bytes and a \\n per record");
    let parsed = parse_file(&path, None).unwrap();
    assert_eq!(parsed.kind, FileKind::Acoma);
    assert_eq!(parsed.date, date());
    assert_eq!(parsed.records, Records::Txn(records));
}

#[test]
fn acomn_round_trips_without_the_acoma_fields() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<TxnRecord> = (0..20).map(txn).collect();
    let path = write_file(dir.path(), FileKind::Acomn, date(), &records).unwrap();
    assert_eq!(path.file_name().unwrap(), "IND25030401ACOMN");
    assert_eq!(std::fs::read(&path).unwrap().len(), 20 * 300);
    let parsed = parse_file(&path, None).unwrap();
    let expected: Vec<TxnRecord> = records.into_iter().map(as_acomn).collect();
    assert_eq!(parsed.records, Records::Txn(expected));
}

#[test]
fn aerra_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<_> = (0..5).map(dispute).collect();
    let path = write_file(dir.path(), FileKind::Aerra, date(), &records).unwrap();
    assert_eq!(path.file_name().unwrap(), "IND25030432AERRA");
    assert_eq!(std::fs::read(&path).unwrap().len(), 5 * 582);
    let parsed = parse_file(&path, None).unwrap();
    assert_eq!(parsed.records, Records::Dispute(records));
}

#[test]
fn the_merchant_name_is_gbk_and_a_long_one_is_cut_at_a_character() {
    let profile = Profile::builtin(FileKind::Acoma);
    let field = &profile.fields()[profile.index_of("merchant_name").unwrap()];
    let mut record = txn(0);
    record.merchant_name = SHOP.into();
    let mut bytes = Vec::new();
    write_records(&mut bytes, profile, date(), &[record.clone()]).unwrap();
    let name = &bytes[field.offset..field.offset + field.width];
    let (gbk, _, _) = encoding_rs::GBK.encode(SHOP);
    assert_eq!(&name[..gbk.len()], &gbk[..], "GBK, not UTF-8");
    assert!(name[gbk.len()..].iter().all(|&b| b == b' '));

    record.merchant_name = LONG_SHOP.into();
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), FileKind::Acoma, date(), &[record]).unwrap();
    let Records::Txn(read) = parse_file(&path, None).unwrap().records else {
        panic!("transactions")
    };
    let expected: String = LONG_SHOP.chars().take(20).collect();
    assert_eq!(read[0].merchant_name, expected, "20 characters = 40 bytes");
}

#[test]
fn fee_c_is_positive_and_d_negative() {
    let profile = Profile::builtin(FileKind::Acoma);
    let mut record = txn(0);
    record.fee_receivable_fen = 250;
    record.fee_payable_fen = -75;
    record.merchant_fee_fen = 0;
    let mut bytes = Vec::new();
    write_records(&mut bytes, profile, date(), &[record]).unwrap();
    let field = |name: &str| {
        let f = &profile.fields()[profile.index_of(name).unwrap()];
        String::from_utf8(bytes[f.offset..f.offset + f.width].to_vec()).unwrap()
    };
    assert_eq!(field("fee_receivable_fen"), "C00000000250");
    assert_eq!(field("fee_payable_fen"), "D00000000075");
    assert_eq!(field("merchant_fee_fen"), "C00000000");

    let date = date();
    let Records::Txn(read) = poskit_clearing::parse_bytes(&bytes, profile, date).unwrap() else {
        panic!("transactions")
    };
    assert_eq!(
        (read[0].fee_receivable_fen, read[0].fee_payable_fen),
        (250, -75)
    );
}

/// A change to a good record, and what the error it causes says.
type Case = (fn(&mut TxnRecord), &'static str);

#[test]
fn too_wide_values_are_errors_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [Case; 4] = [
        (
            |r| r.stan = 1_234_567,
            "record 1, field stan (3): \"1234567\" is wider than 6",
        ),
        (|r| r.tid = "123456789".into(), "field tid (12)"),
        (
            |r| r.fee_payable_fen = -1_000_000_000_000,
            "field fee_payable_fen (22)",
        ),
        (
            |r| r.pan_masked = "6222021234567890".into(),
            "field pan_masked (5): a full PAN",
        ),
    ];
    for (change, wanted) in cases {
        let mut record = txn(0);
        change(&mut record);
        let err = write_file(dir.path(), FileKind::Acoma, date(), &[record]).unwrap_err();
        assert!(err.to_string().contains(wanted), "{err} / {wanted}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "no file, no temporary file left: {left:?}");
}

#[test]
fn records_of_the_wrong_type_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_file(dir.path(), FileKind::Aerra, date(), &[txn(0)]).unwrap_err();
    assert_eq!(err.to_string(), "AERRA files do not hold transactions");
}

#[test]
fn crlf_line_ends_and_one_trailing_space_are_read() {
    let profile = Profile::builtin(FileKind::Acomn);
    let records: Vec<TxnRecord> = (0..3).map(txn).collect();
    let mut bytes = Vec::new();
    write_records(&mut bytes, profile, date(), &records).unwrap();
    let lines: Vec<&[u8]> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut mixed = Vec::new();
    mixed.extend_from_slice(lines[0]);
    mixed.extend_from_slice(b"\r\n");
    mixed.extend_from_slice(lines[1]);
    mixed.extend_from_slice(b" \n");
    mixed.extend_from_slice(lines[2]); // no line end on a whole last record
    let read = poskit_clearing::parse_bytes(&mixed, profile, date()).unwrap();
    let expected: Vec<TxnRecord> = records.into_iter().map(as_acomn).collect();
    assert_eq!(read, Records::Txn(expected));
}

#[test]
fn an_empty_clearing_date_becomes_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut record = txn(0);
    record.clearing_mmdd.clear();
    let path = write_file(dir.path(), FileKind::Acoma, date(), &[record]).unwrap();
    let Records::Txn(read) = parse_file(&path, None).unwrap().records else {
        panic!("transactions")
    };
    assert_eq!(read[0].clearing_mmdd, "0304");
}
