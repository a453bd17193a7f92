//! The words of reconciliation and lookup as data, in Chinese and English: break classes
//! (`data/breaks.toml`: their names, what to do, what to tell the customer) and lookup
//! verdicts (`data/verdicts.toml`: was the customer charged, what next). `poskit recon` and
//! `poskit lookup` show these words and no others.

use std::sync::OnceLock;

use serde::Deserialize;

use crate::Lang;

/// One class of break.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakAdvice {
    /// `A`..`G`, `duplicate`, `batch_total`, `one_sided_reversal`.
    pub class: String,
    /// 1 (someone is out of money now) to 4 (nothing to do yet).
    pub priority: u8,
    pub name_zh: String,
    pub name_en: String,
    pub action_zh: String,
    pub action_en: String,
    pub customer_zh: String,
    pub customer_en: String,
}

impl BreakAdvice {
    pub fn name(&self, lang: Lang) -> &str {
        match lang {
            Lang::Zh => &self.name_zh,
            Lang::En => &self.name_en,
        }
    }

    pub fn action(&self, lang: Lang) -> &str {
        match lang {
            Lang::Zh => &self.action_zh,
            Lang::En => &self.action_en,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakFile {
    #[serde(rename = "break")]
    breaks: Vec<BreakAdvice>,
}

/// The advice for a break class; `None` for a class the catalog does not know.
pub fn break_advice(class: &str) -> Option<&'static BreakAdvice> {
    break_classes().iter().find(|b| b.class == class)
}

/// Every break class of the catalog.
pub fn break_classes() -> &'static [BreakAdvice] {
    static BREAKS: OnceLock<Vec<BreakAdvice>> = OnceLock::new();
    BREAKS.get_or_init(|| {
        parse::<BreakFile>("data/breaks.toml", include_str!("../data/breaks.toml")).breaks
    })
}

/// Built-in data: invalid is a programmer error, found by the tests.
fn parse<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> T {
    toml::from_str(text).unwrap_or_else(|e| panic!("{name} is invalid: {e}"))
}

/// A lookup verdict: was the customer charged, and what now.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    /// `charged`, `not_charged`, `refunded`, `refund_pending`, `unknown_until_clearing`.
    pub verdict: String,
    pub meaning_zh: String,
    pub meaning_en: String,
    pub next_zh: String,
    pub next_en: String,
    pub customer_zh: String,
    pub customer_en: String,
}

/// Why a verdict was reached: a template in each language whose `{name}` slots the caller
/// fills from the transaction's chain.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Because {
    pub id: String,
    pub zh: String,
    pub en: String,
}

impl Because {
    pub fn template(&self, lang: Lang) -> &str {
        match lang {
            Lang::Zh => &self.zh,
            Lang::En => &self.en,
        }
    }

    /// The template in `lang` with each `{name}` of `slots` replaced by its value there.
    pub fn fill(&self, lang: Lang, slots: &[(&str, &str)]) -> String {
        let mut text = self.template(lang).to_owned();
        for (name, value) in slots {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerdictFile {
    verdict: Vec<Verdict>,
    because: Vec<Because>,
}

fn verdict_file() -> &'static VerdictFile {
    static FILE: OnceLock<VerdictFile> = OnceLock::new();
    FILE.get_or_init(|| {
        parse::<VerdictFile>("data/verdicts.toml", include_str!("../data/verdicts.toml"))
    })
}

/// Every verdict of the catalog.
pub fn verdicts() -> &'static [Verdict] {
    &verdict_file().verdict
}

/// Every reason a verdict may give.
pub fn becauses() -> &'static [Because] {
    &verdict_file().because
}

/// The words of one reason; `None` for an id the catalog does not know.
pub fn because(id: &str) -> Option<&'static Because> {
    becauses().iter().find(|b| b.id == id)
}

/// The words of one verdict; `None` for a verdict the catalog does not know.
pub fn verdict(name: &str) -> Option<&'static Verdict> {
    verdicts().iter().find(|v| v.verdict == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_of_the_spec_and_the_added_ones_has_advice_in_both_languages() {
        for class in [
            "A",
            "B",
            "C",
            "D",
            "E",
            "F",
            "G",
            "duplicate",
            "batch_total",
            "one_sided_reversal",
        ] {
            let b = break_advice(class).unwrap_or_else(|| panic!("no advice for {class}"));
            assert!((1..=4).contains(&b.priority), "{class}");
            for text in [&b.name_zh, &b.action_zh, &b.customer_zh] {
                assert!(text.chars().any(|c| c > '\u{2e80}'), "{class}: {text}");
            }
            for text in [&b.name_en, &b.action_en, &b.customer_en] {
                assert!(text.is_ascii() && text.len() > 10, "{class}: {text}");
            }
        }
        assert_eq!(break_classes().len(), 10);
        assert!(break_advice("Z").is_none());
    }

    #[test]
    fn every_lookup_verdict_has_its_words_in_both_languages() {
        for name in [
            "charged",
            "not_charged",
            "refunded",
            "refund_pending",
            "unknown_until_clearing",
        ] {
            let v = verdict(name).unwrap_or_else(|| panic!("no verdict {name}"));
            for text in [&v.meaning_zh, &v.next_zh, &v.customer_zh] {
                assert!(text.chars().any(|c| c > '\u{2e80}'), "{name}: {text}");
            }
            for text in [&v.meaning_en, &v.next_en, &v.customer_en] {
                assert!(text.is_ascii() && text.len() > 10, "{name}: {text}");
            }
        }
        assert_eq!(verdicts().len(), 5);
    }

    /// The `{name}` slots of a template, in order.
    fn slots(text: &str) -> Vec<&str> {
        text.split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect()
    }

    #[test]
    fn every_reason_says_the_same_in_both_languages() {
        assert!(becauses().len() >= 15);
        for b in becauses() {
            let mut zh = slots(&b.zh);
            let mut en = slots(&b.en);
            zh.sort_unstable();
            en.sort_unstable();
            assert_eq!(zh, en, "{}: the same slots in both", b.id);
            if b.zh != "{why}" {
                assert!(b.zh.chars().any(|c| c > '\u{2e80}'), "{}: {}", b.id, b.zh);
            }
            assert!(b.en.is_ascii(), "{}: {}", b.id, b.en);
        }
        let ids: std::collections::HashSet<_> = becauses().iter().map(|b| &b.id).collect();
        assert_eq!(ids.len(), becauses().len(), "ids are unique");
        let declined = because("declined").unwrap();
        let slots = [("code", "51"), ("meaning", "余额不足"), ("reason", "x")];
        assert_eq!(
            declined.fill(Lang::Zh, &slots),
            "主机以应答码 51（余额不足）拒绝；主机记录：x"
        );
        assert!(because("nothing").is_none());
    }
}
