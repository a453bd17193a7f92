//! The process-wide state: one [`Shared`] per path (the page cache of that file, shared by
//! every handle open on it), and the armed crash triggers.
//!
//! Lock order: `TRIGGERS` alone; `FILES` before a `Shared::state`. No lock is held while
//! another thread's lock could be waited for in the other order.

use std::collections::HashMap;
use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::overlay::Overlay;

/// One path's volatile state.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) path: PathBuf,
    pub(crate) state: Mutex<State>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) overlay: Overlay,
    /// Handles open on the path (live or dead).
    open: usize,
    /// Bumped by each crash: a handle opened in an earlier epoch belongs to a dead process.
    epoch: u64,
    /// Open handles of a dead process.
    dead_open: usize,
}

/// One open file of the VFS, on a path with an overlay.
#[derive(Debug)]
pub(crate) struct Handle {
    pub(crate) shared: Arc<Shared>,
    epoch: u64,
}

impl Handle {
    /// The handle's process has crashed: its writes, truncations and syncs must not reach
    /// the page cache any more.
    pub(crate) fn is_dead(&self, state: &State) -> bool {
        self.epoch != state.epoch
    }
}

static FILES: Mutex<Option<HashMap<PathBuf, Arc<Shared>>>> = Mutex::new(None);

/// A crash armed by `crash_after`: the directory and how many more mutating calls succeed.
static TRIGGERS: Mutex<Vec<(PathBuf, u64)>> = Mutex::new(Vec::new());
/// `TRIGGERS.len()`, read without the lock on every mutating call.
static ARMED: AtomicUsize = AtomicUsize::new(0);

/// Locks a mutex, ignoring poisoning: every critical section leaves its data consistent
/// before anything that could panic, and a panic must not turn into a panic at the FFI
/// boundary of every later call.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn with_files<R>(f: impl FnOnce(&mut HashMap<PathBuf, Arc<Shared>>) -> R) -> R {
    let mut files = lock(&FILES);
    f(files.get_or_insert_with(HashMap::new))
}

/// Registers a handle on `path`. `durable_len` (the real file's length) is asked only when
/// the path has no state yet (else the page cache already knows better).
pub(crate) fn open(
    path: PathBuf,
    durable_len: impl FnOnce() -> Result<u64, c_int>,
) -> Result<Handle, c_int> {
    with_files(|files| {
        let shared = match files.get(&path) {
            Some(shared) => Arc::clone(shared),
            None => {
                let shared = Arc::new(Shared {
                    path: path.clone(),
                    state: Mutex::new(State {
                        overlay: Overlay::new(durable_len()?),
                        open: 0,
                        epoch: 0,
                        dead_open: 0,
                    }),
                });
                files.insert(path, Arc::clone(&shared));
                shared
            }
        };
        let mut state = lock(&shared.state);
        state.open += 1;
        let epoch = state.epoch;
        drop(state);
        Ok(Handle { shared, epoch })
    })
}

/// Unregisters a handle. The path's state is forgotten only when no handle is open and
/// nothing is unsynced (unsynced data stays, as in the page cache after a close).
pub(crate) fn close(handle: Handle) {
    with_files(|files| {
        let mut state = lock(&handle.shared.state);
        state.open -= 1;
        if handle.is_dead(&state) {
            state.dead_open -= 1;
        }
        let forget = state.open == 0 && state.overlay.is_clean();
        drop(state);
        let current = files
            .get(&handle.shared.path)
            .is_some_and(|s| Arc::ptr_eq(s, &handle.shared));
        if forget && current {
            files.remove(&handle.shared.path);
        }
    });
}

/// Deletes `path`: forgets its state, then runs `unlink` (under the registry lock, so no
/// open of the path comes in between). Refused while a crashed process's handle is open on
/// it (a dead process deletes nothing).
pub(crate) fn delete(path: &Path, unlink: impl FnOnce() -> c_int) -> c_int {
    if tick(path) {
        return rusqlite::ffi::SQLITE_IOERR_DELETE;
    }
    with_files(|files| {
        if let Some(shared) = files.get(path)
            && lock(&shared.state).dead_open > 0
        {
            return rusqlite::ffi::SQLITE_IOERR_DELETE;
        }
        // Handles still open keep their (now orphaned) state, like an unlinked inode.
        files.remove(path);
        unlink()
    })
}

/// The volatile length of `path`, if it has state.
pub(crate) fn volatile_size(path: &Path) -> Option<u64> {
    with_files(|files| files.get(path).map(|s| lock(&s.state).overlay.size()))
}

/// `path` is `dir` or below it, `dir` as given or with its symbolic links resolved (SQLite
/// names files by their resolved full path).
fn under(path: &Path, dir: &Path, resolved: Option<&Path>) -> bool {
    path.starts_with(dir) || resolved.is_some_and(|r| path.starts_with(r))
}

/// The paths with state under `dir`.
fn states_under(files: &HashMap<PathBuf, Arc<Shared>>, dir: &Path) -> Vec<Arc<Shared>> {
    let resolved = dir.canonicalize().ok();
    files
        .values()
        .filter(|s| under(&s.path, dir, resolved.as_deref()))
        .cloned()
        .collect()
}

/// Kills every handle open under `dir` (and disarms a pending `crash_after` of `dir`).
pub(crate) fn crash(dir: &Path) {
    disarm(dir);
    with_files(|files| {
        for shared in states_under(files, dir) {
            let mut state = lock(&shared.state);
            state.epoch += 1;
            state.dead_open = state.open;
        }
    });
}

/// Forgets every unsynced byte under `dir`. Panics (before forgetting anything) if a
/// handle is open there.
pub(crate) fn power_cut(dir: &Path) {
    disarm(dir);
    let busy: Vec<String> = with_files(|files| {
        let states = states_under(files, dir);
        let busy: Vec<String> = states
            .iter()
            .filter_map(|s| {
                let open = lock(&s.state).open;
                (open > 0).then(|| format!("{} ({open} open)", s.path.display()))
            })
            .collect();
        if busy.is_empty() {
            for s in states {
                files.remove(&s.path);
            }
        }
        busy
    });
    assert!(
        busy.is_empty(),
        "crashvfs::power_cut with files still open (close every connection first): {}",
        busy.join(", ")
    );
}

pub(crate) fn unsynced_bytes(dir: &Path) -> u64 {
    with_files(|files| {
        states_under(files, dir)
            .iter()
            .map(|s| lock(&s.state).overlay.unsynced_bytes())
            .sum()
    })
}

/// Arms a crash of `dir` after `calls` more mutating calls under it.
pub(crate) fn crash_after(dir: &Path, calls: u64) {
    disarm(dir);
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut triggers = lock(&TRIGGERS);
    triggers.push((dir, calls));
    ARMED.store(triggers.len(), Ordering::SeqCst);
}

fn disarm(dir: &Path) {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut triggers = lock(&TRIGGERS);
    triggers.retain(|(d, _)| *d != dir);
    ARMED.store(triggers.len(), Ordering::SeqCst);
}

/// Counts one mutating call (write, truncate, sync, delete) on `path`. When a trigger runs
/// out, crashes its directory and returns true: the call that ran it out must fail.
pub(crate) fn tick(path: &Path) -> bool {
    if ARMED.load(Ordering::SeqCst) == 0 {
        return false;
    }
    let fired = {
        let mut triggers = lock(&TRIGGERS);
        let Some(i) = triggers.iter().position(|(d, _)| path.starts_with(d)) else {
            return false;
        };
        if triggers[i].1 > 0 {
            triggers[i].1 -= 1;
            return false;
        }
        let (dir, _) = triggers.swap_remove(i);
        ARMED.store(triggers.len(), Ordering::SeqCst);
        dir
    };
    crash(&fired);
    true
}
