//! Helpers the end-to-end tests of `poskit pos`, the walk-through of the README and the
//! demo share: the built binary, a host process on loopback, a virtual terminal.
//! Each test binary uses a part of them.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
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
        rusqlite::Connection::open(self.data.join("host.sqlite")).unwrap()
    }

    /// The balance of the account behind card `pan`, in fen.
    pub fn balance(&self, pan: &str) -> i64 {
        self.db()
            .query_row(
                "SELECT a.balance_fen FROM cards c JOIN accounts a ON a.id = c.account WHERE c.pan = ?1",
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
