//! The domain both the host and the terminal speak: money as integer fen, the identifiers
//! of a POS transaction, and the CUP transaction table (`spec/cup-pos.md` §2.2) that says
//! which MTI, processing code, condition code and 60.1 type each transaction uses.
//!
//! No I/O, no clock, no randomness: callers pass them in (a seeded [`rand::SplitMix64`]
//! is a pure function of its seed).

pub mod calendar;
mod code;
mod ids;
mod kind;
pub mod message;
mod money;
pub mod rand;

pub use code::ResponseCode;
pub use ids::{
    AuthCode, Batch, IdError, Mid, Pan, Rrn, Stan, Tid, digits_str, luhn_check_digit, zero_padded,
};
pub use kind::{Identified, NotOffered, TransactionKind};
pub use money::{AmountFen, MoneyError};
