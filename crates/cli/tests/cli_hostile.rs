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

/// Connections of a fleet coming back at once (after a host restart or a network outage).
const FLEET_CONNECTIONS: usize = 10_000;
/// Source addresses they come from (127.0.0.1 to 127.0.0.16): a store's terminals behind
/// a few NAT gateways, each under the host's unproven-connections-per-address limit.
const FLEET_SOURCE_ADDRESSES: usize = 16;
const FLEET_WAIT_MS: u64 = 60_000;

/// What the test process may open: the soft limit on file descriptors, as a child shell
/// inherits it.
fn descriptors_max() -> usize {
    let out = std::process::Command::new("sh")
        .args(["-c", "ulimit -n"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().unwrap_or(usize::MAX)
}

/// An echo test (0820, no MAC) of each fleet terminal in turn, a new trace each.
fn echo_frames(count: usize) -> Vec<Vec<u8>> {
    let mut terminals: Vec<TestTerminal> = (0..demo::FLEET_TERMINALS)
        .map(|i| TestTerminal::offline(&demo::fleet_tid(i), MID, demo::DEMO_TMK).unwrap())
        .collect();
    let mut echo = RequestSpec::new(poskit_domain::TransactionKind::Echo);
    echo.network_code = Some("301".into()); // 60.3: echo test
    (0..count)
        .map(|i| {
            let fleet = terminals.len();
            let t = &mut terminals[i % fleet];
            t.build(&echo).unwrap().0
        })
        .collect()
}

/// Connects from `source`, sends `frame`, reads the answer's code.
async fn reconnect(
    host: std::net::SocketAddr,
    source: std::net::IpAddr,
    frame: &[u8],
) -> std::io::Result<(tokio::net::TcpStream, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::new(source, 0))?;
    let mut stream = socket.connect(host).await?;
    stream.write_all(frame).await?;
    let mut prefix = [0u8; 2];
    stream.read_exact(&mut prefix).await?;
    let mut answer = prefix.to_vec();
    answer.resize(2 + usize::from(u16::from_be_bytes(prefix)), 0);
    stream.read_exact(&mut answer[2..]).await?;
    let parsed =
        poskit_domain::message::parse_response(answer, None, poskit_security::MacAlgorithm::CupEcb)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok((stream, parsed.code().to_owned()))
}

/// Every connection at once; each holds its socket open until all have answered (or
/// failed), so that they were all in at the same time. The code each got.
async fn fleet(addr: std::net::SocketAddr, frames: Vec<Vec<u8>>) -> Vec<String> {
    let count = frames.len();
    let finished = Arc::new(AtomicU64::new(0));
    let (release, wait) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = frames
        .into_iter()
        .enumerate()
        .map(|(i, frame)| {
            let source = [127, 0, 0, 1 + (i % FLEET_SOURCE_ADDRESSES) as u8];
            let (finished, mut wait) = (finished.clone(), wait.clone());
            tokio::spawn(async move {
                let got = reconnect(addr, source.into(), &frame).await;
                finished.fetch_add(1, Ordering::Relaxed);
                let _ = wait.wait_for(|go| *go).await;
                match got {
                    Ok((_stream, code)) => code,
                    Err(e) => format!("error: {e}"),
                }
            })
        })
        .collect();
    let started = Instant::now();
    while finished.load(Ordering::Relaxed) < count as u64 {
        assert!(
            started.elapsed() < Duration::from_millis(FLEET_WAIT_MS),
            "only {} of {count} connections answered within {FLEET_WAIT_MS} ms",
            finished.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "{count} connections in and answered in {} ms",
        started.elapsed().as_millis()
    );
    release.send(true).unwrap();
    let mut codes = Vec::with_capacity(count);
    for task in tasks {
        codes.push(task.await.unwrap());
    }
    codes
}

#[test]
fn a_fleet_reconnecting_at_once_all_gets_in() {
    // Each connection is one descriptor here and one in the host: leave room for the rest.
    let connections = FLEET_CONNECTIONS.min(descriptors_max().saturating_sub(256));
    assert!(
        connections >= 4_000,
        "the descriptor limit ({}) leaves room for only {connections} connections",
        descriptors_max()
    );
    let temp = tempfile::tempdir().unwrap();
    let host = HostProcess::start(temp.path(), &[]);
    let addr: std::net::SocketAddr = host.addr.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let codes = runtime.block_on(fleet(addr, echo_frames(connections)));
    let refused: Vec<&String> = codes.iter().filter(|c| c.as_str() != "00").collect();
    assert!(
        refused.is_empty(),
        "{} of {connections} connections did not get in, e.g. {:?}",
        refused.len(),
        refused.iter().take(5).collect::<Vec<_>>()
    );
    assert_balanced(&host);
}
