//! Test 4: commits and checkpoints on two connections, the process crashing at seeded
//! random points (inside a commit, a checkpoint, anywhere), then the power going: under
//! `synchronous = FULL` every commit that returned Ok is there, none other, and the
//! database checks out.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use common::*;
use poskit_domain::rand::SplitMix64;
use rusqlite::Connection;

/// A transaction of `rows` rows from key `next`; Ok only if COMMIT returned Ok.
fn transaction(conn: &Connection, next: i64, rows: i64) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN")?;
    for k in next..next + rows {
        insert(conn, k)?;
    }
    conn.execute_batch("COMMIT")
}

fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<()> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))
}

/// One seed: rounds of (reopen, check, work until the armed crash, crash, power cut).
fn crash_at_random_points(seed: u64, journal_mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    open_mode(dir, journal_mode, "FULL")
        .execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        .unwrap();
    // Seeded: the crash points must be reproducible.
    let mut rng = SplitMix64::new(seed);
    let mut acknowledged = 0i64;
    for _round in 0..8 {
        let writer = open_mode(dir, journal_mode, "FULL");
        let checkpointer = open_mode(dir, journal_mode, "FULL");
        assert_intact(&writer);
        assert_keys(&writer, acknowledged);
        poskit_crashvfs::crash_after(dir, rng.below(500));
        for _ in 0..150 {
            let done = match rng.below(10) {
                0 => checkpoint(&checkpointer, "PASSIVE"),
                1 => checkpoint(&checkpointer, "TRUNCATE"),
                2 => transaction(&writer, acknowledged + 1, 5).map(|()| acknowledged += 5),
                _ => insert(&writer, acknowledged + 1).map(|_| acknowledged += 1),
            };
            if done.is_err() {
                break;
            }
        }
        crash_and_cut(dir, vec![writer, checkpointer]);
    }
    let conn = open_mode(dir, journal_mode, "FULL");
    assert_intact(&conn);
    assert_keys(&conn, acknowledged);
    assert!(acknowledged > 100, "seed {seed}: the rounds did some work");
}

#[test]
fn wal_commits_acknowledged_before_a_crash_survive_the_power_cut() {
    for seed in 1..=6 {
        crash_at_random_points(seed, "WAL");
    }
}

#[test]
fn rollback_journal_commits_acknowledged_before_a_crash_survive_the_power_cut() {
    for seed in 1..=3 {
        crash_at_random_points(seed, "DELETE");
    }
}

/// The host's shape: a writer thread and a checkpoint thread on their own connections, the
/// process crashing at some instant (not seeded: threads), then the power going.
#[test]
fn a_crash_beside_a_checkpoint_thread_loses_no_acknowledged_commit() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path());
    let acknowledged = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (dir, acknowledged) = (dir.path().to_path_buf(), Arc::clone(&acknowledged));
        std::thread::spawn(move || {
            let conn = open(&dir, "FULL");
            let mut next = 1;
            while insert(&conn, next).is_ok() {
                acknowledged.store(next, Ordering::SeqCst);
                next += 1;
            }
            conn
        })
    };
    let checkpointer = {
        let (dir, stop) = (dir.path().to_path_buf(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let conn = open(&dir, "FULL");
            while !stop.load(Ordering::SeqCst) {
                let _ = checkpoint(&conn, "PASSIVE");
                std::thread::sleep(Duration::from_millis(2));
            }
            conn
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    poskit_crashvfs::crash(dir.path());
    let writer = writer.join().unwrap();
    stop.store(true, Ordering::SeqCst);
    let checkpointer = checkpointer.join().unwrap();
    drop((writer, checkpointer));
    poskit_crashvfs::power_cut(dir.path());

    let conn = open(dir.path(), "FULL");
    assert_intact(&conn);
    let n = acknowledged.load(Ordering::SeqCst);
    assert!(n > 10, "the writer committed ({n})");
    assert_keys(&conn, n);
}

/// The crash point is a function of the seed alone.
#[test]
fn crash_after_is_deterministic() {
    let acknowledged_for = |calls: u64| {
        let dir = tempfile::tempdir().unwrap();
        create(dir.path());
        let conn = open(dir.path(), "FULL");
        poskit_crashvfs::crash_after(dir.path(), calls);
        let mut n = 0;
        while insert(&conn, n + 1).is_ok() {
            n += 1;
        }
        crash_and_cut(dir.path(), vec![conn]);
        assert_keys(&open(dir.path(), "FULL"), n);
        n
    };
    assert_eq!(acknowledged_for(40), acknowledged_for(40));
    assert!(acknowledged_for(40) < acknowledged_for(80));
}
