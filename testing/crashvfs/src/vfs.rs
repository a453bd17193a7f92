//! The FFI side: a VFS over SQLite's default one (the unix VFS), whose files keep their
//! writes in the path's overlay until `xSync`.
//!
//! Every `extern "C"` function runs its body under [`guard`], so no panic crosses into
//! SQLite; a panic becomes an I/O error code.

use std::ffi::{CStr, OsStr, c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::ptr::null_mut;
use std::sync::OnceLock;

use rusqlite::ffi;

use crate::overlay::Disk;
use crate::registry::{self, Handle, lock};

pub(crate) const NAME_C: &CStr = c"crashvfs";

/// What SQLite allocates for each open file of this VFS (`szOsFile` bytes): this header,
/// then the default VFS's file at [`REAL_OFFSET`].
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    /// The default VFS's file, in the same allocation.
    real: *mut ffi::sqlite3_file,
    /// The overlay handle; `None` for a temporary file (no name, deleted on close), which
    /// no power cut can matter to and which goes straight to the default VFS.
    handle: Option<Handle>,
}

const REAL_OFFSET: usize = std::mem::size_of::<File>().next_multiple_of(16);

struct Registered {
    /// The default VFS this one forwards to.
    real: *mut ffi::sqlite3_vfs,
}

// SAFETY: the pointer names SQLite's default VFS, which lives as long as the process and is
// safe to use from any thread (the bundled SQLite is built thread-safe).
unsafe impl Send for Registered {}
unsafe impl Sync for Registered {}

static REGISTERED: OnceLock<Registered> = OnceLock::new();

/// Registers the VFS as the default one (once per process).
pub(crate) fn register_as_default() {
    REGISTERED.get_or_init(|| {
        // SAFETY: `sqlite3_vfs_find(NULL)` returns the default VFS; it is found before this
        // one is registered, so this VFS never wraps itself. The copy made of it is leaked,
        // as SQLite requires of a registered VFS, and differs only in its name, its file
        // size and the methods this module provides.
        unsafe {
            let real = ffi::sqlite3_vfs_find(std::ptr::null());
            assert!(!real.is_null(), "SQLite has no default VFS");
            let mut vfs: ffi::sqlite3_vfs = *real;
            vfs.szOsFile = c_int::try_from(REAL_OFFSET).expect("small") + (*real).szOsFile;
            vfs.zName = NAME_C.as_ptr();
            vfs.pNext = null_mut();
            vfs.xOpen = Some(x_open);
            vfs.xDelete = Some(x_delete);
            vfs.xAccess = Some(x_access);
            let vfs = Box::into_raw(Box::new(vfs));
            let rc = ffi::sqlite3_vfs_register(vfs, 1);
            assert_eq!(rc, ffi::SQLITE_OK, "cannot register the crash VFS");
            Registered { real }
        }
    });
}

fn real_vfs() -> *mut ffi::sqlite3_vfs {
    // Reachable only through the registered VFS, so REGISTERED is set.
    REGISTERED.get().map_or(null_mut(), |r| r.real)
}

/// Runs an FFI body, turning a panic into `on_panic`.
fn guard<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(on_panic)
}

/// The path SQLite names a file by (its full path, symbolic links resolved).
///
/// # Safety
/// `name` is null or a NUL-terminated string.
unsafe fn path_of(name: *const c_char) -> Option<PathBuf> {
    // SAFETY: per the caller.
    let name = unsafe { name.as_ref().map(|n| CStr::from_ptr(n)) }?;
    Some(PathBuf::from(OsStr::from_bytes(name.to_bytes())))
}

/// Version 2: shared memory, but no `xFetch`/`xUnfetch`, so SQLite never memory-maps a
/// file (a mapped read would bypass the overlay).
static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 2,
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
    xFetch: None,
    xUnfetch: None,
};

/// Files that go through an overlay: those with a name that outlive their handle (the
/// database, its WAL, a rollback or super journal).
fn has_overlay(name: *const c_char, flags: c_int) -> bool {
    let temp = ffi::SQLITE_OPEN_DELETEONCLOSE
        | ffi::SQLITE_OPEN_TEMP_DB
        | ffi::SQLITE_OPEN_TEMP_JOURNAL
        | ffi::SQLITE_OPEN_SUBJOURNAL
        | ffi::SQLITE_OPEN_TRANSIENT_DB;
    !name.is_null() && flags & temp == 0
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    guard(ffi::SQLITE_CANTOPEN, || {
        // SAFETY: SQLite hands over `szOsFile` bytes at `file` (the header, then the
        // default VFS's file at REAL_OFFSET) and a NUL-terminated name or null; the header
        // is written before use, and `pMethods` is set only once the file is fully open
        // (else SQLite calls none of its methods, not even xClose).
        unsafe {
            let f = file.cast::<File>();
            let real = file
                .cast::<u8>()
                .add(REAL_OFFSET)
                .cast::<ffi::sqlite3_file>();
            let header = File {
                base: ffi::sqlite3_file {
                    pMethods: std::ptr::null(),
                },
                real,
                handle: None,
            };
            std::ptr::write(f, header);
            let real_vfs = real_vfs();
            let Some(open) = real_vfs.as_ref().and_then(|v| v.xOpen) else {
                return ffi::SQLITE_CANTOPEN;
            };
            let rc = open(real_vfs, name, real, flags, out_flags);
            if rc != ffi::SQLITE_OK || (*real).pMethods.is_null() {
                close_real(real);
                return if rc == ffi::SQLITE_OK {
                    ffi::SQLITE_CANTOPEN
                } else {
                    rc
                };
            }
            if has_overlay(name, flags) {
                let path = path_of(name).unwrap_or_default();
                match registry::open(path, || real_size(real)) {
                    Ok(handle) => (*f).handle = Some(handle),
                    Err(rc) => {
                        close_real(real);
                        return rc;
                    }
                }
            }
            (*f).base.pMethods = &METHODS;
            ffi::SQLITE_OK
        }
    })
}

/// Closes a default-VFS file that is open or half open (methods set), else nothing.
///
/// # Safety
/// `real` is a default-VFS file SQLite's xOpen was called on, not yet closed.
unsafe fn close_real(real: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: per the caller; the methods table, if set, is the default VFS's static one.
    unsafe {
        match (*real).pMethods.as_ref().and_then(|m| m.xClose) {
            Some(close) => close(real),
            None => ffi::SQLITE_OK,
        }
    }
}

/// The real file's length.
///
/// # Safety
/// `real` is an open default-VFS file.
unsafe fn real_size(real: *mut ffi::sqlite3_file) -> Result<u64, c_int> {
    let mut size: ffi::sqlite3_int64 = 0;
    // SAFETY: per the caller.
    let rc = unsafe {
        let m = &*(*real).pMethods;
        m.xFileSize
            .map_or(ffi::SQLITE_IOERR_FSTAT, |f| f(real, &mut size))
    };
    if rc != ffi::SQLITE_OK {
        return Err(rc);
    }
    u64::try_from(size).map_err(|_| ffi::SQLITE_IOERR_FSTAT)
}

/// This VFS's file, and the default VFS's file with its methods.
///
/// # Safety
/// `file` is a file this VFS opened (its `pMethods` set) and has not closed; the reference
/// is used only for the duration of one SQLite call on it.
unsafe fn parts<'a>(
    file: *mut ffi::sqlite3_file,
) -> (
    &'a mut File,
    *mut ffi::sqlite3_file,
    &'static ffi::sqlite3_io_methods,
) {
    // SAFETY: per the caller, `file` is a `File` whose `real` is open (its methods are the
    // default VFS's static table). SQLite uses a file from one thread at a time.
    unsafe {
        let f = &mut *file.cast::<File>();
        let real = f.real;
        (f, real, &*(*real).pMethods)
    }
}

/// The durable file, reached through the default VFS's file of the calling handle (every
/// handle on a path is a descriptor of the same file).
struct RealDisk {
    file: *mut ffi::sqlite3_file,
    methods: &'static ffi::sqlite3_io_methods,
}

/// The most one unix `xWrite` writes (it masks a length to 17 bits); chunks are smaller.
const IO_MAX: usize = 0x1ffff;

impl Disk for RealDisk {
    fn read(&mut self, buf: &mut [u8], offset: u64) -> Result<(), c_int> {
        let read = self.methods.xRead.ok_or(ffi::SQLITE_IOERR_READ)?;
        for (i, piece) in buf.chunks_mut(IO_MAX).enumerate() {
            let at = offset_of(offset, i)?;
            // SAFETY: `piece` is writable for its length, which fits a c_int; the file is open.
            let rc = unsafe {
                read(
                    self.file,
                    piece.as_mut_ptr().cast(),
                    piece.len() as c_int,
                    at,
                )
            };
            // A short read zero-fills, as `Disk::read` promises.
            if rc != ffi::SQLITE_OK && rc != ffi::SQLITE_IOERR_SHORT_READ {
                return Err(rc);
            }
        }
        Ok(())
    }

    fn write(&mut self, buf: &[u8], offset: u64) -> Result<(), c_int> {
        let write = self.methods.xWrite.ok_or(ffi::SQLITE_IOERR_WRITE)?;
        for (i, piece) in buf.chunks(IO_MAX).enumerate() {
            let at = offset_of(offset, i)?;
            // SAFETY: `piece` is readable for its length, which fits a c_int; the file is open.
            let rc = unsafe { write(self.file, piece.as_ptr().cast(), piece.len() as c_int, at) };
            if rc != ffi::SQLITE_OK {
                return Err(rc);
            }
        }
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> Result<(), c_int> {
        let truncate = self.methods.xTruncate.ok_or(ffi::SQLITE_IOERR_TRUNCATE)?;
        let len = i64::try_from(len).map_err(|_| ffi::SQLITE_IOERR_TRUNCATE)?;
        // SAFETY: the file is open. (Its chunk size stays 0, since SQLITE_FCNTL_CHUNK_SIZE
        // never reaches it, so unix ftruncate()s to exactly `len`, longer or shorter.)
        match unsafe { truncate(self.file, len) } {
            ffi::SQLITE_OK => Ok(()),
            rc => Err(rc),
        }
    }
}

/// The file offset of the `i`th piece of IO_MAX bytes from `offset`.
fn offset_of(offset: u64, i: usize) -> Result<i64, c_int> {
    (i as u64)
        .checked_mul(IO_MAX as u64)
        .and_then(|d| d.checked_add(offset))
        .and_then(|o| i64::try_from(o).ok())
        .ok_or(ffi::SQLITE_IOERR)
}

/// Runs `op` on the overlay of an overlaid file, or `real_op` on the default VFS's file.
/// `mutating` calls count towards `crash_after` and fail (with `dead_rc`) once the
/// handle's process has crashed.
///
/// # Safety
/// `file` is a file this VFS opened and has not closed.
unsafe fn with_overlay(
    file: *mut ffi::sqlite3_file,
    dead_rc: Option<c_int>,
    op: impl FnOnce(&mut crate::overlay::Overlay, &mut RealDisk) -> c_int,
    real_op: impl FnOnce(*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) -> c_int,
) -> c_int {
    // SAFETY: per the caller.
    let (f, real, methods) = unsafe { parts(file) };
    let Some(handle) = f.handle.as_ref() else {
        return real_op(real, methods);
    };
    let fired = dead_rc.is_some() && registry::tick(&handle.shared.path);
    let mut state = lock(&handle.shared.state);
    if let Some(rc) = dead_rc
        && (fired || handle.is_dead(&state))
    {
        return rc;
    }
    op(
        &mut state.overlay,
        &mut RealDisk {
            file: real,
            methods,
        },
    )
}

/// A non-negative SQLite offset, or an error.
fn offset(offset: ffi::sqlite3_int64, rc: c_int) -> Result<u64, c_int> {
    u64::try_from(offset).map_err(|_| rc)
}

fn code(r: Result<c_int, c_int>) -> c_int {
    r.unwrap_or_else(|rc| rc)
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    guard(ffi::SQLITE_IOERR_CLOSE, || {
        // SAFETY: SQLite closes a file this VFS opened, once. Closing does not flush: the
        // page cache keeps unsynced data (the overlay stays registered under its path).
        unsafe {
            let (f, real, _) = parts(file);
            if let Some(handle) = f.handle.take() {
                registry::close(handle);
            }
            close_real(real)
        }
    })
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
    guard(ffi::SQLITE_IOERR_READ, || {
        // SAFETY: SQLite's buffer holds `amount` bytes; the file is open.
        unsafe {
            with_overlay(
                file,
                None,
                |overlay, disk| {
                    code((|| {
                        let len = usize::try_from(amount).map_err(|_| ffi::SQLITE_IOERR_READ)?;
                        let out = std::slice::from_raw_parts_mut(buf.cast::<u8>(), len);
                        let short =
                            overlay.read(disk, out, offset(off, ffi::SQLITE_IOERR_READ)?)?;
                        Ok(if short {
                            ffi::SQLITE_IOERR_SHORT_READ
                        } else {
                            ffi::SQLITE_OK
                        })
                    })())
                },
                |real, m| {
                    m.xRead
                        .map_or(ffi::SQLITE_IOERR_READ, |f| f(real, buf, amount, off))
                },
            )
        }
    })
}

unsafe extern "C" fn x_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
    guard(ffi::SQLITE_IOERR_WRITE, || {
        // SAFETY: SQLite's buffer holds `amount` bytes; the file is open.
        unsafe {
            with_overlay(
                file,
                Some(ffi::SQLITE_IOERR_WRITE),
                |overlay, disk| {
                    code((|| {
                        let len = usize::try_from(amount).map_err(|_| ffi::SQLITE_IOERR_WRITE)?;
                        let data = std::slice::from_raw_parts(buf.cast::<u8>(), len);
                        overlay.write(disk, data, offset(off, ffi::SQLITE_IOERR_WRITE)?)?;
                        Ok(ffi::SQLITE_OK)
                    })())
                },
                |real, m| {
                    m.xWrite
                        .map_or(ffi::SQLITE_IOERR_WRITE, |f| f(real, buf, amount, off))
                },
            )
        }
    })
}

unsafe extern "C" fn x_truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    guard(ffi::SQLITE_IOERR_TRUNCATE, || {
        // SAFETY: the file is open.
        unsafe {
            with_overlay(
                file,
                Some(ffi::SQLITE_IOERR_TRUNCATE),
                |overlay, _| match offset(size, ffi::SQLITE_IOERR_TRUNCATE) {
                    Ok(len) => {
                        overlay.truncate(len);
                        ffi::SQLITE_OK
                    }
                    Err(rc) => rc,
                },
                |real, m| {
                    m.xTruncate
                        .map_or(ffi::SQLITE_IOERR_TRUNCATE, |f| f(real, size))
                },
            )
        }
    })
}

unsafe extern "C" fn x_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    guard(ffi::SQLITE_IOERR_FSYNC, || {
        // SAFETY: the file is open. The overlay is written to the real file and no fsync
        // follows: the simulated disk *is* the real file, whose contents survive anything
        // but a real power cut, which is not what these tests are about (and an fsync per
        // commit would make them slow).
        unsafe {
            with_overlay(
                file,
                Some(ffi::SQLITE_IOERR_FSYNC),
                |overlay, disk| code(overlay.sync(disk).map(|()| ffi::SQLITE_OK)),
                |real, m| m.xSync.map_or(ffi::SQLITE_IOERR_FSYNC, |f| f(real, flags)),
            )
        }
    })
}

unsafe extern "C" fn x_file_size(
    file: *mut ffi::sqlite3_file,
    out: *mut ffi::sqlite3_int64,
) -> c_int {
    guard(ffi::SQLITE_IOERR_FSTAT, || {
        // SAFETY: the file is open; `out` is writable.
        unsafe {
            with_overlay(
                file,
                None,
                |overlay, _| match i64::try_from(overlay.size()) {
                    Ok(size) => {
                        *out = size;
                        ffi::SQLITE_OK
                    }
                    Err(_) => ffi::SQLITE_IOERR_FSTAT,
                },
                |real, m| {
                    m.xFileSize
                        .map_or(ffi::SQLITE_IOERR_FSTAT, |f| f(real, out))
                },
            )
        }
    })
}

/// Forwards a call to the default VFS's file.
///
/// # Safety
/// `file` is a file this VFS opened and has not closed; `call` forwards SQLite's own
/// arguments.
unsafe fn forward<T>(
    file: *mut ffi::sqlite3_file,
    call: impl FnOnce(*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) -> T,
) -> T {
    // SAFETY: per the caller.
    let (_, real, methods) = unsafe { parts(file) };
    call(real, methods)
}

unsafe extern "C" fn x_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    guard(ffi::SQLITE_IOERR_LOCK, || unsafe {
        forward(file, |real, m| {
            m.xLock.map_or(ffi::SQLITE_IOERR_LOCK, |f| f(real, level))
        })
    })
}

unsafe extern "C" fn x_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    guard(ffi::SQLITE_IOERR_UNLOCK, || unsafe {
        forward(file, |real, m| {
            m.xUnlock
                .map_or(ffi::SQLITE_IOERR_UNLOCK, |f| f(real, level))
        })
    })
}

unsafe extern "C" fn x_check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    guard(ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, || unsafe {
        forward(file, |real, m| {
            m.xCheckReservedLock
                .map_or(ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, |f| f(real, out))
        })
    })
}

/// File controls that would act on the real file behind the overlay's back, or bypass it.
fn intercepted(op: c_int) -> Option<c_int> {
    match op {
        // Hints that would grow the real file (SQLite ignores their result); as no-ops the
        // overlay stays the only writer of the real file's length.
        ffi::SQLITE_FCNTL_SIZE_HINT | ffi::SQLITE_FCNTL_CHUNK_SIZE => Some(ffi::SQLITE_OK),
        // Memory mapping and atomic batch writes would bypass the overlay.
        ffi::SQLITE_FCNTL_MMAP_SIZE
        | ffi::SQLITE_FCNTL_BEGIN_ATOMIC_WRITE
        | ffi::SQLITE_FCNTL_COMMIT_ATOMIC_WRITE
        | ffi::SQLITE_FCNTL_ROLLBACK_ATOMIC_WRITE => Some(ffi::SQLITE_NOTFOUND),
        _ => None,
    }
}

unsafe extern "C" fn x_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    if let Some(rc) = intercepted(op) {
        return rc;
    }
    // SAFETY: forwarded as SQLite called it.
    guard(ffi::SQLITE_IOERR, || unsafe {
        forward(file, |real, m| {
            m.xFileControl
                .map_or(ffi::SQLITE_NOTFOUND, |f| f(real, op, arg))
        })
    })
}

unsafe extern "C" fn x_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    guard(4096, || unsafe {
        forward(file, |real, m| m.xSectorSize.map_or(4096, |f| f(real)))
    })
}

unsafe extern "C" fn x_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: forwarded as SQLite called it; batch atomic writes would bypass the overlay.
    guard(0, || unsafe {
        let caps = forward(file, |real, m| {
            m.xDeviceCharacteristics.map_or(0, |f| f(real))
        });
        caps & !ffi::SQLITE_IOCAP_BATCH_ATOMIC
    })
}

// The wal-index (`-shm`) is the unix VFS's shared memory, opened by it directly (not through
// xOpen) and untouched here: after every connection closed, the next open takes the DMS
// lock, finds itself first and rebuilds the index from the WAL it reads through the overlay.

unsafe extern "C" fn x_shm_map(
    file: *mut ffi::sqlite3_file,
    page: c_int,
    page_bytes: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    guard(ffi::SQLITE_IOERR_SHMMAP, || unsafe {
        forward(file, |real, m| {
            m.xShmMap.map_or(ffi::SQLITE_IOERR_SHMMAP, |f| {
                f(real, page, page_bytes, extend, out)
            })
        })
    })
}

unsafe extern "C" fn x_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    guard(ffi::SQLITE_IOERR_SHMLOCK, || unsafe {
        forward(file, |real, m| {
            m.xShmLock
                .map_or(ffi::SQLITE_IOERR_SHMLOCK, |f| f(real, offset, n, flags))
        })
    })
}

unsafe extern "C" fn x_shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: forwarded as SQLite called it.
    guard((), || unsafe {
        forward(file, |real, m| {
            if let Some(f) = m.xShmBarrier {
                f(real);
            }
        })
    });
}

unsafe extern "C" fn x_shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    // SAFETY: forwarded as SQLite called it.
    guard(ffi::SQLITE_IOERR, || unsafe {
        forward(file, |real, m| {
            m.xShmUnmap.map_or(ffi::SQLITE_OK, |f| f(real, delete))
        })
    })
}

unsafe extern "C" fn x_delete(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    dir_sync: c_int,
) -> c_int {
    guard(ffi::SQLITE_IOERR_DELETE, || {
        let real_vfs = real_vfs();
        // SAFETY: SQLite passes a NUL-terminated name; the default VFS is forwarded its own
        // pointer and the same arguments. (The unlink is durable at once: directory
        // operations are not simulated.)
        unsafe {
            let unlink = || match real_vfs.as_ref().and_then(|v| v.xDelete) {
                Some(delete) => delete(real_vfs, name, dir_sync),
                None => ffi::SQLITE_IOERR_DELETE,
            };
            match path_of(name) {
                Some(path) => registry::delete(&path, unlink),
                None => unlink(),
            }
        }
    })
}

/// Whether a file exists is answered from the page cache when it knows the file: the unix
/// VFS calls an empty file absent, and a journal or WAL written but not synced is empty on
/// disk (a reopen after a process crash must still find it, as it would on a real system).
unsafe extern "C" fn x_access(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    flags: c_int,
    out: *mut c_int,
) -> c_int {
    guard(ffi::SQLITE_IOERR_ACCESS, || {
        let real_vfs = real_vfs();
        // SAFETY: SQLite passes a NUL-terminated name and a writable `out`; the default VFS
        // is forwarded its own pointer and the same arguments.
        unsafe {
            if flags == ffi::SQLITE_ACCESS_EXISTS
                && let Some(size) = path_of(name).as_deref().and_then(registry::volatile_size)
            {
                *out = c_int::from(size > 0);
                return ffi::SQLITE_OK;
            }
            match real_vfs.as_ref().and_then(|v| v.xAccess) {
                Some(access) => access(real_vfs, name, flags, out),
                None => ffi::SQLITE_IOERR_ACCESS,
            }
        }
    })
}
