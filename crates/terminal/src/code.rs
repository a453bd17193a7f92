//! The code an operation, a transaction or a failure ends with: the host's field 39
//! ([`ResponseCode`]), or a terminal-local code ([`LocalCode`], `L03` ...) for what the
//! terminal concluded itself when no usable answer decided. What each one means is the
//! catalog's (`poskit-codes`, `data/local.toml` for the local ones).

use std::fmt;

use poskit_domain::ResponseCode;

/// A terminal-local code: `L` and two digits. Unknown ones round-trip.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalCode([u8; 3]);

impl LocalCode {
    /// L01: the host could not be reached (the request never left).
    pub const NOT_SENT: LocalCode = LocalCode(*b"L01");
    /// L03: no answer from the host in time.
    pub const NO_ANSWER: LocalCode = LocalCode(*b"L03");
    /// L04: the MAC of the host's answer did not verify.
    pub const ANSWER_MAC_BAD: LocalCode = LocalCode(*b"L04");
    /// L06: the terminal has not signed in.
    pub const NOT_SIGNED_IN: LocalCode = LocalCode(*b"L06");
    /// L07: keys missing, or a request that cannot be built from its data.
    pub const KEYS_OR_DATA: LocalCode = LocalCode(*b"L07");
    /// L08: an earlier reversal has not reached the host; new transactions wait.
    pub const REVERSAL_WAITING: LocalCode = LocalCode(*b"L08");
    /// L09: the batch is full: settle first.
    pub const BATCH_FULL: LocalCode = LocalCode(*b"L09");
    /// L11: the printer failed after an approval.
    pub const PRINTER_FAILED: LocalCode = LocalCode(*b"L11");
    /// L14: the reversal failed: contact the acquirer.
    pub const REVERSAL_FAILED: LocalCode = LocalCode(*b"L14");
    /// L17: cancelled on the terminal before it was sent (busy, nothing done).
    pub const CANCELLED: LocalCode = LocalCode(*b"L17");

    /// `L` and two digits (as the journal and the catalog write them).
    pub fn parse(text: &str) -> Option<LocalCode> {
        match text.as_bytes() {
            [b'L', a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
                Some(LocalCode([b'L', *a, *b]))
            }
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from `L` and two ASCII digits.
        std::str::from_utf8(&self.0).unwrap_or("L??")
    }
}

/// Field 39 of the host's answer, or a local code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    Host(ResponseCode),
    Local(LocalCode),
}

/// A code that is neither two letters or digits (field 39) nor `L` and two digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither a response code (two letters or digits) nor a local code (L01 ...)")]
pub struct CodeError(pub String);

impl Code {
    pub const APPROVED: Code = Code::Host(ResponseCode::APPROVED);

    /// A code as [`Code::as_str`] writes it.
    pub fn parse(text: &str) -> Result<Code, CodeError> {
        match text.len() {
            2 => ResponseCode::parse(text).map(Code::Host),
            3 => LocalCode::parse(text).map(Code::Local),
            _ => None,
        }
        .ok_or_else(|| CodeError(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Code::Host(c) => c.as_str(),
            Code::Local(c) => c.as_str(),
        }
    }

    pub fn is_approved(self) -> bool {
        self == Code::APPROVED
    }

    pub fn is_local(self) -> bool {
        matches!(self, Code::Local(_))
    }
}

impl From<ResponseCode> for Code {
    fn from(code: ResponseCode) -> Code {
        Code::Host(code)
    }
}

impl From<LocalCode> for Code {
    fn from(code: LocalCode) -> Code {
        Code::Local(code)
    }
}

/// Tests and callers compare with the text people read (`outcome.code == "L03"`).
impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for LocalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for LocalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalCode({})", self.as_str())
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_local_codes_parse_back_from_their_text() {
        for text in ["00", "51", "A0", "L01", "L03", "L17", "Z9", "L99"] {
            let code = Code::parse(text).unwrap();
            assert_eq!(code.as_str(), text);
            assert_eq!(Code::parse(code.as_str()), Ok(code));
        }
        assert_eq!(Code::parse("L03"), Ok(Code::Local(LocalCode::NO_ANSWER)));
        assert_eq!(Code::parse("00"), Ok(Code::APPROVED));
        assert!(Code::APPROVED.is_approved() && !Code::APPROVED.is_local());
        assert!(Code::from(LocalCode::NO_ANSWER).is_local());
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "", "0", "000", "L", "L0x", "X03", "L003", "0 ", "\u{1}0", "é",
        ] {
            assert_eq!(Code::parse(bad), Err(CodeError(bad.to_owned())), "{bad:?}");
        }
        assert_eq!(
            LocalCode::parse("l03"),
            None,
            "the journal writes an upper-case L"
        );
    }
}
