//! The deterministic simulation: a fleet of terminal engines and the host's real writer
//! (`node.rs`: group commit on a SQLite file, under storage faults) in one process,
//! simulated time and network, every fault drawn from one seed. The same seed gives the
//! same run, event for event.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use rusqlite::Connection;

use poskit_domain::{AmountFen, Mid, Pan, Tid};
use poskit_host::clock::HostTime;
use poskit_host::demo;
use poskit_host::engine::IssuerVerdict;
use poskit_host::model::{Card, CardStatus, DataSet, Terminal as HostTerminal, TerminalStatus};
use poskit_host::pinhash::{PVK_BYTES, PinHasher};
use poskit_host::store::atrest::AtRest;
use poskit_host::store::sqlite;
use poskit_security::{Pin, SecretKey};
use poskit_terminal::engine::{
    Command, Config, Effect, Event, Note, Outcome, ReversalState, Terminal,
};
use poskit_terminal::journal::Journal;
use zeroize::Zeroize;

use crate::knobs::{self, Knobs, Rng};
use crate::node::{Arrived, Node, PowerCut};
use crate::reconcile::Diverged;
use crate::report::Report;
use poskit_host::switch::Divergence;

/// The merchant every simulated terminal belongs to.
pub const SIM_MID: &str = "898310048160001";
/// Terminals one simulation may run.
pub const TERMINALS_MAX: u32 = 10_000;
/// Operations one simulation may run.
pub const TRANSACTIONS_MAX: u64 = 100_000_000;
/// A terminal settles after this many operations.
const SETTLE_EVERY: u32 = 250;
/// How long the host's writer gathers requests into one group, in simulated ms (the
/// real writer takes what its queue holds when it is free).
const HOST_GROUP_WINDOW_MS: i64 = 2;
/// Mixed into the seed for the host's PIN key, so that it is not the workload's stream.
const PIN_KEY_SALT: u64 = 0x5049_4e4b_4559_0001;
/// Local time the simulated day starts at (01:00 China time), so a run stays in one day.
pub(crate) const DAY_START_UNIX_MS: i64 = 1_796_086_800_000;

fn sim_tid(i: u32) -> String {
    format!("{:08}", 30_000_000 + i)
}

fn sim_pan(i: u32) -> String {
    demo::demo_pan(demo::OWN_BIN, 500_000 + i)
}

fn wrong_pin_pan(i: u32) -> String {
    demo::demo_pan(demo::OWN_BIN, 700_000 + i)
}

/// Terminal `i`'s customers' card of an external issuer (through the switch).
fn external_pan(i: u32) -> String {
    demo::demo_pan(demo::EXTERNAL_BIN, 600_000 + i)
}

/// The simulated fleet's terminals and cards (each terminal has its own card and a card
/// for wrong-PIN mistakes).
fn sim_data_set(terminals: u32, pins: &PinHasher) -> Result<DataSet, String> {
    let tmk = SecretKey::from_hex(demo::DEMO_TMK).map_err(|e| e.to_string())?;
    let pin = Pin::new(demo::DEMO_PIN).map_err(|e| e.to_string())?;
    let mid = Mid::parse(SIM_MID).map_err(|e| e.to_string())?;
    let mut set = DataSet::default();
    for i in 0..terminals {
        set.terminals.push(HostTerminal {
            tid: Tid::parse(&sim_tid(i)).map_err(|e| e.to_string())?,
            mid,
            status: TerminalStatus::Active,
            tmk: tmk.clone(),
            txn_limit_fen: None,
            permitted: None,
        });
        for pan in [sim_pan(i), wrong_pin_pan(i), external_pan(i)] {
            let pan = Pan::parse(&pan).map_err(|e| e.to_string())?;
            set.cards.push(Card {
                card_type: poskit_host::model::CardType::Debit,
                pin_hash: Some(pins.hash(pan.digits(), &pin)),
                pan,
                expiry: "3012".into(),
                status: CardStatus::Active,
                pin_tries_max: 3,
                pin_tries_used: 0,
                balance_fen: AmountFen::new(100_000_000_000).map_err(|e| e.to_string())?,
                daily_count_max: None,
                permitted: None,
                label: "sim".into(),
            });
        }
    }
    Ok(set)
}

/// The demo data, then the fleet's, into the host's database.
fn load_host(conn: &mut Connection, fleet: &DataSet, keys: &AtRest) -> Result<(), String> {
    let now = HostTime::at(DAY_START_UNIX_MS, 480);
    sqlite::import(conn, keys, &demo::data_set(keys.pins()), &now).map_err(|e| e.to_string())?;
    sqlite::import(conn, keys, fleet, &now).map_err(|e| e.to_string())?;
    Ok(())
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // events carry a terminal Event by value; few are queued
enum Ev {
    /// The terminal starts its next operation.
    Start { term: u32 },
    /// An event for a terminal engine of generation `gen`.
    Term {
        term: u32,
        generation: u64,
        event: Event,
    },
    /// A request reaches the host.
    Host { term: u32, frame: Vec<u8> },
    /// The host's writer commits the requests that arrived since its last group.
    HostCommit,
}

struct Term {
    engine: Option<Terminal>,
    generation: u64,
    journal: Journal,
    ops_left: u64,
    since_settle: u32,
    /// What the current operation is (for the report).
    busy: bool,
}

impl Term {
    /// A fresh engine from the journal (after a crash, or for recovery): events for the
    /// old one are dropped by their generation.
    fn restart(&mut self) {
        self.generation += 1;
        let (cfg, _) = self
            .journal
            .config()
            .unwrap_or_else(|e| panic!("journal: {e}"));
        let snap = self
            .journal
            .snapshot()
            .unwrap_or_else(|e| panic!("journal: {e}"));
        self.engine = Some(Terminal::new(cfg, snap));
    }
}

/// A terminal's link to the host: until when it is cut (every message on it lost) and
/// until when it is clogged (every message on it held until then).
#[derive(Clone, Copy, Debug, Default)]
struct Link {
    cut_until_ms: i64,
    clogged_until_ms: i64,
}

/// What a link does to a message arriving now.
enum Passage {
    Open,
    Cut,
    /// Held until this time.
    Clogged(i64),
}

/// A simulation being run.
pub struct World {
    host: Node,
    /// Requests at the host waiting for the writer's next group.
    host_pending: Vec<Arrived>,
    terms: Vec<Term>,
    queue: BinaryHeap<Reverse<(i64, u64, usize)>>,
    events: Vec<Option<Ev>>,
    free: Vec<usize>,
    seq: u64,
    now_ms: i64,
    rng: Rng,
    knobs: Knobs,
    host_down_until_ms: i64,
    /// Until when the host's disk is full.
    disk_full_until_ms: i64,
    /// One per terminal, by index.
    links: Vec<Link>,
    /// In the final recovery (answers then come back through `drain`, not `recover`).
    recovering: bool,
    /// Requests that reached the switch with a divergence drawn for them.
    pub(crate) diverged: Vec<Diverged>,
    /// The host's alerts, as its rules see the run.
    watch: crate::watch::Watch,
    pub report: Report,
}

impl World {
    /// A host with the demo data and `terminals` simulated terminals, each with its own
    /// card (and a card for wrong-PIN mistakes). The host's power is never cut.
    pub fn new(
        terminals: u32,
        transactions: u64,
        seed: u64,
        knobs: Knobs,
    ) -> Result<World, String> {
        World::with_power_cut(terminals, transactions, seed, knobs, None)
    }

    /// The same, with a way to cut the host's power (`knobs.power_cut` needs one).
    pub fn with_power_cut(
        terminals: u32,
        transactions: u64,
        seed: u64,
        knobs: Knobs,
        power_cut: Option<PowerCut>,
    ) -> Result<World, String> {
        if knobs.power_cut > 0.0 && power_cut.is_none() {
            return Err(
                "power_cut needs a disk that can lose what was not synced: the crash VFS of \
                 the tests (poskit-crashvfs); `poskit sim` cannot cut power"
                    .into(),
            );
        }
        // The host's PIN key drawn from the seed, so that the run is the same every time.
        let mut key_rng = knobs::rng(seed ^ PIN_KEY_SALT);
        let mut pin_key = [0u8; PVK_BYTES];
        for chunk in pin_key.chunks_mut(8) {
            chunk.copy_from_slice(&key_rng.next_u64().to_le_bytes());
        }
        let pins = PinHasher::from_key(pin_key);
        let set = sim_data_set(terminals, &pins)?;
        let host = Node::open(&pin_key, power_cut, |conn, keys| {
            load_host(conn, &set, keys)
        });
        pin_key.zeroize();
        let host = host?;
        let tmk = SecretKey::from_hex(demo::DEMO_TMK).map_err(|e| e.to_string())?;
        let per_terminal = transactions / u64::from(terminals.max(1));
        let extra = transactions % u64::from(terminals.max(1));
        let mut terms = Vec::with_capacity(terminals as usize);
        for i in 0..terminals {
            let cfg = Config {
                tid: sim_tid(i),
                mid: SIM_MID.into(),
                tmk: tmk.clone(),
                response_timeout_ms: knobs.timeout_ms,
                reversal_attempts_max: 1_000,
                fail_after_approval: false,
            };
            let journal = Journal::in_memory(&cfg, "sim").map_err(|e| e.to_string())?;
            terms.push(Term {
                engine: None,
                generation: 0,
                journal,
                ops_left: per_terminal + u64::from(u64::from(i) < extra),
                since_settle: 0,
                busy: false,
            });
        }
        let mut world = World {
            host,
            host_pending: Vec::new(),
            terms,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            free: Vec::new(),
            seq: 0,
            now_ms: 0,
            rng: knobs::rng(seed),
            knobs,
            host_down_until_ms: 0,
            disk_full_until_ms: 0,
            links: vec![Link::default(); terminals as usize],
            recovering: false,
            diverged: Vec::new(),
            watch: crate::watch::Watch::new()?,
            report: Report::new(seed),
        };
        world.report.terminals = u64::from(terminals);
        for i in 0..terminals {
            world.schedule(i64::from(i % 1000), Ev::Start { term: i });
        }
        Ok(world)
    }

    fn schedule(&mut self, at_ms: i64, ev: Ev) {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(s) => {
                self.events[s] = Some(ev);
                s
            }
            None => {
                self.events.push(Some(ev));
                self.events.len() - 1
            }
        };
        self.queue.push(Reverse((at_ms, self.seq, slot)));
    }

    fn fault(&mut self, kind: &'static str, p: f64) -> bool {
        let hit = self.rng.chance(p);
        if hit {
            self.count(kind);
        }
        hit
    }

    /// Counts a consequence of a fault (a message lost or held by it).
    fn count(&mut self, kind: &'static str) {
        *self.report.faults.entry(kind.to_owned()).or_default() += 1;
    }

    /// A request is about to leave: its link may be cut or clog at this moment (a link
    /// already cut or clogged is not drawn for again). Always the same draws in the same
    /// order for the same state, so the run stays the same.
    fn link_faults(&mut self, term: u32) {
        let now = self.now_ms;
        let link = self.links[term as usize];
        if now >= link.cut_until_ms && self.fault("partition", self.knobs.partition) {
            self.links[term as usize].cut_until_ms = now + self.knobs.partition_ms as i64;
        }
        if now >= link.clogged_until_ms && self.fault("clog", self.knobs.clog) {
            self.links[term as usize].clogged_until_ms = now + self.knobs.clog_ms as i64;
        }
    }

    fn passage(&self, term: u32) -> Passage {
        let link = self.links[term as usize];
        if self.now_ms < link.cut_until_ms {
            Passage::Cut
        } else if self.now_ms < link.clogged_until_ms {
            Passage::Clogged(link.clogged_until_ms)
        } else {
            Passage::Open
        }
    }

    /// A message arriving now at either end of its terminal's link (a request at the
    /// host, an answer at the terminal): it passes, or is lost to a partition, or is held
    /// until the clog ends. Held messages are scheduled again at that time, in the order
    /// they arrived, so they come out in the order they were sent.
    fn over_link(&mut self, ev: Ev) -> Option<Ev> {
        let term = match &ev {
            Ev::Host { term, .. } => *term,
            Ev::Term {
                term,
                generation,
                event: Event::Response(_),
            } if self.terms[*term as usize].generation == *generation => *term,
            _ => return Some(ev),
        };
        match self.passage(term) {
            Passage::Open => Some(ev),
            Passage::Cut => {
                self.count("partition_loss");
                None
            }
            Passage::Clogged(until_ms) => {
                self.count("clogged");
                self.schedule(until_ms, ev);
                None
            }
        }
    }

    /// Runs the workload, then recovery (no faults): every terminal signs in and settles,
    /// which sends its pending reversal and advices first. Then the checker.
    pub fn run(mut self) -> Report {
        let started = std::time::Instant::now();
        self.drain();
        self.knobs = Knobs {
            timeout_ms: self.knobs.timeout_ms,
            latency_ms: self.knobs.latency_ms,
            ..Knobs::none()
        };
        self.host_down_until_ms = 0;
        self.disk_full_until_ms = 0;
        if self.host.disk_full() {
            self.host
                .set_disk_full(false)
                .unwrap_or_else(|e| panic!("host: {e}"));
        }
        // Heal every link (the drain above delivered whatever a clog held).
        self.links.fill(Link::default());
        self.recovering = true;
        for term in 0..self.terms.len() as u32 {
            self.recover(term, Command::SignIn);
            self.recover(term, Command::Flush);
            let settle = self.terms[term as usize]
                .journal
                .settle_command()
                .unwrap_or_else(|e| panic!("journal: {e}"));
            self.recover(term, settle);
        }
        assert!(
            self.host_pending.is_empty(),
            "the drain committed every group"
        );
        crate::check::check(&mut self);
        crate::reconcile::check(&mut self);
        // Reconciliation's breaks reach the rules as a run of `poskit recon` leaves them.
        let end_ms = DAY_START_UNIX_MS + self.now_ms;
        let found: Vec<(String, u64)> = self
            .report
            .recon
            .as_ref()
            .and_then(|r| r["breaks"].as_object())
            .map(|m| {
                m.iter()
                    .map(|(class, n)| (class.clone(), n.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        self.watch.reconciled(&found, end_ms);
        self.watch.tick(self.host.connection(), end_ms, true);
        self.report.alerts = self.watch.by_rule();
        self.report.alert_examples = self.watch.examples();
        self.report.elapsed_ms = started.elapsed().as_millis() as u64;
        self.report
    }

    /// One command on a terminal (a fresh engine from its journal), with the network
    /// healed, to its end.
    fn recover(&mut self, term: u32, command: Command) {
        let t = &mut self.terms[term as usize];
        t.restart();
        t.busy = true;
        let generation = t.generation;
        let effects = self.engine_handle(term, Event::Command(command));
        self.effects(term, generation, effects, true);
        self.drain();
    }

    fn engine_handle(&mut self, term: u32, event: Event) -> Vec<Effect> {
        let now = self.now_ms;
        match self.terms[term as usize].engine.as_mut() {
            Some(engine) => engine.handle(now, event),
            None => Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(Reverse((at, _, slot))) = self.queue.pop() {
            self.now_ms = self.now_ms.max(at);
            let Some(ev) = self.events[slot].take() else {
                continue;
            };
            self.free.push(slot);
            let Some(ev) = self.over_link(ev) else {
                continue;
            };
            match ev {
                Ev::Start { term } => self.start(term),
                Ev::Term {
                    term,
                    generation,
                    event,
                } => {
                    if self.terms[term as usize].generation != generation {
                        continue; // for an engine that crashed since
                    }
                    let effects = self.engine_handle(term, event);
                    self.effects(term, generation, effects, false);
                }
                Ev::Host { term, frame } => self.host(term, frame),
                Ev::HostCommit => self.host_commit(),
            }
        }
    }

    fn start(&mut self, term: u32) {
        let t = &mut self.terms[term as usize];
        if t.ops_left == 0 || t.busy {
            return;
        }
        if t.engine.is_none() {
            t.restart();
        }
        let signed_in = t
            .engine
            .as_ref()
            .is_some_and(|e| e.snapshot().keys.is_some());
        let command = if !signed_in {
            Command::SignIn
        } else if t.since_settle >= SETTLE_EVERY {
            // Reversals and advices first, then the totals (§4.4).
            let waiting = t.engine.as_ref().is_some_and(|e| {
                e.snapshot().reversal.is_some() || !e.snapshot().advices.is_empty()
            });
            if waiting {
                Command::Flush
            } else {
                t.since_settle = 0;
                t.journal.settle_command().unwrap_or(Command::Echo)
            }
        } else {
            t.ops_left -= 1;
            t.since_settle += 1;
            self.report.transactions += 1;
            self.workload(term)
        };
        let jam = self.fault("printer_jam", self.knobs.printer_jam);
        let t = &mut self.terms[term as usize];
        t.busy = true;
        let generation = t.generation;
        if let Some(engine) = t.engine.as_mut() {
            engine.set_fail_after_approval(jam);
        }
        let effects = self.engine_handle(term, Event::Command(command));
        self.effects(term, generation, effects, false);
    }

    /// A mixed day at a shop: good cards, wrong PINs, lost and empty cards, voids,
    /// balance inquiries, pre-authorizations and their completions.
    fn workload(&mut self, term: u32) -> Command {
        let t = &self.terms[term as usize];
        let batch = match &t.engine {
            Some(e) => e.snapshot().batch,
            None => t.journal.snapshot().map_or(1, |s| s.batch),
        };
        let journal = &t.journal;
        let cards = crate::workload::Cards {
            own: vec![sim_pan(term)],
            wrong_pin: wrong_pin_pan(term),
            external: Some(external_pan(term)),
        };
        crate::workload::choose(&mut self.rng, &cards, |kind| {
            journal.last_approved(kind, batch).ok().flatten()
        })
    }

    fn effects(&mut self, term: u32, generation: u64, effects: Vec<Effect>, recovery: bool) {
        for effect in effects {
            if self.terms[term as usize].generation != generation {
                return; // crashed while acting
            }
            match effect {
                Effect::Journal(ops) => {
                    let now = self.now_ms;
                    self.terms[term as usize]
                        .journal
                        .apply(&ops, now)
                        .unwrap_or_else(|e| panic!("journal: {e}"));
                }
                Effect::Send { frame, token } => self.send(term, generation, frame, token),
                Effect::Timer { ms, token } => {
                    let at = self.now_ms + ms as i64;
                    self.schedule(
                        at,
                        Ev::Term {
                            term,
                            generation,
                            event: Event::Timeout { token },
                        },
                    );
                }
                Effect::Done(outcome) => self.done(term, &outcome, recovery),
            }
        }
    }

    fn send(&mut self, term: u32, generation: u64, frame: Vec<u8>, token: u64) {
        let latency = self.knobs.latency_ms as i64;
        self.link_faults(term);
        if self.fault("reset", self.knobs.reset) {
            let why = "connection reset before the request left".to_owned();
            self.schedule(
                self.now_ms + 1,
                Ev::Term {
                    term,
                    generation,
                    event: Event::NotSent { token, why },
                },
            );
            return;
        }
        if matches!(self.passage(term), Passage::Cut) {
            self.count("partition_loss");
            return;
        }
        if self.now_ms < self.host_down_until_ms {
            self.count("host_down_loss");
            return;
        }
        if self.fault("request_loss", self.knobs.request_loss) {
            return;
        }
        if self.fault("duplicate", self.knobs.duplicate) {
            self.schedule(
                self.now_ms + latency + 1,
                Ev::Host {
                    term,
                    frame: frame.clone(),
                },
            );
        }
        if self.fault("terminal_crash", self.knobs.terminal_crash) {
            // The request is on the wire; the terminal dies and comes back from its journal.
            let t = &mut self.terms[term as usize];
            t.engine = None;
            t.generation += 1;
            t.busy = false;
            self.schedule(self.now_ms + 1_000, Ev::Start { term });
        }
        self.schedule(self.now_ms + latency, Ev::Host { term, frame });
    }

    /// A request reaches the host: it waits for the writer's next group.
    fn host(&mut self, term: u32, frame: Vec<u8>) {
        if self.now_ms < self.host_down_until_ms {
            self.count("host_down_loss");
            return;
        }
        let issuer = if self.fault("issuer_timeout", self.knobs.issuer_timeout) {
            IssuerVerdict::TimedOut
        } else {
            IssuerVerdict::Reachable
        };
        let storage_fails = self.fault("storage_statement", self.knobs.storage_statement);
        let divergence = self.divergence();
        let issuer = if divergence.late_answer {
            IssuerVerdict::TimedOut
        } else {
            issuer
        };
        if self.host_pending.is_empty() {
            self.schedule(self.now_ms + HOST_GROUP_WINDOW_MS, Ev::HostCommit);
        }
        self.host_pending.push(Arrived {
            term,
            frame,
            issuer,
            storage_fails,
            divergence,
        });
    }

    /// The writer commits a group through the host's real writer, under the storage
    /// faults drawn for it; a crash loses the group before its commit or its answers
    /// after it; a power cut comes after the answers left.
    fn host_commit(&mut self) {
        let group = std::mem::take(&mut self.host_pending);
        assert!(!group.is_empty(), "a commit is scheduled by a request");
        if self.now_ms < self.host_down_until_ms {
            self.count("host_down_loss");
            return;
        }
        let crash = self.fault("host_crash", self.knobs.host_crash);
        if crash && self.rng.chance(0.5) {
            // Crash before the commit: the requests are gone.
            self.host_restart(false);
            return;
        }
        self.storage_faults();
        let now = HostTime::at(DAY_START_UNIX_MS + self.now_ms, 480);
        let answers = self.host.commit(&group, now);
        for (arrived, answer) in group.iter().zip(&answers) {
            if let Some(forwarded) = answer.forwarded.as_deref()
                && arrived.divergence.any()
            {
                self.diverged
                    .push(Diverged::of(forwarded, arrived.divergence));
            }
        }
        for answer in &answers {
            *self
                .report
                .host_codes
                .entry(answer.code.as_str().to_owned())
                .or_default() += 1;
        }
        self.watch
            .record(&answers, SIM_MID, now.unix_ms, HOST_GROUP_WINDOW_MS as u64);
        self.watch.tick(self.host.connection(), now.unix_ms, false);
        if crash {
            // Crash after the commit: the answers are lost.
            self.host_restart(false);
            return;
        }
        let power_cut = self.host.can_lose_power() && self.fault("power_cut", self.knobs.power_cut);
        for (arrived, answer) in group.iter().zip(answers) {
            assert!(
                answer.mac_pending.is_none(),
                "an answer leaves the host sealed"
            );
            if let Some(frame) = answer.frame {
                self.answer(arrived.term, frame, answer.code.is_approved());
            }
        }
        if power_cut {
            self.host_restart(true);
        }
    }

    /// How the switch's record of a request will differ from the host's (it matters only
    /// for a request that reaches the switch).
    fn divergence(&mut self) -> Divergence {
        // At most one per request, so that each is found as its own class.
        let k = self.knobs.clone();
        let mut d = Divergence::default();
        if self.fault("switch_late_answer", k.switch_late_answer) {
            d.late_answer = true;
        } else if self.fault("switch_lose_reversal", k.switch_lose_reversal) {
            d.lose_reversal = true;
        } else if self.fault("switch_duplicate", k.switch_duplicate) {
            d.duplicate = true;
        } else if self.fault("switch_amount", k.switch_amount) {
            d.amount_delta_fen = 1 + self.rng.below(500) as i64;
        } else if self.fault("switch_next_day", k.switch_next_day) {
            d.next_day = true;
        }
        d
    }

    /// The storage faults of the next commit: a failing commit, a disk that fills up or
    /// has room again.
    fn storage_faults(&mut self) {
        if self.fault("storage_commit", self.knobs.storage_commit) {
            let retry_fails_too = self.rng.chance(0.5);
            self.host.fail_commits(1 + u32::from(retry_fails_too));
        }
        let full = if self.host.disk_full() {
            self.now_ms < self.disk_full_until_ms
        } else if self.fault("disk_full", self.knobs.disk_full) {
            self.disk_full_until_ms = self.now_ms + self.knobs.disk_full_ms as i64;
            true
        } else {
            false
        };
        if full != self.host.disk_full() {
            self.host
                .set_disk_full(full)
                .unwrap_or_else(|e| panic!("host: {e}"));
        }
    }

    /// The host goes down for `host_down_ms` and comes back from its files (after a power
    /// cut, from what was synced).
    fn host_restart(&mut self, power_lost: bool) {
        self.host_down_until_ms = self.now_ms + self.knobs.host_down_ms as i64;
        self.host
            .restart(power_lost)
            .unwrap_or_else(|e| panic!("host restart: {e}"));
    }

    /// An answer on its way back to its terminal, through the link's faults.
    fn answer(&mut self, term: u32, mut frame: Vec<u8>, approved: bool) {
        if matches!(self.passage(term), Passage::Cut) {
            self.count("partition_loss");
            return;
        }
        if self.fault("answer_loss", self.knobs.answer_loss) {
            return;
        }
        if approved && self.fault("corrupt_mac", self.knobs.corrupt_mac) {
            let last = frame.len() - 1;
            frame[last] ^= 0x01;
        }
        let latency = self.knobs.latency_ms as i64;
        let delay = if self.fault("delay", self.knobs.delay) {
            self.knobs.timeout_ms as i64 + latency
        } else {
            0
        };
        let generation = self.terms[term as usize].generation;
        self.schedule(
            self.now_ms + latency + delay,
            Ev::Term {
                term,
                generation,
                event: Event::Response(frame),
            },
        );
    }

    fn done(&mut self, term: u32, outcome: &Outcome, recovery: bool) {
        // Answers in the final recovery come back through `drain`, not `recover`: they are
        // recovery too (not counted as the workload's, no next operation drawn).
        let recovery = recovery || self.recovering;
        let r = &mut self.report;
        if !recovery && outcome.operation != "sign-in" && outcome.operation != "settle" {
            if outcome.approved {
                r.approved += 1;
            } else {
                *r.declined.entry(outcome.code.to_string()).or_default() += 1;
            }
        }
        match outcome.reversal {
            ReversalState::None => {}
            ReversalState::Pending => r.reversals_pending_at_answer += 1,
            ReversalState::Done => r.reversals_done_in_operation += 1,
            ReversalState::Failed => r.reversals_failed += 1,
        }
        for n in &outcome.notes {
            if matches!(n, Note::ReversalDone { .. }) {
                r.reversals_delivered += 1;
            }
        }
        if let Some((balanced, _)) = outcome.settlement {
            if balanced {
                r.settlements_balanced += 1;
            } else {
                r.settlements_unbalanced += 1;
            }
        }
        if self.recovering && outcome.operation == "settle" && outcome.settlement.is_some() {
            r.recovery_settled += 1;
        }
        let t = &mut self.terms[term as usize];
        t.busy = false;
        if !recovery {
            let think = 50 + self.rng.below(400) as i64;
            self.schedule(self.now_ms + think, Ev::Start { term });
        }
    }

    /// The host's data directory and writable connection (for reconciliation, after the
    /// run).
    pub(crate) fn host_node(&mut self) -> &mut Node {
        &mut self.host
    }

    pub(crate) fn host_conn(&self) -> &Connection {
        self.host.connection()
    }

    pub(crate) fn journals(&self) -> impl Iterator<Item = (String, &Journal)> {
        self.terms
            .iter()
            .enumerate()
            .map(|(i, t)| (sim_tid(i as u32), &t.journal))
    }
}

/// Codes by count, for the report.
pub type Counts = BTreeMap<String, u64>;
