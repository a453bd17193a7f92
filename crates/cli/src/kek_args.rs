//! Where a command finds its key-encryption key: one set of options for `host`, `pos`,
//! `sim`, `keys` and every command that opens a ledger's or a journal's secrets.

use std::path::{Path, PathBuf};

use poskit_keystore::{KekSource, Pkcs11Config};

use crate::fail::usage;

/// The key-encryption key's options. Without any, `POSKIT_KEK` (64 hex digits) is used
/// when set, else the data directory's own `kek` file (created 0600 on first start).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KekArgs {
    /// The key-encryption key file (64 hex digits, mode 0600) [env: POSKIT_KEK_FILE].
    #[arg(long, value_name = "FILE")]
    pub kek_file: Option<PathBuf>,
    /// Keep the key-encryption key in a PKCS#11 token (an HSM) through this module, e.g.
    /// /usr/lib/softhsm/libsofthsm2.so; the user PIN is read from POSKIT_PKCS11_PIN.
    #[arg(long, value_name = "PATH", requires = "pkcs11_token")]
    pub pkcs11_module: Option<PathBuf>,
    /// The PKCS#11 token's label, with --pkcs11-module.
    #[arg(long, value_name = "LABEL", requires = "pkcs11_module")]
    pub pkcs11_token: Option<String>,
    /// The label of the key-encryption key inside the token.
    #[arg(long, value_name = "LABEL", default_value = "poskit-kek")]
    pub pkcs11_key: String,
}

impl KekArgs {
    /// The source these options name for a data directory or terminal directory `dir`.
    pub fn source(&self, dir: &Path) -> anyhow::Result<KekSource> {
        if let (Some(module), Some(token)) = (&self.pkcs11_module, &self.pkcs11_token) {
            if self.kek_file.is_some() {
                return Err(usage("--kek-file and --pkcs11-module: give one of them"));
            }
            let pin = Pkcs11Config::pin_from_env().map_err(|e| usage(e.to_string()))?;
            return Ok(KekSource::Pkcs11(Pkcs11Config {
                module: module.clone(),
                token_label: token.clone(),
                pin,
                key_label: self.pkcs11_key.clone(),
            }));
        }
        Ok(KekSource::resolve(self.kek_file.clone(), dir))
    }
}
