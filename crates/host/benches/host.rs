//! The host's work per sale, by thread, without the network and the load generator:
//! - `writer/group_of_100_sales`: what the writer thread does for a group — the engine
//!   over the cached ledger for each request, the write-back and the commit — on a real
//!   database file (`synchronous = OFF` here, so that the disk's fsync, one per group, does
//!   not drown the CPU figure; `poskit bench host` measures the whole with FULL);
//! - `connection/read_and_precheck_sale`: what a connection task does before the writer
//!   (read the frame, check its MAC and PIN);
//! - `connection/seal_answer`: the answer's encoding and MAC, after the writer.
//!
//! `cargo bench -p poskit-host`

use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group};
use rusqlite::Connection;

use poskit_domain::TransactionKind as K;
use poskit_host::client::{CardData, RequestSpec, RequestTemplate, TestTerminal};
use poskit_host::clock::HostTime;
use poskit_host::config::HostConfig;
use poskit_host::engine::{
    self, Answer, EngineConfig, Input, IssuerVerdict, Parsed, Precheck, TerminalKeys,
};
use poskit_host::store::atrest::AtRest;
use poskit_host::store::sqlite::{HotStatements, SqliteLedger, WriterCache};
use poskit_host::{DataDir, demo, run};
use poskit_security::MacAlgorithm;

// As the `poskit` binary runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Terminals the sales are spread over (their traces stay unique through a long run).
const TERMINALS: u32 = 16;
const GROUP: usize = 100;

/// A terminal of the load: its sale template, its last trace and its working keys.
type LoadTerminal = (RequestTemplate, u32, Arc<TerminalKeys>);

struct Rig {
    _temp: tempfile::TempDir,
    conn: Connection,
    cache: WriterCache,
    keys: Arc<AtRest>,
    cfg: EngineConfig,
    terminals: Vec<LoadTerminal>,
    next: usize,
}

impl Rig {
    fn new() -> Rig {
        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::create(temp.path()).unwrap();
        run::load_demo(&dir, &HostConfig::default()).unwrap();
        let (conn, keys) = dir.open_keys().unwrap();
        conn.pragma_update(None, "synchronous", "OFF").unwrap();
        let cfg = EngineConfig::default();
        let mut terminals = Vec::new();
        let mut cache = WriterCache::default();
        for i in 0..TERMINALS {
            let mut t =
                TestTerminal::offline(&demo::fleet_tid(i), "898310048160001", demo::DEMO_TMK)
                    .unwrap();
            let mut sign_in = RequestSpec::new(K::SignIn);
            sign_in.network_code = Some("003".into());
            let (frame, _) = t.build(&sign_in).unwrap();
            let answer = {
                let tx = conn.unchecked_transaction().unwrap();
                let a = {
                    let mut ledger = SqliteLedger::cached(&tx, &mut cache).with_keys(&keys);
                    engine::process(&mut ledger, &cfg, keys.pins(), &input(&frame, None, None))
                        .unwrap()
                };
                cache.write_back(&tx).unwrap();
                tx.commit().unwrap();
                a
            };
            let keys = answer.keys_after.clone().flatten().expect("signed in");
            let mut answer = answer;
            answer.seal(MacAlgorithm::CupEcb);
            t.adopt_sign_in(&t.parse(answer.frame.unwrap()).unwrap())
                .unwrap();
            let card = CardData::Track2(format!("{}=30121010000000000", demo::fleet_pan(i)));
            let template = t
                .template(&RequestSpec::sale(card, 1, Some(demo::DEMO_PIN)))
                .unwrap();
            terminals.push((template, 1, Arc::new(TerminalKeys::new(keys.0, keys.1))));
        }
        Rig {
            _temp: temp,
            conn,
            cache,
            keys,
            cfg,
            terminals,
            next: 0,
        }
    }

    /// A sale's answer as the writer hands it to the connection (not yet encoded), with
    /// its terminal's keys.
    fn answer(&mut self) -> (Answer, Arc<TerminalKeys>) {
        let (frame, keys) = self.next_sale();
        let tx = self.conn.unchecked_transaction().unwrap();
        let answer = {
            let mut ledger = SqliteLedger::cached(&tx, &mut self.cache).with_keys(&self.keys);
            engine::process(
                &mut ledger,
                &self.cfg,
                self.keys.pins(),
                &input(&frame, None, None),
            )
            .unwrap()
        };
        self.cache.write_back(&tx).unwrap();
        tx.commit().unwrap();
        assert!(answer.frame.is_none(), "the writer leaves the encoding");
        (answer, keys)
    }

    /// The next sale's frame and its terminal's keys.
    fn next_sale(&mut self) -> (Vec<u8>, Arc<TerminalKeys>) {
        let (template, stan, keys) = &mut self.terminals[self.next % TERMINALS as usize];
        self.next += 1;
        *stan += 1;
        assert!(*stan < 999_999, "the bench ran out of traces");
        (template.frame(*stan).to_vec(), keys.clone())
    }

    /// A group of sales as connection tasks hand them to the writer.
    fn group(&mut self) -> Vec<(Vec<u8>, Parsed, Precheck)> {
        (0..GROUP)
            .map(|_| {
                let (frame, keys) = self.next_sale();
                let parsed = Parsed::of(&frame).unwrap();
                let precheck = Precheck::compute(
                    &parsed,
                    MacAlgorithm::CupEcb,
                    |_| Some(keys),
                    self.keys.pins(),
                )
                .unwrap();
                (frame, parsed, precheck)
            })
            .collect()
    }
}

fn input<'a>(
    frame: &'a [u8],
    parsed: Option<&'a Parsed>,
    precheck: Option<&'a Precheck>,
) -> Input<'a> {
    Input {
        frame,
        now: HostTime::at(1_780_000_000_000, 480),
        issuer: IssuerVerdict::Reachable,
        injected: None,
        parsed,
        precheck,
        mac_later: true,
        divergence: Default::default(),
    }
}

fn writer(c: &mut Criterion) {
    let rig = std::cell::RefCell::new(Rig::new());
    let mut g = c.benchmark_group("writer");
    g.throughput(criterion::Throughput::Elements(GROUP as u64));
    g.bench_function("group_of_100_sales", |b| {
        b.iter_batched(
            || rig.borrow_mut().group(),
            |group| writer_group(&mut rig.borrow_mut(), &group),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// What the writer does with a group: one transaction, the engine for each request.
#[inline(never)]
fn writer_group(rig: &mut Rig, group: &[(Vec<u8>, Parsed, Precheck)]) {
    let Rig {
        conn,
        cache,
        keys: at_rest,
        cfg,
        ..
    } = rig;
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    cache.revalidate(conn).unwrap();
    let mut approved = 0;
    let mut hot = HotStatements::prepare(conn).unwrap();
    for (frame, parsed, precheck) in group {
        let answer = {
            let mut ledger = SqliteLedger::hot(conn, cache, &mut hot).with_keys(at_rest);
            engine::process(
                &mut ledger,
                cfg,
                at_rest.pins(),
                &input(frame, Some(parsed), Some(precheck)),
            )
            .unwrap()
        };
        approved += usize::from(answer.code.is_approved());
    }
    drop(hot);
    cache.write_back(conn).unwrap();
    conn.execute_batch("COMMIT").unwrap();
    assert_eq!(approved, group.len(), "every sale of the bench is approved");
}

fn connection(c: &mut Criterion) {
    let rig = std::cell::RefCell::new(Rig::new());
    let mut g = c.benchmark_group("connection");
    g.bench_function("read_and_precheck_sale", |b| {
        b.iter_batched(
            || rig.borrow_mut().next_sale(),
            |(frame, keys)| {
                let parsed = Parsed::of(&frame).unwrap();
                let precheck = Precheck::compute(
                    &parsed,
                    MacAlgorithm::CupEcb,
                    |_| Some(keys),
                    rig.borrow().keys.pins(),
                )
                .unwrap();
                (parsed, precheck)
            },
            BatchSize::SmallInput,
        )
    });
    // One answer as the writer leaves it, encoded and sealed again and again.
    let (answer, keys) = rig.borrow_mut().answer();
    g.bench_function("seal_answer", |b| {
        b.iter_batched(
            || answer.clone(),
            |mut answer| {
                answer.seal_with(MacAlgorithm::CupEcb, Some(&keys));
                answer
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(5));
    targets = writer, connection
}

/// With `POSKIT_BENCH_GROUPS=N`, N writer groups and nothing else; with
/// `POSKIT_BENCH_PRECHECKS=N`, N connection-side prechecks and answer MACs: for counting
/// instructions (wall time on a shared VM moves by a fifth from one run to the next), as
/// `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*writer_group*'`
/// (or `'*connection_work*'`).
fn main() {
    let count = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    if let Some(n) = count("POSKIT_BENCH_GROUPS") {
        let mut rig = Rig::new();
        // The first groups fill the caches (as a running writer has them).
        for _ in 0..5 {
            let group = rig.group();
            writer_group(&mut rig, &group);
        }
        let groups: Vec<_> = (0..n).map(|_| rig.group()).collect();
        for group in &groups {
            writer_group(&mut rig, group);
        }
        return;
    }
    if let Some(n) = count("POSKIT_BENCH_PRECHECKS") {
        let mut rig = Rig::new();
        let (answer, _) = rig.answer();
        let sales: Vec<_> = (0..n)
            .map(|_| {
                let (frame, keys) = rig.next_sale();
                (frame, keys, answer.clone())
            })
            .collect();
        connection_work(&rig, sales);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

/// A connection task's reading, cryptography and encoding for each sale: read, precheck,
/// and the encoding and MAC of a sale's answer.
#[inline(never)]
fn connection_work(rig: &Rig, sales: Vec<(Vec<u8>, Arc<TerminalKeys>, Answer)>) {
    for (frame, keys, mut answer) in sales {
        let parsed = Parsed::of(&frame).unwrap();
        let precheck = Precheck::compute(
            &parsed,
            MacAlgorithm::CupEcb,
            |_| Some(keys.clone()),
            rig.keys.pins(),
        )
        .unwrap();
        assert_eq!(precheck.mac_verified(), Some(true));
        answer.seal_with(MacAlgorithm::CupEcb, Some(&keys));
        assert!(answer.frame.is_some());
    }
}
