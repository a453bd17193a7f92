//! The world terminal tests run in: the real host engine on a fresh data directory with the
//! demo data (in process, no sockets) and one terminal's journal on disk.
#![allow(dead_code)]

use rusqlite::Connection;

use poskit_host::clock::HostTime;
use poskit_host::config::HostConfig;
use poskit_host::engine::{self, EngineConfig, Input, IssuerVerdict};
use poskit_host::store::atrest::AtRest;
use poskit_host::store::sqlite::SqliteLedger;
use poskit_host::{DataDir, demo, run};
use poskit_security::SecretKey;
use poskit_terminal::engine::Config;
use poskit_terminal::journal::Journal;

/// The demo fleet's merchant.
pub const MID: &str = "898310048160001";
/// The terminal's answer timeout.
pub const TIMEOUT_MS: u64 = 1000;

pub struct World {
    _host_dir: tempfile::TempDir,
    _term_dir: tempfile::TempDir,
    pub host: Connection,
    pub keys: std::sync::Arc<AtRest>,
    pub journal: Journal,
    pub now_ms: i64,
}

/// A host with the demo data and fleet terminal 0's journal, giving up a reversal after
/// `reversal_attempts_max` attempts.
pub fn world(reversal_attempts_max: u32) -> World {
    let host_dir = tempfile::tempdir().unwrap();
    let dir = DataDir::create(host_dir.path()).unwrap();
    run::load_demo(&dir, &HostConfig::default()).unwrap();
    let (host, keys) = dir.open_keys().unwrap();
    let term_dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        tid: demo::fleet_tid(0),
        mid: MID.into(),
        tmk: SecretKey::from_hex(demo::DEMO_TMK).unwrap(),
        response_timeout_ms: TIMEOUT_MS,
        reversal_attempts_max,
        fail_after_approval: false,
    };
    let kek = poskit_keystore::KekSource::resolve(None, term_dir.path());
    let journal = Journal::init(term_dir.path(), &kek, &cfg, "test").unwrap();
    World {
        _host_dir: host_dir,
        _term_dir: term_dir,
        host,
        keys,
        journal,
        now_ms: 1,
    }
}

/// The host engine's answer to `frame`, committed (`None`: the host does not answer).
pub fn host_answer(w: &mut World, frame: &[u8]) -> Option<Vec<u8>> {
    let tx = w.host.transaction().unwrap();
    let answer = {
        let mut ledger = SqliteLedger::new(&tx).with_keys(&w.keys);
        let input = Input {
            frame,
            now: HostTime::now(480, 0),
            issuer: IssuerVerdict::Reachable,
            injected: None,
            parsed: None,
            precheck: None,
            mac_later: false,
            divergence: Default::default(),
        };
        engine::process(&mut ledger, &EngineConfig::default(), w.keys.pins(), &input).unwrap()
    };
    tx.commit().unwrap();
    answer.frame
}

/// The balance of a card's account, in fen.
pub fn balance(w: &World, pan: &str) -> i64 {
    w.host
        .query_row(
            "SELECT a.balance_fen FROM cards c JOIN accounts a ON a.id = c.account WHERE c.pan_hash = pan_hash(?1)",
            [pan],
            |r| r.get(0),
        )
        .unwrap()
}
