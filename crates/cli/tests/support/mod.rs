//! Helpers the end-to-end tests of `poskit pos`, the walk-through of the README, the demo and
//! the HTTP API share: the built binary, a host process on loopback, a virtual terminal,
//! requests to the API and its users.
//! Each test binary uses a part of them.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use poskit_host::demo;
use serde_json::Value;

pub const MID: &str = "898310048160001";
pub const EXPIRY: &str = "3012";

pub fn poskit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args(args)
        .output()
        .unwrap()
}

/// A host process; killed (SIGKILL) and reaped when dropped, also when a test panics.
pub struct HostProcess {
    pub child: Child,
    pub addr: String,
    /// Where its `/metrics` is served (a port of its own).
    pub admin: Option<String>,
    pub data: PathBuf,
}

impl HostProcess {
    pub fn start(data: &Path, extra: &[&str]) -> HostProcess {
        HostProcess::start_logging(data, extra, "warn", Stdio::null())
    }

    /// A host whose log (at `level`) goes to `stderr`.
    pub fn start_logging(data: &Path, extra: &[&str], level: &str, stderr: Stdio) -> HostProcess {
        HostProcess::start_env(data, extra, level, stderr, &[])
    }

    /// [`HostProcess::start_logging`] with environment variables of its own.
    pub fn start_env(
        data: &Path,
        extra: &[&str],
        level: &str,
        stderr: Stdio,
        env: &[(&str, &str)],
    ) -> HostProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_poskit"))
            .args([
                "host",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args(["--demo", "--data"])
            .arg(data)
            .args(extra)
            .env("RUST_LOG", level)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut line).unwrap();
        let mut second = String::new();
        let admin = reader
            .read_line(&mut second)
            .ok()
            .and_then(|_| second.split("http://").nth(1))
            .and_then(|rest| rest.split('/').next())
            .map(str::to_owned);
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned);
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no address in {line:?}");
        };
        HostProcess {
            child,
            addr,
            admin,
            data: data.to_path_buf(),
        }
    }

    pub fn data(&self) -> &str {
        self.data.to_str().unwrap()
    }

    pub fn db(&self) -> rusqlite::Connection {
        // Opened with the ledger's keys: `pan_hash(?)` finds a card by its number.
        poskit_host::DataDir::existing(&self.data)
            .open_keys()
            .unwrap()
            .0
    }

    /// The balance of the account behind card `pan`, in fen.
    pub fn balance(&self, pan: &str) -> i64 {
        self.db()
            .query_row(
                "SELECT a.balance_fen FROM cards c JOIN accounts a ON a.id = c.account WHERE c.pan_hash = pan_hash(?1)",
                [pan],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// Stores `plan` and waits until this running host has applied it.
    pub fn set_faults(&self, plan: &str) {
        let mut set = Command::new(env!("CARGO_BIN_EXE_poskit"))
            .args(["host", "faults", "--data", self.data(), "set", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        set.stdin
            .take()
            .unwrap()
            .write_all(plan.as_bytes())
            .unwrap();
        assert!(set.wait().unwrap().success(), "faults set refused {plan}");
        self.wait_applied();
    }

    pub fn clear_faults(&self) {
        assert!(
            poskit(&["host", "faults", "--data", self.data(), "clear"])
                .status
                .success()
        );
        self.wait_applied();
    }

    pub fn wait_applied(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let shown = poskit(&["host", "faults", "--data", self.data(), "show"]);
            if String::from_utf8_lossy(&shown.stdout).contains("applied by a running host") {
                return;
            }
            assert!(Instant::now() < deadline, "the host never applied the plan");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(mut self) {
        self.kill();
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One virtual terminal: its journal directory.
pub struct Pos {
    pub dir: PathBuf,
}

/// The result of one `poskit pos` command.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

impl Pos {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_poskit"));
        c.arg("pos").arg("--terminal").arg(&self.dir).args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `args` under a locale of its own: `LC_ALL`, `LC_MESSAGES` and `LANG` cleared, then
    /// `env` set.
    pub fn run_env(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let mut command = self.command(args);
        for name in ["LC_ALL", "LC_MESSAGES", "LANG", "TZ"] {
            command.env_remove(name);
        }
        let out = command.envs(env.iter().copied()).output().unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `--json` `args`: the printed object and the exit code.
    pub fn json(&self, args: &[&str]) -> (Option<i32>, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = self.run(&all);
        (run.code, run.json())
    }

    /// Initializes the terminal (or points it at a new host address, keeping its state).
    pub fn init(&self, tid: &str, mid: &str, host: &str, extra: &[&str]) {
        let mut args = vec![
            "init",
            "--tid",
            tid,
            "--mid",
            mid,
            "--tmk",
            demo::DEMO_TMK,
            "--host",
            host,
        ];
        args.extend_from_slice(extra);
        let run = self.run(&args);
        assert_eq!(run.code, Some(0), "init: {}{}", run.stdout, run.stderr);
    }

    pub fn sign_in(&self) -> Value {
        self.json(&["sign-in"]).1
    }

    pub fn status(&self) -> Value {
        let (code, v) = self.json(&["status"]);
        assert_eq!(code, Some(0));
        v
    }

    pub fn sale(
        &self,
        yuan: &str,
        pan: &str,
        expiry: &str,
        pin: &str,
        extra: &[&str],
    ) -> (Option<i32>, Value) {
        let mut args = vec![
            "sale", "--amount", yuan, "--card", pan, "--expiry", expiry, "--pin", pin,
        ];
        args.extend_from_slice(extra);
        self.json(&args)
    }

    pub fn batch(&self) -> u32 {
        self.status()["batch"].as_str().unwrap().parse().unwrap()
    }
}

/// Fleet terminal `i`, its journal under `root`, initialized for `host` and signed in.
pub fn fleet_terminal(root: &Path, i: u32, host: &HostProcess, extra: &[&str]) -> Pos {
    let pos = Pos {
        dir: root.join(format!("pos-{}", demo::fleet_tid(i))),
    };
    pos.init(&demo::fleet_tid(i), MID, &host.addr, extra);
    let signed = pos.sign_in();
    assert_eq!(signed["code"], "00", "{signed}");
    pos
}

/// Whether `text` has a Chinese character (CJK ideographs, full-width punctuation).
pub fn has_chinese(text: &str) -> bool {
    text.chars().any(|c| {
        ('\u{4e00}'..='\u{9fff}').contains(&c)
            || ('\u{3000}'..='\u{303f}').contains(&c)
            || ('\u{ff00}'..='\u{ffef}').contains(&c)
    })
}

/// Fen as the yuan `--amount` takes.
pub fn yuan(fen: u64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// The other merchant of the demo data (its terminal [`OTHER_TID`]), beside [`MID`].
pub const OTHER_MID: &str = "898310048160004";
pub const OTHER_TID: &str = "10000005";

// ---- The HTTP API (`poskit host --http`) ----

/// An answer of the API: its status, its head, its body as JSON (Null when not JSON) and as
/// text.
pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: Value,
    pub text: String,
}

/// One HTTP/1.0 request (the server closes after it).
pub fn call(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut text = Vec::new();
    let _ = s.read_to_end(&mut text);
    let text = String::from_utf8_lossy(&text).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        headers: head.to_owned(),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
        text: body.to_owned(),
    }
}

pub fn get(addr: &str, token: &str, path: &str) -> Reply {
    call(
        addr,
        "GET",
        path,
        &[("authorization", &format!("Bearer {token}"))],
        b"",
    )
}

/// A host process serving the API, with a user of each role and a merchant of each of the
/// two demo merchants: their bearer tokens.
pub struct ApiHost {
    pub host: HostProcess,
    /// The API's address (HOST:PORT).
    pub http: String,
    pub admin: String,
    pub ops: String,
    /// Merchant [`MID`]'s user.
    pub shop: String,
    /// Merchant [`OTHER_MID`]'s user.
    pub other: String,
}

impl ApiHost {
    /// The host's data in `root/host`.
    pub fn start(root: &Path) -> ApiHost {
        let http = free_port();
        let host = HostProcess::start(&root.join("host"), &["--http", &http]);
        let data = host.data().to_owned();
        ApiHost {
            admin: add_user(&data, "root", "admin", None),
            ops: add_user(&data, "ops", "operator", None),
            shop: add_user(&data, "shop1", "merchant", Some(MID)),
            other: add_user(&data, "shop4", "merchant", Some(OTHER_MID)),
            host,
            http,
        }
    }
}

/// Adds a user with `poskit users add` (its password: [`password_of`]); answers a bearer
/// token of it.
pub fn add_user(data: &str, name: &str, role: &str, merchant: Option<&str>) -> String {
    let mut args = vec![
        "users",
        "--data",
        data,
        "add",
        name,
        "--role",
        role,
        "--password-stdin",
    ];
    if let Some(m) = merchant {
        args.extend(["--merchant", m]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{}\n", password_of(name)).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = poskit(&["users", "--data", data, "token", name]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A loopback address nothing listens on right now.
pub fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// An alert on a terminal of the first merchant, as the host's rules would raise it, with
/// the diagnosis the host would attach (from the five A0 answers it counts).
pub fn raise_alert(data: &std::path::Path, tid: &str) -> i64 {
    use poskit_monitor::diagnose::{Facts, Seen, diagnose};
    const AT_MS: i64 = 1_796_000_000_000;
    let mut conn = rusqlite::Connection::open(data.join("stats.db")).unwrap();
    poskit_monitor::stats::migrate(&conn).unwrap();
    let rules = poskit_monitor::alerts::Rules::builtin();
    let finding = poskit_monitor::alerts::Finding {
        rule: "mac-errors-on-terminal".into(),
        subject: tid.into(),
        value: 5.0,
        detail: "5 × A0 in 5 minutes".into(),
    };
    let changes = poskit_monitor::alerts::apply(&mut conn, &rules, &[finding], AT_MS).unwrap();
    let id = changes.fired[0].id;
    let facts = Facts {
        now_ms: AT_MS,
        seen: (0..5)
            .map(|i| Seen {
                at_ms: AT_MS - i * 60_000,
                code: "A0".into(),
                reversal_reason: None,
            })
            .collect(),
        ..Facts::default()
    };
    let diagnosis = serde_json::json!({
        "zh": diagnose(&facts, poskit_codes::Lang::Zh),
        "en": diagnose(&facts, poskit_codes::Lang::En),
    });
    poskit_monitor::alerts::set_diagnosis(&conn, id, &diagnosis, AT_MS).unwrap();
    id
}

/// The password [`add_user`] gives `name`.
pub fn password_of(name: &str) -> String {
    format!("{name} has a long password")
}
