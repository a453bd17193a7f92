//! Days and clearing days: pure functions of a timestamp and the offsets passed in (the
//! domain reads no clock).
//!
//! A CUP clearing day (`spec/cup-clearing.md` §2) runs from the cut-off of the day before
//! (23:00 local time) to the cut-off of its own date: a sale at 23:30 on the 3rd belongs
//! to the clearing day of the 4th. Host, switch and reconciliation use this one rule.

/// Minutes in a day.
const DAY_MINUTES: i32 = 24 * 60;

/// Where one clearing day ends and the next begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClearingCut {
    /// Local time's offset from UTC (China Standard Time: 480).
    pub utc_offset_minutes: i32,
    /// Minutes after local midnight at which the day is cut (23:00: 1380).
    pub cut_minute_of_day: i32,
}

impl Default for ClearingCut {
    /// Beijing time, cut at 23:00.
    fn default() -> Self {
        ClearingCut {
            utc_offset_minutes: 8 * 60,
            cut_minute_of_day: 23 * 60,
        }
    }
}

impl ClearingCut {
    /// A cut at `hh:mm` local time; `None` for a time that is not one.
    pub fn at(utc_offset_minutes: i32, hh: u8, mm: u8) -> Option<ClearingCut> {
        (hh < 24 && mm < 60).then_some(ClearingCut {
            utc_offset_minutes,
            cut_minute_of_day: i32::from(hh) * 60 + i32::from(mm),
        })
    }

    /// The clearing day (days since 1970-01-01, named by its local date) of an instant.
    pub fn day_of(&self, unix_ms: i64) -> i64 {
        assert!((0..DAY_MINUTES).contains(&self.cut_minute_of_day));
        let local_minute = unix_ms.div_euclid(60_000) + i64::from(self.utc_offset_minutes);
        // Shifting by the time left after the cut moves 23:00–24:00 into the next day.
        let shifted = local_minute + i64::from(DAY_MINUTES - self.cut_minute_of_day);
        shifted.div_euclid(i64::from(DAY_MINUTES))
    }

    /// The first instant (Unix ms) of a clearing day: the cut-off of the day before.
    pub fn start_ms(&self, day: i64) -> i64 {
        let local_minute = day * i64::from(DAY_MINUTES) - i64::from(DAY_MINUTES)
            + i64::from(self.cut_minute_of_day);
        (local_minute - i64::from(self.utc_offset_minutes)) * 60_000
    }
}

/// A date as `YYYYMMDD` → days since 1970-01-01; `None` when it is not a date.
pub fn day_of_yyyymmdd(text: &str) -> Option<i64> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i32 = text[..4].parse().ok()?;
    let m: u8 = text[4..6].parse().ok()?;
    let d: u8 = text[6..8].parse().ok()?;
    let day = days_from_civil(y, m, d);
    // 2026-02-30 would come back as 2026-03-02.
    (civil_from_days(day) == (y, m, d)).then_some(day)
}

/// Days since 1970-01-01 → `YYYYMMDD`.
pub fn yyyymmdd(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}{m:02}{d:02}")
}

/// Howard Hinnant's `civil_from_days`: (year, month, day) of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    ((y + i64::from(m <= 2)) as i32, m, d)
}

/// The inverse of [`civil_from_days`].
pub fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_through_the_calendar() {
        for day in [-800_000, -1, 0, 59, 60, 365, 11_016, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn the_clearing_day_turns_at_23_00_beijing_time() {
        let cut = ClearingCut::default();
        let dec3 = day_of_yyyymmdd("20261203").unwrap();
        // 2026-12-03 22:59:59 and 23:00:00 in Beijing (UTC+8).
        let before = (dec3 * 1440 + 22 * 60 + 59 - 480) * 60_000 + 59_000;
        let after = before + 1_000;
        assert_eq!(cut.day_of(before), dec3);
        assert_eq!(cut.day_of(after), dec3 + 1);
        assert_eq!(cut.start_ms(dec3 + 1), after);
        assert_eq!(yyyymmdd(dec3 + 1), "20261204");
    }

    #[test]
    fn only_real_dates_are_read() {
        assert!(day_of_yyyymmdd("20260230").is_none());
        assert!(day_of_yyyymmdd("2026123").is_none());
        assert!(day_of_yyyymmdd("2026-12-").is_none());
        assert!(ClearingCut::at(480, 24, 0).is_none());
    }
}
