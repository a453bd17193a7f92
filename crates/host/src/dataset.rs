//! Reading master data: a TOML file with `[[institutions]]`, `[[merchants]]`,
//! `[[terminals]]` and `[[cards]]` tables, or CSV files of one entity each (which entity is
//! told by the header). Cards carry their PIN in the file; it is hashed as it is read and
//! never kept in clear.

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use poskit_domain::{AmountFen, Mid, Pan, Tid};
use poskit_security::{Pin, SecretKey};

use crate::HostError;
use crate::model::{
    Card, CardStatus, CardType, DataSet, ExternalIssuer, Institution, Merchant, MerchantStatus,
    Terminal, TerminalStatus, kinds_from_text,
};
use crate::pinhash::PinHasher;

/// Records one data file may hold, all entities together.
pub const IMPORT_RECORDS_MAX: usize = 1_000_000;
/// Bytes one data file may have.
pub const IMPORT_BYTES_MAX: u64 = 512 * 1024 * 1024;
/// PIN tries before 75, when a card does not say.
pub const PIN_TRIES_MAX_DEFAULT: u8 = 3;

/// A list written either as a TOML array or as one string separated by `,` or `;` (CSV).
#[derive(Clone, Debug, Default)]
struct List(Vec<String>);

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<List, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = List;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of strings, or one string separated by ',' or ';'")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<List, E> {
                Ok(List(
                    text.split([',', ';'])
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                ))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    out.push(item);
                }
                Ok(List(out))
            }
        }
        deserializer.deserialize_str(ListVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstitutionRow {
    code: String,
    name: String,
    bins: List,
    #[serde(default)]
    external: bool,
    latency_ms: Option<u32>,
    #[serde(default)]
    down: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MerchantRow {
    mid: String,
    name: String,
    mcc: String,
    status: Option<String>,
    txn_limit_fen: Option<u64>,
    daily_limit_fen: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminalRow {
    tid: String,
    mid: String,
    tmk: String,
    status: Option<String>,
    txn_limit_fen: Option<u64>,
    permitted: Option<List>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CardRow {
    pan: String,
    /// debit (the default) or credit.
    #[serde(default)]
    card_type: Option<String>,
    expiry: String,
    pin: Option<String>,
    status: Option<String>,
    balance_fen: Option<u64>,
    pin_tries_max: Option<u8>,
    pin_tries_used: Option<u8>,
    daily_count_max: Option<u32>,
    permitted: Option<List>,
    label: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    institutions: Vec<InstitutionRow>,
    #[serde(default)]
    merchants: Vec<MerchantRow>,
    #[serde(default)]
    terminals: Vec<TerminalRow>,
    #[serde(default)]
    cards: Vec<CardRow>,
}

fn bad(what: impl Into<String>) -> HostError {
    HostError::Data { what: what.into() }
}

fn status<T>(
    text: Option<&str>,
    parse: fn(&str) -> Option<T>,
    default: T,
    names: &[&str],
    whose: &str,
) -> Result<T, HostError> {
    match text {
        None | Some("") => Ok(default),
        Some(t) => parse(t).ok_or_else(|| {
            bad(format!(
                "{whose}: status {t:?} is not one of {}",
                names.join(", ")
            ))
        }),
    }
}

fn amount(fen: Option<u64>, whose: &str, what: &str) -> Result<Option<AmountFen>, HostError> {
    fen.map(|f| AmountFen::new(f).map_err(|e| bad(format!("{whose}: {what}: {e}"))))
        .transpose()
}

fn digits(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_digit())
}

impl InstitutionRow {
    fn into_model(self) -> Result<Institution, HostError> {
        let whose = format!("institution {}", self.code);
        if !digits(&self.code, 8) {
            return Err(bad(format!("{whose}: the code must be 8 digits")));
        }
        if self.bins.0.is_empty() {
            return Err(bad(format!("{whose}: no BINs")));
        }
        for bin in &self.bins.0 {
            if bin.is_empty() || bin.len() > 12 || !bin.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(format!("{whose}: BIN {bin:?} must be 1 to 12 digits")));
            }
        }
        Ok(Institution {
            code: self.code,
            name: self.name,
            bins: self.bins.0,
            external: self.external.then_some(ExternalIssuer {
                latency_ms: self.latency_ms.unwrap_or(0),
                down: self.down,
            }),
        })
    }
}

impl MerchantRow {
    fn into_model(self) -> Result<Merchant, HostError> {
        let mid = Mid::parse(&self.mid).map_err(|e| bad(e.to_string()))?;
        let whose = format!("merchant {mid}");
        if !digits(&self.mcc, 4) {
            return Err(bad(format!("{whose}: the MCC must be 4 digits")));
        }
        Ok(Merchant {
            status: status(
                self.status.as_deref(),
                MerchantStatus::parse,
                MerchantStatus::Active,
                MerchantStatus::NAMES,
                &whose,
            )?,
            txn_limit_fen: amount(self.txn_limit_fen, &whose, "txn_limit_fen")?,
            daily_limit_fen: amount(self.daily_limit_fen, &whose, "daily_limit_fen")?,
            mid,
            name: self.name,
            mcc: self.mcc,
        })
    }
}

impl TerminalRow {
    fn into_model(self) -> Result<Terminal, HostError> {
        let tid = Tid::parse(&self.tid).map_err(|e| bad(e.to_string()))?;
        let whose = format!("terminal {tid}");
        let tmk = SecretKey::from_hex(&self.tmk).map_err(|e| bad(format!("{whose}: tmk: {e}")))?;
        if tmk.len() != 16 && tmk.len() != 24 && tmk.len() != 8 {
            return Err(bad(format!("{whose}: tmk must be 8, 16 or 24 bytes")));
        }
        Ok(Terminal {
            mid: Mid::parse(&self.mid).map_err(|e| bad(format!("{whose}: {e}")))?,
            status: status(
                self.status.as_deref(),
                TerminalStatus::parse,
                TerminalStatus::Active,
                TerminalStatus::NAMES,
                &whose,
            )?,
            tmk,
            txn_limit_fen: amount(self.txn_limit_fen, &whose, "txn_limit_fen")?,
            permitted: kinds_from_text(self.permitted.map(|l| l.0.join(",")).as_deref())
                .map_err(|e| bad(format!("{whose}: permitted: {e}")))?,
            tid,
        })
    }
}

impl CardRow {
    fn into_model(self, hasher: &PinHasher) -> Result<Card, HostError> {
        let pan = Pan::parse(&self.pan).map_err(|e| bad(e.to_string()))?;
        let whose = format!("card {pan}");
        if !digits(&self.expiry, 4)
            || !(1..=12).contains(&self.expiry[2..].parse::<u8>().unwrap_or(0))
        {
            return Err(bad(format!("{whose}: expiry must be YYMM")));
        }
        let pin_hash = match self.pin.as_deref() {
            None | Some("") => None,
            Some(text) => {
                let pin = Pin::new(text).map_err(|e| bad(format!("{whose}: pin: {e}")))?;
                Some(hasher.hash(pan.digits(), &pin))
            }
        };
        Ok(Card {
            card_type: status(
                self.card_type.as_deref(),
                CardType::parse,
                CardType::Debit,
                CardType::NAMES,
                &whose,
            )?,
            expiry: self.expiry,
            status: status(
                self.status.as_deref(),
                CardStatus::parse,
                CardStatus::Active,
                CardStatus::NAMES,
                &whose,
            )?,
            pin_hash,
            pin_tries_max: self.pin_tries_max.unwrap_or(PIN_TRIES_MAX_DEFAULT).max(1),
            pin_tries_used: self.pin_tries_used.unwrap_or(0),
            balance_fen: amount(Some(self.balance_fen.unwrap_or(0)), &whose, "balance_fen")?
                .unwrap_or(AmountFen::ZERO),
            daily_count_max: self.daily_count_max,
            permitted: kinds_from_text(self.permitted.map(|l| l.0.join(",")).as_deref())
                .map_err(|e| bad(format!("{whose}: permitted: {e}")))?,
            label: self.label.unwrap_or_default(),
            pan,
        })
    }
}

/// Reads a TOML data file.
pub fn parse_toml(text: &str, hasher: &PinHasher) -> Result<DataSet, HostError> {
    let file: TomlFile = toml::from_str(text).map_err(|e| bad(format!("TOML: {e}")))?;
    let count =
        file.institutions.len() + file.merchants.len() + file.terminals.len() + file.cards.len();
    if count > IMPORT_RECORDS_MAX {
        return Err(bad(format!("more than {IMPORT_RECORDS_MAX} records")));
    }
    Ok(DataSet {
        institutions: file
            .institutions
            .into_iter()
            .map(InstitutionRow::into_model)
            .collect::<Result<_, _>>()?,
        merchants: file
            .merchants
            .into_iter()
            .map(MerchantRow::into_model)
            .collect::<Result<_, _>>()?,
        terminals: file
            .terminals
            .into_iter()
            .map(TerminalRow::into_model)
            .collect::<Result<_, _>>()?,
        cards: file
            .cards
            .into_iter()
            .map(|c| c.into_model(hasher))
            .collect::<Result<_, _>>()?,
    })
}

/// Reads a CSV file of one entity; the header says which: `code,name,bins,...`
/// (institutions), `mid,name,mcc,...` (merchants), `tid,mid,tmk,...` (terminals) or
/// `pan,expiry,...` (cards).
pub fn parse_csv(text: &str, hasher: &PinHasher) -> Result<DataSet, HostError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| bad(format!("CSV header: {e}")))?
        .clone();
    let has = |name: &str| headers.iter().any(|h| h == name);
    let mut set = DataSet::default();
    fn rows<T: serde::de::DeserializeOwned>(
        reader: &mut csv::Reader<&[u8]>,
        headers: &csv::StringRecord,
    ) -> Result<Vec<T>, HostError> {
        let mut out = Vec::new();
        for (line, record) in reader.records().enumerate() {
            if out.len() >= IMPORT_RECORDS_MAX {
                return Err(bad(format!("more than {IMPORT_RECORDS_MAX} records")));
            }
            let record = record.map_err(|e| bad(format!("CSV record {}: {e}", line + 1)))?;
            // Empty cells are absent values.
            let fields: Vec<(String, String)> = headers
                .iter()
                .zip(record.iter())
                .filter(|(_, v)| !v.is_empty())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect();
            let value = csv_row_to_toml(&fields);
            out.push(value.try_into().map_err(|e: toml::de::Error| {
                bad(format!("CSV record {}: {}", line + 1, e.message()))
            })?);
        }
        Ok(out)
    }
    if has("pan") {
        set.cards = rows::<CardRow>(&mut reader, &headers)?
            .into_iter()
            .map(|c| c.into_model(hasher))
            .collect::<Result<_, _>>()?;
    } else if has("tid") {
        set.terminals = rows::<TerminalRow>(&mut reader, &headers)?
            .into_iter()
            .map(TerminalRow::into_model)
            .collect::<Result<_, _>>()?;
    } else if has("mcc") {
        set.merchants = rows::<MerchantRow>(&mut reader, &headers)?
            .into_iter()
            .map(MerchantRow::into_model)
            .collect::<Result<_, _>>()?;
    } else if has("bins") {
        set.institutions = rows::<InstitutionRow>(&mut reader, &headers)?
            .into_iter()
            .map(InstitutionRow::into_model)
            .collect::<Result<_, _>>()?;
    } else {
        return Err(bad(
            "CSV header names no entity: cards need `pan`, terminals `tid`, merchants `mcc`, institutions `bins`",
        ));
    }
    Ok(set)
}

/// A CSV row as a TOML table, typed by column: numbers for the `*_fen`, `*_ms`, `*_max`
/// columns, booleans for `external` and `down`, strings for the rest (so that leading
/// zeros of identifiers survive).
fn csv_row_to_toml(fields: &[(String, String)]) -> toml::Value {
    let mut table = toml::map::Map::new();
    for (name, value) in fields {
        let typed = if name.ends_with("_fen")
            || name.ends_with("_ms")
            || name.ends_with("_max")
            || name.ends_with("_used")
        {
            value
                .parse::<i64>()
                .map(toml::Value::Integer)
                .unwrap_or_else(|_| toml::Value::String(value.clone()))
        } else if name == "external" || name == "down" {
            match value.as_str() {
                "true" | "1" | "yes" => toml::Value::Boolean(true),
                "false" | "0" | "no" => toml::Value::Boolean(false),
                _ => toml::Value::String(value.clone()),
            }
        } else {
            toml::Value::String(value.clone())
        };
        table.insert(name.clone(), typed);
    }
    toml::Value::Table(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pinhash::PVK_BYTES;

    fn hasher() -> PinHasher {
        PinHasher::from_key([1; PVK_BYTES])
    }

    #[test]
    fn toml_data_reads_every_entity_and_hashes_pins() {
        let text = r#"
            [[institutions]]
            code = "01020000"
            name = "Demo bank"
            bins = ["622202"]

            [[merchants]]
            mid = "898310048160001"
            name = "Corner shop"
            mcc = "5411"
            daily_limit_fen = 100000

            [[terminals]]
            tid = "10000001"
            mid = "898310048160001"
            tmk = "0123456789ABCDEFFEDCBA9876543210"
            permitted = ["sale", "void"]

            [[cards]]
            pan = "6222021234567890128"
            expiry = "3012"
            pin = "123456"
            balance_fen = 100000
            status = "lost"
        "#;
        let set = parse_toml(text, &hasher()).unwrap();
        assert_eq!(set.institutions[0].bins, vec!["622202"]);
        assert_eq!(set.merchants[0].daily_limit_fen.unwrap().fen(), 100000);
        assert_eq!(set.terminals[0].permitted.as_ref().unwrap().len(), 2);
        let card = &set.cards[0];
        assert_eq!(card.status, CardStatus::Lost);
        assert!(!card.pin_hash.as_ref().unwrap().contains("123456"));
        assert!(format!("{set:?}").contains("622202*********0128"));
        assert!(!format!("{set:?}").contains("6222021234567890128"));
    }

    #[test]
    fn csv_data_keeps_leading_zeros_and_reads_lists() {
        let text =
            "code,name,bins,external,latency_ms\n01050000,Slow bank,621700;621701,true,5000\n";
        let set = parse_csv(text, &hasher()).unwrap();
        let inst = &set.institutions[0];
        assert_eq!(inst.code, "01050000");
        assert_eq!(inst.bins, vec!["621700", "621701"]);
        assert_eq!(inst.external.unwrap().latency_ms, 5000);

        let cards =
            "pan,expiry,pin,balance_fen,status\n6222021234567890128,3012,123456,500,pick-up\n";
        let set = parse_csv(cards, &hasher()).unwrap();
        assert_eq!(set.cards[0].status, CardStatus::PickUp);
        assert_eq!(set.cards[0].balance_fen.fen(), 500);
    }

    #[test]
    fn bad_data_is_refused_with_a_reason() {
        let bad_status = "[[merchants]]\nmid = \"898310048160001\"\nname = \"x\"\nmcc = \"5411\"\nstatus = \"closed\"\n";
        let err = parse_toml(bad_status, &hasher()).unwrap_err().to_string();
        assert!(
            err.contains("closed") && err.contains("blacklisted"),
            "{err}"
        );
        let bad_pan = "pan,expiry\n12345,3012\n";
        assert!(parse_csv(bad_pan, &hasher()).is_err());
        let unknown =
            "[[cards]]\npan = \"6222021234567890128\"\nexpiry = \"3012\"\ncolour = \"red\"\n";
        assert!(parse_toml(unknown, &hasher()).is_err());
        assert!(parse_csv("foo,bar\n1,2\n", &hasher()).is_err());
    }
}
