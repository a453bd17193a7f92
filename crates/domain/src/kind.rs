//! The CUP POS transaction table (`spec/cup-pos.md` §2.2): each transaction's MTI,
//! processing code (field 3), condition code (field 25), type code (60.1) and network
//! management code (60.3), whether it is reversed when its answer is lost, and whether it
//! carries a MAC. Host and terminal both read transactions from here.

/// A transaction a terminal asks of the host. A reversal (0400) is not a kind of its own:
/// it is [`Identified::Reversal`] of the kind it reverses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransactionKind {
    /// 余额查询
    BalanceInquiry,
    /// 预授权
    PreAuth,
    /// 预授权撤销
    PreAuthCancel,
    /// 预授权完成（请求）
    PreAuthCompletion,
    /// 预授权完成撤销
    PreAuthCompletionVoid,
    /// 预授权完成（通知）: an offline completion sent as an advice.
    PreAuthCompletionAdvice,
    /// 消费
    Sale,
    /// 消费撤销: same batch only; the original's RRN in 37, its batch and trace in 61.
    Void,
    /// 退货: an advice (0220), matched by the original's RRN and date.
    Refund,
    /// 签到: working keys and the batch number come back.
    SignIn,
    /// 签退
    SignOff,
    /// 回响测试
    Echo,
    /// 批结算: totals in 48 compared with the host's.
    Settlement,
    /// 批上送, including the batch-end messages (60.3 = 202 or 207).
    BatchUpload,
}

/// What a request is: a transaction, or the reversal of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Identified {
    Request(TransactionKind),
    Reversal(TransactionKind),
}

struct Row {
    kind: TransactionKind,
    mti: &'static [u8; 4],
    /// First two digits of field 3 (the rest carry account types).
    processing: Option<&'static [u8; 2]>,
    condition: Option<&'static [u8; 2]>,
    type_code: &'static [u8; 2],
    /// 60.3 values that identify a management message.
    network: &'static [&'static [u8; 3]],
    reversible: bool,
    mac: bool,
    name_zh: &'static str,
    name_en: &'static str,
}

const fn financial(
    kind: TransactionKind,
    mti: &'static [u8; 4],
    processing: &'static [u8; 2],
    condition: &'static [u8; 2],
    type_code: &'static [u8; 2],
    reversible: bool,
    (name_zh, name_en): (&'static str, &'static str),
) -> Row {
    Row {
        kind,
        mti,
        processing: Some(processing),
        condition: Some(condition),
        type_code,
        network: &[],
        reversible,
        mac: true,
        name_zh,
        name_en,
    }
}

const fn management(
    kind: TransactionKind,
    mti: &'static [u8; 4],
    network: &'static [&'static [u8; 3]],
    name_zh: &'static str,
    name_en: &'static str,
) -> Row {
    Row {
        kind,
        mti,
        processing: None,
        condition: None,
        type_code: b"00",
        network,
        reversible: false,
        mac: false,
        name_zh,
        name_en,
    }
}

use TransactionKind as K;

static TABLE: &[Row] = &[
    financial(
        K::BalanceInquiry,
        b"0200",
        b"31",
        b"00",
        b"01",
        false,
        ("余额查询", "balance inquiry"),
    ),
    financial(
        K::PreAuth,
        b"0100",
        b"03",
        b"06",
        b"10",
        true,
        ("预授权", "pre-authorization"),
    ),
    financial(
        K::PreAuthCancel,
        b"0100",
        b"20",
        b"06",
        b"11",
        true,
        ("预授权撤销", "pre-authorization cancel"),
    ),
    financial(
        K::PreAuthCompletion,
        b"0200",
        b"00",
        b"06",
        b"20",
        true,
        ("预授权完成", "pre-authorization completion"),
    ),
    financial(
        K::PreAuthCompletionVoid,
        b"0200",
        b"20",
        b"06",
        b"21",
        true,
        ("预授权完成撤销", "completion void"),
    ),
    financial(
        K::PreAuthCompletionAdvice,
        b"0220",
        b"00",
        b"06",
        b"24",
        false,
        ("预授权完成通知", "completion advice"),
    ),
    financial(
        K::Sale,
        b"0200",
        b"00",
        b"00",
        b"22",
        true,
        ("消费", "sale"),
    ),
    financial(
        K::Void,
        b"0200",
        b"20",
        b"00",
        b"23",
        true,
        ("消费撤销", "void"),
    ),
    financial(
        K::Refund,
        b"0220",
        b"20",
        b"00",
        b"25",
        false,
        ("退货", "refund"),
    ),
    management(
        K::SignIn,
        b"0800",
        &[b"001", b"003", b"004"],
        "签到",
        "sign-in",
    ),
    management(K::SignOff, b"0820", &[b"002"], "签退", "sign-off"),
    management(K::Echo, b"0820", &[b"301"], "回响测试", "echo test"),
    management(K::Settlement, b"0500", &[b"201"], "批结算", "settlement"),
    management(
        K::BatchUpload,
        b"0320",
        &[
            b"201", b"202", b"203", b"204", b"205", b"206", b"207", b"208", b"209",
        ],
        "批上送",
        "batch upload",
    ),
];

/// The MTI of a reversal request.
pub const REVERSAL_MTI: &[u8; 4] = b"0400";

impl TransactionKind {
    fn row(self) -> &'static Row {
        // Every kind has exactly one row (a test checks it).
        TABLE.iter().find(|r| r.kind == self).unwrap_or(&TABLE[0])
    }

    pub fn all() -> impl Iterator<Item = TransactionKind> {
        TABLE.iter().map(|r| r.kind)
    }

    /// The request MTI.
    pub fn mti(self) -> &'static [u8; 4] {
        self.row().mti
    }

    /// Field 3 as a terminal sends it (default account types).
    pub fn processing_code(self) -> Option<[u8; 6]> {
        self.row()
            .processing
            .map(|p| [p[0], p[1], b'0', b'0', b'0', b'0'])
    }

    /// Field 25.
    pub fn condition_code(self) -> Option<&'static [u8; 2]> {
        self.row().condition
    }

    /// 60.1.
    pub fn type_code(self) -> &'static [u8; 2] {
        self.row().type_code
    }

    /// Whether a lost answer is settled by a reversal (§4.1): sale, void, the
    /// pre-authorization family online; not balance inquiries, refunds or advices.
    pub fn reversible(self) -> bool {
        self.row().reversible
    }

    /// Whether request and approved response carry a MAC (all but management messages).
    pub fn carries_mac(self) -> bool {
        self.row().mac
    }

    /// Whether the request is an advice (0220), sent store-and-forward.
    pub fn is_advice(self) -> bool {
        self.mti() == b"0220"
    }

    pub fn name_zh(self) -> &'static str {
        self.row().name_zh
    }

    pub fn name_en(self) -> &'static str {
        self.row().name_en
    }

    /// The kebab-case name used in configuration files, logs and JSON (`pre-auth-cancel`).
    pub const fn slug(self) -> &'static str {
        match self {
            K::BalanceInquiry => "balance",
            K::PreAuth => "pre-auth",
            K::PreAuthCancel => "pre-auth-cancel",
            K::PreAuthCompletion => "completion",
            K::PreAuthCompletionVoid => "completion-void",
            K::PreAuthCompletionAdvice => "completion-advice",
            K::Sale => "sale",
            K::Void => "void",
            K::Refund => "refund",
            K::SignIn => "sign-in",
            K::SignOff => "sign-off",
            K::Echo => "echo",
            K::Settlement => "settlement",
            K::BatchUpload => "batch-upload",
        }
    }

    /// The kind of a [`TransactionKind::slug`].
    pub fn from_slug(slug: &str) -> Option<TransactionKind> {
        TransactionKind::all().find(|k| k.slug() == slug)
    }
}

impl Identified {
    /// Identifies a request from its MTI, field 3, field 25, 60.1 and 60.3 (absent fields
    /// as `None`). `None` when it is no transaction of the table: the host answers 12 or 30.
    pub fn of(
        mti: &[u8; 4],
        processing: Option<&[u8]>,
        condition: Option<&[u8]>,
        type_code: Option<&[u8]>,
        network: Option<&[u8]>,
    ) -> Option<Identified> {
        let reversal = mti == REVERSAL_MTI;
        let matches = |row: &Row| {
            let financial = row.processing.is_some();
            if reversal {
                // A reversal carries its original's 3, 25 and 60.1.
                if !(financial && row.reversible) {
                    return false;
                }
            } else if row.mti != mti {
                return false;
            }
            if financial {
                processing.and_then(|p| p.get(..2)) == row.processing.map(|p| &p[..])
                    && condition == row.condition.map(|c| &c[..])
                    && type_code == Some(&row.type_code[..])
            } else {
                network.is_some_and(|n| row.network.iter().any(|code| &code[..] == n))
            }
        };
        let row = TABLE.iter().find(|r| matches(r))?;
        Some(if reversal {
            Identified::Reversal(row.kind)
        } else {
            Identified::Request(row.kind)
        })
    }
}

/// A transaction of the CUP table (`spec/cup-pos.md` §2.2) that this host does not offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotOffered {
    pub name_zh: &'static str,
    pub name_en: &'static str,
}

/// The §2.2 rows poskit does not offer, identified as [`Identified::of`] does: MTI, the first
/// two digits of field 3, field 25, 60.1 (`None`: any), 60.3 (`None`: any). They are
/// answered 40 (function not supported), not 30: the message is well formed.
#[allow(clippy::type_complexity)]
static NOT_OFFERED: &[(
    &[u8; 4],
    Option<&[u8; 2]>,
    Option<&[u8; 2]>,
    Option<&[u8; 2]>,
    Option<&[u8; 3]>,
    NotOffered,
)] = &[
    (
        b"0100",
        Some(b"03"),
        Some(b"60"),
        Some(b"10"),
        None,
        NotOffered {
            name_zh: "追加预授权",
            name_en: "additional pre-authorization",
        },
    ),
    (
        b"0220",
        Some(b"00"),
        Some(b"00"),
        Some(b"30"),
        None,
        NotOffered {
            name_zh: "离线结算",
            name_en: "offline sale",
        },
    ),
    (
        b"0220",
        Some(b"00"),
        Some(b"00"),
        Some(b"32"),
        None,
        NotOffered {
            name_zh: "结算调整",
            name_en: "settlement adjustment",
        },
    ),
    (
        b"0220",
        Some(b"00"),
        Some(b"00"),
        Some(b"34"),
        None,
        NotOffered {
            name_zh: "追加小费",
            name_en: "tip adjustment",
        },
    ),
    (
        b"0200",
        Some(b"00"),
        Some(b"00"),
        Some(b"36"),
        None,
        NotOffered {
            name_zh: "IC卡脱机消费上送",
            name_en: "chip offline sale upload",
        },
    ),
    (
        b"0620",
        None,
        None,
        None,
        Some(b"951"),
        NotOffered {
            name_zh: "IC卡脚本结果通知",
            name_en: "chip script result advice",
        },
    ),
];

impl NotOffered {
    /// The §2.2 transaction a request is, when it is one this host does not offer (and so
    /// not one [`Identified::of`] knows). Fields as [`Identified::of`] takes them.
    pub fn of(
        mti: &[u8; 4],
        processing: Option<&[u8]>,
        condition: Option<&[u8]>,
        type_code: Option<&[u8]>,
        network: Option<&[u8]>,
    ) -> Option<NotOffered> {
        let same = |want: Option<&[u8]>, got: Option<&[u8]>| want.is_none() || want == got;
        NOT_OFFERED
            .iter()
            .find(|(m, p, c, t, n, _)| {
                *m == mti
                    && same(p.map(|p| &p[..]), processing.and_then(|p| p.get(..2)))
                    && same(c.map(|c| &c[..]), condition)
                    && same(t.map(|t| &t[..]), type_code)
                    && same(n.map(|n| &n[..]), network)
            })
            .map(|row| row.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rows_not_offered_are_none_of_the_offered_ones() {
        for (mti, p, c, t, n, not) in NOT_OFFERED {
            let (p, c, t, n) = (
                p.map(|p| &p[..]),
                c.map(|c| &c[..]),
                t.map(|t| &t[..]),
                n.map(|n| &n[..]),
            );
            assert_eq!(Identified::of(mti, p, c, t, n), None, "{}", not.name_en);
            assert_eq!(NotOffered::of(mti, p, c, t, n), Some(*not));
        }
        // An offered sale is not in it, nor a request of no row at all.
        assert_eq!(
            NotOffered::of(b"0200", Some(b"000000"), Some(b"00"), Some(b"22"), None),
            None
        );
        assert_eq!(
            NotOffered::of(b"0100", Some(b"030000"), Some(b"06"), Some(b"10"), None),
            None
        );
        assert_eq!(
            NotOffered::of(b"0220", Some(b"000000"), Some(b"00"), Some(b"31"), None),
            None
        );
    }

    #[test]
    fn every_kind_is_identified_from_the_fields_it_sends() {
        for kind in TransactionKind::all() {
            let row = kind.row();
            let network = row.network.first().map(|n| &n[..]);
            let got = Identified::of(
                kind.mti(),
                kind.processing_code().as_ref().map(|p| &p[..]),
                kind.condition_code().map(|c| &c[..]),
                Some(&kind.type_code()[..]),
                network,
            );
            assert_eq!(got, Some(Identified::Request(kind)), "{kind:?}");
        }
    }

    #[test]
    fn a_reversal_is_identified_by_its_originals_fields() {
        let got = Identified::of(
            b"0400",
            Some(b"000000"),
            Some(b"00"),
            Some(b"22"),
            Some(b"000"),
        );
        assert_eq!(got, Some(Identified::Reversal(TransactionKind::Sale)));
        // Refunds are advices and never reversed.
        assert_eq!(
            Identified::of(b"0400", Some(b"200000"), Some(b"00"), Some(b"25"), None),
            None
        );
    }

    #[test]
    fn account_type_digits_of_field_3_do_not_change_the_kind() {
        let got = Identified::of(b"0200", Some(b"311000"), Some(b"00"), Some(b"01"), None);
        assert_eq!(
            got,
            Some(Identified::Request(TransactionKind::BalanceInquiry))
        );
    }

    #[test]
    fn reversal_rules_follow_the_spec() {
        use TransactionKind::*;
        for k in [
            Sale,
            Void,
            PreAuth,
            PreAuthCancel,
            PreAuthCompletion,
            PreAuthCompletionVoid,
        ] {
            assert!(k.reversible(), "{k:?}");
        }
        for k in [
            BalanceInquiry,
            Refund,
            PreAuthCompletionAdvice,
            SignIn,
            Settlement,
        ] {
            assert!(!k.reversible(), "{k:?}");
        }
        assert!(Refund.is_advice() && !Sale.is_advice());
        assert!(Sale.carries_mac() && !SignIn.carries_mac());
    }

    #[test]
    fn slugs_round_trip() {
        for kind in TransactionKind::all() {
            assert_eq!(TransactionKind::from_slug(kind.slug()), Some(kind));
        }
        assert_eq!(TransactionKind::from_slug("nope"), None);
    }

    #[test]
    fn echo_and_sign_off_share_an_mti_and_differ_by_60_3() {
        assert_eq!(
            Identified::of(b"0820", None, None, Some(b"00"), Some(b"301")),
            Some(Identified::Request(TransactionKind::Echo))
        );
        assert_eq!(
            Identified::of(b"0820", None, None, Some(b"00"), Some(b"002")),
            Some(Identified::Request(TransactionKind::SignOff))
        );
        assert_eq!(
            Identified::of(b"0820", None, None, Some(b"00"), Some(b"999")),
            None
        );
    }
}
