//! `poskit mac` and `poskit pinblock` as a user runs them, checked against the
//! independent known-answer vectors of `crates/security/testdata/vectors.json`.

use std::process::{Command, Output};

use serde_json::{Value, json};

fn poskit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args(args)
        .output()
        .expect("the poskit binary runs")
}

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../security/testdata/vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("vectors.json is readable");
    serde_json::from_str(&text).expect("vectors.json parses")
}

fn cases(section: &str) -> Vec<Value> {
    let list = vectors()[section].as_array().expect("a list").clone();
    assert!(!list.is_empty(), "no {section} vectors");
    list
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn text(v: &Value) -> &str {
    v.as_str().expect("a string")
}

#[test]
fn mac_prints_what_the_independent_implementation_computes() {
    let cases = cases("mac");
    assert!(
        cases.iter().any(|c| c["data"] == ""),
        "the empty input is covered"
    );
    for case in &cases {
        let o = poskit(&[
            "mac",
            "--algo",
            text(&case["algo"]),
            "--key",
            text(&case["key"]),
            "--data",
            text(&case["data"]),
        ]);
        assert_eq!(o.status.code(), Some(0), "{case}: {}", stderr(&o));
        assert_eq!(stdout(&o), text(&case["mac"]), "{case}");
    }
}

#[test]
fn mac_json_is_the_algorithm_and_the_mac_as_read() {
    for case in cases("mac")
        .iter()
        .filter(|c| text(&c["data"]).len() == 2 * 9)
    {
        let o = poskit(&[
            "mac",
            "--algo",
            text(&case["algo"]),
            "--key",
            text(&case["key"]),
            "--data",
            text(&case["data"]),
            "--json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
        assert_eq!(v, json!({"algo": case["algo"], "mac": case["mac"]}));
        assert!(!stdout(&o).contains(text(&case["key"])));
    }
}

#[test]
fn mac_data_may_be_spaced_and_lowercase() {
    let case = &cases("mac")[4]; // cup-ecb, 8-byte key, 9 bytes of data
    assert_eq!(
        (text(&case["algo"]), text(&case["data"]).len()),
        ("cup-ecb", 18)
    );
    let data = text(&case["data"]).to_ascii_lowercase();
    let spaced = format!("{} {}", &data[..8], &data[8..]);
    let o = poskit(&[
        "mac",
        "--algo",
        text(&case["algo"]),
        "--key",
        &text(&case["key"]).to_ascii_lowercase(),
        "--data",
        &spaced,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), text(&case["mac"]));
}

fn pinblock_args(case: &Value) -> Vec<&str> {
    let mut args = vec![
        "pinblock",
        "--pan",
        text(&case["pan"]),
        "--pin",
        text(&case["pin"]),
    ];
    if let Some(key) = case["key"].as_str() {
        args.extend(["--key", key]);
    }
    if case["algorithm"] == "sm4" {
        args.push("--sm4");
    }
    args
}

#[test]
fn pinblock_prints_what_the_independent_implementation_computes() {
    for case in cases("pin_block") {
        let o = poskit(&pinblock_args(&case));
        assert_eq!(o.status.code(), Some(0), "{case}: {}", stderr(&o));
        assert_eq!(stdout(&o), text(&case["pin_block"]), "{case}");
    }
}

#[test]
fn pinblock_json_names_format_and_algorithm_and_never_echoes_the_pin_or_key() {
    for case in cases("pin_block") {
        let mut args = pinblock_args(&case);
        args.push("--json");
        let o = poskit(&args);
        assert_eq!(o.status.code(), Some(0), "{case}: {}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
        assert_eq!(
            v,
            json!({
                "format": "iso9564-0",
                "algorithm": case["algorithm"],
                "pin_block": case["pin_block"],
            }),
            "{case}"
        );
        let printed = format!("{}{}", stdout(&o), stderr(&o));
        assert!(!printed.contains(&format!("\"{}\"", text(&case["pin"]))));
        if let Some(key) = case["key"].as_str() {
            assert!(!printed.contains(key));
        }
    }
}

#[test]
fn pinblock_help_says_it_is_a_test_key_tool() {
    let o = poskit(&["pinblock", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = stdout(&o);
    assert!(help.contains("TEST-KEY TOOL"), "{help}");
    assert!(help.contains("never type a production key or a real cardholder's PIN"));
}

#[test]
fn bad_security_arguments_get_one_line_naming_the_argument_and_exit_2() {
    const PAN: &str = "6222021234567890128";
    const K8: &str = "0123456789ABCDEF";
    let cases: [(&[&str], &str); 13] = [
        (
            &["mac", "--algo", "md5", "--key", K8, "--data", "00"],
            "--algo",
        ),
        (
            &["mac", "--algo", "cup-ecb", "--key", "0123", "--data", "00"],
            "--key",
        ),
        (
            &[
                "mac",
                "--algo",
                "cup-ecb",
                "--key",
                "0123456789ABCDEG",
                "--data",
                "00",
            ],
            "--key",
        ),
        (
            &["mac", "--algo", "cup-ecb", "--key", K8, "--data", "0g"],
            "--data",
        ),
        (
            &["mac", "--algo", "cup-ecb", "--key", K8, "--data", "000"],
            "--data",
        ),
        (
            &["mac", "--algo", "x919", "--key", K8, "--data", "00"],
            "--key",
        ),
        (
            &["mac", "--algo", "cup-ecb-sm4", "--key", K8, "--data", "00"],
            "--key",
        ),
        (&["pinblock", "--pan", PAN, "--pin", "123"], "--pin"),
        (
            &["pinblock", "--pan", PAN, "--pin", "1234567890123"],
            "--pin",
        ),
        (&["pinblock", "--pan", PAN, "--pin", "12a4"], "--pin"),
        (
            &["pinblock", "--pan", "622202123456", "--pin", "1234"],
            "--pan",
        ),
        (
            &[
                "pinblock",
                "--pan",
                "62220212345678901234",
                "--pin",
                "1234",
                "--key",
                K8,
            ],
            "--pan",
        ),
        (
            &[
                "pinblock", "--pan", PAN, "--pin", "1234", "--key", K8, "--sm4",
            ],
            "--key",
        ),
    ];
    for (args, argument) in cases {
        let o = poskit(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(argument), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(!err.contains(K8), "{args:?}: the key is echoed: {err}");
    }
}

#[test]
fn a_wrong_pin_never_appears_in_the_error() {
    let o = poskit(&[
        "pinblock",
        "--pan",
        "6222021234567890128",
        "--pin",
        "98765x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("98765"), "{}", stderr(&o));
}
