//! Properties of the codec that must hold for every input.

use poskit_codec::frame::decode_frame;
use poskit_codec::spec::{Charset, LengthKind};
use poskit_codec::{
    CUP_POS, EncodeError, ISO87_ASCII, Message, MessageBuilder, Mti, Profile, Value,
};
use proptest::prelude::*;

fn logical(field: &poskit_codec::Field<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    match field.value() {
        Value::Digits(d) => out.extend(d.iter()),
        Value::Text(t) | Value::Bytes(t) => out.extend_from_slice(t),
        Value::Hex(_) => field.write_bytes(&mut out),
    }
    out
}

/// A valid value for every field of `profile`, each present with probability one half.
fn message_values(profile: &'static Profile) -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    let per_field: Vec<_> = profile
        .fields()
        .iter()
        .filter(|s| s.number <= profile.field_number_max())
        .map(|spec| {
            let len = match spec.length {
                LengthKind::Fixed => (spec.len_max as usize)..=(spec.len_max as usize),
                _ => 0..=(spec.len_max as usize),
            };
            let chars: BoxedStrategy<u8> = match spec.charset {
                Charset::N => (b'0'..=b'9').boxed(),
                Charset::Z => prop_oneof![9 => b'0'..=b'9', 1 => Just(b'=')].boxed(),
                Charset::An | Charset::Ans | Charset::B => any::<u8>().boxed(),
            };
            let number = spec.number;
            proptest::option::of(proptest::collection::vec(chars, len))
                .prop_map(move |v| (number, v))
        })
        .collect();
    per_field.prop_map(|fields| {
        fields
            .into_iter()
            .filter_map(|(n, v)| v.map(|v| (n, v)))
            .collect()
    })
}

fn round_trip(
    profile: &'static Profile,
    mti: &str,
    values: &[(u8, Vec<u8>)],
) -> Result<(), TestCaseError> {
    let mut builder = MessageBuilder::new(profile, Mti::parse(mti).unwrap());
    let mut kept = Vec::new();
    for (number, value) in values {
        match builder.set(*number, value) {
            Ok(_) => kept.push((*number, value.clone())),
            // Only the size bound may refuse a value that fits its spec.
            Err(e) => prop_assert!(matches!(e, EncodeError::MessageTooLarge { .. }), "{e}"),
        }
    }
    if kept.is_empty() {
        return Ok(());
    }
    let bytes = builder.encode();
    let decoded =
        Message::decode(profile, &bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(decoded.mti(), Mti::parse(mti).unwrap());
    prop_assert_eq!(decoded.fields().count(), kept.len());
    for (number, value) in &kept {
        let field = decoded.field(*number).unwrap();
        prop_assert_eq!(&logical(&field), value, "field {}", number);
    }
    // Encoding what was decoded gives the same bytes.
    let mut again = MessageBuilder::new(profile, decoded.mti());
    let logicals: Vec<(u8, Vec<u8>)> = decoded
        .fields()
        .map(|f| (f.number(), logical(&f)))
        .collect();
    for (n, v) in &logicals {
        again.set(*n, v).unwrap();
    }
    prop_assert_eq!(again.encode(), bytes);
    Ok(())
}

/// Encodes `values` (ascending, each once) with a fresh builder.
fn encode_fresh(profile: &'static Profile, values: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut builder = MessageBuilder::new(profile, Mti(*b"0200"));
    for (number, value) in values {
        builder.set(*number, value).unwrap();
    }
    builder.encode()
}

/// Sets, replaces and removes the fields of `first` and then of `values` in a scrambled
/// order, clearing in between, and checks the builder encodes what a fresh one does.
fn check_any_order_of_sets(
    profile: &'static Profile,
    first: &[(u8, Vec<u8>)],
    values: &[(u8, Vec<u8>)],
    order: &[prop::sample::Index],
) -> Result<(), TestCaseError> {
    let mut builder = MessageBuilder::new(profile, Mti(*b"0800"));
    for (number, value) in first.iter().rev() {
        let _ = builder.set(*number, value);
    }
    builder.clear(Mti(*b"0200"));
    let mut kept: Vec<(u8, Vec<u8>)> = Vec::new();
    for (i, at) in order.iter().enumerate() {
        let Some((number, value)) = values.get(at.index(values.len().max(1))) else {
            break;
        };
        // Every fourth operation removes the field, the others set it.
        if i % 4 == 3 {
            builder.remove(*number);
            kept.retain(|(n, _)| n != number);
        } else if builder.set(*number, value).is_ok() {
            kept.retain(|(n, _)| n != number);
            kept.push((*number, value.clone()));
        }
    }
    kept.sort();
    prop_assert_eq!(builder.encoded_len(), builder.encode().len());
    if kept.is_empty() {
        return Ok(());
    }
    prop_assert_eq!(builder.encode(), encode_fresh(profile, &kept));
    for (number, value) in &kept {
        prop_assert_eq!(builder.get(*number), Some(value.as_slice()));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_builder_encodes_the_same_whatever_the_order_of_sets_replacements_and_removals(
        first in message_values(&CUP_POS),
        values in message_values(&CUP_POS),
        order in proptest::collection::vec(any::<prop::sample::Index>(), 0..80),
    ) {
        check_any_order_of_sets(&CUP_POS, &first, &values, &order)?;
    }

    #[test]
    fn an_iso87_builder_encodes_the_same_whatever_the_order_of_sets(
        first in message_values(&ISO87_ASCII),
        values in message_values(&ISO87_ASCII),
        order in proptest::collection::vec(any::<prop::sample::Index>(), 0..200),
    ) {
        check_any_order_of_sets(&ISO87_ASCII, &first, &values, &order)?;
    }

    #[test]
    fn every_field_read_in_order_is_the_field_asked_for(values in message_values(&ISO87_ASCII)) {
        let mut builder = MessageBuilder::new(&ISO87_ASCII, Mti(*b"0200"));
        for (number, value) in &values {
            let _ = builder.set(*number, value);
        }
        if builder.iter().next().is_none() {
            return Ok(());
        }
        let bytes = builder.encode();
        let decoded = Message::decode(&ISO87_ASCII, &bytes).unwrap();
        for field in decoded.fields() {
            let asked = decoded.field(field.number()).unwrap();
            prop_assert_eq!(asked.wire(), field.wire());
            prop_assert_eq!(asked.wire().as_ptr(), field.wire().as_ptr());
            prop_assert_eq!(asked.len(), field.len());
        }
    }

    #[test]
    fn cup_pos_decode_of_encode_is_identity(values in message_values(&CUP_POS), mti in "0[1-8][0-3]0") {
        round_trip(&CUP_POS, &mti, &values)?;
    }

    #[test]
    fn iso87_ascii_decode_of_encode_is_identity(values in message_values(&ISO87_ASCII), mti in "0[1-8][0-3]0") {
        round_trip(&ISO87_ASCII, &mti, &values)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Message::decode(&CUP_POS, &bytes);
        let _ = Message::decode(&ISO87_ASCII, &bytes);
        let _ = decode_frame(&CUP_POS, &bytes);
    }

    #[test]
    fn mutated_valid_frames_never_panic_and_errors_point_inside_the_input(
        values in message_values(&CUP_POS),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut builder = MessageBuilder::new(&CUP_POS, Mti(*b"0200"));
        for (n, v) in &values {
            let _ = builder.set(*n, v);
        }
        let mut bytes = builder.encode();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= b;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        if let Err(e) = Message::decode(&CUP_POS, &bytes) {
            prop_assert!(e.offset <= bytes.len());
        }
    }
}
