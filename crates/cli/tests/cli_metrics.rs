//! `/metrics` of a host process under a few requests: the Prometheus text format that
//! `promtool check metrics` accepts (CI installs promtool; a user's machine without it
//! skips that check), the names and labels the dashboards and rules read.

mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use poskit_host::demo;
use support::{EXPIRY, HostProcess, fleet_terminal};

/// GET `path` from `addr` over plain HTTP/1.1: the body.
fn get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("text/plain; version=0.0.4"), "{text}");
    text.split_once("\r\n\r\n").unwrap().1.to_owned()
}

fn promtool() -> Option<std::path::PathBuf> {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    match found {
        Ok(s) if s.success() => Some("promtool".into()),
        _ if std::env::var_os("CI").is_some() => panic!("CI installs promtool (.ci/run)"),
        _ => None,
    }
}

#[test]
fn metrics_count_answers_by_code_and_class_and_pass_promtool() {
    let temp = tempfile::tempdir().unwrap();
    let host = HostProcess::start(&temp.path().join("host"), &[]);
    let admin = host.admin.clone().expect("the host says where /metrics is");
    let pos = fleet_terminal(temp.path(), 3, &host, &[]);
    let (exit, _) = pos.sale("12.00", &demo::fleet_pan(3), EXPIRY, demo::DEMO_PIN, &[]);
    assert_eq!(exit, Some(0));
    let (_, declined) = pos.sale("12.00", &demo::fleet_pan(3), EXPIRY, "000000", &[]);
    assert_eq!(declined["code"], "55");

    let body = get(&admin, "/metrics");
    for needle in [
        r#"poskit_requests_total{class="A",code="00",kind="sale",mti="0200"} 1"#,
        r#"poskit_requests_total{class="C",code="55",kind="sale",mti="0200"} 1"#,
        "poskit_answer_latency_seconds_bucket",
        "poskit_writer_group_size_count",
        "poskit_writer_commit_seconds_bucket",
        "poskit_connections_accepted_total",
        "process_resident_memory_bytes",
    ] {
        assert!(body.contains(needle), "{needle} missing from:\n{body}");
    }
    // Statistics: seen within 5 s of the answers (the host flushes them every second).
    let tid = demo::fleet_tid(3);
    let stats = || {
        let out = support::poskit(&[
            "stats",
            "--data",
            host.data(),
            "--terminal",
            &tid,
            "--window",
            "15m",
            "--json",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let started = std::time::Instant::now();
    let mut v = stats();
    while v["attempts"] != 2 && started.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(200));
        v = stats();
    }
    assert_eq!(v["attempts"], 2, "{v}");
    assert_eq!(v["approved"], 1, "{v}");
    assert_eq!(v["approval_rate"], 0.5, "{v}");
    assert_eq!(v["by_code"]["55"], 1, "{v}");
    assert!(v["first_attempt_approval_rate"].is_number(), "{v}");
    if let Some(promtool) = promtool() {
        let mut check = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        check
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let out = check.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    host.stop();
}

/// A host on `data` without `--admin-listen`, or with `admin`: its first line of output,
/// and the process (killed by the caller).
fn host_line(data: &std::path::Path, admin: Option<&str>) -> (String, std::process::Child) {
    use std::io::BufRead;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_poskit"));
    cmd.args(["host", "--listen", "127.0.0.1:0", "--demo", "--data"])
        .arg(data);
    if let Some(at) = admin {
        cmd.args(["--admin-listen", at]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (line, child)
}

#[test]
fn the_default_admin_address_taken_leaves_the_host_serving_and_an_asked_one_stops_it() {
    let temp = tempfile::tempdir().unwrap();
    let (first, mut a) = host_line(&temp.path().join("a"), None);
    let (second, mut b) = host_line(&temp.path().join("b"), None);
    assert!(
        first.contains("listening on") && second.contains("listening on"),
        "{first}{second}"
    );
    let _ = (a.kill(), b.kill(), a.wait(), b.wait());

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = busy.local_addr().unwrap().to_string();
    let (line, c) = host_line(&temp.path().join("c"), Some(&at));
    let out = c.wait_with_output().unwrap();
    assert!(line.is_empty(), "no host: {line}");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--admin-listen"));
}
