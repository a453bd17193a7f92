//! Properties of the security layer.

use poskit_security::{
    KeyLayout, MacAlgorithm, Pin, PinBlockFormat, SecretKey, SecurityError, WorkingKeys,
    compute_mac, decrypt_pin_block, encrypt_pin_block, parse_field62, verify_mac,
};
use proptest::prelude::*;

fn key_of(len: usize) -> impl Strategy<Value = SecretKey> {
    proptest::collection::vec(any::<u8>(), len).prop_map(|b| SecretKey::from_bytes(&b).unwrap())
}

proptest! {
    #[test]
    fn pin_blocks_decrypt_to_the_pin_they_were_made_from(
        pin in "[0-9]{4,12}",
        pan in "[0-9]{13,19}",
        des_key in prop_oneof![key_of(8), key_of(16), key_of(24)],
        sm4_key in key_of(16),
    ) {
        let pin = Pin::new(&pin).unwrap();
        for (format, key) in [(PinBlockFormat::Iso0, &des_key), (PinBlockFormat::Iso0Sm4, &sm4_key)] {
            let block = encrypt_pin_block(format, key, &pan, &pin).unwrap();
            prop_assert_eq!(block.dangerous_expose().len(), format.block_bytes());
            let back = decrypt_pin_block(format, key, &pan, block.dangerous_expose()).unwrap();
            prop_assert_eq!(&back, &pin);
        }
    }

    #[test]
    fn a_mac_verifies_and_any_flipped_bit_breaks_it(
        data in proptest::collection::vec(any::<u8>(), 1..300),
        bit in any::<prop::sample::Index>(),
        key16 in key_of(16),
        key8 in key_of(8),
    ) {
        for (algo, key) in [(MacAlgorithm::CupEcb, &key8), (MacAlgorithm::CupEcb, &key16),
                            (MacAlgorithm::CupEcbSm4, &key16), (MacAlgorithm::X919, &key16)] {
            let mac = compute_mac(algo, key, &data).unwrap();
            prop_assert!(verify_mac(algo, key, &data, mac.as_bytes()).unwrap());
            let mut changed = data.clone();
            let i = bit.index(changed.len() * 8);
            changed[i / 8] ^= 1 << (i % 8);
            // The CUP ECB MAC XORs blocks before encrypting, so a change always reaches
            // the cipher input; a collision on 32 bits is not expected in these runs.
            prop_assert!(!verify_mac(algo, key, &changed, mac.as_bytes()).unwrap(), "{}", algo);
        }
    }
}

#[test]
fn a_pin_block_under_the_wrong_key_is_refused_not_misread() {
    let pin = Pin::new("123456").unwrap();
    let right = SecretKey::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
    let wrong = SecretKey::from_hex("FEDCBA98765432100123456789ABCDEF").unwrap();
    let block =
        encrypt_pin_block(PinBlockFormat::Iso0, &right, "6222021234567890128", &pin).unwrap();
    let e = decrypt_pin_block(
        PinBlockFormat::Iso0,
        &wrong,
        "6222021234567890128",
        block.dangerous_expose(),
    );
    assert_eq!(e.unwrap_err(), SecurityError::PinBlockInvalid);
}

#[test]
fn a_working_key_under_another_tmk_fails_its_check_value() {
    let tmk = SecretKey::from_hex("11111111111111112222222222222222").unwrap();
    let other = SecretKey::from_hex("33333333333333334444444444444444").unwrap();
    let keys = WorkingKeys {
        pik: SecretKey::from_hex("1A2B3C4D5E6F7081").unwrap(),
        mak: SecretKey::from_hex("8192A3B4C5D6E7F8").unwrap(),
        tdk: None,
    };
    let f62 = poskit_security::build_field62(KeyLayout::Single, &tmk, &keys).unwrap();
    assert_eq!(
        parse_field62(KeyLayout::Single, &other, &f62).unwrap_err(),
        SecurityError::CheckValueMismatch { key: "PIK" }
    );
    assert!(matches!(
        parse_field62(KeyLayout::Double, &tmk, &f62),
        Err(SecurityError::Field62Length {
            needed: 40,
            len: 24,
            ..
        })
    ));
}

#[test]
fn a_double_length_mak_with_a_zero_second_half_macs_as_single_des() {
    let half = SecretKey::from_hex("8192A3B4C5D6E7F8").unwrap();
    let slot = SecretKey::from_hex("8192A3B4C5D6E7F80000000000000000").unwrap();
    let keys = WorkingKeys {
        pik: slot.clone(),
        mak: slot,
        tdk: None,
    };
    assert_eq!(keys.mac_key(), half);
}

#[test]
fn secrets_never_show_in_debug_output() {
    let key = SecretKey::from_hex("0123456789ABCDEF").unwrap();
    let pin = Pin::new("123456").unwrap();
    let text = format!("{key:?} {pin:?}");
    assert_eq!(text, "SecretKey(8 bytes) Pin(****)");
}

#[test]
fn bad_inputs_are_typed_errors() {
    assert_eq!(
        SecretKey::from_hex("0123").unwrap_err(),
        SecurityError::KeyLength { len: 2 }
    );
    assert_eq!(
        SecretKey::from_hex("01234567890ABCDEFG").unwrap_err(),
        SecurityError::KeyNotHex
    );
    assert_eq!(Pin::new("123").unwrap_err(), SecurityError::PinFormat);
    assert_eq!(Pin::new("12a4").unwrap_err(), SecurityError::PinFormat);
    let pin = Pin::new("1234").unwrap();
    let k8 = SecretKey::from_hex("0123456789ABCDEF").unwrap();
    assert_eq!(
        encrypt_pin_block(PinBlockFormat::Iso0, &k8, "123456789012", &pin).unwrap_err(),
        SecurityError::PanFormat
    );
    assert!(matches!(
        encrypt_pin_block(PinBlockFormat::Iso0Sm4, &k8, "1234567890123", &pin),
        Err(SecurityError::KeyLengthFor { needed: 16, .. })
    ));
    assert!(matches!(
        compute_mac(MacAlgorithm::X919, &k8, b"x"),
        Err(SecurityError::KeyLengthFor { .. })
    ));
}
