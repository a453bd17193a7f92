//! `poskit decode` and `poskit encode` as a user runs them.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const TEST_MAK: &str = "0123456789ABCDEF";

fn poskit(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args(args)
        .env("LANG", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        // A child that refuses oversized input stops reading: a broken pipe is expected.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn sample_path() -> String {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "..",
        "samples",
        "cup-sale-0200.hex",
    ]
    .iter()
    .collect();
    p.to_string_lossy().into_owned()
}

fn sample_hex() -> String {
    std::fs::read_to_string(sample_path())
        .unwrap()
        .trim()
        .to_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn decode_prints_fields_with_card_data_masked_and_the_mac_checked() {
    let o = poskit(
        &["decode", "--file", &sample_path(), "--mak", TEST_MAK],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    insta::assert_snapshot!("decode_sample", stdout(&o));
}

#[test]
fn decode_json_has_the_documented_shape() {
    let o = poskit(
        &[
            "decode",
            "--hex",
            &sample_hex(),
            "--json",
            "--mak",
            TEST_MAK,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["mti"], "0200");
    assert_eq!(v["tpdu"], "6000030000");
    assert_eq!(v["fields"]["3"], "000000");
    assert_eq!(v["fields"]["2"], "622202*********0128");
    assert_eq!(v["fields"]["41"], "12345678");
    assert_eq!(v["fields"]["52"], "****************");
    assert_eq!(v["mac_ok"], true);
    insta::assert_snapshot!("decode_sample_json", stdout(&o));
}

#[test]
fn decode_without_a_mak_has_no_mac_ok() {
    let o = poskit(&["decode", "--hex", &sample_hex(), "--json"], None);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v.get("mac_ok").is_none());
}

#[test]
fn a_wrong_mak_reports_a_mismatch_and_exits_1() {
    let o = poskit(
        &[
            "decode",
            "--hex",
            &sample_hex(),
            "--json",
            "--mak",
            "FEDCBA9876543210",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["mac_ok"], false);
}

#[test]
fn a_truncated_frame_names_the_part_and_offset_and_exits_1() {
    let hex = sample_hex();
    let o = poskit(&["decode", "--hex", &hex[..hex.len() - 20]], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "poskit: frame length at byte 0: length prefix says 133 bytes but 123 follow"
    );
}

#[test]
fn a_bad_bcd_digit_names_the_field() {
    let mut hex = sample_hex();
    // Field 3 starts at byte 13 (frame prefix) + 2 (MTI) + 8 (bitmap) + 11 (field 2).
    hex.replace_range(68..70, "0A");
    let o = poskit(&["decode", "--no-frame", "--hex", &hex[26..]], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "poskit: field 3 at byte 21: byte 0A is not packed BCD"
    );
}

#[test]
fn bad_arguments_get_one_line_and_exit_2() {
    for args in [
        vec!["decode", "--hex", "zz"],
        vec!["decode", "--hex", "00", "--profile", "nope"],
        vec!["decode", "--hex", "00", "--mak", "123"],
        vec!["decode"],
        vec!["encode", "--json", "/nonexistent/file.json"],
        vec!["frobnicate"],
    ] {
        let o = poskit(&args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o).trim().lines().count(),
            1,
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn input_larger_than_the_bound_is_refused_not_read() {
    let huge = "0".repeat(2 << 20);
    let o = poskit(&["decode", "--hex", "-"], Some(&huge));
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o).trim(),
        "poskit: --hex -: larger than 1048576 bytes"
    );
}

#[test]
fn encode_of_decoded_json_gives_back_the_frame() {
    let decoded = poskit(
        &["decode", "--hex", &sample_hex(), "--json", "--unmask"],
        None,
    );
    // The PIN block is never shown, so it cannot come back from JSON: put the sample's back.
    let mut v: serde_json::Value = serde_json::from_str(&stdout(&decoded)).unwrap();
    v["fields"]["52"] = "3D5A0B917C22E48F".into();
    let o = poskit(
        &["encode", "--json", "-", "--mak", TEST_MAK],
        Some(&v.to_string()),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), sample_hex());
}

#[test]
fn encode_rejects_a_masked_pan_with_the_field_and_position() {
    let json = r#"{"mti":"0200","fields":{"2":"622202*********0128","3":"000000"}}"#;
    let o = poskit(&["encode", "--json", "-"], Some(json));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "poskit: field 2 (n) cannot hold '*' at position 6"
    );
}

#[test]
fn encode_explains_that_a_masked_pin_block_must_be_given_back() {
    let decoded = poskit(
        &["decode", "--hex", &sample_hex(), "--json", "--unmask"],
        None,
    );
    let o = poskit(&["encode", "--json", "-"], Some(&stdout(&decoded)));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("field 52 (PIN data) is never shown by decode"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn encode_iso87_ascii_without_frame() {
    let json = r#"{"profile":"iso87-ascii","mti":"0800","fields":{"11":"000001","70":"301"}}"#;
    let o = poskit(&["encode", "--json", "-"], Some(json));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let bytes = hex::decode(stdout(&o).trim()).unwrap();
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        "080080200000000000000400000000000000000001301"
    );
}
