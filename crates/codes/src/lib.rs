//! The response-code catalog: what every field-39 code, terminal-local code and vendor
//! display code means, in Chinese and English, and what to do about it.
//!
//! Every other part of poskit reads code semantics from here; no meaning of a code is
//! written anywhere else. The catalog is data (`data/*.toml`, shapes in `data/SCHEMA.md`)
//! compiled into the binary and parsed once.
//!
//! ```
//! use poskit_codes::{Catalog, Class, Lang, MoneyMoved, Table};
//!
//! let catalog = Catalog::builtin();
//! // A code no table lists: CUP POS shows 交易失败, and nobody knows where the money is.
//! assert_eq!(catalog.class_of(Table::CupPos, "Q9"), Class::C);
//! assert_eq!(catalog.money_moved_of(Table::CupPos, "Q9"), MoneyMoved::Check);
//! let guide = catalog.unknown_code_guide();
//! assert!(!guide.steps(Lang::En).is_empty());
//! ```
//!
//! # Architecture invariants
//! - A (table, code) pair has exactly one entry; a code whose tables disagree has one entry
//!   per meaning, each naming the conflict.
//! - Every prose field exists in both languages, lists with the same number of items.
//! - Only approvals (class A) say the money moved as intended.
//! - Domain types do not implement `Serialize`: the CLI and the web API define their own
//!   shapes at the edge.

pub mod advice;
mod catalog;
mod entry;
mod kinds;
mod load;
mod phrase;
mod question;
mod search;

pub use catalog::{
    CATALOG_VERSION, Catalog, UNKNOWN_CODE_CLASS, UNKNOWN_CODE_DISPLAY, UNKNOWN_CODE_MONEY_MOVED,
    UNKNOWN_CODE_RETRY, UNKNOWN_CODE_SYMPTOM,
};
pub use entry::{Entry, EntrySummary, OperationSteps, Symptom, VendorCode};
pub use kinds::{Actor, Category, Class, Lang, MoneyMoved, Operation, Retry, Table, UnknownName};
pub use load::CatalogError;
pub use question::code_in_question;
pub use search::{Found, Hit};
