//! The records of the catalog: a code's entry, a vendor display code, a symptom guide.
//!
//! They are read from the TOML files under `data/` (shapes in `data/SCHEMA.md`) and
//! checked by `load`; once built they are immutable, so the accessors hand out borrows.

use serde::{Deserialize, Serialize};

use crate::kinds::{Actor, Category, Class, Lang, MoneyMoved, Operation, Retry, Table};

/// One response code as one or more tables mean it, or one terminal-local code.
///
/// Deserializes from the `[[entry]]` shape; a local code comes from `[[local]]` instead.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub(crate) code: String,
    /// Empty for a terminal-local code.
    pub(crate) tables: Vec<Table>,
    pub(crate) class: Class,
    pub(crate) category: Category,
    pub(crate) actor: Actor,
    pub(crate) retry: Retry,
    pub(crate) money_moved: MoneyMoved,
    pub(crate) meaning_zh: String,
    pub(crate) meaning_en: String,
    pub(crate) display: String,
    pub(crate) causes_zh: Vec<String>,
    pub(crate) causes_en: Vec<String>,
    pub(crate) steps_zh: Vec<String>,
    pub(crate) steps_en: Vec<String>,
    pub(crate) customer_zh: String,
    pub(crate) customer_en: String,
    pub(crate) related: Vec<String>,
    pub(crate) conflicts_zh: Vec<String>,
    pub(crate) conflicts_en: Vec<String>,
    pub(crate) source: String,
    /// Steps that replace `steps_*` when the code answered this operation.
    #[serde(default)]
    pub(crate) for_operation: Vec<OperationSteps>,
}

/// An entry's steps for one operation (`[[entry.for_operation]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationSteps {
    pub(crate) operation: Operation,
    pub(crate) steps_zh: Vec<String>,
    pub(crate) steps_en: Vec<String>,
}

impl Entry {
    /// Two characters for field 39 (`"25"`, `"A0"`), three for a local code (`"L03"`).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The tables in which the code has this meaning; empty for a terminal-local code.
    pub fn tables(&self) -> &[Table] {
        &self.tables
    }

    /// A terminal-local code: a failure the terminal detects itself, never sent by a host.
    pub fn is_local(&self) -> bool {
        self.tables.is_empty()
    }

    pub fn class(&self) -> Class {
        self.class
    }

    pub fn category(&self) -> Category {
        self.category
    }

    pub fn actor(&self) -> Actor {
        self.actor
    }

    pub fn retry(&self) -> Retry {
        self.retry
    }

    pub fn money_moved(&self) -> MoneyMoved {
        self.money_moved
    }

    pub fn meaning(&self, lang: Lang) -> &str {
        pick(lang, &self.meaning_zh, &self.meaning_en)
    }

    /// What the terminal shows (Chinese, at most 20 characters).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Likely causes, the most likely first.
    pub fn causes(&self, lang: Lang) -> &[String] {
        pick(lang, &self.causes_zh, &self.causes_en)
    }

    /// What the operator does, in order.
    pub fn steps(&self, lang: Lang) -> &[String] {
        pick(lang, &self.steps_zh, &self.steps_en)
    }

    /// What the operator does when the code answered `operation`: the entry's steps for
    /// that operation where it has them (a declined pre-authorization needs no void; an
    /// echo test is never reversed), else [`Entry::steps`].
    pub fn steps_for(&self, operation: Operation, lang: Lang) -> &[String] {
        self.for_operation
            .iter()
            .find(|steps| steps.operation == operation)
            .map_or(self.steps(lang), |steps| {
                pick(lang, &steps.steps_zh, &steps.steps_en)
            })
    }

    /// The operations this entry has steps of their own for.
    pub fn operations_with_own_steps(&self) -> impl Iterator<Item = Operation> + '_ {
        self.for_operation.iter().map(|steps| steps.operation)
    }

    /// What to say to the cardholder.
    pub fn customer(&self, lang: Lang) -> &str {
        pick(lang, &self.customer_zh, &self.customer_en)
    }

    /// What every reader of an entry is given (`poskit explain --json`, the HTTP API):
    /// meanings and words for the customer in both languages, causes and steps in `lang`.
    pub fn summary(&self, lang: Lang) -> EntrySummary<'_> {
        EntrySummary {
            code: self.code(),
            class: self.class().as_str(),
            money_moved: self.money_moved().as_str(),
            meaning_zh: self.meaning(Lang::Zh),
            meaning_en: self.meaning(Lang::En),
            category: self.category().as_str(),
            actor: self.actor().as_str(),
            retry: self.retry().as_str(),
            causes: self.causes(lang),
            steps: self.steps(lang),
            customer_zh: self.customer(Lang::Zh),
            customer_en: self.customer(Lang::En),
        }
    }

    /// Other codes (field 39 or local) worth reading next.
    pub fn related(&self) -> &[String] {
        &self.related
    }

    /// How other tables (or known acquirers) give the same code another meaning; empty
    /// when they agree.
    pub fn conflicts(&self, lang: Lang) -> &[String] {
        pick(lang, &self.conflicts_zh, &self.conflicts_en)
    }

    /// Which source of the specification notes the facts come from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// A code that a vendor's terminal software shows instead of field 39 (`"1001"`), mapped to
/// the catalog code that explains it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorCode {
    pub(crate) code: String,
    pub(crate) vendor: String,
    pub(crate) maps_to: String,
    pub(crate) note_zh: String,
    pub(crate) note_en: String,
}

impl VendorCode {
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Whose terminal software uses the code (`"generic"` for the common numbering).
    pub fn vendor(&self) -> &str {
        &self.vendor
    }

    /// A field-39 code of the CUP POS table, or a local code.
    pub fn maps_to(&self) -> &str {
        &self.maps_to
    }

    pub fn note(&self, lang: Lang) -> &str {
        pick(lang, &self.note_zh, &self.note_en)
    }
}

/// A guide for what people describe instead of a code ("已扣款", "transaction failed"): a
/// short decision procedure ending in what to tell the customer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Symptom {
    pub(crate) id: String,
    pub(crate) names_zh: Vec<String>,
    pub(crate) names_en: Vec<String>,
    pub(crate) title_zh: String,
    pub(crate) title_en: String,
    pub(crate) steps_zh: Vec<String>,
    pub(crate) steps_en: Vec<String>,
    pub(crate) customer_zh: String,
    pub(crate) customer_en: String,
    pub(crate) related: Vec<String>,
}

impl Symptom {
    /// A stable kebab-case name (`"charged-but-failed"`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The words people use for it; a query containing one of them finds the guide.
    pub fn names(&self, lang: Lang) -> &[String] {
        pick(lang, &self.names_zh, &self.names_en)
    }

    pub fn title(&self, lang: Lang) -> &str {
        pick(lang, &self.title_zh, &self.title_en)
    }

    /// The checks in order, each naming the poskit command that answers it.
    pub fn steps(&self, lang: Lang) -> &[String] {
        pick(lang, &self.steps_zh, &self.steps_en)
    }

    pub fn customer(&self, lang: Lang) -> &str {
        pick(lang, &self.customer_zh, &self.customer_en)
    }

    pub fn related(&self) -> &[String] {
        &self.related
    }
}

fn pick<'a, T: ?Sized>(lang: Lang, zh: &'a T, en: &'a T) -> &'a T {
    match lang {
        Lang::Zh => zh,
        Lang::En => en,
    }
}

// The file shapes. `deny_unknown_fields` makes a misspelt field a load error instead of a
// silently missing value.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EntryFile {
    #[serde(default)]
    pub(crate) entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LocalFile {
    #[serde(default)]
    pub(crate) local: Vec<RawLocal>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VendorFile {
    #[serde(default)]
    pub(crate) vendor: Vec<VendorCode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SymptomFile {
    #[serde(default)]
    pub(crate) symptom: Vec<Symptom>,
}

/// `[[entry]]` minus `tables` and `conflicts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLocal {
    code: String,
    class: Class,
    category: Category,
    actor: Actor,
    retry: Retry,
    money_moved: MoneyMoved,
    meaning_zh: String,
    meaning_en: String,
    display: String,
    causes_zh: Vec<String>,
    causes_en: Vec<String>,
    steps_zh: Vec<String>,
    steps_en: Vec<String>,
    customer_zh: String,
    customer_en: String,
    related: Vec<String>,
    source: String,
    #[serde(default)]
    for_operation: Vec<OperationSteps>,
}

impl From<RawLocal> for Entry {
    fn from(raw: RawLocal) -> Entry {
        Entry {
            code: raw.code,
            tables: Vec::new(),
            class: raw.class,
            category: raw.category,
            actor: raw.actor,
            retry: raw.retry,
            money_moved: raw.money_moved,
            meaning_zh: raw.meaning_zh,
            meaning_en: raw.meaning_en,
            display: raw.display,
            causes_zh: raw.causes_zh,
            causes_en: raw.causes_en,
            steps_zh: raw.steps_zh,
            steps_en: raw.steps_en,
            customer_zh: raw.customer_zh,
            customer_en: raw.customer_en,
            related: raw.related,
            conflicts_zh: Vec::new(),
            conflicts_en: Vec::new(),
            source: raw.source,
            for_operation: raw.for_operation,
        }
    }
}

/// An entry as its readers are given it ([`Entry::summary`]).
#[derive(Clone, Debug, Serialize)]
pub struct EntrySummary<'a> {
    pub code: &'a str,
    pub class: &'static str,
    pub money_moved: &'static str,
    pub meaning_zh: &'a str,
    pub meaning_en: &'a str,
    pub category: &'static str,
    pub actor: &'static str,
    pub retry: &'static str,
    pub causes: &'a [String],
    pub steps: &'a [String],
    pub customer_zh: &'a str,
    pub customer_en: &'a str,
}
