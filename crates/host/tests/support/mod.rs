//! A real host on loopback, in this process: its own tokio runtime on a thread, a fresh
//! data directory with the demo data, and test terminals that talk to it over TCP.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use poskit_domain::TransactionKind as K;
use poskit_host::client::{CardData, RequestSpec, Response, TestTerminal};
use poskit_host::config::{HostConfig, Limits};
use poskit_host::demo::{self, Scenario};
use poskit_host::faults::FaultPlan;
use poskit_host::{DataDir, run, store};

pub struct TestHost {
    pub addr: String,
    /// What the running host shares with its connections (issuers, faults, counters).
    pub shared: std::sync::Arc<poskit_host::writer::Shared>,
    pub dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _temp: Option<tempfile::TempDir>,
}

impl TestHost {
    pub fn start() -> TestHost {
        Self::start_with(HostConfig::default())
    }

    pub fn start_with(config: HostConfig) -> TestHost {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        let mut host = Self::start_in(dir, config);
        host._temp = Some(temp);
        host
    }

    /// A host on an existing data directory (restarts keep their data).
    pub fn start_in(dir: PathBuf, config: HostConfig) -> TestHost {
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let data = DataDir::create(&dir).unwrap();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                run::run(
                    &data,
                    config,
                    "127.0.0.1:0",
                    true,
                    async {
                        let _ = stop_rx.await;
                    },
                    |r| {
                        addr_tx
                            .send((r.addr.to_string(), r.shared.clone()))
                            .unwrap()
                    },
                )
                .await
                .unwrap();
            });
        });
        let (addr, shared) = addr_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        TestHost {
            addr,
            shared,
            dir,
            stop: Some(stop_tx),
            thread: Some(thread),
            _temp: None,
        }
    }

    pub fn terminal(&self, tid: &str, mid: &str) -> TestTerminal {
        TestTerminal::connect(
            &self.addr,
            tid,
            mid,
            demo::DEMO_TMK,
            Duration::from_secs(10),
        )
        .unwrap()
    }

    /// A signed-in terminal of a scenario.
    pub fn signed_in(&self, s: &Scenario) -> TestTerminal {
        let mut t = self.terminal(&s.tid, &s.mid);
        let r = t.sign_in().unwrap();
        assert_eq!(r.code(), "00", "sign-in of {}: {:?}", s.tid, r.fields);
        t
    }

    pub fn db(&self) -> rusqlite::Connection {
        // Opened with the ledger's keys: `pan_hash(?)` finds a card by its number.
        poskit_host::DataDir::existing(&self.dir)
            .open_keys()
            .unwrap()
            .0
    }

    /// The ledger balances: sum of postings zero, every account its postings' sum.
    pub fn assert_balanced(&self) {
        let report = store::sqlite::check(&self.db()).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.postings_sum_fen, 0);
    }

    /// `host check` names a problem containing `words`.
    pub fn assert_check_names(&self, words: &str) {
        let report = store::sqlite::check(&self.db()).unwrap();
        assert!(
            report.problems.iter().any(|p| p.contains(words)),
            "no problem naming {words:?}: {:?}",
            report.problems
        );
    }

    /// The balance of a card's account, in fen.
    pub fn card_balance(&self, pan: &str) -> i64 {
        self.db()
            .query_row(
                "SELECT a.balance_fen FROM cards c JOIN accounts a ON a.id = c.account WHERE c.pan_hash = pan_hash(?1)",
                [pan],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// The reason recorded with the transaction a response names by RRN.
    /// An answer with no field 37 was not recorded (invariant 9): its reason is among the
    /// host's recent refusals of strangers.
    pub fn reason_of(&self, response: &Response) -> String {
        match response.field(37) {
            Some(rrn) => self.reason_by_rrn(rrn).unwrap(),
            None => self.stranger_reason(response),
        }
    }

    /// The reason of an answer not recorded, from the host's recent refusals.
    pub fn stranger_reason(&self, response: &Response) -> String {
        let (tid, stan) = (response.field(41), response.field(11));
        self.shared
            .strangers
            .recent()
            .into_iter()
            .rev()
            .find(|r| r.tid.as_deref() == tid && r.stan.as_deref() == stan)
            .map(|r| r.reason)
            .unwrap_or_else(|| panic!("no reason for {tid:?} {stan:?}"))
    }

    /// Rows in the ledger's transactions.
    pub fn rows(&self) -> i64 {
        self.query_i64("SELECT count(*) FROM transactions", [])
    }

    /// The reason recorded with the transaction of RRN `rrn`.
    fn reason_by_rrn(&self, rrn: &str) -> rusqlite::Result<String> {
        self.db().query_row(
            "SELECT reason FROM transactions WHERE rrn = ?1",
            [rrn],
            |r| r.get(0),
        )
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub fn scenario(name: &str) -> Scenario {
    demo::scenario(name).unwrap_or_else(|| panic!("no scenario {name}"))
}

pub fn track2(s: &Scenario) -> CardData {
    CardData::Track2(s.track2())
}

pub fn manual(s: &Scenario) -> CardData {
    CardData::Manual {
        pan: s.pan.clone(),
        expiry: s.expiry.clone(),
    }
}

pub fn sale(s: &Scenario, amount_fen: u64) -> RequestSpec {
    RequestSpec::sale(track2(s), amount_fen, Some(s.pin))
}

/// The main demo merchant, where the fleet terminals are registered.
pub const MAIN_MID: &str = "898310048160001";

/// Fleet card `i` (PIN 123456, expiry 3012, 10 000.00 yuan) at fleet terminal `i` of the
/// main merchant, as a scenario: tests that each take their own index do not interfere.
pub fn fleet(i: u32) -> Scenario {
    Scenario {
        name: "fleet",
        description: "an ordinary fleet card at a fleet terminal",
        operation: poskit_domain::TransactionKind::Sale,
        amount_fen: 100,
        pan: demo::fleet_pan(i),
        expiry: "3012".into(),
        pin: demo::DEMO_PIN,
        tid: demo::fleet_tid(i),
        mid: MAIN_MID.into(),
        tmk: demo::DEMO_TMK,
        expected: poskit_domain::ResponseCode::APPROVED,
    }
}

impl TestHost {
    /// Stops this host and starts another on the same data directory with `config`.
    /// The temporary directory of `start`/`start_with` moves to the new host.
    pub fn restart(mut self, config: HostConfig) -> TestHost {
        self.shutdown();
        let temp = self._temp.take();
        let dir = self.dir.clone();
        drop(self);
        let mut host = Self::start_in(dir, config);
        host._temp = temp;
        host
    }

    /// One number out of the database (a count, a sum).
    pub fn query_i64(&self, sql: &str, params: impl rusqlite::Params) -> i64 {
        self.db()
            .query_row(sql, params, |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// How many postings the account of a card has since its opening balance was loaded.
    pub fn card_postings(&self, pan: &str) -> i64 {
        self.query_i64(
            "SELECT count(*) FROM postings p JOIN cards c ON c.account = p.account
             JOIN transactions t ON t.id = p.txn_id
             WHERE c.pan_hash = pan_hash(?1) AND t.mti != 'load'",
            [pan],
        )
    }

    /// The reason recorded with a response, or why there is none (for assertion messages).
    pub fn reason_or_why_not(&self, response: &Response) -> String {
        let Some(rrn) = response.field(37) else {
            return format!("(no field 37; fields {:?})", response.fields);
        };
        self.reason_by_rrn(rrn)
            .unwrap_or_else(|e| format!("(no transaction with RRN {rrn}: {e})"))
    }

    /// Stops this host and starts it again on the same data directory with its clock a
    /// day on: what happened before is an earlier day's (refunds, cross-day reversals).
    pub fn next_day(self) -> TestHost {
        self.restart(HostConfig {
            clock_offset_days: 1,
            ..Default::default()
        })
    }

    /// A new connection of the terminal of `s`, not signed in, whose traces start at 100
    /// so that they do not repeat those of an earlier connection.
    pub fn reconnect(&self, s: &Scenario) -> TestTerminal {
        let mut t = self.terminal(&s.tid, &s.mid);
        t.set_next_stan(100);
        t
    }

    /// A host whose configuration carries the fault plan `plan` (TOML) and `limits`.
    pub fn start_with_faults(plan: &str, limits: Limits) -> TestHost {
        Self::start_with(HostConfig {
            faults: FaultPlan::parse(plan).unwrap(),
            limits,
            ..Default::default()
        })
    }
}

/// The opening balance of every fleet card, in fen.
pub const OPENING_FEN: i64 = demo::DEMO_BALANCE_FEN as i64;

// ---- requests ----------------------------------------------------------------------------

/// `spec` as a request of another kind.
pub fn with_kind(kind: K, spec: RequestSpec) -> RequestSpec {
    RequestSpec { kind, ..spec }
}

/// A void of the sale answered by `sale` (sent by `t`) for `amount_fen`.
pub fn void_of(s: &Scenario, t: &TestTerminal, sale: &Response, amount_fen: u64) -> RequestSpec {
    let mut spec = RequestSpec::new(K::Void);
    spec.amount_fen = Some(amount_fen);
    spec.card = Some(track2(s));
    spec.original_batch = Some(t.batch.value());
    spec.original_stan = Some(sale.stan);
    spec.rrn = sale.field(37).map(str::to_owned);
    spec
}

/// A pre-authorization of `amount_fen` with the card of `s` swiped and its PIN.
pub fn pre_auth(s: &Scenario, amount_fen: u64) -> RequestSpec {
    with_kind(K::PreAuth, sale(s, amount_fen))
}

/// A completion or cancel of the pre-authorization answered by `pre`.
pub fn of_pre_auth(kind: K, s: &Scenario, pre: &Response, amount_fen: u64) -> RequestSpec {
    let mut spec = RequestSpec::new(kind);
    spec.amount_fen = Some(amount_fen);
    spec.card = Some(track2(s));
    spec.auth_code = Some(field(pre, 38));
    spec.original_date = Some(field(pre, 13));
    spec
}

/// A balance inquiry with the card of `s` swiped and its PIN (no amount).
pub fn balance_inquiry(s: &Scenario) -> RequestSpec {
    RequestSpec {
        amount_fen: None,
        ..with_kind(K::BalanceInquiry, sale(s, 0))
    }
}

// ---- answers -----------------------------------------------------------------------------

/// Asserts the code of a response, showing the recorded reason when it differs.
#[track_caller]
pub fn assert_code(host: &TestHost, response: &Response, code: &str) {
    assert_eq!(
        response.code(),
        code,
        "{} (fields {:?})",
        host.reason_or_why_not(response),
        response.fields
    );
}

/// Asserts that the recorded reason of a response contains every one of `words`.
#[track_caller]
pub fn assert_reason(host: &TestHost, response: &Response, words: &[&str]) {
    let reason = host.reason_of(response);
    for w in words {
        assert!(reason.contains(w), "reason {reason:?} lacks {w:?}");
    }
}

/// Field `n` of a response, which must be there.
#[track_caller]
pub fn field(response: &Response, n: u8) -> String {
    response
        .field(n)
        .unwrap_or_else(|| panic!("field {n} missing: {:?}", response.fields))
        .to_owned()
}

/// The available balance field 54 reports, in fen.
#[track_caller]
pub fn available_fen(response: &Response) -> i64 {
    let f54 = field(response, 54);
    let amount: i64 = f54[8..20].parse().unwrap();
    match &f54[7..8] {
        "C" => amount,
        "D" => -amount,
        other => panic!("field 54 sign {other:?}: {f54}"),
    }
}
