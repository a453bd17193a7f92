//! SCRATCH (review): to be deleted.
#![allow(dead_code, clippy::all)]

use rusqlite::Connection;

use poskit_codec::frame::{self, Header, Tpdu};
use poskit_codec::{CUP_POS, MessageBuilder, Mti};
use poskit_domain::TransactionKind;
use poskit_domain::message::CardData;
use poskit_host::clock::HostTime;
use poskit_host::config::HostConfig;
use poskit_host::engine::{self, EngineConfig, Injected, Input, IssuerVerdict};
use poskit_host::pinhash::PinHasher;
use poskit_host::store::sqlite::SqliteLedger;
use poskit_host::{DataDir, demo, run};
use poskit_security::{Pin, SecretKey};
use poskit_terminal::engine::{
    Command, Config, Effect, Event, Outcome, Terminal, TxnState,
};
use poskit_terminal::journal::Journal;

const MID: &str = "898310048160001";

struct World {
    _host_dir: tempfile::TempDir,
    _term_dir: tempfile::TempDir,
    host: Connection,
    pins: PinHasher,
    journal: Journal,
    now_ms: i64,
}

enum Fate {
    Deliver,
    LoseRequest,
    LoseAnswer,
    /// The host processes it; the answer is rewritten.
    Rewrite(Vec<(u8, Option<Vec<u8>>)>),
    /// Never reaches the host; a forged answer comes back.
    Forge(Vec<(u8, Option<Vec<u8>>)>),
    /// The host's storage fails: 96.
    Storage,
}

fn host_answer(w: &mut World, frame: &[u8], injected: Option<Injected>) -> Option<Vec<u8>> {
    let tx = w.host.transaction().unwrap();
    let input = Input {
        frame,
        now: HostTime::now(480, 0),
        issuer: IssuerVerdict::Reachable,
        injected,
    };
    let answer = {
        let mut ledger = SqliteLedger::new(&tx);
        engine::process(&mut ledger, &EngineConfig::default(), &w.pins, &input)
    };
    match answer {
        Ok(a) => {
            tx.commit().unwrap();
            a.frame
        }
        Err(e) => {
            drop(tx);
            engine::storage_failure_answer(&input, &e).frame
        }
    }
}

/// Rebuilds `frame` (request or answer) with fields changed; `mti` to change the MTI.
fn rewrite(frame: &[u8], mti: Option<&str>, changes: &[(u8, Option<Vec<u8>>)]) -> Vec<u8> {
    let f = frame::decode_frame(&CUP_POS, frame).unwrap();
    let m = &f.message;
    let mut values: Vec<(u8, Vec<u8>)> = Vec::new();
    for field in m.fields() {
        let n = field.number();
        let v = if field.spec().charset.as_str() == "b" {
            let mut out = Vec::new();
            field.write_bytes(&mut out);
            out
        } else {
            field.to_text().into_bytes()
        };
        values.push((n, v));
    }
    for (n, c) in changes {
        values.retain(|(k, _)| k != n);
        if let Some(v) = c {
            values.push((*n, v.clone()));
        }
    }
    values.sort_by_key(|(n, _)| *n);
    let mti = mti.map(|t| Mti::parse(t).unwrap()).unwrap_or(m.mti());
    let mut b = MessageBuilder::new(&CUP_POS, mti);
    for (n, v) in &values {
        b.set(*n, v).unwrap();
    }
    let mut out = Vec::new();
    let tpdu: Tpdu = f.tpdu;
    let header: Header = f.header;
    frame::encode_frame_into(&tpdu, &header, &b, &mut out);
    out
}

fn world() -> World {
    let host_dir = tempfile::tempdir().unwrap();
    let dir = DataDir::create(host_dir.path()).unwrap();
    run::load_demo(&dir, &HostConfig::default()).unwrap();
    let host = dir.open_store().unwrap();
    let pins = dir.pin_hasher().unwrap();
    let term_dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        tid: demo::fleet_tid(0),
        mid: MID.into(),
        tmk: SecretKey::from_hex(demo::DEMO_TMK).unwrap(),
        response_timeout_ms: 1000,
        reversal_attempts_max: 3,
        fail_after_approval: false,
    };
    let journal = Journal::init(term_dir.path(), &cfg, "sim").unwrap();
    World {
        _host_dir: host_dir,
        _term_dir: term_dir,
        host,
        pins,
        journal,
        now_ms: 1,
    }
}

fn operate(w: &mut World, command: Command, fates: &mut Vec<Fate>) -> Outcome {
    let (cfg, _) = w.journal.config().unwrap();
    let mut t = Terminal::new(cfg, w.journal.snapshot().unwrap());
    let mut effects = t.handle(w.now_ms, Event::Command(command));
    let mut guard = 0;
    loop {
        guard += 1;
        assert!(guard < 200, "the engine does not settle");
        let mut next = None;
        let mut timer = None;
        for effect in effects.drain(..) {
            match effect {
                Effect::Journal(ops) => w.journal.apply(&ops, w.now_ms).unwrap(),
                Effect::Send(frame) => {
                    let fate = if fates.is_empty() { Fate::Deliver } else { fates.remove(0) };
                    let req = frame::decode_frame(&CUP_POS, &frame).unwrap();
                    eprintln!("  -> {} 11={:?}", req.message.mti(), req.message.field(11).map(|f| f.to_text()));
                    next = match fate {
                        Fate::Deliver => host_answer(w, &frame, None).map(Event::Response),
                        Fate::LoseRequest => None,
                        Fate::LoseAnswer => {
                            host_answer(w, &frame, None);
                            None
                        }
                        Fate::Rewrite(ch) => host_answer(w, &frame, None)
                            .map(|a| Event::Response(rewrite(&a, None, &ch))),
                        Fate::Forge(ch) => {
                            let resp = Mti(req.message.mti().0).response();
                            Some(Event::Response(rewrite(&frame, Some(resp.as_str()), &ch)))
                        }
                        Fate::Storage => {
                            host_answer(w, &frame, Some(Injected::StorageError)).map(Event::Response)
                        }
                    };
                    if let Some(Event::Response(a)) = &next {
                        let d = frame::decode_frame(&CUP_POS, a).unwrap();
                        eprintln!("  <- {} 39={:?}", d.message.mti(), d.message.field(39).map(|f| f.to_text()));
                    }
                }
                Effect::Timer { token, .. } => timer = Some(token),
                Effect::Done(o) => return *o,
            }
        }
        w.now_ms += 10;
        let event = next.unwrap_or_else(|| Event::Timeout {
            token: timer.expect("a request in flight has a timer"),
        });
        effects = t.handle(w.now_ms, event);
    }
}

fn balance(w: &World, pan: &str) -> i64 {
    w.host
        .query_row(
            "SELECT a.balance_fen FROM cards c JOIN accounts a ON a.id = c.account WHERE c.pan = ?1",
            [pan],
            |r| r.get(0),
        )
        .unwrap()
}

fn card() -> (String, CardData) {
    let pan = demo::fleet_pan(0);
    (pan.clone(), CardData::Track2(format!("{pan}=30121010000000000")))
}

fn sale(c: &CardData, amount_fen: u64) -> Command {
    Command::Sale { card: c.clone(), amount_fen, pin: Some(Pin::new(demo::DEMO_PIN).unwrap()) }
}

fn signed_in() -> World {
    let mut w = world();
    let o = operate(&mut w, Command::SignIn, &mut vec![]);
    assert!(o.approved, "{o:?}");
    w
}

fn dump(w: &World) {
    for t in w.journal.txns(None).unwrap() {
        eprintln!("  txn {} {:?} b{} s{} {:?} code={:?} {:?} rev={:?}", t.id, t.kind, t.batch, t.stan, t.amount_fen, t.code, t.state, t.reversal);
    }
    let s = w.journal.snapshot().unwrap();
    eprintln!("  pending reversal: {:?}", s.reversal.map(|r| (r.stan, r.reason, r.attempts)));
    eprintln!("  advices: {:?}", s.advices.iter().map(|a| (a.stan, a.batch, a.attempts)).collect::<Vec<_>>());
}

// 1. A completion with a 5-character auth code bricks the terminal.
#[test]
fn s1_bad_auth_code_poisons_the_reversal() {
    let mut w = signed_in();
    let (_, c) = card();
    let o = operate(
        &mut w,
        Command::Complete { card: c.clone(), amount_fen: 100, auth_code: "12345".into(), date: "0101".into() },
        &mut vec![],
    );
    eprintln!("complete: {} {:?}", o.code, o.notes);
    dump(&w);
    for i in 0..5 {
        let o = operate(&mut w, sale(&c, 100), &mut vec![]);
        eprintln!("sale {i}: approved={} {} {:?}", o.approved, o.code, o.notes);
    }
    dump(&w);
}

// 1b. A refund with a bad RRN (engine API) poisons the advice queue.
#[test]
fn s1b_bad_advice_poisons_the_queue() {
    let mut w = signed_in();
    let (_, c) = card();
    let o = operate(
        &mut w,
        Command::Refund { card: c.clone(), amount_fen: 100, rrn: "123".into(), date: "0101".into() },
        &mut vec![],
    );
    eprintln!("refund: {} {:?}", o.code, o.notes);
    for i in 0..3 {
        let o = operate(&mut w, sale(&c, 100), &mut vec![]);
        eprintln!("sale {i}: approved={} {} {:?}", o.approved, o.code, o.notes);
    }
    dump(&w);
}

// 2. An answer without field 39 clears the reversal of an approved sale.
#[test]
fn s2_answer_without_39() {
    let mut w = signed_in();
    let (pan, c) = card();
    let before = balance(&w, &pan);
    let o = operate(&mut w, sale(&c, 1234), &mut vec![Fate::Rewrite(vec![(39, None)])]);
    eprintln!("sale: approved={} code={:?} reversal={:?}", o.approved, o.code, o.reversal);
    dump(&w);
    let _ = operate(&mut w, Command::Echo, &mut vec![]);
    let o = operate(&mut w, Command::Balance { card: c.clone(), pin: Some(Pin::new(demo::DEMO_PIN).unwrap()) }, &mut vec![]);
    eprintln!("balance op: {} ; debit standing: {}", o.code, before - balance(&w, &pan));
}

// 3. An approval with defect (A2 / 10) is taken as a decline and its reversal dropped.
#[test]
fn s3_approved_with_defect() {
    let mut w = signed_in();
    let (pan, c) = card();
    let before = balance(&w, &pan);
    let o = operate(&mut w, sale(&c, 555), &mut vec![Fate::Rewrite(vec![(39, Some(b"A2".to_vec()))])]);
    eprintln!("sale: approved={} code={:?} reversal={:?}", o.approved, o.code, o.reversal);
    dump(&w);
    let o = operate(&mut w, Command::Balance { card: c.clone(), pin: Some(Pin::new(demo::DEMO_PIN).unwrap()) }, &mut vec![]);
    eprintln!("balance op: {} ; debit standing: {}", o.code, before - balance(&w, &pan));
}

// 4. A forged 0410 "00" with a bad MAC is accepted: the reversal is marked done.
#[test]
fn s4_forged_reversal_answer() {
    let mut w = signed_in();
    let (pan, c) = card();
    let before = balance(&w, &pan);
    let o = operate(
        &mut w,
        sale(&c, 777),
        &mut vec![
            Fate::LoseAnswer,
            Fate::Forge(vec![(39, Some(b"00".to_vec())), (64, Some(b"BADBADBA".to_vec())), (52, None), (53, None), (35, None), (22, None), (26, None)]),
        ],
    );
    eprintln!("sale: approved={} code={:?} reversal={:?} {:?}", o.approved, o.code, o.reversal, o.notes);
    dump(&w);
    eprintln!("debit standing: {}", before - balance(&w, &pan));
}

// 5. A refund still queued when a settlement closes its batch is dropped with 77 later.
#[test]
fn s5_advice_outlived_by_settlement() {
    let mut w = signed_in();
    let (pan, c) = card();
    let o = operate(&mut w, sale(&c, 1000), &mut vec![]);
    assert!(o.approved);
    let t = o.txn.unwrap();
    let s = w.journal.settle_command().unwrap();
    let o = operate(&mut w, s, &mut vec![]);
    eprintln!("settle 1: {} {:?}", o.code, o.notes);
    let before = balance(&w, &pan);
    let o = operate(
        &mut w,
        Command::Refund { card: c.clone(), amount_fen: 1000, rrn: t.rrn.clone().unwrap(), date: t.host_date.clone().unwrap() },
        &mut vec![Fate::LoseRequest],
    );
    eprintln!("refund: {} {:?}", o.code, o.notes);
    let s = w.journal.settle_command().unwrap();
    let o = operate(&mut w, s, &mut vec![Fate::LoseRequest]);
    eprintln!("settle 2: approved={} {} {:?}", o.approved, o.code, o.notes);
    dump(&w);
    let o = operate(&mut w, Command::Balance { card: c.clone(), pin: Some(Pin::new(demo::DEMO_PIN).unwrap()) }, &mut vec![]);
    eprintln!("balance op: {} {:?}", o.code, o.notes);
    dump(&w);
    eprintln!("refunded to the card: {}", balance(&w, &pan) - before);
}

// 6. A refund answered 96 (host storage failure, nothing posted) is dropped as declined.
#[test]
fn s6_advice_dropped_on_96() {
    let mut w = signed_in();
    let (pan, c) = card();
    let o = operate(&mut w, sale(&c, 1000), &mut vec![]);
    let t = o.txn.unwrap();
    let s = w.journal.settle_command().unwrap();
    let _ = operate(&mut w, s, &mut vec![]);
    let before = balance(&w, &pan);
    let o = operate(
        &mut w,
        Command::Refund { card: c.clone(), amount_fen: 1000, rrn: t.rrn.clone().unwrap(), date: t.host_date.clone().unwrap() },
        &mut vec![Fate::LoseRequest],
    );
    eprintln!("refund: {} {:?}", o.code, o.notes);
    let o = operate(&mut w, Command::Balance { card: c.clone(), pin: Some(Pin::new(demo::DEMO_PIN).unwrap()) }, &mut vec![Fate::Storage]);
    eprintln!("balance op: {} {:?}", o.code, o.notes);
    dump(&w);
    eprintln!("refunded to the card: {}", balance(&w, &pan) - before);
}

// 7. The sale outcome is replaced by the sign-in's when the A0 sign-in fails.
#[test]
fn s7_mac_bad_then_sign_in_lost() {
    let mut w = signed_in();
    let (_, c) = card();
    let o = operate(&mut w, sale(&c, 321), &mut vec![Fate::Rewrite(vec![(64, Some(b"BADBADBA".to_vec()))]), Fate::LoseRequest]);
    eprintln!("sale: op={} approved={} code={:?} reversal={:?} txn={:?} {:?}", o.operation, o.approved, o.code, o.reversal, o.txn.map(|t| t.stan), o.notes);
    dump(&w);
}

// 8. A reversal given up in its own operation: outcome txn still says pending.
#[test]
fn s8_give_up_txn_field() {
    let mut w = signed_in();
    let (_, c) = card();
    let o = operate(&mut w, sale(&c, 321), &mut vec![Fate::LoseAnswer, Fate::Storage, Fate::Storage, Fate::Storage]);
    eprintln!("sale: code={:?} reversal={:?} txn.reversal={:?} {:?}", o.code, o.reversal, o.txn.map(|t| t.reversal), o.notes);
    let o = operate(&mut w, sale(&c, 321), &mut vec![Fate::Storage, Fate::Storage]);
    eprintln!("sale2: code={:?} reversal={:?} {:?}", o.code, o.reversal, o.notes);
    let o = operate(&mut w, sale(&c, 321), &mut vec![Fate::Storage]);
    eprintln!("sale3: code={:?} reversal={:?} {:?}", o.code, o.reversal, o.notes);
    dump(&w);
}

// 9. Balance inquiry with a bad approval MAC claims a pending reversal that does not exist.
#[test]
fn s9_balance_mac_bad() {
    let mut w = signed_in();
    let (_, c) = card();
    let o = operate(&mut w, Command::Balance { card: c.clone(), pin: Some(Pin::new(demo::DEMO_PIN).unwrap()) }, &mut vec![Fate::Rewrite(vec![(64, Some(b"BADBADBA".to_vec()))])]);
    eprintln!("balance: code={:?} reversal={:?} {:?}", o.code, o.reversal, o.notes);
    dump(&w);
}

#[allow(unused)]
fn _k() -> TransactionKind { TransactionKind::Sale }
#[allow(unused)]
fn _s() -> TxnState { TxnState::Sent }
