//! A terminal journal at rest (DESIGN.md, invariant 8): a journal of the version before the
//! key store (a fixture it wrote: clear keys, 47 swipes with their track 2) is sealed in
//! place on its first open — no track data, card number or key left in the file — and
//! reads back the same; a wrong key-encryption key is refused; a rotation re-wraps.

use std::path::Path;

use poskit_domain::message::CardData;
use poskit_keystore::{KekSource, LocalKek};
use poskit_security::SecretKey;
use poskit_terminal::journal::{JOURNAL_FILE, Journal};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testing/fixtures/before-keystore/journal.sqlite"
);

fn bytes_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

fn holding(files: &[(String, Vec<u8>)], needle: &[u8]) -> Vec<String> {
    files
        .iter()
        .filter(|(_, b)| b.windows(needle.len()).any(|w| w == needle))
        .map(|(n, _)| n.clone())
        .collect()
}

fn old_journal() -> tempfile::TempDir {
    let temp = tempfile::tempdir().unwrap();
    std::fs::copy(FIXTURE, temp.path().join(JOURNAL_FILE)).unwrap();
    temp
}

#[test]
fn a_journal_of_the_version_before_is_sealed_in_place_and_reads_back_the_same() {
    let temp = old_journal();
    let dir = temp.path();
    let before = rusqlite::Connection::open(dir.join(JOURNAL_FILE)).unwrap();
    let tracks: Vec<String> = before
        .prepare("SELECT card_data FROM txns WHERE card_kind = 'track2'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(before);
    assert!(tracks.len() > 10, "the fixture holds swipes");
    let tmk = hex::decode(poskit_host::demo::DEMO_TMK).unwrap();
    assert!(
        !holding(&bytes_of(dir), &tmk).is_empty(),
        "and its master key in clear"
    );

    let kek = KekSource::resolve(None, dir);
    let journal = Journal::open(dir, &kek).unwrap();
    let txns = journal.txns(None).unwrap();
    let (cfg, _) = journal.config().unwrap();
    assert!(cfg.tmk == SecretKey::from_hex(poskit_host::demo::DEMO_TMK).unwrap());
    assert!(
        journal.snapshot().unwrap().keys.is_some(),
        "working keys read back"
    );
    drop(journal);

    let after = bytes_of(dir);
    for track in &tracks {
        let pan = track.split('=').next().unwrap();
        assert_eq!(
            holding(&after, track.as_bytes()),
            Vec::<String>::new(),
            "track data"
        );
        assert_eq!(
            holding(&after, pan.as_bytes()),
            Vec::<String>::new(),
            "card {pan}"
        );
    }
    assert_eq!(
        holding(&after, &tmk),
        Vec::<String>::new(),
        "no master key in clear"
    );
    // The swipes read back as kept cards: their number and expiry, no track.
    let swiped: Vec<&CardData> = txns
        .iter()
        .filter_map(|t| t.card.as_ref())
        .filter(|c| matches!(c, CardData::Kept { swiped: true, .. }))
        .collect();
    assert_eq!(swiped.len(), tracks.len());
    for (card, track) in swiped.iter().zip(&tracks) {
        assert_eq!(card.pan(), track.split('=').next().unwrap());
        assert_eq!(card.expiry(), CardData::Track2(track.clone()).expiry());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for name in [JOURNAL_FILE, "kek"] {
            let mode = std::fs::metadata(dir.join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }
}

#[test]
fn a_wrong_key_is_refused_and_a_rotation_rewraps_under_the_new_one() {
    let temp = old_journal();
    let dir = temp.path();
    let kek = KekSource::resolve(None, dir);
    let first = Journal::open(dir, &kek).unwrap().txns(None).unwrap().len();

    let other = dir.join("other.kek");
    let (_, key) = LocalKek::generate("test").unwrap();
    LocalKek::write_new(&other, &key).unwrap();
    let wrong = KekSource::File(other.clone());
    let err = Journal::open(dir, &wrong)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("is not the one these keys were wrapped under"),
        "{err}"
    );

    let next = LocalKek::load(&other).unwrap();
    let moved = Journal::open(dir, &kek).unwrap().rotate_kek(&next).unwrap();
    assert_eq!(moved, 5, "master key, two working keys, two data keys");
    assert!(
        Journal::open(dir, &kek).is_err(),
        "the old key no longer opens it"
    );
    let journal = Journal::open(dir, &wrong).unwrap();
    assert_eq!(journal.txns(None).unwrap().len(), first);
    assert!(journal.config().is_ok());
}
