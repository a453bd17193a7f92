//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rusqlite::Connection;

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("ledger.sqlite")
}

/// Opens the database through the default VFS (the crash VFS, installed here) in WAL mode
/// with the given `synchronous` level.
pub fn open(dir: &Path, synchronous: &str) -> Connection {
    open_mode(dir, "WAL", synchronous)
}

pub fn open_mode(dir: &Path, journal_mode: &str, synchronous: &str) -> Connection {
    poskit_crashvfs::install_as_default();
    let conn = Connection::open(db_path(dir)).unwrap();
    conn.pragma_update(None, "synchronous", synchronous)
        .unwrap();
    let mode: String = conn
        .query_row(&format!("PRAGMA journal_mode = {journal_mode}"), [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(mode.to_uppercase(), journal_mode);
    conn
}

/// A fresh database with table `t` (created and synced under `synchronous = FULL`).
pub fn create(dir: &Path) {
    let conn = open(dir, "FULL");
    conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        .unwrap();
}

pub fn insert(conn: &Connection, k: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO t (k, body) VALUES (?1, zeroblob(?2))",
        (k, 300 + (k * 37) % 2000),
    )
}

pub fn count(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

/// The keys are exactly 1..=n (no commit lost, none twice).
pub fn assert_keys(conn: &Connection, n: i64) {
    let (count, min, max): (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), coalesce(min(k), 1), coalesce(max(k), 0) FROM t",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((count, min, max), (n, 1, n));
}

pub fn assert_intact(conn: &Connection) {
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// The process dies with `conns` open, then the power goes.
pub fn crash_and_cut(dir: &Path, conns: Vec<Connection>) {
    poskit_crashvfs::crash(dir);
    drop(conns);
    poskit_crashvfs::power_cut(dir);
}
