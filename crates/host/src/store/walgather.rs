//! A VFS over SQLite's default one that hands a commit's WAL frames to the kernel in one
//! `pwrite` instead of two per page.
//!
//! SQLite writes each WAL frame as two `pwrite`s (its 24-byte header, then the page): about
//! fifty system calls for a group commit of sixty sales, and the writer thread spent a fifth
//! of its CPU in the kernel. Gathered, a commit is one or two `pwrite`s; in alternating
//! `poskit bench host` runs the writer's CPU per sale fell by 8–11 % and sales per second
//! rose by as much.
//!
//! What changes, and what does not: a write to a WAL file that continues the bytes gathered
//! so far is kept in memory (at most [`GATHER_BYTES_MAX`]); the gathered bytes are written,
//! in one call, before anything else happens to the WAL file and before SQLite publishes
//! the frames: before `xSync` (a commit under `synchronous = FULL`), before the database
//! file's `xShmBarrier` (SQLite keeps the WAL index in the database file's shared memory
//! and publishes new frames by writing the index header around that barrier, whatever the
//! `synchronous` level), and before any read, truncate, size query, lock, file control or
//! close of the WAL file. So neither a reader nor an fsync ever sees less than SQLite
//! wrote; only the number of system calls changes. A write that does not continue the
//! gathered bytes first writes them out. Every other file (the database, a rollback
//! journal) goes straight to the default VFS, and a WAL file whose database file was not
//! opened through this VFS is not gathered.
//!
//! A failed write of gathered bytes is returned by the call that caused it (`xSync` for a
//! commit: the commit fails, and the writer answers 96). `xShmBarrier` cannot return an
//! error; a failed write there would let readers see frames that are not in the file, so
//! the process aborts instead (SQLite's recovery then reads the WAL as it is on disk).
//! Under `synchronous = FULL`, which `sqlite::open` sets, `xSync` has already
//! written everything by then.

use std::ffi::{CStr, c_int, c_void};
use std::ptr::null_mut;
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name connections open the database with.
const VFS_NAME: &str = "poskit-wal-gather";
const VFS_NAME_C: &CStr = c"poskit-wal-gather";

/// WAL bytes gathered at most before they are written (a transaction larger than that, an
/// import say, writes in pieces of this size).
const GATHER_BYTES_MAX: usize = 4 << 20;

/// The most one call to the default VFS's `xWrite` writes: the unix VFS masks a write's
/// length to 17 bits (`nBuf &= 0x1ffff` in `seekAndWrite`), so a longer one comes back
/// short (`SQLITE_FULL`).
const WRITE_BYTES_MAX: usize = 0x1ffff;

/// What SQLite allocates for each open file of this VFS (`szOsFile`): this header, then the
/// default VFS's own file. SQLite uses a connection's files from one thread at a time.
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    /// The default VFS's file, in the same allocation, after this header.
    real: *mut ffi::sqlite3_file,
    /// The bytes gathered for a WAL file; null for any other file.
    gather: *mut Gather,
    /// A WAL file's database file (whose shared-memory barrier publishes the WAL's frames).
    db: *mut File,
    /// A database file's open WAL file, if any: its gathered bytes are written before the
    /// database file's shared-memory barrier.
    wal: *mut File,
}

struct Gather {
    /// File offset of `bytes[0]`.
    start: i64,
    bytes: Vec<u8>,
}

/// Where the default VFS's file starts inside a [`File`] allocation.
const REAL_OFFSET: usize = std::mem::size_of::<File>().next_multiple_of(16);

struct Registered {
    /// The default VFS this one forwards to.
    real: *mut ffi::sqlite3_vfs,
}

// SAFETY: the pointer names SQLite's default VFS, which lives for the whole process and is
// safe to use from any thread (SQLite is built thread-safe; rusqlite checks it).
unsafe impl Send for Registered {}
unsafe impl Sync for Registered {}

static REGISTERED: OnceLock<Result<Registered, c_int>> = OnceLock::new();

/// Registers the VFS with SQLite (once per process) and returns its name, for
/// `Connection::open_with_flags_and_vfs`.
pub fn register() -> rusqlite::Result<&'static str> {
    let registered = REGISTERED.get_or_init(|| {
        // SAFETY: `sqlite3_vfs_find(NULL)` returns the default VFS (or null); the copy made
        // of it is leaked, as SQLite requires of a registered VFS, and names only functions
        // and data of the default VFS besides this module's `x_open`.
        unsafe {
            let real = ffi::sqlite3_vfs_find(std::ptr::null());
            if real.is_null() {
                return Err(ffi::SQLITE_ERROR);
            }
            let mut vfs: ffi::sqlite3_vfs = *real;
            vfs.szOsFile =
                c_int::try_from(REAL_OFFSET).map_err(|_| ffi::SQLITE_ERROR)? + (*real).szOsFile;
            vfs.zName = VFS_NAME_C.as_ptr();
            vfs.pNext = null_mut();
            vfs.xOpen = Some(x_open);
            let vfs = Box::into_raw(Box::new(vfs));
            let rc = ffi::sqlite3_vfs_register(vfs, 0);
            if rc != ffi::SQLITE_OK {
                drop(Box::from_raw(vfs));
                return Err(rc);
            }
            Ok(Registered { real })
        }
    });
    match registered {
        Ok(_) => Ok(VFS_NAME),
        Err(rc) => Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(*rc),
            Some("cannot register the WAL-gathering VFS".into()),
        )),
    }
}

fn real_vfs() -> *mut ffi::sqlite3_vfs {
    match REGISTERED.get() {
        Some(Ok(r)) => r.real,
        // `x_open` is reachable only through a registered VFS.
        _ => null_mut(),
    }
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: Some(x_fetch),
    xUnfetch: Some(x_unfetch),
};

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let real_vfs = real_vfs();
    // SAFETY: SQLite hands over `szOsFile` bytes at `file`, of which the tail past
    // `REAL_OFFSET` is the default VFS's file; the header is written before use.
    unsafe {
        let f = file.cast::<File>();
        let real = file
            .cast::<u8>()
            .add(REAL_OFFSET)
            .cast::<ffi::sqlite3_file>();
        std::ptr::write(
            f,
            File {
                base: ffi::sqlite3_file {
                    pMethods: std::ptr::null(),
                },
                real,
                gather: null_mut(),
                db: null_mut(),
                wal: null_mut(),
            },
        );
        let Some(open) = real_vfs.as_ref().and_then(|v| v.xOpen) else {
            return ffi::SQLITE_ERROR;
        };
        let rc = open(real_vfs, name, real, flags, out_flags);
        if rc != ffi::SQLITE_OK || (*real).pMethods.is_null() {
            // This file's pMethods stays null, so SQLite calls none of its methods, not even
            // xClose: a default file left half open (pMethods set) is closed here.
            if let Some(close) = (*real).pMethods.as_ref().and_then(|m| m.xClose) {
                close(real);
            }
            return if rc == ffi::SQLITE_OK {
                ffi::SQLITE_CANTOPEN
            } else {
                rc
            };
        }
        (*f).base.pMethods = &METHODS;
        if flags & ffi::SQLITE_OPEN_WAL != 0 {
            // Gather only with the database file at hand (opened through this VFS): its
            // barrier is where SQLite publishes the frames.
            let db = ffi::sqlite3_database_file_object(name);
            if !db.is_null() && std::ptr::eq((*db).pMethods, &METHODS) {
                let db = db.cast::<File>();
                (*db).wal = f;
                (*f).db = db;
                (*f).gather = Box::into_raw(Box::new(Gather {
                    start: 0,
                    bytes: Vec::new(),
                }));
            }
        }
        ffi::SQLITE_OK
    }
}

/// The default VFS's file and its methods.
///
/// # Safety
/// `file` is a file this VFS opened and has not closed.
unsafe fn real(
    file: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    // SAFETY: per the caller, `file` is a `File` whose `real` was opened successfully (its
    // methods are the default VFS's static table).
    unsafe {
        let real = (*file.cast::<File>()).real;
        (real, &*(*real).pMethods)
    }
}

/// Writes the gathered bytes, if any.
///
/// # Safety
/// `file` is a file this VFS opened and has not closed.
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: per the caller; `gather` is null or the box `x_open` made.
    unsafe {
        let Some(gather) = (*file.cast::<File>()).gather.as_mut() else {
            return ffi::SQLITE_OK;
        };
        if gather.bytes.is_empty() {
            return ffi::SQLITE_OK;
        }
        let (real, methods) = real(file);
        let Some(write) = methods.xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let mut rc = ffi::SQLITE_OK;
        let mut offset = gather.start;
        for piece in gather.bytes.chunks(WRITE_BYTES_MAX) {
            // A piece is at most WRITE_BYTES_MAX bytes, which fits.
            let len = piece.len() as c_int;
            rc = write(real, piece.as_ptr().cast(), len, offset);
            if rc != ffi::SQLITE_OK {
                break;
            }
            offset += i64::from(len);
        }
        // Written or not, the bytes are SQLite's to write again: a failed write fails the
        // call that caused it, and SQLite rolls the transaction back.
        gather.bytes.clear();
        rc
    }
}

/// Flushes, then runs `then` on the default VFS's file.
///
/// # Safety
/// `file` is a file this VFS opened and has not closed.
unsafe fn flushed(
    file: *mut ffi::sqlite3_file,
    then: impl FnOnce(*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) -> c_int,
) -> c_int {
    // SAFETY: per the caller.
    unsafe {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        let (real, methods) = real(file);
        then(real, methods)
    }
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes a file it opened through this VFS, once.
    unsafe {
        let flushed_rc = flush(file);
        let (real, methods) = real(file);
        let rc = methods.xClose.map_or(ffi::SQLITE_OK, |close| close(real));
        let f = file.cast::<File>();
        if !(*f).gather.is_null() {
            drop(Box::from_raw((*f).gather));
            (*f).gather = null_mut();
        }
        // SQLite closes a database's WAL before the database; either way, neither keeps a
        // pointer to the other once closed.
        if !(*f).db.is_null() {
            (*(*f).db).wal = null_mut();
            (*f).db = null_mut();
        }
        if !(*f).wal.is_null() {
            (*(*f).wal).db = null_mut();
            (*f).wal = null_mut();
        }
        if flushed_rc != ffi::SQLITE_OK {
            flushed_rc
        } else {
            rc
        }
    }
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    unsafe {
        flushed(file, |real, m| {
            m.xRead
                .map_or(ffi::SQLITE_IOERR_READ, |f| f(real, buf, amount, offset))
        })
    }
}

unsafe extern "C" fn x_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: SQLite's buffer holds `amount` bytes; `gather` is null or `x_open`'s box, and
    // no reference to it outlives a step (`flush` takes its own).
    unsafe {
        let gather = (*file.cast::<File>()).gather;
        if !gather.is_null()
            && let Ok(len) = usize::try_from(amount)
        {
            let (held, end) = {
                let g = &*gather;
                (g.bytes.len(), g.start + g.bytes.len() as i64)
            };
            if held > 0 && (end != offset || held >= GATHER_BYTES_MAX) {
                let rc = flush(file);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
            }
            #[cfg(test)]
            tests::GATHERED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let g = &mut *gather;
            if g.bytes.is_empty() {
                g.start = offset;
            }
            g.bytes
                .extend_from_slice(std::slice::from_raw_parts(buf.cast::<u8>(), len));
            return ffi::SQLITE_OK;
        }
        let (real, m) = real(file);
        m.xWrite
            .map_or(ffi::SQLITE_IOERR_WRITE, |f| f(real, buf, amount, offset))
    }
}

unsafe extern "C" fn x_truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    unsafe {
        flushed(file, |real, m| {
            m.xTruncate
                .map_or(ffi::SQLITE_IOERR_TRUNCATE, |f| f(real, size))
        })
    }
}

unsafe extern "C" fn x_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    unsafe {
        flushed(file, |real, m| {
            m.xSync.map_or(ffi::SQLITE_IOERR_FSYNC, |f| f(real, flags))
        })
    }
}

unsafe extern "C" fn x_file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    unsafe {
        flushed(file, |real, m| {
            m.xFileSize
                .map_or(ffi::SQLITE_IOERR_FSTAT, |f| f(real, size))
        })
    }
}

unsafe extern "C" fn x_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    unsafe {
        flushed(file, |real, m| {
            m.xLock.map_or(ffi::SQLITE_IOERR_LOCK, |f| f(real, level))
        })
    }
}

unsafe extern "C" fn x_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    unsafe {
        flushed(file, |real, m| {
            m.xUnlock
                .map_or(ffi::SQLITE_IOERR_UNLOCK, |f| f(real, level))
        })
    }
}

unsafe extern "C" fn x_check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    unsafe {
        let (real, m) = real(file);
        m.xCheckReservedLock
            .map_or(ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, |f| f(real, out))
    }
}

unsafe extern "C" fn x_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    unsafe {
        flushed(file, |real, m| {
            m.xFileControl
                .map_or(ffi::SQLITE_NOTFOUND, |f| f(real, op, arg))
        })
    }
}

unsafe extern "C" fn x_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    unsafe {
        let (real, m) = real(file);
        m.xSectorSize.map_or(4096, |f| f(real))
    }
}

unsafe extern "C" fn x_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    unsafe {
        let (real, m) = real(file);
        m.xDeviceCharacteristics.map_or(0, |f| f(real))
    }
}

unsafe extern "C" fn x_shm_map(
    file: *mut ffi::sqlite3_file,
    page: c_int,
    page_bytes: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    unsafe {
        flushed(file, |real, m| {
            m.xShmMap.map_or(ffi::SQLITE_IOERR_SHMMAP, |f| {
                f(real, page, page_bytes, extend, out)
            })
        })
    }
}

unsafe extern "C" fn x_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    unsafe {
        flushed(file, |real, m| {
            m.xShmLock
                .map_or(ffi::SQLITE_IOERR_SHMLOCK, |f| f(real, offset, n, flags))
        })
    }
}

unsafe extern "C" fn x_shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: forwarded as SQLite called it.
    unsafe {
        let wal = (*file.cast::<File>()).wal;
        if !wal.is_null() && flush(wal.cast()) != ffi::SQLITE_OK {
            // See the module's comment: readers must not be shown frames the file lacks.
            eprintln!("poskit: cannot write the WAL before publishing it; aborting");
            std::process::abort();
        }
        let (real, m) = real(file);
        if let Some(f) = m.xShmBarrier {
            f(real);
        }
    }
}

unsafe extern "C" fn x_shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    unsafe {
        flushed(file, |real, m| {
            m.xShmUnmap.map_or(ffi::SQLITE_OK, |f| f(real, delete))
        })
    }
}

unsafe extern "C" fn x_fetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    unsafe {
        flushed(file, |real, m| match m.xFetch {
            Some(f) => f(real, offset, amount, out),
            None => {
                *out = null_mut();
                ffi::SQLITE_OK
            }
        })
    }
}

unsafe extern "C" fn x_unfetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    page: *mut c_void,
) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    unsafe {
        flushed(file, |real, m| {
            m.xUnfetch.map_or(ffi::SQLITE_OK, |f| f(real, offset, page))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use rusqlite::{Connection, OpenFlags, params};

    /// SQLite writes this VFS gathered (for the test that it is in use).
    pub(super) static GATHERED: AtomicU64 = AtomicU64::new(0);

    /// A row's body: its id spread over `len` bytes, so a page read back from a stale or
    /// missing frame cannot pass for it.
    fn body(id: i64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (id as usize).wrapping_mul(31).wrapping_add(i) as u8)
            .collect()
    }

    /// Every row a reader on another connection (the default VFS, its own file handle)
    /// sees is whole, and it sees every committed row.
    fn reader_agrees(reader: &Connection, rows: i64, len: usize) {
        let (count, max): (i64, i64) = reader
            .query_row("SELECT count(*), coalesce(max(id), 0) FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((count, max), (rows, rows));
        for id in [1, rows / 2 + 1, rows] {
            let got: Vec<u8> = reader
                .query_row("SELECT body FROM t WHERE id = ?1", [id], |r| r.get(0))
                .unwrap();
            assert!(got == body(id, len), "row {id} read back wrong");
        }
    }

    /// Commits through the gathering VFS, with and without an fsync per commit, small and
    /// larger than what is gathered at most, across WAL restarts: another connection sees
    /// each commit whole as soon as it is committed, and the database checks out.
    fn commits_are_seen_whole(synchronous: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        let writer = Connection::open_with_flags_and_vfs(
            &path,
            OpenFlags::default(),
            super::register().unwrap(),
        )
        .unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        writer
            .pragma_update(None, "synchronous", synchronous)
            .unwrap();
        writer
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
            .unwrap();
        let reader = Connection::open(&path).unwrap();
        let before = GATHERED.load(Ordering::Relaxed);
        const LEN: usize = 1500;
        let mut rows = 0i64;
        for commit in 0..120 {
            // Mostly a group's worth of rows; now and then a transaction larger than the
            // gathering bound (written in pieces) and a WAL restart (a write at offset 0).
            let n = if commit % 40 == 39 { 4000 } else { 30 };
            let tx = writer.unchecked_transaction().unwrap();
            for _ in 0..n {
                rows += 1;
                tx.execute(
                    "INSERT INTO t (id, body) VALUES (?1, ?2)",
                    params![rows, body(rows, LEN)],
                )
                .unwrap();
            }
            tx.commit().unwrap();
            reader_agrees(&reader, rows, LEN);
            if commit % 25 == 24 {
                reader
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .unwrap();
            }
        }
        assert!(
            GATHERED.load(Ordering::Relaxed) > before,
            "the WAL's writes went through the gathering VFS"
        );
        drop(writer);
        let check: String = reader
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        drop(reader);
        // Reopened cold (WAL recovery from the file alone), everything is there.
        let again = Connection::open(&path).unwrap();
        reader_agrees(&again, rows, LEN);
    }

    #[test]
    fn commits_with_an_fsync_each_are_seen_whole() {
        commits_are_seen_whole("FULL");
    }

    /// Without an fsync at commit only the database file's barrier writes the gathered
    /// frames before SQLite publishes them: the case a missing flush would break.
    #[test]
    fn commits_without_an_fsync_are_seen_whole() {
        commits_are_seen_whole("OFF");
    }
}
