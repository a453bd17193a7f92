//! Properties of the security layer, over random keys, PINs, PANs and data.

use poskit_security::{
    CipherFamily, KeyLayout, MacAlgorithm, Pin, PinBlockFormat, SecretKey, SecurityError,
    WorkingKeys, build_field62, compute_mac, decrypt_pin, decrypt_pin_block, encrypt_pin,
    parse_field62, unwrap_key, verify_mac, wrap_key,
};
use proptest::prelude::*;

fn key_of(len: usize) -> impl Strategy<Value = SecretKey> {
    proptest::collection::vec(any::<u8>(), len)
        .prop_map(|b| SecretKey::from_bytes(&b).expect("8, 16 or 24 bytes"))
}

proptest! {
    #[test]
    fn pin_blocks_decrypt_to_the_pin_they_were_made_from_under_every_key_type(
        pin in "[0-9]{4,12}",
        pan in "[0-9]{13,19}",
        des_key in key_of(8),
        tdes2_key in key_of(16),
        tdes3_key in key_of(24),
        sm4_key in key_of(16),
    ) {
        let pin = Pin::new(&pin).expect("4 to 12 digits");
        for (format, key) in [
            (PinBlockFormat::Iso0, &des_key),
            (PinBlockFormat::Iso0, &tdes2_key),
            (PinBlockFormat::Iso0, &tdes3_key),
            (PinBlockFormat::Iso0Sm4, &sm4_key),
        ] {
            let block = encrypt_pin(format, key, &pan, &pin).expect("encrypt");
            prop_assert_eq!(block.dangerous_expose().len(), format.block_bytes());
            prop_assert_eq!(decrypt_pin(key, &pan, &block).expect("decrypt"), pin.clone());
            // The clear block is never what travels.
            let clear = decrypt_pin_block(key, &block).expect("decrypt");
            prop_assert_ne!(clear.dangerous_expose(), block.dangerous_expose());
        }
    }

    #[test]
    fn a_mac_verifies_and_any_flipped_bit_of_the_data_breaks_it(
        data in proptest::collection::vec(any::<u8>(), 1..300),
        bit in any::<prop::sample::Index>(),
        key8 in key_of(8),
        key16 in key_of(16),
        key24 in key_of(24),
    ) {
        let i = bit.index(data.len() * 8);
        let mut changed = data.clone();
        changed[i / 8] ^= 1 << (i % 8);
        for (algo, key) in [
            (MacAlgorithm::CupEcb, &key8),
            (MacAlgorithm::CupEcb, &key16),
            (MacAlgorithm::CupEcb, &key24),
            (MacAlgorithm::CupEcbSm4, &key16),
            (MacAlgorithm::X919, &key16),
        ] {
            let mac = compute_mac(algo, key, &data).expect("MAC");
            prop_assert!(verify_mac(algo, key, &data, mac.as_bytes()).expect("verify"));
            // A flipped bit always changes the cipher input. The CUP ECB MACs keep 32 bits
            // (8 hex characters), so a false pass is a 2^-32 event per case.
            prop_assert!(!verify_mac(algo, key, &changed, mac.as_bytes()).expect("verify"), "{}", algo);
        }
    }

    #[test]
    fn any_flipped_bit_of_field_64_fails_verification(
        data in proptest::collection::vec(any::<u8>(), 0..64),
        bit in 0usize..64,
        key16 in key_of(16),
    ) {
        for algo in MacAlgorithm::ALL {
            let mac = compute_mac(algo, &key16, &data).expect("MAC");
            let mut wire = *mac.as_bytes();
            wire[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(!verify_mac(algo, &key16, &data, &wire).expect("verify"));
        }
    }

    #[test]
    fn keys_wrapped_under_a_tmk_unwrap_to_themselves(
        tmk in prop_oneof![key_of(8), key_of(16), key_of(24)],
        sm4_tmk in key_of(16),
        key in prop_oneof![key_of(8), key_of(16), key_of(24)],
        sm4_key in key_of(16),
    ) {
        let wrapped = wrap_key(CipherFamily::Des, &tmk, &key).expect("wrap");
        prop_assert_eq!(unwrap_key(CipherFamily::Des, &tmk, &wrapped).expect("unwrap"), key);
        let wrapped = wrap_key(CipherFamily::Sm4, &sm4_tmk, &sm4_key).expect("wrap");
        prop_assert_eq!(unwrap_key(CipherFamily::Sm4, &sm4_tmk, &wrapped).expect("unwrap"), sm4_key);
    }

    #[test]
    fn field_62_parses_back_what_it_was_built_from_and_refuses_any_changed_byte(
        tmk in prop_oneof![key_of(8), key_of(16), key_of(24)],
        pik in key_of(16),
        mak in key_of(16),
        tdk in key_of(16),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let keys = WorkingKeys { pik, mak, tdk: Some(tdk) };
        let layout = KeyLayout::DoubleWithTrack;
        let built = build_field62(layout, &tmk, &keys).expect("build");
        prop_assert_eq!(parse_field62(layout, &tmk, &built).expect("parse"), keys);
        let mut changed = built;
        let at = at.index(changed.len());
        changed[at] ^= xor;
        // A changed byte garbles one key or its check value: a 2^-32 chance to pass.
        let refused = matches!(
            parse_field62(layout, &tmk, &changed),
            Err(SecurityError::CheckValueMismatch { .. })
        );
        prop_assert!(refused);
    }
}
