//! Reading the data files and checking each record against the rules of `data/SCHEMA.md`.
//!
//! The same checks serve the built-in files (where a failure is a programmer error and
//! panics once, at first use) and a deployment's vendor file (where it is a typed error).

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::entry::{Entry, EntryFile, LocalFile, Symptom, SymptomFile, VendorCode, VendorFile};
use crate::kinds::{Class, MoneyMoved};
use crate::phrase::{ConceptFile, Synonyms};

/// Causes and steps of an entry: at least this many...
pub(crate) const LIST_ITEMS_MIN: usize = 2;
/// ... and at most this many.
pub(crate) const LIST_ITEMS_MAX: usize = 5;
/// The terminal display text, in characters (Chinese characters take a full cell each on
/// the small screens of POS terminals).
pub(crate) const DISPLAY_CHARS_MAX: usize = 20;
/// Vendor display codes: between three and this many ASCII letters and digits.
pub(crate) const VENDOR_CODE_CHARS_MAX: usize = 8;

/// Why catalog data could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML of the file's shape: a syntax error, a missing or misspelt
    /// field, a value outside its vocabulary.
    #[error("{origin}: {source}")]
    Parse {
        origin: String,
        #[source]
        source: toml::de::Error,
    },
    /// A record is well-formed TOML but breaks a rule of the schema.
    #[error("{origin}: {record}: {rule}")]
    Invalid {
        origin: String,
        record: String,
        rule: String,
    },
}

pub(crate) fn parse_entries(origin: &str, text: &str) -> Result<Vec<Entry>, CatalogError> {
    let file: EntryFile = parse(origin, text)?;
    for entry in &file.entry {
        if entry.tables.is_empty() {
            return Err(invalid(origin, &entry.code, "tables is empty".to_owned()));
        }
        check_entry(entry).map_err(|rule| invalid(origin, &entry.code, rule))?;
    }
    Ok(file.entry)
}

pub(crate) fn parse_locals(origin: &str, text: &str) -> Result<Vec<Entry>, CatalogError> {
    let file: LocalFile = parse(origin, text)?;
    let locals: Vec<Entry> = file.local.into_iter().map(Entry::from).collect();
    let mut seen = BTreeSet::new();
    for local in &locals {
        check_entry(local).map_err(|rule| invalid(origin, &local.code, rule))?;
        if !seen.insert(local.code.as_str()) {
            return Err(invalid(
                origin,
                &local.code,
                "the code appears twice".to_owned(),
            ));
        }
    }
    Ok(locals)
}

pub(crate) fn parse_vendors(origin: &str, text: &str) -> Result<Vec<VendorCode>, CatalogError> {
    let file: VendorFile = parse(origin, text)?;
    let mut seen = BTreeSet::new();
    for vendor in &file.vendor {
        check_vendor(vendor).map_err(|rule| invalid(origin, &vendor.code, rule))?;
        if !seen.insert(vendor.code.as_str()) {
            return Err(invalid(
                origin,
                &vendor.code,
                "the code appears twice".to_owned(),
            ));
        }
    }
    Ok(file.vendor)
}

pub(crate) fn parse_symptoms(origin: &str, text: &str) -> Result<Vec<Symptom>, CatalogError> {
    let file: SymptomFile = parse(origin, text)?;
    let mut seen = BTreeSet::new();
    for symptom in &file.symptom {
        check_symptom(symptom).map_err(|rule| invalid(origin, &symptom.id, rule))?;
        if !seen.insert(symptom.id.as_str()) {
            return Err(invalid(
                origin,
                &symptom.id,
                "the id appears twice".to_owned(),
            ));
        }
    }
    Ok(file.symptom)
}

pub(crate) fn parse_synonyms(origin: &str, text: &str) -> Result<Synonyms, CatalogError> {
    let file: ConceptFile = parse(origin, text)?;
    Synonyms::new(&file.concept).map_err(|rule| invalid(origin, "concepts", rule))
}

fn parse<T: serde::de::DeserializeOwned>(origin: &str, text: &str) -> Result<T, CatalogError> {
    toml::from_str(text).map_err(|source| CatalogError::Parse {
        origin: origin.to_owned(),
        source,
    })
}

pub(crate) fn invalid(origin: &str, record: &str, rule: String) -> CatalogError {
    CatalogError::Invalid {
        origin: origin.to_owned(),
        record: record.to_owned(),
        rule,
    }
}

/// A field-39 code: two ASCII capital letters or digits.
pub(crate) fn is_field39_code(code: &str) -> bool {
    code.len() == 2
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

/// A terminal-local code: `L` and two digits, so it never collides with field 39.
pub(crate) fn is_local_code(code: &str) -> bool {
    let bytes = code.as_bytes();
    bytes.len() == 3 && bytes[0] == b'L' && bytes[1..].iter().all(u8::is_ascii_digit)
}

fn is_vendor_code(code: &str) -> bool {
    (3..=VENDOR_CODE_CHARS_MAX).contains(&code.len())
        && code.bytes().all(|b| b.is_ascii_alphanumeric())
        && !is_local_code(code)
}

fn check_entry(entry: &Entry) -> Result<(), String> {
    if entry.is_local() {
        if !is_local_code(&entry.code) {
            return Err("a local code is `L` and two digits".to_owned());
        }
    } else {
        if !is_field39_code(&entry.code) {
            return Err("a field-39 code is two capital letters or digits".to_owned());
        }
        let distinct: BTreeSet<_> = entry.tables.iter().collect();
        if distinct.len() != entry.tables.len() {
            return Err("a table is listed twice".to_owned());
        }
    }
    if entry.money_moved == MoneyMoved::Yes && entry.class != Class::A {
        return Err(format!(
            "money_moved = \"yes\" needs class A, not {}",
            entry.class.as_str()
        ));
    }
    for (name, text) in [
        ("meaning_zh", &entry.meaning_zh),
        ("meaning_en", &entry.meaning_en),
        ("display", &entry.display),
        ("customer_zh", &entry.customer_zh),
        ("customer_en", &entry.customer_en),
        ("source", &entry.source),
    ] {
        check_text(name, text)?;
    }
    if entry.display.chars().count() > DISPLAY_CHARS_MAX {
        return Err(format!(
            "display is longer than {DISPLAY_CHARS_MAX} characters"
        ));
    }
    check_pair("causes", &entry.causes_zh, &entry.causes_en, LIST_ITEMS_MIN)?;
    check_pair("steps", &entry.steps_zh, &entry.steps_en, LIST_ITEMS_MIN)?;
    check_pair("conflicts", &entry.conflicts_zh, &entry.conflicts_en, 0)?;
    let mut operations = BTreeSet::new();
    for steps in &entry.for_operation {
        if !operations.insert(steps.operation) {
            return Err(format!("two step lists for {}", steps.operation.as_str()));
        }
        check_pair("steps", &steps.steps_zh, &steps.steps_en, LIST_ITEMS_MIN)?;
    }
    check_related(&entry.code, &entry.related)
}

fn check_vendor(vendor: &VendorCode) -> Result<(), String> {
    if !is_vendor_code(&vendor.code) {
        return Err(format!(
            "a vendor code is 3 to {VENDOR_CODE_CHARS_MAX} ASCII letters or digits and not a local code"
        ));
    }
    if !is_field39_code(&vendor.maps_to) && !is_local_code(&vendor.maps_to) {
        return Err(format!(
            "maps_to {:?} is neither a field-39 code nor a local code",
            vendor.maps_to
        ));
    }
    for (name, text) in [
        ("vendor", &vendor.vendor),
        ("note_zh", &vendor.note_zh),
        ("note_en", &vendor.note_en),
    ] {
        check_text(name, text)?;
    }
    Ok(())
}

fn check_symptom(symptom: &Symptom) -> Result<(), String> {
    let id_ok = !symptom.id.is_empty()
        && symptom
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-');
    if !id_ok {
        return Err("an id is kebab-case".to_owned());
    }
    for (name, text) in [
        ("title_zh", &symptom.title_zh),
        ("title_en", &symptom.title_en),
        ("customer_zh", &symptom.customer_zh),
        ("customer_en", &symptom.customer_en),
    ] {
        check_text(name, text)?;
    }
    for (name, names) in [
        ("names_zh", &symptom.names_zh),
        ("names_en", &symptom.names_en),
    ] {
        if names.is_empty() {
            return Err(format!("{name} is empty"));
        }
        for text in names {
            check_text(name, text)?;
        }
    }
    check_pair(
        "steps",
        &symptom.steps_zh,
        &symptom.steps_en,
        LIST_ITEMS_MIN,
    )?;
    check_related(&symptom.id, &symptom.related)
}

fn check_text(name: &str, text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err(format!("{name} is empty"));
    }
    if text.contains('\n') {
        return Err(format!("{name} spans lines"));
    }
    Ok(())
}

/// A bilingual list: the same number of items in both languages, none empty.
fn check_pair(name: &str, zh: &[String], en: &[String], items_min: usize) -> Result<(), String> {
    if zh.len() != en.len() {
        return Err(format!(
            "{name}_zh has {} items but {name}_en has {}",
            zh.len(),
            en.len()
        ));
    }
    if !(items_min..=LIST_ITEMS_MAX).contains(&zh.len()) {
        return Err(format!(
            "{name} has {} items, not {items_min} to {LIST_ITEMS_MAX}",
            zh.len()
        ));
    }
    for text in zh {
        check_text(&format!("{name}_zh"), text)?;
    }
    for text in en {
        check_text(&format!("{name}_en"), text)?;
    }
    Ok(())
}

fn check_related(owner: &str, related: &[String]) -> Result<(), String> {
    for code in related {
        if !is_field39_code(code) && !is_local_code(code) {
            return Err(format!(
                "related {code:?} is neither a field-39 code nor a local code"
            ));
        }
        if code == owner {
            return Err("an entry is related to itself".to_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: &str = r#"
[[entry]]
code = "25"
tables = ["cup-pos"]
class = "C"
category = "host-system"
actor = "merchant"
retry = "after-correction"
money_moved = "no"
meaning_zh = "找不到原交易"
meaning_en = "Original not found"
display = "交易失败，请联系发卡行"
causes_zh = ["原参考号输错", "原交易在别的商户"]
causes_en = ["wrong original reference", "original at another merchant"]
steps_zh = ["核对原参考号", "核对原交易日期"]
steps_en = ["check the original reference", "check the original date"]
customer_zh = "我们核对后再试。"
customer_en = "We will check and try again."
related = ["12"]
conflicts_zh = []
conflicts_en = []
source = "test"
"#;

    fn entry_error(from: &str, to: &str) -> String {
        assert!(ENTRY.contains(from), "the fixture has no {from:?}");
        match parse_entries("test.toml", &ENTRY.replace(from, to)) {
            Ok(_) => panic!("replacing {from:?} with {to:?} was accepted"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn a_well_formed_entry_loads() {
        let entries = parse_entries("test.toml", ENTRY).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].code(), "25");
    }

    #[test]
    fn an_empty_file_has_no_entries() {
        assert!(parse_entries("empty.toml", "").unwrap().is_empty());
        assert!(parse_locals("empty.toml", "").unwrap().is_empty());
        assert!(parse_vendors("empty.toml", "").unwrap().is_empty());
        assert!(parse_symptoms("empty.toml", "").unwrap().is_empty());
    }

    #[test]
    fn lists_of_unequal_length_in_the_two_languages_are_rejected() {
        let err = entry_error(
            r#""check the original date"]"#,
            r#""check the original date", "call"]"#,
        );
        assert_eq!(
            err,
            "test.toml: 25: steps_zh has 2 items but steps_en has 3"
        );
    }

    #[test]
    fn an_empty_string_is_rejected() {
        let err = entry_error(
            r#"customer_en = "We will check and try again.""#,
            r#"customer_en = " ""#,
        );
        assert_eq!(err, "test.toml: 25: customer_en is empty");
    }

    #[test]
    fn money_moved_yes_is_only_for_approvals() {
        let err = entry_error(r#"money_moved = "no""#, r#"money_moved = "yes""#);
        assert_eq!(
            err,
            r#"test.toml: 25: money_moved = "yes" needs class A, not C"#
        );
    }

    #[test]
    fn a_single_cause_is_too_few() {
        let err = entry_error(
            r#"["原参考号输错", "原交易在别的商户"]"#,
            r#"["原参考号输错"]"#,
        );
        assert_eq!(
            err,
            "test.toml: 25: causes_zh has 1 items but causes_en has 2"
        );
    }

    #[test]
    fn a_display_longer_than_a_terminal_line_is_rejected() {
        let err = entry_error(
            "交易失败，请联系发卡行",
            "交易失败，请联系发卡行交易失败，请联系发卡行",
        );
        assert_eq!(err, "test.toml: 25: display is longer than 20 characters");
    }

    #[test]
    fn unknown_fields_and_unknown_vocabulary_are_parse_errors() {
        let err = entry_error("source = ", "sauce = ");
        assert!(err.contains("unknown field `sauce`"), "{err}");
        let err = entry_error(r#"class = "C""#, r#"class = "F""#);
        assert!(err.contains("unknown variant `F`"), "{err}");
    }

    #[test]
    fn codes_of_the_wrong_shape_are_rejected() {
        assert!(
            entry_error(r#"code = "25""#, r#"code = "a0""#)
                .contains("two capital letters or digits")
        );
        assert!(
            entry_error(r#"related = ["12"]"#, r#"related = ["125"]"#).contains("related \"125\"")
        );
        assert!(
            entry_error(r#"related = ["12"]"#, r#"related = ["25"]"#).contains("related to itself")
        );
        assert!(
            entry_error(
                r#"tables = ["cup-pos"]"#,
                r#"tables = ["cup-pos", "cup-pos"]"#
            )
            .contains("twice")
        );
        assert!(entry_error(r#"tables = ["cup-pos"]"#, "tables = []").ends_with("tables is empty"));
    }

    #[test]
    fn local_vendor_and_field39_code_shapes_never_overlap() {
        assert!(is_field39_code("A0") && !is_local_code("A0") && !is_vendor_code("A0"));
        assert!(is_local_code("L03") && !is_field39_code("L03") && !is_vendor_code("L03"));
        assert!(is_vendor_code("1001") && !is_field39_code("1001") && !is_local_code("1001"));
        assert!(is_vendor_code("E101") && !is_vendor_code("10-01") && !is_vendor_code("123456789"));
    }
}
