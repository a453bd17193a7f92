//! Issue 17: connection admission on loopback. Idle and junk sockets cannot keep a real
//! terminal out; nothing waits in the backlog. Bounded in time and count.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

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
