//! A bounded log: at most so many lines per interval, and the next line that is written
//! says how many were held back. For what strangers or a failing disk can repeat
//! thousands of times a second.

use std::time::{Duration, Instant};

/// Lines allowed per interval, and how many were held back since the last line written.
#[derive(Debug)]
pub struct LogBudget {
    interval: Duration,
    lines_per_interval_max: u32,
    window_start: Option<Instant>,
    written_in_window: u32,
    held_back: u64,
}

impl LogBudget {
    pub fn new(interval_ms: u64, lines_per_interval_max: u32) -> LogBudget {
        assert!(interval_ms > 0 && lines_per_interval_max > 0);
        LogBudget {
            interval: Duration::from_millis(interval_ms),
            lines_per_interval_max,
            window_start: None,
            written_in_window: 0,
            held_back: 0,
        }
    }

    /// Whether a line may be written `now`: `Some(held back since the last one)`, or
    /// `None` (counted as held back).
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= self.interval)
        {
            self.window_start = Some(now);
            self.written_in_window = 0;
        }
        if self.written_in_window >= self.lines_per_interval_max {
            self.held_back += 1;
            return None;
        }
        self.written_in_window += 1;
        assert!(self.written_in_window <= self.lines_per_interval_max);
        Some(std::mem::take(&mut self.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_budget_are_held_back_and_counted_on_the_next_line() {
        let mut log = LogBudget::new(1_000, 2);
        let t0 = Instant::now();
        assert_eq!(log.allow(t0), Some(0));
        assert_eq!(log.allow(t0), Some(0));
        assert_eq!(log.allow(t0), None);
        assert_eq!(log.allow(t0 + Duration::from_millis(999)), None);
        assert_eq!(log.allow(t0 + Duration::from_millis(1_000)), Some(2));
        assert_eq!(log.allow(t0 + Duration::from_millis(1_001)), Some(0));
    }
}
