//! The built-in catalog against the specification notes: every code of
//! `testdata/response-codes.csv` (the repository's copy of `shared/spec/response-codes.csv`,
//! compared with it when `../shared` sits beside the repository) in the tables `data/SCHEMA.md` assigns it, in both
//! languages; the conflicts between tables; the local codes, vendor codes and symptom
//! guides the catalog promises; search; and a deployment's vendor file.

use std::collections::BTreeSet;

use poskit_codes::{
    Catalog, CatalogError, Class, Entry, Found, Lang, MoneyMoved, Operation, Retry, Table,
    UNKNOWN_CODE_CLASS, UNKNOWN_CODE_SYMPTOM,
};

const RESPONSE_CODES_CSV: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/response-codes.csv"
));

/// The specification notes beside the repository, where a checkout has them (CI does; a
/// user's clone does not). `None` outside CI when absent; in CI their absence fails.
fn shared_path(relative: &str) -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(relative);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI runs with ../shared beside the repository, but {} is missing",
        path.display()
    );
    eprintln!("skipped: {} is not beside this clone", path.display());
    None
}

#[test]
fn the_repository_copy_of_the_code_table_matches_the_specification_notes() {
    let Some(path) = shared_path("spec/response-codes.csv") else {
        return;
    };
    let notes = std::fs::read_to_string(&path).expect("the code table is UTF-8 text");
    assert!(
        notes == RESPONSE_CODES_CSV,
        "crates/codes/testdata/response-codes.csv differs from {}: copy it again",
        path.display()
    );
}

/// Table membership, from SCHEMA.md ("Table membership").
const CUP_POS: &str = "00-07 09 12-15 19-23 25 30 31 33-44 51-68 75 77 79 90-99 A0";
const CUP_SWITCH: &str = "00 01 03 04 05 10 11 12-16 21 22 25 30 34 38 40 41 43 45 51 54 55 57 58 59 61 62 64 65 68 \
                          75 90 91 92 94 96-99 A0-A8 B1 C1 D1-D9 DA DB DC F1-F5 N1 P1 Y1 Y3 Z1 Z3";
/// ISO 8583:1987: 00–68 as the CSV lists them, 75, 90–96.
const ISO87: &str = "00-44 51-68 75 90-96";
/// Codes a data author may or may not put in iso87: 45 is an ISO-reserved value the CSV
/// lists between 00 and 68; 97–99 are reserved for national use there.
const ISO87_OPTIONAL: &str = "45 97-99";

/// The CUP POS table gives its classes; every listed code not named here is C.
const CUP_POS_CLASS_A: &str = "00";
const CUP_POS_CLASS_B: &str = "09 13 14 42 99 A0";
const CUP_POS_CLASS_D: &str = "04 07 33-38 41 43 77 97";
const CUP_POS_CLASS_E: &str = "06 98";

/// Codes the specification notes list as meaning different things in different tables
/// (or at a known acquirer): every entry holding one of them names the conflict.
const CONFLICTING: &str = "05 12 21 22 25 38 63 97-99 D5-D7";

fn catalog() -> &'static Catalog {
    Catalog::builtin()
}

/// "00-07 19-23 A0-A8 D5" → the codes. A range of digits counts in decimal; a range of
/// letter codes runs over the second character.
fn codes(list: &str) -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    for item in list.split_whitespace() {
        let Some((first, last)) = item.split_once('-') else {
            codes.insert(item.to_owned());
            continue;
        };
        if let (Ok(first), Ok(last)) = (first.parse::<u8>(), last.parse::<u8>()) {
            codes.extend((first..=last).map(|number| format!("{number:02}")));
        } else {
            let (first, last) = (first.as_bytes(), last.as_bytes());
            assert_eq!(
                first[0], last[0],
                "a letter range stays within one leading letter: {item}"
            );
            codes.extend(
                (first[1]..=last[1])
                    .map(|second| format!("{}{}", first[0] as char, second as char)),
            );
        }
    }
    codes
}

#[test]
fn code_lists_expand_decimal_and_letter_ranges() {
    assert_eq!(codes("19-21 A0-A2 D5"), codes("19 20 21 A0 A1 A2 D5"));
    assert_eq!(
        codes(CUP_POS).len(),
        8 + 1 + 4 + 5 + 1 + 2 + 12 + 18 + 3 + 10 + 1
    );
}

fn csv_codes() -> Vec<String> {
    RESPONSE_CODES_CSV
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.split(',')
                .next()
                .expect("a row starts with its code")
                .to_owned()
        })
        .collect()
}

fn table_codes(table: Table) -> BTreeSet<String> {
    catalog()
        .entries(table)
        .map(|entry| entry.code().to_owned())
        .collect()
}

fn entry(table: Table, code: &str) -> &'static Entry {
    catalog()
        .lookup(table, code)
        .unwrap_or_else(|| panic!("{code} is missing from {}", table.as_str()))
}

fn has_han(text: &str) -> bool {
    text.chars()
        .any(|ch| ('\u{4E00}'..='\u{9FFF}').contains(&ch))
}

fn has_latin(text: &str) -> bool {
    text.chars().any(|ch| ch.is_ascii_alphabetic())
}

// --- the CSV and the tables -------------------------------------------------------------

#[test]
fn the_csv_lists_111_codes() {
    let codes = csv_codes();
    assert_eq!(codes.len(), 111);
    assert_eq!(
        codes.iter().collect::<BTreeSet<_>>().len(),
        111,
        "no code is listed twice"
    );
}

#[test]
fn every_csv_code_is_in_at_least_one_table_with_a_meaning_in_both_languages() {
    let mut missing = Vec::new();
    for code in csv_codes() {
        let tables = catalog().tables_defining(&code);
        if tables.is_empty() {
            missing.push(code);
            continue;
        }
        for table in tables {
            let entry = entry(table, &code);
            assert!(
                has_han(entry.meaning(Lang::Zh)),
                "{code} in {} has no Chinese meaning",
                table.as_str()
            );
            assert!(
                has_latin(entry.meaning(Lang::En)),
                "{code} in {} has no English meaning",
                table.as_str()
            );
        }
    }
    assert!(missing.is_empty(), "CSV codes in no table: {missing:?}");
}

#[test]
fn the_cup_pos_table_holds_exactly_the_codes_of_the_terminal_table() {
    assert_eq!(table_codes(Table::CupPos), codes(CUP_POS));
}

#[test]
fn the_cup_switch_table_holds_exactly_the_codes_of_the_2014_switch_table() {
    assert_eq!(table_codes(Table::CupSwitch), codes(CUP_SWITCH));
}

#[test]
fn the_iso87_table_holds_the_generic_codes_and_nothing_national() {
    let actual = table_codes(Table::Iso87);
    let required = codes(ISO87);
    let allowed: BTreeSet<String> = required.union(&codes(ISO87_OPTIONAL)).cloned().collect();
    let missing: Vec<_> = required.difference(&actual).collect();
    let extra: Vec<_> = actual.difference(&allowed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, not ISO 8583:1987 {extra:?}"
    );
}

#[test]
fn cup_pos_classes_are_the_ones_the_terminal_table_gives() {
    let given = [
        (Class::A, codes(CUP_POS_CLASS_A)),
        (Class::B, codes(CUP_POS_CLASS_B)),
        (Class::D, codes(CUP_POS_CLASS_D)),
        (Class::E, codes(CUP_POS_CLASS_E)),
    ];
    for entry in catalog().entries(Table::CupPos) {
        let expected = given
            .iter()
            .find(|(_, codes)| codes.contains(entry.code()))
            .map_or(Class::C, |(class, _)| *class);
        assert_eq!(
            entry.class(),
            expected,
            "class of {} in cup-pos",
            entry.code()
        );
    }
}

#[test]
fn approvals_are_the_only_entries_where_money_moved_as_intended() {
    for entry in catalog().all_entries().iter().chain(catalog().locals()) {
        if entry.money_moved() == MoneyMoved::Yes {
            assert_eq!(entry.class(), Class::A, "{}", entry.code());
        }
    }
    assert_eq!(
        catalog().money_moved_of(Table::CupPos, "00"),
        MoneyMoved::Yes
    );
    assert_eq!(catalog().retry_of(Table::CupPos, "00"), Retry::NotNeeded);
}

// --- conflicts --------------------------------------------------------------------------

#[test]
fn conflicting_codes_keep_one_entry_per_meaning() {
    let pairs = [
        ("05", Table::CupPos, Table::CupSwitch),
        ("21", Table::CupPos, Table::CupSwitch),
        ("38", Table::CupPos, Table::CupSwitch),
        ("12", Table::CupSwitch, Table::Iso87),
        ("22", Table::CupSwitch, Table::Iso87),
        ("25", Table::CupSwitch, Table::Iso87),
        ("25", Table::CupPos, Table::CupSwitch),
    ];
    for (code, one, other) in pairs {
        let (a, b) = (entry(one, code), entry(other, code));
        assert_ne!(
            a,
            b,
            "{code}: {} and {} share an entry",
            one.as_str(),
            other.as_str()
        );
        assert_ne!(
            a.meaning(Lang::En),
            b.meaning(Lang::En),
            "{code}: two entries, one meaning"
        );
    }
    for code in ["97", "98", "99"] {
        if let Some(iso) = catalog().lookup(Table::Iso87, code) {
            assert_ne!(
                iso,
                entry(Table::CupPos, code),
                "{code}: ISO reserves it, CUP defines it"
            );
        }
    }
}

#[test]
fn every_entry_of_a_conflicting_code_names_the_conflict() {
    for code in codes(CONFLICTING) {
        let entries: Vec<&Entry> = catalog()
            .all_entries()
            .iter()
            .filter(|entry| entry.code() == code)
            .collect();
        assert!(!entries.is_empty(), "{code} has no entry");
        for entry in entries {
            assert!(
                !entry.conflicts(Lang::En).is_empty(),
                "{code} in {:?} does not name its conflict",
                entry.tables()
            );
        }
    }
}

#[test]
fn a_code_with_several_entries_names_the_conflict_in_each() {
    let entries = catalog().all_entries();
    for entry in entries {
        let meanings = entries
            .iter()
            .filter(|other| other.code() == entry.code())
            .count();
        if meanings > 1 {
            assert!(
                !entry.conflicts(Lang::En).is_empty(),
                "{} in {:?}",
                entry.code(),
                entry.tables()
            );
        }
    }
}

/// The loader compiles in a fixed list of files: a data file outside it would be lost
/// without a word.
#[test]
fn every_data_file_is_one_the_catalog_loads() {
    let loaded = [
        "breaks.toml",
        "codes-00-44.toml",
        "codes-45-zz.toml",
        "local.toml",
        "symptoms.toml",
        "synonyms.toml",
        "vendor.toml",
        "verdicts.toml",
    ];
    let data_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data");
    let mut present: Vec<String> = std::fs::read_dir(data_dir)
        .expect("the data directory is readable")
        .map(|item| {
            item.expect("a readable directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".toml"))
        .collect();
    present.sort();
    assert_eq!(present, loaded, "data files that are not compiled in");
}

// --- references and prose ---------------------------------------------------------------

#[test]
fn no_related_code_or_vendor_mapping_leads_nowhere() {
    assert_eq!(catalog().dangling_references(), Vec::<String>::new());
}

#[test]
fn every_chinese_field_is_chinese_and_every_english_field_is_english() {
    let check = |record: &str, zh: &[&str], en: &[&str]| {
        for text in zh {
            assert!(has_han(text), "{record}: {text:?} should be Chinese");
        }
        for text in en {
            assert!(has_latin(text), "{record}: {text:?} should be English");
        }
    };
    for entry in catalog().all_entries().iter().chain(catalog().locals()) {
        let strings = |lang: Lang| -> Vec<&str> {
            let mut texts = vec![entry.meaning(lang), entry.customer(lang)];
            texts.extend(entry.causes(lang).iter().map(String::as_str));
            texts.extend(entry.steps(lang).iter().map(String::as_str));
            texts.extend(entry.conflicts(lang).iter().map(String::as_str));
            texts
        };
        check(entry.code(), &strings(Lang::Zh), &strings(Lang::En));
        for conflict in entry.conflicts(Lang::En) {
            assert!(
                !has_han(conflict),
                "{}: an English conflict line quotes Chinese: {conflict}",
                entry.code()
            );
        }
        assert!(
            has_han(entry.display()),
            "{}: the display text is Chinese",
            entry.code()
        );
    }
    for symptom in catalog().symptoms() {
        let strings = |lang: Lang| -> Vec<&str> {
            let mut texts = vec![symptom.title(lang), symptom.customer(lang)];
            texts.extend(symptom.steps(lang).iter().map(String::as_str));
            texts.extend(symptom.names(lang).iter().map(String::as_str));
            texts
        };
        check(symptom.id(), &strings(Lang::Zh), &strings(Lang::En));
    }
    for vendor in catalog().vendors() {
        check(
            vendor.code(),
            &[vendor.note(Lang::Zh)],
            &[vendor.note(Lang::En)],
        );
    }
}

/// The seed articles describe merchants' problems; their sentences must never be copied.
/// Any twelve consecutive characters of catalog prose found in a seed would be a copy.
#[test]
fn no_catalog_text_repeats_a_seed_article() {
    const WINDOW_CHARS: usize = 12;
    let Some(seeds_dir) = shared_path("seeds") else {
        return;
    };
    let seeds: Vec<String> = std::fs::read_dir(seeds_dir)
        .expect("shared/seeds is a readable directory")
        .map(|item| item.expect("a readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .map(|path| std::fs::read_to_string(path).expect("a seed is UTF-8 text"))
        .collect();
    assert_eq!(seeds.len(), 5);
    let mut texts: Vec<&str> = Vec::new();
    for entry in catalog().all_entries().iter().chain(catalog().locals()) {
        for lang in Lang::ALL {
            texts.extend([entry.meaning(lang), entry.customer(lang)]);
            texts.extend(
                entry
                    .causes(lang)
                    .iter()
                    .chain(entry.steps(lang))
                    .map(String::as_str),
            );
        }
    }
    for symptom in catalog().symptoms() {
        for lang in Lang::ALL {
            texts.extend([symptom.title(lang), symptom.customer(lang)]);
            texts.extend(symptom.steps(lang).iter().map(String::as_str));
        }
    }
    for vendor in catalog().vendors() {
        texts.extend(Lang::ALL.map(|lang| vendor.note(lang)));
    }
    let windows = |text: &str| -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        chars
            .windows(WINDOW_CHARS)
            .map(|window| window.iter().collect())
            .collect()
    };
    let seed_windows: std::collections::HashSet<String> =
        seeds.iter().flat_map(|seed| windows(seed)).collect();
    for text in texts {
        for window in windows(text) {
            assert!(
                !seed_windows.contains(&window),
                "copied from a seed: {window:?} in {text:?}"
            );
        }
    }
}

// --- local codes, vendor codes, symptoms --------------------------------------------------

#[test]
fn local_codes_cover_every_failure_that_never_reaches_the_host() {
    let kinds = [
        ("L01", "refused"),
        ("L02", "sending the request failed"),
        ("L03", "no answer from the host"),
        ("L04", "mac"),
        ("L05", "does not belong to the request"),
        ("L06", "not signed in"),
        ("L07", "keys are missing"),
        ("L08", "reversal"),
        ("L09", "batch is full"),
        ("L10", "storage"),
        ("L11", "printer"),
        ("L12", "card read failed"),
        ("L13", "pin pad"),
    ];
    for (code, words) in kinds {
        let local = catalog()
            .local(code)
            .unwrap_or_else(|| panic!("{code} is missing"));
        assert!(local.is_local() && local.tables().is_empty());
        let meaning = local.meaning(Lang::En).to_lowercase();
        assert!(
            meaning.contains(words),
            "{code} means {meaning:?}, expected it to mention {words:?}"
        );
    }
}

#[test]
fn a_failure_after_the_request_left_says_a_reversal_is_due() {
    for code in ["L02", "L03", "L04", "L05", "L08", "L15"] {
        assert_eq!(
            catalog().local(code).unwrap().money_moved(),
            MoneyMoved::ReversalDue,
            "{code}"
        );
    }
    for code in ["L01", "L06", "L07", "L09", "L12", "L13", "L16", "L17"] {
        assert_eq!(
            catalog().local(code).unwrap().money_moved(),
            MoneyMoved::No,
            "{code}"
        );
    }
}

#[test]
fn local_codes_are_matched_without_regard_to_case_and_never_as_field_39() {
    assert_eq!(catalog().local("l03").map(Entry::code), Some("L03"));
    assert!(catalog().lookup(Table::CupPos, "L03").is_none());
}

#[test]
fn the_common_vendor_series_maps_to_the_codes_that_explain_it() {
    let expected = [
        ("1001", "51"),
        ("1002", "14"),
        ("1003", "56"),
        ("1004", "06"),
        ("1005", "L01"),
        ("1006", "L03"),
    ];
    for (vendor_code, maps_to) in expected {
        let vendor = catalog()
            .vendor(vendor_code)
            .unwrap_or_else(|| panic!("{vendor_code} is missing"));
        assert_eq!(vendor.maps_to(), maps_to);
        assert_eq!(vendor.vendor(), "generic");
        let target = catalog()
            .vendor_target(vendor)
            .unwrap_or_else(|| panic!("{maps_to} is not in the catalog"));
        assert_eq!(target.code(), maps_to);
    }
}

#[test]
fn the_symptom_guides_exist_with_the_money_question_first() {
    let ids: Vec<&str> = catalog()
        .symptoms()
        .iter()
        .map(|symptom| symptom.id())
        .collect();
    assert_eq!(
        ids,
        [
            "charged-but-failed",
            "failed-no-code",
            UNKNOWN_CODE_SYMPTOM,
            "refund-or-void-fails",
            "repeated-timeouts",
            "settlement-problem",
            "merchant-not-paid",
            "card-retained",
            "cardholder-dispute",
        ]
    );
    assert_eq!(catalog().unknown_code_guide().id(), UNKNOWN_CODE_SYMPTOM);
}

/// Each guide is a procedure an operator can run: it names at least one poskit command,
/// each in backticks (so `crates/cli/tests/cli_catalog_commands.rs` can check it against
/// the CLI), and no prose field names `poskit` outside backticks.
#[test]
fn symptom_guides_name_poskit_commands_in_backticks() {
    for symptom in catalog().symptoms() {
        for lang in Lang::ALL {
            let steps = symptom.steps(lang);
            assert!(
                steps.iter().any(|step| step.contains("`poskit ")),
                "{}: no step names a command",
                symptom.id()
            );
        }
    }
    for text in prose() {
        let outside: String = text.split('`').step_by(2).collect();
        assert!(
            !outside.contains("poskit"),
            "a command outside backticks: {text}"
        );
    }
}

/// Every text of the catalog a person reads, in both languages (not `source`, a citation).
fn prose() -> Vec<&'static str> {
    let mut texts: Vec<&str> = Vec::new();
    for entry in catalog().all_entries().iter().chain(catalog().locals()) {
        for lang in Lang::ALL {
            texts.push(entry.meaning(lang));
            texts.push(entry.customer(lang));
            texts.extend(entry.causes(lang).iter().map(String::as_str));
            texts.extend(entry.steps(lang).iter().map(String::as_str));
            texts.extend(entry.conflicts(lang).iter().map(String::as_str));
            for op in Operation::ALL {
                texts.extend(entry.steps_for(op, lang).iter().map(String::as_str));
            }
        }
    }
    for symptom in catalog().symptoms() {
        for lang in Lang::ALL {
            texts.push(symptom.title(lang));
            texts.push(symptom.customer(lang));
            texts.extend(symptom.steps(lang).iter().map(String::as_str));
        }
    }
    for vendor in catalog().vendors() {
        texts.extend(Lang::ALL.map(|lang| vendor.note(lang)));
    }
    texts
}

#[test]
fn what_people_say_finds_the_guide_and_the_money_question_wins() {
    let id = |words: &str| catalog().match_symptom(words).map(|symptom| symptom.id());
    assert_eq!(id("已扣款"), Some("charged-but-failed"));
    assert_eq!(id("  Charged   but FAILED "), Some("charged-but-failed"));
    assert_eq!(id("顾客已扣款但交易失败"), Some("charged-but-failed"));
    assert_eq!(id("交易失败"), Some("failed-no-code"));
    assert_eq!(id("refund-or-void-fails"), Some("refund-or-void-fails"));
    assert_eq!(id("timeout"), Some("repeated-timeouts"));
    assert_eq!(
        id("receive timeout"),
        None,
        "one shared word in a longer question does not decide"
    );
    assert_eq!(id("余额不足"), None);
}

// --- lookups ------------------------------------------------------------------------------

#[test]
fn lookup_ignores_case_and_surrounding_space() {
    assert_eq!(
        catalog().lookup(Table::CupPos, " a0 ").map(Entry::code),
        Some("A0")
    );
}

#[test]
fn a_code_the_table_does_not_list_falls_back_to_what_cup_pos_prescribes() {
    assert_eq!(catalog().lookup(Table::CupPos, "Q9"), None);
    assert_eq!(catalog().class_of(Table::CupPos, "Q9"), UNKNOWN_CODE_CLASS);
    assert_eq!(UNKNOWN_CODE_CLASS, Class::C);
    assert_eq!(
        catalog().money_moved_of(Table::CupPos, "Q9"),
        MoneyMoved::Check
    );
    assert_eq!(catalog().retry_of(Table::CupPos, "Q9"), Retry::Never);
}

#[test]
fn entries_of_a_table_come_in_code_order_and_belong_to_it() {
    for table in Table::ALL {
        let codes: Vec<&str> = catalog().entries(table).map(Entry::code).collect();
        assert!(
            codes.windows(2).all(|pair| pair[0] < pair[1]),
            "{} is not in code order",
            table.as_str()
        );
        assert!(
            catalog()
                .entries(table)
                .all(|entry| entry.tables().contains(&table))
        );
    }
}

#[test]
fn a_code_only_another_table_defines_is_reported_with_that_table() {
    assert_eq!(catalog().tables_defining("A1"), [Table::CupSwitch]);
    assert!(catalog().lookup(Table::CupPos, "A1").is_none());
}

// --- search --------------------------------------------------------------------------------

fn first_hit(query: &str) -> String {
    let hits = catalog().search(query, Table::CupPos);
    hits.first()
        .map(|hit| hit.found.key().to_owned())
        .unwrap_or_else(|| panic!("nothing found for {query:?}"))
}

#[test]
fn searching_insufficient_balance_in_chinese_ranks_51_first() {
    assert_eq!(first_hit("余额不足"), "51");
}

#[test]
fn searching_wrong_pin_ranks_55_first() {
    assert_eq!(first_hit("wrong pin"), "55");
}

#[test]
fn searching_for_a_local_failure_finds_its_local_code() {
    assert_eq!(first_hit("printer out of paper"), "L11");
    assert_eq!(first_hit("PIN pad"), "L13");
}

#[test]
fn searching_a_symptom_name_finds_the_guide() {
    let hits = catalog().search("charged twice", Table::CupPos);
    assert!(
        matches!(hits.first().map(|hit| hit.found), Some(Found::Symptom(symptom)) if symptom.id() == "charged-but-failed")
    );
}

#[test]
fn search_results_are_best_first_and_nothing_is_found_for_nonsense() {
    let hits = catalog().search("MAC", Table::CupPos);
    assert!(hits.windows(2).all(|pair| pair[0].score >= pair[1].score));
    assert!(catalog().search("zzqx", Table::CupPos).is_empty());
    assert!(catalog().search("  ", Table::CupPos).is_empty());
}

// --- a deployment's vendor file ----------------------------------------------------------

struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("poskit-codes-{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("the temporary directory is writable");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const DEPLOYMENT_VENDOR: &str = r#"
[[vendor]]
code = "E105"
vendor = "acme"
maps_to = "55"
note_zh = "密码错误。"
note_en = "Wrong PIN."

[[vendor]]
code = "1001"
vendor = "acme"
maps_to = "L16"
note_zh = "本厂商的 1001 是没有网络。"
note_en = "This vendor's 1001 means no network."
"#;

#[test]
fn a_deployment_vendor_file_adds_codes_and_overrides_clashing_ones() {
    let file = TempFile::new("vendor.toml", DEPLOYMENT_VENDOR);
    let mut catalog = Catalog::builtin().clone();
    assert_eq!(catalog.load_vendor_file(&file.0).unwrap(), 2);
    assert_eq!(
        catalog.vendor("e105").map(|vendor| vendor.maps_to()),
        Some("55")
    );
    let overridden = catalog.vendor("1001").unwrap();
    assert_eq!((overridden.vendor(), overridden.maps_to()), ("acme", "L16"));
    assert_eq!(
        catalog.vendor("1002").map(|vendor| vendor.vendor()),
        Some("generic")
    );
    assert_eq!(
        Catalog::builtin().vendor("1001").unwrap().maps_to(),
        "51",
        "the built-in catalog is untouched"
    );
}

#[test]
fn a_bad_vendor_file_is_a_typed_error_and_changes_nothing() {
    let mut catalog = Catalog::builtin().clone();
    let before = catalog.vendors().to_vec();

    let missing = catalog.load_vendor_file(std::path::Path::new("/nonexistent/poskit/vendor.toml"));
    assert!(
        matches!(missing, Err(CatalogError::Read { .. })),
        "{missing:?}"
    );

    let file = TempFile::new("broken.toml", "[[vendor]]\ncode = \"2001\"\n");
    let broken = catalog.load_vendor_file(&file.0);
    assert!(
        matches!(broken, Err(CatalogError::Parse { .. })),
        "{broken:?}"
    );

    let dangling = DEPLOYMENT_VENDOR.replace(r#"maps_to = "L16""#, r#"maps_to = "L98""#);
    let err = catalog
        .add_vendor_toml("deployment.toml", &dangling)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"deployment.toml: 1001: maps_to "L98" is not a cup-pos code or a local code of the catalog"#
    );

    let two_character = DEPLOYMENT_VENDOR.replace(r#"code = "E105""#, r#"code = "E1""#);
    let err = catalog
        .add_vendor_toml("deployment.toml", &two_character)
        .unwrap_err();
    assert!(
        matches!(err, CatalogError::Invalid { ref record, .. } if record == "E1"),
        "{err}"
    );

    assert_eq!(catalog.vendors(), &before[..]);
}

// --- retry wording ------------------------------------------------------------------------

/// Words that invite the operator to run a transaction again.
const RETRY_INVITATIONS: &[&str] = &[
    "重试",
    "再试",
    "重新发起",
    "重做",
    "再刷",
    "retry",
    "try again",
    "try once more",
    "redo",
    "run the sale again",
    "run it again",
];
/// Words that turn an invitation into a warning.
const RETRY_NEGATIONS: &[&str] = &[
    "不要",
    "别",
    "停止",
    "无用",
    "不会",
    "只会",
    "do not",
    "don't",
    "stop",
    "no need",
    "never",
    "useless",
    "not ",
    "will be declined",
];
/// Words that make a retry a different request: another card, way or entry, or a fix first.
const RETRY_CHANGES: &[&str] = &[
    "换",
    "改",
    "插卡",
    "核对",
    "确认",
    "签到",
    "之前",
    "后再",
    "another",
    "other",
    "insert",
    "check",
    "correct",
    "sign in",
    "leave the card in",
    "fix",
    "before",
    "after",
    "until",
];
/// Words that limit a warning to the same request, so it leaves a corrected retry open.
const RETRY_SAME: &[&str] = &[
    "同一",
    "同样",
    "原样",
    "反复",
    "这张卡",
    "一遍遍",
    "立刻",
    "立即",
    "马上",
    "same",
    "again and again",
    "this card",
    "unchanged",
    "straight away",
    "right away",
    "blindly",
    "keep",
    "仍",
    "多张",
    "每笔",
    "不确定",
    "still",
    "several",
    "every",
    "unsure",
    // A transaction that went through is not done twice.
    "批准",
    "成功",
    "扣款",
    "approved",
    "charged",
    "went through",
];

/// Sentences of a text, split where a sentence ends in either language: a warning and its
/// condition ("已批准：……，不要重做") stay together.
fn clauses(text: &str) -> Vec<String> {
    text.replace(". ", "。")
        .split(['。', '；', ';'])
        .map(str::to_lowercase)
        .filter(|clause| !clause.trim().is_empty())
        .collect()
}

fn has_any(clause: &str, words: &[&str]) -> bool {
    words.iter().any(|word| clause.contains(word))
}

/// A clause that says "retry" without a warning and without a change: a plain retry.
fn invites_plain_retry(clause: &str) -> bool {
    has_any(clause, RETRY_INVITATIONS)
        && !has_any(clause, RETRY_NEGATIONS)
        && !has_any(clause, RETRY_CHANGES)
}

/// A clause that forbids every retry, not just the same request again.
fn forbids_every_retry(clause: &str) -> bool {
    has_any(clause, RETRY_INVITATIONS)
        && has_any(clause, RETRY_NEGATIONS)
        && !has_any(clause, RETRY_SAME)
        && !has_any(clause, RETRY_CHANGES)
}

#[test]
fn retry_clause_detection_tells_plain_retries_from_warnings_and_corrections() {
    assert!(invites_plain_retry("请重试"));
    assert!(invites_plain_retry("please try again"));
    assert!(!invites_plain_retry("不要重试"));
    assert!(!invites_plain_retry("改正金额后再试"));
    assert!(!invites_plain_retry(
        "ask the customer to insert the card and try again"
    ));
    assert!(forbids_every_retry("do not retry"));
    assert!(!forbids_every_retry("do not retry the same card"));
    assert!(!forbids_every_retry("不要原样重试"));
}

/// The class, the retry rule and the words of each entry say the same: class C means the
/// same request again fails too, so it never comes with "retry once now"; an entry whose
/// rule is never does not invite a plain retry in its steps or words for the customer; an
/// entry whose rule allows a retry (after a correction, a sign-in, a wait, or at once) does
/// not forbid every retry.
#[test]
fn entries_of_each_retry_class_do_not_contradict_themselves() {
    let mut contradictions = Vec::new();
    for entry in catalog().all_entries().iter().chain(catalog().locals()) {
        let retry = entry.retry();
        if entry.class() == Class::C && retry == Retry::OnceNow {
            contradictions.push(format!("{}: class C with retry once-now", entry.code()));
        }
        if (entry.class() == Class::A) != (retry == Retry::NotNeeded) {
            contradictions.push(format!("{}: only approvals need no retry", entry.code()));
        }
        for lang in Lang::ALL {
            let texts = entry
                .steps(lang)
                .iter()
                .map(String::as_str)
                .chain([entry.customer(lang)]);
            for clause in texts.flat_map(clauses) {
                let contradicts = match retry {
                    Retry::Never => invites_plain_retry(&clause),
                    Retry::NotNeeded => false,
                    _ => forbids_every_retry(&clause),
                };
                if contradicts {
                    contradictions.push(format!(
                        "{} (retry {}): {clause}",
                        entry.code(),
                        retry.as_str()
                    ));
                }
            }
        }
    }
    assert!(contradictions.is_empty(), "{}", contradictions.join("\n"));
}

#[test]
fn class_c_and_the_retry_rules_it_comes_with_read_as_one_rule() {
    let class_c = Class::C.label(Lang::Zh);
    assert!(class_c.contains("原样"), "{class_c}");
    assert!(Class::C.label(Lang::En).contains("same request"));
    for retry in [
        Retry::AfterCorrection,
        Retry::AfterSignIn,
        Retry::LaterBackoff,
    ] {
        assert!(!retry.label(Lang::Zh).contains("无用"), "{retry:?}");
        assert!(!retry.label(Lang::En).contains("not"), "{retry:?}");
    }
}

// --- steps per operation --------------------------------------------------------------------

fn steps_text(entry: &Entry, op: Operation) -> String {
    entry.steps_for(op, Lang::En).join(" ").to_lowercase()
}

#[test]
fn a_declined_pre_authorization_gets_no_void_or_refund_advice() {
    for code in ["12", "25"] {
        let steps = steps_text(entry(Table::CupPos, code), Operation::Preauth);
        assert!(
            !steps.contains("void") && !steps.contains("refund"),
            "{code}: {steps}"
        );
        // The control: the same entry's generic steps do talk about voids and refunds.
        assert!(steps_text(entry(Table::CupPos, code), Operation::Sale).contains("void"));
    }
}

#[test]
fn a_same_day_refund_answered_12_is_told_to_void_instead() {
    let steps = steps_text(entry(Table::CupPos, "12"), Operation::Refund);
    assert!(
        steps.contains("today") && steps.contains("void --trace"),
        "{steps}"
    );
}

#[test]
fn an_echo_timeout_promises_no_reversal() {
    for code in ["L02", "L03"] {
        let local = catalog().local(code).expect("a local code of the catalog");
        let echo = steps_text(local, Operation::Echo);
        assert!(echo.contains("no reversal"), "{code}: {echo}");
        assert!(!echo.contains("sends a reversal"), "{code}: {echo}");
        assert!(
            steps_text(local, Operation::Sale).contains("reversal"),
            "{code}: a sale's steps still speak of the reversal"
        );
    }
}

#[test]
fn only_operations_with_own_steps_change_the_steps() {
    for entry in catalog().all_entries().iter().chain(catalog().locals()) {
        let own: Vec<Operation> = entry.operations_with_own_steps().collect();
        for op in Operation::ALL {
            let same = entry.steps_for(op, Lang::Zh) == entry.steps(Lang::Zh);
            assert_eq!(same, !own.contains(&op), "{} {}", entry.code(), op.as_str());
        }
    }
}
