//! A message as a person reads it: field number, name in Chinese and English, value, and the
//! named sub-fields of the private fields. Card data is masked unless asked; PIN data never
//! shows.

use std::fmt::Write;

use crate::frame::{Header, Tpdu};
use crate::mask;
use crate::subfield::subfields;
use crate::{Message, hex_upper};

/// What to show.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Show PANs and track data in full (PIN data stays hidden).
    pub unmask: bool,
}

/// Display width of `text`, counting East Asian wide characters as two columns.
pub fn display_width(text: &str) -> usize {
    text.chars().map(|c| if is_wide(c) { 2 } else { 1 }).sum()
}

fn is_wide(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6)
}

/// Column at which values start.
const VALUE_COLUMN: usize = 60;

/// Appends `label ........ value` with values aligned at one column (CJK counted as two).
pub fn line(out: &mut String, label: &str, value: &str) {
    let width = display_width(label);
    out.push_str(label);
    if width + 2 < VALUE_COLUMN {
        out.push(' ');
        out.extend(std::iter::repeat_n('.', VALUE_COLUMN - width - 2));
    }
    let _ = writeln!(out, " {value}");
}

/// Describes a message, with its TPDU and header when it came in a frame.
pub fn describe(
    frame: Option<(&Tpdu, &Header)>,
    message: &Message<'_>,
    options: Options,
) -> String {
    let mut out = String::new();
    let profile = message.profile();
    let _ = writeln!(out, "{} message ({})", profile.name, profile.description);
    if let Some((tpdu, header)) = frame {
        let [d0, d1] = tpdu.destination();
        let [s0, s1] = tpdu.source();
        line(
            &mut out,
            "TPDU",
            &format!(
                "{}  (id {:02X}, destination {:02X}{:02X}, source {:02X}{:02X})",
                hex_upper(&tpdu.0),
                tpdu.id(),
                d0,
                d1,
                s0,
                s1
            ),
        );
        line(
            &mut out,
            "Header 报文头",
            &format!(
                "{}  (application {:02X}, version {:02X}, terminal status {:X}, processing requirement {:X})",
                hex_upper(&header.0),
                header.application_type(),
                header.version(),
                header.terminal_status(),
                header.processing_requirement()
            ),
        );
    }
    line(&mut out, "MTI 消息类型", message.mti().as_str());
    let bitmap = message.bitmap();
    let bitmap_hex = if bitmap[1] != 0 {
        format!("{:016X}{:016X}", bitmap[0], bitmap[1])
    } else {
        format!("{:016X}", bitmap[0])
    };
    line(&mut out, "Bitmap 位图", &bitmap_hex);
    for field in message.fields() {
        let spec = field.spec();
        let number = spec.number;
        let label = format!("F{number:<3} {} {}", spec.name_zh, spec.name_en);
        let text = mask::shown(number, &field.to_text(), options.unmask);
        let value = match (mask::sensitivity(number), field.value()) {
            (mask::Sensitivity::Secret, _) => {
                format!("{text} ({} bytes, never shown)", field.len())
            }
            // Binary that is printable ASCII (a CUP MAC, terminal data) also shows as text.
            (_, crate::Value::Bytes(b))
                if !b.is_empty() && b.iter().all(|c| c.is_ascii_graphic()) =>
            {
                format!("{text} \"{}\"", String::from_utf8_lossy(b))
            }
            _ => text,
        };
        line(&mut out, &label, &value);
        for (sub, value) in subfields(message, number) {
            line(
                &mut out,
                &format!("  {:<5} {} {}", sub.id, sub.name_zh, sub.name_en),
                &value.to_string(),
            );
        }
    }
    out
}
