//! Decodes the sample sale in a loop, for profilers (`perf record`, `valgrind --tool=callgrind`).
//! Usage: `cargo run --release -p poskit-codec --example decode_loop -- [iterations]`.

use poskit_codec::{CUP_POS, Message, sample};
use std::hint::black_box;

fn main() {
    let iterations: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let cup = sample::cup_sale();
    let bytes = cup.encode();
    let mut buffer = Vec::with_capacity(512);
    let mut total = 0usize;
    for _ in 0..iterations {
        let m = Message::decode(&CUP_POS, black_box(&bytes)).unwrap();
        total += m.field(4).map_or(0, |f| f.len());
        buffer.clear();
        black_box(&cup).encode_into(&mut buffer);
        total += buffer.len();
    }
    println!("{total}");
}
