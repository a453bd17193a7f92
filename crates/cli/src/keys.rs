//! Key and MAC-algorithm arguments shared by commands.

use poskit_codec::Profile;
use poskit_security::{MacAlgorithm, SecretKey};

use crate::fail::usage;

/// Parses a hex key given on the command line (a usage error when malformed).
pub fn key_arg(name: &str, hex: &str) -> anyhow::Result<SecretKey> {
    SecretKey::from_hex(hex.trim()).map_err(|e| usage(format!("--{name}: {e}")))
}

/// The MAC algorithm: the one asked for, or the profile's.
pub fn mac_algorithm(asked: Option<&str>, profile: &Profile) -> anyhow::Result<MacAlgorithm> {
    let name = match (asked, profile.mac_algorithm) {
        (Some(name), _) => name,
        (None, Some(name)) => name,
        (None, None) => return Err(usage(format!("profile {} has no MAC field", profile.name))),
    };
    name.parse().map_err(|_| {
        usage(format!(
            "unknown MAC algorithm {name:?} (cup-ecb, cup-ecb-sm4, x919)"
        ))
    })
}
