//! poskit's acquirer host: a CUP POS TCP server in front of an authorization engine and a
//! double-entry ledger.
//!
//! - [`engine`]: request + ledger state → decision with its reason → postings. No clock,
//!   no network: time, the issuer's answer and injected faults are inputs.
//! - [`store`]: the [`store::Ledger`] boundary and its SQLite implementation (WAL,
//!   migrations, `synchronous = FULL`).
//! - [`writer`]: the one thread that owns the database and commits requests in groups,
//!   so that durability costs one fsync per group, not per transaction.
//! - [`server`]: the tokio TCP server (framing, pipelining, timeouts, faults, drain).
//! - [`faults`]: the fault plan terminal developers test against.
//! - [`demo`]: the built-in data set with a named card or terminal for every scenario.
//!
//! **Invariants:** an approval is committed before its response is written; the postings
//! of every transaction sum to zero; every answer is recorded with the reason for its
//! code; PANs appear masked in logs, PIN blocks and keys never.

pub mod admission;
pub mod client;
pub mod clock;
pub mod config;
pub mod dataset;
pub mod demo;
pub mod engine;
pub mod faults;
pub mod fields;
pub mod model;
pub mod pinhash;
pub mod request;
pub mod response;
pub mod run;
pub mod server;
pub mod store;
pub mod stranger;
pub mod writer;

use std::path::PathBuf;

/// The data directory's PIN verification key file.
pub const PVK_FILE: &str = "pin-verification.key";

/// Why the host could not do what was asked (outside request processing, where every
/// failure is an answer).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}")]
    Data { what: String },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("configuration: {0}")]
    Config(String),
}

/// A data directory: the database and the PIN verification key.
#[derive(Clone, Debug)]
pub struct DataDir {
    pub path: PathBuf,
}

impl DataDir {
    /// Creates the directory when absent.
    pub fn create(path: impl Into<PathBuf>) -> Result<DataDir, HostError> {
        let path = path.into();
        std::fs::create_dir_all(&path).map_err(|e| HostError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Ok(DataDir { path })
    }

    pub fn pin_hasher(&self) -> Result<pinhash::PinHasher, HostError> {
        pinhash::PinHasher::load_or_create(&self.path.join(PVK_FILE))
    }

    pub fn open_store(&self) -> Result<rusqlite::Connection, HostError> {
        Ok(store::sqlite::open(&self.path)?)
    }
}
