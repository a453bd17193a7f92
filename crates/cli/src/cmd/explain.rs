//! `poskit explain CODE|WORDS`: what a response code, local code, vendor code or symptom
//! means, whether the customer's money moved, and what to do. All meanings come from
//! `poskit-codes`; this module only classifies the input and prints.
//!
//! How the input is read:
//!
//! | input | read as |
//! |---|---|
//! | two letters or digits (`25`, `a0`), or one digit (`5` = `05`) | field 39, in `--table` |
//! | `L` and two digits (`L03`) | a terminal-local code |
//! | a vendor display code of the catalog or of `--vendor-file` (`1001`) | that vendor code |
//! | any other run of three or more digits | an unknown code |
//! | a question naming one code (`刷卡显示51`, `what does 96 mean`) | that code, as above |
//! | anything else | the symptom guide it names or paraphrases, else a ranked search; a search with one hit shows that hit |
//!
//! Exit codes: 0 found; 2 bad arguments; 3 an unknown code, or nothing found.

mod text;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use poskit_codes::{
    CATALOG_VERSION, Catalog, CatalogError, Entry, Found, Hit, Lang, Symptom, Table,
    UNKNOWN_CODE_CLASS, UNKNOWN_CODE_DISPLAY, UNKNOWN_CODE_MONEY_MOVED, UNKNOWN_CODE_RETRY,
    VendorCode,
};
use serde_json::{Value, json};

use crate::fail;

/// Search results shown; the rest are rarely what was meant.
const HITS_SHOWN_MAX: usize = 5;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A response code (25, A0), a local code (L03), a vendor code (1001), a symptom
    /// (已扣款, "charged but failed") or free words (余额不足, wrong pin).
    #[arg(
        value_name = "CODE|WORDS",
        required_unless_present = "list",
        conflicts_with = "list"
    )]
    query: Vec<String>,
    /// The table two-character codes are looked up in.
    #[arg(long, value_name = "TABLE", default_value = "cup-pos", value_parser = parse_table)]
    table: Table,
    /// Language of the text: zh or en. Defaults to the question's script (Chinese
    /// characters: zh; Latin letters: en), then to the locale (LC_ALL, LC_MESSAGES, LANG:
    /// zh_* is Chinese, anything else English).
    #[arg(long, value_name = "LANG", value_parser = parse_lang)]
    lang: Option<Lang>,
    /// Print JSON (one document) instead of text.
    #[arg(long)]
    json: bool,
    /// List every code of the table, the local codes, the vendor codes and the guides.
    #[arg(long)]
    list: bool,
    /// A deployment's own vendor display codes: a TOML file shaped like the built-in
    /// vendor.toml. Its codes replace built-in ones they clash with.
    #[arg(long, value_name = "FILE")]
    vendor_file: Option<PathBuf>,
}

fn parse_table(text: &str) -> Result<Table, String> {
    text.parse()
        .map_err(|err: poskit_codes::UnknownName| err.to_string())
}

fn parse_lang(text: &str) -> Result<Lang, String> {
    text.parse()
        .map_err(|err: poskit_codes::UnknownName| err.to_string())
}

/// What the input turned out to be.
enum Subject<'a> {
    Code(&'a Entry),
    Local(&'a Entry),
    Vendor(&'a VendorCode, Option<&'a Entry>),
    /// A code the catalog does not know, with the tables that do define it.
    Unknown {
        code: String,
        defined_in: Vec<Table>,
    },
    Symptom(&'a Symptom),
    Search {
        query: String,
        hits: Vec<Hit<'a>>,
    },
}

impl Subject<'_> {
    fn found(&self) -> bool {
        match self {
            Subject::Unknown { .. } => false,
            Subject::Search { hits, .. } => !hits.is_empty(),
            _ => true,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let question = args.query.join(" ");
    // --lang, else the question's script, else the locale.
    let lang = args
        .lang
        .or_else(|| Lang::of_text(&question))
        .unwrap_or_else(Lang::from_env);
    let extended;
    let catalog = match &args.vendor_file {
        None => Catalog::builtin(),
        Some(path) => {
            let mut catalog = Catalog::builtin().clone();
            match catalog.load_vendor_file(path) {
                Ok(_) => {}
                Err(err @ CatalogError::Read { .. }) => return Err(fail::usage(err.to_string())),
                Err(err) => return Err(err).context("the vendor file cannot be used"),
            }
            extended = catalog;
            &extended
        }
    };
    let out = Out {
        catalog,
        table: args.table,
        lang,
    };

    if args.list {
        print(args.json, out.list_json(), || text::list(&out))?;
        return Ok(ExitCode::SUCCESS);
    }
    let query = question.trim();
    if query.is_empty() {
        return Err(fail::usage(
            "nothing to explain: give a code, a symptom or some words",
        ));
    }
    let subject = classify(catalog, args.table, query);
    print(args.json, out.subject_json(&subject), || {
        text::subject(&out, &subject)
    })?;
    Ok(if subject.found() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(fail::EXIT_NOT_FOUND)
    })
}

fn print(json: bool, document: Value, human: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&document).expect("a JSON value always serializes")
        )
    } else {
        out!("{}", human())
    }
}

/// What the query is: a code (the whole query, or the one code a question names), a
/// symptom guide, or a search; a search with a single hit is that hit.
fn classify<'a>(catalog: &'a Catalog, table: Table, query: &str) -> Subject<'a> {
    let is_token = !query.is_empty() && query.chars().all(|ch| ch.is_ascii_alphanumeric());
    if is_token && let Some(subject) = classify_token(catalog, table, query) {
        return subject;
    }
    if !is_token && let Some(code) = poskit_codes::code_in_question(query) {
        let subject = classify_token(catalog, table, &code);
        assert!(subject.is_some(), "a code in a question has a code's shape");
        if let Some(subject) = subject {
            return subject;
        }
    }
    if let Some(symptom) = catalog.match_symptom(query) {
        return Subject::Symptom(symptom);
    }
    let mut hits = catalog.search(query, table);
    if let [hit] = hits.as_slice() {
        return match hit.found {
            Found::Entry(entry) if entry.is_local() => Subject::Local(entry),
            Found::Entry(entry) => Subject::Code(entry),
            Found::Symptom(symptom) => Subject::Symptom(symptom),
        };
    }
    hits.truncate(HITS_SHOWN_MAX);
    Subject::Search {
        query: query.to_owned(),
        hits,
    }
}

/// A query of ASCII letters and digits read as a code: field 39, local, vendor, or an
/// unknown run of digits. `None` for a word that is none of these.
fn classify_token<'a>(catalog: &'a Catalog, table: Table, token: &str) -> Option<Subject<'a>> {
    let upper = token.to_ascii_uppercase();
    let digits = upper.bytes().all(|b| b.is_ascii_digit());
    let field39 = match upper.len() {
        1 if digits => Some(format!("0{upper}")),
        2 => Some(upper.clone()),
        _ => None,
    };
    if let Some(code) = field39 {
        return Some(match catalog.lookup(table, &code) {
            Some(entry) => Subject::Code(entry),
            None => Subject::Unknown {
                defined_in: catalog.tables_defining(&code),
                code,
            },
        });
    }
    let local_shape = upper.len() == 3
        && upper.starts_with('L')
        && upper[1..].bytes().all(|b| b.is_ascii_digit());
    if local_shape {
        return Some(match catalog.local(&upper) {
            Some(entry) => Subject::Local(entry),
            None => Subject::Unknown {
                code: upper,
                defined_in: Vec::new(),
            },
        });
    }
    if let Some(vendor) = catalog.vendor(&upper) {
        return Some(Subject::Vendor(vendor, catalog.vendor_target(vendor)));
    }
    digits.then_some(Subject::Unknown {
        code: upper,
        defined_in: Vec::new(),
    })
}

/// What every rendering needs: the catalog, the table asked for and the language.
pub(crate) struct Out<'a> {
    catalog: &'a Catalog,
    table: Table,
    lang: Lang,
}

// --- JSON ---------------------------------------------------------------------------------
//
// The shapes are poskit's public interface for scripts; fields are only ever added. Every
// document carries `kind`, `catalog_version` and `lang` (the language of `causes` and
// `steps`; meanings and customer texts come in both).

impl Out<'_> {
    fn document(&self, kind: &str, mut body: Value) -> Value {
        let object = body.as_object_mut().expect("bodies are objects");
        let mut document = serde_json::Map::new();
        document.insert("kind".into(), json!(kind));
        document.insert("catalog_version".into(), json!(CATALOG_VERSION));
        document.insert("lang".into(), json!(self.lang.as_str()));
        document.append(object);
        Value::Object(document)
    }

    fn subject_json(&self, subject: &Subject<'_>) -> Value {
        match subject {
            Subject::Code(entry) => self.document("code", self.entry_json(entry)),
            Subject::Local(entry) => self.document("local", self.entry_json(entry)),
            Subject::Vendor(vendor, target) => {
                let mut body = vendor_json(vendor);
                body["entry"] = target.map_or(Value::Null, |entry| self.entry_json(entry));
                self.document("vendor", body)
            }
            Subject::Unknown { code, defined_in } => self.document(
                "unknown",
                json!({
                    "code": code,
                    "table": self.table.as_str(),
                    "class": UNKNOWN_CODE_CLASS.as_str(),
                    "money_moved": UNKNOWN_CODE_MONEY_MOVED.as_str(),
                    "retry": UNKNOWN_CODE_RETRY.as_str(),
                    "display": UNKNOWN_CODE_DISPLAY,
                    "defined_in": defined_in.iter().map(|table| table.as_str()).collect::<Vec<_>>(),
                    "guide": self.symptom_json(self.catalog.unknown_code_guide()),
                }),
            ),
            Subject::Symptom(symptom) => self.document("symptom", self.symptom_json(symptom)),
            Subject::Search { query, hits } => self.document(
                "search",
                json!({
                    "query": query,
                    "table": self.table.as_str(),
                    "hits": hits.iter().map(|hit| self.hit_json(hit)).collect::<Vec<_>>(),
                }),
            ),
        }
    }

    /// The full entry. A local code has no `table`, `tables` or `conflicts`.
    fn entry_json(&self, entry: &Entry) -> Value {
        let mut body = json!(entry.summary(self.lang));
        body["display"] = json!(entry.display());
        body["related"] = json!(entry.related());
        body["source"] = json!(entry.source());
        if !entry.is_local() {
            let table = entry_table(entry, self.table);
            body["table"] = json!(table.as_str());
            body["tables"] = json!(
                entry
                    .tables()
                    .iter()
                    .map(|table| table.as_str())
                    .collect::<Vec<_>>()
            );
            body["conflicts"] = json!(entry.conflicts(self.lang));
        }
        body
    }

    fn symptom_json(&self, symptom: &Symptom) -> Value {
        json!({
            "id": symptom.id(),
            "title_zh": symptom.title(Lang::Zh),
            "title_en": symptom.title(Lang::En),
            "names_zh": symptom.names(Lang::Zh),
            "names_en": symptom.names(Lang::En),
            "steps": symptom.steps(self.lang),
            "customer_zh": symptom.customer(Lang::Zh),
            "customer_en": symptom.customer(Lang::En),
            "related": symptom.related(),
        })
    }

    fn hit_json(&self, hit: &Hit<'_>) -> Value {
        match hit.found {
            Found::Entry(entry) => {
                let mut body = summary_json(entry);
                body["kind"] = json!(if entry.is_local() { "local" } else { "code" });
                body["score"] = json!(hit.score);
                body
            }
            Found::Symptom(symptom) => json!({
                "kind": "symptom",
                "id": symptom.id(),
                "title_zh": symptom.title(Lang::Zh),
                "title_en": symptom.title(Lang::En),
                "score": hit.score,
            }),
        }
    }

    fn list_json(&self) -> Value {
        let catalog = self.catalog;
        self.document(
            "list",
            json!({
                "table": self.table.as_str(),
                "entries": catalog.entries(self.table).map(summary_json).collect::<Vec<_>>(),
                "local": catalog.locals().iter().map(summary_json).collect::<Vec<_>>(),
                "vendor": catalog.vendors().iter().map(vendor_json).collect::<Vec<_>>(),
                "symptoms": catalog.symptoms().iter().map(|symptom| json!({
                    "id": symptom.id(),
                    "title_zh": symptom.title(Lang::Zh),
                    "title_en": symptom.title(Lang::En),
                })).collect::<Vec<_>>(),
            }),
        )
    }
}

/// The table a field-39 entry is shown under: the one asked for when the entry belongs to
/// it (a vendor mapping may resolve to another table).
fn entry_table(entry: &Entry, wanted: Table) -> Table {
    assert!(!entry.is_local(), "a local code belongs to no table");
    if entry.tables().contains(&wanted) {
        wanted
    } else {
        entry.tables()[0]
    }
}

fn summary_json(entry: &Entry) -> Value {
    json!({
        "code": entry.code(),
        "class": entry.class().as_str(),
        "money_moved": entry.money_moved().as_str(),
        "retry": entry.retry().as_str(),
        "meaning_zh": entry.meaning(Lang::Zh),
        "meaning_en": entry.meaning(Lang::En),
        "display": entry.display(),
    })
}

fn vendor_json(vendor: &VendorCode) -> Value {
    json!({
        "code": vendor.code(),
        "vendor": vendor.vendor(),
        "maps_to": vendor.maps_to(),
        "note_zh": vendor.note(Lang::Zh),
        "note_en": vendor.note(Lang::En),
    })
}
