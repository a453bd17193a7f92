//! What the host pays per request in cryptography: the CUP ECB MAC of a sale-sized
//! message under a single-length MAK delivered as K‖K (run as single DES) and under a
//! true double-length key (3DES), and a PIN block decrypted under a double-length PIK.

use criterion::{Criterion, criterion_group, criterion_main};
use poskit_security::{
    MacAlgorithm, Pin, PinBlockFormat, SecretKey, compute_mac, decrypt_pin, encrypt_pin,
};
use std::hint::black_box;

fn security(c: &mut Criterion) {
    let message = vec![0x5Au8; 120];
    let kk = SecretKey::from_hex("0123456789ABCDEF0123456789ABCDEF").unwrap();
    let double = SecretKey::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
    c.bench_function("cup-ecb MAC, 120 bytes, MAK K||K", |b| {
        b.iter(|| compute_mac(MacAlgorithm::CupEcb, black_box(&kk), black_box(&message)).unwrap())
    });
    c.bench_function("cup-ecb MAC, 120 bytes, double-length key", |b| {
        b.iter(|| {
            compute_mac(
                MacAlgorithm::CupEcb,
                black_box(&double),
                black_box(&message),
            )
            .unwrap()
        })
    });
    let pan = "6222021234567890128";
    let pin = Pin::new("123456").unwrap();
    let block = encrypt_pin(PinBlockFormat::Iso0, &double, pan, &pin).unwrap();
    c.bench_function("PIN block decrypt, double-length PIK", |b| {
        b.iter(|| decrypt_pin(black_box(&double), pan, black_box(&block)).unwrap())
    });
}

criterion_group!(benches, security);
criterion_main!(benches);
