//! A representative CUP POS sale (0200) used by tests, benchmarks, the CLI's sample frame
//! and the documentation. Test card data only.

use crate::frame::{Header, Tpdu};
use crate::{CUP_POS, ISO87_ASCII, MessageBuilder, Mti};

/// Fields of the sample sale: 2, 3, 4, 11, 14, 22, 25, 26, 35, 41, 42, 49, 52, 53, 60, 63, 64.
pub const SALE_FIELDS: &[(u8, &[u8])] = &[
    (2, b"6222021234567890128"),
    (3, b"000000"),
    (4, b"000000012345"),
    (11, b"000123"),
    (14, b"2812"),
    (22, b"021"),
    (25, b"00"),
    (26, b"12"),
    (35, b"6222021234567890128=28122201234567890"),
    (41, b"12345678"),
    (42, b"123456789012345"),
    (49, b"156"),
    (52, &[0x3D, 0x5A, 0x0B, 0x91, 0x7C, 0x22, 0xE4, 0x8F]),
    (53, b"2600000000000000"),
    (60, b"22000001000"),
    (63, b"001"),
    (64, b"00000000"),
];

/// The TPDU of the sample: ID 60, destination 0003, source 0000.
pub const TPDU: Tpdu = Tpdu([0x60, 0x00, 0x03, 0x00, 0x00]);

/// The header of the sample: magnetic stripe (60), version 31, normal, no requirement.
pub const HEADER: Header = Header([0x60, 0x31, 0x00, 0x31, 0x00, 0x00]);

/// The sample sale in the CUP POS profile.
pub fn cup_sale() -> MessageBuilder<'static> {
    build(&CUP_POS)
}

/// The same logical sale in the ISO 8583:1987 ASCII profile.
pub fn iso87_sale() -> MessageBuilder<'static> {
    build(&ISO87_ASCII)
}

fn build(profile: &'static crate::Profile) -> MessageBuilder<'static> {
    let mut m = MessageBuilder::new(profile, Mti(*b"0200"));
    for &(number, value) in SALE_FIELDS {
        // The sample is valid in both profiles; a failure here is a bug in the sample.
        m.set(number, value).expect("sample sale field is valid");
    }
    m
}
