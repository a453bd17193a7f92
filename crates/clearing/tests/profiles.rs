//! Profiles: the built-in totals, a custom profile from a file, validation.

mod common;

use common::{date, txn};
use poskit_clearing::{FileKind, Profile, Records, parse_file, write_file_with};

#[test]
fn builtin_totals_are_the_specs() {
    let totals: Vec<_> = FileKind::ALL
        .into_iter()
        .map(|kind| {
            let profile = Profile::builtin(kind);
            let widths: usize = profile.fields().iter().map(|f| f.width).sum();
            assert_eq!(widths + profile.fields().len() - 1, profile.record_len());
            (kind, profile.fields().len(), profile.record_len())
        })
        .collect();
    assert_eq!(
        totals,
        [
            (FileKind::Acomn, 34, 299),
            (FileKind::Acoma, 69, 951),
            (FileKind::Aerra, 56, 581)
        ]
    );
}

/// The built-in ACOMA profile with the merchant name widened to 60 bytes and a reserved
/// field narrowed by 20, as an acquirer whose switch differs would write it.
fn custom_toml() -> String {
    Profile::builtin_toml(FileKind::Acoma)
        .replace(
            r#"name = "merchant_name", width = 40"#,
            r#"name = "merchant_name", width = 60"#,
        )
        .replace(
            r#"name = "reserved_60", width = 39"#,
            r#"name = "reserved_60", width = 19"#,
        )
}

#[test]
fn a_custom_profile_loads_from_a_file_and_reads_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let profile_path = dir.path().join("acoma-wide-names.toml");
    std::fs::write(&profile_path, custom_toml()).unwrap();
    let profile = Profile::load(&profile_path).unwrap();
    assert_eq!(profile.record_len(), 951);
    let name = &profile.fields()[profile.index_of("merchant_name").unwrap()];
    assert_eq!(name.width, 60);

    let mut record = txn(0);
    record.merchant_name = "上海市浦东新区陆家嘴环路一千号某某国际金融中心".into();
    let path = write_file_with(dir.path(), &profile, date(), &[record.clone()]).unwrap();
    let parsed = parse_file(&path, Some(&profile)).unwrap();
    assert_eq!(
        parsed.records,
        Records::Txn(vec![record]),
        "46 bytes fit in 60"
    );
    // The built-in profile reads the same bytes differently and refuses them.
    assert!(parse_file(&path, None).is_err());
}

#[test]
fn invalid_profiles_are_refused_with_a_reason() {
    let acoma = Profile::builtin_toml(FileKind::Acoma);
    let cases = [
        (
            acoma.replace(
                r#"name = "stan", width = 6, kind = "n""#,
                r#"name = "stan", width = 6, kind = "x""#,
            ),
            "field 3: unknown kind \"x\" (n, an, text or fee)",
        ),
        (
            acoma.replace(r#"name = "mcc", width = 4"#, r#"name = "mcc", width = 0"#),
            "field 11: width 0 (at least 1)",
        ),
        (
            acoma.replace(r#"name = "reserved_61""#, r#"name = "reserved_60""#),
            "field 61: the name \"reserved_60\" is used twice",
        ),
        (
            acoma.replace(r#"name = "rrn""#, r#"name = "ref""#),
            "ACOMA profiles need a field \"rrn\" (kind n or an)",
        ),
        (
            acoma.replace(
                r#"name = "amount_fen", width = 12, kind = "n""#,
                r#"name = "amount_fen", width = 12, kind = "an""#,
            ),
            "field amount_fen (6) must be kind n, at most 19 digits",
        ),
        (
            acoma.replace(r#"kind = "ACOMA""#, r#"kind = "ALFEE""#),
            "unknown file type \"ALFEE\" (ACOMN, ACOMA or AERRA)",
        ),
    ];
    for (text, wanted) in cases {
        assert_ne!(text, acoma, "the case changes the profile: {wanted}");
        let err = Profile::from_toml(&text).unwrap_err();
        assert_eq!(err.to_string(), wanted);
    }
}

#[test]
fn a_missing_profile_file_says_so() {
    let err = Profile::load(std::path::Path::new("/nonexistent/acoma.toml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/acoma.toml: cannot read the profile")
    );
}
