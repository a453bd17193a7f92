//! What survives a power cut, and what a process crash alone keeps.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::*;
use poskit_crashvfs::{crash, power_cut, unsynced_bytes};

/// Test 1: under `synchronous = FULL` a commit is synced before it returns, so it survives.
/// The `-shm` left on disk by the dead process is stale and harmless.
#[test]
fn a_commit_under_synchronous_full_survives_a_power_cut() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path());
    let conn = open(dir.path(), "FULL");
    insert(&conn, 1).unwrap();
    assert_eq!(
        unsynced_bytes(dir.path()),
        0,
        "FULL leaves nothing unsynced"
    );
    crash_and_cut(dir.path(), vec![conn]);
    assert!(dir.path().join("ledger.sqlite-shm").exists());

    let conn = open(dir.path(), "FULL");
    assert_keys(&conn, 1);
    assert_intact(&conn);
}

/// The wal-index on disk indexes frames a power cut then took away: the first connection
/// after the cut rebuilds it from the WAL as it is, and sees the synced commit only.
#[test]
fn a_stale_wal_index_is_rebuilt_after_a_power_cut() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path());
    let conn = open(dir.path(), "FULL");
    insert(&conn, 1).unwrap();
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    for k in 2..=50 {
        insert(&conn, k).unwrap();
    }
    crash_and_cut(dir.path(), vec![conn]);
    // The index on disk (its header's mxFrame) names frames past the WAL's durable end.
    let shm = std::fs::read(dir.path().join("ledger.sqlite-shm")).unwrap();
    let indexed = u32::from_ne_bytes(shm[16..20].try_into().unwrap());
    let wal = std::fs::metadata(dir.path().join("ledger.sqlite-wal"))
        .unwrap()
        .len();
    let durable_frames = wal.saturating_sub(32) / (4096 + 24);
    assert!(
        u64::from(indexed) > durable_frames,
        "{indexed} vs {durable_frames}"
    );

    let conn = open(dir.path(), "FULL");
    assert_keys(&conn, 1);
    assert_intact(&conn);
    // And the database goes on from there.
    insert(&conn, 2).unwrap();
    assert_keys(&conn, 2);
}

/// Test 2: without a sync at commit the commit is lost: the VFS catches a missing fsync.
#[test]
fn a_commit_under_synchronous_off_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path());
    let conn = open(dir.path(), "OFF");
    insert(&conn, 1).unwrap();
    assert!(unsynced_bytes(dir.path()) > 0);
    crash_and_cut(dir.path(), vec![conn]);

    let conn = open(dir.path(), "FULL");
    assert_keys(&conn, 0);
    assert_intact(&conn);
}

/// Test 2 (NORMAL): WAL commits are synced only by a checkpoint; those after the last one
/// are lost, and the database stays consistent.
#[test]
fn commits_under_synchronous_normal_are_lost_back_to_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path());
    let conn = open(dir.path(), "NORMAL");
    for k in 1..=5 {
        insert(&conn, k).unwrap();
    }
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .unwrap();
    for k in 6..=10 {
        insert(&conn, k).unwrap();
    }
    assert!(unsynced_bytes(dir.path()) > 0);
    crash_and_cut(dir.path(), vec![conn]);

    let conn = open(dir.path(), "FULL");
    assert_keys(&conn, 5);
    assert_intact(&conn);
}

/// Why `crash` exists: closing a connection cleanly checkpoints, which under NORMAL syncs
/// the WAL and the database, so a test that only dropped its connections before the cut
/// would not notice the missing sync at commit.
#[test]
fn a_clean_close_syncs_what_normal_did_not() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path());
    let conn = open(dir.path(), "NORMAL");
    insert(&conn, 1).unwrap();
    assert!(unsynced_bytes(dir.path()) > 0);
    drop(conn);
    assert_eq!(unsynced_bytes(dir.path()), 0);
    power_cut(dir.path());

    let conn = open(dir.path(), "FULL");
    assert_keys(&conn, 1);
}

/// Test 3: a process crash alone (no power cut) loses nothing, even unsynced: the page
/// cache outlives the process. The power cut after it still loses the unsynced commits.
#[test]
fn a_process_crash_without_a_power_cut_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path());
    let conn = open(dir.path(), "OFF");
    for k in 1..=20 {
        insert(&conn, k).unwrap();
    }
    crash(dir.path());
    drop(conn);
    let conn = open(dir.path(), "OFF");
    assert_keys(&conn, 20);
    assert_intact(&conn);
    // A clean close and reopen, too.
    insert(&conn, 21).unwrap();
    drop(conn);
    let conn = open(dir.path(), "OFF");
    assert_keys(&conn, 21);
    drop(conn);

    power_cut(dir.path());
    let conn = open(dir.path(), "FULL");
    assert_keys(&conn, 0);
    assert_intact(&conn);
}

/// The same with a rollback journal: a transaction the process died in the middle of,
/// its journal never synced (OFF), is rolled back from the page cache's journal on reopen.
#[test]
fn a_hot_journal_in_the_page_cache_is_rolled_back_after_a_process_crash() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_mode(dir.path(), "DELETE", "OFF");
    conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        .unwrap();
    for k in 1..=30 {
        insert(&conn, k).unwrap();
    }
    // A transaction larger than the page cache spills into the database file.
    conn.execute_batch("PRAGMA cache_size = 2; BEGIN").unwrap();
    conn.execute("UPDATE t SET body = zeroblob(3000)", [])
        .unwrap();
    crash(dir.path());
    drop(conn);
    assert!(dir.path().join("ledger.sqlite-journal").exists());

    let conn = open_mode(dir.path(), "DELETE", "OFF");
    assert_keys(&conn, 30);
    let big: i64 = conn
        .query_row(
            "SELECT count(*) FROM t WHERE length(body) = 3000",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(big, 0);
    assert_intact(&conn);
}

/// Test 5: connections of one process share the page cache: each sees the other's
/// commits before anything is synced.
#[test]
fn two_connections_see_each_others_unsynced_commits() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path());
    let a = open(dir.path(), "OFF");
    let b = open(dir.path(), "OFF");
    insert(&a, 1).unwrap();
    assert_eq!(count(&b), 1);
    insert(&b, 2).unwrap();
    assert_keys(&a, 2);
    // Even across a checkpoint into the (unsynced) database file.
    b.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    insert(&a, 3).unwrap();
    let c = open(dir.path(), "OFF");
    assert_keys(&c, 3);
    assert_intact(&c);
    assert!(unsynced_bytes(dir.path()) > 0);
}

/// Test 6: cutting the power under an open connection is a misuse: it panics, and forgets
/// nothing.
#[test]
fn a_power_cut_with_a_connection_open_panics() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path());
    let conn = open(dir.path(), "OFF");
    insert(&conn, 1).unwrap();
    let cut = catch_unwind(AssertUnwindSafe(|| power_cut(dir.path())));
    let message = cut.unwrap_err();
    let message = message.downcast_ref::<String>().unwrap();
    assert!(message.contains("still open"), "{message}");
    assert_keys(&conn, 1);
    drop(conn);
    let conn = open(dir.path(), "OFF");
    assert_keys(&conn, 1);
}

/// A power cut of one directory leaves another's unsynced data alone.
#[test]
fn a_power_cut_is_scoped_to_its_directory() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [&one, &two] {
        create(dir.path());
        let conn = open(dir.path(), "OFF");
        insert(&conn, 1).unwrap();
    }
    power_cut(one.path());
    assert_keys(&open(one.path(), "OFF"), 0);
    assert_keys(&open(two.path(), "OFF"), 1);
}
