//! Working keys delivered in field 62 of a sign-in response (0810), each wrapped under the
//! terminal's TMK and followed by a 4-byte check value (`spec/cup-pos.md` §3.2):
//!
//! | 60.3 | [`KeyLayout`] | field 62 | layout |
//! |---|---|---|---|
//! | 001 | `Single` | 24 bytes | PIK(8) CV(4) MAK(8) CV(4) |
//! | 003 | `Double` | 40 bytes | PIK(16) CV(4) MAK(16) CV(4) |
//! | 004 | `DoubleWithTrack` | 60 bytes | PIK(16) CV(4) MAK(16) CV(4) TDK(16) CV(4) |
//!
//! These layouts are DES/3DES: keys are wrapped in ECB under the TMK (8, 16 or 24 bytes)
//! and each check value is the first 4 bytes of the clear key encrypting 8 zero bytes.
//! No public source gives an SM4 layout (§3.6 GAP), so none is offered here;
//! [`crate::wrap_key`] and [`crate::unwrap_key`] do SM4 for a profile that defines one.
//!
//! ## The MAK of layouts 003/004
//!
//! §3.2: the 16-byte MAK slot is effectively single-length — terminals load the first 8
//! bytes as K‖K, and hosts copy the first half into the second when the second is zero.
//! poskit keeps the MAK **as delivered** in [`WorkingKeys::mak`] and gives the key to
//! compute MACs with through [`WorkingKeys::mac_key`], by a [`MakRule`] (a profile
//! setting). The default rule: a MAK whose second half is all zero is used as K‖K (which
//! MACs exactly as single DES with K); any other MAK as delivered.
//!
//! When parsing, the MAK's check value is accepted if it is that of the key as delivered
//! or, for a K‖0 MAK, that of K‖K (= single DES with K), since hosts compute it either way.

use std::str::FromStr;

use crate::engine::CipherFamily;
use crate::{SecretKey, SecurityError, check_value, unwrap_key, wrap_key};

/// Bytes of a key check value in field 62.
pub const CHECK_VALUE_BYTES: usize = 4;

/// The sign-in key layout: 60.3 of the sign-in request (0800) says which one the terminal
/// wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyLayout {
    /// 60.3 = 001: single-length DES PIK and MAK.
    Single,
    /// 60.3 = 003: double-length 3DES PIK and MAK.
    Double,
    /// 60.3 = 004: double-length PIK, MAK and track-data key.
    DoubleWithTrack,
}

impl KeyLayout {
    /// The layout of a 60.3 network management code (`"001"`, `"003"`, `"004"`).
    pub fn from_code(code: &str) -> Result<KeyLayout, SecurityError> {
        match code {
            "001" => Ok(KeyLayout::Single),
            "003" => Ok(KeyLayout::Double),
            "004" => Ok(KeyLayout::DoubleWithTrack),
            other => Err(SecurityError::UnknownKeyLayout {
                code: other.to_owned(),
            }),
        }
    }

    /// The 60.3 code.
    pub const fn code(self) -> &'static str {
        match self {
            KeyLayout::Single => "001",
            KeyLayout::Double => "003",
            KeyLayout::DoubleWithTrack => "004",
        }
    }

    /// Bytes of each wrapped key: 8 or 16.
    pub const fn key_bytes(self) -> usize {
        match self {
            KeyLayout::Single => 8,
            KeyLayout::Double | KeyLayout::DoubleWithTrack => 16,
        }
    }

    /// How many keys field 62 carries: 2 (PIK, MAK) or 3 (PIK, MAK, TDK).
    pub const fn key_count(self) -> usize {
        match self {
            KeyLayout::Single | KeyLayout::Double => 2,
            KeyLayout::DoubleWithTrack => 3,
        }
    }

    /// Bytes of field 62: 24, 40 or 60.
    pub const fn field62_bytes(self) -> usize {
        self.key_count() * (self.key_bytes() + CHECK_VALUE_BYTES)
    }
}

impl FromStr for KeyLayout {
    type Err = SecurityError;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        KeyLayout::from_code(code)
    }
}

/// Which key the MAK slot gives for computing MACs (§3.2 note; a profile setting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MakRule {
    /// A 16-byte MAK whose second half is all zero is used as K‖K (single-DES
    /// equivalent); any other MAK as delivered. The default.
    #[default]
    ZeroSecondHalfMeansSingle,
    /// A 16-byte MAK is always used as K‖K from its first half, whatever the second half
    /// holds (terminals that load only the first 8 bytes).
    FirstHalfOnly,
    /// The MAK is used exactly as delivered.
    AsDelivered,
}

/// The keys a terminal works with between two sign-ins, in clear (held as
/// [`SecretKey`]s, zeroized on drop, never printed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkingKeys {
    /// PIN key: encrypts PIN blocks (field 52).
    pub pik: SecretKey,
    /// MAC key, as delivered. Compute MACs with [`WorkingKeys::mac_key`].
    pub mak: SecretKey,
    /// Track-data key (layout 004 only).
    pub tdk: Option<SecretKey>,
}

impl WorkingKeys {
    /// The key to compute MACs with, by the default [`MakRule`].
    pub fn mac_key(&self) -> SecretKey {
        self.mac_key_with(MakRule::default())
    }

    /// The key to compute MACs with, by `rule`. An 8-byte MAK is always used as it is.
    /// The K‖K form is 16 bytes so that it serves X9.19 too; under CUP ECB it MACs as
    /// single DES with K.
    pub fn mac_key_with(&self, rule: MakRule) -> SecretKey {
        let mak = self.mak.dangerous_expose();
        let single = mak.len() == 16
            && match rule {
                MakRule::ZeroSecondHalfMeansSingle => mak[8..].iter().all(|&b| b == 0),
                MakRule::FirstHalfOnly => true,
                MakRule::AsDelivered => false,
            };
        if single {
            SecretKey::doubled(&mak[..8])
        } else {
            self.mak.clone()
        }
    }
}

const KEY_NAMES: [&str; 3] = ["PIK", "MAK", "TDK"];

/// Whether `cv` is the check value of `key` as delivered — or, for a MAK of K‖0 in
/// layouts 003/004, of K‖K (see the module documentation).
fn check_value_matches(name: &str, key: &SecretKey, cv: &[u8]) -> Result<bool, SecurityError> {
    if check_value(CipherFamily::Des, key)? == cv {
        return Ok(true);
    }
    let bytes = key.dangerous_expose();
    if name == "MAK" && bytes.len() == 16 && bytes[8..].iter().all(|&b| b == 0) {
        return Ok(check_value(CipherFamily::Des, &SecretKey::doubled(&bytes[..8]))? == cv);
    }
    Ok(false)
}

/// Unwraps the working keys of field 62 under the TMK and checks each check value
/// (§3.2). A mismatch is [`SecurityError::CheckValueMismatch`] naming the key; a field of
/// the wrong size for the layout is [`SecurityError::Field62Length`].
pub fn parse_field62(
    layout: KeyLayout,
    tmk: &SecretKey,
    field62: &[u8],
) -> Result<WorkingKeys, SecurityError> {
    let needed = layout.field62_bytes();
    if field62.len() != needed {
        return Err(SecurityError::Field62Length {
            layout: layout.code(),
            needed,
            len: field62.len(),
        });
    }
    let slot_bytes = layout.key_bytes() + CHECK_VALUE_BYTES;
    let unwrap_slot = |index: usize| -> Result<SecretKey, SecurityError> {
        let slot = &field62[index * slot_bytes..(index + 1) * slot_bytes];
        let (wrapped, cv) = slot.split_at(layout.key_bytes());
        let key = unwrap_key(CipherFamily::Des, tmk, wrapped)?;
        if !check_value_matches(KEY_NAMES[index], &key, cv)? {
            return Err(SecurityError::CheckValueMismatch {
                key: KEY_NAMES[index],
            });
        }
        Ok(key)
    };
    let pik = unwrap_slot(0)?;
    let mak = unwrap_slot(1)?;
    let tdk = match layout.key_count() {
        3 => Some(unwrap_slot(2)?),
        count => {
            assert_eq!(count, 2);
            None
        }
    };
    assert_eq!(pik.len(), layout.key_bytes());
    Ok(WorkingKeys { pik, mak, tdk })
}

/// Wraps working keys under the TMK into field 62, each followed by its check value
/// (computed on the key as given). Each key must have the layout's length; a TDK is
/// required for 004 and refused for 001/003.
pub fn build_field62(
    layout: KeyLayout,
    tmk: &SecretKey,
    keys: &WorkingKeys,
) -> Result<Vec<u8>, SecurityError> {
    let tdk = match (layout, &keys.tdk) {
        (KeyLayout::DoubleWithTrack, Some(tdk)) => Some(tdk),
        (KeyLayout::DoubleWithTrack, None) => return Err(SecurityError::TrackKeyMissing),
        (KeyLayout::Single | KeyLayout::Double, Some(_)) => {
            return Err(SecurityError::TrackKeyUnexpected {
                layout: layout.code(),
            });
        }
        (KeyLayout::Single | KeyLayout::Double, None) => None,
    };
    let list = [Some(&keys.pik), Some(&keys.mak), tdk];
    let mut field62 = Vec::with_capacity(layout.field62_bytes());
    for (name, key) in KEY_NAMES.iter().zip(list) {
        let Some(key) = key else { continue };
        if key.len() != layout.key_bytes() {
            return Err(SecurityError::WorkingKeyLength {
                key: name,
                layout: layout.code(),
                needed: layout.key_bytes(),
                len: key.len(),
            });
        }
        field62.extend_from_slice(&wrap_key(CipherFamily::Des, tmk, key)?);
        field62.extend_from_slice(&check_value(CipherFamily::Des, key)?);
    }
    assert_eq!(field62.len(), layout.field62_bytes());
    Ok(field62)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MacAlgorithm, compute_mac};

    fn key(text: &str) -> SecretKey {
        SecretKey::from_hex(text).unwrap()
    }

    const TMK: &str = "11111111111111112222222222222222";

    fn keys(layout: KeyLayout) -> WorkingKeys {
        match layout {
            KeyLayout::Single => WorkingKeys {
                pik: key("1A2B3C4D5E6F7081"),
                mak: key("8192A3B4C5D6E7F8"),
                tdk: None,
            },
            KeyLayout::Double => WorkingKeys {
                pik: key("1A2B3C4D5E6F70818192A3B4C5D6E7F8"),
                mak: key("0F1E2D3C4B5A69788796A5B4C3D2E1F0"),
                tdk: None,
            },
            KeyLayout::DoubleWithTrack => WorkingKeys {
                tdk: Some(key("F0E1D2C3B4A5968778695A4B3C2D1E0F")),
                ..keys(KeyLayout::Double)
            },
        }
    }

    #[test]
    fn layouts_are_named_by_their_60_3_code_and_sized_as_the_spec_says() {
        for (code, layout, bytes) in [
            ("001", KeyLayout::Single, 24),
            ("003", KeyLayout::Double, 40),
            ("004", KeyLayout::DoubleWithTrack, 60),
        ] {
            assert_eq!(KeyLayout::from_code(code), Ok(layout));
            assert_eq!(code.parse::<KeyLayout>(), Ok(layout));
            assert_eq!(layout.code(), code);
            assert_eq!(layout.field62_bytes(), bytes);
        }
        for code in ["000", "002", "301", "1", ""] {
            assert_eq!(
                KeyLayout::from_code(code),
                Err(SecurityError::UnknownKeyLayout { code: code.into() })
            );
        }
    }

    #[test]
    fn every_layout_parses_back_what_it_was_built_from() {
        let tmk = key(TMK);
        for layout in [
            KeyLayout::Single,
            KeyLayout::Double,
            KeyLayout::DoubleWithTrack,
        ] {
            let built = build_field62(layout, &tmk, &keys(layout)).unwrap();
            assert_eq!(parse_field62(layout, &tmk, &built), Ok(keys(layout)));
        }
    }

    #[test]
    fn a_corrupted_slot_names_the_key_whose_check_value_fails() {
        let tmk = key(TMK);
        let layout = KeyLayout::DoubleWithTrack;
        let built = build_field62(layout, &tmk, &keys(layout)).unwrap();
        for (offset, name) in [(0, "PIK"), (23, "MAK"), (40, "TDK"), (59, "TDK")] {
            let mut bad = built.clone();
            bad[offset] ^= 0x01;
            assert_eq!(
                parse_field62(layout, &tmk, &bad),
                Err(SecurityError::CheckValueMismatch { key: name }),
                "byte {offset}"
            );
        }
    }

    #[test]
    fn keys_wrapped_under_another_tmk_fail_on_the_pik() {
        let built = build_field62(KeyLayout::Single, &key(TMK), &keys(KeyLayout::Single)).unwrap();
        let other = key("33333333333333334444444444444444");
        assert_eq!(
            parse_field62(KeyLayout::Single, &other, &built),
            Err(SecurityError::CheckValueMismatch { key: "PIK" })
        );
    }

    #[test]
    fn field_62_of_another_layouts_size_is_refused() {
        let built = build_field62(KeyLayout::Single, &key(TMK), &keys(KeyLayout::Single)).unwrap();
        assert_eq!(
            parse_field62(KeyLayout::Double, &key(TMK), &built),
            Err(SecurityError::Field62Length {
                layout: "003",
                needed: 40,
                len: 24
            })
        );
    }

    #[test]
    fn building_checks_key_lengths_and_the_track_key_slot() {
        let tmk = key(TMK);
        assert_eq!(
            build_field62(KeyLayout::Single, &tmk, &keys(KeyLayout::Double)),
            Err(SecurityError::WorkingKeyLength {
                key: "PIK",
                layout: "001",
                needed: 8,
                len: 16
            })
        );
        assert_eq!(
            build_field62(KeyLayout::DoubleWithTrack, &tmk, &keys(KeyLayout::Double)),
            Err(SecurityError::TrackKeyMissing)
        );
        assert_eq!(
            build_field62(KeyLayout::Double, &tmk, &keys(KeyLayout::DoubleWithTrack)),
            Err(SecurityError::TrackKeyUnexpected { layout: "003" })
        );
    }

    #[test]
    fn a_mak_with_a_zero_second_half_macs_as_single_des_with_its_first_half() {
        let working = WorkingKeys {
            mak: key("8192A3B4C5D6E7F80000000000000000"),
            ..keys(KeyLayout::Double)
        };
        let single = key("8192A3B4C5D6E7F8");
        let data = b"0200 some message bytes";
        let by_rule = compute_mac(MacAlgorithm::CupEcb, &working.mac_key(), data).unwrap();
        assert_eq!(
            by_rule,
            compute_mac(MacAlgorithm::CupEcb, &single, data).unwrap()
        );
        assert_eq!(working.mac_key(), key("8192A3B4C5D6E7F88192A3B4C5D6E7F8"));
        // As delivered, K‖0 is a different 3DES key.
        let as_delivered = working.mac_key_with(MakRule::AsDelivered);
        assert_eq!(as_delivered, working.mak);
        assert_ne!(
            compute_mac(MacAlgorithm::CupEcb, &as_delivered, data).unwrap(),
            by_rule
        );
    }

    #[test]
    fn the_mak_rules_choose_the_key_to_mac_with() {
        let full = keys(KeyLayout::Double);
        assert_eq!(full.mac_key(), full.mak);
        assert_eq!(full.mac_key_with(MakRule::AsDelivered), full.mak);
        assert_eq!(
            full.mac_key_with(MakRule::FirstHalfOnly),
            key("0F1E2D3C4B5A69780F1E2D3C4B5A6978")
        );
        let single = keys(KeyLayout::Single);
        for rule in [
            MakRule::ZeroSecondHalfMeansSingle,
            MakRule::FirstHalfOnly,
            MakRule::AsDelivered,
        ] {
            assert_eq!(single.mac_key_with(rule), single.mak);
        }
    }

    #[test]
    fn a_k_and_zero_mak_is_accepted_with_either_check_value() {
        let tmk = key(TMK);
        let working = WorkingKeys {
            mak: key("8192A3B4C5D6E7F80000000000000000"),
            ..keys(KeyLayout::Double)
        };
        // Check value of K‖0 as delivered (what build_field62 writes).
        let built = build_field62(KeyLayout::Double, &tmk, &working).unwrap();
        assert_eq!(
            parse_field62(KeyLayout::Double, &tmk, &built),
            Ok(working.clone())
        );
        // Check value of single DES K, as hosts that treat the MAK as single-length send.
        let mut single_cv = built.clone();
        let des_cv = check_value(CipherFamily::Des, &key("8192A3B4C5D6E7F8")).unwrap();
        single_cv[36..40].copy_from_slice(&des_cv);
        assert_ne!(single_cv, built);
        assert_eq!(
            parse_field62(KeyLayout::Double, &tmk, &single_cv),
            Ok(working)
        );
    }
}
