//! What `poskit` says when something is wrong: bad arguments (exit 2, one line that names
//! the argument and keeps clap's details), errors that name their cause once, and standard
//! output that is closed or full (never a panic).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn poskit_to(args: &[&str], stdout: Stdio) -> Output {
    Command::new(env!("CARGO_BIN_EXE_poskit"))
        .args(args)
        .env("LANG", "C")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn poskit(args: &[&str]) -> Output {
    poskit_to(args, Stdio::piped())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The run failed with `exit` and said so in exactly one line that starts `poskit: `,
/// which is returned.
fn one_line_error(o: &Output, exit: i32) -> String {
    let text = stderr(o);
    assert_eq!(o.status.code(), Some(exit), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {text}");
    assert!(lines[0].starts_with("poskit: "), "{text}");
    lines[0].to_owned()
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_missing_argument_is_named_in_the_error() {
    let line = one_line_error(&poskit(&["host", "check"]), 2);
    assert!(line.contains("not provided: --data <DIR>"), "{line}");

    let terminal = tempfile::tempdir().unwrap();
    let args = ["pos", "--terminal", path_str(terminal.path())];
    let line = one_line_error(&poskit(&[&args[..], &["init", "--tid", "T1"]].concat()), 2);
    for missing in ["--mid <MID>", "--tmk <TMK>", "--host <HOST>"] {
        assert!(line.contains(missing), "{missing} not named: {line}");
    }
    assert!(!line.contains("--tid"), "{line}");
}

#[test]
fn a_misspelled_argument_or_subcommand_keeps_clap_s_suggestion() {
    let line = one_line_error(&poskit(&["host", "chek"]), 2);
    assert!(line.contains("'chek'"), "{line}");
    assert!(
        line.contains("tip: a similar subcommand exists: 'check'"),
        "{line}"
    );

    let data = tempfile::tempdir().unwrap();
    let line = one_line_error(
        &poskit(&["host", "check", "--data", path_str(data.path()), "--jsn"]),
        2,
    );
    assert!(line.contains("'--jsn'"), "{line}");
    assert!(line.contains("'--json'"), "{line}");
}

#[test]
fn an_invalid_value_lists_the_possible_ones() {
    let line = one_line_error(&poskit(&["decode", "--hex", "00", "--profile", "cup"]), 2);
    assert!(line.contains("'--profile <PROFILE>'"), "{line}");
    assert!(line.contains("cup-pos, iso87-ascii"), "{line}");
}

#[test]
fn a_listen_address_that_is_not_host_and_port_is_an_argument_error() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("host");
    let line = one_line_error(
        &poskit(&["host", "--listen", "nonsense", "--data", path_str(&dir)]),
        2,
    );
    assert!(line.contains("'--listen <ADDR>'"), "{line}");
    assert!(line.contains("HOST:PORT"), "{line}");
    assert!(
        !dir.exists(),
        "nothing is created for a run refused on its arguments"
    );
}

#[test]
fn a_listen_address_in_use_names_its_cause_once() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = tempfile::tempdir().unwrap();
    let o = poskit(&["host", "--listen", &addr, "--data", path_str(data.path())]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stderr(&o);
    let line = text
        .lines()
        .find(|l| l.starts_with("poskit: "))
        .unwrap_or_else(|| panic!("no error line: {text}"));
    assert!(line.contains(&addr), "{line}");
    assert_eq!(line.matches("(os error").count(), 1, "{line}");
}

#[test]
fn a_file_given_as_data_directory_is_an_argument_error() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("plain-file");
    std::fs::write(&file, "not a directory").unwrap();
    let file = path_str(&file);

    let line = one_line_error(&poskit(&["host", "--data", file]), 2);
    assert_eq!(
        line,
        format!("poskit: --data {file}: is a file, not a directory")
    );

    let below = format!("{file}/host");
    let line = one_line_error(&poskit(&["host", "--data", &below]), 2);
    assert!(
        line.starts_with(&format!("poskit: --data {below}: ")),
        "{line}"
    );
    assert!(line.contains("parent directories"), "{line}");
    assert!(!line.contains("os error"), "{line}");

    let import = root.path().join("data.toml");
    std::fs::write(&import, "").unwrap();
    let line = one_line_error(
        &poskit(&["host", "import", path_str(&import), "--data", file]),
        2,
    );
    assert_eq!(
        line,
        format!("poskit: --data {file}: is a file, not a directory")
    );
}

#[test]
fn decode_blames_the_file_it_read_not_hex() {
    let root = tempfile::tempdir().unwrap();
    let json = root.path().join("x.json");
    std::fs::write(&json, "{}").unwrap();
    let line = one_line_error(&poskit(&["decode", "--file", path_str(&json)]), 2);
    assert!(
        line.starts_with(&format!(
            "poskit: --file {}: not hexadecimal",
            path_str(&json)
        )),
        "{line}"
    );
    assert!(!line.contains("--hex"), "{line}");

    // The control: the same text given with --hex blames --hex.
    let line = one_line_error(&poskit(&["decode", "--hex", "{}"]), 2);
    assert!(line.starts_with("poskit: --hex: not hexadecimal"), "{line}");
}

#[test]
fn a_toml_error_keeps_its_line_column_and_caret_lines() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("host.toml");
    std::fs::write(&config, "a = 1\n[b\n").unwrap();
    let data = root.path().join("data");
    let o = poskit(&[
        "host",
        "--config",
        path_str(&config),
        "--data",
        path_str(&data),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let text = stderr(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("poskit: --config "), "{text}");
    assert!(lines[0].contains("line 2, column 3"), "{text}");
    assert!(
        lines.contains(&"2 | [b"),
        "the source line stands alone: {text}"
    );
    assert!(
        lines.contains(&"  |   ^"),
        "the caret points under the column: {text}"
    );
    assert!(!text.contains("; |"), "{text}");
}

#[test]
fn refund_requires_exactly_one_of_card_and_track2() {
    let terminal = tempfile::tempdir().unwrap();
    let refund = [
        "pos",
        "--terminal",
        path_str(terminal.path()),
        "refund",
        "--rrn",
        "000000000001",
        "--date",
        "0101",
        "--amount",
        "1.00",
    ];
    let line = one_line_error(&poskit(&refund), 2);
    assert!(line.contains("<--card <PAN>|--track2 <TRACK2>>"), "{line}");

    let both = [
        &refund[..],
        &[
            "--card",
            "6222021234567890123",
            "--track2",
            "6222021234567890123=2912",
        ],
    ]
    .concat();
    let line = one_line_error(&poskit(&both), 2);
    assert!(line.contains("cannot be used with"), "{line}");

    let help = poskit(&["pos", "--terminal", "x", "refund", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("<--card <PAN>|--track2 <TRACK2>>"), "{help}");
}

#[test]
fn settle_offers_no_printer_jam_switch() {
    let settle = poskit(&["pos", "--terminal", "x", "settle", "--help"]);
    assert_eq!(settle.status.code(), Some(0));
    let settle = String::from_utf8(settle.stdout).unwrap();
    assert!(!settle.contains("--fail-after-approval"), "{settle}");
    assert!(settle.contains("--timeout-ms"), "{settle}");

    // The control: a sale has a slip to jam on.
    let sale = poskit(&["pos", "--terminal", "x", "sale", "--help"]);
    let sale = String::from_utf8(sale.stdout).unwrap();
    assert!(sale.contains("--fail-after-approval"), "{sale}");

    let line = one_line_error(
        &poskit(&["pos", "--terminal", "x", "settle", "--fail-after-approval"]),
        2,
    );
    assert!(line.contains("'--fail-after-approval'"), "{line}");
}

#[test]
fn a_full_standard_output_is_one_line_and_exit_1() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    for args in [
        &["host", "demo-data", "--json"][..],
        &["host", "demo-data"],
        &[
            "mac",
            "--algo",
            "cup-ecb",
            "--key",
            "0123456789ABCDEF",
            "--data",
            "00",
        ],
    ] {
        let o = poskit_to(args, Stdio::from(full.try_clone().unwrap()));
        let line = one_line_error(&o, 1);
        assert!(
            line.starts_with("poskit: cannot write to standard output: "),
            "{args:?}: {line}"
        );
    }
}

#[test]
fn a_closed_pipe_on_standard_output_ends_the_command_quietly() {
    for args in [&["host", "demo-data", "--json"][..], &["host", "demo-data"]] {
        // The reading end is closed before the command starts: its first write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = poskit_to(args, Stdio::from(writer));
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }
}
