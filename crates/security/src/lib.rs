//! CUP POS security (`spec/cup-pos.md` §3): the MAC of field 64, PIN blocks of field 52,
//! key check values, keys wrapped under the TMK, and the working keys of field 62 that a
//! terminal receives at sign-in.
//!
//! - MACs ([`compute_mac`], [`verify_mac`]): CUP ECB with DES/3DES (§3.3), CUP ECB with
//!   SM4 (§3.6), ANSI X9.19. The caller passes the MAC input (MTI through field 63).
//! - PIN blocks: ISO 9564 format 0 (§3.4) and its 16-byte SM4 variant (§3.6) —
//!   [`encrypt_pin`] for a terminal, [`decrypt_pin`] for a host.
//! - Keys: [`check_value`], [`wrap_key`], [`unwrap_key`] (DES/3DES and SM4).
//! - Sign-in: [`parse_field62`] and [`build_field62`] for 60.3 = 001/003/004 (§3.2).
//!
//! Every cipher is RustCrypto's (`des`, `sm4`); nothing here implements one.
//!
//! **Architecture invariant:** keys ([`SecretKey`]), PINs ([`Pin`]) and PIN blocks
//! ([`ClearPinBlock`], [`EncryptedPinBlock`]) zeroize when dropped, never show their value
//! in `Debug`/`Display`, are not `Serialize`, and compare in constant time; reading one
//! takes `dangerous_expose`. No error carries their bytes. This crate does no I/O and
//! never logs.

mod ct;
mod engine;
mod error;
mod key;
mod keyload;
mod mac;
mod pin;

pub use ct::bytes_eq as constant_time_eq;
pub use engine::{CipherFamily, CipherKey};
pub use error::{PinBlockDefect, SecurityError};
pub use key::{SecretKey, check_value, unwrap_key, wrap_key};
pub use keyload::{
    CHECK_VALUE_BYTES, KeyLayout, MakRule, WorkingKeys, build_field62, parse_field62,
};
pub use mac::{MAC_BYTES, Mac, MacAlgorithm, compute_mac, verify_mac};
pub use pin::{
    ClearPinBlock, EncryptedPinBlock, PAN_DIGITS_MAX, PAN_DIGITS_MIN, PIN_DIGITS_MAX,
    PIN_DIGITS_MIN, Pin, PinBlockFormat, decrypt_pin, decrypt_pin_block, encrypt_pin,
    encrypt_pin_block, pin_block_format0, pin_block_format0_sm4,
};
