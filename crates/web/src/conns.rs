//! Connections kept per blocking-pool thread: a request reuses its thread's connection to
//! the ledger, `stats.db` or `console.db` (and its warm page cache and prepared
//! statements) instead of opening, checking and migrating a file each time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::ApiError;

/// The files the API reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum File {
    /// `host.sqlite`, the ledger.
    Ledger,
    /// `stats.db`: statistics and alerts.
    Stats,
    /// `console.db`: users, sessions, tokens, audit.
    Console,
}

thread_local! {
    static OPEN: RefCell<HashMap<(File, PathBuf), Connection>> = RefCell::new(HashMap::new());
}

fn open(file: File, data: &Path) -> Result<Connection, ApiError> {
    match file {
        File::Ledger => poskit_host::store::sqlite::open(data).map_err(ApiError::internal),
        File::Stats => {
            let conn = Connection::open(data.join(poskit_host::run::STATS_FILE))
                .map_err(ApiError::internal)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(ApiError::internal)?;
            poskit_monitor::stats::migrate(&conn).map_err(ApiError::internal)?;
            Ok(conn)
        }
        File::Console => crate::users::open(data).map_err(ApiError::internal),
    }
}

/// Runs `f` with this thread's connection to `file` of `data` (opened on first use). The
/// connection is out of the thread's set while `f` runs, so `f` may ask for another file.
pub fn with<T>(
    file: File,
    data: &Path,
    f: impl FnOnce(&Connection) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let key = (file, data.to_path_buf());
    let kept = OPEN.with(|open_conns| open_conns.borrow_mut().remove(&key));
    let conn = match kept {
        Some(conn) => conn,
        None => open(file, data)?,
    };
    let result = f(&conn);
    OPEN.with(|open_conns| open_conns.borrow_mut().insert(key, conn));
    result
}
