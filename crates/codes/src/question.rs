//! Reading a question for the one thing that decides it: a code named in it
//! ("刷卡显示51", "what does 96 mean").

use crate::load::{VENDOR_CODE_CHARS_MAX, is_local_code};

/// Words after a number that make it an amount, a count or a time, not a code
/// ("超时 30 秒", "retried 12 times").
const UNITS: &[&str] = &[
    "秒", "分", "小时", "天", "次", "元", "块", "笔", "张", "个", "s", "sec", "secs", "second",
    "seconds", "min", "mins", "minute", "minutes", "hour", "hours", "day", "days", "time", "times",
    "yuan", "rmb", "cny", "%",
];

/// The code a question names, upper-cased: the only run of ASCII letters and digits in it
/// shaped like a code — two characters with a digit (`51`, `A0`), a local code (`L03`), or
/// three to eight digits (a vendor code, `1001`) — that is not followed by a unit. `None`
/// when there is no such run, or several different ones (then the words decide).
pub fn code_in_question(question: &str) -> Option<String> {
    let mut found: Option<String> = None;
    let mut rest = question;
    while let Some(start) = rest.find(|ch: char| ch.is_ascii_alphanumeric()) {
        let after_start = &rest[start..];
        let len = after_start
            .find(|ch: char| !ch.is_ascii_alphanumeric())
            .unwrap_or(after_start.len());
        let (token, after) = after_start.split_at(len);
        rest = after;
        let token = token.to_ascii_uppercase();
        if !is_code_shaped(&token) || is_followed_by_unit(after) {
            continue;
        }
        match &found {
            Some(code) if *code != token => return None,
            _ => found = Some(token),
        }
    }
    found
}

fn is_code_shaped(token: &str) -> bool {
    let digits = token.bytes().filter(u8::is_ascii_digit).count();
    match token.len() {
        2 => digits >= 1,
        3 if is_local_code(token) => true,
        len => (3..=VENDOR_CODE_CHARS_MAX).contains(&len) && digits == len,
    }
}

fn is_followed_by_unit(after: &str) -> bool {
    let after = after.trim_start().to_lowercase();
    UNITS.iter().any(|unit| {
        after.strip_prefix(unit).is_some_and(|tail| {
            // An English unit is a whole word; a Chinese one or % stands alone.
            !unit.is_ascii()
                || *unit == "%"
                || !tail.starts_with(|ch: char| ch.is_ascii_alphabetic())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_named_in_a_question_is_found_in_either_language() {
        assert_eq!(code_in_question("错误码25").as_deref(), Some("25"));
        assert_eq!(code_in_question("刷卡显示51").as_deref(), Some("51"));
        assert_eq!(code_in_question("code 51").as_deref(), Some("51"));
        assert_eq!(code_in_question("what does 96 mean").as_deref(), Some("96"));
        assert_eq!(code_in_question("pos shows a0?").as_deref(), Some("A0"));
        assert_eq!(code_in_question("终端报 l03").as_deref(), Some("L03"));
        assert_eq!(code_in_question("屏幕显示1001").as_deref(), Some("1001"));
        assert_eq!(code_in_question("51 again, 51").as_deref(), Some("51"));
    }

    #[test]
    fn numbers_that_are_amounts_or_counts_and_two_codes_name_no_code() {
        assert_eq!(code_in_question("超时 30 秒"), None);
        assert_eq!(code_in_question("retried 12 times"), None);
        assert_eq!(code_in_question("扣了 88 元"), None);
        assert_eq!(code_in_question("51 or 55"), None);
        assert_eq!(code_in_question("wrong pin"), None);
        assert_eq!(code_in_question("顾客被扣款了"), None);
        assert_eq!(code_in_question("12 timeslots").as_deref(), Some("12"));
    }
}
