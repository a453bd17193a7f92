//! What people say, in words the matcher's data does not hold, reaches the right guide.
//!
//! The phrasings below are held out: a test checks that neither the guides
//! (`data/symptoms.toml`) nor the synonym table (`data/synonyms.toml`) contains any of
//! them, so they can only be matched by synonyms, neighbouring pairs and trigrams, not by
//! a copy of the question.

use poskit_codes::Catalog;

const SYMPTOMS_TOML: &str = include_str!("../data/symptoms.toml");
const SYNONYMS_TOML: &str = include_str!("../data/synonyms.toml");

/// (what a merchant or operator says, the guide it must reach)
const HELD_OUT: &[(&str, &str)] = &[
    // The complaints of issue 25.
    ("扣款了但是交易失败", "charged-but-failed"),
    ("顾客被扣款了", "charged-but-failed"),
    ("卡里钱少了", "charged-but-failed"),
    ("没收到钱", "merchant-not-paid"),
    ("结算不平", "settlement-problem"),
    ("批结算失败", "settlement-problem"),
    ("卡被吞了", "card-retained"),
    ("chargeback", "cardholder-dispute"),
    // More of the same kind, written for this test.
    ("钱被扣了可是没成功", "charged-but-failed"),
    ("客人说他卡上扣了钱", "charged-but-failed"),
    (
        "the customer got debited but it failed",
        "charged-but-failed",
    ),
    ("对账总是对不上", "settlement-problem"),
    ("batch settlement unbalanced", "settlement-problem"),
    ("货款一直没到账", "merchant-not-paid"),
    ("机器把卡吞掉了", "card-retained"),
    ("card swallowed", "card-retained"),
    ("持卡人申请退单", "cardholder-dispute"),
    ("customer disputed the sale", "cardholder-dispute"),
    ("交易老是超时", "repeated-timeouts"),
    ("退款总是不成功", "refund-or-void-fails"),
];

/// Questions no guide answers: they go to the code search.
const NOT_A_GUIDE: &[&str] = &[
    "余额不足",
    "wrong pin",
    "无效商户",
    "receive timeout",
    "zzqx",
];

#[test]
fn the_held_out_phrasings_are_not_in_the_matchers_data() {
    for (phrasing, _) in HELD_OUT {
        for (file, text) in [
            ("symptoms.toml", SYMPTOMS_TOML),
            ("synonyms.toml", SYNONYMS_TOML),
        ] {
            assert!(
                !text.to_lowercase().contains(&phrasing.to_lowercase()),
                "{phrasing:?} is in {file}: it no longer tests paraphrase"
            );
        }
    }
}

#[test]
fn held_out_phrasings_reach_the_expected_guide() {
    let mut wrong = Vec::new();
    for &(phrasing, expected) in HELD_OUT {
        let found = Catalog::builtin()
            .match_symptom(phrasing)
            .map(|symptom| symptom.id());
        if found != Some(expected) {
            wrong.push(format!("{phrasing:?} → {found:?}, expected {expected}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn questions_about_a_code_s_meaning_reach_no_guide() {
    for question in NOT_A_GUIDE {
        assert_eq!(
            Catalog::builtin()
                .match_symptom(question)
                .map(|symptom| symptom.id()),
            None,
            "{question:?}"
        );
    }
}
