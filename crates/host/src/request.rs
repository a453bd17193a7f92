//! A decoded CUP POS request read into the fields the engine decides on. Anything missing
//! or malformed is a [`FormatError`] naming the field: the host answers 30 and says why.

use poskit_codec::frame::Frame;
use poskit_codec::{Message, Mti};
use poskit_domain::{
    AmountFen, AuthCode, Batch, Identified, Mid, NotOffered, Pan, ResponseCode, Rrn, Stan, Tid,
    TransactionKind,
};

/// Why a request cannot be processed: the field and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    pub field: u8,
    pub why: &'static str,
    /// The request is a well-formed transaction of the CUP table that this host does not
    /// offer: answered 40, not 30.
    pub not_offered: Option<NotOffered>,
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "field {}: {}", self.field, self.why)
    }
}

/// Card data as the request carries it: field 2 and 14, or track 2.
#[derive(Clone, Debug)]
pub struct CardInput {
    pub pan: Pan,
    /// YYMM from field 14 or track 2.
    pub expiry: Option<String>,
}

/// The original a void, refund, reversal or completion refers to (field 61 and 37/38).
#[derive(Clone, Debug, Default)]
pub struct Original {
    /// 61.1
    pub batch: Option<Batch>,
    /// 61.2
    pub stan: Option<Stan>,
    /// 61.3 MMDD
    pub date: Option<String>,
}

/// A request, read.
#[derive(Clone, Debug)]
pub struct Request {
    pub mti: Mti,
    pub identified: Identified,
    pub tid: Tid,
    pub mid: Mid,
    pub stan: Stan,
    /// 60.2; absent only when field 60 is.
    pub batch: Batch,
    /// 60.3
    pub network_code: [u8; 3],
    /// Field 3 as sent.
    pub processing_code: Option<[u8; 6]>,
    pub amount: Option<AmountFen>,
    pub card: Option<CardInput>,
    /// Field 52.
    pub pin_block: Option<[u8; 8]>,
    /// Field 37 (void, refund, completion void: the original's).
    pub rrn: Option<Rrn>,
    /// Field 38 (pre-authorization cancel and completion: the original's).
    pub auth_code: Option<AuthCode>,
    pub original: Original,
    /// Field 39 of a reversal: why the terminal reverses.
    pub reversal_reason: Option<ResponseCode>,
    /// Field 48 as digits.
    pub field48: Option<String>,
    /// The fields the host checks before it posts ([`crate::fields`]), as sent.
    pub presented: Presented,
}

/// Fields a request carries that the host checks against each other and against the
/// merchant and the terminal's keys before it posts ([`crate::fields::check`]). Kept as
/// sent (fixed arrays: nothing allocated); `None` when absent or of the wrong length.
#[derive(Clone, Debug, Default)]
pub struct Presented {
    /// Field 22: POS entry mode, `n3` (mode digits 1–2, PIN capability digit 3).
    pub entry_mode: Option<[u8; 3]>,
    /// Field 25: POS condition code.
    pub condition: Option<[u8; 2]>,
    /// Field 26: PIN capture code (the maximum PIN length).
    pub pin_capture: Option<[u8; 2]>,
    /// Field 49: transaction currency code.
    pub currency: Option<[u8; 3]>,
    /// Field 53: security control information (PIN format, algorithm, track encryption).
    pub security: Option<[u8; 16]>,
    /// Which of the fields with a length of their own are there: 2, 14, 35, 55, 22, 25,
    /// 26, 49, 53 (a field of the wrong length is there but reads `None` above).
    pub has: FieldsPresent,
    /// Field 2 and the PAN of track 2 both sent, and different.
    pub pans_differ: bool,
}

/// Presence of the fields [`Presented`] reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct FieldsPresent {
    pub f2: bool,
    pub f14: bool,
    pub f22: bool,
    pub f25: bool,
    pub f26: bool,
    pub f35: bool,
    pub f49: bool,
    pub f53: bool,
    pub f55: bool,
}

/// The characters of a fixed-length field, text or digits, without allocating.
fn fixed<const N: usize>(m: &Message<'_>, n: u8) -> Option<[u8; N]> {
    let f = m.field(n)?;
    let mut out = [0u8; N];
    if let Some(d) = f.digits() {
        if d.len() != N {
            return None;
        }
        for (slot, c) in out.iter_mut().zip(d.iter()) {
            *slot = c;
        }
        return Some(out);
    }
    let t = f.text()?;
    (t.len() == N).then(|| {
        out.copy_from_slice(t);
        out
    })
}

impl Presented {
    fn of(m: &Message<'_>, card_from_field2: Option<&Pan>) -> Presented {
        let has = FieldsPresent {
            f2: m.has(2),
            f14: m.has(14),
            f22: m.has(22),
            f25: m.has(25),
            f26: m.has(26),
            f35: m.has(35),
            f49: m.has(49),
            f53: m.has(53),
            f55: m.has(55),
        };
        let pans_differ = match (card_from_field2, digits(m, 35)) {
            (Some(pan), Some(track2)) => {
                track2.split_once('=').map(|(p, _)| p) != Some(pan.digits())
            }
            _ => false,
        };
        Presented {
            entry_mode: fixed(m, 22),
            condition: fixed(m, 25),
            pin_capture: fixed(m, 26),
            currency: fixed(m, 49),
            security: fixed(m, 53),
            has,
            pans_differ,
        }
    }
}

impl Request {
    pub fn kind(&self) -> TransactionKind {
        match self.identified {
            Identified::Request(k) | Identified::Reversal(k) => k,
        }
    }

    pub fn is_reversal(&self) -> bool {
        matches!(self.identified, Identified::Reversal(_))
    }
}

fn text<'a>(m: &Message<'a>, n: u8) -> Option<&'a [u8]> {
    m.field(n).and_then(|f| f.text())
}

fn digits(m: &Message<'_>, n: u8) -> Option<String> {
    m.field(n).and_then(|f| f.digits()).map(|d| d.to_text())
}

fn err(field: u8, why: &'static str) -> FormatError {
    FormatError {
        field,
        why,
        not_offered: None,
    }
}

/// What of a request can be read even when it is malformed: enough to address a 30.
#[derive(Clone, Debug, Default)]
pub struct Echo {
    pub stan: Option<String>,
    pub tid: Option<String>,
    pub mid: Option<String>,
}

impl Echo {
    pub fn of(m: &Message<'_>) -> Echo {
        let s = |n| text(m, n).map(|t| String::from_utf8_lossy(t).into_owned());
        Echo {
            stan: digits(m, 11),
            tid: s(41),
            mid: s(42),
        }
    }
}

/// Reads a request out of a decoded frame.
pub fn read(frame: &Frame<'_>) -> Result<Request, FormatError> {
    let m = &frame.message;
    let mti = m.mti();
    let tid = text(m, 41)
        .and_then(|t| std::str::from_utf8(t).ok())
        .ok_or(err(41, "terminal ID missing"))
        .and_then(|t| Tid::parse(t).map_err(|_| err(41, "terminal ID is not 8 characters")))?;
    let mid = text(m, 42)
        .and_then(|t| std::str::from_utf8(t).ok())
        .ok_or(err(42, "merchant ID missing"))
        .and_then(|t| Mid::parse(t).map_err(|_| err(42, "merchant ID is not 15 characters")))?;
    let f60 = digits(m, 60).ok_or(err(60, "field 60 missing"))?;
    if f60.len() < 8 {
        return Err(err(60, "field 60 shorter than 60.1 + 60.2"));
    }
    let type_code = &f60[..2];
    let batch = Batch::parse(&f60[2..8]).map_err(|_| err(60, "60.2 batch is not 6 digits"))?;
    let network = f60.get(8..11).unwrap_or("000");
    let mut network_code = [b'0'; 3];
    network_code.copy_from_slice(network.as_bytes());
    let f3 = digits(m, 3);
    let f25 = digits(m, 25);
    let (p, c, t, n) = (
        f3.as_deref().map(str::as_bytes),
        f25.as_deref().map(str::as_bytes),
        Some(type_code.as_bytes()),
        Some(network.as_bytes()),
    );
    let identified = Identified::of(&mti.0, p, c, t, n).ok_or(FormatError {
        not_offered: NotOffered::of(&mti.0, p, c, t, n),
        ..err(
            3,
            "no transaction of the CUP table has this MTI, 3, 25, 60.1 and 60.3",
        )
    })?;
    let kind = match identified {
        Identified::Request(k) | Identified::Reversal(k) => k,
    };
    let stan = match digits(m, 11) {
        // §2.4: an echo test may come without field 11 (its answer then has none either).
        None if kind == TransactionKind::Echo => Stan::new(0).map_err(|_| err(11, "zero"))?,
        sent => sent
            .ok_or(err(11, "trace number missing"))
            .and_then(|s| Stan::parse(&s).map_err(|_| err(11, "trace number is not 6 digits")))?,
    };
    let processing_code = match f3 {
        Some(p) if p.len() == 6 => {
            let mut out = [0u8; 6];
            out.copy_from_slice(p.as_bytes());
            Some(out)
        }
        _ => None,
    };
    let amount = digits(m, 4)
        .map(|d| {
            d.parse::<u64>()
                .ok()
                .and_then(|f| AmountFen::new(f).ok())
                .ok_or(err(4, "amount is not 12 digits of fen"))
        })
        .transpose()?;
    let financial = kind.carries_mac();
    if financial && kind != TransactionKind::BalanceInquiry && amount.is_none() {
        return Err(err(4, "amount missing"));
    }
    if financial && !m.has(64) {
        return Err(err(64, "MAC missing"));
    }
    let card = read_card(m)?;
    let presented = Presented::of(m, card.as_ref().map(|c| &c.pan).filter(|_| m.has(2)));
    if financial && card.is_none() {
        return Err(err(2, "no card number (field 2) and no track 2 (field 35)"));
    }
    let pin_block = match m.field(52).and_then(|f| f.bytes()) {
        Some(b) => Some(
            b.try_into()
                .map_err(|_| err(52, "PIN block is not 8 bytes"))?,
        ),
        None => None,
    };
    let rrn = text(m, 37)
        .map(|t| {
            std::str::from_utf8(t)
                .ok()
                .and_then(|t| Rrn::parse(t).ok())
                .ok_or(err(37, "RRN is not 12 characters"))
        })
        .transpose()?;
    let auth_code = text(m, 38)
        .map(|t| {
            std::str::from_utf8(t)
                .ok()
                .and_then(|t| AuthCode::parse(t).ok())
                .ok_or(err(38, "authorization code is not 6 characters"))
        })
        .transpose()?;
    let original = match digits(m, 61) {
        None => Original::default(),
        Some(f61) => {
            let part = |from: usize, len: usize| f61.get(from..from + len).map(str::to_owned);
            let nonzero = |s: Option<String>| s.filter(|v| v.bytes().any(|b| b != b'0'));
            Original {
                batch: nonzero(part(0, 6)).and_then(|s| Batch::parse(&s).ok()),
                stan: nonzero(part(6, 6)).and_then(|s| Stan::parse(&s).ok()),
                date: nonzero(part(12, 4)),
            }
        }
    };
    let reversal_reason = match identified {
        Identified::Reversal(_) => text(m, 39)
            .and_then(|t| std::str::from_utf8(t).ok())
            .and_then(ResponseCode::parse),
        Identified::Request(_) => None,
    };
    Ok(Request {
        mti,
        identified,
        tid,
        mid,
        stan,
        batch,
        network_code,
        processing_code,
        amount,
        card,
        pin_block,
        rrn,
        auth_code,
        original,
        reversal_reason,
        field48: digits(m, 48),
        presented,
    })
}

fn read_card(m: &Message<'_>) -> Result<Option<CardInput>, FormatError> {
    let expiry14 = digits(m, 14);
    if let Some(pan) = digits(m, 2) {
        let pan = Pan::parse(&pan).map_err(|_| err(2, "card number is not 13 to 19 digits"))?;
        return Ok(Some(CardInput {
            pan,
            expiry: expiry14,
        }));
    }
    let Some(track2) = digits(m, 35) else {
        return Ok(None);
    };
    // Track 2: PAN '=' YYMM service code ... (the codec gives '=' for the separator).
    let (pan, rest) = track2
        .split_once('=')
        .ok_or(err(35, "track 2 has no separator"))?;
    let pan = Pan::parse(pan).map_err(|_| err(35, "track 2 card number is not 13 to 19 digits"))?;
    let expiry = expiry14.or_else(|| rest.get(..4).map(str::to_owned));
    Ok(Some(CardInput { pan, expiry }))
}

/// What kind of request a message is, read leniently (no field checked): for answers
/// built without a parsed request (a 96 after a storage failure, a stranger's).
pub fn identify(m: &Message<'_>) -> Option<Identified> {
    let text = |n| m.field(n).map(|f| f.to_text());
    let f60 = text(60).unwrap_or_default();
    Identified::of(
        &m.mti().0,
        text(3).as_deref().map(str::as_bytes),
        text(25).as_deref().map(str::as_bytes),
        f60.get(..2).map(str::as_bytes),
        Some(f60.get(8..11).unwrap_or("000").as_bytes()),
    )
}
