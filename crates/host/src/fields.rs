//! The fields the host posts from, checked against each other, against the merchant and
//! against the terminal's keys before anything is posted (issue 17). Each refusal names its
//! field, carries a code the catalog explains, and is stored with its reason.
//!
//! Codes, per the catalog (`crates/codes/data`) and the spec notes (§1.2, §2.3, §3.4):
//! - **30** format error: a mandatory field missing, a value outside the spec's set, or
//!   fields that contradict each other (Q2014: "missing mandatory field, field parse
//!   error, bad track") — the terminal's software or set-up must change; no retry helps.
//! - **13** invalid amount: a currency the merchant does not accept (Q2014 lists "currency
//!   not allowed" under 13) — the operator re-enters the amount in the merchant's currency.
//! - **14** invalid card number: field 2 and track 2 name different cards (Q2014: "PAN of
//!   the request inconsistent") — read the card again.
//! - **40** function not supported: chip entry modes, until the host supports field 55.
//! - **99** PIN format error: field 53's PIN format or algorithm does not match the keys the
//!   terminal was issued (CUP: "PIN格式错，请重新签到") — sign in again.

use poskit_domain::{ResponseCode as Rc, TransactionKind as K};

use crate::request::{Presented, Request};

/// Requested function not supported (ISO 8583 / CUP 40).
pub const FUNCTION_NOT_SUPPORTED: Rc = Rc(*b"40");
/// PIN format error, sign in again (CUP national use, 99).
pub const PIN_FORMAT_ERROR: Rc = Rc(*b"99");

/// The currency a merchant accepts when its record names none: 156, the yuan.
pub const CURRENCY_DEFAULT: [u8; 3] = *b"156";

/// Field 25 values the spec lists (§2.2, §2.3): normal, pre-authorization family, MOTO,
/// MOTO pre-authorization, additional pre-authorization, instalment, points, booking,
/// PBOC load.
const CONDITION_CODES: [[u8; 2]; 9] = [
    *b"00", *b"06", *b"08", *b"18", *b"60", *b"64", *b"65", *b"67", *b"91",
];

/// Field 26: the shortest and longest PIN the spec allows (§3.4: 4–12).
const PIN_LENGTH_MIN: u8 = 4;
const PIN_LENGTH_MAX: u8 = 12;

/// What the request is checked against.
pub struct Against<'a> {
    /// Field 49 values the merchant accepts.
    pub currencies: &'a [[u8; 3]],
    /// Length in bytes of the PIK the terminal was issued at its last sign-in.
    pub pik_bytes: Option<usize>,
}

/// Why a request is refused before anything is posted.
pub type Refusal = (Rc, String);

fn format(field: u8, why: impl std::fmt::Display) -> Refusal {
    (
        Rc::FORMAT_ERROR,
        format!("format error: field {field}: {why}"),
    )
}

/// Checks the fields of a financial request the host posts from. Reversals are not
/// checked here: a reversal posts nothing of its own, it undoes its original (found by the
/// key), and refusing one could leave a customer charged (invariant 1).
pub fn check(req: &Request, against: &Against<'_>) -> Result<(), Refusal> {
    assert!(req.kind().carries_mac(), "only financial requests post");
    assert!(!req.is_reversal(), "reversals post from their original");
    let p = &req.presented;
    if req.stan.value() == 0 {
        // §4.3: the trace runs 000001–999999; 000000 is no trace and keys nothing.
        return Err(format(
            11,
            "trace number 000000 is not a trace (000001–999999)",
        ));
    }
    currency(p, against.currencies)?;
    condition(p)?;
    entry_mode(req.kind(), p)?;
    if p.pans_differ {
        let (f2, t2) = (
            req.card.as_ref().map_or("-".to_owned(), |c| c.pan.masked()),
            "another card",
        );
        return Err((
            Rc::INVALID_CARD,
            format!(
                "field 2 names card {f2} and track 2 names {t2}: read the card again (nothing posted)"
            ),
        ));
    }
    pin_fields(req.pin_block.is_some(), p, against.pik_bytes)
}

/// Field 49 against the merchant's currencies: never post in a currency the merchant does
/// not settle in.
fn currency(p: &Presented, accepted: &[[u8; 3]]) -> Result<(), Refusal> {
    debug_assert!(
        !accepted.is_empty(),
        "a merchant accepts at least one currency"
    );
    let Some(code) = p.currency else {
        return Err(format(
            49,
            if p.has.f49 {
                "currency code is not 3 characters"
            } else {
                "currency code missing (mandatory, §2.4)"
            },
        ));
    };
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(format(49, "currency code is not 3 digits (ISO 4217)"));
    }
    if accepted.contains(&code) {
        return Ok(());
    }
    let list: Vec<&str> = accepted
        .iter()
        .map(|c| std::str::from_utf8(c).unwrap_or("?"))
        .collect();
    Err((
        Rc::INVALID_AMOUNT,
        format!(
            "the amount is in currency {} and this merchant accepts {} only: enter the amount in {}",
            std::str::from_utf8(&code).unwrap_or("?"),
            list.join(", "),
            list.first().copied().unwrap_or("156"),
        ),
    ))
}

fn condition(p: &Presented) -> Result<(), Refusal> {
    match p.condition {
        None => Err(format(25, "POS condition code missing (mandatory, §2.4)")),
        Some(c) if CONDITION_CODES.contains(&c) => Ok(()),
        Some(c) => Err(format(
            25,
            format_args!(
                "POS condition code {} is not one the spec lists",
                String::from_utf8_lossy(&c)
            ),
        )),
    }
}

/// Field 22 against the card data sent: swipe needs track 2, manual needs field 2 and 14,
/// chip needs field 55 and is refused until the host reads it.
fn entry_mode(kind: K, p: &Presented) -> Result<(), Refusal> {
    let Some(mode) = p.entry_mode.filter(|m| m.iter().all(u8::is_ascii_digit)) else {
        return Err(format(22, "entry mode missing or not 3 digits"));
    };
    let has = p.has;
    match &mode[..2] {
        b"01" if !(has.f2 && has.f14) => Err(format(
            22,
            "manual entry (01) needs the card number (field 2) and its expiry (field 14)",
        )),
        b"01" => Ok(()),
        // 02 swipe, 80 fallback from chip to swipe, 90 full track read.
        b"02" | b"80" | b"90" if !has.f35 => Err(format(
            22,
            "a swiped card (02/80/90) needs track 2 (field 35)",
        )),
        b"02" | b"80" | b"90" => Ok(()),
        b"05" | b"07" | b"95" | b"98" if !has.f55 => Err(format(
            22,
            "a chip or contactless read (05/07/95/98) needs the chip data (field 55)",
        )),
        b"05" | b"07" | b"95" | b"98" => Err((
            FUNCTION_NOT_SUPPORTED,
            format!(
                "this host does not accept chip cards yet ({}): swipe the card instead",
                kind.name_en()
            ),
        )),
        other => Err(format(
            22,
            format_args!(
                "entry mode {} is not one the spec lists",
                String::from_utf8_lossy(other)
            ),
        )),
    }
}

/// Fields 26 and 53 against the PIN block (52) and the terminal's keys.
fn pin_fields(pin_block: bool, p: &Presented, pik_bytes: Option<usize>) -> Result<(), Refusal> {
    let has = p.has;
    if let Some(mode) = p.entry_mode {
        // 22.3: 1 PIN entered, 2 no PIN (§2.3).
        match (mode[2], pin_block) {
            (b'1', false) => {
                return Err(format(
                    22,
                    "entry mode says a PIN was entered; no PIN block (52)",
                ));
            }
            (b'2', true) => {
                return Err(format(
                    22,
                    "entry mode says no PIN; a PIN block (52) was sent",
                ));
            }
            _ => {}
        }
    }
    if !pin_block {
        if has.f26 {
            return Err(format(26, "PIN capture code sent without a PIN block (52)"));
        }
        if has.f53 {
            return Err(format(53, "security control sent without a PIN block (52)"));
        }
        return Ok(());
    }
    match p
        .pin_capture
        .and_then(|c| std::str::from_utf8(&c).ok()?.parse::<u8>().ok())
    {
        Some(n) if (PIN_LENGTH_MIN..=PIN_LENGTH_MAX).contains(&n) => {}
        Some(n) => {
            return Err(format(
                26,
                format_args!("maximum PIN length {n} is not 04–12"),
            ));
        }
        None if has.f26 => return Err(format(26, "PIN capture code is not 2 digits")),
        None => {}
    }
    security(p, pik_bytes)
}

/// Field 53 with a PIN block: digit 1 the PIN format, digit 2 the algorithm, digit 3 track
/// encryption, the rest zero (§2.3).
fn security(p: &Presented, pik_bytes: Option<usize>) -> Result<(), Refusal> {
    let Some(s) = p.security.filter(|s| s.iter().all(u8::is_ascii_digit)) else {
        return Err(format(
            53,
            if p.has.f53 {
                "security control is not 16 digits"
            } else {
                "security control missing: a PIN block needs it"
            },
        ));
    };
    if !matches!(s[0], b'1' | b'2') || !matches!(s[1], b'0' | b'6') {
        return Err(format(
            53,
            "PIN format (digit 1: 1 or 2) or algorithm (digit 2: 0 or 6) not one the spec lists",
        ));
    }
    if s[2] != b'0' || s[3..].iter().any(|&d| d != b'0') {
        return Err(format(
            53,
            "track encryption (digit 3) is not supported and digits 4–16 must be zero",
        ));
    }
    if s[0] != b'2' {
        return Err((
            PIN_FORMAT_ERROR,
            "PIN format 1 (X9.8 without the card number) is not accepted: this host reads format 2 (ISO 9564 format 0)"
                .to_owned(),
        ));
    }
    let expected = match pik_bytes {
        Some(8) => b'0',
        Some(_) => b'6',
        None => return Ok(()), // not signed in: the PIN check says so (55 / sign in)
    };
    if s[1] != expected {
        return Err((
            PIN_FORMAT_ERROR,
            format!(
                "field 53 names algorithm {} and the terminal's PIN key is {}: sign in again",
                s[1] as char,
                if expected == b'0' {
                    "single DES"
                } else {
                    "double-length 3DES"
                }
            ),
        ));
    }
    Ok(())
}
