//! `poskit mac` and `poskit pinblock` as a user runs them, checked against the
//! independent known-answer vectors of `crates/security/testdata/vectors.json`.

use std::process::{Command, Output};

fn poskit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args(args)
        .output()
        .unwrap()
}

fn vectors() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../security/testdata/vectors.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

#[test]
fn mac_prints_what_the_independent_implementation_computes() {
    for case in vectors()["mac"].as_array().unwrap() {
        let data = case["data"].as_str().unwrap();
        if data.is_empty() {
            continue;
        }
        let o = poskit(&[
            "mac",
            "--algo",
            case["algo"].as_str().unwrap(),
            "--key",
            case["key"].as_str().unwrap(),
            "--data",
            data,
        ]);
        assert_eq!(o.status.code(), Some(0));
        assert_eq!(out(&o), case["mac"].as_str().unwrap(), "{case}");
    }
}

#[test]
fn mac_json_names_the_algorithm() {
    let o = poskit(&[
        "mac",
        "--algo",
        "x919",
        "--key",
        "0123456789ABCDEFFEDCBA9876543210",
        "--data",
        "0200",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["algo"], "x919");
    assert_eq!(v["mac"].as_str().unwrap().len(), 16);
}

#[test]
fn pinblock_prints_what_the_independent_implementation_computes() {
    for case in vectors()["pin_block"].as_array().unwrap() {
        let mut args = vec![
            "pinblock",
            "--pan",
            case["pan"].as_str().unwrap(),
            "--pin",
            case["pin"].as_str().unwrap(),
        ];
        if let Some(key) = case["key"].as_str() {
            args.extend(["--key", key]);
        }
        if case["algorithm"] == "sm4" {
            args.push("--sm4");
        }
        args.push("--json");
        let o = poskit(&args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["pin_block"], case["pin_block"], "{case}");
        assert_eq!(v["algorithm"], case["algorithm"]);
        // Neither the PIN nor the key is ever echoed.
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(!text.contains(&format!("\"{}\"", case["pin"].as_str().unwrap())));
        if let Some(key) = case["key"].as_str() {
            assert!(!text.contains(key));
        }
    }
}

#[test]
fn pinblock_help_says_it_is_for_test_keys() {
    let o = poskit(&["pinblock", "--help"]);
    assert!(out(&o).contains("TEST-KEY TOOL"));
}

#[test]
fn bad_security_arguments_get_one_line_and_exit_2() {
    for args in [
        vec![
            "mac",
            "--algo",
            "md5",
            "--key",
            "0123456789ABCDEF",
            "--data",
            "00",
        ],
        vec!["mac", "--algo", "cup-ecb", "--key", "0123", "--data", "00"],
        vec![
            "mac",
            "--algo",
            "cup-ecb",
            "--key",
            "0123456789ABCDEF",
            "--data",
            "0g",
        ],
        vec![
            "mac",
            "--algo",
            "x919",
            "--key",
            "0123456789ABCDEF",
            "--data",
            "00",
        ],
        vec!["pinblock", "--pan", "6222021234567890128", "--pin", "123"],
        vec!["pinblock", "--pan", "62220212", "--pin", "1234"],
        vec![
            "pinblock",
            "--pan",
            "6222021234567890128",
            "--pin",
            "1234",
            "--key",
            "0123456789ABCDEF",
            "--sm4",
        ],
    ] {
        let o = poskit(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}
