//! File types, clearing dates and file names (spec §2).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// One of the switch's clearing files poskit reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FileKind {
    /// `IND{yymmdd}01ACOMN`: the general transaction log (34 fields, 299 bytes).
    Acomn,
    /// `IND{yymmdd}32ACOMA`: the log with the acquirer extension (69 fields, 951 bytes).
    Acoma,
    /// `IND{yymmdd}32AERRA`: disputes and errors for the acquirer (56 fields, 581 bytes).
    Aerra,
}

impl FileKind {
    pub const ALL: [FileKind; 3] = [FileKind::Acomn, FileKind::Acoma, FileKind::Aerra];

    /// The name as it ends a file name: `ACOMN`, `ACOMA`, `AERRA`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Acomn => "ACOMN",
            FileKind::Acoma => "ACOMA",
            FileKind::Aerra => "AERRA",
        }
    }

    /// The two digits between the date and the type in the file name.
    fn name_code(self) -> &'static str {
        match self {
            FileKind::Acomn => "01",
            FileKind::Acoma | FileKind::Aerra => "32",
        }
    }

    /// Whether the file holds transactions (`TxnRecord`), else disputes (`DisputeRecord`).
    pub fn holds_transactions(self) -> bool {
        matches!(self, FileKind::Acomn | FileKind::Acoma)
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FileKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        FileKind::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("unknown file type {text:?} (ACOMN, ACOMA or AERRA)"))
    }
}

/// A clearing day (spec §2: 23:00 of the day before to 23:00). Years are 2000–2099: file
/// names carry two digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClearingDate {
    year: u16,
    month: u8,
    day: u8,
}

impl ClearingDate {
    /// `None` unless the date exists and its year is 2000–2099.
    pub fn new(year: u16, month: u8, day: u8) -> Option<ClearingDate> {
        let leap =
            year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        ((2000..=2099).contains(&year) && (1..=days).contains(&day)).then_some(ClearingDate {
            year,
            month,
            day,
        })
    }

    /// From `yymmdd` as in a file name.
    pub fn from_yymmdd(text: &str) -> Option<ClearingDate> {
        let bytes = text.as_bytes();
        if bytes.len() != 6 || !bytes.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let two = |i: usize| (bytes[i] - b'0') * 10 + (bytes[i + 1] - b'0');
        ClearingDate::new(2000 + u16::from(two(0)), two(2), two(4))
    }

    pub fn year(self) -> u16 {
        self.year
    }

    pub fn month(self) -> u8 {
        self.month
    }

    pub fn day(self) -> u8 {
        self.day
    }

    /// `yymmdd`, as in a file name.
    pub fn yymmdd(self) -> String {
        format!("{:02}{:02}{:02}", self.year % 100, self.month, self.day)
    }

    /// `MMDD`, as in the clearing-date fields of the records.
    pub fn mmdd(self) -> String {
        format!("{:02}{:02}", self.month, self.day)
    }

    pub(crate) fn mmdd_bytes(self) -> [u8; 4] {
        let digit = |v: u8| b'0' + v;
        [
            digit(self.month / 10),
            digit(self.month % 10),
            digit(self.day / 10),
            digit(self.day % 10),
        ]
    }
}

/// `YYYY-MM-DD`.
impl fmt::Display for ClearingDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Serialize for ClearingDate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The switch's name for the file of `kind` for `date`: `IND250304 32ACOMA` without the
/// space, e.g. `IND25030432ACOMA`.
pub fn file_name(kind: FileKind, date: ClearingDate) -> String {
    format!("IND{}{}{}", date.yymmdd(), kind.name_code(), kind.as_str())
}

/// The type and date a file name stands for. Only the exact names of [`file_name`] are
/// known (no extension such as `.txt`: the switch sends none, and a renamed file is not
/// the switch's); `name` is the file name, not a path.
pub fn detect(name: &str) -> Option<(FileKind, ClearingDate)> {
    let rest = name.strip_prefix("IND")?;
    if rest.len() != 13 || !rest.is_ascii() {
        return None;
    }
    let date = ClearingDate::from_yymmdd(&rest[..6])?;
    let kind = FileKind::ALL
        .into_iter()
        .find(|kind| rest[6..8] == *kind.name_code() && rest[8..] == *kind.as_str())?;
    Some((kind, date))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let date = ClearingDate::new(2025, 3, 4).unwrap();
        assert_eq!(file_name(FileKind::Acomn, date), "IND25030401ACOMN");
        assert_eq!(file_name(FileKind::Acoma, date), "IND25030432ACOMA");
        assert_eq!(file_name(FileKind::Aerra, date), "IND25030432AERRA");
        for kind in FileKind::ALL {
            assert_eq!(detect(&file_name(kind, date)), Some((kind, date)));
        }
    }

    #[test]
    fn other_names_are_unknown() {
        for name in [
            "IND25030432ACOMA.txt",
            "IND25030401ACOMA",
            "IND25023032ACOMA",
            "IND25030499ALFEE",
            "ind25030432acoma",
            "IND2503043ACOMA",
            "",
        ] {
            assert_eq!(detect(name), None, "{name}");
        }
    }

    #[test]
    fn dates_are_checked() {
        assert!(ClearingDate::new(2024, 2, 29).is_some());
        assert!(ClearingDate::new(2025, 2, 29).is_none());
        assert!(ClearingDate::new(2025, 13, 1).is_none());
        assert_eq!(ClearingDate::new(2025, 3, 4).unwrap().mmdd(), "0304");
        assert_eq!(
            ClearingDate::new(2025, 3, 4).unwrap().to_string(),
            "2025-03-04"
        );
    }
}
