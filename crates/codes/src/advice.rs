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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerdictFile {
    verdict: Vec<Verdict>,
}

/// Every verdict of the catalog.
pub fn verdicts() -> &'static [Verdict] {
    static VERDICTS: OnceLock<Vec<Verdict>> = OnceLock::new();
    VERDICTS.get_or_init(|| {
        parse::<VerdictFile>("data/verdicts.toml", include_str!("../data/verdicts.toml")).verdict
    })
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
}
