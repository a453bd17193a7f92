//! Checks of `n` and `z` characters, eight bytes at a time (the builder checks every value
//! set; the ASCII profile's decoder every numeric field read).

const HIGH: u64 = 0x8080_8080_8080_8080;

/// A character of `z` (track) data: a digit, the separator `=`, or a hex letter of
/// encrypted track data.
#[inline]
pub(crate) fn is_track_char(b: u8) -> bool {
    b.is_ascii_digit() || b == b'=' || (b'A'..=b'F').contains(&b)
}

/// Whether every byte is an ASCII digit.
#[inline(always)]
pub(crate) fn all_ascii_digits(value: &[u8]) -> bool {
    all_lanes(value, digit_lanes)
}

/// Whether every byte is a track character ([`is_track_char`]).
#[inline(always)]
pub(crate) fn all_track_chars(value: &[u8]) -> bool {
    all_lanes(value, |w| {
        digit_lanes(w) | in_range(w, b'=', b'=') | in_range(w, b'A', b'F')
    })
}

/// The high bit of each lane of `w` (whose lanes have the high bit clear) set when the
/// lane is in `lo..=hi`: `b + (0x80 - lo)` reaches the high bit when b ≥ lo, and
/// `b + (0x7F - hi)` when b > hi; lanes cannot carry into each other.
#[inline(always)]
fn in_range(w: u64, lo: u8, hi: u8) -> u64 {
    let ones = 0x0101_0101_0101_0101u64;
    let at_least_lo = w + ones * u64::from(0x80 - lo);
    let above_hi = w + ones * u64::from(0x7F - hi);
    at_least_lo & !above_hi & HIGH
}

#[inline(always)]
fn digit_lanes(w: u64) -> u64 {
    in_range(w, b'0', b'9')
}

/// Whether `lanes` (which sets the high bit of each lane it accepts, for lanes whose high
/// bit is clear) accepts every byte of `value`: eight bytes at a time, the last eight
/// overlapping those before; a value shorter than eight as two overlapping halves, or byte
/// by byte under four, the lanes past it `0` (accepted by every check here).
#[inline(always)]
fn all_lanes(value: &[u8], lanes: impl Fn(u64) -> u64) -> bool {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    let ok = |w: u64| (w & HIGH == 0) & (lanes(w & !HIGH) == HIGH);
    let half = |b: [u8; 4]| ok(u64::from(u32::from_le_bytes(b)) | ZEROS << 32);
    match (value.first_chunk::<8>(), value.first_chunk::<4>()) {
        (Some(_), _) => {
            let (words, _) = value.as_chunks::<8>();
            let last = value.last_chunk::<8>().copied().unwrap_or_default();
            words.iter().fold(ok(u64::from_le_bytes(last)), |all, w| {
                all & ok(u64::from_le_bytes(*w))
            })
        }
        (None, Some(&first)) => half(first) & half(value.last_chunk().copied().unwrap_or_default()),
        (None, None) => {
            let word = value.iter().fold(ZEROS, |w, &b| w << 8 | u64::from(b));
            ok(word)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_checks_agree_with_the_byte_checks() {
        let alphabet = b"0123456789=:;<>?@ABCDEFGabcdef/ \x00\x7F\x80\xB0\xB9\xFF";
        for len in 0..=20 {
            for position in 0..len.max(1) {
                for &bad in alphabet {
                    let mut value = vec![b'7'; len];
                    if let Some(b) = value.get_mut(position) {
                        *b = bad;
                    }
                    let digits = value.iter().all(u8::is_ascii_digit);
                    let track = value.iter().all(|&b| is_track_char(b));
                    assert_eq!(all_ascii_digits(&value), digits, "{value:?}");
                    assert_eq!(all_track_chars(&value), track, "{value:?}");
                }
            }
        }
    }
}
