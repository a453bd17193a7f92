//! `poskit host` as a process facing strangers: a second host on its data directory is
//! refused and named; junk from several connections costs no ledger row while a real
//! terminal is served; the ledger still balances.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use poskit_host::client::{CardData, RequestSpec, TestTerminal};
use poskit_host::demo;
use support::{HostProcess, MID, poskit};

/// Junk connections during the flood, and how long it lasts.
const JUNK_CONNECTIONS: usize = 4;
const FLOOD_MS: u64 = 2_000;

fn rows(host: &HostProcess) -> i64 {
    host.db()
        .query_row("SELECT count(*) FROM transactions", [], |r| r.get(0))
        .unwrap()
}

fn assert_balanced(host: &HostProcess) {
    let check = poskit(&["host", "check", "--data", host.data()]);
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{report}");
    assert!(report.starts_with("balanced"), "{report}");
}

#[test]
fn a_second_host_on_the_same_data_directory_is_refused_and_names_the_first() {
    let temp = tempfile::tempdir().unwrap();
    let host = HostProcess::start(temp.path(), &[]);
    let second = poskit(&["host", "--listen", "127.0.0.1:0", "--data", host.data()]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    let pid = host.child.id().to_string();
    assert!(stderr.contains(&format!("process {pid}")), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    // Commands that are not a second host work beside the running one.
    assert_balanced(&host);
    let shown = poskit(&["host", "faults", "--data", host.data(), "show"]);
    assert_eq!(shown.status.code(), Some(0));
    // Once the first host is gone, the directory is free again.
    host.stop();
    let again = HostProcess::start(temp.path(), &[]);
    assert_balanced(&again);
}

/// Frames that are not a CUP message: a length prefix and garbage, as fast as the host
/// takes them, reconnecting whenever it closes the connection.
fn flood(addr: &str, stop: &AtomicBool, sent: &AtomicU64) {
    let junk: Vec<u8> = [
        &[0x00, 0x0B][..],
        &[0x60, 0x00, 0x03, 0x00, 0x00],
        b"JUNK!!",
    ]
    .concat();
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(addr) else {
            continue;
        };
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            if s.write_all(&junk).is_err() {
                break;
            }
            sent.fetch_add(1, Ordering::Relaxed);
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

#[test]
fn junk_from_several_connections_leaves_no_row_and_a_real_terminal_is_served() {
    let temp = tempfile::tempdir().unwrap();
    let host = HostProcess::start(temp.path(), &[]);
    let rows_before = rows(&host);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooders: Vec<_> = (0..JUNK_CONNECTIONS)
        .map(|_| {
            let (addr, stop, sent) = (host.addr.clone(), stop.clone(), sent.clone());
            std::thread::spawn(move || flood(&addr, &stop, &sent))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(FLOOD_MS / 2));
    let mut t = TestTerminal::connect(
        &host.addr,
        &demo::fleet_tid(3),
        MID,
        demo::DEMO_TMK,
        Duration::from_secs(5),
    )
    .unwrap();
    let started = Instant::now();
    assert_eq!(t.sign_in().unwrap().code(), "00");
    let card = CardData::Manual {
        pan: demo::fleet_pan(3),
        expiry: "3012".into(),
    };
    let sale = t.send(&RequestSpec::sale(card, 1_234, Some(demo::DEMO_PIN)));
    assert_eq!(sale.unwrap().code(), "00");
    let served_ms = started.elapsed().as_millis();
    std::thread::sleep(Duration::from_millis(FLOOD_MS / 2));
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    let junk = sent.load(Ordering::Relaxed);
    eprintln!("{junk} junk frames; the terminal was served in {served_ms} ms");
    assert!(junk > 100, "the flood sent {junk} frames");
    assert!(served_ms < 2_000, "sign-in and sale took {served_ms} ms");
    // The terminal's sign-in and sale are the only new rows.
    assert_eq!(rows(&host), rows_before + 2, "junk became ledger rows");
    assert_balanced(&host);
}
