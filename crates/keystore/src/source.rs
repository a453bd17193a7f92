//! Where the key-encryption key comes from, and opening it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::{KEK_ENV, KEK_FILE, KeyStore, KeyStoreError, LocalKek, Result};

/// Where a process finds its KEK, in the order [`KekSource::resolve`] tries them.
pub enum KekSource {
    /// A KEK file named by `--kek-file` or `POSKIT_KEK_FILE`; must exist.
    File(PathBuf),
    /// `POSKIT_KEK`: 64 hex digits.
    Env(Zeroizing<String>),
    /// The data directory's own `kek` file, created (0600) when absent and allowed — the
    /// demo's way; production keeps the KEK elsewhere.
    DataDir(PathBuf),
}

impl std::fmt::Debug for KekSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KekSource::File(p) => write!(f, "File({})", p.display()),
            KekSource::Env(_) => f.write_str("Env(..)"),
            KekSource::DataDir(p) => write!(f, "DataDir({})", p.display()),
        }
    }
}

/// An opened key store, and the KEK file it created, if it created one.
pub struct Opened {
    pub store: Arc<dyn KeyStore>,
    pub created: Option<PathBuf>,
}

impl KekSource {
    /// The explicit file when given, else `POSKIT_KEK` when set, else `data_dir/kek`.
    pub fn resolve(file: Option<PathBuf>, data_dir: &Path) -> KekSource {
        if let Some(file) = file {
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
        KekSource::File(path) => Ok(Opened {
            store: Arc::new(LocalKek::load(path)?),
            created: None,
        }),
        KekSource::Env(hex) => Ok(Opened {
            store: Arc::new(LocalKek::from_hex(
                hex,
                format!("environment variable {KEK_ENV}"),
            )?),
            created: None,
        }),
        KekSource::DataDir(path) if path.exists() => Ok(Opened {
            store: Arc::new(LocalKek::load(path)?),
            created: None,
        }),
        KekSource::DataDir(path) if create => {
            let (_, key) = LocalKek::generate("new")?;
            LocalKek::write_new(path, &key)?;
            Ok(Opened {
                store: Arc::new(LocalKek::load(path)?),
                created: Some(path.clone()),
            })
        }
        KekSource::DataDir(path) => Err(KeyStoreError::Config(format!(
            "no key-encryption key: {} does not exist (give --kek-file, POSKIT_KEK_FILE or {KEK_ENV})",
            path.display()
        ))),
    }
}
