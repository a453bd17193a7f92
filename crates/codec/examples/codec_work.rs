//! The benches' work (`benches/codec.rs`) in a loop, for counting instructions, which a
//! shared machine's load does not move (`perf stat -e instructions:u`, or callgrind):
//! `cargo run --release -p poskit-codec --example codec_work -- MODE N`, MODE one of
//! `decode-read` and `build-encode` (the benches' work) or their halves `decode`, `read`,
//! `build`, `encode`. Run it with N and with 0 and divide the difference by N. Each mode
//! is its own function, so that one mode's code does not change how another's compiles.

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
    let built = sample::cup_sale();
    let mut digits = [0u8; 999];
    let mut buffer = Vec::with_capacity(512);
    let mut total = 0usize;
    for _ in 0..iterations {
        total += match mode.as_str() {
            "decode-read" => decode_read(&bytes, &mut digits),
            "decode" => decode(&bytes),
            "read" => read(black_box(&decoded), &mut digits),
            "build-encode" => build_encode(&mut buffer),
            "build" => build(),
            "encode" => encode(black_box(&built), &mut buffer),
            other => panic!("mode {other:?}: decode-read, build-encode or one of their halves"),
        };
    }
    println!("{total}");
}

#[inline(never)]
fn decode_read(bytes: &[u8], digits: &mut [u8; 999]) -> usize {
    let m = Message::decode(&CUP_POS, black_box(bytes)).expect("the sample decodes");
    read(&m, digits)
}

#[inline(never)]
fn decode(bytes: &[u8]) -> usize {
    let m = Message::decode(&CUP_POS, black_box(bytes)).expect("the sample decodes");
    black_box(&m).input().len()
}

/// Reads every value as its user would: digits unpacked, text and bytes as they are.
#[inline(always)]
fn read(m: &Message<'_>, digits: &mut [u8; 999]) -> usize {
    let mut total = 0;
    for field in m.fields() {
        let value = match field.value() {
            Value::Digits(d) => d.unpack_into(digits),
            Value::Text(b) | Value::Bytes(b) | Value::Hex(b) => b,
        };
        total += value.len() + usize::from(value.first().copied().unwrap_or(0));
    }
    total
}

#[inline(never)]
fn build_encode(buffer: &mut Vec<u8>) -> usize {
    encode(&build_sale(), buffer)
}

#[inline(never)]
fn build() -> usize {
    black_box(&build_sale()).encoded_len()
}

/// As the bench builds (a function returning the builder).
fn build_sale() -> MessageBuilder<'static> {
    let mut m = MessageBuilder::new(&CUP_POS, Mti(*b"0200"));
    for &(number, value) in black_box(SALE_FIELDS) {
        let _ = m.set(number, value);
    }
    m
}

#[inline(always)]
fn encode(m: &MessageBuilder<'_>, buffer: &mut Vec<u8>) -> usize {
    buffer.clear();
    m.encode_into(buffer);
    buffer.len()
}
