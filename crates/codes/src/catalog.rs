//! The catalog: every entry, local code, vendor code and symptom guide, with lookups.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

use crate::entry::{Entry, Symptom, VendorCode};
use crate::kinds::{Class, MoneyMoved, Retry, Table};
use crate::load::{self, CatalogError};
use crate::phrase::{Closeness, Features, Synonyms};

/// The version of the catalog's content, shown by `poskit explain --json` as
/// `catalog_version`. Raise it whenever a meaning, class or rule in `data/` changes.
pub const CATALOG_VERSION: &str = "1.1.0";

/// What the CUP POS table says about a code it does not list: show 交易失败 (note 1 of the
/// table). poskit also treats such a code as class C: failed, and retrying blindly will
/// not help.
pub const UNKNOWN_CODE_DISPLAY: &str = "交易失败";
pub const UNKNOWN_CODE_CLASS: Class = Class::C;
/// An unknown code says nothing about the money: the transaction has to be looked up.
pub const UNKNOWN_CODE_MONEY_MOVED: MoneyMoved = MoneyMoved::Check;
pub const UNKNOWN_CODE_RETRY: Retry = Retry::Never;

/// The id of the guide every caller shows for a code the catalog does not know.
pub const UNKNOWN_CODE_SYMPTOM: &str = "unknown-code";

const BUILTIN_ENTRIES: [(&str, &str); 2] = [
    (
        "data/codes-00-44.toml",
        include_str!("../data/codes-00-44.toml"),
    ),
    (
        "data/codes-45-zz.toml",
        include_str!("../data/codes-45-zz.toml"),
    ),
];
const BUILTIN_LOCAL: (&str, &str) = ("data/local.toml", include_str!("../data/local.toml"));
const BUILTIN_VENDOR: (&str, &str) = ("data/vendor.toml", include_str!("../data/vendor.toml"));
const BUILTIN_SYMPTOMS: (&str, &str) =
    ("data/symptoms.toml", include_str!("../data/symptoms.toml"));
const BUILTIN_SYNONYMS: (&str, &str) =
    ("data/synonyms.toml", include_str!("../data/synonyms.toml"));

/// The response-code catalog.
///
/// [`Catalog::builtin`] is the data shipped in the binary. A deployment that has its own
/// vendor display codes clones it and adds them with [`Catalog::load_vendor_file`].
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Field-39 entries in code order.
    entries: Vec<Entry>,
    /// (table, code) → index into `entries`. A pair appears in exactly one entry.
    index: BTreeMap<(Table, String), usize>,
    /// Terminal-local codes in code order.
    locals: Vec<Entry>,
    /// Vendor display codes in code order; a deployment's file replaces a built-in code.
    vendors: Vec<VendorCode>,
    /// Symptom guides in file order, which is the order [`Catalog::match_symptom`] tries them.
    symptoms: Vec<Symptom>,
    /// The words people use for one idea, for reading questions (`data/synonyms.toml`).
    synonyms: Synonyms,
}

impl Catalog {
    /// The catalog compiled into the binary, parsed on first use.
    ///
    /// # Panics
    /// If the built-in data breaks the schema. That is a programmer error which the crate's
    /// tests catch before a release.
    pub fn builtin() -> &'static Catalog {
        static BUILTIN: OnceLock<Catalog> = OnceLock::new();
        BUILTIN.get_or_init(|| match Catalog::from_builtin_files() {
            Ok(catalog) => catalog,
            Err(err) => panic!("the built-in response-code catalog is invalid: {err}"),
        })
    }

    fn from_builtin_files() -> Result<Catalog, CatalogError> {
        let mut entries = Vec::new();
        for (origin, text) in BUILTIN_ENTRIES {
            entries.extend(load::parse_entries(origin, text)?);
        }
        let locals = load::parse_locals(BUILTIN_LOCAL.0, BUILTIN_LOCAL.1)?;
        let vendors = load::parse_vendors(BUILTIN_VENDOR.0, BUILTIN_VENDOR.1)?;
        let symptoms = load::parse_symptoms(BUILTIN_SYMPTOMS.0, BUILTIN_SYMPTOMS.1)?;
        let synonyms = load::parse_synonyms(BUILTIN_SYNONYMS.0, BUILTIN_SYNONYMS.1)?;
        let mut catalog = Catalog::new(entries, locals, vendors, symptoms)?;
        catalog.synonyms = synonyms;
        Ok(catalog)
    }

    /// Indexes checked records and enforces the rules that span records.
    fn new(
        mut entries: Vec<Entry>,
        mut locals: Vec<Entry>,
        mut vendors: Vec<VendorCode>,
        symptoms: Vec<Symptom>,
    ) -> Result<Catalog, CatalogError> {
        entries.sort_by(|a, b| a.code.cmp(&b.code));
        locals.sort_by(|a, b| a.code.cmp(&b.code));
        vendors.sort_by(|a, b| a.code.cmp(&b.code));

        let mut index = BTreeMap::new();
        for (position, entry) in entries.iter().enumerate() {
            for &table in &entry.tables {
                if index
                    .insert((table, entry.code.clone()), position)
                    .is_some()
                {
                    let rule = format!(
                        "({}, {}) appears in two entries",
                        table.as_str(),
                        entry.code
                    );
                    return Err(load::invalid("field-39 entries", &entry.code, rule));
                }
            }
        }
        // A code whose tables disagree has one entry per meaning, and each names the conflict.
        for pair in entries.windows(2) {
            if pair[0].code == pair[1].code {
                for entry in pair {
                    if entry.conflicts_en.is_empty() {
                        let rule = "the code has several entries, so each must name the conflict"
                            .to_owned();
                        return Err(load::invalid("field-39 entries", &entry.code, rule));
                    }
                }
            }
        }
        if !symptoms
            .iter()
            .any(|symptom| symptom.id == UNKNOWN_CODE_SYMPTOM)
        {
            let rule = "the guide for unknown codes is missing".to_owned();
            return Err(load::invalid("symptoms", UNKNOWN_CODE_SYMPTOM, rule));
        }

        let catalog = Catalog {
            entries,
            index,
            locals,
            vendors,
            symptoms,
            synonyms: Synonyms::default(),
        };
        assert!(catalog.entries.iter().all(|entry| !entry.is_local()));
        assert!(catalog.locals.iter().all(Entry::is_local));
        Ok(catalog)
    }

    /// The entry for `code` in `table`. The code is matched without regard to case.
    pub fn lookup(&self, table: Table, code: &str) -> Option<&Entry> {
        let code = normalize_code(code);
        self.index
            .get(&(table, code))
            .map(|&position| &self.entries[position])
    }

    /// The CUP class of `code` in `table`; [`UNKNOWN_CODE_CLASS`] for a code the table does
    /// not list.
    pub fn class_of(&self, table: Table, code: &str) -> Class {
        self.lookup(table, code)
            .map_or(UNKNOWN_CODE_CLASS, Entry::class)
    }

    /// Whether `code` in `table` tells the merchant to retain the card (没收卡: 04, 07, 33–37,
    /// 41, 43, 67): the catalog's class D (the operator must act) about the card itself.
    pub fn is_pick_up(&self, table: Table, code: &str) -> bool {
        self.lookup(table, code)
            .is_some_and(|e| e.class() == Class::D && e.category() == crate::Category::Card)
    }

    /// The retry rule of `code` in `table`; [`UNKNOWN_CODE_RETRY`] for an unknown code.
    pub fn retry_of(&self, table: Table, code: &str) -> Retry {
        self.lookup(table, code)
            .map_or(UNKNOWN_CODE_RETRY, Entry::retry)
    }

    /// Whether money may have moved after `code` in `table`; [`UNKNOWN_CODE_MONEY_MOVED`]
    /// for an unknown code.
    pub fn money_moved_of(&self, table: Table, code: &str) -> MoneyMoved {
        self.lookup(table, code)
            .map_or(UNKNOWN_CODE_MONEY_MOVED, Entry::money_moved)
    }

    /// The tables that define `code`, in [`Table::ALL`] order.
    pub fn tables_defining(&self, code: &str) -> Vec<Table> {
        Table::ALL
            .into_iter()
            .filter(|&table| self.lookup(table, code).is_some())
            .collect()
    }

    /// Every entry of `table`, in code order.
    pub fn entries(&self, table: Table) -> impl Iterator<Item = &Entry> {
        self.index
            .range((table, String::new())..)
            .take_while(move |((entry_table, _), _)| *entry_table == table)
            .map(|(_, &position)| &self.entries[position])
    }

    /// Every field-39 entry of every table, in code order; a code whose tables disagree
    /// appears once per meaning.
    pub fn all_entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The terminal-local code `code` (`"L03"`), matched without regard to case.
    pub fn local(&self, code: &str) -> Option<&Entry> {
        let code = normalize_code(code);
        self.locals.iter().find(|local| local.code == code)
    }

    /// Every terminal-local code, in code order.
    pub fn locals(&self) -> &[Entry] {
        &self.locals
    }

    /// The vendor display code `code` (`"1001"`).
    pub fn vendor(&self, code: &str) -> Option<&VendorCode> {
        let code = normalize_code(code);
        self.vendors.iter().find(|vendor| vendor.code == code)
    }

    /// Every vendor display code, in code order.
    pub fn vendors(&self) -> &[VendorCode] {
        &self.vendors
    }

    /// The entry a vendor code stands for: a local code, or a code of the CUP POS table.
    pub fn vendor_target(&self, vendor: &VendorCode) -> Option<&Entry> {
        self.resolve(&vendor.maps_to, Table::CupPos)
    }

    /// A field-39 code in `table` (falling back to the other tables), or a local code: how
    /// `related` lists and vendor mappings are followed.
    pub fn resolve(&self, code: &str, table: Table) -> Option<&Entry> {
        if load::is_local_code(&normalize_code(code)) {
            return self.local(code);
        }
        self.lookup(table, code).or_else(|| {
            Table::ALL
                .into_iter()
                .find_map(|other| self.lookup(other, code))
        })
    }

    /// The symptom guide with this id (`"charged-but-failed"`).
    pub fn symptom(&self, id: &str) -> Option<&Symptom> {
        self.symptoms.iter().find(|symptom| symptom.id == id)
    }

    /// Every symptom guide, in the order they are tried.
    pub fn symptoms(&self) -> &[Symptom] {
        &self.symptoms
    }

    /// The guide for what someone describes: the guide whose id or one of whose names
    /// equals the words (case and spaces do not matter), or else the guide one of whose
    /// names or titles says the same in other words (see `phrase.rs`: synonyms of
    /// `data/synonyms.toml`, pairs of neighbouring words, letter trigrams), the closest
    /// first and, among equally close guides, the one earlier in the file. `None` when no
    /// guide is close enough: the caller searches the codes instead.
    pub fn match_symptom(&self, words: &str) -> Option<&Symptom> {
        let words = normalize_words(words);
        if words.is_empty() {
            return None;
        }
        let exact = self
            .symptoms
            .iter()
            .find(|symptom| symptom.id == words || symptom_names(symptom).contains(&words));
        exact.or_else(|| self.closest_symptom(&words))
    }

    fn closest_symptom(&self, words: &str) -> Option<&Symptom> {
        let question = self.synonyms.features(words);
        if question.is_empty() {
            return None;
        }
        let mut best: Option<(Closeness, &Symptom)> = None;
        for symptom in &self.symptoms {
            let phrasings: Vec<Features> = symptom_names(symptom)
                .iter()
                .chain([&symptom.title_zh, &symptom.title_en])
                .map(|phrasing| self.synonyms.features(phrasing))
                .collect();
            let closeness = question.closeness(&phrasings);
            let better = best.is_none_or(|(best, _)| closeness > best);
            if closeness.is_close() && better {
                best = Some((closeness, symptom));
            }
        }
        best.map(|(_, symptom)| symptom)
    }

    /// The guide for a code the catalog does not know.
    pub fn unknown_code_guide(&self) -> &Symptom {
        self.symptom(UNKNOWN_CODE_SYMPTOM)
            .expect("Catalog::new requires the unknown-code guide")
    }

    /// Adds a deployment's vendor display codes from a TOML file of the `vendor.toml` shape.
    /// A code already in the catalog is replaced: the deployment knows its own terminals.
    /// Either every record of the file is added or, on an error, none is. Returns how many
    /// records the file held.
    pub fn load_vendor_file(&mut self, path: &Path) -> Result<usize, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.add_vendor_toml(&path.display().to_string(), &text)
    }

    /// [`Catalog::load_vendor_file`] over text already read; `origin` names it in errors.
    pub fn add_vendor_toml(&mut self, origin: &str, text: &str) -> Result<usize, CatalogError> {
        let added = load::parse_vendors(origin, text)?;
        for vendor in &added {
            if self.vendor_target(vendor).is_none() {
                let rule = format!(
                    "maps_to {:?} is not a cup-pos code or a local code of the catalog",
                    vendor.maps_to
                );
                return Err(load::invalid(origin, &vendor.code, rule));
            }
        }
        let count = added.len();
        let replaced: BTreeSet<String> = added.iter().map(|vendor| vendor.code.clone()).collect();
        self.vendors
            .retain(|vendor| !replaced.contains(&vendor.code));
        self.vendors.extend(added);
        self.vendors.sort_by(|a, b| a.code.cmp(&b.code));
        Ok(count)
    }

    /// References that lead nowhere: a `related` code or a vendor `maps_to` that the catalog
    /// does not define. The built-in catalog has none (a test checks); the list says which
    /// record holds each dangling reference.
    pub fn dangling_references(&self) -> Vec<String> {
        let mut dangling = Vec::new();
        let known = |code: &str| self.resolve(code, Table::CupPos).is_some();
        for entry in self.entries.iter().chain(&self.locals) {
            for code in entry.related.iter().filter(|code| !known(code)) {
                dangling.push(format!(
                    "entry {} relates to unknown code {code}",
                    entry.code
                ));
            }
        }
        for symptom in &self.symptoms {
            for code in symptom.related.iter().filter(|code| !known(code)) {
                dangling.push(format!(
                    "symptom {} relates to unknown code {code}",
                    symptom.id
                ));
            }
        }
        for vendor in self
            .vendors
            .iter()
            .filter(|vendor| self.vendor_target(vendor).is_none())
        {
            dangling.push(format!(
                "vendor code {} maps to unknown code {}",
                vendor.code, vendor.maps_to
            ));
        }
        dangling
    }
}

fn normalize_code(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

/// Lowercase, with runs of white space reduced to one space.
pub(crate) fn normalize_words(words: &str) -> String {
    words
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn symptom_names(symptom: &Symptom) -> Vec<String> {
    symptom
        .names_zh
        .iter()
        .chain(&symptom.names_en)
        .map(|name| normalize_words(name))
        .collect()
}
