//! Reconciliation break classes as data (`data/breaks.toml`): their names, what to do and
//! what to tell the customer, in Chinese and English. `poskit recon` shows these words and
//! no others.

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
        let file: BreakFile = toml::from_str(include_str!("../data/breaks.toml"))
            .unwrap_or_else(|e| panic!("data/breaks.toml is invalid: {e}"));
        file.breaks
    })
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
}
