//! The benches' work (`benches/codec.rs`) in a loop, for counting instructions, which a
//! shared machine's load does not move (`perf stat -e instructions:u`, or callgrind):
//! `cargo run --release -p poskit-codec --example codec_work -- decode-read|build-encode N`
//! (`decode` and `read` are the two halves of `decode-read`).
//! Run it with N and with 0 and divide the difference by N.

use poskit_codec::sample::SALE_FIELDS;
use poskit_codec::{CUP_POS, Message, MessageBuilder, Mti, Value, sample};
use std::hint::black_box;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let iterations: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let bytes = sample::cup_sale().encode();
    let decoded = Message::decode(&CUP_POS, &bytes).expect("the sample decodes");
    let mut digits = [0u8; 999];
    let mut buffer = Vec::with_capacity(512);
    let mut total = 0usize;
    for _ in 0..iterations {
        match mode.as_str() {
            "decode-read" => {
                let m = Message::decode(&CUP_POS, black_box(&bytes)).expect("the sample decodes");
                for field in m.fields() {
                    let value = match field.value() {
                        Value::Digits(d) => d.unpack_into(&mut digits),
                        Value::Text(b) | Value::Bytes(b) | Value::Hex(b) => b,
                    };
                    total += value.len() + usize::from(value.first().copied().unwrap_or(0));
                }
            }
            // The parts alone, to see where the time goes.
            "decode" => {
                let m = Message::decode(&CUP_POS, black_box(&bytes)).expect("the sample decodes");
                total += m.input().len();
            }
            "read" => {
                for field in black_box(&decoded).fields() {
                    let value = match field.value() {
                        Value::Digits(d) => d.unpack_into(&mut digits),
                        Value::Text(b) | Value::Bytes(b) | Value::Hex(b) => b,
                    };
                    total += value.len() + usize::from(value.first().copied().unwrap_or(0));
                }
            }
            "build-encode" => {
                let mut m = MessageBuilder::new(&CUP_POS, Mti(*b"0200"));
                for &(number, value) in black_box(SALE_FIELDS) {
                    let _ = m.set(number, value);
                }
                buffer.clear();
                m.encode_into(&mut buffer);
                total += buffer.len();
            }
            other => panic!("mode {other:?}: decode-read, build-encode, decode or read"),
        }
    }
    println!("{total}");
}
