//! Test only: a SQLite VFS that simulates a power cut.
//!
//! The VFS wraps SQLite's default one (the unix VFS). The real file on disk plays the
//! durable storage; everything written or truncated through the VFS goes first to a
//! volatile image of that path (the "page cache"), shared by every handle of the process
//! open on the path, and reaches the real file only at `xSync`. So:
//!
//! - connections of the same process see each other's writes at once, synced or not, and a
//!   connection closed and reopened finds everything (a process that exits or dies keeps
//!   its writes, as the OS would);
//! - [`power_cut`] forgets, under a directory, everything not synced: what a test reopens
//!   afterwards is exactly what an fsync had made durable. A missing sync loses data.
//!
//! A process crash is a little more than closing connections: `sqlite3_close` checkpoints
//! the WAL and, unless `synchronous = OFF`, syncs it, which would make durable what a
//! crashed process never synced. [`crash`] (at once) and [`crash_after`] (after a number of
//! writes, truncations, syncs and deletes, to crash in the middle of a commit or a
//! checkpoint) kill the handles open under a directory: from then on their writes,
//! truncations, syncs and deletes fail and change nothing. A test then drops its
//! connections, calls [`power_cut`], and reopens:
//!
//! ```no_run
//! # let dir = std::path::Path::new("/tmp/x");
//! poskit_crashvfs::install_as_default();
//! let conn = rusqlite::Connection::open(dir.join("ledger.sqlite")).unwrap();
//! // ... commits ...
//! poskit_crashvfs::crash(dir); // the process dies (optional: drop alone is a clean exit)
//! drop(conn);
//! poskit_crashvfs::power_cut(dir); // and the power goes
//! let conn = rusqlite::Connection::open(dir.join("ledger.sqlite")).unwrap();
//! ```
//!
//! What is simulated and what is not:
//! - every file SQLite opens by name (database, WAL, rollback journal) goes through the
//!   overlay; temporary files go straight to the default VFS;
//! - a power cut loses every unsynced byte of a file (none of them survives; a real disk may
//!   keep some, in any order);
//! - the `-shm` wal-index is the unix VFS's shared memory, untouched: after a power cut it
//!   is stale on disk, and the first connection opened rebuilds it from the WAL;
//! - creating and deleting files is durable at once (directory syncs are not simulated);
//! - memory-mapped I/O and atomic batch writes are disabled (they would bypass the overlay).

mod overlay;
mod registry;
mod vfs;

use std::path::Path;

/// The name this VFS is registered under (`sqlite3_vfs_find(NAME)`, or the `vfs` argument
/// of `Connection::open_with_flags_and_vfs`).
pub const NAME: &str = "crashvfs";

/// Registers the VFS as the process's default one (once; later calls do nothing), so that
/// `rusqlite::Connection::open` and everything built on it go through it. Call it before
/// opening any connection whose files a test will cut power to.
pub fn install_as_default() {
    vfs::register_as_default();
}

/// The process's connections under `dir` die now: every handle open on a file under `dir`
/// (recursively) can no longer write, truncate, sync or delete (those calls fail with an
/// I/O error and change nothing); reading still works. Handles opened afterwards work
/// normally. Use it before dropping the connections, so that closing them does not
/// checkpoint and sync what the process never synced.
pub fn crash(dir: &Path) {
    registry::crash(dir);
}

/// Arms a [`crash`] of `dir`: the next `calls` writes, truncations, syncs and deletes of
/// files under `dir` succeed, and the one after them crashes `dir` (and fails). With a
/// single thread driving the connections, the crash point is deterministic for a given
/// `calls`. A later `crash_after`, [`crash`] or [`power_cut`] of `dir` disarms it.
pub fn crash_after(dir: &Path, calls: u64) {
    registry::crash_after(dir, calls);
}

/// Cuts the power to the files under `dir` (recursively): every write and truncation not
/// yet synced is forgotten, and the files read, from the next open on, as their last
/// synced state.
///
/// # Panics
/// If a file under `dir` is still open through the VFS: drop every connection on it first
/// (after [`crash`], to model a process that died), then cut the power, then reopen.
pub fn power_cut(dir: &Path) {
    registry::power_cut(dir);
}

/// The bytes a [`power_cut`] of `dir` would lose now: those of the 4 KiB chunks written
/// since the files' last sync, plus what a pending truncation cut off.
pub fn unsynced_bytes(dir: &Path) -> u64 {
    registry::unsynced_bytes(dir)
}
