//! Record layouts as data: a profile is a list of fields `{ name, width, kind }` in
//! order, read from TOML (the built-in ones are compiled in from `profiles/*.toml`).
//!
//! A profile also carries what reading needs precomputed: each field's offset, and per
//! byte of a record the range of values allowed there (digits, ASCII, GBK bytes, the fee
//! sign, the separator), so that a well-formed record is checked in one branch-free pass
//! (see `reader`); only a record that fails it is walked field by field for the message.

use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::kind::FileKind;

/// How a field's bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// `n`: digits, zero-padded on the left.
    N,
    /// `an`: printable ASCII, space-padded on the right.
    An,
    /// `text`: GBK text, space-padded on the right; the width counts bytes.
    Text,
    /// `fee`: a sign letter, `C` (credit to the acquirer: positive) or `D` (debit:
    /// negative), then `width - 1` digits. Public readers disagree on C's sign; this is
    /// poskit's choice, tested in `tests/write_read.rs`.
    Fee,
}

impl FieldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::N => "n",
            FieldKind::An => "an",
            FieldKind::Text => "text",
            FieldKind::Fee => "fee",
        }
    }

    fn parse(text: &str) -> Option<FieldKind> {
        [FieldKind::N, FieldKind::An, FieldKind::Text, FieldKind::Fee]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// One field of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// Bytes.
    pub width: usize,
    pub kind: FieldKind,
    /// 1-based, as the spec numbers fields.
    pub number: usize,
    /// Byte offset in the record (separators counted).
    pub offset: usize,
}

/// A field as errors name it: `field merchant_name (41)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRef {
    pub name: String,
    pub number: usize,
}

impl fmt::Display for FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field {} ({})", self.name, self.number)
    }
}

/// A profile that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{path}: cannot read the profile: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not a profile: {0}")]
    Toml(String),
    #[error("unknown file type {0:?} (ACOMN, ACOMA or AERRA)")]
    FileKind(String),
    #[error("field {number}: {problem}")]
    Field { number: usize, problem: String },
    #[error("{kind} profiles need a field {name:?} ({wanted})")]
    Missing {
        kind: FileKind,
        name: &'static str,
        wanted: &'static str,
    },
    #[error("field {name} ({number}) must be {wanted}")]
    Incompatible {
        name: String,
        number: usize,
        wanted: &'static str,
    },
}

/// What the typed records need of a field.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// An `n` field read as a number of at most this many digits.
    Num(usize),
    /// A string: `n` or `an`.
    Str,
    /// A one-byte `an` flag.
    Flag,
    /// `text` (or `an`).
    Text,
    /// A `fee` of at most 19 bytes (18 digits fit an i64).
    Fee,
}

impl Shape {
    fn fits(self, kind: FieldKind, width: usize) -> bool {
        match self {
            Shape::Num(max) => kind == FieldKind::N && width <= max,
            Shape::Str => matches!(kind, FieldKind::N | FieldKind::An),
            Shape::Flag => kind == FieldKind::An && width == 1,
            Shape::Text => matches!(kind, FieldKind::Text | FieldKind::An),
            Shape::Fee => kind == FieldKind::Fee && width <= 19,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Shape::Num(9) => "kind n, at most 9 digits",
            Shape::Num(_) => "kind n, at most 19 digits",
            Shape::Str => "kind n or an",
            Shape::Flag => "kind an, width 1",
            Shape::Text => "kind text or an",
            Shape::Fee => "kind fee, at most 19 bytes",
        }
    }
}

macro_rules! keys {
    ($($key:ident = $name:literal : $shape:expr,)*) => {
        /// The fields the typed records read and write, by name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Key { $($key,)* }

        const KEYS: &[(Key, &str, Shape)] = &[$((Key::$key, $name, $shape),)*];
    };
}

keys! {
    AcquirerInst = "acquirer_inst": Shape::Str,
    ForwardingInst = "forwarding_inst": Shape::Str,
    Stan = "stan": Shape::Num(9),
    TransmissionTime = "transmission_time": Shape::Str,
    PanMasked = "pan_masked": Shape::Str,
    AmountFen = "amount_fen": Shape::Num(19),
    Mti = "mti": Shape::Str,
    ProcessingCode = "processing_code": Shape::Str,
    Mcc = "mcc": Shape::Str,
    Tid = "tid": Shape::Str,
    Mid = "mid": Shape::Str,
    Rrn = "rrn": Shape::Str,
    PosCondition = "pos_condition": Shape::Str,
    AuthCode = "auth_code": Shape::Str,
    ReceivingInst = "receiving_inst": Shape::Str,
    OriginalStan = "original_stan": Shape::Num(9),
    ResponseCode = "response_code": Shape::Str,
    EntryMode = "entry_mode": Shape::Str,
    FeeReceivable = "fee_receivable_fen": Shape::Fee,
    FeePayable = "fee_payable_fen": Shape::Fee,
    SwitchFee = "switch_fee_fen": Shape::Fee,
    OriginalTime = "original_time": Shape::Str,
    IssuerInst = "issuer_inst": Shape::Str,
    ReversalFlag = "reversal_flag": Shape::Flag,
    VoidFlag = "void_flag": Shape::Flag,
    ClearingMmdd = "clearing_mmdd": Shape::Str,
    MerchantName = "merchant_name": Shape::Text,
    Currency = "currency": Shape::Str,
    MerchantFee = "merchant_fee_fen": Shape::Fee,
    ErrorType = "error_type": Shape::Str,
    PreviousRrn = "previous_rrn": Shape::Str,
    PreviousStan = "previous_stan": Shape::Num(9),
    ReasonCode = "reason_code": Shape::Str,
    PreviousTime = "previous_time": Shape::Str,
    PreviousClearingMmdd = "previous_clearing_mmdd": Shape::Str,
    PreviousAmount = "previous_amount_fen": Shape::Num(19),
}

/// Whether a profile of `kind` must have `key`: its typed record reads it.
fn requires(kind: FileKind, key: Key) -> bool {
    use Key::*;
    const ACOMN: &[Key] = &[
        AcquirerInst,
        ForwardingInst,
        Stan,
        TransmissionTime,
        PanMasked,
        AmountFen,
        Mti,
        ProcessingCode,
        Mcc,
        Tid,
        Mid,
        Rrn,
        PosCondition,
        AuthCode,
        ReceivingInst,
        OriginalStan,
        ResponseCode,
        EntryMode,
        FeeReceivable,
        FeePayable,
        SwitchFee,
        OriginalTime,
        IssuerInst,
    ];
    // ACOMA: ACOMN's fields, then the acquirer extension's.
    const ACOMA_EXTRA: &[Key] = &[
        ReversalFlag,
        VoidFlag,
        ClearingMmdd,
        MerchantName,
        Currency,
        MerchantFee,
    ];
    const AERRA: &[Key] = &[
        ErrorType,
        AcquirerInst,
        ForwardingInst,
        Stan,
        TransmissionTime,
        PanMasked,
        AmountFen,
        Mti,
        ProcessingCode,
        Tid,
        PreviousRrn,
        PreviousStan,
        ResponseCode,
        FeeReceivable,
        FeePayable,
        ReasonCode,
        PreviousTime,
        PreviousClearingMmdd,
        PreviousAmount,
        Mid,
        ClearingMmdd,
        MerchantName,
    ];
    match kind {
        FileKind::Acomn => ACOMN.contains(&key),
        FileKind::Acoma => ACOMN.contains(&key) || ACOMA_EXTRA.contains(&key),
        FileKind::Aerra => AERRA.contains(&key),
    }
}

/// A record layout: the fields of one file type, in order, one space between fields.
#[derive(Debug, Clone)]
pub struct Profile {
    kind: FileKind,
    fields: Vec<Field>,
    record_len: usize,
    /// Per byte of a record: the lowest value allowed there, and how far above it.
    low: Vec<u8>,
    span: Vec<u8>,
    /// Indices of the `text` fields (checked as GBK when they hold non-ASCII bytes).
    text_fields: Vec<usize>,
    /// Field index of each key, where the profile has it.
    keys: Vec<Option<usize>>,
    /// The key of each field, where it is one.
    key_of_field: Vec<Option<Key>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileToml {
    kind: String,
    fields: Vec<FieldToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldToml {
    name: String,
    width: usize,
    kind: String,
}

const ACOMN_TOML: &str = include_str!("../profiles/acomn.toml");
const ACOMA_TOML: &str = include_str!("../profiles/acoma.toml");
const AERRA_TOML: &str = include_str!("../profiles/aerra.toml");

impl Profile {
    /// The built-in profile of `kind` (`profiles/*.toml`).
    pub fn builtin(kind: FileKind) -> &'static Profile {
        static PROFILES: OnceLock<[Profile; 3]> = OnceLock::new();
        let profiles = PROFILES.get_or_init(|| {
            [ACOMN_TOML, ACOMA_TOML, AERRA_TOML]
                .map(|text| Profile::from_toml(text).expect("the built-in profiles are valid"))
        });
        let profile = &profiles[kind as usize];
        assert_eq!(
            profile.kind, kind,
            "built-in profiles are in FileKind order"
        );
        profile
    }

    /// The TOML text of the built-in profile of `kind`, to start a custom one from.
    pub fn builtin_toml(kind: FileKind) -> &'static str {
        match kind {
            FileKind::Acomn => ACOMN_TOML,
            FileKind::Acoma => ACOMA_TOML,
            FileKind::Aerra => AERRA_TOML,
        }
    }

    /// Reads and validates a profile file shaped like the built-in ones.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Profile::from_toml(&text)
    }

    /// Parses and validates a profile: names unique and not empty, kinds known, widths
    /// above 0 (a fee at least 2), and every field its file type's typed record needs
    /// present with a kind and width it can be read as.
    pub fn from_toml(text: &str) -> Result<Profile, ProfileError> {
        let raw: ProfileToml =
            toml::from_str(text).map_err(|err| ProfileError::Toml(err.to_string()))?;
        let kind: FileKind = raw
            .kind
            .parse()
            .map_err(|_| ProfileError::FileKind(raw.kind))?;
        let mut fields = Vec::with_capacity(raw.fields.len());
        let mut offset = 0;
        for (i, field) in raw.fields.into_iter().enumerate() {
            let number = i + 1;
            let bad = |problem: String| ProfileError::Field { number, problem };
            let field_kind = FieldKind::parse(&field.kind).ok_or_else(|| {
                bad(format!(
                    "unknown kind {:?} (n, an, text or fee)",
                    field.kind
                ))
            })?;
            if field.name.trim().is_empty() {
                return Err(bad("no name".into()));
            }
            if fields.iter().any(|f: &Field| f.name == field.name) {
                return Err(bad(format!("the name {:?} is used twice", field.name)));
            }
            let least = if field_kind == FieldKind::Fee { 2 } else { 1 };
            if field.width < least {
                return Err(bad(format!("width {} (at least {least})", field.width)));
            }
            fields.push(Field {
                name: field.name,
                width: field.width,
                kind: field_kind,
                number,
                offset,
            });
            offset += field.width + 1;
        }
        if fields.is_empty() {
            return Err(ProfileError::Toml("no fields".into()));
        }
        Profile::with_fields(kind, fields)
    }

    fn with_fields(kind: FileKind, fields: Vec<Field>) -> Result<Profile, ProfileError> {
        let mut keys = vec![None; KEYS.len()];
        let mut key_of_field = vec![None; fields.len()];
        for (k, &(key, name, shape)) in KEYS.iter().enumerate() {
            let Some(i) = fields.iter().position(|f| f.name == name) else {
                if requires(kind, key) {
                    let wanted = shape.describe();
                    return Err(ProfileError::Missing { kind, name, wanted });
                }
                continue;
            };
            let field = &fields[i];
            if !shape.fits(field.kind, field.width) {
                return Err(ProfileError::Incompatible {
                    name: field.name.clone(),
                    number: field.number,
                    wanted: shape.describe(),
                });
            }
            keys[k] = Some(i);
            key_of_field[i] = Some(key);
        }
        let (low, span) = byte_ranges(&fields);
        Ok(Profile {
            kind,
            record_len: low.len(),
            low,
            span,
            text_fields: (0..fields.len())
                .filter(|&i| fields[i].kind == FieldKind::Text)
                .collect(),
            fields,
            keys,
            key_of_field,
        })
    }

    pub fn kind(&self) -> FileKind {
        self.kind
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Bytes of a record: the widths plus one space between fields, no line end.
    pub fn record_len(&self) -> usize {
        self.record_len
    }

    /// The index (0-based) of the field named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    pub(crate) fn field_ref(&self, index: usize) -> FieldRef {
        let field = &self.fields[index];
        FieldRef {
            name: field.name.clone(),
            number: field.number,
        }
    }

    pub(crate) fn key(&self, key: Key) -> Option<usize> {
        self.keys[key as usize]
    }

    pub(crate) fn key_of_field(&self, index: usize) -> Option<Key> {
        self.key_of_field[index]
    }

    pub(crate) fn byte_ranges(&self) -> (&[u8], &[u8]) {
        (&self.low, &self.span)
    }

    pub(crate) fn text_fields(&self) -> &[usize] {
        &self.text_fields
    }
}

/// Per byte of a record, the allowed values as `low..=low + span`: digits for `n` and a
/// fee's digits, `C`..=`D` for a fee's sign, printable ASCII for `an`, 0x20..=0xFE for
/// `text` (0xFF is never GBK; the rest is checked as GBK when not ASCII), a space between
/// fields.
fn byte_ranges(fields: &[Field]) -> (Vec<u8>, Vec<u8>) {
    let mut low = Vec::new();
    let mut span = Vec::new();
    let mut push = |l: u8, h: u8, count: usize| {
        low.extend(std::iter::repeat_n(l, count));
        span.extend(std::iter::repeat_n(h - l, count));
    };
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            push(b' ', b' ', 1);
        }
        match field.kind {
            FieldKind::N => push(b'0', b'9', field.width),
            FieldKind::An => push(0x20, 0x7E, field.width),
            FieldKind::Text => push(0x20, 0xFE, field.width),
            FieldKind::Fee => {
                push(b'C', b'D', 1);
                push(b'0', b'9', field.width - 1);
            }
        }
    }
    (low, span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_have_the_spec_lengths() {
        for (kind, fields, len) in [
            (FileKind::Acomn, 34, 299),
            (FileKind::Acoma, 69, 951),
            (FileKind::Aerra, 56, 581),
        ] {
            let profile = Profile::builtin(kind);
            assert_eq!(profile.kind(), kind);
            assert_eq!(profile.fields().len(), fields, "{kind}");
            assert_eq!(profile.record_len(), len, "{kind}");
            let last = profile.fields().last().unwrap();
            assert_eq!(last.offset + last.width, len);
        }
    }

    #[test]
    fn acoma_starts_with_acomn() {
        let acomn = Profile::builtin(FileKind::Acomn).fields();
        let acoma = Profile::builtin(FileKind::Acoma).fields();
        assert_eq!(&acoma[..34], acomn);
        assert_eq!(acoma[40].name, "merchant_name");
        assert_eq!(acoma[40].number, 41);
        assert_eq!(acoma[38].name, "clearing_mmdd");
    }
}
