//! The terminal side of poskit: the engine that makes "charged but the POS said failed"
//! impossible, its journal, and a driver that connects it to a host over TCP.
//!
//! - [`engine`]: sans-I/O — commands, answers and timer events in; journal writes,
//!   frames, timers and outcomes out. No clock, no socket, no disk.
//! - [`journal`]: the SQLite journal of one terminal (configuration, keys, counters,
//!   transactions, the pending reversal, the advice queue, failure and maintenance logs,
//!   closed batches).
//! - [`driver`]: runs one operation against a host over TCP, making each journal write
//!   durable before the request that depends on it is sent.
//! - [`code`]: the code an operation ends with, the host's field 39 or a local one.
//! - [`note`]: what an outcome says besides its code, and a failure's cause, as data.
//! - [`wire`]: reading a CUP frame from a byte stream (the driver's and the fault proxy's).

pub mod code;
pub mod driver;
pub mod engine;
pub mod journal;
pub mod note;
mod sealed;
pub mod wire;
