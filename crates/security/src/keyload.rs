//! Working keys delivered in field 62 of a sign-in response, wrapped under the TMK, each
//! followed by a 4-byte check value (`spec/cup-pos.md` §3.2):
//!
//! | 60.3 | field 62 | layout |
//! |---|---|---|
//! | 001 | 24 bytes | PIK(8) CV(4) MAK(8) CV(4) |
//! | 003 | 40 bytes | PIK(16) CV(4) MAK(16) CV(4) |
//! | 004 | 60 bytes | PIK(16) CV(4) MAK(16) CV(4) TDK(16) CV(4) |

use crate::engine::CipherFamily;
use crate::{SecretKey, SecurityError, check_value, unwrap_key, wrap_key};

/// The sign-in key layout a terminal asks for in 60.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyLayout {
    /// 001: single-length DES keys.
    Single,
    /// 003: double-length 3DES keys.
    Double,
    /// 004: double-length keys and a track-data key.
    DoubleWithTrack,
}

impl KeyLayout {
    /// The layout of a 60.3 network management code.
    pub fn from_code(code: &str) -> Result<KeyLayout, SecurityError> {
        match code {
            "001" => Ok(KeyLayout::Single),
            "003" => Ok(KeyLayout::Double),
            "004" => Ok(KeyLayout::DoubleWithTrack),
            other => Err(SecurityError::UnknownLayout {
                code: other.to_owned(),
            }),
        }
    }

    pub const fn code(self) -> &'static str {
        match self {
            KeyLayout::Single => "001",
            KeyLayout::Double => "003",
            KeyLayout::DoubleWithTrack => "004",
        }
    }

    /// Bytes of each wrapped key.
    pub const fn key_bytes(self) -> usize {
        match self {
            KeyLayout::Single => 8,
            KeyLayout::Double | KeyLayout::DoubleWithTrack => 16,
        }
    }

    const fn key_count(self) -> usize {
        match self {
            KeyLayout::DoubleWithTrack => 3,
            _ => 2,
        }
    }

    /// Bytes of field 62.
    pub const fn field62_bytes(self) -> usize {
        self.key_count() * (self.key_bytes() + 4)
    }
}

/// The keys a terminal works with between two sign-ins.
#[derive(Clone, Debug)]
pub struct WorkingKeys {
    /// PIN key: encrypts PIN blocks.
    pub pik: SecretKey,
    /// MAC key, as delivered.
    pub mak: SecretKey,
    /// Track-data key (layout 004 only).
    pub tdk: Option<SecretKey>,
}

impl WorkingKeys {
    /// The key to compute MACs with. In layouts 003/004 the MAK slot is 16 bytes but
    /// terminals commonly use only its first half as a single-DES key (§3.2): when the
    /// second half is zero the MAK is taken as single-length; otherwise as delivered.
    pub fn mac_key(&self) -> SecretKey {
        let mak = self.mak.dangerous_expose();
        if mak.len() == 16 && mak[8..].iter().all(|&b| b == 0) {
            SecretKey::from_bytes(&mak[..8]).unwrap_or_else(|_| self.mak.clone())
        } else {
            self.mak.clone()
        }
    }
}

const NAMES: [&str; 3] = ["PIK", "MAK", "TDK"];

/// Unwraps the working keys of field 62 under the TMK and checks every check value.
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
    let slot = layout.key_bytes() + 4;
    let mut keys = Vec::with_capacity(3);
    for (i, chunk) in field62.chunks_exact(slot).enumerate() {
        let (wrapped, cv) = chunk.split_at(layout.key_bytes());
        let key = unwrap_key(CipherFamily::TripleDes, tmk, wrapped)?;
        if check_value(CipherFamily::TripleDes, &key)? != cv {
            return Err(SecurityError::CheckValueMismatch { key: NAMES[i] });
        }
        keys.push(key);
    }
    let mut keys = keys.into_iter();
    let (Some(pik), Some(mak)) = (keys.next(), keys.next()) else {
        return Err(SecurityError::Field62Length {
            layout: layout.code(),
            needed,
            len: field62.len(),
        });
    };
    Ok(WorkingKeys {
        pik,
        mak,
        tdk: keys.next(),
    })
}

/// Wraps working keys under the TMK into field 62, each followed by its check value.
pub fn build_field62(
    layout: KeyLayout,
    tmk: &SecretKey,
    keys: &WorkingKeys,
) -> Result<Vec<u8>, SecurityError> {
    let mut list = vec![&keys.pik, &keys.mak];
    if layout == KeyLayout::DoubleWithTrack {
        list.push(
            keys.tdk
                .as_ref()
                .ok_or(SecurityError::KeyLength { len: 0 })?,
        );
    }
    let mut out = Vec::with_capacity(layout.field62_bytes());
    for key in list {
        if key.len() != layout.key_bytes() {
            return Err(SecurityError::KeyLength { len: key.len() });
        }
        out.extend_from_slice(&wrap_key(CipherFamily::TripleDes, tmk, key)?);
        out.extend_from_slice(&check_value(CipherFamily::TripleDes, key)?);
    }
    Ok(out)
}
