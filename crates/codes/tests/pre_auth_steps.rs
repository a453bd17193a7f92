//! A declined pre-authorization (or its cancel, or its completion) never gets void or
//! refund advice: nothing was charged, so there is nothing to void or refund (issue 25 §5).

use poskit_codes::{Catalog, Lang, Operation};

/// The pre-authorization operations whose steps must not speak of voids or refunds.
const PRE_AUTH_OPERATIONS: [Operation; 3] = [
    Operation::Preauth,
    Operation::PreauthCancel,
    Operation::Complete,
];

/// Words of a void or a refund in `lang` (the pre-authorization cancel's own name,
/// 预授权撤销, is not advice to void anything, and is taken out first).
fn void_or_refund_words(text: &str, lang: Lang) -> Vec<&'static str> {
    let (text, words): (String, &[&str]) = match lang {
        Lang::Zh => (text.replace("预授权撤销", ""), &["撤销", "退货"]),
        Lang::En => (text.to_lowercase(), &["void", "refund"]),
    };
    words.iter().copied().filter(|w| text.contains(w)).collect()
}

#[test]
fn no_pre_authorization_step_of_any_entry_mentions_a_void_or_a_refund() {
    let catalog = Catalog::builtin();
    let mut found = Vec::new();
    for entry in catalog.all_entries().iter().chain(catalog.locals()) {
        for op in PRE_AUTH_OPERATIONS {
            for lang in Lang::ALL {
                for step in entry.steps_for(op, lang) {
                    let words = void_or_refund_words(step, lang);
                    if !words.is_empty() {
                        found.push(format!(
                            "{} {}: {words:?} in {step}",
                            entry.code(),
                            op.as_str()
                        ));
                    }
                }
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_general_steps_of_the_codes_the_issue_names_do_mention_voids_or_refunds() {
    // The control: without their pre-authorization steps these codes would give the advice
    // the test above forbids, so the test above can fail.
    let catalog = Catalog::builtin();
    for code in ["13", "14", "21", "40", "58", "63", "64"] {
        let entry = catalog
            .lookup(poskit_codes::Table::CupPos, code)
            .expect("a cup-pos code");
        let general = entry.steps(Lang::En).join(" ");
        assert!(
            !void_or_refund_words(&general, Lang::En).is_empty(),
            "{code}: {general}"
        );
        let sale = entry.steps_for(Operation::Sale, Lang::Zh).join(" ");
        assert!(
            !void_or_refund_words(&sale, Lang::Zh).is_empty(),
            "{code}: {sale}"
        );
    }
}

#[test]
fn a_void_of_a_completion_may_still_speak_of_voids() {
    // Only the pre-authorization operations that are not voids are held to the rule.
    assert!(!PRE_AUTH_OPERATIONS.contains(&Operation::CompleteVoid));
    assert!(!void_or_refund_words("void the completion", Lang::En).is_empty());
    assert!(void_or_refund_words("做预授权撤销", Lang::Zh).is_empty());
    assert!(!void_or_refund_words("改做撤销", Lang::Zh).is_empty());
}
