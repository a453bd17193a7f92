//! The simulated host node: the host's real group writer (`poskit_host::writer::GroupWriter`)
//! on a real SQLite file in a directory of its own, the prechecks and late answer MACs as
//! the server does them, and the storage faults the simulation injects through SQLite's
//! own paths: a failing statement (the engine's injected storage error), a failing commit
//! (a commit hook that turns the commit into a rollback), a full disk
//! (`max_page_count`), a process crash (the connection is dropped: what SQLite wrote
//! stays) and a power cut (everything not synced is lost; needs the crash VFS of the
//! tests, which the caller hands in as a [`PowerCut`]).

use poskit_domain::calendar::ClearingCut;
use poskit_host::switch::Divergence;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use rusqlite::Connection;

use poskit_host::clock::HostTime;
use poskit_host::engine::{Answer, EngineConfig, Injected, Input, IssuerVerdict, Parsed, Precheck};
use poskit_host::pinhash::{PVK_BYTES, PinHasher};
use poskit_host::store::atrest::AtRest;
use poskit_host::writer::{GroupWriter, Shared};
use poskit_host::{DataDir, PVK_FILE};

/// A disk that can lose power, as only a test VFS can simulate (`poskit-crashvfs`).
#[derive(Clone, Copy, Debug)]
pub struct PowerCut {
    /// The host's connections under a directory die where they stand (no clean close,
    /// which would checkpoint and sync).
    pub crash: fn(&Path),
    /// What was written under a directory but never synced is lost; nothing has it open.
    pub cut: fn(&Path),
}

/// A request at the host, waiting for its group's commit.
pub(crate) struct Arrived {
    pub term: u32,
    pub frame: Vec<u8>,
    pub issuer: IssuerVerdict,
    pub storage_fails: bool,
    /// How the switch's record of it departs from the host's (if it reaches the switch).
    pub divergence: Divergence,
}

pub(crate) struct Node {
    dir: tempfile::TempDir,
    /// `None` only inside [`Node::restart`].
    writer: Option<GroupWriter>,
    engine: EngineConfig,
    pins: Arc<PinHasher>,
    /// The host's secrets (opened once; a restart reopens the database, not the keys).
    at_rest: Arc<AtRest>,
    /// The working keys committed answers left, as a server keeps them for its
    /// connections' prechecks (empty again after a restart).
    keys: Shared,
    /// Commits the commit hook still turns into rollbacks.
    commit_failures: Arc<AtomicU32>,
    /// The database's page limit when the disk is not full.
    page_count_max: i64,
    disk_full: bool,
    power_cut: Option<PowerCut>,
}

impl Node {
    /// A node on a new directory; `load` puts master data in before the writer starts.
    pub fn open(
        pin_key: &[u8; PVK_BYTES],
        power_cut: Option<PowerCut>,
        load: impl FnOnce(&mut Connection, &AtRest) -> Result<(), String>,
    ) -> Result<Node, String> {
        // On tmpfs where the machine has one: the simulation checks what the writer does,
        // not how fast a disk syncs (a power cut comes from the crash VFS, not the disk).
        let shm = Path::new("/dev/shm");
        let mut builder = tempfile::Builder::new();
        builder.prefix("poskit-sim-");
        let dir = if shm.is_dir() {
            builder.tempdir_in(shm)
        } else {
            builder.tempdir()
        }
        .map_err(|e| format!("no directory for the simulated host: {e}"))?;
        // The PIN key the run was seeded with, where a ledger of an earlier version kept
        // it: the keyed open wraps it into the ledger (and removes the file).
        let data = DataDir::existing(dir.path());
        std::fs::write(dir.path().join(PVK_FILE), pin_key)
            .map_err(|e| format!("the simulated host's PIN key: {e}"))?;
        let (mut conn, keys) = data.open_keys().map_err(|e| e.to_string())?;
        load(&mut conn, &keys)?;
        let page_count_max = conn
            .query_row("PRAGMA max_page_count", [], |r| r.get(0))
            .map_err(|e| e.to_string())?;
        let commit_failures = Arc::new(AtomicU32::new(0));
        let engine = EngineConfig::default();
        hook_commits(&conn, &commit_failures);
        Ok(Node {
            writer: Some(GroupWriter::new(
                conn,
                engine.clone(),
                keys.clone(),
                ClearingCut::default(),
            )),
            dir,
            engine,
            pins: keys.pins().clone(),
            at_rest: keys,
            keys: Shared::default(),
            commit_failures,
            page_count_max,
            disk_full: false,
            power_cut,
        })
    }

    /// Decides and commits a group through the real writer; the answers, sealed, in the
    /// order of the requests.
    pub fn commit(&mut self, group: &[Arrived], now: HostTime) -> Vec<Answer> {
        let parsed: Vec<Option<Parsed>> = group.iter().map(|a| Parsed::of(&a.frame).ok()).collect();
        // As the server does: MAC and PIN checked before the writer with the keys the host
        // last answered with, the answer's MAC computed after it.
        let prechecks: Vec<Option<Precheck>> = parsed
            .iter()
            .map(|p| {
                p.as_ref().and_then(|p| {
                    Precheck::compute(
                        p,
                        self.engine.mac_algorithm,
                        |tid| self.keys.keys_of(tid),
                        &self.pins,
                    )
                })
            })
            .collect();
        let inputs: Vec<Input<'_>> = group
            .iter()
            .zip(parsed.iter().zip(&prechecks))
            .map(|(arrived, (parsed, precheck))| Input {
                frame: &arrived.frame,
                now,
                issuer: arrived.issuer,
                injected: arrived.storage_fails.then_some(Injected::StorageError),
                parsed: parsed.as_ref(),
                precheck: precheck.as_ref(),
                mac_later: true,
                divergence: arrived.divergence,
            })
            .collect();
        let mut answers = self.writer_mut().commit(&inputs);
        // A failure drawn for this group's commit that its writer never reached is not
        // carried over to the next group.
        self.commit_failures.store(0, Ordering::Relaxed);
        self.keys.publish_keys(&answers);
        for answer in &mut answers {
            answer.seal(self.engine.mac_algorithm);
        }
        answers
    }

    /// The next `count` commits fail (the writer's retry of a group is a commit too).
    pub fn fail_commits(&self, count: u32) {
        self.commit_failures.store(count, Ordering::Relaxed);
    }

    /// The disk is full (the database may not grow) or has room again.
    pub fn set_disk_full(&mut self, full: bool) -> Result<(), String> {
        self.disk_full = full;
        self.apply_page_limit()
    }

    pub fn disk_full(&self) -> bool {
        self.disk_full
    }

    fn apply_page_limit(&self) -> Result<(), String> {
        let conn = self.connection();
        let limit = if self.disk_full {
            conn.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
                .map_err(|e| e.to_string())?
        } else {
            self.page_count_max
        };
        conn.query_row(&format!("PRAGMA max_page_count = {limit}"), [], |_| Ok(()))
            .map_err(|e| e.to_string())
    }

    /// The host process dies and starts again from its files; with `power_lost`, the
    /// machine lost power first and what was not synced is gone.
    pub fn restart(&mut self, power_lost: bool) -> Result<(), String> {
        assert!(
            !power_lost || self.power_cut.is_some(),
            "a power cut needs the crash VFS"
        );
        // The process dies: where the disk can tell, its connection does not close cleanly
        // (a clean close would checkpoint and sync); it is gone before the power goes and
        // before the new one opens.
        if let Some(disk) = self.power_cut {
            (disk.crash)(self.dir.path());
        }
        drop(self.writer.take());
        if power_lost && let Some(disk) = self.power_cut {
            (disk.cut)(self.dir.path());
        }
        let (conn, _) = DataDir::existing(self.dir.path())
            .open_keys()
            .map_err(|e| e.to_string())?;
        hook_commits(&conn, &self.commit_failures);
        self.writer = Some(GroupWriter::new(
            conn,
            self.engine.clone(),
            self.at_rest.clone(),
            ClearingCut::default(),
        ));
        self.keys = Shared::default();
        self.apply_page_limit()
    }

    pub fn can_lose_power(&self) -> bool {
        self.power_cut.is_some()
    }

    pub fn connection(&self) -> &Connection {
        self.writer
            .as_ref()
            .expect("the writer is open")
            .connection()
    }

    /// The writer's connection, for what runs between groups and after the run
    /// (reconciliation posts its adjustments through it).
    pub fn connection_mut(&mut self) -> &mut Connection {
        self.writer_mut().connection_mut()
    }

    /// The host's data directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn writer_mut(&mut self) -> &mut GroupWriter {
        self.writer.as_mut().expect("the writer is open")
    }
}

/// A commit hook that turns the next commits into rollbacks while `failures` is above
/// zero, as a failing disk would.
fn hook_commits(conn: &Connection, failures: &Arc<AtomicU32>) {
    let failures = failures.clone();
    conn.commit_hook(Some(move || {
        failures
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }));
}
