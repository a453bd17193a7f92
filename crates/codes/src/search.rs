//! Ranked search over the catalog for what people type: a code, words from a meaning or a
//! display text, a cause, a symptom's name.
//!
//! A query is cut into terms: runs of Chinese characters, and English words (lowercased,
//! common filler words dropped, a short list of synonyms that operators use added). A
//! Chinese term matches a text that contains it, or in part one that contains at least
//! half of its two-character pairs. An English term matches a word of the text, after
//! stripping simple endings ("charged" ~ "charge").
//!
//! Each record's fields carry weights: code, symptom names, meaning, display and title,
//! then the causes in their ranked order. A term scores the best weight it reaches; a
//! record scores the sum over terms, plus the weight of the best field that matches every
//! term on its own, so "wrong pin" ranks "incorrect PIN" (both words in one meaning) above
//! "PIN tries exceeded" (one word in the meaning, the other in a cause).

use crate::catalog::Catalog;
use crate::entry::{Entry, Symptom};
use crate::kinds::Table;

/// A record that matched a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found<'a> {
    /// A field-39 entry of the searched table, or a local code.
    Entry(&'a Entry),
    Symptom(&'a Symptom),
}

impl<'a> Found<'a> {
    /// The code of an entry, the id of a symptom.
    pub fn key(&self) -> &'a str {
        match self {
            Found::Entry(entry) => entry.code(),
            Found::Symptom(symptom) => symptom.id(),
        }
    }
}

/// One search result; larger scores are better matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'a> {
    pub found: Found<'a>,
    pub score: u32,
}

const WEIGHT_CODE: u32 = 30;
const WEIGHT_SYMPTOM_NAME: u32 = 12;
const WEIGHT_MEANING: u32 = 10;
const WEIGHT_DISPLAY: u32 = 8;
const WEIGHT_TITLE: u32 = 8;
/// Causes by rank: the most likely cause weighs most.
const WEIGHT_CAUSES: [u32; 5] = [6, 5, 4, 3, 3];

/// Match qualities, in tenths.
const QUALITY_FULL: u32 = 10;
const QUALITY_SYNONYM: u32 = 9;
const QUALITY_PREFIX: u32 = 7;
const QUALITY_SINGLE_HAN: u32 = 5;
/// A term counts towards the one-field bonus only at this quality or better.
const QUALITY_BONUS_MIN: u32 = QUALITY_SYNONYM;

/// Terms a query may hold; the rest is ignored so a pasted paragraph stays cheap.
const TERMS_MAX: usize = 16;

pub(crate) const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "at", "be", "but", "code", "did", "do", "does", "error", "for", "how",
    "i", "in", "is", "it", "its", "mean", "means", "my", "of", "on", "or", "pos", "said", "says",
    "shows", "the", "to", "was", "what", "why", "with",
];

/// Words operators use for the words the catalog uses.
const SYNONYMS: &[(&str, &[&str])] = &[
    ("wrong", &["incorrect", "invalid"]),
    ("incorrect", &["wrong", "invalid"]),
    ("bad", &["invalid", "incorrect"]),
    ("password", &["pin"]),
    ("insufficient", &["sufficient", "enough"]),
    ("money", &["funds"]),
    ("balance", &["funds"]),
    ("charged", &["debited", "deducted"]),
    ("timeout", &["timed"]),
    ("network", &["connection", "communication"]),
];

#[derive(Debug, PartialEq, Eq)]
enum Term {
    /// Lowercase ASCII letters and digits, with the synonyms to try.
    Word {
        word: String,
        synonyms: &'static [&'static str],
    },
    /// A run of Chinese characters.
    Han(String),
}

impl Catalog {
    /// Ranked search over the entries of `table`, the local codes and the symptom guides;
    /// best first, ties in code order. Searches both languages whatever the query's
    /// language. An empty result means nothing matched.
    pub fn search(&self, query: &str, table: Table) -> Vec<Hit<'_>> {
        let terms = terms(query);
        if terms.is_empty() {
            return Vec::new();
        }
        let entries = self.entries(table).chain(self.locals()).map(Found::Entry);
        let symptoms = self.symptoms().iter().map(Found::Symptom);
        let mut hits: Vec<Hit<'_>> = entries
            .chain(symptoms)
            .filter_map(|found| {
                let score = score(&terms, &fields(found));
                (score > 0).then_some(Hit { found, score })
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .cmp(&a.score)
                .then_with(|| a.found.key().cmp(b.found.key()))
        });
        hits
    }
}

fn fields<'a>(found: Found<'a>) -> Vec<(u32, &'a str)> {
    let mut fields = Vec::new();
    match found {
        Found::Entry(entry) => {
            fields.push((WEIGHT_CODE, entry.code()));
            fields.push((WEIGHT_MEANING, entry.meaning_zh.as_str()));
            fields.push((WEIGHT_MEANING, entry.meaning_en.as_str()));
            fields.push((WEIGHT_DISPLAY, entry.display()));
            for causes in [&entry.causes_zh, &entry.causes_en] {
                fields.extend(
                    WEIGHT_CAUSES
                        .iter()
                        .copied()
                        .zip(causes.iter().map(String::as_str)),
                );
            }
        }
        Found::Symptom(symptom) => {
            fields.push((WEIGHT_CODE, symptom.id()));
            for name in symptom.names_zh.iter().chain(&symptom.names_en) {
                fields.push((WEIGHT_SYMPTOM_NAME, name.as_str()));
            }
            fields.push((WEIGHT_TITLE, symptom.title_zh.as_str()));
            fields.push((WEIGHT_TITLE, symptom.title_en.as_str()));
        }
    }
    fields
}

fn score(terms: &[Term], fields: &[(u32, &str)]) -> u32 {
    let mut total_tenths = 0;
    let mut bonus = 0;
    for &(weight, text) in fields {
        let qualities: Vec<u32> = terms.iter().map(|term| quality(term, text)).collect();
        if qualities
            .iter()
            .all(|&quality| quality >= QUALITY_BONUS_MIN)
        {
            bonus = bonus.max(weight);
        }
    }
    for term in terms {
        let best = fields
            .iter()
            .map(|&(weight, text)| weight * quality(term, text))
            .max()
            .unwrap_or(0);
        total_tenths += best;
    }
    if total_tenths == 0 {
        return 0;
    }
    total_tenths / QUALITY_FULL + bonus
}

/// How well `term` matches `text`, in tenths (0 = not at all).
fn quality(term: &Term, text: &str) -> u32 {
    match term {
        Term::Han(han) => quality_han(han, text),
        Term::Word { word, synonyms } => {
            let stem_query = stem(word);
            let mut best = 0;
            for text_word in words(text) {
                let quality = if text_word == *word || stem(&text_word) == stem_query {
                    QUALITY_FULL
                } else if synonyms
                    .iter()
                    .any(|synonym| stem(&text_word) == stem(synonym))
                {
                    QUALITY_SYNONYM
                } else if word.len() >= 4 && text_word.starts_with(word.as_str()) {
                    QUALITY_PREFIX
                } else {
                    0
                };
                best = best.max(quality);
            }
            best
        }
    }
}

fn quality_han(han: &str, text: &str) -> u32 {
    if text.contains(han) {
        return if han.chars().count() == 1 {
            QUALITY_SINGLE_HAN
        } else {
            QUALITY_FULL
        };
    }
    let chars: Vec<char> = han.chars().collect();
    if chars.len() < 2 {
        return 0;
    }
    let pairs: Vec<String> = chars.windows(2).map(|pair| pair.iter().collect()).collect();
    let present = pairs
        .iter()
        .filter(|pair| text.contains(pair.as_str()))
        .count();
    // At least half of the pairs: a partial match, worth at most eight tenths.
    let pairs_len = u32::try_from(pairs.len()).expect("a term is short");
    let present = u32::try_from(present).expect("a term is short");
    if present * 2 < pairs_len {
        0
    } else {
        8 * present / pairs_len
    }
}

fn terms(query: &str) -> Vec<Term> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Run {
        Han,
        Word,
        Gap,
    }
    let mut terms = Vec::new();
    let mut run = Run::Gap;
    let mut text = String::new();
    for ch in query.chars().chain([' ']) {
        let next = if is_han(ch) {
            Run::Han
        } else if ch.is_ascii_alphanumeric() {
            Run::Word
        } else {
            Run::Gap
        };
        if next != run {
            match run {
                Run::Han => terms.push(Term::Han(std::mem::take(&mut text))),
                Run::Word => {
                    let word = std::mem::take(&mut text).to_ascii_lowercase();
                    if !STOP_WORDS.contains(&word.as_str()) {
                        terms.push(Term::Word {
                            synonyms: synonyms(&word),
                            word,
                        });
                    }
                }
                Run::Gap => {}
            }
            run = next;
        }
        if run != Run::Gap {
            text.push(ch);
        }
    }
    terms.dedup();
    terms.truncate(TERMS_MAX);
    terms
}

fn synonyms(word: &str) -> &'static [&'static str] {
    SYNONYMS
        .iter()
        .find(|(key, _)| *key == word)
        .map_or(&[], |(_, alternatives)| alternatives)
}

/// The lowercase ASCII words of a text; Chinese characters and punctuation separate them.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|ch: char| !ch.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_ascii_lowercase)
}

/// Strips one common English ending, keeping at least three letters.
pub(crate) fn stem(word: &str) -> &str {
    for suffix in ["ing", "ed", "es", "s", "e"] {
        if let Some(stem) = word.strip_suffix(suffix)
            && stem.len() >= 3
        {
            return stem;
        }
    }
    word
}

pub(crate) fn is_han(ch: char) -> bool {
    matches!(ch, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str) -> Term {
        Term::Word {
            word: text.to_owned(),
            synonyms: synonyms(text),
        }
    }

    #[test]
    fn a_query_is_cut_into_chinese_runs_and_english_words_without_filler() {
        assert_eq!(
            terms("What does 余额不足 mean, wrong PIN?"),
            vec![Term::Han("余额不足".to_owned()), word("wrong"), word("pin")]
        );
        assert_eq!(
            terms("已扣款但显示失败"),
            vec![Term::Han("已扣款但显示失败".to_owned())]
        );
        assert_eq!(
            terms("MAC校验错"),
            vec![word("mac"), Term::Han("校验错".to_owned())]
        );
        assert!(terms(" ,. the ").is_empty());
    }

    #[test]
    fn english_words_match_across_simple_endings_and_synonyms() {
        assert_eq!(
            quality(&word("charged"), "the customer was charged twice"),
            QUALITY_FULL
        );
        assert_eq!(quality(&word("charges"), "a charge was made"), QUALITY_FULL);
        assert_eq!(quality(&word("wrong"), "Incorrect PIN"), QUALITY_SYNONYM);
        assert_eq!(quality(&word("revers"), "reversal due"), QUALITY_PREFIX);
        assert_eq!(quality(&word("rev"), "reversal due"), 0);
        assert_eq!(quality(&word("pin"), "spinning"), 0);
    }

    #[test]
    fn chinese_terms_match_whole_or_by_most_of_their_pairs() {
        let han = |text: &str| Term::Han(text.to_owned());
        assert_eq!(quality(&han("余额不足"), "余额不足，请查询"), QUALITY_FULL);
        // 余额 and 不足 of the three pairs 余额 额不 不足.
        assert_eq!(
            quality(&han("余额不足"), "查询余额后发现资金不足"),
            8 * 2 / 3
        );
        assert_eq!(quality(&han("余额不足"), "资金不足"), 0);
        assert_eq!(quality(&han("钱"), "钱已扣"), QUALITY_SINGLE_HAN);
    }

    #[test]
    fn all_terms_in_one_field_outrank_the_same_terms_spread_over_two() {
        let terms = terms("wrong pin");
        let one_field = score(&terms, &[(WEIGHT_MEANING, "Incorrect PIN")]);
        let spread = score(
            &terms,
            &[
                (WEIGHT_MEANING, "PIN tries exceeded"),
                (WEIGHT_CAUSES[0], "the wrong card"),
            ],
        );
        assert!(one_field > spread, "{one_field} <= {spread}");
        assert_eq!(score(&terms, &[(WEIGHT_MEANING, "Expired card")]), 0);
    }
}
