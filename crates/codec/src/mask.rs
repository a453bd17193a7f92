//! Masking of card data for anything a person or a log can see: a PAN shows its first six
//! and last four digits; track data shows the masked PAN and hides everything after the
//! separator; a PIN block is never shown.

/// What a field's value may show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sensitivity {
    /// Shown as is.
    Plain,
    /// A primary account number: first 6 and last 4 unless unmasked.
    Pan,
    /// Track data: masked PAN, then nothing, unless unmasked.
    Track,
    /// PIN data: never shown, whatever is asked.
    Secret,
}

/// How field `number` of a message must be shown.
pub fn sensitivity(number: u8) -> Sensitivity {
    match number {
        2 | 34 => Sensitivity::Pan,
        35 | 36 | 45 => Sensitivity::Track,
        52 => Sensitivity::Secret,
        _ => Sensitivity::Plain,
    }
}

/// `6222021234567890123` → `622202*********0123`. Short values keep at most their last four.
pub fn mask_pan(pan: &str) -> String {
    if pan.is_ascii() {
        // Card numbers are digits: byte by byte, one allocation.
        let n = pan.len();
        let (head, tail) = shown_ends(n);
        let mut out = String::with_capacity(n);
        out.push_str(&pan[..head]);
        out.extend(std::iter::repeat_n('*', n - head - tail));
        out.push_str(&pan[n - tail..]);
        return out;
    }
    let chars: Vec<char> = pan.chars().collect();
    let n = chars.len();
    let (head, tail) = shown_ends(n);
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| if i < head || i >= n - tail { c } else { '*' })
        .collect()
}

/// How many characters of a card number of `n` stay in clear at its start and end.
fn shown_ends(n: usize) -> (usize, usize) {
    if n >= 11 {
        (6, 4)
    } else if n > 4 {
        (0, 4)
    } else {
        (0, 0)
    }
}

/// `6222021234567890=25121010000012300000` → `622202******7890=********************`.
pub fn mask_track(track: &str) -> String {
    match track.find(['=', 'D']) {
        Some(at) => {
            let (pan, rest) = track.split_at(at);
            format!("{}={}", mask_pan(pan), "*".repeat(rest.chars().count() - 1))
        }
        None => mask_pan(track),
    }
}

/// The text of a value as a person may see it.
pub fn shown(number: u8, text: &str, unmask: bool) -> String {
    match (sensitivity(number), unmask) {
        (Sensitivity::Secret, _) => "*".repeat(text.chars().count()),
        (Sensitivity::Plain, _) | (_, true) => text.to_owned(),
        (Sensitivity::Pan, false) => mask_pan(text),
        (Sensitivity::Track, false) => mask_track(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_keeps_first_six_and_last_four() {
        assert_eq!(mask_pan("6222021234567890123"), "622202*********0123");
        assert_eq!(mask_pan("4111111111111111"), "411111******1111");
        assert_eq!(mask_pan("12345678"), "****5678");
        assert_eq!(mask_pan("1234"), "****");
    }

    #[test]
    fn track_hides_everything_after_the_separator() {
        assert_eq!(
            mask_track("6222021234567890=2512101"),
            "622202******7890=*******"
        );
    }

    #[test]
    fn pin_data_is_never_shown_even_when_unmasked() {
        assert_eq!(shown(52, "0612345FFFFFFFFF", true), "****************");
    }
}
