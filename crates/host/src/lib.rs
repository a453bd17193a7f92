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
pub mod fuzzing;
mod logbudget;
pub mod mackey;
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
use std::sync::Arc;

use poskit_keystore::KekSource;

use crate::store::atrest::{self, AtRest};

/// The file earlier versions kept the PIN verification key in, in clear; a keyed open
/// moves it into the ledger, wrapped, and removes the file.
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
    /// The key-encryption key is not given, not the ledger's, or cannot be reached.
    #[error("{0}")]
    Keys(String),
    /// Another host process serves from the same data directory.
    #[error("{path} is in use by another poskit host ({holder}); stop it first")]
    Busy { path: String, holder: String },
}

/// A data directory: the database, and where its key-encryption key comes from.
#[derive(Clone, Debug)]
pub struct DataDir {
    pub path: PathBuf,
    kek: Arc<KekSource>,
}

impl DataDir {
    /// Creates the directory when absent.
    pub fn create(path: impl Into<PathBuf>) -> Result<DataDir, HostError> {
        let path = path.into();
        std::fs::create_dir_all(&path).map_err(|e| HostError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        let kek = Arc::new(KekSource::resolve(None, &path));
        Ok(DataDir { path, kek })
    }

    /// A directory that exists (nothing is created).
    pub fn existing(path: impl Into<PathBuf>) -> DataDir {
        let path = path.into();
        let kek = Arc::new(KekSource::resolve(None, &path));
        DataDir { path, kek }
    }

    /// This directory with its key-encryption key taken from `source` (a `--kek-file`, an
    /// HSM) instead of `POSKIT_KEK` or the directory's own `kek` file.
    pub fn with_kek(mut self, source: KekSource) -> DataDir {
        self.kek = Arc::new(source);
        self
    }

    pub fn kek_source(&self) -> &KekSource {
        &self.kek
    }

    /// The database, without its secrets: for reading transactions, totals and the like.
    pub fn open_store(&self) -> Result<rusqlite::Connection, HostError> {
        Ok(store::sqlite::open(&self.path)?)
    }

    /// The database with its secrets opened ([`AtRest`]): for the host, imports and
    /// anything that reads terminal keys or cards. A ledger never opened with keys gets
    /// them now — its clear keys and card numbers are sealed in place — and a data
    /// directory with no KEK given gets one of its own (0600), with a warning. A KEK that
    /// is not the ledger's is refused before anything is written.
    pub fn open_keys(&self) -> Result<(rusqlite::Connection, Arc<AtRest>), HostError> {
        let conn = self.open_store()?;
        let wrapped_under = atrest::wrapped_under(&conn)?;
        if let Some(id) = wrapped_under
            && poskit_keystore::source::finish_rotation(&self.kek, id)
                .map_err(|e| HostError::Keys(e.to_string()))?
        {
            tracing::warn!("completed a key-encryption key rotation that had stopped half-way");
        }
        let never_wrapped = wrapped_under.is_none();
        let opened = poskit_keystore::open(&self.kek, never_wrapped)
            .map_err(|e| HostError::Keys(e.to_string()))?;
        if let Some(created) = &opened.created {
            tracing::warn!(
                "created a key-encryption key in {} (mode 0600); production keeps it elsewhere: --kek-file, POSKIT_KEK_FILE, POSKIT_KEK or an HSM",
                created.display()
            );
        }
        let pvk_file = self.path.join(PVK_FILE);
        let keys = atrest::load(&conn, opened.store, &pvk_file).map_err(|e| match e {
            store::StoreError::Keys(why) => HostError::Keys(why),
            other => HostError::Store(other),
        })?;
        let keys = Arc::new(keys);
        store::sqlite::migrate_keyed(&conn, &keys)?;
        atrest::register_functions(&conn, &keys)?;
        match std::fs::remove_file(&pvk_file) {
            Ok(()) => tracing::info!(
                "the PIN verification key now lives wrapped in the ledger; removed {}",
                pvk_file.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(HostError::Io {
                    path: pvk_file.display().to_string(),
                    source: e,
                });
            }
        }
        Ok((conn, keys))
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
