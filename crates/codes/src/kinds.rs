//! The closed vocabularies of the catalog: tables, classes, categories, who acts, retry
//! rules, whether money moved, and the two languages.
//!
//! Each enum deserializes from the kebab-case strings of `data/SCHEMA.md`, gives that
//! string back with `as_str()`, and has a short label in each language for people.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// A language the catalog speaks. Every prose field exists in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Zh, Lang::En];

    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The language of the process locale: the first of `LC_ALL`, `LC_MESSAGES` and `LANG`
    /// that is set and not empty decides (the POSIX order). A value starting with `zh` means
    /// Chinese; anything else (`en_US`, `C`, `POSIX`), and no value at all, means English.
    pub fn from_env() -> Lang {
        let var = |name: &str| std::env::var(name).ok();
        Lang::from_locale(
            var("LC_ALL").as_deref(),
            var("LC_MESSAGES").as_deref(),
            var("LANG").as_deref(),
        )
    }

    /// [`Lang::from_env`] over explicit values, so callers and tests need not touch the
    /// process environment.
    pub fn from_locale(
        lc_all: Option<&str>,
        lc_messages: Option<&str>,
        lang: Option<&str>,
    ) -> Lang {
        let chosen = [lc_all, lc_messages, lang]
            .into_iter()
            .flatten()
            .find(|value| !value.is_empty());
        match chosen {
            Some(value) if value.to_ascii_lowercase().starts_with("zh") => Lang::Zh,
            _ => Lang::En,
        }
    }

    /// The language a text is written in, by its script: any Chinese character means
    /// Chinese ("MAC校验错"), else any Latin letter means English; `None` for a text of
    /// digits and signs alone ("25"), which says nothing.
    pub fn of_text(text: &str) -> Option<Lang> {
        if text.chars().any(crate::search::is_han) {
            Some(Lang::Zh)
        } else if text.chars().any(|ch| ch.is_ascii_alphabetic()) {
            Some(Lang::En)
        } else {
            None
        }
    }
}

impl FromStr for Lang {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Lang, UnknownName> {
        match text {
            "zh" => Ok(Lang::Zh),
            "en" => Ok(Lang::En),
            _ => Err(UnknownName::new("language", text, &["zh", "en"])),
        }
    }
}

/// A name that is not one of a vocabulary's values (`--table cup`, `--lang fr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    what: &'static str,
    given: String,
    expected: &'static [&'static str],
}

impl UnknownName {
    fn new(what: &'static str, given: &str, expected: &'static [&'static str]) -> UnknownName {
        UnknownName {
            what,
            given: given.to_owned(),
            expected,
        }
    }
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} {:?}: expected one of {}",
            self.what,
            self.given,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownName {}

/// A response-code table: the same two characters of field 39 mean different things in
/// each, so every lookup names its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
pub enum Table {
    /// The CUP POS terminal table ("对应答码的处理", classes A–E). The default.
    #[serde(rename = "cup-pos")]
    CupPos,
    /// The CUP switch table of Q/CUP 006.6-2014 Annex A.2.
    #[serde(rename = "cup-switch")]
    CupSwitch,
    /// Generic ISO 8583:1987 field 39.
    #[serde(rename = "iso87")]
    Iso87,
}

impl Table {
    pub const ALL: [Table; 3] = [Table::CupPos, Table::CupSwitch, Table::Iso87];
    const NAMES: &'static [&'static str] = &["cup-pos", "cup-switch", "iso87"];

    pub fn as_str(self) -> &'static str {
        match self {
            Table::CupPos => "cup-pos",
            Table::CupSwitch => "cup-switch",
            Table::Iso87 => "iso87",
        }
    }

    pub fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Table::CupPos, Lang::Zh) => "银联POS终端应答码表",
            (Table::CupPos, Lang::En) => "CUP POS terminal table",
            (Table::CupSwitch, Lang::Zh) => "银联交换系统2014版应答码表",
            (Table::CupSwitch, Lang::En) => "CUP switch table of 2014",
            (Table::Iso87, Lang::Zh) => "ISO 8583:1987 通用应答码",
            (Table::Iso87, Lang::En) => "ISO 8583:1987 generic codes",
        }
    }
}

impl FromStr for Table {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Table, UnknownName> {
        Table::ALL
            .into_iter()
            .find(|table| table.as_str() == text)
            .ok_or_else(|| UnknownName::new("table", text, Table::NAMES))
    }
}

/// The CUP POS outcome class of a code: what the terminal does with the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
pub enum Class {
    /// Approved.
    A,
    /// Failed; the same transaction may be tried again.
    B,
    /// Failed; trying again will not help.
    C,
    /// Failed; the operator must act (retain the card, sign in, call the acquirer).
    D,
    /// Failed because of a system fault; do not retry now.
    E,
}

impl Class {
    pub const ALL: [Class; 5] = [Class::A, Class::B, Class::C, Class::D, Class::E];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::A => "A",
            Class::B => "B",
            Class::C => "C",
            Class::D => "D",
            Class::E => "E",
        }
    }

    pub fn is_approved(self) -> bool {
        self == Class::A
    }

    pub fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Class::A, Lang::Zh) => "交易成功",
            (Class::A, Lang::En) => "approved",
            (Class::B, Lang::Zh) => "交易失败，可以重试",
            (Class::B, Lang::En) => "failed, may retry",
            (Class::C, Lang::Zh) => "交易失败，原样重发无用",
            (Class::C, Lang::En) => "failed; the same request again fails too",
            (Class::D, Lang::Zh) => "交易失败，需收银员处理",
            (Class::D, Lang::En) => "failed, operator must act",
            (Class::E, Lang::Zh) => "交易失败，系统故障",
            (Class::E, Lang::En) => "failed, system fault",
        }
    }
}

/// Where the cause of a code lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    Card,
    Cardholder,
    MerchantSetup,
    Terminal,
    SecurityKeys,
    Communication,
    HostSystem,
    Issuer,
}

impl Category {
    pub const ALL: [Category; 8] = [
        Category::Card,
        Category::Cardholder,
        Category::MerchantSetup,
        Category::Terminal,
        Category::SecurityKeys,
        Category::Communication,
        Category::HostSystem,
        Category::Issuer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Card => "card",
            Category::Cardholder => "cardholder",
            Category::MerchantSetup => "merchant-setup",
            Category::Terminal => "terminal",
            Category::SecurityKeys => "security-keys",
            Category::Communication => "communication",
            Category::HostSystem => "host-system",
            Category::Issuer => "issuer",
        }
    }

    pub fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Category::Card, Lang::Zh) => "卡片",
            (Category::Card, Lang::En) => "card",
            (Category::Cardholder, Lang::Zh) => "持卡人",
            (Category::Cardholder, Lang::En) => "cardholder",
            (Category::MerchantSetup, Lang::Zh) => "商户开通与设置",
            (Category::MerchantSetup, Lang::En) => "merchant set-up",
            (Category::Terminal, Lang::Zh) => "终端",
            (Category::Terminal, Lang::En) => "terminal",
            (Category::SecurityKeys, Lang::Zh) => "密钥与安全",
            (Category::SecurityKeys, Lang::En) => "keys and security",
            (Category::Communication, Lang::Zh) => "通讯",
            (Category::Communication, Lang::En) => "communication",
            (Category::HostSystem, Lang::Zh) => "主机系统",
            (Category::HostSystem, Lang::En) => "host system",
            (Category::Issuer, Lang::Zh) => "发卡行",
            (Category::Issuer, Lang::En) => "issuer",
        }
    }
}

/// Who has to do something about a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Actor {
    Cardholder,
    Operator,
    Merchant,
    Acquirer,
    Issuer,
    TerminalVendor,
    None,
}

impl Actor {
    pub const ALL: [Actor; 7] = [
        Actor::Cardholder,
        Actor::Operator,
        Actor::Merchant,
        Actor::Acquirer,
        Actor::Issuer,
        Actor::TerminalVendor,
        Actor::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Cardholder => "cardholder",
            Actor::Operator => "operator",
            Actor::Merchant => "merchant",
            Actor::Acquirer => "acquirer",
            Actor::Issuer => "issuer",
            Actor::TerminalVendor => "terminal-vendor",
            Actor::None => "none",
        }
    }

    pub fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Actor::Cardholder, Lang::Zh) => "持卡人",
            (Actor::Cardholder, Lang::En) => "cardholder",
            (Actor::Operator, Lang::Zh) => "收银员",
            (Actor::Operator, Lang::En) => "operator",
            (Actor::Merchant, Lang::Zh) => "商户",
            (Actor::Merchant, Lang::En) => "merchant",
            (Actor::Acquirer, Lang::Zh) => "收单机构",
            (Actor::Acquirer, Lang::En) => "acquirer",
            (Actor::Issuer, Lang::Zh) => "发卡行",
            (Actor::Issuer, Lang::En) => "issuer",
            (Actor::TerminalVendor, Lang::Zh) => "终端服务商",
            (Actor::TerminalVendor, Lang::En) => "terminal vendor",
            (Actor::None, Lang::Zh) => "无需处理",
            (Actor::None, Lang::En) => "nobody",
        }
    }
}

/// Whether and when the same transaction may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Retry {
    Never,
    AfterCorrection,
    AfterSignIn,
    LaterBackoff,
    OnceNow,
    /// Approvals: there is nothing to retry.
    NotNeeded,
}

impl Retry {
    pub const ALL: [Retry; 6] = [
        Retry::Never,
        Retry::AfterCorrection,
        Retry::AfterSignIn,
        Retry::LaterBackoff,
        Retry::OnceNow,
        Retry::NotNeeded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Retry::Never => "never",
            Retry::AfterCorrection => "after-correction",
            Retry::AfterSignIn => "after-sign-in",
            Retry::LaterBackoff => "later-backoff",
            Retry::OnceNow => "once-now",
            Retry::NotNeeded => "not-needed",
        }
    }

    pub fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Retry::Never, Lang::Zh) => "不要重试",
            (Retry::Never, Lang::En) => "do not retry",
            (Retry::AfterCorrection, Lang::Zh) => "改正原因后再试",
            (Retry::AfterCorrection, Lang::En) => "after correcting the cause",
            (Retry::AfterSignIn, Lang::Zh) => "重新签到后再试",
            (Retry::AfterSignIn, Lang::En) => "after signing in again",
            (Retry::LaterBackoff, Lang::Zh) => "稍后再试，间隔逐次加长",
            (Retry::LaterBackoff, Lang::En) => "later, waiting longer each time",
            (Retry::OnceNow, Lang::Zh) => "可立即重试一次",
            (Retry::OnceNow, Lang::En) => "once, right away",
            (Retry::NotNeeded, Lang::Zh) => "无需重试",
            (Retry::NotNeeded, Lang::En) => "not needed",
        }
    }
}

/// Whether the cardholder's money may have moved. The first thing an operator needs in
/// front of a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MoneyMoved {
    /// Nothing was debited.
    No,
    /// Approved: the money moved as intended. Only approvals (class A) say this.
    Yes,
    /// The debit may stand although the sale failed; a reversal is due and the terminal
    /// sends it.
    ReversalDue,
    /// Not known from the code alone: look the transaction up.
    Check,
}

impl MoneyMoved {
    pub const ALL: [MoneyMoved; 4] = [
        MoneyMoved::No,
        MoneyMoved::Yes,
        MoneyMoved::ReversalDue,
        MoneyMoved::Check,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MoneyMoved::No => "no",
            MoneyMoved::Yes => "yes",
            MoneyMoved::ReversalDue => "reversal-due",
            MoneyMoved::Check => "check",
        }
    }

    pub fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (MoneyMoved::No, Lang::Zh) => "没有扣款",
            (MoneyMoved::No, Lang::En) => "no",
            (MoneyMoved::Yes, Lang::Zh) => "已扣款，交易有效",
            (MoneyMoved::Yes, Lang::En) => "yes, as intended",
            (MoneyMoved::ReversalDue, Lang::Zh) => "可能已扣款，须冲正",
            (MoneyMoved::ReversalDue, Lang::En) => "maybe; a reversal is due",
            (MoneyMoved::Check, Lang::Zh) => "不确定，须查询",
            (MoneyMoved::Check, Lang::En) => "unknown; look it up",
        }
    }
}

/// What the terminal was doing when it got a code: the operations of `poskit pos`. An
/// entry may give other steps for one of them ([`crate::Entry::steps_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    Sale,
    Void,
    Refund,
    Balance,
    Preauth,
    PreauthCancel,
    Complete,
    CompleteVoid,
    SignIn,
    SignOff,
    Echo,
    Settle,
}

impl Operation {
    pub const ALL: [Operation; 12] = [
        Operation::Sale,
        Operation::Void,
        Operation::Refund,
        Operation::Balance,
        Operation::Preauth,
        Operation::PreauthCancel,
        Operation::Complete,
        Operation::CompleteVoid,
        Operation::SignIn,
        Operation::SignOff,
        Operation::Echo,
        Operation::Settle,
    ];

    /// The name in the data and on the command line (`poskit pos ... preauth-cancel`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Sale => "sale",
            Operation::Void => "void",
            Operation::Refund => "refund",
            Operation::Balance => "balance",
            Operation::Preauth => "preauth",
            Operation::PreauthCancel => "preauth-cancel",
            Operation::Complete => "complete",
            Operation::CompleteVoid => "complete-void",
            Operation::SignIn => "sign-in",
            Operation::SignOff => "sign-off",
            Operation::Echo => "echo",
            Operation::Settle => "settle",
        }
    }
}

impl FromStr for Operation {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Operation, UnknownName> {
        const NAMES: &[&str] = &[
            "sale",
            "void",
            "refund",
            "balance",
            "preauth",
            "preauth-cancel",
            "complete",
            "complete-void",
            "sign-in",
            "sign-off",
            "echo",
            "settle",
        ];
        Operation::ALL
            .into_iter()
            .find(|op| op.as_str() == text)
            .ok_or_else(|| UnknownName::new("operation", text, NAMES))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_starting_with_zh_means_chinese() {
        assert_eq!(Lang::from_locale(None, None, Some("zh_CN.UTF-8")), Lang::Zh);
        assert_eq!(Lang::from_locale(None, None, Some("ZH_tw")), Lang::Zh);
    }

    #[test]
    fn english_or_missing_or_other_locale_means_english() {
        assert_eq!(Lang::from_locale(None, None, Some("en_US.UTF-8")), Lang::En);
        assert_eq!(Lang::from_locale(None, None, None), Lang::En);
        assert_eq!(Lang::from_locale(None, None, Some("C.UTF-8")), Lang::En);
        assert_eq!(Lang::from_locale(None, None, Some("fr_FR")), Lang::En);
    }

    #[test]
    fn a_text_s_script_gives_its_language_and_digits_give_none() {
        assert_eq!(Lang::of_text("MAC校验错"), Some(Lang::Zh));
        assert_eq!(Lang::of_text("what does 96 mean"), Some(Lang::En));
        assert_eq!(Lang::of_text("25"), None);
        assert_eq!(Lang::of_text(""), None);
    }

    #[test]
    fn lc_all_beats_lc_messages_beats_lang_and_empty_values_count_as_unset() {
        assert_eq!(
            Lang::from_locale(Some("en_US"), Some("zh_CN"), Some("zh_CN")),
            Lang::En
        );
        assert_eq!(
            Lang::from_locale(None, Some("en_US"), Some("zh_CN")),
            Lang::En
        );
        assert_eq!(
            Lang::from_locale(Some(""), Some(""), Some("en_US")),
            Lang::En
        );
        assert_eq!(
            Lang::from_locale(Some("zh_TW"), None, Some("en_US")),
            Lang::Zh
        );
    }

    #[test]
    fn every_name_parses_back_to_its_value() {
        for op in Operation::ALL {
            assert_eq!(op.as_str().parse::<Operation>(), Ok(op));
        }
        for table in Table::ALL {
            assert_eq!(table.as_str().parse::<Table>(), Ok(table));
        }
        for lang in Lang::ALL {
            assert_eq!(lang.as_str().parse::<Lang>(), Ok(lang));
        }
        let err = "cup".parse::<Table>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown table "cup": expected one of cup-pos, cup-switch, iso87"#
        );
    }

    fn deserialize<T: for<'de> Deserialize<'de>>(name: &str) -> T {
        let de = serde::de::value::StrDeserializer::<serde::de::value::Error>::new(name);
        T::deserialize(de).unwrap_or_else(|err| panic!("{name:?} does not deserialize: {err}"))
    }

    #[test]
    fn kebab_case_names_deserialize_to_the_value_whose_as_str_they_are() {
        for value in Table::ALL {
            assert_eq!(deserialize::<Table>(value.as_str()), value);
        }
        for value in Class::ALL {
            assert_eq!(deserialize::<Class>(value.as_str()), value);
        }
        for value in Category::ALL {
            assert_eq!(deserialize::<Category>(value.as_str()), value);
        }
        for value in Actor::ALL {
            assert_eq!(deserialize::<Actor>(value.as_str()), value);
        }
        for value in Retry::ALL {
            assert_eq!(deserialize::<Retry>(value.as_str()), value);
        }
        for value in MoneyMoved::ALL {
            assert_eq!(deserialize::<MoneyMoved>(value.as_str()), value);
        }
    }
}
