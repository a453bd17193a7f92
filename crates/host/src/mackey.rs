//! A terminal's MAC key on the host: in the process (under a local KEK), or held by an HSM
//! that computes every MAC itself (`poskit_keystore::MacDevice`, a PKCS#11 token).
//!
//! With an HSM the clear MAK exists in the host only during the sign-in that issues it (the
//! terminal needs it encrypted under its TMK, which the token cannot do with DES): the
//! sign-in puts the key as MACs use it into the token and keeps only the form the token
//! gives back. From then on requests are verified and answers sealed by the token.

use std::sync::Arc;

use poskit_keystore::{KeyStoreError, MacDevice};
use poskit_security::{
    MAC_BYTES, Mac, MacAlgorithm, MakRule, SecretKey, WorkingKeys, compute_mac, constant_time_eq,
};

/// A MAC key. `Debug` shows no key.
#[derive(Clone)]
pub enum MacKey {
    /// In process memory (zeroized on drop). As the ledger keeps it, the key as delivered;
    /// after [`MacKey::as_used`], the key MACs are computed with.
    Clear(SecretKey),
    /// Held by an HSM, always the key as used.
    Held(HeldMac),
}

/// A MAC key inside an HSM: the device and the form it gave for the key.
#[derive(Clone)]
pub struct HeldMac {
    device: Arc<dyn MacDevice>,
    held: Arc<[u8]>,
}

impl HeldMac {
    pub fn new(device: Arc<dyn MacDevice>, held: Vec<u8>) -> HeldMac {
        assert!(!held.is_empty(), "a held MAK has a form");
        HeldMac {
            device,
            held: held.into(),
        }
    }
}

/// Why a MAC could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum MacFailure {
    /// The key or the algorithm does not allow it (a key of the wrong length, a damaged
    /// held key, an algorithm the HSM does not compute): the terminal must sign in again.
    #[error("the MAK is unusable: {0}")]
    Unusable(String),
    /// The HSM cannot be reached now: answer 96 and try again later.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
}

impl PartialEq for MacKey {
    fn eq(&self, other: &MacKey) -> bool {
        match (self, other) {
            (MacKey::Clear(a), MacKey::Clear(b)) => a == b,
            (MacKey::Held(a), MacKey::Held(b)) => {
                a.held == b.held && Arc::ptr_eq(&a.device, &b.device)
            }
            _ => false,
        }
    }
}

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MacKey::Clear(_) => f.write_str("MacKey::Clear(..)"),
            MacKey::Held(h) => write!(f, "MacKey::Held({})", h.device.describe()),
        }
    }
}

impl MacKey {
    /// The key MACs are computed with, by `rule`: a clear key as delivered goes through the
    /// rule (§3.2); a held key was put into the HSM as used.
    pub fn as_used(&self, rule: MakRule) -> MacKey {
        match self {
            MacKey::Clear(mak) => MacKey::Clear(
                WorkingKeys {
                    pik: mak.clone(),
                    mak: mak.clone(),
                    tdk: None,
                }
                .mac_key_with(rule),
            ),
            MacKey::Held(_) => self.clone(),
        }
    }

    /// The clear key, when it is in the process.
    pub fn clear(&self) -> Option<&SecretKey> {
        match self {
            MacKey::Clear(key) => Some(key),
            MacKey::Held(_) => None,
        }
    }

    /// The MAC of `data` (the message from the MTI through field 63).
    pub fn mac(&self, algorithm: MacAlgorithm, data: &[u8]) -> Result<Mac, MacFailure> {
        match self {
            MacKey::Clear(key) => {
                compute_mac(algorithm, key, data).map_err(|e| MacFailure::Unusable(e.to_string()))
            }
            MacKey::Held(h) if algorithm == MacAlgorithm::CupEcb => {
                let wire = h.device.cup_ecb_mac(&h.held, data).map_err(|e| match e {
                    KeyStoreError::Unavailable(why) => MacFailure::Unavailable(why),
                    other => MacFailure::Unusable(other.to_string()),
                })?;
                Mac::cup_ecb_from_wire(wire).ok_or_else(|| {
                    MacFailure::Unavailable("the HSM gave a MAC that is not 8 hex digits".into())
                })
            }
            MacKey::Held(_) => Err(MacFailure::Unusable(format!(
                "the HSM computes the cup-ecb MAC only, not {algorithm}"
            ))),
        }
    }

    /// Whether `wire` (field 64 as received) is the MAC of `data`, compared in constant time.
    pub fn verify(
        &self,
        algorithm: MacAlgorithm,
        data: &[u8],
        wire: &[u8],
    ) -> Result<bool, MacFailure> {
        let mac = self.mac(algorithm, data)?;
        Ok(wire.len() == MAC_BYTES && constant_time_eq(mac.as_bytes(), wire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that is not an HSM: it keeps the key it is given and MACs in software, to
    /// test the host's side of the boundary (the real token is tested in the keystore's
    /// and the CLI's SoftHSM tests).
    struct InProcess;

    impl MacDevice for InProcess {
        fn describe(&self) -> String {
            "in process".into()
        }
        fn provision(&self, clear: &[u8]) -> poskit_keystore::Result<Vec<u8>> {
            Ok(clear.to_vec())
        }
        fn cup_ecb_mac(&self, held: &[u8], data: &[u8]) -> poskit_keystore::Result<[u8; 8]> {
            if held.is_empty() {
                return Err(KeyStoreError::Unavailable("down".into()));
            }
            let key = SecretKey::from_bytes(held).unwrap();
            Ok(*compute_mac(MacAlgorithm::CupEcb, &key, data)
                .unwrap()
                .as_bytes())
        }
    }

    #[test]
    fn a_held_key_macs_through_its_device_and_only_cup_ecb() {
        let device: Arc<dyn MacDevice> = Arc::new(InProcess);
        let clear = SecretKey::from_hex("0123456789ABCDEF0000000000000000").unwrap();
        let used = MacKey::Clear(clear.clone()).as_used(MakRule::default());
        let held = MacKey::Held(HeldMac::new(
            device.clone(),
            used.clear().unwrap().dangerous_expose().to_vec(),
        ));
        let data = b"0200 request bytes";
        let want = used.mac(MacAlgorithm::CupEcb, data).unwrap();
        assert_eq!(held.mac(MacAlgorithm::CupEcb, data).unwrap(), want);
        assert!(
            held.verify(MacAlgorithm::CupEcb, data, want.as_bytes())
                .unwrap()
        );
        assert!(
            !held
                .verify(MacAlgorithm::CupEcb, data, b"00000000")
                .unwrap()
        );
        assert!(matches!(
            held.mac(MacAlgorithm::X919, data),
            Err(MacFailure::Unusable(_))
        ));
        assert_eq!(held.as_used(MakRule::AsDelivered), held);
        assert_ne!(held, used);
        assert!(format!("{held:?} {used:?}").contains("Clear(..)"));
    }

    #[test]
    fn a_device_that_is_down_is_unavailable_not_a_bad_mac() {
        let device: Arc<dyn MacDevice> = Arc::new(InProcess);
        let mut h = HeldMac::new(device, vec![1]);
        h.held = Arc::from(Vec::new());
        let e = MacKey::Held(h).verify(MacAlgorithm::CupEcb, b"x", b"00000000");
        assert!(matches!(e, Err(MacFailure::Unavailable(_))), "{e:?}");
    }
}
