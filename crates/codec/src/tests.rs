use crate::frame::{Tpdu, decode_frame, encode_frame_into, frame_len};
use crate::{
    CUP_POS, DecodeErrorKind, EncodeError, ISO87_ASCII, Message, MessageBuilder, Mti, Part, sample,
};

fn cup_sale_bytes() -> Vec<u8> {
    sample::cup_sale().encode()
}

#[test]
fn cup_sale_encodes_numbers_as_packed_bcd_with_bcd_lengths() {
    let bytes = cup_sale_bytes();
    // MTI 0200 in two BCD bytes, then the primary bitmap.
    assert_eq!(&bytes[..2], &[0x02, 0x00]);
    assert_eq!(
        &bytes[2..10],
        &[0x70, 0x24, 0x04, 0xC0, 0x20, 0xC0, 0x98, 0x13]
    );
    // Field 2: LLVAR length 19 as one BCD byte, then the PAN left-aligned with a pad nibble.
    assert_eq!(
        &bytes[10..21],
        &[
            0x19, 0x62, 0x22, 0x02, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x80
        ]
    );
    // Field 3 and 4: fixed, right-aligned.
    assert_eq!(&bytes[21..24], &[0x00, 0x00, 0x00]);
    assert_eq!(&bytes[24..30], &[0x00, 0x00, 0x00, 0x01, 0x23, 0x45]);
}

#[test]
fn field_22_is_left_aligned_and_field_23_right_aligned() {
    let mut m = MessageBuilder::new(&CUP_POS, Mti(*b"0200"));
    m.set(22, b"021").unwrap().set(23, b"001").unwrap();
    let bytes = m.encode();
    assert_eq!(&bytes[10..12], &[0x02, 0x10]);
    assert_eq!(&bytes[12..14], &[0x00, 0x01]);
    let decoded = Message::decode(&CUP_POS, &bytes).unwrap();
    assert!(decoded.field(22).unwrap().digits().unwrap().eq_str("021"));
    assert!(decoded.field(23).unwrap().digits().unwrap().eq_str("001"));
}

#[test]
fn track_separator_is_nibble_d_on_the_wire_and_equals_sign_in_the_value() {
    let mut m = MessageBuilder::new(&CUP_POS, Mti(*b"0200"));
    m.set(35, b"62220212=2812").unwrap();
    let bytes = m.encode();
    assert_eq!(
        &bytes[10..],
        &[0x13, 0x62, 0x22, 0x02, 0x12, 0xD2, 0x81, 0x20]
    );
    let decoded = Message::decode(&CUP_POS, &bytes).unwrap();
    assert_eq!(decoded.field(35).unwrap().to_text(), "62220212=2812");
}

#[test]
fn lllvar_length_is_two_bcd_bytes() {
    let mut m = MessageBuilder::new(&CUP_POS, Mti(*b"0800"));
    m.set(60, b"00000001003").unwrap();
    let bytes = m.encode();
    assert_eq!(&bytes[10..12], &[0x00, 0x11]);
    assert_eq!(&bytes[12..], &[0x00, 0x00, 0x00, 0x01, 0x00, 0x30]);
}

#[test]
fn decoded_sale_gives_back_every_value() {
    let bytes = cup_sale_bytes();
    let m = Message::decode(&CUP_POS, &bytes).unwrap();
    assert_eq!(m.mti(), Mti(*b"0200"));
    for &(number, value) in sample::SALE_FIELDS {
        let field = m.field(number).unwrap();
        let mut got = Vec::new();
        match field.value() {
            crate::Value::Digits(d) => got.extend(d.iter()),
            crate::Value::Text(t) | crate::Value::Bytes(t) => got.extend_from_slice(t),
            crate::Value::Hex(_) => field.write_bytes(&mut got),
        }
        assert_eq!(got, value, "field {number}");
    }
    assert_eq!(m.fields().count(), sample::SALE_FIELDS.len());
    assert_eq!(m.field(4).unwrap().digits().unwrap().to_u64(), Some(12345));
}

#[test]
fn subfields_are_readable_by_name() {
    let bytes = cup_sale_bytes();
    let m = Message::decode(&CUP_POS, &bytes).unwrap();
    assert!(m.subfield("60.1").unwrap().eq_str("22"));
    assert!(m.subfield("60.2").unwrap().eq_str("000001"));
    assert!(m.subfield("60.3").unwrap().eq_str("000"));
    assert!(m.subfield("60.4").is_none());
    assert!(m.subfield("53.1").unwrap().eq_str("2"));
    assert!(m.subfield("53.2").unwrap().eq_str("6"));
    assert!(m.subfield("63.1").unwrap().eq_str("001"));
}

#[test]
fn settlement_totals_are_read_from_field_48() {
    let mut m = MessageBuilder::new(&CUP_POS, Mti(*b"0510"));
    m.set(48, b"0000001000000030000000000000001").unwrap();
    let bytes = m.encode();
    let d = Message::decode(&CUP_POS, &bytes).unwrap();
    assert!(d.subfield("48.1").unwrap().eq_str("000000100000"));
    assert!(d.subfield("48.2").unwrap().eq_str("003"));
    assert!(d.subfield("48.5").unwrap().eq_str("1"));
}

#[test]
fn mac_input_runs_from_the_mti_to_the_end_of_field_63() {
    let bytes = cup_sale_bytes();
    let m = Message::decode(&CUP_POS, &bytes).unwrap();
    assert_eq!(m.mac_input().unwrap(), &bytes[..bytes.len() - 8]);
    assert_eq!(m.field(64).unwrap().wire(), &bytes[bytes.len() - 8..]);
}

fn decode_err(bytes: &[u8]) -> crate::DecodeError {
    Message::decode(&CUP_POS, bytes).unwrap_err()
}

#[test]
fn empty_input_is_a_missing_mti() {
    let e = decode_err(&[]);
    assert_eq!(e.part, Part::Mti);
    assert!(matches!(
        e.kind,
        DecodeErrorKind::Truncated {
            needed: 2,
            available: 0
        }
    ));
}

#[test]
fn a_length_running_past_the_end_names_the_field_and_offset() {
    let bytes = cup_sale_bytes();
    let e = decode_err(&bytes[..15]);
    assert_eq!(e.part, Part::Field(2));
    assert_eq!(e.offset, 11);
    assert_eq!(
        e.to_string(),
        "field 2 at byte 11: needs 10 bytes but only 4 remain"
    );
}

/// Every nibble of every `n` field of the sale, set to `A` in turn: a value nibble is an
/// error at its byte, a pad nibble is not looked at (the check reads eight bytes at a
/// time, across field boundaries: this pins it to the field's own nibbles).
#[test]
fn a_non_digit_nibble_is_an_error_at_its_byte_and_a_pad_nibble_is_ignored() {
    let bytes = cup_sale_bytes();
    let message = Message::decode(&CUP_POS, &bytes).unwrap();
    let mut checked = 0;
    for field in message.fields() {
        if field.spec().charset != crate::spec::Charset::N {
            continue;
        }
        let start = field.wire().as_ptr() as usize - bytes.as_ptr() as usize;
        let wire_len = field.wire().len();
        let pad_first = field.len() % 2 == 1 && field.spec().align == crate::spec::Align::Right;
        let pad_last = field.len() % 2 == 1 && !pad_first;
        for i in start..start + wire_len {
            for high in [true, false] {
                let pad = (high && pad_first && i == start)
                    || (!high && pad_last && i == start + wire_len - 1);
                let mut mutated = bytes.clone();
                mutated[i] = if high {
                    0xA0 | (bytes[i] & 0x0F)
                } else {
                    (bytes[i] & 0xF0) | 0x0A
                };
                let result = Message::decode(&CUP_POS, &mutated);
                if pad {
                    assert!(result.is_ok(), "field {} pad at {i}", field.number());
                } else {
                    let e = result.unwrap_err();
                    assert_eq!(e.part, Part::Field(field.number()));
                    assert_eq!(e.offset, i, "field {}", field.number());
                    assert!(matches!(e.kind, DecodeErrorKind::NotBcd { .. }));
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 80, "{checked}");
}

#[test]
fn a_non_digit_in_a_bcd_field_is_an_error() {
    let mut bytes = cup_sale_bytes();
    bytes[22] = 0x0A; // inside field 3
    let e = decode_err(&bytes);
    assert_eq!(e.part, Part::Field(3));
    assert_eq!(e.offset, 22);
    assert!(matches!(e.kind, DecodeErrorKind::NotBcd { byte: 0x0A }));
}

#[test]
fn a_field_the_profile_does_not_define_is_an_error() {
    let mut bytes = cup_sale_bytes();
    bytes[2] |= 0x08; // bit 5: field 5 is not in the CUP POS profile
    let e = decode_err(&bytes);
    assert_eq!(e.part, Part::Field(5));
    assert_eq!(e.kind, DecodeErrorKind::UndefinedField);
}

#[test]
fn a_secondary_bitmap_is_an_undefined_field_in_cup_pos() {
    let mut bytes = cup_sale_bytes();
    bytes[2] |= 0x80;
    assert_eq!(decode_err(&bytes).part, Part::Field(1));
}

#[test]
fn a_length_above_the_maximum_is_an_error() {
    let mut bytes = cup_sale_bytes();
    bytes[10] = 0x20; // PAN length 20 > 19
    let e = decode_err(&bytes);
    assert_eq!(e.part, Part::Field(2));
    assert!(matches!(
        e.kind,
        DecodeErrorKind::LengthOverMax {
            len: 20,
            len_max: 19
        }
    ));
}

#[test]
fn trailing_bytes_are_an_error() {
    let mut bytes = cup_sale_bytes();
    bytes.push(0);
    let e = decode_err(&bytes);
    assert_eq!(e.part, Part::End);
    assert!(matches!(
        e.kind,
        DecodeErrorKind::TrailingBytes { count: 1 }
    ));
}

#[test]
fn a_message_over_8_kib_is_refused_before_reading_it() {
    let bytes = vec![0u8; crate::MESSAGE_BYTES_MAX + 1];
    assert!(matches!(
        decode_err(&bytes).kind,
        DecodeErrorKind::TooLarge { .. }
    ));
}

#[test]
fn frame_round_trips_and_response_swaps_tpdu_addresses() {
    let mut out = Vec::new();
    let range = encode_frame_into(
        &sample::TPDU,
        &sample::HEADER,
        &sample::cup_sale(),
        &mut out,
    );
    assert_eq!(range.start, 13);
    assert_eq!(
        usize::from(u16::from_be_bytes([out[0], out[1]])),
        out.len() - 2
    );
    assert_eq!(frame_len(&out).unwrap(), Some(out.len()));
    let frame = decode_frame(&CUP_POS, &out).unwrap();
    assert_eq!(frame.tpdu, sample::TPDU);
    assert_eq!(frame.header, sample::HEADER);
    assert_eq!(frame.header.application_type(), 0x60);
    assert_eq!(frame.tpdu.response(), Tpdu([0x60, 0x00, 0x00, 0x00, 0x03]));
    assert_eq!(frame.message.mti(), Mti(*b"0200"));
}

#[test]
fn frame_errors_are_offset_from_the_start_of_the_frame() {
    let mut out = Vec::new();
    encode_frame_into(
        &sample::TPDU,
        &sample::HEADER,
        &sample::cup_sale(),
        &mut out,
    );
    out[13 + 22] = 0xAA; // field 3, message offset 22
    let e = decode_frame(&CUP_POS, &out).unwrap_err();
    assert_eq!(e.part, Part::Field(3));
    assert_eq!(e.offset, 35);
}

#[test]
fn frame_length_that_disagrees_with_the_bytes_is_an_error() {
    let mut out = Vec::new();
    encode_frame_into(
        &sample::TPDU,
        &sample::HEADER,
        &sample::cup_sale(),
        &mut out,
    );
    out.pop();
    let e = decode_frame(&CUP_POS, &out).unwrap_err();
    assert_eq!(e.part, Part::Length);
    assert!(matches!(e.kind, DecodeErrorKind::FrameLength { .. }));
}

#[test]
fn an_announced_frame_length_over_the_bound_is_refused_from_the_prefix_alone() {
    assert!(frame_len(&[0xFF, 0xFF]).is_err());
    assert_eq!(frame_len(&[0x00]).unwrap(), None);
}

#[test]
fn builder_rejects_values_that_do_not_fit_the_spec() {
    let mut m = MessageBuilder::new(&CUP_POS, Mti(*b"0200"));
    assert_eq!(
        m.set(3, b"12345").unwrap_err(),
        EncodeError::WrongLength {
            field: 3,
            len: 6,
            got: 5
        }
    );
    assert_eq!(
        m.set(2, b"12345678901234567890").unwrap_err(),
        EncodeError::TooLong {
            field: 2,
            len_max: 19,
            got: 20
        }
    );
    assert!(matches!(
        m.set(4, b"00000000012A"),
        Err(EncodeError::BadCharacter { position: 11, .. })
    ));
    assert!(matches!(
        m.set(5, b"1"),
        Err(EncodeError::UndefinedField { field: 5, .. })
    ));
    assert!(matches!(
        m.set(70, b"301"),
        Err(EncodeError::UndefinedField { field: 70, .. })
    ));
}

#[test]
fn builder_refuses_to_grow_a_message_past_the_bound() {
    let big = vec![b'x'; 999];
    let mut m = MessageBuilder::new(&ISO87_ASCII, Mti(*b"0200"));
    let mut refused = false;
    for n in 105..=127 {
        if let Err(e) = m.set(n, &big) {
            assert!(matches!(e, EncodeError::MessageTooLarge { .. }));
            refused = true;
        }
    }
    assert!(refused);
    let bytes = m.encode();
    assert!(bytes.len() <= crate::MESSAGE_BYTES_MAX);
    Message::decode(&ISO87_ASCII, &bytes).unwrap();
}

#[test]
fn iso87_ascii_writes_ascii_lengths_hex_bitmaps_and_hex_binary() {
    let mut m = MessageBuilder::new(&ISO87_ASCII, Mti(*b"0800"));
    m.set(2, b"4111111111111111").unwrap();
    m.set(52, &[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF])
        .unwrap();
    m.set(70, b"301").unwrap();
    let bytes = m.encode();
    let text = std::str::from_utf8(&bytes).unwrap();
    assert_eq!(
        text,
        "0800C00000000000100004000000000000001641111111111111110123456789ABCDEF301"
    );
    let d = Message::decode(&ISO87_ASCII, &bytes).unwrap();
    assert!(d.has(1) && d.has(70));
    assert_eq!(d.field(52).unwrap().to_text(), "0123456789ABCDEF");
    assert!(d.field(70).unwrap().digits().unwrap().eq_str("301"));
}

#[test]
fn iso87_sample_matches_pyiso8583_default_ascii_layout() {
    // Produced by pyiso8583 4.0.1 `iso8583.encode` with `specs.default_ascii` from the same
    // field values (binary fields given as hex text); see benches/pyiso8583_compare.py.
    let expected = include_str!("../testdata/iso87-sale-pyiso8583.txt").trim();
    let bytes = sample::iso87_sale().encode();
    assert_eq!(std::str::from_utf8(&bytes).unwrap(), expected);
}

#[test]
fn response_mti_adds_ten() {
    assert_eq!(Mti(*b"0200").response(), Mti(*b"0210"));
    assert_eq!(Mti(*b"0800").response(), Mti(*b"0810"));
    assert_eq!(Mti::parse("02x0"), None);
}

/// A value every field of a profile accepts: `len_max` characters for fixed fields, one
/// for variable ones, digits for n/z, bytes for b.
fn any_valid_value(spec: &crate::FieldSpec) -> Vec<u8> {
    let len = match spec.length {
        crate::spec::LengthKind::Fixed => spec.len_max as usize,
        _ => 2,
    };
    vec![b'1'; len]
}

#[test]
fn the_builder_gives_the_same_message_whatever_the_order_fields_are_set_in() {
    // More fields than the builder keeps inline, secondary bitmap included.
    let specs: Vec<_> = ISO87_ASCII
        .fields()
        .iter()
        .filter(|s| s.number >= 2 && s.number <= ISO87_ASCII.field_number_max())
        .filter(|s| s.number != 65)
        .take(crate::encode::FIELDS_INLINE_MAX + 8)
        .collect();
    assert!(specs.len() > crate::encode::FIELDS_INLINE_MAX);
    let values: Vec<(u8, Vec<u8>)> = specs
        .iter()
        .map(|s| (s.number, any_valid_value(s)))
        .collect();
    let mut ascending = MessageBuilder::new(&ISO87_ASCII, Mti(*b"0200"));
    for (n, v) in &values {
        ascending.set(*n, v).unwrap();
    }
    let mut descending = MessageBuilder::new(&ISO87_ASCII, Mti(*b"0200"));
    for (n, v) in values.iter().rev() {
        descending.set(*n, v).unwrap();
    }
    assert_eq!(ascending.encode(), descending.encode());
    let decoded_bytes = ascending.encode();
    let decoded = Message::decode(&ISO87_ASCII, &decoded_bytes).unwrap();
    assert_eq!(decoded.fields().count(), values.len());
    // Past the starts a message keeps, a field asked for is found by walking: the same
    // field as the one iterated to.
    for field in decoded.fields() {
        let asked = decoded.field(field.number()).unwrap();
        assert_eq!(asked.wire().as_ptr(), field.wire().as_ptr());
        assert_eq!(asked.wire(), field.wire());
        assert_eq!(asked.len(), field.len());
    }
    for (n, v) in &values {
        assert_eq!(ascending.get(*n), Some(v.as_slice()), "field {n}");
    }
    // Set again and removed: the same as never set; inline too (a CUP sale).
    let (first, _) = &values[0];
    ascending.set(*first, b"99").unwrap();
    ascending.remove(*first);
    descending.remove(*first);
    assert_eq!(ascending.encode(), descending.encode());
    assert_eq!(ascending.get(*first), None);
    let mut sale = sample::cup_sale();
    sale.set(3, b"310000").unwrap();
    sale.remove(4);
    sale.set(4, b"000000012345").unwrap();
    sale.set(3, b"000000").unwrap();
    assert_eq!(sale.encode(), sample::cup_sale().encode());
    assert_eq!(sale.iter().count(), sample::SALE_FIELDS.len());
}

/// Field 128 is kept at index 0 of the tables by number (`field_index`): it must not
/// meet a number that is not a field (0, 129, 130 would alias 128, 1, 2).
#[test]
fn field_128_and_numbers_past_it_keep_to_themselves() {
    let mut m = MessageBuilder::new(&ISO87_ASCII, Mti(*b"0200"));
    m.set(2, b"4111111111111111").unwrap();
    m.set(128, b"12345678").unwrap();
    m.set(3, b"000000").unwrap();
    for number in [0, 1, 129, 130, 255] {
        assert_eq!(m.get(number), None, "{number}");
        assert!(m.set(number, b"00").is_err(), "{number}");
        m.remove(number);
    }
    assert_eq!(m.get(128), Some(&b"12345678"[..]));
    assert_eq!(m.get(2), Some(&b"4111111111111111"[..]));
    let bytes = m.encode();
    let decoded = Message::decode(&ISO87_ASCII, &bytes).unwrap();
    assert_eq!(decoded.field(128).unwrap().wire(), b"3132333435363738");
    assert!(decoded.field(0).is_none() && decoded.field(129).is_none());
    m.remove(128);
    m.remove(2);
    assert_eq!(m.iter().map(|(n, _)| n).collect::<Vec<_>>(), vec![3]);
    let mut again = MessageBuilder::new(&ISO87_ASCII, Mti(*b"0200"));
    again.set(3, b"000000").unwrap();
    assert_eq!(m.encode(), again.encode());
}

#[test]
fn the_builder_refuses_every_non_digit_in_a_numeric_field_wherever_it_is() {
    // Field 4 is n12: each position, each byte that is not a digit.
    for position in 0..12 {
        for byte in (0..=u8::MAX).filter(|b| !b.is_ascii_digit()) {
            let mut value = *b"000000012345";
            value[position] = byte;
            let mut m = MessageBuilder::new(&CUP_POS, Mti(*b"0200"));
            match m.set(4, &value) {
                Err(EncodeError::BadCharacter { position: at, .. }) => assert_eq!(at, position),
                other => panic!("{byte:#04x} at {position}: {other:?}"),
            }
        }
    }
    let mut m = MessageBuilder::new(&CUP_POS, Mti(*b"0200"));
    assert!(m.set(4, b"999999999999").is_ok());
    assert!(m.set(4, b"000000000000").is_ok());
}

#[test]
fn a_field_replaced_many_times_keeps_the_builder_bounded_and_encodes_the_last_value() {
    // Field 62 (b...512) set again and again: the wire form of the values replaced is
    // dropped once it passes the builder's bound, and the message is the last value's.
    let big: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 512]).collect();
    let mut m = MessageBuilder::new(&CUP_POS, Mti(*b"0800"));
    m.set(11, b"000001").unwrap();
    for value in &big {
        m.set(62, value).unwrap();
        m.set(3, b"990000").unwrap();
    }
    let mut fresh = MessageBuilder::new(&CUP_POS, Mti(*b"0800"));
    fresh.set(3, b"990000").unwrap();
    fresh.set(11, b"000001").unwrap();
    fresh.set(62, &big[63]).unwrap();
    assert_eq!(m.encode(), fresh.encode());
    assert!(m.wire_bytes() <= crate::encode::WIRE_BYTES_MAX);
    // Cleared, it builds the next message as a new one does.
    m.clear(Mti(*b"0200"));
    for &(number, value) in sample::SALE_FIELDS {
        m.set(number, value).unwrap();
    }
    assert_eq!(m.encode(), sample::cup_sale().encode());
}
