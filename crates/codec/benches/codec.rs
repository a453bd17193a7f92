//! Decode and encode of a sale (0200 with fields 2, 3, 4, 11, 14, 22, 25, 26, 35, 41, 42,
//! 49, 52, 53, 60, 63, 64) in the CUP POS profile and in ISO 8583:1987 ASCII, doing the
//! work a user of the codec does (issue 18): decoding and then reading every value, digits
//! unpacked; building the message from its values (each checked by the builder) and then
//! encoding it into a reused buffer. `scripts/bench-vs-pyiso8583.py` times pyiso8583 on the
//! same ASCII message doing the same work and prints the ratios.

use criterion::{Criterion, criterion_group, criterion_main};
use poskit_codec::sample::SALE_FIELDS;
use poskit_codec::{CUP_POS, ISO87_ASCII, Message, MessageBuilder, Mti, Profile, Value, sample};
use std::hint::black_box;

/// Digits a field can hold at most (LLLVAR).
const DIGITS_MAX: usize = 999;

/// Reads every value of `m` as its user would: digits unpacked to ASCII, text and bytes as
/// they are. Returns a checksum so that nothing is optimised away.
fn read_every_value(m: &Message<'_>, digits: &mut [u8; DIGITS_MAX]) -> usize {
    let mut checksum = 0;
    for field in m.fields() {
        let value = match field.value() {
            Value::Digits(d) => d.unpack_into(digits),
            Value::Text(bytes) | Value::Bytes(bytes) | Value::Hex(bytes) => bytes,
        };
        checksum += value.len() + usize::from(value.first().copied().unwrap_or(0));
    }
    checksum
}

/// Builds the sale from its values (each checked by `set`).
fn build(profile: &'static Profile) -> MessageBuilder<'static> {
    let mut m = MessageBuilder::new(profile, Mti(*b"0200"));
    for &(number, value) in black_box(SALE_FIELDS) {
        // The sample is valid in both profiles.
        let _ = m.set(number, value);
    }
    m
}

fn codec(c: &mut Criterion) {
    let cup_bytes = sample::cup_sale().encode();
    let iso_bytes = sample::iso87_sale().encode();
    let mut digits = [0u8; DIGITS_MAX];
    for (name, profile, bytes) in [
        ("cup-pos", &CUP_POS, &cup_bytes),
        ("iso87-ascii", &ISO87_ASCII, &iso_bytes),
    ] {
        c.bench_function(&format!("decode+read {name} sale"), |b| {
            b.iter(|| {
                let m = Message::decode(profile, black_box(bytes)).unwrap();
                black_box(read_every_value(&m, &mut digits));
            })
        });
    }
    let mut buffer = Vec::with_capacity(512);
    for (name, profile) in [("cup-pos", &CUP_POS), ("iso87-ascii", &ISO87_ASCII)] {
        c.bench_function(&format!("build+encode {name} sale"), |b| {
            b.iter(|| {
                buffer.clear();
                build(profile).encode_into(&mut buffer);
                black_box(buffer.len());
            })
        });
    }
    // The parts alone, to see where the time goes.
    c.bench_function("decode cup-pos sale", |b| {
        b.iter(|| black_box(Message::decode(&CUP_POS, black_box(&cup_bytes)).is_ok()))
    });
    let cup = sample::cup_sale();
    c.bench_function("encode cup-pos sale", |b| {
        b.iter(|| {
            buffer.clear();
            black_box(&cup).encode_into(&mut buffer);
            black_box(buffer.len());
        })
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
