//! Keys and card numbers at rest (DESIGN.md, invariant 8): a ledger of the version before
//! the key store (a fixture written by it) is sealed in place by the first keyed open; a
//! wrong key-encryption key is refused with nothing changed; a host on the sealed ledger
//! still approves.

mod support;

use std::path::Path;

use poskit_host::demo;
use poskit_host::pinhash::PinHasher;
use poskit_host::{DataDir, PVK_FILE};
use poskit_keystore::{KekSource, LocalKek, envelope};
use support::{TestHost, fleet, sale};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testing/fixtures/before-keystore"
);

/// Every byte of every file under `dir`.
fn all_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn found_in(files: &[(String, Vec<u8>)], needle: &[u8]) -> Vec<String> {
    files
        .iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle))
        .map(|(name, _)| name.clone())
        .collect()
}

/// The fixture's ledger (written by the version before the key store), copied.
fn old_ledger() -> tempfile::TempDir {
    let temp = tempfile::tempdir().unwrap();
    for name in ["host.sqlite", PVK_FILE] {
        std::fs::copy(Path::new(FIXTURE).join(name), temp.path().join(name)).unwrap();
    }
    temp
}

#[test]
fn a_ledger_of_the_version_before_is_sealed_in_place_and_keeps_working() {
    let temp = old_ledger();
    let set = demo::data_set(&PinHasher::from_key([0; 32]));
    let before = all_bytes(temp.path());
    let pan = set.cards[0].pan.digits().to_owned();
    assert!(
        !found_in(&before, pan.as_bytes()).is_empty(),
        "the fixture holds card numbers in clear"
    );
    let tmk = hex::decode(demo::DEMO_TMK).unwrap();
    assert!(!found_in(&before, &tmk).is_empty(), "and master keys");

    let dir = DataDir::existing(temp.path());
    drop(dir.open_keys().unwrap());
    let after = all_bytes(temp.path());
    for card in &set.cards {
        let digits = card.pan.digits();
        assert_eq!(
            found_in(&after, digits.as_bytes()),
            Vec::<String>::new(),
            "card {}",
            card.pan
        );
    }
    assert_eq!(
        found_in(&after, &tmk),
        Vec::<String>::new(),
        "no master key in clear"
    );
    assert!(
        !temp.path().join(PVK_FILE).exists(),
        "the PIN key moved into the ledger"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for name in ["host.sqlite", "kek"] {
            let mode = std::fs::metadata(temp.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }
    let db = dir.open_keys().unwrap().0;
    let wrapped: Vec<Vec<u8>> = db
        .prepare("SELECT tmk FROM terminals")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!wrapped.is_empty() && wrapped.iter().all(|w| envelope::is_envelope(w)));
    let found: i64 = db
        .query_row(
            "SELECT count(*) FROM cards WHERE pan_hash = pan_hash(?1)",
            [&pan],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(found, 1, "a card is found by its number's keyed hash");
    drop(db);

    // The host on the sealed ledger: a sign-in and a sale with a PIN (the PIN key moved).
    let host = TestHost::start_in(temp.path().to_path_buf(), Default::default());
    let s = fleet(3);
    let mut t = host.signed_in(&s);
    assert_eq!(t.send(&sale(&s, 1_234)).unwrap().code(), "00");
    drop(host);
    let last = all_bytes(temp.path());
    assert_eq!(
        found_in(&last, s.pan.as_bytes()),
        Vec::<String>::new(),
        "the sale left no card number"
    );
}

#[test]
fn a_wrong_key_encryption_key_is_refused_and_changes_nothing() {
    let temp = old_ledger();
    let dir = DataDir::existing(temp.path());
    drop(dir.open_keys().unwrap());
    let before = all_bytes(temp.path());

    let other = temp.path().join("other.kek");
    let (_, key) = LocalKek::generate("test").unwrap();
    LocalKek::write_new(&other, &key).unwrap();
    let wrong = DataDir::existing(temp.path()).with_kek(KekSource::File(other.clone()));
    let err = wrong.open_keys().unwrap_err().to_string();
    assert!(
        err.contains("is not the one these keys were wrapped under"),
        "{err}"
    );
    let mut after = all_bytes(temp.path());
    after.retain(|(name, _)| !name.ends_with("other.kek"));
    let unchanged = |files: &[(String, Vec<u8>)]| {
        files
            .iter()
            .filter(|(name, _)| !name.ends_with("-shm"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(unchanged(&before) == unchanged(&after), "nothing written");

    // A data directory whose KEK file went missing does not get a new one.
    std::fs::remove_file(temp.path().join("kek")).unwrap();
    let err = DataDir::existing(temp.path())
        .open_keys()
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
    assert!(!temp.path().join("kek").exists());
}
