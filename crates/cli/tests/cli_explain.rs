//! `poskit explain` as a shop operator and a script see it: golden text for the codes
//! merchants ask about most, in both languages; the JSON shapes; exit codes; the locale.

use std::process::{Command, Output};

use poskit_codes::{Catalog, Table};
use serde_json::Value;
use unicode_width::UnicodeWidthStr;

struct Run {
    stdout: String,
    stderr: String,
    exit: i32,
}

/// Runs `poskit explain ARGS` with no locale set, so only `--lang` or `env` decide.
fn explain_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_poskit"));
    command.arg("explain").args(args);
    for name in ["LC_ALL", "LC_MESSAGES", "LANG"] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the poskit binary runs");
    Run {
        stdout: String::from_utf8(stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(stderr).expect("stderr is UTF-8"),
        exit: status.code().expect("poskit exits normally"),
    }
}

fn explain(args: &[&str]) -> Run {
    explain_with_env(args, &[])
}

fn json(args: &[&str]) -> (Value, i32) {
    let mut args = args.to_vec();
    args.push("--json");
    let run = explain(&args);
    let value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|err| panic!("not JSON ({err}): {}", run.stdout));
    (value, run.exit)
}

fn assert_fits_80_columns(text: &str) {
    for line in text.lines() {
        assert!(line.width() <= 80, "{} columns: {line:?}", line.width());
    }
}

/// The golden text of `poskit explain QUERY --lang LANG`, checked against its snapshot.
fn check(query: &str, lang: &str) {
    let run = explain(&[query, "--lang", lang]);
    assert_eq!(run.exit, 0, "stderr: {}", run.stderr);
    assert_fits_80_columns(&run.stdout);
    insta::assert_snapshot!(format!("explain_{query}_{lang}"), run.stdout);
}

// --- golden output -----------------------------------------------------------------------

#[test]
fn code_25_original_not_found() {
    check("25", "zh");
    check("25", "en");
}

#[test]
fn code_55_wrong_pin() {
    check("55", "zh");
    check("55", "en");
}

#[test]
fn code_03_invalid_merchant() {
    check("03", "zh");
    check("03", "en");
}

#[test]
fn code_04_pick_up_card() {
    check("04", "zh");
    check("04", "en");
}

#[test]
fn code_a0_mac_failure() {
    check("A0", "zh");
    check("A0", "en");
}

#[test]
fn symptom_charged_but_failed() {
    check("已扣款", "zh");
    check("已扣款", "en");
}

#[test]
fn class_and_money_moved_come_first() {
    let zh = explain(&["51", "--lang", "zh"]);
    let zh: Vec<&str> = zh.stdout.lines().collect();
    assert!(zh[0].starts_with("51 · "), "{zh:?}");
    assert!(zh[1].starts_with("类别  C"), "{zh:?}");
    assert!(zh[2].starts_with("扣款  没有扣款"), "{zh:?}");

    let en = explain(&["L03", "--lang", "en"]);
    let en: Vec<&str> = en.stdout.lines().collect();
    assert!(en[1].starts_with("Class         E"), "{en:?}");
    assert!(
        en[2].starts_with("Money moved?  maybe; a reversal is due"),
        "{en:?}"
    );
}

#[test]
fn every_listed_entry_and_every_guide_fits_80_columns() {
    for lang in ["zh", "en"] {
        let list = explain(&["--list", "--lang", lang]);
        assert_eq!(list.exit, 0);
        assert_fits_80_columns(&list.stdout);
        for table in Table::ALL {
            for entry in Catalog::builtin().entries(table) {
                let run = explain(&[entry.code(), "--table", table.as_str(), "--lang", lang]);
                assert_eq!(run.exit, 0, "{} in {}", entry.code(), table.as_str());
                assert_fits_80_columns(&run.stdout);
            }
        }
        for local in Catalog::builtin().locals() {
            assert_fits_80_columns(&explain(&[local.code(), "--lang", lang]).stdout);
        }
        for symptom in Catalog::builtin().symptoms() {
            assert_fits_80_columns(&explain(&[symptom.id(), "--lang", lang]).stdout);
        }
    }
}

// --- how the input is read ------------------------------------------------------------------

#[test]
fn codes_are_read_without_regard_to_case_and_one_digit_means_a_leading_zero() {
    let (value, exit) = json(&["a0"]);
    assert_eq!(
        (value["kind"].as_str(), value["code"].as_str(), exit),
        (Some("code"), Some("A0"), 0)
    );
    let (value, _) = json(&["5"]);
    assert_eq!(value["code"], "05");
    let (value, _) = json(&["l03"]);
    assert_eq!(
        (value["kind"].as_str(), value["code"].as_str()),
        (Some("local"), Some("L03"))
    );
}

#[test]
fn the_table_option_selects_the_meaning_of_a_conflicting_code() {
    let (pos, _) = json(&["05", "--table", "cup-pos"]);
    let (switch, _) = json(&["05", "--table", "cup-switch"]);
    assert_eq!(pos["table"], "cup-pos");
    assert_eq!(switch["table"], "cup-switch");
    assert_ne!(pos["meaning_en"], switch["meaning_en"]);
    assert!(!switch["conflicts"].as_array().unwrap().is_empty());
}

#[test]
fn a_vendor_code_is_explained_through_the_code_it_maps_to() {
    let (value, exit) = json(&["1001"]);
    assert_eq!(exit, 0);
    assert_eq!(value["kind"], "vendor");
    assert_eq!(value["maps_to"], "51");
    assert_eq!(value["entry"]["code"], "51");
    assert_eq!(value["entry"]["money_moved"], "no");
}

#[test]
fn words_find_a_symptom_guide_or_a_ranked_search() {
    let (value, _) = json(&["charged", "but", "failed"]);
    assert_eq!(
        (value["kind"].as_str(), value["id"].as_str()),
        (Some("symptom"), Some("charged-but-failed"))
    );

    let (value, exit) = json(&["余额", "不足"]);
    assert_eq!((value["kind"].as_str(), exit), (Some("search"), 0));
    assert_eq!(value["hits"][0]["code"], "51");

    let (value, _) = json(&["wrong", "pin"]);
    assert_eq!(value["hits"][0]["code"], "55");
    let scores: Vec<u64> = value["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["score"].as_u64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|pair| pair[0] >= pair[1]),
        "{scores:?}"
    );
}

// --- JSON shapes ----------------------------------------------------------------------------

#[test]
fn json_for_a_code_has_every_documented_field() {
    let (value, exit) = json(&["25", "--lang", "en"]);
    assert_eq!(exit, 0);
    for (field, kind) in [
        ("kind", "string"),
        ("catalog_version", "string"),
        ("lang", "string"),
        ("code", "string"),
        ("table", "string"),
        ("class", "string"),
        ("meaning_zh", "string"),
        ("meaning_en", "string"),
        ("category", "string"),
        ("actor", "string"),
        ("retry", "string"),
        ("money_moved", "string"),
        ("causes", "array"),
        ("steps", "array"),
        ("customer_zh", "string"),
        ("customer_en", "string"),
        ("display", "string"),
        ("related", "array"),
        ("conflicts", "array"),
    ] {
        let present = match kind {
            "string" => value[field].is_string(),
            _ => value[field].is_array(),
        };
        assert!(present, "{field} should be a {kind}: {value}");
    }
    assert_eq!(value["kind"], "code");
    assert_eq!(value["catalog_version"], poskit_codes::CATALOG_VERSION);
    assert_eq!(
        (
            value["code"].as_str(),
            value["table"].as_str(),
            value["class"].as_str()
        ),
        (Some("25"), Some("cup-pos"), Some("C"))
    );
    let entry = Catalog::builtin().lookup(Table::CupPos, "25").unwrap();
    assert_eq!(
        value["causes"][0].as_str(),
        Some(entry.causes(poskit_codes::Lang::En)[0].as_str())
    );
}

#[test]
fn json_for_a_symptom_carries_its_steps_in_the_chosen_language() {
    let (value, exit) = json(&["已扣款", "--lang", "zh"]);
    assert_eq!(exit, 0);
    assert_eq!(
        (value["kind"].as_str(), value["id"].as_str()),
        (Some("symptom"), Some("charged-but-failed"))
    );
    let steps = value["steps"].as_array().unwrap();
    assert!(steps.len() >= 2);
    assert!(steps[0].as_str().unwrap().contains("poskit pos"));
    assert!(value["customer_zh"].is_string() && value["customer_en"].is_string());
}

#[test]
fn json_list_holds_every_entry_of_the_table() {
    let (value, exit) = json(&["--list", "--table", "cup-switch"]);
    assert_eq!((value["kind"].as_str(), exit), (Some("list"), 0));
    let codes: Vec<&str> = value["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["code"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = Catalog::builtin()
        .entries(Table::CupSwitch)
        .map(|entry| entry.code())
        .collect();
    assert_eq!(codes, expected);
    assert_eq!(
        value["local"].as_array().unwrap().len(),
        Catalog::builtin().locals().len()
    );
    assert_eq!(
        value["vendor"].as_array().unwrap().len(),
        Catalog::builtin().vendors().len()
    );
    assert_eq!(
        value["symptoms"].as_array().unwrap().len(),
        Catalog::builtin().symptoms().len()
    );
}

// --- unknown codes and bad arguments ---------------------------------------------------------

#[test]
fn an_unknown_code_prints_the_unknown_code_guide_and_exits_3() {
    let run = explain(&["Q9", "--lang", "en"]);
    assert_eq!(run.exit, 3);
    assert!(
        run.stdout.contains("Money moved?  unknown; look it up"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            Catalog::builtin()
                .unknown_code_guide()
                .title(poskit_codes::Lang::En)
        )
    );
    let (value, exit) = json(&["9999"]);
    assert_eq!(
        (value["kind"].as_str(), value["class"].as_str(), exit),
        (Some("unknown"), Some("C"), 3)
    );
    assert_eq!(value["guide"]["id"], "unknown-code");
}

#[test]
fn a_code_only_another_table_defines_points_to_that_table() {
    let run = explain(&["A1", "--lang", "en"]);
    assert_eq!(run.exit, 3);
    assert!(
        run.stdout.contains("poskit explain A1 --table cup-switch"),
        "{}",
        run.stdout
    );
    let (value, _) = json(&["A1"]);
    assert_eq!(value["defined_in"], serde_json::json!(["cup-switch"]));
}

#[test]
fn words_that_match_nothing_exit_3() {
    let run = explain(&["zzqx", "--lang", "en"]);
    assert_eq!(run.exit, 3);
    assert!(run.stdout.contains("No code or guide matches"));
}

#[test]
fn bad_arguments_exit_2() {
    let cases: [&[&str]; 5] = [
        &["25", "--table", "visa"],
        &["25", "--lang", "fr"],
        &[],
        &["25", "--list"],
        &["25", "--vendor-file", "/nonexistent/vendor.toml"],
    ];
    for args in cases {
        let run = explain(args);
        assert_eq!(run.exit, 2, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}");
        assert_eq!(
            run.stderr.lines().count(),
            1,
            "{args:?}: one line says what is wrong: {}",
            run.stderr
        );
    }
}

// --- language and deployment files ----------------------------------------------------------

fn second_line(run: &Run) -> &str {
    run.stdout.lines().nth(1).unwrap_or_default()
}

#[test]
fn the_language_follows_lang_then_the_question_then_the_locale_then_english() {
    let english = explain_with_env(&["51"], &[("LANG", "en_US.UTF-8")]);
    assert!(
        second_line(&english).starts_with("Class"),
        "{}",
        english.stdout
    );
    let overridden = explain_with_env(
        &["51"],
        &[("LANG", "en_US.UTF-8"), ("LC_ALL", "zh_CN.UTF-8")],
    );
    assert!(second_line(&overridden).starts_with("类别"));
    let unset = explain(&["51"]);
    assert!(second_line(&unset).starts_with("Class"), "{}", unset.stdout);
    let other = explain_with_env(&["51"], &[("LANG", "C.UTF-8")]);
    assert!(second_line(&other).starts_with("Class"));
    let forced = explain_with_env(&["51", "--lang", "en"], &[("LANG", "zh_CN.UTF-8")]);
    assert!(second_line(&forced).starts_with("Class"));
}

#[test]
fn an_english_question_is_answered_in_english_and_a_chinese_one_in_chinese() {
    let zh_locale = [("LANG", "zh_CN.UTF-8")];
    let english = explain_with_env(&["what", "does", "96", "mean"], &zh_locale);
    assert!(
        second_line(&english).starts_with("Class"),
        "{}",
        english.stdout
    );
    assert!(
        !english.stdout.lines().any(|line| line.starts_with("类别")
            || line.starts_with("操作步骤")
            || line.starts_with("对顾客说")),
        "{}",
        english.stdout
    );
    let chinese = explain_with_env(&["刷卡显示51"], &[("LANG", "en_US.UTF-8")]);
    assert!(
        second_line(&chinese).starts_with("类别"),
        "{}",
        chinese.stdout
    );
    let guide = explain_with_env(&["the", "customer", "was", "charged"], &zh_locale);
    assert!(
        guide.stdout.contains("Check in this order"),
        "{}",
        guide.stdout
    );
}

/// Lines under a heading, up to the next blank line.
fn section<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|line| *line != heading)
        .skip(1)
        .take_while(|line| !line.is_empty())
        .collect()
}

fn has_han(text: &str) -> bool {
    text.chars()
        .any(|ch| ('\u{4E00}'..='\u{9FFF}').contains(&ch))
}

#[test]
fn conflict_lines_are_in_the_language_of_the_answer() {
    let zh = explain(&["05", "--lang", "zh"]);
    let lines = section(&zh.stdout, "各表差异");
    assert!(!lines.is_empty(), "{}", zh.stdout);
    assert!(lines.iter().all(|line| has_han(line)), "{lines:?}");
    let en = explain(&["05", "--lang", "en"]);
    let lines = section(&en.stdout, "Conflicts between tables");
    assert!(!lines.is_empty(), "{}", en.stdout);
    assert!(lines.iter().all(|line| !has_han(line)), "{lines:?}");
}

#[test]
fn english_output_labels_the_chinese_display_text_as_chinese() {
    let en = explain(&["51", "--lang", "en"]);
    let display = en
        .stdout
        .lines()
        .find(|line| line.starts_with("Display"))
        .expect("a display line");
    assert!(display.starts_with("Display (zh)"), "{display}");
}

// --- a merchant's words -----------------------------------------------------------------------

#[test]
fn a_code_named_in_a_question_wins_outright() {
    for (question, code) in [
        ("错误码25", "25"),
        ("刷卡显示51", "51"),
        ("code 51", "51"),
        ("what does 96 mean", "96"),
    ] {
        let (value, exit) = json(&[question]);
        assert_eq!(
            (value["kind"].as_str(), value["code"].as_str(), exit),
            (Some("code"), Some(code), 0),
            "{question}"
        );
    }
}

#[test]
fn a_single_match_is_shown_directly() {
    let (value, exit) = json(&["无效商户"]);
    assert_eq!(
        (value["kind"].as_str(), value["code"].as_str(), exit),
        (Some("code"), Some("03"), 0)
    );
}

#[test]
fn common_complaints_reach_their_guide() {
    for (complaint, guide) in [
        ("扣款了但是交易失败", "charged-but-failed"),
        ("顾客被扣款了", "charged-but-failed"),
        ("卡里钱少了", "charged-but-failed"),
        ("没收到钱", "merchant-not-paid"),
        ("结算不平", "settlement-problem"),
        ("批结算失败", "settlement-problem"),
        ("卡被吞了", "card-retained"),
        ("chargeback", "cardholder-dispute"),
    ] {
        let (value, exit) = json(&[complaint]);
        assert_eq!(
            (value["kind"].as_str(), value["id"].as_str(), exit),
            (Some("symptom"), Some(guide), 0),
            "{complaint}"
        );
    }
}

#[test]
fn a_deployment_vendor_file_adds_its_codes() {
    let path = std::env::temp_dir().join(format!("poskit-cli-vendor-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[[vendor]]\ncode = \"E105\"\nvendor = \"acme\"\nmaps_to = \"55\"\nnote_zh = \"密码错误。\"\nnote_en = \"Wrong PIN.\"\n",
    )
    .unwrap();
    let run = explain(&["E105", "--vendor-file", path.to_str().unwrap(), "--json"]);
    let broken_path = path.with_extension("broken.toml");
    std::fs::write(&broken_path, "[[vendor]]\ncode = \"E105\"\n").unwrap();
    let broken = explain(&["E105", "--vendor-file", broken_path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&broken_path);

    assert_eq!(run.exit, 0, "{}", run.stderr);
    let value: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (value["vendor"].as_str(), value["entry"]["code"].as_str()),
        (Some("acme"), Some("55"))
    );
    assert_eq!(
        broken.exit, 1,
        "a malformed file is input that cannot be processed"
    );
    assert!(
        broken
            .stderr
            .starts_with("poskit: the vendor file cannot be used"),
        "{}",
        broken.stderr
    );
}
