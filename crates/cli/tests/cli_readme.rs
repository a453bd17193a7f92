//! The README's quick start, run as written (issue 25): every command of its ```sh block,
//! with the built binary for `poskit`, a temporary directory for `/tmp`, a free port for
//! 5800, and the host started in the background where the README ends a line with `&`.
//! A command is expected to exit 0 unless its comment says `exit N`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const README: &str = include_str!("../../../README.md");

/// One command of the quick start: its words, whether it runs in the background, and the
/// exit code its comment promises.
#[derive(Debug)]
struct Step {
    words: Vec<String>,
    background: bool,
    exit: i32,
}

/// The quick start's ```sh block: lines joined at `\`, comments read for `exit N`.
fn quick_start() -> Vec<Step> {
    let section = README
        .split("## Quick start")
        .nth(1)
        .expect("the README has a Quick start");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a ```sh block");
    let joined = block.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|line| {
            let (code, comment) = line.split_once(" #").unwrap_or((line, ""));
            let code = code.trim();
            if code.is_empty() || code.starts_with('#') {
                return None;
            }
            let exit = comment
                .split("exit ")
                .nth(1)
                .and_then(|n| {
                    n.trim_end_matches(|c: char| !c.is_ascii_digit())
                        .parse()
                        .ok()
                })
                .unwrap_or(0);
            let (code, background) = match code.strip_suffix('&') {
                Some(c) => (c.trim(), true),
                None => (code, false),
            };
            Some(Step {
                words: split_words(code),
                background,
                exit,
            })
        })
        .collect()
}

/// Shell words: blanks separate, double quotes group.
fn split_words(code: &str) -> Vec<String> {
    let (mut words, mut word, mut quoted) = (Vec::new(), String::new(), false);
    for c in code.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    assert!(!quoted, "unbalanced quotes in {code}");
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// A background host, killed when the test ends.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn command(words: &[String], tmp: &Path, port: u16) -> Command {
    let tmp = tmp.to_str().unwrap();
    let args: Vec<String> = words[1..]
        .iter()
        .map(|w| w.replace("/tmp", tmp).replace("5800", &port.to_string()))
        .collect();
    let mut c = Command::new(env!("CARGO_BIN_EXE_poskit"));
    c.args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env("LANG", "C.UTF-8")
        .env_remove("LC_ALL")
        .env("RUST_LOG", "warn");
    c
}

#[test]
fn every_command_of_the_readme_quick_start_works_as_written() {
    let steps = quick_start();
    assert!(steps.len() > 15, "{steps:?}");
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut hosts = Vec::new();
    let mut ran = 0;
    for step in &steps {
        match step.words[0].as_str() {
            "poskit" => {}
            // Building and the alias are the set-up this test does with Cargo.
            "cargo" => continue,
            other => panic!("the quick start runs only poskit and cargo, not {other}"),
        }
        let mut c = command(&step.words, tmp.path(), port);
        if step.background {
            let mut child = c
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert!(line.contains("listening on"), "{:?}: {line}", step.words);
            hosts.push(Background(child));
            continue;
        }
        let out = c.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(step.exit),
            "{}\n{}{}",
            step.words.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert!(!hosts.is_empty(), "the quick start starts a host");
    assert!(ran > 15, "{ran} commands ran");
}

#[test]
fn the_quick_start_parser_reads_continuations_background_and_exit_codes() {
    let steps = quick_start();
    let init = steps
        .iter()
        .find(|s| s.words.get(4).is_some_and(|w| w == "init"))
        .expect("an init");
    assert!(
        init.words.iter().any(|w| w == "--tmk"),
        "joined at \\: {init:?}"
    );
    assert!(steps.iter().any(|s| s.background), "the host runs with &");
    assert!(
        steps.iter().any(|s| s.exit == 1),
        "a command expected to fail"
    );
    assert_eq!(
        split_words(r#"explain "wrong pin" --lang en"#),
        ["explain", "wrong pin", "--lang", "en"]
    );
}

/// The flags `poskit pos SUB --help` says are required (its usage line).
fn required_flags(sub: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args(["pos", "--terminal", "DIR", sub, "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let usage = help
        .lines()
        .find(|l| l.starts_with("Usage:"))
        .unwrap_or_else(|| panic!("{sub}: {help}"));
    let after = usage.split(sub).nth(1).unwrap();
    after
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_guide_names_every_required_argument_of_the_pos_commands_it_shows() {
    let guide = README.split("## Guide").nth(1).expect("a Guide");
    // Where the Guide shows each command, up to the end of its code span.
    for (sub, marker, must) in [
        ("init", "DIR init ", &["--host"][..]),
        ("sale", "sale\\|preauth ", &["--amount", "--card"][..]),
        ("void", "`void`/`complete-void ", &["--trace"][..]),
        (
            "refund",
            "`refund ",
            &["--amount", "--card", "--rrn", "--date"][..],
        ),
        ("complete", "`complete ", &["--auth-code", "--date"][..]),
    ] {
        let span = guide
            .split(marker)
            .nth(1)
            .and_then(|rest| rest.split('`').next())
            .unwrap_or_else(|| panic!("the Guide shows {sub} ({marker:?})"));
        let required = required_flags(sub);
        assert!(!required.is_empty(), "{sub}");
        for flag in required
            .iter()
            .map(String::as_str)
            .chain(must.iter().copied())
        {
            assert!(
                span.contains(flag),
                "the Guide's {sub} lacks {flag}: {span}"
            );
        }
    }
    assert!(
        guide.contains("[--lang zh\\|en]"),
        "demo --lang is documented"
    );
}

#[test]
fn demo_data_lists_the_expiry_of_every_card() {
    let out = Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args(["host", "demo-data"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().skip_while(|l| !l.starts_with("scenario"));
    let header = lines.next().unwrap_or_else(|| panic!("{text}"));
    assert!(header.contains(" expiry "), "{header}");
    for s in poskit_host::demo::scenarios() {
        let row = text
            .lines()
            .find(|l| l.starts_with(&format!("{} ", s.name)))
            .unwrap_or_else(|| panic!("{}: {text}", s.name));
        assert!(row.contains(&format!(" {} ", s.expiry)), "{row}");
    }
}
