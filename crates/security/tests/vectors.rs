//! Known-answer vectors from the independent Python implementation
//! (`testdata/gen_vectors.py`, see `testdata/README.md`).

use poskit_security::{
    CipherFamily, EncryptedPinBlock, KeyLayout, MacAlgorithm, Pin, PinBlockFormat, SecretKey,
    WorkingKeys, build_field62, check_value, compute_mac, decrypt_pin, encrypt_pin, parse_field62,
    pin_block_format0, pin_block_format0_sm4, unwrap_key, verify_mac, wrap_key,
};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("../testdata/vectors.json")).expect("vectors.json parses")
}

fn cases(section: &str) -> Vec<Value> {
    let v = vectors();
    let list = v[section].as_array().expect("section is a list").clone();
    assert!(!list.is_empty(), "no {section} vectors");
    list
}

fn text(v: &Value) -> &str {
    v.as_str().expect("a string")
}

fn key(v: &Value) -> SecretKey {
    SecretKey::from_hex(text(v)).expect("a test key")
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(text(v)).expect("hex")
}

fn family(v: &Value) -> CipherFamily {
    match text(v) {
        "des" => CipherFamily::Des,
        "sm4" => CipherFamily::Sm4,
        other => panic!("unknown family {other}"),
    }
}

#[test]
fn every_mac_matches_the_independent_implementation() {
    let cases = cases("mac");
    // 3 CUP ECB key lengths + SM4 + X9.19, each over 9 data lengths (0 … 100 bytes).
    assert_eq!(cases.len(), 5 * 9);
    for case in &cases {
        let algo: MacAlgorithm = text(&case["algo"]).parse().expect("known algorithm");
        let k = key(&case["key"]);
        let data = bytes(&case["data"]);
        let mac = compute_mac(algo, &k, &data).expect("MAC");
        assert_eq!(mac.readable(), text(&case["mac"]), "{case}");
        assert_eq!(mac.to_string(), text(&case["mac"]));
        assert!(verify_mac(algo, &k, &data, mac.as_bytes()).expect("verify"));
    }
}

#[test]
fn cup_ecb_macs_travel_as_the_eight_characters_and_x919_as_eight_binary_bytes() {
    for case in cases("mac") {
        let algo: MacAlgorithm = text(&case["algo"]).parse().expect("known algorithm");
        let mac = compute_mac(algo, &key(&case["key"]), &bytes(&case["data"])).expect("MAC");
        let readable = text(&case["mac"]);
        match algo {
            MacAlgorithm::CupEcb | MacAlgorithm::CupEcbSm4 => {
                assert_eq!(readable.len(), 8);
                assert_eq!(mac.as_bytes(), readable.as_bytes());
            }
            MacAlgorithm::X919 => {
                assert_eq!(readable.len(), 16);
                assert_eq!(
                    mac.as_bytes().as_slice(),
                    hex::decode(readable).expect("hex")
                );
            }
        }
    }
}

#[test]
fn every_pin_block_matches_the_independent_implementation() {
    let cases = cases("pin_block");
    assert!(cases.iter().any(|c| c["pan"] == "123456789012345678"));
    for case in &cases {
        let pan = text(&case["pan"]);
        let pin = Pin::new(text(&case["pin"])).expect("a PIN");
        let algorithm = text(&case["algorithm"]);
        let format = if algorithm == "sm4" {
            PinBlockFormat::Iso0Sm4
        } else {
            PinBlockFormat::Iso0
        };
        let clear = match format {
            PinBlockFormat::Iso0 => pin_block_format0(pan, &pin),
            PinBlockFormat::Iso0Sm4 => pin_block_format0_sm4(pan, &pin),
        }
        .expect("clear block");
        assert_eq!(clear.dangerous_expose(), bytes(&case["clear"]), "{case}");
        assert_eq!(clear.pin(pan).expect("well formed"), pin);
        if algorithm == "clear" {
            assert_eq!(case["pin_block"], case["clear"]);
            continue;
        }
        let pik = key(&case["key"]);
        let expected = match (algorithm, pik.len()) {
            ("des", 8) | ("3des", 16 | 24) | ("sm4", 16) => algorithm,
            _ => panic!("{algorithm} with a {}-byte key", pik.len()),
        };
        assert_eq!(algorithm, expected);
        let block = encrypt_pin(format, &pik, pan, &pin).expect("encrypt");
        assert_eq!(
            block.dangerous_expose(),
            bytes(&case["pin_block"]),
            "{case}"
        );
        // The host's side, from field 52 as received.
        let field52 = EncryptedPinBlock::from_bytes(format, &bytes(&case["pin_block"]))
            .expect("a block of the right size");
        assert_eq!(decrypt_pin(&pik, pan, &field52).expect("decrypt"), pin);
    }
}

#[test]
fn pin_block_matches_the_worked_example_of_the_spec() {
    // spec/cup-pos.md §3.4: PIN 123456, PAN 123456789012345678 → 06 12 53 DF FE DC BA 98.
    let pin = Pin::new("123456").expect("a PIN");
    let block = pin_block_format0("123456789012345678", &pin).expect("clear block");
    assert_eq!(
        block.dangerous_expose(),
        [0x06, 0x12, 0x53, 0xDF, 0xFE, 0xDC, 0xBA, 0x98]
    );
}

#[test]
fn every_check_value_matches() {
    let cases = cases("check_value");
    assert_eq!(cases.len(), 4);
    for case in &cases {
        let cv = check_value(family(&case["family"]), &key(&case["key"])).expect("check value");
        assert_eq!(hex::encode_upper(cv), text(&case["check_value"]), "{case}");
    }
}

#[test]
fn every_wrapped_key_matches_and_unwraps() {
    for case in cases("key_wrap") {
        let (family, kek, clear) = (
            family(&case["family"]),
            key(&case["kek"]),
            key(&case["key"]),
        );
        let wrapped = wrap_key(family, &kek, &clear).expect("wrap");
        assert_eq!(wrapped, bytes(&case["wrapped"]), "{case}");
        assert_eq!(unwrap_key(family, &kek, &wrapped).expect("unwrap"), clear);
    }
}

#[test]
fn field62_layouts_build_and_parse_as_the_independent_implementation_does() {
    let cases = cases("field62");
    for code in ["001", "003", "004"] {
        assert!(
            cases.iter().any(|c| c["layout"] == code),
            "no {code} vector"
        );
    }
    for case in &cases {
        let layout = KeyLayout::from_code(text(&case["layout"])).expect("a layout");
        let tmk = key(&case["tmk"]);
        let keys: Vec<SecretKey> = case["keys"]
            .as_array()
            .expect("a list")
            .iter()
            .map(key)
            .collect();
        let working = WorkingKeys {
            pik: keys[0].clone(),
            mak: keys[1].clone(),
            tdk: keys.get(2).cloned(),
        };
        let field62 = bytes(&case["field62"]);
        assert_eq!(field62.len(), layout.field62_bytes());
        assert_eq!(
            build_field62(layout, &tmk, &working).expect("build"),
            field62,
            "{case}"
        );
        let parsed = parse_field62(layout, &tmk, &field62).expect("parse");
        assert_eq!(parsed, working);
        // The MAK the terminal MACs with (single-length when its second half is zero).
        let mac = compute_mac(
            MacAlgorithm::CupEcb,
            &parsed.mac_key(),
            &bytes(&case["mac_data"]),
        )
        .expect("MAC");
        assert_eq!(mac.readable(), text(&case["mac"]), "{case}");
    }
}
