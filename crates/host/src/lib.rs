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

pub mod admin;
pub mod admission;
pub mod alerting;
pub mod client;
pub mod clock;
pub mod config;
pub mod dataset;
pub mod demo;
pub mod diagnosis;
pub mod engine;
pub mod faults;
pub mod fields;
mod logbudget;
pub mod model;
pub mod pinhash;
pub mod request;
pub mod response;
pub mod run;
pub mod server;
pub mod store;
pub mod stranger;
pub mod switch;
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
    /// Another host process serves from the same data directory.
    #[error("{path} is in use by another poskit host ({holder}); stop it first")]
    Busy { path: String, holder: String },
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

    /// Takes the directory for this host process: an exclusive lock on its lock file,
    /// held until the returned guard drops (or the process dies, when the system releases
    /// it). The holder's process id is written in the file, so that a second host can say
    /// which process it is. Commands that only read or import (`host check`, `host
    /// import`, `host faults`) do not take it and keep working beside a running host.
    pub fn lock_host(&self) -> Result<HostLock, HostError> {
        use std::io::{Read, Seek, Write};
        let path = self.path.join(LOCK_FILE);
        let io = |source| HostError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        if let Err(e) = file.try_lock() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "a process that has not written its id yet".to_owned(),
                pid => format!("process {pid}"),
            };
            return match e {
                std::fs::TryLockError::WouldBlock => Err(HostError::Busy {
                    path: self.path.display().to_string(),
                    holder,
                }),
                std::fs::TryLockError::Error(source) => Err(io(source)),
            };
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(HostLock { _file: file })
    }
}

/// A data directory's lock file, held by the host process serving from it.
pub const LOCK_FILE: &str = "host.lock";

/// The running host's hold on its data directory ([`DataDir::lock_host`]); released when
/// dropped.
#[derive(Debug)]
pub struct HostLock {
    _file: std::fs::File,
}
