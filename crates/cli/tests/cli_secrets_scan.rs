//! Issue #24 §4, the proof for keys and card data at rest: after a demo, a simulation and
//! a simulation over the network against a host process (logs at debug, JSON output), no
//! file any of them wrote — databases with their -wal and -shm, logs, clearing files,
//! JSON, whatever is there — holds a full card number, track 2, a PIN block, a clear key
//! or a key-encryption key. Every file is scanned as raw bytes for each secret the run
//! used, in each form it could be stored in (ASCII, packed BCD as fields 2 and 35 are
//! encoded, raw bytes, hex in either case). A masked card number (first 6, last 4) is not
//! a finding; the one thing allowed is a data directory's `kek` file holding its own KEK.
//! The test fails with every finding: file, what kind of secret, which one (masked), in
//! which form, how often and where first.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use aho_corasick::{AhoCorasick, MatchKind};
use poskit_host::demo;
use poskit_host::pinhash::{PVK_BYTES, PinHasher};
use poskit_host::store::atrest::KeyRole;
use poskit_security::{Pin, PinBlockFormat, SecretKey, encrypt_pin, pin_block_format0};

/// Terminals of the demo, and of each simulation.
const DEMO_TERMINALS: u32 = 3;
const SIM_TERMINALS: u32 = 3;
/// The PINs the runs' cardholders type: the demo PIN, and the wrong one of the workload.
const PINS: [&str; 2] = [demo::DEMO_PIN, "000000"];
/// What the log of every process is filtered at.
const LOG_LEVEL: &str = "debug";

/// One secret in one of its forms.
struct Pattern {
    bytes: Vec<u8>,
    kind: &'static str,
    /// Which one, masked (a card as first 6 / last 4, a key by its role and terminal).
    which: String,
    form: &'static str,
    /// The one file it may be in (a KEK in its own `kek` file).
    allowed_in: Option<PathBuf>,
}

#[derive(Default)]
struct Patterns(Vec<Pattern>);

impl Patterns {
    fn add(&mut self, bytes: Vec<u8>, kind: &'static str, which: &str, form: &'static str) {
        // A pattern of one repeated byte (a zero half of a key) would match everywhere.
        if bytes.len() < 8 || bytes.iter().all(|b| *b == bytes[0]) {
            return;
        }
        self.0.push(Pattern {
            bytes,
            kind,
            which: which.to_owned(),
            form,
            allowed_in: None,
        });
    }

    /// A key's raw bytes and hex in both cases, and of each half of a 16-byte key.
    fn key(&mut self, kind: &'static str, which: &str, key: &[u8]) {
        self.add(key.to_vec(), kind, which, "raw bytes");
        self.add(hex::encode_upper(key).into_bytes(), kind, which, "hex");
        self.add(
            hex::encode(key).into_bytes(),
            kind,
            which,
            "hex, lower case",
        );
        if key.len() == 16 {
            for (half, form) in [(&key[..8], "first half"), (&key[8..], "second half")] {
                self.add(half.to_vec(), kind, which, form);
                self.add(hex::encode_upper(half).into_bytes(), kind, which, form);
                self.add(hex::encode(half).into_bytes(), kind, which, form);
            }
        }
    }

    /// A card: its number and track 2 in ASCII and packed BCD (either nibble alignment),
    /// and its clear format 0 PIN blocks for the PINs typed with it.
    fn card(&mut self, pan: &str, expiry: &str) {
        let which = format!("card {}", masked(pan));
        self.add(pan.as_bytes().to_vec(), "card number", &which, "ASCII");
        let digits = nibbles(pan);
        self.add(packed(&digits), "card number", &which, "packed BCD");
        self.add(
            packed(&digits[1..]),
            "card number",
            &which,
            "packed BCD, odd nibble",
        );
        let track2 = format!("{pan}={expiry}");
        self.add(track2.clone().into_bytes(), "track 2", &which, "ASCII");
        let t = nibbles(&track2);
        self.add(packed(&t), "track 2", &which, "packed BCD");
        self.add(packed(&t[1..]), "track 2", &which, "packed BCD, odd nibble");
        for pin in PINS {
            let pin = Pin::new(pin).unwrap();
            let block = pin_block_format0(pan, &pin).unwrap();
            let bytes = block.dangerous_expose();
            let kind = "clear PIN block";
            self.add(bytes.to_vec(), kind, &which, "raw bytes");
            self.add(hex::encode_upper(bytes).into_bytes(), kind, &which, "hex");
            self.add(
                hex::encode(bytes).into_bytes(),
                kind,
                &which,
                "hex, lower case",
            );
        }
    }

    /// The PIN blocks of every card encrypted under a terminal's PIK (what field 52 carries).
    fn encrypted_pin_blocks(&mut self, tid: &str, pik: &SecretKey, cards: &[(String, String)]) {
        for (pan, _) in cards {
            for pin in PINS {
                let pin = Pin::new(pin).unwrap();
                let Ok(block) = encrypt_pin(PinBlockFormat::Iso0, pik, pan, &pin) else {
                    continue;
                };
                let which = format!("card {} at terminal {tid}", masked(pan));
                let bytes = block.dangerous_expose();
                let kind = "encrypted PIN block";
                self.add(bytes.to_vec(), kind, &which, "raw bytes");
                self.add(hex::encode_upper(bytes).into_bytes(), kind, &which, "hex");
            }
        }
    }
}

/// First 6 and last 4 digits.
fn masked(pan: &str) -> String {
    format!("{}****{}", &pan[..6], &pan[pan.len() - 4..])
}

/// Digits (and the track 2 separator, D in BCD) as nibbles.
fn nibbles(text: &str) -> Vec<u8> {
    text.bytes()
        .map(|c| match c {
            b'0'..=b'9' => c - b'0',
            _ => 0xD,
        })
        .collect()
}

/// Nibbles packed two to a byte (a last odd nibble left out: its pad is unknown).
fn packed(nibbles: &[u8]) -> Vec<u8> {
    nibbles.chunks_exact(2).map(|p| p[0] << 4 | p[1]).collect()
}

// ---- the runs ---------------------------------------------------------------------------

fn poskit() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_poskit"));
    c.env("LANG", "C").env("RUST_LOG", LOG_LEVEL);
    c
}

/// Runs `cmd` with its standard output and error in `logs/<name>.stdout|.stderr`.
fn run_logged(root: &Path, name: &str, cmd: &mut Command) {
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let out = std::fs::File::create(logs.join(format!("{name}.stdout"))).unwrap();
    let err = std::fs::File::create(logs.join(format!("{name}.stderr"))).unwrap();
    let status = cmd.stdout(out).stderr(err).status().unwrap();
    let stderr = std::fs::read_to_string(logs.join(format!("{name}.stderr"))).unwrap();
    assert!(status.success(), "{name}: {status}\n{stderr}");
}

/// `poskit demo`: a host and its terminals' journals under `demo/`.
fn run_demo(root: &Path) {
    let data = root.join("demo");
    let terminals = DEMO_TERMINALS.to_string();
    run_logged(
        root,
        "demo",
        poskit()
            .args([
                "demo",
                "--seconds",
                "3",
                "--terminals",
                &terminals,
                "--lang",
                "en",
            ])
            .arg("--data")
            .arg(&data),
    );
}

/// The deterministic simulation (its host and journals live and die in temporary
/// directories, pointed into the scanned tree): its JSON report.
fn run_sim(root: &Path) {
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let terminals = SIM_TERMINALS.to_string();
    run_logged(
        root,
        "sim",
        poskit()
            .args(["sim", "--terminals", &terminals, "--transactions", "150"])
            .args(["--seed", "7", "--faults", "mild", "--json"])
            .env("TMPDIR", &tmp),
    );
}

/// A host process (`net-host/`, its log at debug in `logs/net-host.stderr`) and the
/// simulation's real-network mode against it through the fault proxy.
fn run_network_sim(root: &Path) {
    let data = root.join("net-host");
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let err = std::fs::File::create(logs.join("net-host.stderr")).unwrap();
    let mut host = poskit()
        .args([
            "host",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--demo",
        ])
        .arg("--data")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(host.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let copy = std::thread::spawn({
        let path = logs.join("net-host.stdout");
        let first = first.clone();
        move || {
            let mut rest = Vec::new();
            let _ = stdout.read_to_end(&mut rest);
            let mut file = std::fs::File::create(path).unwrap();
            file.write_all(first.as_bytes()).unwrap();
            file.write_all(&rest).unwrap();
        }
    });
    let addr = first
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    let terminals = SIM_TERMINALS.to_string();
    run_logged(
        root,
        "sim-network",
        poskit()
            .args(["sim", "--host", &addr, "--host-data"])
            .arg(&data)
            .args(["--terminals", &terminals, "--transactions", "60"])
            .args(["--faults", "mild", "--json"])
            .env("TMPDIR", root.join("tmp")),
    );
    // A clean stop (SIGTERM: drain, checkpoint), as an operator stops it.
    let term = Command::new("kill")
        .args(["-TERM", &host.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(host.wait().unwrap().success());
    copy.join().unwrap();
}

// ---- the secrets ------------------------------------------------------------------------

/// The cards the runs use: the demo data set (its scenario and fleet cards) and the
/// deterministic simulation's own (`poskit_sim::world`: per terminal a card, a card for
/// wrong PINs and one of an external issuer, all with expiry 3012).
fn cards() -> Vec<(String, String)> {
    let mut cards: Vec<(String, String)> = demo::data_set(&PinHasher::from_key([0; PVK_BYTES]))
        .cards
        .iter()
        .map(|c| (c.pan.digits().to_owned(), c.expiry.clone()))
        .collect();
    for i in 0..SIM_TERMINALS {
        for pan in [
            demo::demo_pan(demo::OWN_BIN, 500_000 + i),
            demo::demo_pan(demo::OWN_BIN, 700_000 + i),
            demo::demo_pan(demo::EXTERNAL_BIN, 600_000 + i),
        ] {
            cards.push((pan, "3012".into()));
        }
    }
    cards
}

/// Each host's terminals' working keys, unwrapped with the host's KEK.
fn working_keys(host_dir: &Path) -> Vec<(String, SecretKey, SecretKey)> {
    let (conn, keys) = poskit_host::DataDir::existing(host_dir)
        .open_keys()
        .unwrap_or_else(|e| panic!("{}: {e}", host_dir.display()));
    let rows: Vec<(String, Vec<u8>, Vec<u8>)> = conn
        .prepare("SELECT tid, pik, mak FROM terminals WHERE pik IS NOT NULL AND mak IS NOT NULL")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    rows.into_iter()
        .map(|(tid, pik, mak)| {
            let pik = keys.unwrap_key(KeyRole::Pik, &tid, &pik).unwrap();
            let mak = keys.unwrap_key(KeyRole::Mak, &tid, &mak).unwrap();
            (tid, pik, mak)
        })
        .collect()
}

/// Every secret of the runs under `root` (read after the files were: opening a ledger
/// with its keys may write).
fn secrets(root: &Path, files: &[(PathBuf, Vec<u8>)]) -> Patterns {
    let mut p = Patterns::default();
    let cards = cards();
    for (pan, expiry) in &cards {
        p.card(pan, expiry);
    }
    let tmk = SecretKey::from_hex(demo::DEMO_TMK).unwrap();
    p.key(
        "terminal master key",
        "the demo TMK",
        tmk.dangerous_expose(),
    );
    let mut signed_in = 0;
    for host in ["demo/host", "net-host"] {
        for (tid, pik, mak) in working_keys(&root.join(host)) {
            let (pik_bytes, mak_bytes) = (pik.dangerous_expose(), mak.dangerous_expose());
            p.key(
                "PIN key (PIK)",
                &format!("terminal {tid}'s PIK at {host}"),
                pik_bytes,
            );
            p.key(
                "MAC key (MAK)",
                &format!("terminal {tid}'s MAK at {host}"),
                mak_bytes,
            );
            p.encrypted_pin_blocks(&tid, &pik, &cards);
            signed_in += 1;
        }
    }
    assert!(signed_in >= 2, "the runs' terminals signed in: {signed_in}");
    for (path, bytes) in files.iter().filter(|(p, _)| p.ends_with("kek")) {
        let key = hex::decode(String::from_utf8_lossy(bytes).trim())
            .unwrap_or_else(|_| panic!("{}: not hex", path.display()));
        assert_eq!(key.len(), 32, "{}", path.display());
        let before = p.0.len();
        p.key(
            "key-encryption key",
            &format!("the KEK of {}", path.display()),
            &key,
        );
        for pattern in &mut p.0[before..] {
            pattern.allowed_in = Some(path.clone());
        }
    }
    p
}

// ---- the scan ---------------------------------------------------------------------------

/// Every file under `dir`, relative to `root`, with its bytes.
fn read_tree(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read_tree(root, &path, out);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            out.push((path.strip_prefix(root).unwrap().to_path_buf(), bytes));
        }
    }
}

/// Where one secret in one form was found in one file: how often, and first where.
#[derive(Default)]
struct Found {
    count: u64,
    first_at: usize,
}

/// (file, kind, which, form) → found; and what was allowed (a KEK in its own file).
type Findings = BTreeMap<(PathBuf, &'static str, String, &'static str), Found>;

fn scan(files: &[(PathBuf, Vec<u8>)], patterns: &Patterns) -> (Findings, Vec<PathBuf>) {
    let matcher = AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .build(patterns.0.iter().map(|p| &p.bytes))
        .unwrap();
    let mut findings = Findings::new();
    let mut allowed = Vec::new();
    for (path, bytes) in files {
        let matches: Vec<(usize, usize, &Pattern)> = matcher
            .find_overlapping_iter(bytes)
            .map(|m| (m.start(), m.end(), &patterns.0[m.pattern().as_usize()]))
            .collect();
        for &(start, end, p) in &matches {
            if p.allowed_in.as_deref() == Some(path.as_path()) {
                allowed.push(path.clone());
                continue;
            }
            // Said once, in its largest form: a card number inside its track 2, half a
            // key inside the key.
            let covered = matches.iter().any(|&(s, e, q)| {
                q.which == p.which && s <= start && end <= e && e - s > end - start
            });
            if covered {
                continue;
            }
            let key = (path.clone(), p.kind, p.which.clone(), p.form);
            let found = findings.entry(key).or_default();
            if found.count == 0 {
                found.first_at = start;
            }
            found.count += 1;
        }
    }
    allowed.dedup();
    (findings, allowed)
}

/// The findings as a report: a count per kind of secret and per file, then each one.
fn report(findings: &Findings) -> String {
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_file: BTreeMap<&Path, usize> = BTreeMap::new();
    for (file, kind, _, _) in findings.keys() {
        *by_kind.entry(kind).or_default() += 1;
        *by_file.entry(file).or_default() += 1;
    }
    let mut text = format!("{} secrets found at rest\n  by kind:", findings.len());
    for (kind, n) in &by_kind {
        text.push_str(&format!(" {kind} ×{n};"));
    }
    text.push_str("\n  by file:");
    for (file, n) in &by_file {
        text.push_str(&format!(" {} ×{n};", file.display()));
    }
    text.push('\n');
    for ((file, kind, which, form), found) in findings {
        text.push_str(&format!(
            "  {}: {kind}, {which}, as {form}: {} time(s), first at byte {}\n",
            file.display(),
            found.count,
            found.first_at
        ));
    }
    text
}

#[test]
fn no_card_number_track_pin_block_or_clear_key_in_anything_the_runs_wrote() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path();
    run_demo(root);
    run_sim(root);
    run_network_sim(root);
    let mut files = Vec::new();
    read_tree(root, root, &mut files);
    files.sort();
    let patterns = secrets(root, &files);
    let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    // The scan saw what the runs wrote: both ledgers, the journals, the logs, the JSON.
    for wanted in [
        "demo/host/host.sqlite",
        "demo/terminals/10100001/journal.sqlite",
        "net-host/host.sqlite",
        "logs/net-host.stderr",
        "logs/sim.stdout",
        "logs/sim-network.stdout",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} not in {names:?}"
        );
    }
    let host_log = &files
        .iter()
        .find(|(p, _)| p.ends_with("logs/net-host.stderr"))
        .unwrap()
        .1;
    assert!(
        String::from_utf8_lossy(host_log).contains("answered"),
        "the host logged its answers"
    );
    let (findings, allowed) = scan(&files, &patterns);
    // The scan reads what it should: each KEK is found in its own file (and only there).
    let keks: Vec<&PathBuf> = files
        .iter()
        .map(|(p, _)| p)
        .filter(|p| p.ends_with("kek"))
        .collect();
    assert!(keks.len() >= 2, "a kek file per host: {names:?}");
    for kek in keks {
        assert!(
            allowed.contains(kek),
            "{}: its own KEK not found in it",
            kek.display()
        );
    }
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    eprintln!(
        "scanned {} files ({bytes} bytes) for {} patterns",
        files.len(),
        patterns.0.len()
    );
    assert!(findings.is_empty(), "{}", report(&findings));
}
