//! Money as integer fen (分). Never floats.

use std::fmt;

/// An amount in fen, at most 12 digits (field 4). No `Default`: an amount is always meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AmountFen(u64);

/// Why an amount was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount {text:?} is not yuan with at most two decimals (e.g. 12.34)")]
    NotYuan { text: String },
    #[error("amount exceeds 12 digits of fen")]
    TooLarge,
    #[error("amount arithmetic overflowed")]
    Overflow,
}

impl AmountFen {
    /// The largest amount field 4 can carry: 999 999 999 999 fen.
    pub const MAX: AmountFen = AmountFen(999_999_999_999);
    pub const ZERO: AmountFen = AmountFen(0);

    pub fn new(fen: u64) -> Result<AmountFen, MoneyError> {
        if fen > Self::MAX.0 {
            Err(MoneyError::TooLarge)
        } else {
            Ok(AmountFen(fen))
        }
    }

    pub const fn fen(self) -> u64 {
        self.0
    }

    /// Parses yuan as people type it: `12`, `12.3`, `12.34`, `0.05`.
    pub fn parse_yuan(text: &str) -> Result<AmountFen, MoneyError> {
        let bad = || MoneyError::NotYuan {
            text: text.to_owned(),
        };
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        if whole.is_empty()
            || whole.len() > 10
            || frac.len() > 2
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || (text.contains('.') && frac.is_empty())
        {
            return Err(bad());
        }
        let whole: u64 = whole.parse().map_err(|_| bad())?;
        let frac_fen = match frac.len() {
            0 => 0,
            1 => u64::from(frac.as_bytes()[0] - b'0') * 10,
            _ => frac.parse::<u64>().map_err(|_| bad())?,
        };
        let fen = whole
            .checked_mul(100)
            .and_then(|f| f.checked_add(frac_fen))
            .ok_or(MoneyError::TooLarge)?;
        AmountFen::new(fen)
    }

    /// Field 4: twelve digits of fen.
    pub fn field4(self) -> [u8; 12] {
        let mut out = [b'0'; 12];
        let mut v = self.0;
        for slot in out.iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out
    }

    pub fn checked_add(self, other: AmountFen) -> Result<AmountFen, MoneyError> {
        self.0
            .checked_add(other.0)
            .ok_or(MoneyError::Overflow)
            .and_then(AmountFen::new)
    }

    pub fn checked_sub(self, other: AmountFen) -> Result<AmountFen, MoneyError> {
        self.0
            .checked_sub(other.0)
            .map(AmountFen)
            .ok_or(MoneyError::Overflow)
    }
}

impl fmt::Display for AmountFen {
    /// Yuan with two decimals: `12.34`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn yuan_as_people_type_it() {
        assert_eq!(AmountFen::parse_yuan("12.34").unwrap().fen(), 1234);
        assert_eq!(AmountFen::parse_yuan("12.3").unwrap().fen(), 1230);
        assert_eq!(AmountFen::parse_yuan("12").unwrap().fen(), 1200);
        assert_eq!(AmountFen::parse_yuan("0.05").unwrap().fen(), 5);
        for bad in [
            "", ".5", "12.", "12.345", "-1", "1e3", "1,000", " 1", "12.3a",
        ] {
            assert!(AmountFen::parse_yuan(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            AmountFen::parse_yuan("9999999999.99").unwrap(),
            AmountFen::MAX
        );
        assert_eq!(
            AmountFen::parse_yuan("10000000000"),
            Err(MoneyError::NotYuan {
                text: "10000000000".into()
            })
        );
    }

    #[test]
    fn field_4_is_twelve_digits_of_fen() {
        assert_eq!(&AmountFen::new(12345).unwrap().field4(), b"000000012345");
        assert_eq!(AmountFen::new(1_000_000_000_000), Err(MoneyError::TooLarge));
    }

    proptest! {
        #[test]
        fn display_and_parse_round_trip(fen in 0u64..=999_999_999_999) {
            let a = AmountFen::new(fen).unwrap();
            prop_assert_eq!(AmountFen::parse_yuan(&a.to_string()).unwrap(), a);
        }
    }
}
