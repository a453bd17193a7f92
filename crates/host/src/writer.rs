//! The writer: one thread owns the database connection and processes requests in groups.
//! A group is one SQLite transaction, each request in it a savepoint: a request that fails
//! in storage is rolled back alone and answered 96; the group commits once (one fsync),
//! and only after the commit are the answers handed back to be written. A failed commit
//! turns every answer of the group into 96 — nothing of it was posted.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::mpsc;

use crate::clock::HostTime;
use poskit_domain::Tid;

use crate::engine::{
    self, Answer, EngineConfig, Injected, Input, IssuerVerdict, Parsed, Precheck, TerminalKeys,
};
use crate::faults::{FaultPlan, FaultState};
use crate::logbudget::LogBudget;
use crate::model::ExternalIssuer;
use crate::server::{Outgoing, Pending};
use crate::store::StoreError;
use crate::store::atrest::AtRest;
use crate::store::sqlite::{HotStatements, SqliteLedger, WriterCache};
use crate::switch::{self, Divergence};
use poskit_domain::calendar::ClearingCut;

/// One request for the writer.
pub struct Job {
    pub frame: Vec<u8>,
    pub issuer: IssuerVerdict,
    pub injected: Option<Injected>,
    /// How the switch's record of it will differ from the host's.
    pub divergence: Divergence,
    /// The request's MAC and PIN checked on the connection task, when its terminal's keys
    /// were known there; the answer's MAC is left to the connection task as well.
    pub precheck: Option<Box<Precheck>>,
    /// The frame read on the connection task (`None`: the engine reads it).
    pub parsed: Option<Box<Parsed>>,
    /// Where the answer goes once committed: its connection's write task, with what the
    /// connection kept of the request.
    pub answer_to: mpsc::Sender<Outgoing>,
    /// `None` once answered.
    pub kept: Option<Box<Pending>>,
}

impl Job {
    /// Hands the answer to the request's connection. Its queue has room for every request
    /// in flight (each holds a permit of the pipeline), so it is never full; a connection
    /// gone away no longer waits (its answer is in the ledger).
    pub fn answer(self, answer: Answer) {
        let to = self.answer_to.clone();
        hand_over(&to, Outgoing::Answers(vec![(answer, self)]));
    }
}

/// Hands a group's answers to their connections: one message (and one wake-up of its
/// write task) per connection. The jobs go along, so that what their connections
/// allocated for them is freed there.
fn answer_all(jobs: impl Iterator<Item = (Job, Answer)>) {
    let mut by_connection: Vec<Vec<(Answer, Job)>> = Vec::new();
    for (job, answer) in jobs {
        match by_connection
            .iter_mut()
            .find(|list| list[0].1.answer_to.same_channel(&job.answer_to))
        {
            Some(list) => list.push((answer, job)),
            None => by_connection.push(vec![(answer, job)]),
        }
    }
    for list in by_connection {
        let to = list[0].1.answer_to.clone();
        hand_over(&to, Outgoing::Answers(list));
    }
}

fn hand_over(to: &mpsc::Sender<Outgoing>, out: Outgoing) {
    if let Err(mpsc::error::TrySendError::Full(_)) = to.try_send(out) {
        tracing::error!("a connection's answer queue was full; answer dropped");
    }
}

/// A job dropped unanswered (the writer stopped or panicked with it): its connection is
/// told, and closes.
impl Drop for Job {
    fn drop(&mut self) {
        if let Some(kept) = self.kept.take() {
            let answer = crate::server::writer_gone(&kept);
            hand_over(&self.answer_to, Outgoing::Answer(Box::new(answer), kept));
        }
    }
}

pub enum Work {
    Request(Job),
    /// Look for a new fault plan and new issuer settings.
    Refresh,
}

/// What the connection tasks read without the database: external issuers by BIN, and the
/// fault plan in force. The writer refreshes both.
#[derive(Debug, Default)]
pub struct Shared {
    pub issuers: RwLock<Vec<(String, ExternalIssuer)>>,
    pub faults: std::sync::Mutex<Option<FaultState>>,
    pub fault_version: std::sync::atomic::AtomicI64,
    /// Groups the writer committed, and the requests in them: their ratio is what group
    /// commit saves in fsyncs.
    pub groups_committed: std::sync::atomic::AtomicU64,
    pub requests_committed: std::sync::atomic::AtomicU64,
    /// Each terminal's working keys (PIK, MAC key) as of the last committed answer that
    /// read or changed them: what connection tasks check MACs and PINs with before the
    /// writer sees a request ([`Precheck`]). One entry per terminal on file at most.
    pub keys: RwLock<HashMap<Tid, Arc<TerminalKeys>>>,
    /// Requests answered and not recorded (invariant 9): counts by reason and peer, the
    /// last few reasons.
    pub strangers: crate::stranger::StrangerCounters,
}

impl Shared {
    /// The working keys last committed for a terminal.
    pub fn keys_of(&self, tid: &Tid) -> Option<Arc<TerminalKeys>> {
        self.keys.read().ok()?.get(tid).cloned()
    }

    /// Takes the keys committed answers leave their terminals with.
    pub fn publish_keys(&self, answers: &[Answer]) {
        let mut changes = Vec::new();
        if let Ok(keys) = self.keys.read() {
            for answer in answers {
                let (Some(after), Some(tid)) = (
                    &answer.keys_after,
                    answer.tid.as_deref().and_then(|t| Tid::parse(t).ok()),
                ) else {
                    continue;
                };
                let known = keys.get(&tid).map(|k| (&k.pik, &k.mac));
                if known != after.as_ref().map(|(pik, mac)| (pik, mac)) {
                    changes.push((tid, after.clone()));
                }
            }
        }
        if changes.is_empty() {
            return;
        }
        if let Ok(mut keys) = self.keys.write() {
            for (tid, after) in changes {
                match after {
                    Some((pik, mac)) => keys.insert(tid, Arc::new(TerminalKeys::new(pik, mac))),
                    None => keys.remove(&tid),
                };
            }
        }
    }

    /// The external issuer of a card number, by longest BIN prefix.
    pub fn external_issuer(&self, pan: &str) -> Option<ExternalIssuer> {
        let issuers = self.issuers.read().ok()?;
        issuers
            .iter()
            .filter(|(prefix, _)| pan.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, issuer)| *issuer)
    }
}

pub struct WriterSettings {
    pub engine: EngineConfig,
    pub utc_offset_minutes: i32,
    pub clock_offset_days: i32,
    pub group_commit_max: usize,
    /// The plan from the configuration file, in force until one is stored.
    pub config_faults: FaultPlan,
    pub clearing_cut: ClearingCut,
    /// Group sizes and commit times go here.
    pub metrics: Option<Arc<poskit_monitor::Metrics>>,
}

/// Starts the writer thread.
pub fn spawn(
    conn: Connection,
    settings: WriterSettings,
    keys: Arc<AtRest>,
    shared: Arc<Shared>,
    queue: mpsc::Receiver<Work>,
) -> std::io::Result<JoinHandle<()>> {
    {
        let mut faults = shared.faults.lock().unwrap_or_else(|p| p.into_inner());
        *faults = Some(FaultState::new(settings.config_faults.clone()));
    }
    refresh(&conn, &shared);
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    if let Some(path) = conn.path().filter(|p| !p.is_empty()).map(str::to_owned) {
        // Checkpoints on a connection of their own, so that copying the WAL into the
        // database (and its fsync) does not stall the writer's groups; the writer's own
        // automatic checkpoint (`wal_autocheckpoint`) stays as the backstop.
        let writing = writing.clone();
        std::thread::Builder::new()
            .name("poskit-checkpoint".into())
            .spawn(move || checkpoints(&path, &writing))?;
    }
    std::thread::Builder::new()
        .name("poskit-writer".into())
        .spawn(move || {
            // Whether the writer returns or panics, the checkpoint thread ends after it.
            let _ending = Ending(writing);
            run(conn, settings, keys, shared, queue);
        })
}

/// Clears its flag when dropped.
struct Ending(Arc<std::sync::atomic::AtomicBool>);

impl Drop for Ending {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How often the checkpoint thread looks at the WAL.
const CHECKPOINT_INTERVAL_MS: u64 = 100;

/// Passive checkpoints (they never block the writer) while the writer runs.
fn checkpoints(path: &str, writing: &std::sync::atomic::AtomicBool) {
    // The database file's fsync after a checkpoint is what makes the WAL reusable.
    let conn = match Connection::open(path)
        .and_then(|c| c.pragma_update(None, "synchronous", "FULL").map(|_| c))
    {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(error = %e, "no checkpoint connection; the writer checkpoints itself");
            return;
        }
    };
    let mut failing = false;
    while writing.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(CHECKPOINT_INTERVAL_MS));
        // (busy, pages in the WAL, pages copied)
        let state: rusqlite::Result<(i64, i64, i64)> =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            });
        match state {
            // Logged when it starts failing, not every 100 ms.
            Err(e) if !failing => {
                tracing::warn!(error = %e, "checkpoint failed; the writer's own checkpoint remains");
                failing = true;
            }
            Err(_) => {}
            Ok(_) => failing = false,
        }
    }
}

fn run(
    conn: Connection,
    settings: WriterSettings,
    keys: Arc<AtRest>,
    shared: Arc<Shared>,
    mut queue: mpsc::Receiver<Work>,
) {
    let mut group: Vec<Job> = Vec::with_capacity(settings.group_commit_max);
    let mut writer = GroupWriter::new(conn, settings.engine.clone(), keys, settings.clearing_cut);
    while let Some(work) = queue.blocking_recv() {
        match work {
            Work::Refresh => {
                refresh(writer.connection(), &shared);
                continue;
            }
            Work::Request(job) => group.push(job),
        }
        while group.len() < settings.group_commit_max {
            match queue.try_recv() {
                Ok(Work::Request(job)) => group.push(job),
                Ok(Work::Refresh) => refresh(writer.connection(), &shared),
                Err(_) => break,
            }
        }
        let now = HostTime::now(settings.utc_offset_minutes, settings.clock_offset_days);
        let started = std::time::Instant::now();
        let answers = commit_group(&mut writer, &group, now);
        if let Some(m) = &settings.metrics {
            m.committed(group.len(), started.elapsed().as_secs_f64());
        }
        assert_eq!(answers.len(), group.len(), "one answer per request");
        shared.publish_keys(&answers);
        shared
            .groups_committed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        shared
            .requests_committed
            .fetch_add(group.len() as u64, std::sync::atomic::Ordering::Relaxed);
        answer_all(group.drain(..).zip(answers));
    }
}

fn commit_group(writer: &mut GroupWriter, group: &[Job], now: HostTime) -> Vec<Answer> {
    let inputs: Vec<Input<'_>> = group
        .iter()
        .map(|job| Input {
            frame: &job.frame,
            now,
            issuer: job.issuer,
            injected: job.injected.clone(),
            parsed: job.parsed.as_deref(),
            precheck: job.precheck.as_deref(),
            mac_later: true,
            divergence: job.divergence,
        })
        .collect();
    writer.commit(&inputs)
}

/// The writer's storage side: its connection, the caches it keeps between groups, and
/// what the engine needs. The writer thread and the deterministic simulation commit
/// groups through this one path.
pub struct GroupWriter {
    conn: Connection,
    cache: WriterCache,
    engine: EngineConfig,
    /// The ledger's secrets: terminal keys, cards, the PIN key.
    keys: Arc<AtRest>,
    /// The switch's clearing day cut-off (its record of forwarded messages).
    cut: ClearingCut,
    /// Storage failures repeat for every group while they last (a full disk): logged
    /// once per interval, with how many were held back.
    log: LogBudget,
}

/// Storage failures logged per [`STORAGE_LOG_INTERVAL_MS`].
const STORAGE_LOG_LINES_MAX: u32 = 1;
const STORAGE_LOG_INTERVAL_MS: u64 = 10_000;

impl GroupWriter {
    pub fn new(
        conn: Connection,
        engine: EngineConfig,
        keys: Arc<AtRest>,
        cut: ClearingCut,
    ) -> GroupWriter {
        GroupWriter {
            conn,
            cache: WriterCache::default(),
            engine,
            keys,
            cut,
            log: LogBudget::new(STORAGE_LOG_INTERVAL_MS, STORAGE_LOG_LINES_MAX),
        }
    }

    /// A group's requests decided and committed: one answer per input, in order, each 96
    /// with nothing posted if storage failed for it.
    pub fn commit(&mut self, inputs: &[Input<'_>]) -> Vec<Answer> {
        // The fast path: the whole group in one transaction, no savepoint per request (a
        // savepoint copies every page the group already touched before each request
        // writes it). Any storage error rolls the group back, and it is done again
        // request by request.
        let ctx = Decide {
            cfg: &self.engine,
            keys: &self.keys,
            cut: &self.cut,
        };
        let whole = commit_whole(&mut self.conn, &mut self.cache, &ctx, inputs);
        let answers = match whole {
            Ok(answers) => answers,
            Err(e) => {
                // What the cache read after a write of the rolled-back work was never
                // committed; and the redo is the rare path, so it reads the database
                // itself.
                self.cache.clear();
                let what = "group rolled back; doing it again request by request";
                log_storage(&mut self.log, &e, inputs.len(), what);
                commit_each(&mut self.conn, &ctx, inputs, &mut self.log)
            }
        };
        assert_eq!(answers.len(), inputs.len(), "one answer per request");
        answers
    }

    /// The writer's connection, for reads between groups (and the simulation's faults).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The connection, for work between groups that writes (nothing else may hold it).
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub fn engine_config(&self) -> &EngineConfig {
        &self.engine
    }
}

/// Logs a storage failure unless this interval's line is spent.
fn log_storage(log: &mut LogBudget, e: &StoreError, requests: usize, what: &str) {
    if let Some(held_back) = log.allow(std::time::Instant::now()) {
        tracing::error!(error = %e, requests, held_back, "{what}");
    }
}

/// What deciding a request takes besides the ledger.
struct Decide<'a> {
    cfg: &'a EngineConfig,
    keys: &'a AtRest,
    cut: &'a ClearingCut,
}

impl Decide<'_> {
    /// The engine's answer, and the switch's record of what was forwarded for it, in the
    /// caller's transaction.
    fn process(
        &self,
        conn: &Connection,
        ledger: &mut SqliteLedger<'_, '_>,
        input: &Input<'_>,
    ) -> Result<Answer, StoreError> {
        let answer = engine::process(ledger, self.cfg, self.keys.pins(), input)?;
        if let Some(forwarded) = &answer.forwarded {
            switch::record(conn, forwarded, input.divergence, self.cut)?;
        }
        Ok(answer)
    }
}

/// The group in one transaction, or nothing of it.
fn commit_whole(
    conn: &mut Connection,
    cache: &mut WriterCache,
    ctx: &Decide<'_>,
    inputs: &[Input<'_>],
) -> Result<Vec<Answer>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    cache.revalidate(&tx)?;
    let mut answers = Vec::with_capacity(inputs.len());
    {
        let mut hot = HotStatements::prepare(&tx)?;
        for input in inputs {
            let mut ledger = SqliteLedger::hot(&tx, cache, &mut hot).with_keys(ctx.keys);
            answers.push(ctx.process(&tx, &mut ledger, input)?);
        }
    }
    cache.write_back(&tx)?;
    tx.commit()?;
    Ok(answers)
}

/// The group in one transaction with a savepoint per request: a request that fails in
/// storage is rolled back alone and answered 96; the others commit.
fn commit_each(
    conn: &mut Connection,
    ctx: &Decide<'_>,
    inputs: &[Input<'_>],
    log: &mut LogBudget,
) -> Vec<Answer> {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let e = StoreError::from(e);
            log_storage(
                log,
                &e,
                inputs.len(),
                "cannot begin a transaction; answering 96",
            );
            return all_failed(inputs, &e);
        }
    };
    let mut answers = Vec::with_capacity(inputs.len());
    for input in inputs {
        let answer = match tx.savepoint() {
            Err(e) => Err(StoreError::from(e)),
            Ok(mut sp) => {
                let result = {
                    let mut ledger = SqliteLedger::new(&sp).with_keys(ctx.keys);
                    ctx.process(&sp, &mut ledger, input)
                };
                match result {
                    Ok(answer) => sp.commit().map(|_| answer).map_err(StoreError::from),
                    Err(e) => {
                        let _ = sp.rollback();
                        Err(e)
                    }
                }
            }
        };
        match answer {
            Ok(answer) => answers.push(answer),
            Err(e) if tx.is_autocommit() => {
                // SQLite rolled the whole transaction back (disk full, I/O error, no
                // memory): nothing of the group is posted, and nothing more may commit on
                // its own.
                log_storage(
                    log,
                    &e,
                    inputs.len(),
                    "group rolled back by SQLite; answering 96 to all",
                );
                return all_failed(inputs, &e);
            }
            Err(e) => {
                log_storage(
                    log,
                    &e,
                    1,
                    "request failed in storage; rolled back, answering 96",
                );
                answers.push(engine::storage_failure_answer(input, &e));
            }
        }
    }
    if let Err(e) = tx.commit() {
        let e = StoreError::from(e);
        log_storage(
            log,
            &e,
            inputs.len(),
            "group commit failed; answering 96 to all",
        );
        return all_failed(inputs, &e);
    }
    answers
}

/// 96 to every request of a group, nothing of it posted.
fn all_failed(inputs: &[Input<'_>], e: &StoreError) -> Vec<Answer> {
    inputs
        .iter()
        .map(|i| engine::storage_failure_answer(i, e))
        .collect()
}

/// Reloads the external issuers and, when a newer one is stored, the fault plan.
fn refresh(conn: &Connection, shared: &Shared) {
    match load_issuers(conn) {
        Ok(list) => {
            if let Ok(mut issuers) = shared.issuers.write() {
                *issuers = list;
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read issuers"),
    }
    let stored: Result<Option<(i64, String)>, _> = conn
        .query_row(
            "SELECT version, plan FROM fault_plan WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional();
    let Ok(Some((version, text))) = stored else {
        return;
    };
    let current = shared
        .fault_version
        .load(std::sync::atomic::Ordering::Relaxed);
    if version == current {
        return;
    }
    match FaultPlan::parse(&text) {
        Ok(plan) => {
            let rules = plan.rules.len();
            if let Ok(mut faults) = shared.faults.lock() {
                *faults = Some(FaultState::new(plan));
            }
            shared
                .fault_version
                .store(version, std::sync::atomic::Ordering::Relaxed);
            let _ = conn.execute(
                "UPDATE fault_plan SET applied_version = ?1 WHERE id = 1",
                [version],
            );
            tracing::info!(version, rules, "fault plan applied");
        }
        Err(e) => tracing::warn!(version, error = %e, "stored fault plan refused"),
    }
}

fn load_issuers(conn: &Connection) -> rusqlite::Result<Vec<(String, ExternalIssuer)>> {
    let mut stmt = conn.prepare(
        "SELECT b.prefix, i.latency_ms, i.down FROM bins b JOIN institutions i ON i.code = b.institution
         WHERE i.external = 1",
    )?;
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            ExternalIssuer {
                latency_ms: r.get(1)?,
                down: r.get(2)?,
            },
        ))
    })?
    .collect()
}

/// Stores a fault plan for running hosts to apply (they look every 250 ms).
pub fn store_fault_plan(conn: &Connection, text: &str) -> Result<i64, crate::HostError> {
    FaultPlan::parse(text)?;
    let version: i64 = conn
        .query_row(
            "INSERT INTO fault_plan (id, version, plan) VALUES (1, 1, ?1)
             ON CONFLICT (id) DO UPDATE SET version = version + 1, plan = ?1
             RETURNING version",
            [text],
            |r| r.get(0),
        )
        .map_err(StoreError::from)?;
    Ok(version)
}

/// The stored plan: (version, applied version, text).
pub fn stored_fault_plan(
    conn: &Connection,
) -> Result<Option<(i64, i64, String)>, crate::HostError> {
    Ok(conn
        .query_row(
            "SELECT version, applied_version, plan FROM fault_plan WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(StoreError::from)?)
}

#[cfg(test)]
mod tests {
    use poskit_domain::TransactionKind as K;
    use poskit_security::MacAlgorithm;

    use super::*;
    use crate::client::{CardData, RequestSpec, TestTerminal};
    use crate::clock::HostTime;
    use crate::config::HostConfig;
    use crate::engine::IssuerVerdict;
    use crate::store::sqlite;
    use crate::{DataDir, demo, run};

    fn input(frame: &[u8]) -> Input<'_> {
        Input {
            frame,
            now: HostTime::at(1_780_000_000_000, 480),
            issuer: IssuerVerdict::Reachable,
            injected: None,
            parsed: None,
            precheck: None,
            mac_later: true,
            divergence: Default::default(),
        }
    }

    /// Sales of one demo terminal, as the writer gets them.
    struct Rig {
        _temp: tempfile::TempDir,
        writer: GroupWriter,
        terminal: TestTerminal,
    }

    impl Rig {
        fn new() -> Rig {
            let temp = tempfile::tempdir().unwrap();
            let dir = DataDir::create(temp.path()).unwrap();
            run::load_demo(&dir, &HostConfig::default()).unwrap();
            let mut rig = Rig {
                writer: GroupWriter::new(
                    dir.open_keys().unwrap().0,
                    EngineConfig::default(),
                    dir.open_keys().unwrap().1,
                    ClearingCut::default(),
                ),
                terminal: TestTerminal::offline(
                    &demo::fleet_tid(0),
                    "898310048160001",
                    demo::DEMO_TMK,
                )
                .unwrap(),
                _temp: temp,
            };
            let mut sign_in = RequestSpec::new(K::SignIn);
            sign_in.network_code = Some("003".into());
            let (frame, _) = rig.terminal.build(&sign_in).unwrap();
            let mut answer = rig.group(&[frame]).remove(0);
            answer.seal(MacAlgorithm::CupEcb);
            let response = rig.terminal.parse(answer.frame.unwrap()).unwrap();
            rig.terminal.adopt_sign_in(&response).unwrap();
            rig
        }

        fn group(&mut self, frames: &[Vec<u8>]) -> Vec<Answer> {
            let inputs: Vec<_> = frames.iter().map(|f| input(f)).collect();
            self.writer.commit(&inputs)
        }

        fn sales(&mut self, n: usize) -> Vec<Vec<u8>> {
            let card = CardData::Track2(format!("{}=30121010000000000", demo::fleet_pan(0)));
            (0..n)
                .map(|_| {
                    let spec = RequestSpec::sale(card.clone(), 1, Some(demo::DEMO_PIN));
                    self.terminal.build(&spec).unwrap().0
                })
                .collect()
        }

        fn conn(&self) -> &Connection {
            self.writer.connection()
        }

        fn approved_sales_on_file(&self) -> usize {
            self.conn()
                .query_row(
                    "SELECT count(*) FROM transactions WHERE kind = 'sale' AND code = '00'",
                    [],
                    |r| r.get(0),
                )
                .unwrap()
        }
    }

    fn codes(answers: &[Answer]) -> Vec<&str> {
        answers.iter().map(|a| a.code.as_str()).collect()
    }

    /// The disk fills up in the middle of a group (SQLite's own SQLITE_FULL, not an
    /// injected fault): every request is answered 00 or 96, each 00 is on file, no 96
    /// posted anything, the ledger balances, and the writer goes on once there is room.
    #[test]
    fn a_full_disk_mid_group_answers_96_and_posts_nothing_partial() {
        let mut rig = Rig::new();
        let frames = rig.sales(10);
        let first = rig.group(&frames);
        assert!(
            codes(&first).iter().all(|c| *c == "00"),
            "{:?}",
            codes(&first)
        );
        // No page more than the database has now: the next inserts that need one fail.
        let pages: i64 = rig
            .conn()
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        rig.conn()
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .unwrap();
        let frames = rig.sales(100);
        let full = rig.group(&frames);
        let full_codes = codes(&full);
        assert!(
            full_codes.iter().all(|c| *c == "00" || *c == "96"),
            "{full_codes:?}"
        );
        assert!(full_codes.contains(&"96"), "the disk filled up");
        let approved = full_codes.iter().filter(|c| **c == "00").count();
        assert_eq!(rig.approved_sales_on_file(), 10 + approved);
        for answer in full.iter().filter(|a| a.code.as_str() == "96") {
            assert_eq!(answer.txn_id, None, "a 96 for storage has no row");
        }
        rig.conn()
            .query_row("PRAGMA max_page_count = 1073741823", [], |_| Ok(()))
            .unwrap();
        let report = sqlite::check(rig.conn()).unwrap();
        assert_eq!(report.postings_sum_fen, 0);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        // Room again: the writer's caches were dropped with the failed work, and the next
        // group is approved in full.
        let frames = rig.sales(10);
        let after = rig.group(&frames);
        assert!(
            codes(&after).iter().all(|c| *c == "00"),
            "{:?}",
            codes(&after)
        );
        assert_eq!(rig.approved_sales_on_file(), 20 + approved);
        let report = sqlite::check(rig.conn()).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}
