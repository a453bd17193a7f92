//! Where the key-encryption key comes from, and opening it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::{
    KEK_ENV, KEK_FILE, KeyStore, KeyStoreError, LocalKek, Pkcs11Config, Pkcs11Store, Result,
};

/// Where a process finds its KEK, in the order [`KekSource::resolve`] tries them.
pub enum KekSource {
    /// A KEK file named by `--kek-file` or `POSKIT_KEK_FILE`; must exist.
    File(PathBuf),
    /// `POSKIT_KEK`: 64 hex digits.
    Env(Zeroizing<String>),
    /// The data directory's own `kek` file, created (0600) when absent and allowed — the
    /// demo's way; production keeps the KEK elsewhere.
    DataDir(PathBuf),
    /// An AES key inside a PKCS#11 token (an HSM), generated there when absent and allowed.
    Pkcs11(Pkcs11Config),
}

impl std::fmt::Debug for KekSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KekSource::File(p) => write!(f, "File({})", p.display()),
            KekSource::Env(_) => f.write_str("Env(..)"),
            KekSource::DataDir(p) => write!(f, "DataDir({})", p.display()),
            KekSource::Pkcs11(config) => write!(f, "Pkcs11({config:?})"),
        }
    }
}

/// An opened key store, and what opening it created: a KEK file, or a key in the HSM.
#[derive(Debug)]
pub struct Opened {
    pub store: Arc<dyn KeyStore>,
    pub created: Option<PathBuf>,
    /// A new KEK was generated inside the PKCS#11 token (the caller may say so).
    pub created_hsm_key: bool,
}

impl Opened {
    fn existing(store: Arc<dyn KeyStore>) -> Opened {
        Opened {
            store,
            created: None,
            created_hsm_key: false,
        }
    }
}

impl KekSource {
    /// The explicit file when given (or `POSKIT_KEK_FILE`), else `POSKIT_KEK` when set, else
    /// `data_dir/kek`.
    pub fn resolve(file: Option<PathBuf>, data_dir: &Path) -> KekSource {
        let from_env = || std::env::var_os(crate::KEK_FILE_ENV).filter(|f| !f.is_empty());
        if let Some(file) = file.or_else(|| from_env().map(PathBuf::from)) {
            return KekSource::File(file);
        }
        match std::env::var(KEK_ENV) {
            Ok(hex) if !hex.trim().is_empty() => KekSource::Env(Zeroizing::new(hex)),
            _ => KekSource::DataDir(data_dir.join(KEK_FILE)),
        }
    }

    /// The data directory's KEK file, when that is the source.
    pub fn data_dir_file(&self) -> Option<&Path> {
        match self {
            KekSource::DataDir(p) => Some(p),
            _ => None,
        }
    }
}

/// Opens the KEK of `source`. A data-directory KEK that does not exist is created when
/// `create` is true (a new data directory), and is an error otherwise.
pub fn open(source: &KekSource, create: bool) -> Result<Opened> {
    match source {
        KekSource::File(path) => Ok(Opened::existing(Arc::new(LocalKek::load(path)?))),
        KekSource::Env(hex) => Ok(Opened::existing(Arc::new(LocalKek::from_hex(
            hex,
            format!("environment variable {KEK_ENV}"),
        )?))),
        KekSource::DataDir(path) if path.exists() => {
            Ok(Opened::existing(Arc::new(LocalKek::load(path)?)))
        }
        KekSource::DataDir(path) if create => {
            let (_, key) = LocalKek::generate("new")?;
            LocalKek::write_new(path, &key)?;
            Ok(Opened {
                store: Arc::new(LocalKek::load(path)?),
                created: Some(path.clone()),
                created_hsm_key: false,
            })
        }
        KekSource::DataDir(path) => Err(KeyStoreError::Config(format!(
            "no key-encryption key: {} does not exist (give --kek-file, POSKIT_KEK_FILE or {KEK_ENV})",
            path.display()
        ))),
        KekSource::Pkcs11(config) => open_pkcs11(config, create),
    }
}

/// The token's KEK; generated there when absent and `create` is true. Prints nothing.
fn open_pkcs11(config: &Pkcs11Config, create: bool) -> Result<Opened> {
    if let Some(store) = Pkcs11Store::open_if_present(config)? {
        return Ok(Opened::existing(Arc::new(store)));
    }
    if !create {
        return Err(crate::pkcs11::no_key(config));
    }
    Ok(Opened {
        store: Arc::new(Pkcs11Store::create_key(config)?),
        created: None,
        created_hsm_key: true,
    })
}

/// Where a rotation of a data directory's own KEK writes the new key before the data is
/// re-wrapped under it (`kek.new` beside `kek`).
pub fn pending_file(path: &Path) -> PathBuf {
    path.with_extension("new")
}

/// Completes a rotation of a data directory's own KEK that stopped after the data was
/// re-wrapped and before `kek.new` replaced `kek`: when `kek.new` is the KEK the data is
/// wrapped under (`wrapped_under`), it becomes `kek`. True when it did.
pub fn finish_rotation(source: &KekSource, wrapped_under: crate::KekId) -> Result<bool> {
    let KekSource::DataDir(path) = source else {
        return Ok(false);
    };
    let pending = pending_file(path);
    if !pending.exists() {
        return Ok(false);
    }
    let new = LocalKek::load(&pending)?;
    if new.kek_id() != wrapped_under {
        return Ok(false);
    }
    std::fs::rename(&pending, path).map_err(|e| {
        KeyStoreError::Config(format!(
            "cannot move {} to {}: {e}",
            pending.display(),
            path.display()
        ))
    })?;
    Ok(true)
}
