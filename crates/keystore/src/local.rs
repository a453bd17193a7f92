//! A key-encryption key held in memory, read from a 0600 file or the environment.

use std::fmt;
use std::io::Write;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::envelope::{self, KekId, SoftAead};
use crate::{KEY_BYTES, KeyStore, KeyStoreError, Result, random};

/// A local key-encryption key. Never printed; zeroized on drop.
pub struct LocalKek {
    aead: SoftAead,
    id: KekId,
    source: String,
}

impl fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalKek({}, {})", self.source, self.id)
    }
}

/// The id of a local KEK: the first 8 bytes of HMAC-SHA-256 under it of a fixed label.
pub fn id_of(key: &[u8; KEY_BYTES]) -> KekId {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(b"poskit key-encryption key id");
    let out = mac.finalize().into_bytes();
    let mut id = [0u8; 8];
    id.copy_from_slice(&out[..8]);
    KekId(id)
}

impl LocalKek {
    /// A KEK from its bytes; `source` says where it came from (for messages).
    pub fn from_bytes(key: &[u8; KEY_BYTES], source: impl Into<String>) -> LocalKek {
        LocalKek {
            aead: SoftAead::new(key),
            id: id_of(key),
            source: source.into(),
        }
    }

    /// A KEK from 64 hex digits (the `POSKIT_KEK` form; surrounding white space ignored).
    pub fn from_hex(text: &str, source: impl Into<String>) -> Result<LocalKek> {
        let source = source.into();
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        hex::decode_to_slice(text.trim(), &mut key[..]).map_err(|_| {
            KeyStoreError::Config(format!(
                "{source}: a key-encryption key is {} hex digits",
                KEY_BYTES * 2
            ))
        })?;
        Ok(LocalKek::from_bytes(&key, source))
    }

    /// A fresh random KEK.
    pub fn generate(source: impl Into<String>) -> Result<(LocalKek, Zeroizing<[u8; KEY_BYTES]>)> {
        let key = random::<KEY_BYTES>()?;
        Ok((LocalKek::from_bytes(&key, source), key))
    }

    /// Reads a KEK file: 64 hex digits (a trailing newline allowed). The file must not be
    /// readable by group or others, as ssh treats a private key.
    pub fn load(path: &Path) -> Result<LocalKek> {
        let shown = path.display().to_string();
        check_private(path)?;
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| KeyStoreError::Config(format!("cannot read {shown}: {e}")))?,
        );
        LocalKek::from_hex(&text, format!("key file {shown}"))
    }

    /// Writes `key` as a new file at `path` (hex, mode 0600, synced), refusing to replace
    /// one that exists.
    pub fn write_new(path: &Path, key: &[u8; KEY_BYTES]) -> Result<()> {
        let shown = path.display().to_string();
        let fail = |e: std::io::Error| KeyStoreError::Config(format!("cannot write {shown}: {e}"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(fail)?;
        let text = Zeroizing::new(format!("{}\n", hex::encode(key)));
        file.write_all(text.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(fail)?;
        }
        Ok(())
    }
}

/// Refuses a key file that group or others may read.
fn check_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| KeyStoreError::Config(format!("cannot read {}: {e}", path.display())))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyStoreError::Config(format!(
                "{} is readable by others (mode {mode:o}): chmod 600 it",
                path.display()
            )));
        }
    }
    Ok(())
}

impl KeyStore for LocalKek {
    fn describe(&self) -> String {
        self.source.clone()
    }

    fn kek_id(&self) -> KekId {
        self.id
    }

    fn wrap(&self, context: &str, clear: &[u8]) -> Result<Vec<u8>> {
        let (nonce, sealed) = self.aead.seal(context.as_bytes(), clear)?;
        Ok(envelope::build(self.id, &nonce, &sealed))
    }

    fn unwrap(&self, context: &str, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let parts = envelope::parse(context, wrapped)?;
        parts.kek_id.must_be(self.id)?;
        self.aead
            .open(context, context.as_bytes(), &parts.nonce, parts.sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_unwraps_only_under_its_kek_and_for_its_context() {
        let (kek, _) = LocalKek::generate("test").unwrap();
        let blob = kek.wrap("tmk:10100001", b"0123456789abcdef").unwrap();
        assert!(!blob.windows(16).any(|w| w == b"0123456789abcdef"));
        assert_eq!(
            &kek.unwrap("tmk:10100001", &blob).unwrap()[..],
            b"0123456789abcdef"
        );
        assert!(matches!(
            kek.unwrap("tmk:10100002", &blob),
            Err(KeyStoreError::Damaged { .. })
        ));
        let (other, _) = LocalKek::generate("other").unwrap();
        assert!(matches!(
            other.unwrap("tmk:10100001", &blob),
            Err(KeyStoreError::WrongKek { .. })
        ));
        let mut bent = blob.clone();
        *bent.last_mut().unwrap() ^= 1;
        assert!(kek.unwrap("tmk:10100001", &bent).is_err());
        assert!(kek.unwrap("tmk:10100001", &blob[..20]).is_err());
    }

    #[test]
    fn a_key_file_is_written_0600_and_refused_when_others_may_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        let (kek, key) = LocalKek::generate("test").unwrap();
        LocalKek::write_new(&path, &key).unwrap();
        assert!(LocalKek::write_new(&path, &key).is_err(), "never replaced");
        let loaded = LocalKek::load(&path).unwrap();
        assert_eq!(loaded.kek_id(), kek.kek_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = LocalKek::load(&path).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{err}");
        }
        assert!(LocalKek::from_hex("abcd", "env").is_err());
    }
}
