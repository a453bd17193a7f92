//! The writer's ledger keeps balances, holds and day totals in memory and writes each
//! changed one once per transaction ([`WriterCache::write_back`]), and holds a transaction
//! row back until its answer is known. Whatever it holds, the database it leaves must be
//! the one the plain ledger (every change written at once) leaves for the same requests,
//! also when a transaction is rolled back half way.

use rusqlite::Connection;

use poskit_domain::TransactionKind as K;
use poskit_host::client::{CardData, RequestSpec, Response, TestTerminal};
use poskit_host::clock::HostTime;
use poskit_host::config::HostConfig;
use poskit_host::engine::{self, Answer, EngineConfig, Input, IssuerVerdict};
use poskit_host::store::atrest::AtRest;
use poskit_host::store::sqlite::{self, HotStatements, SqliteLedger, WriterCache};
use poskit_host::{DataDir, demo, run};

/// How a world runs its requests through the ledger.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// A plain ledger, one transaction per request.
    Plain,
    /// The writer's cached ledger and its prepared statements, four requests per
    /// transaction.
    Cached,
}

struct World {
    _temp: tempfile::TempDir,
    conn: Connection,
    keys: std::sync::Arc<AtRest>,
    mode: Mode,
    cache: WriterCache,
    /// Requests processed in the open transaction (cached mode).
    open: usize,
}

const REQUESTS_PER_TRANSACTION: usize = 4;

impl World {
    fn new(mode: Mode) -> World {
        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::create(temp.path()).unwrap();
        run::load_demo(&dir, &HostConfig::default()).unwrap();
        let (conn, keys) = dir.open_keys().unwrap();
        World {
            _temp: temp,
            conn,
            keys,
            mode,
            cache: WriterCache::default(),
            open: 0,
        }
    }

    fn input(frame: &[u8]) -> Input<'_> {
        Input {
            frame,
            now: HostTime::at(1_780_000_000_000, 480),
            issuer: IssuerVerdict::Reachable,
            injected: None,
            parsed: None,
            precheck: None,
            mac_later: false,
            divergence: Default::default(),
        }
    }

    fn process(&mut self, frame: &[u8]) -> Answer {
        let cfg = EngineConfig::default();
        match self.mode {
            Mode::Plain => {
                let tx = self.conn.transaction().unwrap();
                let answer = {
                    let mut ledger = SqliteLedger::new(&tx).with_keys(&self.keys);
                    engine::process(&mut ledger, &cfg, self.keys.pins(), &World::input(frame))
                        .unwrap()
                };
                tx.commit().unwrap();
                answer
            }
            Mode::Cached => {
                if self.open == 0 {
                    self.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                    self.cache.revalidate(&self.conn).unwrap();
                }
                // With the statements the writer prepares per group (here per request).
                let answer = {
                    let mut hot = HotStatements::prepare(&self.conn).unwrap();
                    let mut ledger = SqliteLedger::hot(&self.conn, &mut self.cache, &mut hot)
                        .with_keys(&self.keys);
                    engine::process(&mut ledger, &cfg, self.keys.pins(), &World::input(frame))
                        .unwrap()
                };
                self.open += 1;
                if self.open == REQUESTS_PER_TRANSACTION {
                    self.commit();
                }
                answer
            }
        }
    }

    fn commit(&mut self) {
        if self.mode == Mode::Cached && self.open > 0 {
            self.cache.write_back(&self.conn).unwrap();
            self.conn.execute_batch("COMMIT").unwrap();
            self.open = 0;
        }
    }

    /// Processes `frame` in a transaction that is then rolled back, as the writer does when
    /// a group fails: the cache is cleared, nothing of it stays.
    fn process_and_roll_back(&mut self, frame: &[u8]) {
        assert!(self.mode == Mode::Cached);
        self.commit();
        self.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        self.cache.revalidate(&self.conn).unwrap();
        {
            let mut ledger =
                SqliteLedger::cached(&self.conn, &mut self.cache).with_keys(&self.keys);
            engine::process(
                &mut ledger,
                &EngineConfig::default(),
                self.keys.pins(),
                &World::input(frame),
            )
            .unwrap();
        }
        self.conn.execute_batch("ROLLBACK").unwrap();
        self.cache.clear();
    }

    /// Every table the running totals and held rows end up in, as text.
    fn state(&self) -> Vec<String> {
        let rows = |sql: &str| -> Vec<String> {
            let mut stmt = self.conn.prepare(sql).unwrap();
            let n = stmt.column_count();
            stmt.query_map([], |r| {
                Ok((0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join(" "))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
        };
        let mut state = Vec::new();
        for sql in [
            "SELECT id, name, balance_fen, held_fen FROM accounts ORDER BY id",
            "SELECT mid, day, debit_fen FROM merchant_days ORDER BY mid, day",
            "SELECT card_id, day, debit_count FROM card_days ORDER BY card_id, day",
            "SELECT txn_id, leg, account, amount_fen FROM postings ORDER BY txn_id, leg",
            "SELECT txn_id, account, amount_fen, open FROM holds ORDER BY txn_id",
            // Not the RRN, the answer or the reason: they carry the keys of the sign-in.
            "SELECT id, kind, reversal, mti, stan, amount_fen, card_id, auth_code IS NULL,
                    rrn IS NULL, response IS NULL, code, state, original_id, refunded_fen
             FROM transactions ORDER BY id",
        ] {
            state.extend(rows(sql));
        }
        state
    }
}

fn card(i: u32) -> CardData {
    CardData::Track2(format!("{}=30121010000000000", demo::fleet_pan(i)))
}

fn parse(t: &TestTerminal, answer: &Answer) -> Response {
    t.parse(answer.frame.clone().unwrap()).unwrap()
}

/// Builds and processes one request; its code goes to `codes`.
fn run(
    w: &mut World,
    t: &mut TestTerminal,
    codes: &mut Vec<String>,
    spec: &RequestSpec,
) -> (u32, Response) {
    let (frame, stan) = t.build(spec).unwrap();
    let answer = w.process(&frame);
    codes.push(answer.code.as_str().to_owned());
    (stan, parse(t, &answer))
}

/// A day at two fleet terminals: sales, a wrong PIN, a resend, a void, a pre-authorization
/// and its completion, a reversal and a balance inquiry. Returns each answer's code, and
/// the balance the inquiry reports.
fn day(w: &mut World, roll_back_once: bool) -> Vec<String> {
    let mut codes = Vec::new();
    for i in 0..2 {
        let mut t =
            TestTerminal::offline(&demo::fleet_tid(i), "898310048160001", demo::DEMO_TMK).unwrap();
        let mut sign_in = RequestSpec::new(K::SignIn);
        sign_in.network_code = Some("003".into());
        let (frame, _) = t.build(&sign_in).unwrap();
        let answer = w.process(&frame);
        t.adopt_sign_in(&parse(&t, &answer)).unwrap();

        let sale = RequestSpec::sale(card(i), 1_234, Some(demo::DEMO_PIN));
        let (first_stan, _) = run(w, &mut t, &mut codes, &sale);
        run(
            w,
            &mut t,
            &mut codes,
            &RequestSpec::sale(card(i), 1_000, Some("999999")),
        );
        let second = RequestSpec::sale(card(i), 2_000, Some(demo::DEMO_PIN));
        let (second_frame, second_stan) = t.build(&second).unwrap();
        if roll_back_once {
            w.process_and_roll_back(&second_frame);
        }
        codes.push(w.process(&second_frame).code.as_str().to_owned());
        codes.push(w.process(&second_frame).code.as_str().to_owned());

        let mut void = RequestSpec::new(K::Void);
        void.amount_fen = Some(1_234);
        void.card = Some(card(i));
        void.original_stan = Some(first_stan);
        void.original_batch = Some(1);
        run(w, &mut t, &mut codes, &void);

        let mut pre = RequestSpec::sale(card(i), 5_000, Some(demo::DEMO_PIN));
        pre.kind = K::PreAuth;
        let (_, pre_answer) = run(w, &mut t, &mut codes, &pre);
        let mut completion = RequestSpec::new(K::PreAuthCompletion);
        completion.amount_fen = Some(4_000);
        completion.card = Some(card(i));
        completion.auth_code = pre_answer.field(38).map(str::to_owned);
        completion.original_date = pre_answer.field(13).map(str::to_owned);
        run(w, &mut t, &mut codes, &completion);

        let mut reversal = second.clone();
        reversal.stan = Some(second_stan);
        reversal.reversal_reason = Some("98".into());
        run(w, &mut t, &mut codes, &reversal);

        let mut balance = RequestSpec::sale(card(i), 0, Some(demo::DEMO_PIN));
        balance.kind = K::BalanceInquiry;
        balance.amount_fen = None;
        // The available balance as the request reads it: from totals the same transaction
        // moved (cached) or from the table (plain) — the same figure either way.
        let (_, answer) = run(w, &mut t, &mut codes, &balance);
        codes.push(format!("54={}", answer.field(54).unwrap_or("none")));
    }
    w.commit();
    codes
}

#[test]
fn the_cached_ledger_leaves_the_database_the_plain_ledger_leaves() {
    let mut plain = World::new(Mode::Plain);
    let mut cached = World::new(Mode::Cached);
    let codes = day(&mut plain, false);
    assert_eq!(day(&mut cached, false), codes);
    assert_eq!(
        &codes[..9],
        ["00", "55", "00", "00", "00", "00", "00", "00", "00"],
        "sale, wrong PIN, sale, its resend, void, pre-auth, completion, reversal, balance"
    );
    assert_eq!(cached.state(), plain.state());
    for w in [&plain, &cached] {
        let report = sqlite::check(&w.conn).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}

#[test]
fn a_rolled_back_transaction_leaves_nothing_of_what_the_cache_held() {
    let mut plain = World::new(Mode::Plain);
    let mut cached = World::new(Mode::Cached);
    let codes = day(&mut plain, false);
    assert_eq!(day(&mut cached, true), codes);
    assert_eq!(cached.state(), plain.state());
    let report = sqlite::check(&cached.conn).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn a_resend_reads_back_the_answer_its_held_back_row_was_written_with() {
    let mut w = World::new(Mode::Cached);
    let mut t =
        TestTerminal::offline(&demo::fleet_tid(3), "898310048160001", demo::DEMO_TMK).unwrap();
    let mut sign_in = RequestSpec::new(K::SignIn);
    sign_in.network_code = Some("003".into());
    let (frame, _) = t.build(&sign_in).unwrap();
    let answer = w.process(&frame);
    t.adopt_sign_in(&parse(&t, &answer)).unwrap();
    let (frame, _) = t
        .build(&RequestSpec::sale(card(3), 777, Some(demo::DEMO_PIN)))
        .unwrap();
    let first = w.process(&frame);
    w.commit();
    let again = w.process(&frame);
    w.commit();
    assert!(again.repeated, "the resend is the first answer again");
    assert_eq!(first.frame, again.frame);
    assert!(parse(&t, &again).field(38).is_some());
}
