//! `poskit keys`: the key-encryption key of a host's data directory or a terminal's journal
//! — make one, see what is wrapped under which, rotate it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use poskit_host::DataDir;
use poskit_host::store::atrest;
use poskit_keystore::{KekSource, KeyStore, LocalKek, Pkcs11Store};
use poskit_terminal::journal::Journal;

use crate::fail::usage;
use crate::kek_args::KekArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeysCommand,
}

/// Whose keys: a host's data directory or a terminal's directory.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct Target {
    /// A host's data directory.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// A terminal's directory (`poskit pos --terminal DIR`).
    #[arg(long, value_name = "DIR")]
    terminal: Option<PathBuf>,
}

impl Target {
    fn dir(&self) -> &Path {
        match (&self.data, &self.terminal) {
            (Some(d), _) | (None, Some(d)) => d,
            (None, None) => unreachable!("clap requires one"),
        }
    }
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Make a new key-encryption key: a 0600 file (--kek-file, else DIR/kek of --data or
    /// --terminal), or a non-extractable key in a PKCS#11 token (--pkcs11-module).
    Init {
        /// Make DIR/kek for this host data directory.
        #[arg(long, value_name = "DIR", conflicts_with = "terminal")]
        data: Option<PathBuf>,
        /// Make DIR/kek for this terminal directory.
        #[arg(long, value_name = "DIR")]
        terminal: Option<PathBuf>,
        #[command(flatten)]
        kek: KekArgs,
    },
    /// Which key-encryption key the keys are wrapped under, whether the one given opens
    /// them, and what is wrapped.
    Status {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        kek: KekArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Re-wrap every key under a new key-encryption key, in one transaction. A data
    /// directory's own `kek` is replaced in place; a KEK kept elsewhere needs
    /// --new-kek-file (a new file) or --new-pkcs11-key (a new key in the same token).
    /// The host or terminal must be stopped.
    Rotate {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        kek: KekArgs,
        /// Write the new key-encryption key to this new file (0600).
        #[arg(long, value_name = "FILE", conflicts_with = "new_pkcs11_key")]
        new_kek_file: Option<PathBuf>,
        /// Generate the new key-encryption key in the token under this label.
        #[arg(long, value_name = "LABEL")]
        new_pkcs11_key: Option<String>,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        KeysCommand::Init {
            data,
            terminal,
            kek,
        } => init(data.or(terminal), &kek),
        KeysCommand::Status { target, kek, json } => status(&target, &kek, json),
        KeysCommand::Rotate {
            target,
            kek,
            new_kek_file,
            new_pkcs11_key,
        } => rotate(&target, &kek, new_kek_file, new_pkcs11_key),
    }
}

fn init(dir: Option<PathBuf>, kek: &KekArgs) -> anyhow::Result<ExitCode> {
    let dir = match (&dir, &kek.kek_file, &kek.pkcs11_module) {
        (Some(d), _, _) => d.clone(),
        (None, Some(_), _) | (None, None, Some(_)) => PathBuf::from("."),
        (None, None, None) => {
            return Err(usage("give --kek-file FILE, --data DIR or --terminal DIR"));
        }
    };
    let source = kek.source(&dir)?;
    let store: Arc<dyn KeyStore> = match &source {
        KekSource::Pkcs11(config) => Arc::new(Pkcs11Store::create_key(config)?),
        KekSource::Env(_) => return Err(usage("POSKIT_KEK is set: the key is already given")),
        KekSource::File(path) | KekSource::DataDir(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
            }
            let (_, key) = LocalKek::generate("new")?;
            LocalKek::write_new(path, &key).map_err(|e| usage(e.to_string()))?;
            Arc::new(LocalKek::load(path)?)
        }
    };
    outln!(
        "created key-encryption key {} ({})",
        store.kek_id(),
        store.describe()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn status(target: &Target, kek: &KekArgs, json: bool) -> anyhow::Result<ExitCode> {
    let dir = target.dir();
    let source = kek.source(dir)?;
    let given = poskit_keystore::open(&source, false).map(|o| o.store);
    let (wrapped_under, detail) = match &target.data {
        Some(data) => {
            let conn = crate::cmd::host::existing_data_dir(data)?.open_store()?;
            let s = atrest::status(&conn)?;
            let detail = json!({
                "terminal_keys_wrapped": s.terminal_keys_wrapped,
                "terminal_keys_clear": s.terminal_keys_clear,
                "terminal_maks_in_hsm": s.terminal_maks_in_hsm,
                "cards_encrypted": s.cards_encrypted,
                "rotated_ms": s.rotated_ms,
            });
            (s.kek_id, detail)
        }
        None => {
            let store = given.as_ref().map_err(|e| usage(e.to_string()))?;
            let journal = Journal::open(dir, &source).map_err(|e| usage(e.to_string()))?;
            (
                Some(journal.kek_id().to_string()),
                json!({"journal": true, "kek_matches": journal.kek_id() == store.kek_id()}),
            )
        }
    };
    let (given_id, given_from, error) = match &given {
        Ok(store) => (
            Some(store.kek_id().to_string()),
            Some(store.describe()),
            None,
        ),
        Err(e) => (None, None, Some(e.to_string())),
    };
    let opens = given_id.is_some() && given_id == wrapped_under;
    if json {
        outln!(
            "{}",
            json!({"wrapped_under": wrapped_under, "given": given_id, "from": given_from,
                   "opens": opens, "error": error, "detail": detail})
        )?;
    } else {
        outln!(
            "wrapped under:  {}",
            wrapped_under.as_deref().unwrap_or("(nothing wrapped yet)")
        )?;
        match (&given_id, &given_from) {
            (Some(id), Some(from)) => outln!("key given:      {id} ({from})")?,
            _ => outln!("key given:      none: {}", error.as_deref().unwrap_or(""))?,
        }
        outln!("opens the keys: {}", if opens { "yes" } else { "no" })?;
        outln!("{}", serde_json::to_string_pretty(&detail)?)?;
    }
    Ok(if opens || wrapped_under.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::fail::EXIT_INPUT)
    })
}

/// The new KEK of a rotation, and the `kek.new` → `kek` move that ends it (a data
/// directory's own KEK is replaced in place).
type NewKek = (Arc<dyn KeyStore>, Option<(PathBuf, PathBuf)>);

fn new_kek(
    source: &KekSource,
    file: Option<PathBuf>,
    label: Option<String>,
) -> anyhow::Result<NewKek> {
    let local = |path: &Path| -> anyhow::Result<Arc<dyn KeyStore>> {
        let (_, key) = LocalKek::generate("new")?;
        LocalKek::write_new(path, &key).map_err(|e| usage(e.to_string()))?;
        Ok(Arc::new(LocalKek::load(path)?))
    };
    match (source, file, label) {
        (_, Some(file), _) => Ok((local(&file)?, None)),
        (KekSource::Pkcs11(config), None, Some(label)) => Ok((
            Arc::new(Pkcs11Store::generate_rotated(config, &label)?),
            None,
        )),
        (KekSource::DataDir(path), None, None) => {
            let pending = poskit_keystore::source::pending_file(path);
            if pending.exists() {
                return Err(usage(format!(
                    "{} is there: a rotation stopped half-way; start the host or terminal once (it completes it) or remove the file",
                    pending.display()
                )));
            }
            Ok((local(&pending)?, Some((pending, path.clone()))))
        }
        _ => Err(usage(
            "give --new-kek-file FILE (or --new-pkcs11-key LABEL for a key in a token)",
        )),
    }
}

fn rotate(
    target: &Target,
    kek: &KekArgs,
    file: Option<PathBuf>,
    label: Option<String>,
) -> anyhow::Result<ExitCode> {
    let dir = target.dir();
    let source = kek.source(dir)?;
    let old = poskit_keystore::open(&source, false)
        .map_err(|e| usage(e.to_string()))?
        .store;
    // The host or terminal stopped first: it keeps keys unwrapped under the old KEK.
    let (lock, journal) = match &target.data {
        Some(data) => {
            let dir = crate::cmd::host::existing_data_dir(data)?;
            (Some(dir.lock_host()?), None)
        }
        None => (
            None,
            Some(Journal::open(dir, &source).map_err(|e| usage(e.to_string()))?),
        ),
    };
    let (new, replace) = new_kek(&source, file, label)?;
    let moved = rewrap_all(target, journal.as_ref(), old.as_ref(), new.as_ref());
    if moved.is_err()
        && let Some((pending, _)) = &replace
    {
        let _ = std::fs::remove_file(pending);
    }
    let moved = moved?;
    if let Some((pending, path)) = replace {
        std::fs::rename(&pending, &path)
            .with_context(|| format!("{} → {}", pending.display(), path.display()))?;
    }
    drop((lock, journal));
    outln!(
        "rotated: {moved} keys re-wrapped from key-encryption key {} to {} ({})",
        old.kek_id(),
        new.kek_id(),
        new.describe()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Every key of the target re-wrapped from `old` to `new`, in one transaction.
fn rewrap_all(
    target: &Target,
    journal: Option<&Journal>,
    old: &dyn KeyStore,
    new: &dyn KeyStore,
) -> anyhow::Result<usize> {
    Ok(match (&target.data, journal) {
        (Some(data), _) => {
            let conn = DataDir::existing(data).open_store()?;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            atrest::rotate(&conn, old, new, now_ms)?
        }
        (None, Some(journal)) => journal.rotate_kek(new)?,
        (None, None) => unreachable!("a journal is open when no data directory is given"),
    })
}
