//! Time as the host's cores see it: a value passed in, never read from inside. The server
//! reads the system clock once per batch and hands the engine a [`HostTime`].

use poskit_domain::calendar::{civil_from_days, days_from_civil};
use poskit_domain::{digits_str, zero_padded};

/// One instant, with its local calendar fields (CUP hosts keep local time: fields 12, 13
/// and 15 are local; China Standard Time by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostTime {
    /// Milliseconds since the Unix epoch (UTC).
    pub unix_ms: i64,
    /// Days since the epoch, local: the business day.
    pub day: i64,
    pub year: i32,
    pub month: u8,
    pub day_of_month: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// Two digits for each value (each below 100).
fn pairs<const N: usize, const M: usize>(values: [u8; M]) -> [u8; N] {
    const { assert!(N == 2 * M, "two digits per value") };
    let mut out = [b'0'; N];
    for (slot, v) in out.chunks_exact_mut(2).zip(values) {
        slot.copy_from_slice(&zero_padded::<2>(u64::from(v)));
    }
    out
}

/// UTC+8, China Standard Time.
pub const UTC_OFFSET_MINUTES_DEFAULT: i32 = 8 * 60;

impl HostTime {
    /// The local calendar fields of `unix_ms` at `utc_offset_minutes`.
    pub fn at(unix_ms: i64, utc_offset_minutes: i32) -> HostTime {
        let local_s = unix_ms.div_euclid(1000) + i64::from(utc_offset_minutes) * 60;
        let day = local_s.div_euclid(86_400);
        let second_of_day = local_s.rem_euclid(86_400);
        let (year, month, day_of_month) = civil_from_days(day);
        HostTime {
            unix_ms,
            day,
            year,
            month,
            day_of_month,
            hour: (second_of_day / 3600) as u8,
            minute: (second_of_day / 60 % 60) as u8,
            second: (second_of_day % 60) as u8,
        }
    }

    /// The system clock, shifted by `offset_days` (a test switch: refunds are next-day).
    pub fn now(utc_offset_minutes: i32, offset_days: i32) -> HostTime {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        HostTime::at(
            unix_ms + i64::from(offset_days) * 86_400_000,
            utc_offset_minutes,
        )
    }

    /// Field 13 / 15: MMDD.
    pub fn mmdd(&self) -> String {
        digits_str(&self.mmdd_digits()).to_owned()
    }

    /// Field 12: hhmmss.
    pub fn hhmmss(&self) -> String {
        digits_str(&self.hhmmss_digits()).to_owned()
    }

    /// MMDD as ASCII digits.
    pub fn mmdd_digits(&self) -> [u8; 4] {
        pairs([self.month, self.day_of_month])
    }

    /// hhmmss as ASCII digits.
    pub fn hhmmss_digits(&self) -> [u8; 6] {
        pairs([self.hour, self.minute, self.second])
    }

    /// YYMM as ASCII digits, to compare with a card's expiry.
    pub fn yymm_digits(&self) -> [u8; 4] {
        pairs([self.year.rem_euclid(100) as u8, self.month])
    }

    /// YYYY-MM-DD.
    pub fn date_iso(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}",
            self.year, self.month, self.day_of_month
        )
    }

    /// The business day that an MMDD written on `self`'s day or within the year before
    /// it denotes (original dates in 61.3 carry no year).
    pub fn day_of_mmdd(&self, mmdd: &str) -> Option<i64> {
        let month: u8 = mmdd.get(..2)?.parse().ok()?;
        let dom: u8 = mmdd.get(2..4)?.parse().ok()?;
        if !(1..=12).contains(&month) || !(1..=31).contains(&dom) {
            return None;
        }
        let this_year = days_from_civil(self.year, month, dom);
        Some(if this_year > self.day {
            days_from_civil(self.year - 1, month, dom)
        } else {
            this_year
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_fields_follow_the_offset() {
        // 2026-12-01T19:30:05Z is 2026-12-02 03:30:05 in China.
        let t = HostTime::at(1_796_153_405_000, UTC_OFFSET_MINUTES_DEFAULT);
        assert_eq!((t.year, t.month, t.day_of_month), (2026, 12, 2));
        assert_eq!(t.hhmmss(), "033005");
        assert_eq!(t.mmdd(), "1202");
        assert_eq!(digits_str(&t.yymm_digits()), "2612");
        assert_eq!(t.date_iso(), "2026-12-02");
    }

    #[test]
    fn an_mmdd_means_the_latest_such_day_not_after_today() {
        let t = HostTime::at(1_796_153_405_000, 0); // 2026-12-01
        assert_eq!(t.day_of_mmdd("1201"), Some(t.day));
        assert_eq!(t.day_of_mmdd("1130"), Some(t.day - 1));
        assert_eq!(t.day_of_mmdd("1202"), Some(t.day - 364));
        assert_eq!(t.day_of_mmdd("1340"), None);
    }
}
