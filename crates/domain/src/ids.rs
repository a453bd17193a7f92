//! Identifiers of a POS transaction: terminal (41), merchant (42), trace (11), batch
//! (60.2), retrieval reference (37), authorization code (38), card number (2).

use std::fmt;

/// The last `N` decimal digits of `value`, zero-padded, as ASCII (`zero_padded::<6>(42)` is
/// `b"000042"`): the fixed-width numbers of the wire and the ledger, without `format!`.
pub fn zero_padded<const N: usize>(value: u64) -> [u8; N] {
    let mut out = [b'0'; N];
    let mut v = value;
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out
}

/// The Luhn check digit (0–9) that completes `body`, a card number without its last digit;
/// `None` when `body` holds anything but ASCII digits.
pub fn luhn_check_digit(body: &str) -> Option<u8> {
    let mut sum: u32 = 0;
    // From the right, every other digit of the body is doubled (the check digit that
    // follows takes position 0).
    for (i, b) in body.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return None;
        }
        let d = u32::from(b - b'0');
        sum += match i % 2 {
            0 => (d * 2) / 10 + (d * 2) % 10,
            _ => d,
        };
    }
    let digit = ((10 - sum % 10) % 10) as u8;
    debug_assert!(digit <= 9);
    Some(digit)
}

/// Fixed-width ASCII digits as text.
pub fn digits_str(digits: &[u8]) -> &str {
    // Only ever ASCII digits (`zero_padded`); anything else would be a bug of ours, shown
    // as empty rather than panicking.
    std::str::from_utf8(digits).unwrap_or("")
}

/// Why an identifier was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must be {len} printable ASCII characters, got {got:?}")]
    Text {
        what: &'static str,
        len: usize,
        got: String,
    },
    #[error("{what} must be 1 to {digits_max} digits, got {got:?}")]
    Number {
        what: &'static str,
        digits_max: usize,
        got: String,
    },
    #[error("a card number must be 13 to 19 digits")]
    Pan,
}

macro_rules! fixed_text {
    ($(#[$doc:meta])* $name:ident, $len:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            pub const LEN: usize = $len;

            pub fn parse(text: &str) -> Result<$name, IdError> {
                let b = text.as_bytes();
                if b.len() != $len || !b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
                    return Err(IdError::Text { what: $what, len: $len, got: text.to_owned() });
                }
                let mut out = [0u8; $len];
                out.copy_from_slice(b);
                Ok($name(out))
            }

            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            pub fn as_str(&self) -> &str {
                // Only ever built from printable ASCII.
                std::str::from_utf8(&self.0).unwrap_or("")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.as_str())
            }
        }
    };
}

fixed_text!(
    /// Field 41: card acceptor terminal identification, 8 characters.
    Tid, 8, "a terminal ID (field 41)"
);
fixed_text!(
    /// Field 42: card acceptor (merchant) identification code, 15 characters.
    Mid, 15, "a merchant ID (field 42)"
);
fixed_text!(
    /// Field 37: retrieval reference number, 12 characters, assigned by the host.
    Rrn, 12, "a retrieval reference number (field 37)"
);
fixed_text!(
    /// Field 38: authorization identification response, 6 characters.
    AuthCode, 6, "an authorization code (field 38)"
);

macro_rules! six_digits {
    ($(#[$doc:meta])* $name:ident, $what:expr, $first:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u32);

        impl $name {
            pub const MAX: u32 = 999_999;

            pub fn new(value: u32) -> Result<$name, IdError> {
                if value > Self::MAX {
                    return Err(IdError::Number { what: $what, digits_max: 6, got: value.to_string() });
                }
                Ok($name(value))
            }

            /// Parses 1 to 6 digits.
            pub fn parse(text: &str) -> Result<$name, IdError> {
                let bad = || IdError::Number { what: $what, digits_max: 6, got: text.to_owned() };
                if text.is_empty() || text.len() > 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                text.parse().map(|v| $name(v)).map_err(|_| bad())
            }

            pub const fn value(self) -> u32 {
                self.0
            }

            /// The next number, wrapping from 999999 back to the first.
            pub const fn next(self) -> $name {
                if self.0 >= Self::MAX { $name($first) } else { $name(self.0 + 1) }
            }

            /// Six digits, zero-padded, as the wire carries them.
            pub fn digits(self) -> [u8; 6] {
                zero_padded(u64::from(self.0))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:06}", self.0)
            }
        }
    };
}

six_digits!(
    /// Field 11: system trace audit number, unique per terminal within a batch; a reversal
    /// keeps its original's. 000000 is never used, so the trace wraps to 000001.
    Stan, "a trace number (field 11)", 1
);
six_digits!(
    /// 60.2: batch number, set by the host at sign-in, + 1 after each settlement.
    Batch, "a batch number (60.2)", 1
);

/// Field 2: a primary account number, 13–19 digits. `Display` and `Debug` show it masked
/// (first 6, last 4); the digits themselves take [`Pan::digits`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pan(String);

impl Pan {
    pub fn parse(text: &str) -> Result<Pan, IdError> {
        if !(13..=19).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::Pan);
        }
        Ok(Pan(text.to_owned()))
    }

    /// The full card number: for the wire and the PIN block, never for people or logs.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// Whether the last digit is the Luhn check digit of the others.
    pub fn luhn_ok(&self) -> bool {
        let (body, last) = self.0.split_at(self.0.len() - 1);
        let last = last.as_bytes()[0] - b'0';
        luhn_check_digit(body) == Some(last)
    }

    /// The first six digits (issuer identification number / BIN).
    pub fn bin(&self) -> &str {
        &self.0[..6]
    }

    pub fn masked(&self) -> String {
        poskit_codec::mask::mask_pan(&self.0)
    }
}

impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_shows_itself_masked() {
        let pan = Pan::parse("6222021234567890128").unwrap();
        assert_eq!(pan.to_string(), "622202*********0128");
        assert_eq!(format!("{pan:?}"), "Pan(622202*********0128)");
        assert_eq!(pan.bin(), "622202");
        assert!(Pan::parse("622202123456").is_err());
        assert!(Pan::parse("62220212345678901x8").is_err());
    }

    #[test]
    fn luhn_check_digit_completes_a_body_and_refuses_non_digits() {
        assert_eq!(super::luhn_check_digit("411111111111111"), Some(1));
        assert_eq!(super::luhn_check_digit("7992739871"), Some(3));
        assert_eq!(super::luhn_check_digit(""), Some(0));
        assert_eq!(super::luhn_check_digit("41111x"), None);
    }

    #[test]
    fn luhn_check_digit() {
        assert!(Pan::parse("4111111111111111").unwrap().luhn_ok());
        assert!(!Pan::parse("4111111111111112").unwrap().luhn_ok());
        assert!(Pan::parse("6222021234567890128").unwrap().luhn_ok());
    }

    #[test]
    fn trace_wraps_to_one_and_never_to_zero() {
        assert_eq!(Stan::new(999_999).unwrap().next(), Stan::new(1).unwrap());
        assert_eq!(&Stan::new(123).unwrap().digits(), b"000123");
        assert_eq!(Stan::parse("000123").unwrap().value(), 123);
        assert!(Stan::parse("1234567").is_err());
        assert!(Stan::new(1_000_000).is_err());
    }

    #[test]
    fn fixed_text_ids_have_their_exact_length() {
        assert_eq!(Tid::parse("12345678").unwrap().as_str(), "12345678");
        assert!(Tid::parse("1234567").is_err());
        assert!(Mid::parse("123456789012345").is_ok());
        assert!(Mid::parse("12345678901234\u{7}").is_err());
    }
}
