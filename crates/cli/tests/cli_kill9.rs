//! `poskit host` killed with SIGKILL under a pipelined load (4 terminals × 32 requests in
//! flight), restarted on the same data, and asked again: every request a terminal never
//! heard back about is sent again, with a sample of those it did hear about. A resent
//! request gets its first answer again, byte for byte; every request is on file at most
//! once by its idempotency key; every approval is posted as exactly one pair; the ledger
//! balances. (A process kill keeps what the OS was given; the loss of what was not synced
//! is the crash VFS's test, `crates/sim/tests/power_cut.rs`.)

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use poskit_domain::message::Response;
use poskit_host::client::{CardData, RequestSpec, TestTerminal};
use poskit_host::demo;

use support::{HostProcess, MID, poskit};

const TERMINALS: u32 = 4;
const IN_FLIGHT_MAX: usize = 32;
/// Of the requests answered before the kill, every n-th is sent again.
const RESEND_ANSWERED_EVERY: usize = 7;
const LOAD_MS: u64 = 1_500;

/// One terminal's requests: each frame by its trace, and the answers it heard.
struct Traffic {
    terminal: u32,
    sign_in: Response,
    sent: BTreeMap<u32, Vec<u8>>,
    answers: HashMap<u32, Response>,
}

fn connect(addr: &str, terminal: u32) -> TestTerminal {
    TestTerminal::connect(
        addr,
        &demo::fleet_tid(terminal),
        MID,
        demo::DEMO_TMK,
        Duration::from_secs(10),
    )
    .unwrap()
}

fn sale(terminal: u32, n: usize) -> RequestSpec {
    let card = CardData::Manual {
        pan: demo::fleet_pan(terminal),
        expiry: "3012".into(),
    };
    RequestSpec::sale(card, 100 + (n % 50) as u64, Some(demo::DEMO_PIN))
}

/// Sales with up to [`IN_FLIGHT_MAX`] in flight until the host goes away.
fn load(addr: &str, terminal: u32, stop: &AtomicBool) -> Traffic {
    let mut t = connect(addr, terminal);
    let sign_in = t.sign_in().unwrap();
    assert_eq!(sign_in.code(), "00");
    let mut traffic = Traffic {
        terminal,
        sign_in,
        sent: BTreeMap::new(),
        answers: HashMap::new(),
    };
    let mut in_flight = 0usize;
    loop {
        while in_flight < IN_FLIGHT_MAX && !stop.load(Ordering::Relaxed) {
            let (frame, stan) = t.build(&sale(terminal, traffic.sent.len())).unwrap();
            if t.send_raw(&frame).is_err() {
                return traffic;
            }
            assert!(traffic.sent.insert(stan, frame).is_none(), "traces unique");
            in_flight += 1;
        }
        if in_flight == 0 {
            return traffic;
        }
        let Ok(answer) = t.receive() else {
            return traffic; // the host is gone
        };
        let stan: u32 = answer.fields[&11].parse().unwrap();
        assert!(
            traffic.sent.contains_key(&stan),
            "an answer to a request sent"
        );
        assert!(
            traffic.answers.insert(stan, answer).is_none(),
            "one answer each"
        );
        in_flight -= 1;
    }
}

/// Sends requests again on a new connection with the terminal's keys; their answers by trace.
fn resend(addr: &str, traffic: &Traffic, stans: &[u32]) -> HashMap<u32, Response> {
    let mut t = connect(addr, traffic.terminal);
    t.adopt_sign_in(&traffic.sign_in).unwrap();
    let mut answers = HashMap::new();
    for chunk in stans.chunks(IN_FLIGHT_MAX) {
        for stan in chunk {
            t.send_raw(&traffic.sent[stan]).unwrap();
        }
        for _ in chunk {
            let answer = t.receive().unwrap();
            assert_eq!(answer.mac_ok, Some(true), "the answer's MAC verifies");
            let stan: u32 = answer.fields[&11].parse().unwrap();
            answers.insert(stan, answer);
        }
    }
    assert_eq!(answers.len(), stans.len(), "every resent request answered");
    answers
}

#[test]
fn after_kill_9_every_request_is_answered_once_and_a_resend_gets_its_first_answer() {
    let temp = tempfile::tempdir().unwrap();
    let host = HostProcess::start(temp.path(), &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..TERMINALS)
        .map(|terminal| {
            let (addr, stop) = (host.addr.clone(), stop.clone());
            std::thread::spawn(move || load(&addr, terminal, &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(LOAD_MS));
    host.stop(); // SIGKILL: no drain, no clean close
    stop.store(true, Ordering::Relaxed);
    let traffic: Vec<Traffic> = loaders.into_iter().map(|l| l.join().unwrap()).collect();
    let heard: usize = traffic.iter().map(|t| t.answers.len()).sum();
    let unanswered: usize = traffic.iter().map(|t| t.sent.len() - t.answers.len()).sum();
    eprintln!("{heard} answers heard before kill -9, {unanswered} requests unanswered");
    assert!(heard > 100, "only {heard} answers before the kill");
    assert!(unanswered > 0, "requests were in flight at the kill");

    let host = HostProcess::start(temp.path(), &[]);
    let mut approved: Vec<(String, u32)> = Vec::new();
    for t in &traffic {
        let mut again: Vec<u32> = t
            .sent
            .keys()
            .filter(|stan| !t.answers.contains_key(stan))
            .copied()
            .collect();
        let mut answered: Vec<u32> = t.answers.keys().copied().collect();
        answered.sort_unstable();
        again.extend(answered.iter().step_by(RESEND_ANSWERED_EVERY));
        let second = resend(&host.addr, t, &again);
        for (stan, answer) in &second {
            if let Some(first) = t.answers.get(stan) {
                assert_eq!(
                    answer.frame, first.frame,
                    "trace {stan}: the first answer again"
                );
            }
        }
        let all = t.answers.iter().chain(second.iter());
        for (stan, answer) in all {
            if answer.code() == "00" {
                approved.push((demo::fleet_tid(t.terminal), *stan));
            }
        }
    }
    host.stop();
    check_ledger(temp.path(), &traffic, &approved);
}

/// Every request sent is on file once by its idempotency key (a resend found its first
/// row), every approval posted as one pair, and the ledger balances.
fn check_ledger(dir: &Path, traffic: &[Traffic], approved: &[(String, u32)]) {
    let conn = rusqlite::Connection::open(dir.join("host.sqlite")).unwrap();
    let mut rows = conn
        .prepare(
            "SELECT count(*), max(code) FROM transactions
             WHERE tid = ?1 AND mid = ?2 AND stan = ?3 AND mti = '0200'",
        )
        .unwrap();
    for t in traffic {
        let tid = demo::fleet_tid(t.terminal);
        for stan in t.sent.keys() {
            let (count, code): (i64, Option<String>) = rows
                .query_row(rusqlite::params![tid, MID, stan], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            assert_eq!(count, 1, "{tid} trace {stan}: on file once ({code:?})");
        }
    }
    let mut pairs = conn
        .prepare(
            "SELECT t.code, (SELECT count(*) FROM postings p WHERE p.txn_id = t.id)
             FROM transactions t WHERE t.tid = ?1 AND t.mid = ?2 AND t.stan = ?3 AND t.mti = '0200'",
        )
        .unwrap();
    for (tid, stan) in approved {
        let (code, postings): (String, i64) = pairs
            .query_row(rusqlite::params![tid, MID, stan], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((code.as_str(), postings), ("00", 2), "{tid} trace {stan}");
    }
    let check = poskit(&["host", "check", "--data", dir.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{report}");
    assert!(report.starts_with("balanced"), "{report}");
}
