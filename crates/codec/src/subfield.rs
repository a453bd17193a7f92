//! Sub-fields of the CUP POS private fields (48, 53, 54, 60, 61, 63) readable by name
//! (`"60.3"`), from layouts kept as data (`spec/cup-pos.md` §2.3, §4.4).

use crate::decode::{Message, Value};
use crate::digits::Digits;

/// One sub-field of a layout. `len == 0` means "the rest of the field".
#[derive(Clone, Copy, Debug)]
pub struct SubfieldSpec {
    pub id: &'static str,
    pub name_en: &'static str,
    pub name_zh: &'static str,
    pub len: u16,
}

const fn sub(
    id: &'static str,
    len: u16,
    name_en: &'static str,
    name_zh: &'static str,
) -> SubfieldSpec {
    SubfieldSpec {
        id,
        name_en,
        name_zh,
        len,
    }
}

/// Field 60: transaction type, batch, network management code, terminal capabilities.
pub static F60: &[SubfieldSpec] = &[
    sub("60.1", 2, "Transaction type code", "交易类型码"),
    sub("60.2", 6, "Batch number", "批次号"),
    sub(
        "60.3",
        3,
        "Network management information code",
        "网络管理信息码",
    ),
    sub("60.4", 1, "Terminal read capability", "终端读取能力"),
    sub("60.5", 1, "IC card condition code", "IC卡条件代码"),
    sub(
        "60.6",
        1,
        "Partial approval and balance flag",
        "支持部分扣款和返回余额标志",
    ),
    sub("60.7", 3, "Account type", "账户类型"),
];

/// Field 61: the original transaction a void, refund, reversal or completion refers to.
pub static F61: &[SubfieldSpec] = &[
    sub("61.1", 6, "Original batch number", "原批次号"),
    sub("61.2", 6, "Original POS trace number", "原POS流水号"),
    sub("61.3", 4, "Original transaction date (MMDD)", "原交易日期"),
    sub("61.4", 2, "Original authorization method", "原授权方式"),
    sub("61.5", 11, "Original authorizing institution", "原授权机构"),
];

/// Field 53: security control information.
pub static F53: &[SubfieldSpec] = &[
    sub("53.1", 1, "PIN format (2 = ANSI X9.8 with PAN)", "PIN格式"),
    sub(
        "53.2",
        1,
        "Encryption algorithm (0 DES, 6 3DES)",
        "加密算法标志",
    ),
    sub(
        "53.3",
        1,
        "Track data encryption (0 no, 1 yes)",
        "磁道加密标志",
    ),
    sub("53.4", 13, "Reserved", "保留"),
];

/// Field 54: balance (first amount block; further blocks follow as the rest).
pub static F54: &[SubfieldSpec] = &[
    sub("54.1", 2, "Account type", "账户类型"),
    sub("54.2", 2, "Amount type (02 available)", "余额类型"),
    sub("54.3", 3, "Currency code", "货币代码"),
    sub("54.4", 1, "Sign (C credit, D debit)", "余额符号"),
    sub("54.5", 12, "Amount", "余额"),
    sub("54.6", 0, "Further amount blocks", "其他余额"),
];

/// Field 63: operator code (request) or card scheme (response), then reserved data.
pub static F63: &[SubfieldSpec] = &[
    sub(
        "63.1",
        3,
        "Operator code / card scheme",
        "操作员代码/卡组织代码",
    ),
    sub(
        "63.2",
        0,
        "Reserved data (issuer, CUP, acquirer, terminal)",
        "自定义数据",
    ),
];

/// Field 48 of a settlement (0500/0510): totals the two sides compare.
pub static F48_SETTLEMENT: &[SubfieldSpec] = &[
    sub(
        "48.1",
        12,
        "Debit total amount (domestic)",
        "内卡借记总金额",
    ),
    sub("48.2", 3, "Debit count (domestic)", "内卡借记总笔数"),
    sub(
        "48.3",
        12,
        "Credit total amount (domestic)",
        "内卡贷记总金额",
    ),
    sub("48.4", 3, "Credit count (domestic)", "内卡贷记总笔数"),
    sub(
        "48.5",
        1,
        "Reconciliation code (1 balanced, 2 unbalanced, 3 error)",
        "内卡对账应答代码",
    ),
    sub("48.6", 12, "Debit total amount (foreign)", "外卡借记总金额"),
    sub("48.7", 3, "Debit count (foreign)", "外卡借记总笔数"),
    sub(
        "48.8",
        12,
        "Credit total amount (foreign)",
        "外卡贷记总金额",
    ),
    sub("48.9", 3, "Credit count (foreign)", "外卡贷记总笔数"),
    sub(
        "48.10",
        1,
        "Reconciliation code (foreign)",
        "外卡对账应答代码",
    ),
];

/// Field 48 of a batch-upload end (0320 with 60.3 = 202 or 207).
pub static F48_BATCH_END: &[SubfieldSpec] =
    &[sub("48.1", 4, "Total transactions uploaded", "上送总笔数")];

/// Field 48 of a batch-upload detail message (0320).
pub static F48_BATCH_UPLOAD: &[SubfieldSpec] = &[
    sub("48.1", 2, "Number of details", "明细笔数"),
    sub(
        "48.2",
        0,
        "Details (card type, trace, PAN, amount; 40 digits each)",
        "交易明细",
    ),
];

/// The sub-field layout of `field` in `message`, when the CUP POS profile defines one.
pub fn layout(message: &Message<'_>, field: u8) -> Option<&'static [SubfieldSpec]> {
    if message.profile().name != "cup-pos" {
        return None;
    }
    Some(match field {
        48 => match &message.mti().0 {
            b"0500" | b"0510" => F48_SETTLEMENT,
            b"0320" | b"0330" => {
                let code = message
                    .field(60)
                    .and_then(|f| f.digits())
                    .map(|d| d.slice(8, 3));
                if code.is_some_and(|c| c.eq_str("202") || c.eq_str("207")) {
                    F48_BATCH_END
                } else {
                    F48_BATCH_UPLOAD
                }
            }
            _ => return None,
        },
        53 => F53,
        54 => F54,
        60 => F60,
        61 => F61,
        63 => F63,
        _ => return None,
    })
}

/// A sub-field value: digits of a numeric field or text of a character field.
#[derive(Clone, Copy, Debug)]
pub enum SubValue<'a> {
    Digits(Digits<'a>),
    Text(&'a [u8]),
}

impl std::fmt::Display for SubValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubValue::Digits(d) => d.fmt(f),
            SubValue::Text(t) => f.write_str(&String::from_utf8_lossy(t)),
        }
    }
}

impl SubValue<'_> {
    /// Whether the value spells `text` exactly.
    pub fn eq_str(&self, text: &str) -> bool {
        match self {
            SubValue::Digits(d) => d.eq_str(text),
            SubValue::Text(t) => *t == text.as_bytes(),
        }
    }
}

/// The sub-fields present in `field` of `message`, in order; a value shorter than its
/// layout yields the sub-fields it has (the last one possibly short).
pub fn subfields<'a>(
    message: &Message<'a>,
    field: u8,
) -> impl Iterator<Item = (&'static SubfieldSpec, SubValue<'a>)> + 'a {
    let layout = layout(message, field).unwrap_or(&[]);
    let value = message.field(field).map(|f| f.value());
    let total = match value {
        Some(Value::Digits(d)) => d.len(),
        Some(Value::Text(t)) => t.len(),
        _ => 0,
    };
    let mut at = 0usize;
    layout.iter().map_while(move |spec| {
        if at >= total {
            return None;
        }
        let len = if spec.len == 0 {
            total - at
        } else {
            (spec.len as usize).min(total - at)
        };
        let piece = match value? {
            Value::Digits(d) => SubValue::Digits(d.slice(at, len)),
            Value::Text(t) => SubValue::Text(&t[at..at + len]),
            Value::Bytes(_) | Value::Hex(_) => return None,
        };
        at += len;
        Some((spec, piece))
    })
}

impl<'a> Message<'a> {
    /// A sub-field by its identifier, e.g. `"60.3"` or `"61.2"`.
    pub fn subfield(&self, id: &str) -> Option<SubValue<'a>> {
        let field: u8 = id.split('.').next()?.parse().ok()?;
        subfields(self, field)
            .find(|(spec, _)| spec.id == id)
            .map(|(_, v)| v)
    }
}
