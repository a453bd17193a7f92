//! The host's own alerts end to end (issue 21 §3): a host process with a site's rules file
//! over the shipped rules, a webhook receiver, and a terminal whose sales the host cannot
//! commit (answered 96). The storage alert fires within seconds with its diagnosis, reaches
//! the webhook as JSON, shows in `/metrics` and in `poskit alerts`, and is acknowledged.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use poskit_host::demo;
use serde_json::Value;
use support::{EXPIRY, HostProcess, fleet_terminal, poskit};

/// Evaluations run every second here (the config below): the alert fires within a few.
const FIRING_WITHIN: Duration = Duration::from_secs(30);

/// A webhook receiver on loopback: each POST's body, answered 200.
fn webhook() -> (String, Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/poskit", listener.local_addr().unwrap());
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let Some(body) = read_post(stream) else {
                continue;
            };
            if let Ok(v) = serde_json::from_str(&body)
                && tx.send(v).is_err()
            {
                return;
            }
        }
    });
    (url, rx)
}

/// Reads one HTTP request's body (by its content-length) and answers 200.
fn read_post(mut stream: TcpStream) -> Option<String> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut length = 0usize;
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    assert!(
        request_line.starts_with("POST /hooks/poskit "),
        "{request_line}"
    );
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .ok()?;
    String::from_utf8(body).ok()
}

fn metrics(admin: &str) -> String {
    let mut s = TcpStream::connect(admin).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {admin}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

fn alerts_json(data: &str, all: bool) -> Vec<Value> {
    let mut args = vec!["alerts", "--data", data, "list", "--json"];
    if all {
        args.push("--all");
    }
    let out = poskit(&args);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_storage_failure_fires_an_alert_with_its_diagnosis_to_the_log_webhook_metrics_and_list() {
    let temp = tempfile::tempdir().unwrap();
    let config = temp.path().join("host.toml");
    std::fs::write(&config, "[alerts]\nevaluate_every_ms = 1000\n").unwrap();
    // The site renames the storage alert and keeps the shipped threshold.
    let rules = temp.path().join("site-alerts.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"host-storage-error\"\nkind = \"count\"\ncodes = [\"96\"]\n\
         window_minutes = 5\nthreshold = 1\nanti_flap_minutes = 10\nseverity = \"critical\"\n\
         title_en = \"Host storage failing (site rule)\"\ntitle_zh = \"主机存储故障（本站规则）\"\n",
    )
    .unwrap();
    let (url, hooks) = webhook();
    let data = temp.path().join("host");
    let host = HostProcess::start(
        &data,
        &[
            "--config",
            config.to_str().unwrap(),
            "--alert-rules",
            rules.to_str().unwrap(),
            "--alert-webhook",
            &url,
        ],
    );
    let healthy = fleet_terminal(temp.path(), 1, &host, &[]);
    let failing = fleet_terminal(temp.path(), 2, &host, &[]);
    host.set_faults(&format!(
        "seed = 7\n[[rules]]\nname = \"storage fails for T2's sales\"\ntid = \"{}\"\n\
         kind = \"sale\"\nreversal = false\naction = \"storage-error\"\nprobability = 1.0\n",
        demo::fleet_tid(2)
    ));
    let (_, ok) = healthy.sale("0.01", &demo::fleet_pan(1), EXPIRY, demo::DEMO_PIN, &[]);
    assert_eq!(ok["code"], "00", "{ok}");
    let (_, failed) = failing.sale("0.01", &demo::fleet_pan(2), EXPIRY, demo::DEMO_PIN, &[]);
    assert_eq!(failed["code"], "96", "{failed}");

    let started = Instant::now();
    let alert = loop {
        let found = alerts_json(host.data(), false);
        if let Some(a) = found.iter().find(|a| a["rule"] == "host-storage-error") {
            break a.clone();
        }
        assert!(started.elapsed() < FIRING_WITHIN, "no alert: {found:?}");
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("fired after {:?}", started.elapsed());
    assert_eq!(alert["title_en"], "Host storage failing (site rule)");
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["scope"], "all");
    assert!(
        alert["detail"].as_str().unwrap().contains("× 96"),
        "{alert}"
    );
    // Its diagnosis: the host's storage, with the catalog's steps, in both languages.
    let top = &alert["diagnosis"]["en"][0];
    assert_eq!(top["cause"], "host-system", "{alert}");
    assert!(!top["steps"].as_array().unwrap().is_empty(), "{alert}");
    assert!(support::has_chinese(
        alert["diagnosis"]["zh"][0]["label"].as_str().unwrap()
    ));
    // Only what the faults caused fires.
    let rules_fired: Vec<Value> = alerts_json(host.data(), false)
        .iter()
        .map(|a| a["rule"].clone())
        .collect();
    assert_eq!(rules_fired, ["host-storage-error"]);

    // The webhook got it as JSON.
    let hook = hooks
        .recv_timeout(Duration::from_secs(20))
        .expect("the webhook was called");
    assert_eq!(hook["status"], "firing");
    assert_eq!(hook["alert"]["id"], alert["id"]);
    assert_eq!(hook["alert"]["diagnosis"]["en"][0]["cause"], "host-system");

    // /metrics counts it.
    let admin = host.admin.clone().unwrap();
    let text = metrics(&admin);
    assert!(
        text.contains(r#"poskit_alerts_firing{rule="host-storage-error",severity="critical"} 1"#),
        "{text}"
    );

    // Acknowledged by someone; an alert that does not exist is exit 3.
    let id = alert["id"].as_i64().unwrap().to_string();
    let out = poskit(&[
        "alerts",
        "--data",
        host.data(),
        "ack",
        &id,
        "--by",
        "ops-li",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("acknowledged by ops-li"));
    let listed = alerts_json(host.data(), true);
    assert_eq!(listed[0]["acked_by"], "ops-li");
    let out = poskit(&["alerts", "--data", host.data(), "ack", "99999"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    // The human form, in Chinese: the title, the cause and its steps.
    let out = poskit(&["alerts", "--data", host.data(), "list", "--lang", "zh"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("主机存储故障（本站规则）"), "{text}");
    assert!(text.contains("可能原因"), "{text}");
}

#[test]
fn bad_rules_files_and_webhook_urls_are_refused_with_a_reason() {
    let temp = tempfile::tempdir().unwrap();
    let rules = temp.path().join("bad.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"x\"\nkind = \"count\"\nwindow_minutes = 5\nseverity = \"info\"\ntitle_en = \"x\"\ntitle_zh = \"x\"\n",
    )
    .unwrap();
    let data = temp.path().join("host");
    let data = data.to_str().unwrap();
    let out = poskit(&[
        "host",
        "--data",
        data,
        "--alert-rules",
        rules.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("give either codes or a measure"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = poskit(&[
        "host",
        "--data",
        data,
        "--alert-webhook",
        "ftp://example.org/x",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("http:// or https://"));
    // The shipped rules print as rules that parse back.
    let out = poskit(&["alerts", "rules"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let parsed = poskit_monitor::alerts::Rules::parse(&text).unwrap();
    assert!(parsed.rules.len() >= 11);
}
