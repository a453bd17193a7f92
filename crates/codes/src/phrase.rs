//! How close a question is to a guide's phrasing, so that people's own words find the
//! symptom guide ("顾客被扣款了" → the guide named "已扣款").
//!
//! Both texts are read into units: a concept of `data/synonyms.toml` (the longest Chinese
//! form first, an English word by its stem, or an English compound one of whose two parts
//! is a form: "chargeback" reads as "charge back"), else a Chinese character, else an
//! English word. Filler characters (了, 的, 被, ...) and filler words are dropped. A
//! text's features are its concepts, its words and each pair of neighbouring units (the
//! character bigrams that stand in for word segmentation in Chinese). A question is close
//! to a guide when the weighted Dice coefficient of its features and those of one of the
//! guide's phrasings is high enough, and when the guide's phrasings together cover most
//! of the question, so that one shared word in a long question does not decide.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::search::{STOP_WORDS, is_han, stem};

/// Weights of the features: an idea counts most, then a word, then the order of units.
const WEIGHT_CONCEPT: u32 = 4;
const WEIGHT_WORD: u32 = 3;
const WEIGHT_PAIR: u32 = 1;

/// A question is close to a phrasing at this Dice coefficient (in percent) or above ...
pub(crate) const CLOSENESS_PERCENT_MIN: u32 = 50;
/// ... when the guide's phrasings together share this much (in percent) of the question's
/// feature weight.
pub(crate) const COVERAGE_PERCENT_MIN: u32 = 60;

/// Characters that carry no meaning of their own in a complaint.
const FILLER_HAN: &str = "了的是被吗呢啊吧呀我你他她们把就都也还很在里说这那个却又";
/// English filler beyond the search's stop words.
const FILLER_WORDS: &[&str] = &[
    "got", "get", "gets", "has", "have", "had", "been", "this", "that", "they", "he", "she", "we",
    "me", "him", "her", "our", "your", "their", "so", "just", "all", "really",
];
/// The shortest part of an English compound that is read on its own.
const COMPOUND_PART_CHARS_MIN: usize = 3;

/// Concepts of a question; the rest is ignored so that a pasted paragraph stays cheap.
const UNITS_MAX: usize = 64;

/// One `[[concept]]` of `synonyms.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Concept {
    pub(crate) id: String,
    pub(crate) forms: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConceptFile {
    #[serde(default)]
    pub(crate) concept: Vec<Concept>,
}

/// The synonym table, ready to read texts with.
#[derive(Debug, Clone, Default)]
pub(crate) struct Synonyms {
    /// Chinese forms, longest first, with their concept's index.
    han_forms: Vec<(Vec<char>, usize)>,
    /// English stems with their concept's index.
    word_forms: BTreeMap<String, usize>,
    ids: Vec<String>,
}

impl Synonyms {
    /// Indexes the concepts. A form that is neither Chinese nor one English word, or that
    /// two concepts claim, is an error (returned as the rule it breaks).
    pub(crate) fn new(concepts: &[Concept]) -> Result<Synonyms, String> {
        let mut synonyms = Synonyms::default();
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (index, concept) in concepts.iter().enumerate() {
            if concept.forms.is_empty() {
                return Err(format!("concept {} has no forms", concept.id));
            }
            for form in &concept.forms {
                let key = if form.chars().all(is_han) {
                    synonyms.han_forms.push((form.chars().collect(), index));
                    form.clone()
                } else if form.bytes().all(|b| b.is_ascii_lowercase()) {
                    let stem = stem(form).to_owned();
                    synonyms.word_forms.insert(stem.clone(), index);
                    stem
                } else {
                    return Err(format!(
                        "form {form:?} is neither Chinese nor one lowercase word"
                    ));
                };
                match seen.insert(key, &concept.id) {
                    Some(other) if other != concept.id => {
                        return Err(format!("form {form:?} is in {other} and {}", concept.id));
                    }
                    _ => {}
                }
            }
            synonyms.ids.push(concept.id.clone());
        }
        synonyms
            .han_forms
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Ok(synonyms)
    }

    /// The features of `text` with their weights.
    pub(crate) fn features(&self, text: &str) -> Features {
        let units = self.units(text);
        let mut weights = BTreeMap::new();
        for unit in &units {
            let weight = match unit.split_once(':') {
                Some(("c", _)) => WEIGHT_CONCEPT,
                Some(("w", _)) => WEIGHT_WORD,
                _ => continue,
            };
            weights.insert(unit.clone(), weight);
        }
        for pair in units.windows(2) {
            weights.insert(format!("p:{}|{}", pair[0], pair[1]), WEIGHT_PAIR);
        }
        Features { weights }
    }

    /// The units of `text`: `c:` a concept, `h:` a Chinese character, `w:` an English stem.
    fn units(&self, text: &str) -> Vec<String> {
        let chars: Vec<char> = text.to_lowercase().chars().collect();
        let mut units = Vec::new();
        let mut at = 0;
        while at < chars.len() && units.len() < UNITS_MAX {
            let ch = chars[at];
            if ch.is_ascii_alphanumeric() {
                let end = (at..chars.len())
                    .find(|&end| !chars[end].is_ascii_alphanumeric())
                    .unwrap_or(chars.len());
                let word: String = chars[at..end].iter().collect();
                at = end;
                if !STOP_WORDS.contains(&word.as_str()) && !FILLER_WORDS.contains(&word.as_str()) {
                    units.extend(self.word_units(&word));
                }
            } else if is_han(ch) {
                match self.han_form_at(&chars[at..]) {
                    Some((len, index)) => {
                        units.push(format!("c:{}", self.ids[index]));
                        at += len;
                    }
                    None => {
                        if !FILLER_HAN.contains(ch) {
                            units.push(format!("h:{ch}"));
                        }
                        at += 1;
                    }
                }
            } else {
                at += 1;
            }
        }
        units
    }

    /// One English word as units: a concept, or a compound of which one part is a concept
    /// ("chargeback" → charged + back), or else the word's stem.
    fn word_units(&self, word: &str) -> Vec<String> {
        let unit = |part: &str| match self.word_forms.get(stem(part)) {
            Some(&index) => format!("c:{}", self.ids[index]),
            None => format!("w:{}", stem(part)),
        };
        if self.word_forms.contains_key(stem(word)) || !word.is_ascii() {
            return vec![unit(word)];
        }
        let min = COMPOUND_PART_CHARS_MIN;
        // The longest head first: "chargeback" is charge + back, not charg + eback.
        for split in (min..=word.len().saturating_sub(min)).rev() {
            let (head, tail) = word.split_at(split);
            let known = |part: &str| self.word_forms.contains_key(stem(part));
            if known(head) || known(tail) {
                return vec![unit(head), unit(tail)];
            }
        }
        vec![unit(word)]
    }

    /// The longest Chinese form `chars` starts with: its length and concept.
    fn han_form_at(&self, chars: &[char]) -> Option<(usize, usize)> {
        self.han_forms
            .iter()
            .find(|(form, _)| chars.starts_with(form))
            .map(|(form, index)| (form.len(), *index))
    }
}

/// A text's features and their weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Features {
    weights: BTreeMap<String, u32>,
}

/// How close a question is to a guide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Closeness {
    /// Weighted Dice coefficient with the guide's closest phrasing, in percent.
    pub(crate) dice_percent: u32,
    /// The share of the question's weight that the guide's phrasings share, in percent.
    pub(crate) coverage_percent: u32,
}

impl Closeness {
    pub(crate) fn is_close(self) -> bool {
        self.dice_percent >= CLOSENESS_PERCENT_MIN && self.coverage_percent >= COVERAGE_PERCENT_MIN
    }
}

impl Features {
    fn total(&self) -> u32 {
        self.weights.values().sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// How close `self` (a question) is to a guide with these phrasings.
    pub(crate) fn closeness(&self, phrasings: &[Features]) -> Closeness {
        let question = self.total();
        if question == 0 || phrasings.is_empty() {
            return Closeness {
                dice_percent: 0,
                coverage_percent: 0,
            };
        }
        let mut dice_percent = 0;
        let mut covered: BTreeMap<&str, u32> = BTreeMap::new();
        for phrasing in phrasings {
            let mut shared = 0;
            for (key, &weight) in &self.weights {
                if let Some(&other) = phrasing.weights.get(key) {
                    shared += weight.min(other);
                    covered.insert(key, weight.min(other));
                }
            }
            let total = question + phrasing.total();
            dice_percent = dice_percent.max(200 * shared / total);
        }
        let coverage_percent = 100 * covered.values().sum::<u32>() / question;
        assert!(dice_percent <= 100 && coverage_percent <= 100);
        Closeness {
            dice_percent,
            coverage_percent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synonyms() -> Synonyms {
        let concepts = [
            Concept {
                id: "charged".to_owned(),
                forms: vec!["扣款".to_owned(), "扣".to_owned(), "charged".to_owned()],
            },
            Concept {
                id: "retained".to_owned(),
                forms: vec!["扣卡".to_owned(), "没收".to_owned()],
            },
            Concept {
                id: "missing".to_owned(),
                forms: vec!["没收到".to_owned()],
            },
        ];
        Synonyms::new(&concepts).expect("the test table is valid")
    }

    #[test]
    fn the_longest_form_wins_and_filler_is_dropped() {
        let synonyms = synonyms();
        assert_eq!(
            synonyms.units("卡被扣了"),
            ["h:卡", "c:charged"],
            "被 and 了 are filler"
        );
        assert_eq!(synonyms.units("扣卡"), ["c:retained"]);
        assert_eq!(synonyms.units("没收到钱"), ["c:missing", "h:钱"]);
        assert_eq!(synonyms.units("没收卡"), ["c:retained", "h:卡"]);
        assert_eq!(
            synonyms.units("The customer was Charged"),
            ["w:customer", "c:charged"]
        );
        assert_eq!(synonyms.units("chargeback"), ["c:charged", "w:back"]);
        assert_eq!(synonyms.units("feedback"), ["w:feedback"]);
    }

    #[test]
    fn the_same_idea_in_other_words_is_close_and_another_idea_is_not() {
        let synonyms = synonyms();
        let question = synonyms.features("顾客被扣款了");
        let guide = |phrasings: &[&str]| -> Vec<Features> {
            phrasings
                .iter()
                .map(|text| synonyms.features(text))
                .collect()
        };
        assert!(question.closeness(&guide(&["顾客扣了"])).is_close());
        assert!(!question.closeness(&guide(&["没收卡"])).is_close());
        let joined = synonyms.features("chargeback");
        assert!(joined.closeness(&guide(&["charge back"])).is_close());
        assert_eq!(
            question.closeness(std::slice::from_ref(&question)),
            Closeness {
                dice_percent: 100,
                coverage_percent: 100
            }
        );
    }

    #[test]
    fn a_form_in_two_concepts_or_of_another_shape_is_refused() {
        let twice = [
            Concept {
                id: "a".to_owned(),
                forms: vec!["扣".to_owned()],
            },
            Concept {
                id: "b".to_owned(),
                forms: vec!["扣".to_owned()],
            },
        ];
        assert!(Synonyms::new(&twice).is_err());
        let phrase = [Concept {
            id: "a".to_owned(),
            forms: vec!["money taken".to_owned()],
        }];
        assert!(Synonyms::new(&phrase).is_err());
        assert!(Synonyms::new(&twice[..1]).is_ok());
    }
}
