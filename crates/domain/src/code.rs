//! Field 39: the response code as a wire value. What a code *means* lives in the catalog
//! (`poskit-codes`); here are only the names host and terminal use to pick one.

use std::fmt;

/// Field 39, two characters. Unknown values round-trip.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResponseCode(pub [u8; 2]);

impl ResponseCode {
    pub const APPROVED: ResponseCode = ResponseCode(*b"00");
    pub const INVALID_MERCHANT: ResponseCode = ResponseCode(*b"03");
    pub const PICK_UP: ResponseCode = ResponseCode(*b"04");
    /// 06: error; as the field 39 of a reversal (0400), the reason "other".
    pub const ERROR: ResponseCode = ResponseCode(*b"06");
    pub const INVALID_TRANSACTION: ResponseCode = ResponseCode(*b"12");
    pub const INVALID_AMOUNT: ResponseCode = ResponseCode(*b"13");
    pub const INVALID_CARD: ResponseCode = ResponseCode(*b"14");
    pub const RELATED_TRANSACTION_ERROR: ResponseCode = ResponseCode(*b"22");
    pub const ORIGINAL_NOT_FOUND: ResponseCode = ResponseCode(*b"25");
    pub const FORMAT_ERROR: ResponseCode = ResponseCode(*b"30");
    pub const LOST_CARD: ResponseCode = ResponseCode(*b"41");
    pub const STOLEN_CARD: ResponseCode = ResponseCode(*b"43");
    pub const INSUFFICIENT_FUNDS: ResponseCode = ResponseCode(*b"51");
    pub const EXPIRED_CARD: ResponseCode = ResponseCode(*b"54");
    pub const INCORRECT_PIN: ResponseCode = ResponseCode(*b"55");
    pub const NOT_PERMITTED_TO_CARD: ResponseCode = ResponseCode(*b"57");
    pub const NOT_PERMITTED_TO_TERMINAL: ResponseCode = ResponseCode(*b"58");
    pub const EXCEEDS_AMOUNT_LIMIT: ResponseCode = ResponseCode(*b"61");
    pub const RESTRICTED_CARD: ResponseCode = ResponseCode(*b"62");
    pub const ORIGINAL_AMOUNT_INCORRECT: ResponseCode = ResponseCode(*b"64");
    pub const EXCEEDS_FREQUENCY_LIMIT: ResponseCode = ResponseCode(*b"65");
    pub const PIN_TRIES_EXCEEDED: ResponseCode = ResponseCode(*b"75");
    pub const BATCH_MISMATCH: ResponseCode = ResponseCode(*b"77");
    pub const ISSUER_INOPERATIVE: ResponseCode = ResponseCode(*b"91");
    pub const DUPLICATE: ResponseCode = ResponseCode(*b"94");
    pub const SYSTEM_MALFUNCTION: ResponseCode = ResponseCode(*b"96");
    pub const TERMINAL_NOT_REGISTERED: ResponseCode = ResponseCode(*b"97");
    pub const ISSUER_TIMEOUT: ResponseCode = ResponseCode(*b"98");
    pub const PIN_FORMAT_ERROR: ResponseCode = ResponseCode(*b"99");
    pub const MAC_ERROR: ResponseCode = ResponseCode(*b"A0");

    /// Two characters of field 39 (letters and digits).
    pub fn parse(text: &str) -> Option<ResponseCode> {
        let b = text.as_bytes();
        (b.len() == 2 && b.iter().all(u8::is_ascii_alphanumeric))
            .then(|| ResponseCode([b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()]))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    pub fn is_approved(self) -> bool {
        self == ResponseCode::APPROVED
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseCode({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_as_two_alphanumerics() {
        assert_eq!(ResponseCode::parse("a0"), Some(ResponseCode::MAC_ERROR));
        assert_eq!(
            ResponseCode::parse("51"),
            Some(ResponseCode::INSUFFICIENT_FUNDS)
        );
        assert_eq!(ResponseCode::parse("5"), None);
        assert_eq!(ResponseCode::parse("5 "), None);
        assert!(ResponseCode::APPROVED.is_approved());
    }
}
