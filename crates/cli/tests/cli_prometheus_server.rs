//! The shipped alerting rules against a real Prometheus server: a `prometheus` process on
//! loopback scrapes a host process's `/metrics` every second and evaluates
//! deploy/prometheus/poskit-rules.yml while terminals trade with the host; a storage failure
//! (the fault plan's `storage-error`, answered 96) must bring `PoskitStorageFailure` to
//! "firing". `promtool test rules` (cli_prometheus.rs) checks the rules' arithmetic on
//! made-up series; this checks that a real scrape of the real host, its metric names and
//! labels, the scrape job and the rules file fit together. CI installs the server (Debian's
//! `prometheus`, .ci/run); a machine without it skips this test.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use poskit_host::demo;
use serde_json::Value;
use support::{EXPIRY, HostProcess, fleet_terminal};

/// How long the alert may take to fire once the host answers 96: a few scrapes and rule
/// evaluations at one second each; the bound leaves room for a loaded machine.
const FIRING_WITHIN: Duration = Duration::from_secs(90);

/// The `prometheus` binary, or None (and the test skips) when it is not installed.
fn prometheus() -> Option<PathBuf> {
    let found = Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match found {
        Ok(s) if s.success() => Some("prometheus".into()),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI installs the prometheus server (Debian's prometheus, .ci/run)")
        }
        _ => None,
    }
}

/// A Prometheus server process; killed and reaped when dropped, also when the test panics.
struct PrometheusProcess {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl PrometheusProcess {
    fn start(binary: &Path, dir: &Path, config: &str) -> PrometheusProcess {
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let addr = free_loopback_addr();
        let log = dir.join("prometheus.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        PrometheusProcess { child, addr, log }
    }

    /// Its log, for a failure's message.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the server answers `/-/ready` (its rules loaded, scraping begun).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("prometheus exited ({status}):\n{}", self.log());
            }
            if matches!(http_get(&self.addr, "/-/ready"), Some((200, _))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready on {} within 30 s:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// GET `path` of the HTTP API: its `data`, after checking `status` is "success".
    fn api(&self, path: &str) -> Value {
        let (code, body) = http_get(&self.addr, path)
            .unwrap_or_else(|| panic!("prometheus did not answer {path}:\n{}", self.log()));
        assert_eq!(code, 200, "{path}: {body}");
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
        assert_eq!(v["status"], "success", "{path}: {v}");
        v["data"].clone()
    }
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address nothing listens on right now.
fn free_loopback_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// GET `path` from `addr` (HTTP/1.0: no chunked body, the server closes): the status and
/// the body, or None when nothing answers.
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// The alerts in `data` of `/api/v1/alerts` in `state`, by name.
fn alerts_in(data: &Value, state: &str) -> Vec<Value> {
    data["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == state)
        .cloned()
        .collect()
}

#[test]
fn a_real_prometheus_scraping_a_host_fires_the_storage_failure_alert() {
    let Some(binary) = prometheus() else {
        eprintln!("skipped: no prometheus server installed (Debian's prometheus)");
        return;
    };
    let started = Instant::now();
    let temp = tempfile::tempdir().unwrap();
    let host = HostProcess::start(&temp.path().join("host"), &[]);
    let admin = host.admin.clone().expect("the host says where /metrics is");

    // The shipped rules, as an operator would load them.
    let rules = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/prometheus/poskit-rules.yml"
    ))
    .canonicalize()
    .unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - '{}'\n\
         scrape_configs:\n  - job_name: poskit\n    static_configs:\n      - targets: ['{admin}']\n",
        rules.display()
    );
    let prom_dir = temp.path().join("prometheus");
    std::fs::create_dir(&prom_dir).unwrap();
    let mut prom = PrometheusProcess::start(&binary, &prom_dir, &config);
    prom.wait_ready();

    // Two terminals: one trading normally, one whose sales the host cannot commit.
    let healthy = fleet_terminal(temp.path(), 1, &host, &[]);
    let failing = fleet_terminal(temp.path(), 2, &host, &[]);
    host.set_faults(&format!(
        "seed = 7\n[[rules]]\nname = \"storage fails for T2's sales\"\ntid = \"{}\"\n\
         kind = \"sale\"\nreversal = false\naction = \"storage-error\"\nprobability = 1.0\n",
        demo::fleet_tid(2)
    ));

    let deadline = Instant::now() + FIRING_WITHIN;
    let mut answered_96 = 0;
    let firing = loop {
        let (exit, ok) = healthy.sale("0.01", &demo::fleet_pan(1), EXPIRY, demo::DEMO_PIN, &[]);
        assert_eq!(ok["code"], "00", "{ok}");
        assert_eq!(exit, Some(0), "{ok}");
        let (_, failed) = failing.sale("0.01", &demo::fleet_pan(2), EXPIRY, demo::DEMO_PIN, &[]);
        assert_eq!(failed["code"], "96", "{failed}");
        answered_96 += 1;

        let alerts = prom.api("/api/v1/alerts");
        let firing = alerts_in(&alerts, "firing");
        if firing
            .iter()
            .any(|a| a["labels"]["alertname"] == "PoskitStorageFailure")
        {
            break firing;
        }
        assert!(
            Instant::now() < deadline,
            "PoskitStorageFailure not firing {FIRING_WITHIN:?} after the host began \
             answering 96 ({answered_96} times); alerts: {alerts}\nrules: {}\nprometheus log:\n{}",
            prom.api("/api/v1/rules"),
            prom.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };

    // Only the storage failure: nothing else the healthy terminal's traffic set off.
    let names: Vec<_> = firing
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["PoskitStorageFailure"], "{firing:?}");
    let alert = &firing[0];
    assert_eq!(alert["labels"]["severity"], "critical", "{alert}");
    let summary = alert["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("The host answered 96 (storage failure)"),
        "{summary}"
    );

    // The host is a scraped target, up, at the address it gave for /metrics.
    let targets = prom.api("/api/v1/targets");
    let active = targets["activeTargets"].as_array().unwrap();
    let target = active
        .iter()
        .find(|t| t["labels"]["job"] == "poskit")
        .unwrap_or_else(|| panic!("no poskit target: {targets}"));
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(
        target["scrapeUrl"],
        format!("http://{admin}/metrics"),
        "{target}"
    );

    // What the rule saw is what the host counted: 96 answers to sales.
    let query = prom.api("/api/v1/query?query=sum(poskit_requests_total%7Bcode%3D%2296%22%7D)");
    let seen: f64 = query["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no 96 series in Prometheus: {query}"));
    assert!(
        (1.0..=f64::from(answered_96)).contains(&seen),
        "{seen} of {answered_96}"
    );

    eprintln!(
        "PoskitStorageFailure firing after {answered_96} answers 96, {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    drop(prom);
    host.stop();
}
