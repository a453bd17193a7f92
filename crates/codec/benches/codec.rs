//! Decode and encode of a CUP POS sale (0200 with fields 2, 3, 4, 11, 14, 22, 25, 26, 35, 41,
//! 42, 49, 52, 53, 60, 63, 64) and of the same logical message in ISO 8583:1987 ASCII.
//! `benches/pyiso8583_compare.py` times pyiso8583 on the same ASCII message.

use criterion::{Criterion, criterion_group, criterion_main};
use poskit_codec::{CUP_POS, ISO87_ASCII, Message, sample};
use std::hint::black_box;

fn codec(c: &mut Criterion) {
    let cup = sample::cup_sale();
    let cup_bytes = cup.encode();
    let iso = sample::iso87_sale();
    let iso_bytes = iso.encode();

    c.bench_function("decode cup-pos sale", |b| {
        b.iter(|| {
            let m = Message::decode(&CUP_POS, black_box(&cup_bytes)).unwrap();
            black_box(m.field(4));
        })
    });
    c.bench_function("decode iso87-ascii sale", |b| {
        b.iter(|| {
            let m = Message::decode(&ISO87_ASCII, black_box(&iso_bytes)).unwrap();
            black_box(m.field(4));
        })
    });
    let mut buffer = Vec::with_capacity(512);
    c.bench_function("encode cup-pos sale", |b| {
        b.iter(|| {
            buffer.clear();
            black_box(&cup).encode_into(&mut buffer);
            black_box(buffer.len());
        })
    });
    c.bench_function("encode iso87-ascii sale", |b| {
        b.iter(|| {
            buffer.clear();
            black_box(&iso).encode_into(&mut buffer);
            black_box(buffer.len());
        })
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
