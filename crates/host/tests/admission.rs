//! Issue 17: connection admission on loopback. Idle and junk sockets cannot keep a real
//! terminal out; nothing waits in the backlog; a flood past its address's budget is held
//! (the tarpit), bounded, while a terminal behind the same address is served. Bounded in
//! time and count.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use poskit_host::client::RequestSpec;
use poskit_host::config::{HostConfig, Limits};
use support::*;

/// Idle sockets opened, and junk-sending ones among them.
const IDLE_SOCKETS: usize = 2_000;
const JUNK_EVERY: usize = 10;

#[test]
fn two_thousand_idle_and_junk_sockets_do_not_keep_a_real_terminal_out() {
    let host = TestHost::start_with(HostConfig {
        limits: Limits {
            connections_max: 1_024,
            unproven_per_address_max: 512,
            ..Limits::default()
        },
        ..HostConfig::default()
    });
    let rows = host.rows();
    let mut sockets = Vec::with_capacity(IDLE_SOCKETS);
    for i in 0..IDLE_SOCKETS {
        let mut s = TcpStream::connect(&host.addr).unwrap();
        if i % JUNK_EVERY == 0 {
            let _ = s.write_all(&[0, 11, 0x60, 0, 3, 0, 0, 0x60, 0x31, 0, 0x31, 0, 0]);
        }
        sockets.push(s);
    }
    let s = fleet(5);
    let started = Instant::now();
    let mut t = host.signed_in(&s);
    let r = t.send(&sale(&s, 1_000)).unwrap();
    let latency = started.elapsed();
    assert_code(&host, &r, "00");
    assert!(
        latency < Duration::from_secs(2),
        "sign-in and sale took {latency:?}"
    );
    assert_eq!(host.rows(), rows + 2, "the junk left no row");
    drop(sockets);
    host.assert_balanced();
}

#[test]
fn with_every_slot_proven_a_new_connection_is_closed_at_once_not_left_in_the_backlog() {
    let host = TestHost::start_with(HostConfig {
        limits: Limits {
            connections_max: 2,
            ..Limits::default()
        },
        ..HostConfig::default()
    });
    let _a = host.signed_in(&fleet(6));
    let _b = host.signed_in(&fleet(7));
    let mut third = TcpStream::connect(&host.addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = third.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed by the host");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn an_unproven_connection_is_closed_at_the_first_frame_timeout() {
    let host = TestHost::start_with(HostConfig {
        limits: Limits {
            first_frame_timeout_ms: 1_000,
            ..Limits::default()
        },
        ..HostConfig::default()
    });
    let mut idle = TcpStream::connect(&host.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let n = idle.read(&mut [0u8; 16]).unwrap_or(0);
    assert_eq!(n, 0);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // A proven one stays past it.
    let s = fleet(8);
    let mut t = host.signed_in(&s);
    std::thread::sleep(Duration::from_millis(1_500));
    assert_code(&host, &t.send(&sale(&s, 100)).unwrap(), "00");
}

/// A frame the host cannot read but answers (30): length, TPDU, header, a sale's MTI, a
/// bitmap whose fields are missing.
const JUNK: [u8; 23] = [
    0x00, 0x15, 0x60, 0x00, 0x03, 0x00, 0x00, 0x60, 0x31, 0x00, 0x31, 0x00, 0x00, 0x02, 0x00, b'J',
    b'U', b'N', b'K', b'!', b'!', b'!', b'!',
];
/// Attacking connections at once, as in issue 17.
const ATTACKERS: usize = 4;

/// What a flood's attackers got: connections, and answers to their junk.
#[derive(Default)]
struct Tally {
    connections: AtomicU64,
    answers: AtomicU64,
}

/// The flood of issue 17 from 127.0.0.1 until `stop`: each attacker sends junk, reads the
/// answer, sends again, and connects again whenever the host closes the connection.
fn flood(addr: &str, stop: &AtomicBool, tally: &Tally) {
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(addr) else {
            continue;
        };
        tally.connections.fetch_add(1, Ordering::Relaxed);
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        'frames: while s.write_all(&JUNK).is_ok() {
            while !stop.load(Ordering::Relaxed) {
                match s.read(&mut buf) {
                    Ok(0) => break 'frames,
                    Ok(_) => {
                        tally.answers.fetch_add(1, Ordering::Relaxed);
                        continue 'frames;
                    }
                    Err(e)
                        if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    }
                    Err(_) => break 'frames,
                }
            }
            break;
        }
    }
}

/// Runs `during` while [`ATTACKERS`] flood the host, for `flood_ms` at least; what the
/// attackers got, and what `during` answered.
fn under_flood<T>(host: &TestHost, flood_ms: u64, during: impl FnOnce() -> T) -> (Tally, T) {
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|_| {
            let (addr, stop, tally) = (host.addr.clone(), stop.clone(), tally.clone());
            std::thread::spawn(move || flood(&addr, &stop, &tally))
        })
        .collect();
    let started = Instant::now();
    let out = during();
    let left = Duration::from_millis(flood_ms).saturating_sub(started.elapsed());
    std::thread::sleep(left);
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.join().unwrap();
    }
    let tally = Arc::try_unwrap(tally).unwrap_or_else(|_| unreachable!("attackers joined"));
    (tally, out)
}

fn tarpit_limits(tarpit_hold_ms: u64) -> HostConfig {
    HostConfig {
        limits: Limits {
            bad_frames_per_address_per_minute_max: 20,
            tarpit_hold_ms,
            ..Limits::default()
        },
        ..HostConfig::default()
    }
}

#[test]
fn a_terminal_behind_an_address_being_tarpitted_signs_in_and_sells_as_usual() {
    const FLOOD_MS: u64 = 1_500;
    let host = TestHost::start_with(tarpit_limits(3_000));
    let rows = host.rows();
    let s = fleet(9);
    let (tally, latencies) = under_flood(&host, FLOOD_MS, || {
        // The address's budget (20 bad frames) is spent within milliseconds.
        std::thread::sleep(Duration::from_millis(300));
        // New connections from the flood's address (127.0.0.1): sign-in and a sale, then a
        // sale on a connection of its own (a terminal that dials for each transaction).
        let started = Instant::now();
        let mut t = host.signed_in(&s);
        assert_code(&host, &t.send(&sale(&s, 1_000)).unwrap(), "00");
        let first = started.elapsed();
        let started = Instant::now();
        t.reconnect(&host.addr, Duration::from_secs(10)).unwrap();
        assert_code(&host, &t.send(&sale(&s, 2_000)).unwrap(), "00");
        (first, started.elapsed())
    });
    let (connections, answers) = (tally.connections.into_inner(), tally.answers.into_inner());
    eprintln!("tarpit: {connections} junk connections, {answers} answers; terminal {latencies:?}");
    assert!(
        latencies.0 < Duration::from_secs(2) && latencies.1 < Duration::from_secs(2),
        "sign-in and sale, then a sale: {latencies:?}"
    );
    assert!(
        answers >= 20,
        "the flood spent its budget: {answers} answers"
    );
    // Held, the four attackers get a few connections each, not one per frame.
    assert!(
        connections < 100,
        "{connections} junk connections in {FLOOD_MS} ms"
    );
    assert_eq!(host.rows(), rows + 3, "the junk left no row");
    host.assert_balanced();
    // Control: without the tarpit the same flood gets a connection per frame.
    let open = TestHost::start_with(tarpit_limits(0));
    let (tally, ()) = under_flood(&open, FLOOD_MS, || ());
    let untarpitted = tally.connections.into_inner();
    assert!(
        untarpitted > 4 * connections.max(25),
        "without the tarpit: {untarpitted} connections, with it: {connections}"
    );
}

/// Connects from `source` (a loopback address), sends junk and reads its answer (30).
fn held_connection(addr: &str, source: [u8; 4]) -> (TcpStream, Instant) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .unwrap();
    let stream = runtime
        .block_on(socket.connect(addr.parse().unwrap()))
        .unwrap()
        .into_std()
        .unwrap();
    stream.set_nonblocking(false).unwrap();
    let mut s = stream;
    s.write_all(&JUNK).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut prefix = [0u8; 2];
    s.read_exact(&mut prefix).unwrap();
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    s.read_exact(&mut answer).unwrap();
    (s, Instant::now())
}

/// Whether the host has closed `s` (within `wait`).
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    match s.read(&mut [0u8; 16]) {
        Ok(0) => true,
        Ok(n) => panic!("a held connection was answered again ({n} bytes)"),
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// Which of `sockets` are still open, once those the host closes at once had the time to.
fn open(sockets: &mut [(TcpStream, Instant)]) -> Vec<bool> {
    std::thread::sleep(Duration::from_millis(300));
    sockets
        .iter_mut()
        .map(|(s, _)| !closed_within(s, Duration::from_millis(1)))
        .collect()
}

#[test]
fn held_connections_stay_bounded_per_address_and_globally_and_close_after_the_hold() {
    const HOLD_MS: u64 = 3_000;
    let host = TestHost::start_with(HostConfig {
        limits: Limits {
            connections_max: 10,
            unproven_per_address_max: 4,
            // No budget: every junk connection is held at its first frame.
            bad_frames_per_address_per_minute_max: 0,
            tarpit_hold_ms: HOLD_MS,
            ..Limits::default()
        },
        ..HostConfig::default()
    });
    let started = Instant::now();
    // Seven from one address: its bound (4) evicts the three oldest.
    let mut first: Vec<_> = (0..7)
        .map(|_| held_connection(&host.addr, [127, 0, 0, 1]))
        .collect();
    assert_eq!(
        open(&mut first),
        [false, false, false, true, true, true, true]
    );
    // Eight more from two others: the global bound (10) evicts the oldest held ones.
    let mut others: Vec<_> = (0..8)
        .map(|i| held_connection(&host.addr, [127, 0, 0, 2 + (i % 2) as u8]))
        .collect();
    assert_eq!(open(&mut first[3..]), [false, false, true, true]);
    assert_eq!(open(&mut others), [true; 8]);
    assert!(
        started.elapsed() < Duration::from_millis(HOLD_MS * 9 / 10),
        "the checks above ran within the hold"
    );
    // The rest are closed once held for the hold, and not much before.
    for (s, answered) in first[5..].iter_mut().chain(others.iter_mut()) {
        assert!(closed_within(s, Duration::from_millis(HOLD_MS + 3_000)));
        let held = answered.elapsed();
        assert!(
            held >= Duration::from_millis(HOLD_MS * 9 / 10),
            "closed after {held:?}"
        );
    }
}

#[test]
fn a_terminal_whose_request_waits_for_its_issuer_is_not_evicted_by_its_address_flooding() {
    const ISSUER_TIMEOUT_MS: u64 = 1_500;
    let host = TestHost::start_with(HostConfig {
        limits: Limits {
            unproven_per_address_max: 4,
            issuer_timeout_ms: ISSUER_TIMEOUT_MS,
            ..Limits::default()
        },
        ..HostConfig::default()
    });
    // A card whose issuer is slower than the host waits: the request is held before the
    // writer for the issuer timeout, then answered 98.
    let s = scenario("issuer_timeout");
    let mut t = host.signed_in(&s);
    // A connection of its own (unproven until now), from the address that floods next.
    t.reconnect(&host.addr, Duration::from_secs(10)).unwrap();
    let addr = host.addr.clone();
    let flood = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(ISSUER_TIMEOUT_MS / 3));
        // Twice the address's bound of unproven connections, while the sale waits.
        (0..8)
            .map(|_| TcpStream::connect(&addr).unwrap())
            .collect::<Vec<_>>()
    });
    let started = Instant::now();
    let answer = t.send(&sale(&s, 100));
    let idle = flood.join().unwrap();
    let r = answer.expect("the terminal's connection was closed while its sale waited");
    assert_code(&host, &r, "98");
    assert!(started.elapsed() >= Duration::from_millis(ISSUER_TIMEOUT_MS));
    // Its MAC proved the connection when it was read: it was not evicted (an evicted one
    // answers what it read, then closes), and serves the terminal's next request.
    let mut echo = RequestSpec::new(poskit_domain::TransactionKind::Echo);
    echo.network_code = Some("301".into());
    let r = t.send(&echo).expect("the connection stays open");
    assert_code(&host, &r, "00");
    drop(idle);
    host.assert_balanced();
}
