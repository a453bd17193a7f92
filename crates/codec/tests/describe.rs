//! Golden output of `describe` for the sample sale.

use poskit_codec::describe::{Options, describe};
use poskit_codec::frame::{decode_frame, encode_frame_into};
use poskit_codec::{CUP_POS, ISO87_ASCII, Message, sample};

fn sample_frame() -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame_into(
        &sample::TPDU,
        &sample::HEADER,
        &sample::cup_sale(),
        &mut out,
    );
    out
}

#[test]
fn describe_masks_card_data_and_names_fields_in_both_languages() {
    let bytes = sample_frame();
    let frame = decode_frame(&CUP_POS, &bytes).unwrap();
    let text = describe(
        Some((&frame.tpdu, &frame.header)),
        &frame.message,
        Options::default(),
    );
    assert!(!text.contains("6222021234567890128"));
    assert!(!text.contains("3D5A0B917C22E48F"));
    insta::assert_snapshot!("cup_sale_masked", text);
}

#[test]
fn describe_unmasked_shows_card_data_but_never_the_pin_block() {
    let bytes = sample_frame();
    let frame = decode_frame(&CUP_POS, &bytes).unwrap();
    let text = describe(None, &frame.message, Options { unmask: true });
    assert!(text.contains("6222021234567890128=28122201234567890"));
    assert!(!text.contains("3D5A0B917C22E48F"));
    insta::assert_snapshot!("cup_sale_unmasked", text);
}

#[test]
fn describe_iso87() {
    let bytes = sample::iso87_sale().encode();
    let message = Message::decode(&ISO87_ASCII, &bytes).unwrap();
    insta::assert_snapshot!("iso87_sale", describe(None, &message, Options::default()));
}
