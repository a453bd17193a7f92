//! `poskit host` as an operator runs it: a real process on loopback (killed with SIGKILL
//! under load in `cli_kill9.rs`); its fault plan changed while it runs; its data imported and
//! checked from the command line.

mod support;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use poskit_domain::TransactionKind;
use poskit_host::client::{CardData, RequestSpec, TestTerminal};
use poskit_host::demo;
use support::{HostProcess, MID, poskit};

fn card(i: u32) -> CardData {
    CardData::Manual {
        pan: demo::fleet_pan(i),
        expiry: "3012".into(),
    }
}

/// Fleet terminal `i` signs in and sells with fleet card `i`: the host serves.
fn assert_sale_approved(addr: &str, i: u32) {
    let mut t = signed_in(addr, i, Duration::from_secs(5));
    let sale = t.send(&RequestSpec::sale(card(i), 100, Some(demo::DEMO_PIN)));
    assert_eq!(sale.unwrap().code(), "00");
}

/// Fleet terminal `i`, connected and signed in.
fn signed_in(addr: &str, i: u32, timeout: Duration) -> TestTerminal {
    let mut t =
        TestTerminal::connect(addr, &demo::fleet_tid(i), MID, demo::DEMO_TMK, timeout).unwrap();
    assert_eq!(t.sign_in().unwrap().code(), "00");
    t
}

#[test]
fn a_response_dropped_by_the_fault_plan_is_made_good_by_the_reversal() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().to_str().unwrap().to_owned();
    let host = HostProcess::start(temp.path(), &[]);
    let tid = demo::fleet_tid(20);
    let pan = demo::fleet_pan(20);
    let before = host.balance(&pan);
    host.set_faults(&format!(
        "[[rules]]\nname = \"lose the answer\"\ntid = \"{tid}\"\nkind = \"sale\"\nreversal = false\naction = \"drop\"\n"
    ));

    let mut t = signed_in(&host.addr, 20, Duration::from_millis(1500));
    let sale = RequestSpec::sale(card(20), 4321, Some(demo::DEMO_PIN));
    let (frame, stan) = t.build(&sale).unwrap();
    t.send_raw(&frame).unwrap();
    assert!(
        t.receive().is_err(),
        "the answer was dropped: the terminal times out"
    );
    // The host approved and posted; the customer is charged until the reversal.
    assert_eq!(host.balance(&pan), before - 4321);

    let mut t = signed_in(&host.addr, 20, Duration::from_secs(5));
    let reversal = t.send(&sale.reversal(stan, "98")).unwrap();
    assert_eq!(reversal.mti, "0410");
    assert_eq!(reversal.code(), "00");
    assert_eq!(
        host.balance(&pan),
        before,
        "the reversal gave the money back"
    );
    let again = t.send(&sale.reversal(stan, "98")).unwrap();
    assert_eq!(again.code(), "00");
    assert_eq!(
        host.balance(&pan),
        before,
        "a second reversal reverses nothing more"
    );

    host.clear_faults();
    host.stop();
    assert!(poskit(&["host", "check", "--data", &data]).status.success());
    let _ = TransactionKind::Sale;
}

#[test]
fn sigterm_drains_in_flight_requests_and_stops_the_host_cleanly() {
    let temp = tempfile::tempdir().unwrap();
    let tid = demo::fleet_tid(30);
    let config = temp.path().join("host.toml");
    std::fs::write(
        &config,
        format!("[faults]\n[[faults.rules]]\ntid = \"{tid}\"\nkind = \"sale\"\naction = \"delay\"\ndelay_ms = 800\n"),
    )
    .unwrap();
    let data = temp.path().join("data");
    let mut host = HostProcess::start(&data, &["--config", config.to_str().unwrap()]);
    let mut t = signed_in(&host.addr, 30, Duration::from_secs(5));
    let (frame, _) = t
        .build(&RequestSpec::sale(card(30), 100, Some(demo::DEMO_PIN)))
        .unwrap();
    t.send_raw(&frame).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = host.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // The sale was in flight (its answer delayed): it is still answered.
    let answer = t
        .receive()
        .expect("the in-flight sale is answered during the drain");
    assert_eq!(answer.code(), "00");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = host.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the host did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    // No new connection is taken once stopped.
    assert!(
        TestTerminal::connect(
            &host.addr,
            &tid,
            MID,
            demo::DEMO_TMK,
            Duration::from_secs(1)
        )
        .is_err()
    );
}

#[test]
fn import_loads_a_toml_data_file_and_check_reports_the_ledger() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let file = temp.path().join("campus.toml");
    std::fs::write(
        &file,
        r#"
[[institutions]]
code = "06010000"
name = "campus card office"
bins = ["990001"]

[[merchants]]
mid = "900000000000001"
name = "canteen"
mcc = "5812"

[[terminals]]
tid = "C0000001"
mid = "900000000000001"
tmk = "0123456789ABCDEFFEDCBA9876543210"

[[cards]]
pan = "9900010000000001"
expiry = "3012"
pin = "246810"
balance_fen = 5000
"#,
    )
    .unwrap();
    let out = poskit(&[
        "host",
        "import",
        file.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 new cards"), "{text}");
    let out = poskit(&["host", "check", "--data", data.to_str().unwrap(), "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["postings_sum_fen"], 0);
    assert_eq!(
        report["postings"], 2,
        "the opening balance is one balanced pair"
    );
    // The PIN is not stored in clear anywhere in the database file.
    let bytes = std::fs::read(data.join("host.sqlite")).unwrap();
    assert!(!bytes.windows(6).any(|w| w == b"246810"));

    let bad = temp.path().join("bad.toml");
    std::fs::write(&bad, "[[cards]]\npan = \"123\"\nexpiry = \"3012\"\n").unwrap();
    let out = poskit(&[
        "host",
        "import",
        bad.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn demo_data_json_lists_every_scenario_with_what_a_terminal_needs() {
    let out = poskit(&["host", "demo-data", "--json"]);
    assert!(out.status.success());
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    for name in [
        "approved",
        "lost",
        "issuer_timeout",
        "unregistered_terminal",
    ] {
        let s = list.iter().find(|s| s["scenario"] == name).unwrap();
        for key in [
            "pan",
            "expiry",
            "pin",
            "track2",
            "tid",
            "mid",
            "tmk",
            "expected_code",
        ] {
            assert!(s[key].is_string(), "{name}.{key}");
        }
    }
}

#[test]
fn bad_host_arguments_get_one_line_and_exit_2() {
    for args in [
        vec!["host"],
        vec!["host", "check", "--data", "/nonexistent/poskit"],
        vec![
            "host",
            "--data",
            "/tmp/x",
            "--config",
            "/nonexistent/host.toml",
        ],
    ] {
        let out = poskit(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).lines().count(),
            1,
            "{args:?}"
        );
    }
}

#[test]
fn pipelined_requests_on_one_connection_are_all_answered() {
    let temp = tempfile::tempdir().unwrap();
    let host = HostProcess::start(temp.path(), &[]);
    let mut t = signed_in(&host.addr, 40, Duration::from_secs(5));
    let mut sent = Vec::new();
    let mut burst = Vec::new();
    for i in 0..20u64 {
        let (frame, stan) = t
            .build(&RequestSpec::sale(card(40), 100 + i, Some(demo::DEMO_PIN)))
            .unwrap();
        burst.extend_from_slice(&frame);
        sent.push(format!("{stan:06}"));
    }
    t.send_raw(&burst).unwrap(); // twenty frames in one write
    let mut answered: Vec<String> = (0..20)
        .map(|_| {
            let r = t.receive().unwrap();
            assert_eq!(r.code(), "00");
            assert_eq!(r.mac_ok, Some(true));
            r.field(11).unwrap().to_owned()
        })
        .collect();
    answered.sort();
    assert_eq!(answered, sent);
    host.stop();
}

#[test]
fn hostile_input_gets_a_format_error_or_a_close_and_never_takes_the_host_down() {
    use std::io::Read;
    let temp = tempfile::tempdir().unwrap();
    let config = temp.path().join("host.toml");
    std::fs::write(&config, "[limits]\nread_timeout_ms = 300\n").unwrap();
    let host = HostProcess::start(
        &temp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let connect = || {
        let s = std::net::TcpStream::connect(&host.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s
    };
    let closed = |mut s: std::net::TcpStream| {
        let mut buf = [0u8; 64];
        matches!(s.read(&mut buf), Ok(0) | Err(_))
    };
    // A length above the bound: closed before anything is read for it.
    let mut s = connect();
    s.write_all(&[0xFF, 0xFF, 0x60]).unwrap();
    assert!(closed(s), "oversized frame");
    // Half a frame, then silence: closed after the read timeout.
    let mut s = connect();
    s.write_all(&[0x00, 0x40, 0x60, 0x00]).unwrap();
    assert!(closed(s), "partial frame");
    // A whole frame of garbage after a readable prefix and MTI: answered 30.
    let mut s = connect();
    let mut frame = vec![0x00, 0x0F];
    frame.extend_from_slice(&[
        0x60, 0x00, 0x03, 0x00, 0x00, 0x60, 0x31, 0x00, 0x31, 0x00, 0x00, 0x02, 0x00,
    ]);
    frame.extend_from_slice(&[0xFF, 0xFF]); // a bitmap cut short
    s.write_all(&frame).unwrap();
    let mut prefix = [0u8; 2];
    s.read_exact(&mut prefix).unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(prefix) as usize];
    s.read_exact(&mut body).unwrap();
    let mut whole = prefix.to_vec();
    whole.extend_from_slice(&body);
    let decoded = poskit_codec::frame::decode_frame(&poskit_codec::CUP_POS, &whole).unwrap();
    assert_eq!(decoded.message.mti().as_str(), "0210");
    assert_eq!(decoded.message.field(39).unwrap().text(), Some(&b"30"[..]));
    // And the host still serves.
    assert_sale_approved(&host.addr, 41);
    host.stop();
}

#[test]
fn logs_show_card_numbers_masked_and_never_the_pin_block_or_keys() {
    let temp = tempfile::tempdir().unwrap();
    let log = temp.path().join("host.log");
    let host = HostProcess::start_logging(
        &temp.path().join("data"),
        &[],
        "debug",
        std::fs::File::create(&log).unwrap().into(),
    );
    let addr = host.addr.clone();
    let mut t = signed_in(&addr, 42, Duration::from_secs(5));
    let r = t
        .send(&RequestSpec::sale(
            CardData::Track2(format!("{}=30121010000000000", demo::fleet_pan(42))),
            100,
            Some("999999"),
        ))
        .unwrap();
    assert_eq!(r.code(), "55");
    std::thread::sleep(Duration::from_millis(200));
    host.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    let pan = demo::fleet_pan(42);
    assert!(text.contains(&poskit_codec::mask::mask_pan(&pan)), "{text}");
    assert!(!text.contains(&pan), "a full card number in the log");
    assert!(
        !text.contains("999999") && !text.contains(demo::DEMO_TMK),
        "a PIN or a key in the log"
    );
}
