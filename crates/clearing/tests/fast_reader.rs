//! The fast key path agrees with the typed parser, in one piece and in parallel chunks,
//! on records and on errors.

mod common;

use common::{date, txn};
use poskit_clearing::{
    FileKind, KeyView, Profile, RecordReader, Records, TxnRecord, digits_u64, for_each_txn_key,
    for_each_txn_key_in_file, par_fold_txn_keys, parse_bytes, write_records,
};

fn file(kind: FileKind, count: u32) -> Vec<u8> {
    let records: Vec<TxnRecord> = (0..count).map(txn).collect();
    let mut bytes = Vec::new();
    write_records(&mut bytes, Profile::builtin(kind), date(), &records).unwrap();
    bytes
}

/// The keys of a typed record, as the fast path gives them.
fn typed_keys(r: &TxnRecord) -> String {
    format!(
        "{} {} {} {} {} {} {} {} {} {} {} {} {} {:?} {:?}",
        r.stan,
        r.transmission_time,
        r.amount_fen,
        r.pan_masked,
        r.mti,
        r.processing_code,
        r.tid,
        r.mid,
        r.rrn,
        r.auth_code,
        r.response_code,
        r.reversal,
        r.voided,
        r.original_stan,
        r.original_time,
    )
}

fn view_keys(k: &KeyView<'_>) -> String {
    format!(
        "{} {} {} {} {} {} {} {} {} {} {} {} {} {:?} {:?}",
        k.stan,
        k.transmission_time,
        k.amount_fen,
        k.pan_masked,
        k.mti,
        k.processing_code,
        k.tid,
        k.mid,
        k.rrn,
        k.auth_code,
        k.response_code,
        k.reversal,
        k.voided,
        k.original_stan,
        k.original_time.map(str::to_owned),
    )
}

#[test]
fn the_fast_path_agrees_with_the_typed_parser() {
    for kind in [FileKind::Acoma, FileKind::Acomn] {
        let profile = Profile::builtin(kind);
        let bytes = file(kind, 2_000);
        let Records::Txn(typed) = parse_bytes(&bytes, profile, date()).unwrap() else {
            panic!("transactions")
        };
        let mut fast = Vec::new();
        let count = for_each_txn_key(&bytes, profile, Some(date()), |key| {
            fast.push(view_keys(key));
        })
        .unwrap();
        assert_eq!(count, 2_000);
        let typed: Vec<String> = typed.iter().map(typed_keys).collect();
        assert_eq!(fast, typed, "{kind}");

        for threads in [1, 2, 3, 7] {
            let chunks = par_fold_txn_keys(
                &bytes,
                profile,
                Some(date()),
                threads,
                Vec::new,
                |acc, key| {
                    acc.push(view_keys(key));
                },
            )
            .unwrap();
            assert_eq!(chunks.concat(), typed, "{kind} on {threads} threads");
        }
    }
}

#[test]
fn errors_agree_and_carry_the_files_line_in_parallel() {
    let profile = Profile::builtin(FileKind::Acoma);
    let mut bytes = file(FileKind::Acoma, 1_000);
    let field = &profile.fields()[profile.index_of("tid").unwrap()];
    bytes[(876 - 1) * 952 + field.offset] = 0x01;
    let typed = parse_bytes(&bytes, profile, date())
        .unwrap_err()
        .to_string();
    assert!(
        typed.starts_with("line 876, field tid (12): not printable ASCII"),
        "{typed}"
    );
    let fast = for_each_txn_key(&bytes, profile, Some(date()), |_| {}).unwrap_err();
    assert_eq!(fast.to_string(), typed);
    for threads in [2, 4, 5] {
        let err = par_fold_txn_keys(&bytes, profile, Some(date()), threads, || (), |_, _| {})
            .unwrap_err();
        assert_eq!(err.to_string(), typed, "{threads} threads");
    }
}

/// The file written to a temporary directory under its switch's name.
fn on_disk(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("IND25030432ACOMA");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn a_file_read_in_chunks_gives_every_record_with_its_line() {
    let profile = Profile::builtin(FileKind::Acoma);
    let bytes = file(FileKind::Acoma, 1_000);
    let mut whole = Vec::new();
    for_each_txn_key(&bytes, profile, Some(date()), |key| {
        whole.push(view_keys(key))
    })
    .unwrap();
    let (_dir, path) = on_disk(&bytes);
    // Chunks smaller than a record, of a few records, cut mid-record, and the whole file.
    for chunk_bytes in [100, 952 * 3, 952 * 7 + 500, 1 << 20] {
        let (mut keys, mut lines) = (Vec::new(), Vec::new());
        let count = for_each_txn_key_in_file(&path, profile, Some(date()), chunk_bytes, |key| {
            keys.push(view_keys(key));
            lines.push(key.line());
        })
        .unwrap();
        assert_eq!(count, 1_000, "{chunk_bytes}");
        assert_eq!(keys, whole, "{chunk_bytes}");
        assert!(lines.iter().copied().eq(1..=1_000), "{chunk_bytes}");
    }
}

#[test]
fn a_bad_line_in_a_later_chunk_is_reported_with_its_line_in_the_file() {
    let profile = Profile::builtin(FileKind::Acoma);
    let mut bytes = file(FileKind::Acoma, 1_000);
    let field = &profile.fields()[profile.index_of("tid").unwrap()];
    // Line 876: in the second chunk of 600 records, in the ninth of about 100.
    bytes[(876 - 1) * 952 + field.offset] = 0x01;
    let typed = parse_bytes(&bytes, profile, date())
        .unwrap_err()
        .to_string();
    let (_dir, path) = on_disk(&bytes);
    for chunk_bytes in [952 * 600, 952 * 100 + 17] {
        let mut seen = 0u64;
        let err =
            for_each_txn_key_in_file(&path, profile, Some(date()), chunk_bytes, |_| seen += 1)
                .unwrap_err();
        assert_eq!(err.to_string(), typed, "{chunk_bytes}");
        assert_eq!(err.line(), Some(876));
        // Records before the bad line were seen; nothing after it.
        assert!(seen <= 875, "{seen}");
    }
    // A last line cut short, and a missing file.
    let whole = file(FileKind::Acoma, 10);
    let (_dir, path) = on_disk(&whole[..whole.len() - 30]);
    let err = for_each_txn_key_in_file(&path, profile, Some(date()), 952 * 4, |_| {}).unwrap_err();
    assert!(err.to_string().starts_with("line 10: truncated"), "{err}");
    let missing = path.with_file_name("IND25030532ACOMA");
    let err = for_each_txn_key_in_file(&missing, profile, None, 1 << 20, |_| {}).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}

#[test]
fn the_raw_reader_gives_fields_by_offset() {
    let profile = Profile::builtin(FileKind::Acoma);
    let bytes = file(FileKind::Acoma, 3);
    let stan = profile.index_of("stan").unwrap();
    let stans: Vec<u64> = RecordReader::new(&bytes, profile, 1, Some(date()))
        .map(|raw| digits_u64(raw.unwrap().field(stan)).unwrap())
        .collect();
    assert_eq!(stans, [100_000, 100_001, 100_002]);
}

#[test]
fn the_fast_path_refuses_dispute_files() {
    let profile = Profile::builtin(FileKind::Aerra);
    let err = for_each_txn_key(b"", profile, None, |_| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        "AERRA files hold disputes, not transactions"
    );
}

/// Throughput of the fast path (`cargo test --release -p poskit-clearing --test
/// fast_reader -- --ignored --nocapture`): reconciliation needs 10 million ACOMA records
/// (9.5 GB) in 10 s on 2 cores, 0.95 GB/s.
#[test]
#[ignore = "a measurement, run in release"]
fn throughput() {
    let profile = Profile::builtin(FileKind::Acoma);
    let bytes = file(FileKind::Acoma, 200_000);
    for threads in [1, 2] {
        let start = std::time::Instant::now();
        let sums = par_fold_txn_keys(
            &bytes,
            profile,
            Some(date()),
            threads,
            || 0u64,
            |acc, key| {
                *acc = acc.wrapping_add(key.amount_fen ^ u64::from(key.stan));
            },
        )
        .unwrap();
        let secs = start.elapsed().as_secs_f64();
        let gbps = bytes.len() as f64 / secs / 1e9;
        println!("{threads} thread(s): {gbps:.2} GB/s ({} sums)", sums.len());
    }
}
