//! Entry points for fuzzers (`fuzz/`), kept in the crate so that the harness is one line.

use crate::describe::{Options, describe};
use crate::frame::{decode_frame, frame_len};
use crate::{CUP_POS, ISO87_ASCII, Message, MessageBuilder};

/// Feeds `data` to every decoder and, when it decodes, to every reader of the result and
/// back through the encoder. Panics only if an invariant is broken.
pub fn decode_everything(data: &[u8]) {
    let _ = frame_len(data);
    if let Ok(frame) = decode_frame(&CUP_POS, data) {
        exercise(&frame.message);
        let _ = describe(
            Some((&frame.tpdu, &frame.header)),
            &frame.message,
            Options::default(),
        );
    }
    for profile in [&CUP_POS, &ISO87_ASCII] {
        match Message::decode(profile, data) {
            Ok(message) => {
                exercise(&message);
                let _ = describe(None, &message, Options { unmask: true });
            }
            Err(e) => assert!(e.offset <= data.len(), "error offset past the input: {e}"),
        }
    }
}

/// Reads every field and sub-field, then re-encodes the logical values: what decoded must
/// encode, and decode again to the same values.
fn exercise(message: &Message<'_>) {
    let mut values: Vec<(u8, Vec<u8>)> = Vec::new();
    for field in message.fields() {
        let mut v = Vec::new();
        match field.value() {
            crate::Value::Digits(d) => v.extend(d.iter()),
            crate::Value::Text(t) | crate::Value::Bytes(t) => v.extend_from_slice(t),
            crate::Value::Hex(_) => field.write_bytes(&mut v),
        }
        for (_, sub) in crate::subfield::subfields(message, field.number()) {
            let _ = sub.to_string();
        }
        values.push((field.number(), v));
    }
    let _ = message.mac_input();
    let mut builder = MessageBuilder::new(message.profile(), message.mti());
    for (n, v) in &values {
        builder
            .set(*n, v)
            .expect("a decoded value must be encodable");
    }
    let bytes = builder.encode();
    let again = Message::decode(message.profile(), &bytes).expect("re-encoded message must decode");
    assert_eq!(again.fields().count(), values.len());
}
