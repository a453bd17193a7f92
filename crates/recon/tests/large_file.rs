//! The switch's file is read in chunks (`FILE_CHUNK_BYTES`): a file larger than one chunk
//! is read whole, and a bad line in a later chunk stops the run with its line in the file
//! and keeps nothing.

use poskit_clearing::{ClearingDate, FILE_CHUNK_BYTES, FileKind, TxnRecord, write_file};
use poskit_domain::calendar::{ClearingCut, day_of_yyyymmdd};
use poskit_recon::Class;
use poskit_recon::run::{Options, ReconError, run};

/// Records enough for the file to span two chunks and a part of a third.
fn records() -> Vec<TxnRecord> {
    let count = FILE_CHUNK_BYTES / 952 * 2 + 1_000;
    (0..count as u32)
        .map(|i| TxnRecord {
            acquirer_inst: "08010000".into(),
            forwarding_inst: "08010000".into(),
            stan: i % 999_999 + 1,
            transmission_time: format!("0304{:06}", 100_000 + i % 100_000),
            pan_masked: "622202******7890".into(),
            amount_fen: 1_000 + u64::from(i),
            mti: "0200".into(),
            processing_code: "000000".into(),
            tid: "10000001".into(),
            mid: "898310048160001".into(),
            rrn: format!("{:012}", i + 1),
            response_code: "00".into(),
            merchant_name: "北京市朝阳区某某便利店".into(),
            currency: "156".into(),
            ..TxnRecord::default()
        })
        .collect()
}

fn options(clearing: &std::path::Path) -> Options {
    Options {
        day: day_of_yyyymmdd("20250304").unwrap(),
        clearing_dir: clearing.to_path_buf(),
        cut: ClearingCut::default(),
        acquirer: "08010000".into(),
        near_cut_ms: 0,
        keep_matched: false,
        now_ms: 4_000_000_000_000,
    }
}

#[test]
fn a_bad_line_in_a_later_chunk_names_its_line_and_nothing_is_kept() {
    let data = tempfile::tempdir().unwrap();
    let mut host = poskit_host::store::sqlite::open(data.path()).unwrap();
    let state = rusqlite::Connection::open(data.path().join("recon.db")).unwrap();
    let date = ClearingDate::new(2025, 3, 4).unwrap();
    let records = records();
    let path = write_file(data.path(), FileKind::Acoma, date, &records).unwrap();
    let opts = options(data.path());
    let mut bytes = std::fs::read(&path).unwrap();
    // The second chunk starts near record FILE_CHUNK_BYTES / 952; damage one well past it.
    let bad_line = FILE_CHUNK_BYTES / 952 + 2_000;
    let profile = poskit_clearing::Profile::builtin(FileKind::Acoma);
    let stan = &profile.fields()[profile.index_of("stan").unwrap()];
    bytes[(bad_line - 1) * 952 + stan.offset] = b'X';
    std::fs::write(&path, &bytes).unwrap();
    match run(&mut host, &state, &opts) {
        Err(ReconError::Input(why)) => {
            assert!(
                why.contains(&format!("line {bad_line}, field stan")),
                "{why}"
            );
        }
        other => panic!("a damaged file must be refused: {other:?}"),
    }
    let kept: i64 = state
        .query_row("SELECT count(*) FROM recon_days", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 0, "nothing of a refused run is kept");

    // The same file undamaged: every record read (none is on the host: all class B).
    write_file(data.path(), FileKind::Acoma, date, &records).unwrap();
    let report = run(&mut host, &state, &opts).unwrap();
    assert_eq!(report.breaks.len(), records.len());
    assert!(report.breaks.iter().all(|b| b.class == Class::B));
    let last = report
        .breaks
        .iter()
        .filter_map(|b| b.records.switch.as_ref());
    let lines: Vec<u64> = last.map(|s| s["line"].as_u64().unwrap()).collect();
    assert_eq!(lines.iter().max(), Some(&(records.len() as u64)));
}
