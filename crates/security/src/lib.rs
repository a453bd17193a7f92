//! CUP POS security (`spec/cup-pos.md` §3): MACs, PIN blocks, key check values and the
//! working keys a terminal receives at sign-in.
//!
//! Ciphers are RustCrypto's (`des`, `sm4`); nothing here implements a cipher. Keys, PINs
//! and PIN blocks are types that zeroize when dropped and whose `Debug` never shows the
//! value: reading one takes `dangerous_expose`.

mod engine;
mod error;
mod key;
pub mod keyload;
mod mac;
mod pin;

pub use engine::CipherFamily;
pub use error::SecurityError;
pub use key::{SecretKey, check_value, unwrap_key, wrap_key};
pub use keyload::{KeyLayout, WorkingKeys, build_field62, parse_field62};
pub use mac::{Mac, MacAlgorithm, compute_mac, verify_mac};
pub use pin::{
    Pin, PinBlock, PinBlockFormat, decrypt_pin_block, encrypt_pin_block, pin_block_format0,
};
