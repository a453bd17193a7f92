//! `poskit clearing parse` as an operator runs it: on a file the library wrote, as text
//! and JSON, and on a bad one.

use std::path::Path;
use std::process::{Command, Output};

use poskit_clearing::{ClearingDate, FileKind, TxnRecord, write_file};
use serde_json::Value;

fn poskit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args(args)
        .env("LANG", "C")
        .output()
        .unwrap()
}

fn record(i: u32) -> TxnRecord {
    TxnRecord {
        acquirer_inst: "48020000".into(),
        forwarding_inst: "48020000".into(),
        stan: 100 + i,
        transmission_time: "0304101500".into(),
        pan_masked: "622202******7890".into(),
        amount_fen: 12_345 + u64::from(i),
        mti: "0200".into(),
        processing_code: "000000".into(),
        tid: "10000001".into(),
        mid: "898310048160001".into(),
        rrn: format!("{:012}", 7_000 + i),
        response_code: "00".into(),
        fee_receivable_fen: 25,
        fee_payable_fen: -10,
        reversal: i == 1,
        merchant_name: "北京市朝阳区某某便利店".into(),
        currency: "156".into(),
        ..TxnRecord::default()
    }
}

fn write_acoma(dir: &Path, count: u32) -> String {
    let date = ClearingDate::new(2025, 3, 4).unwrap();
    let records: Vec<TxnRecord> = (0..count).map(record).collect();
    let path = write_file(dir, FileKind::Acoma, date, &records).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn parse_prints_the_type_date_and_first_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_acoma(dir.path(), 12);
    let output = poskit(&["clearing", "parse", &path]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.starts_with(&format!(
            "{path}: ACOMA, clearing date 2025-03-04, 12 records\n"
        )),
        "{text}"
    );
    assert!(text.contains("622202******7890"), "{text}");
    assert!(text.contains("123.45"), "amounts in yuan: {text}");
    assert!(text.contains("北京市朝阳区某某便利店"), "{text}");
    assert!(text.contains("... and 2 more"), "{text}");
}

#[test]
fn parse_json_gives_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_acoma(dir.path(), 3);
    let output = poskit(&["clearing", "parse", &path, "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["kind"], "ACOMA");
    assert_eq!(doc["date"], "2025-03-04");
    let records = doc["records"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[1]["stan"], 101);
    assert_eq!(records[1]["amount_fen"], 12_346);
    assert_eq!(records[1]["reversal"], true);
    assert_eq!(records[1]["fee_payable_fen"], -10);
    assert_eq!(records[1]["clearing_mmdd"], "0304");
    assert_eq!(records[1]["merchant_name"], "北京市朝阳区某某便利店");
}

#[test]
fn a_bad_file_is_one_line_naming_the_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_acoma(dir.path(), 5);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[3 * 952 + 24] = b'x'; // line 4, field stan (3): offset 24
    std::fs::write(&path, &bytes).unwrap();
    let output = poskit(&["clearing", "parse", &path, "--json"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "nothing printed of a bad file");
    let err = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        err,
        format!("poskit: {path}: line 4, field stan (3): not digits: \"x00103\"\n")
    );
}

#[test]
fn an_unknown_name_and_a_bad_profile() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("settlement.txt");
    std::fs::write(&other, b"").unwrap();
    let output = poskit(&["clearing", "parse", other.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("settlement.txt: unknown file type"));

    let path = write_acoma(dir.path(), 1);
    let output = poskit(&["clearing", "parse", &path, "--profile", "/nonexistent.toml"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unreadable --profile is a bad argument"
    );

    let profile = dir.path().join("p.toml");
    std::fs::write(
        &profile,
        "kind = \"ACOMA\"\nfields = [{ name = \"stan\", width = 6, kind = \"n\" }]\n",
    )
    .unwrap();
    let output = poskit(&[
        "clearing",
        "parse",
        &path,
        "--profile",
        profile.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("the profile cannot be used: ACOMA profiles need a field \"acquirer_inst\""),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
