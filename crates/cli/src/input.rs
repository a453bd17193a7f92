//! Reading a command's input (standard input or a file) with a size bound, so that a
//! wrong file or an endless pipe is refused instead of read into memory.

use std::io::{ErrorKind, Read};
use std::path::Path;

use crate::fail::usage;

/// The largest input any command reads: far above a hex frame (16 KiB of hex for the
/// largest 8 KiB frame) or a message's JSON.
pub const INPUT_BYTES_MAX: u64 = 1 << 20;

/// Reads `source`: `-` is standard input, anything else a file path. `what` names the
/// argument in errors (`--hex`, `--file`, `--json`).
pub fn read_text(what: &str, source: &str) -> anyhow::Result<String> {
    let mut text = String::new();
    let read = if source == "-" {
        std::io::stdin()
            .take(INPUT_BYTES_MAX + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(Path::new(source))
            .and_then(|f| f.take(INPUT_BYTES_MAX + 1).read_to_string(&mut text))
    };
    read.map_err(|e| usage(format!("{what} {source}: {e}")))?;
    if text.len() as u64 > INPUT_BYTES_MAX {
        return Err(usage(format!(
            "{what} {source}: larger than {INPUT_BYTES_MAX} bytes"
        )));
    }
    Ok(text)
}

/// Creates the directory an argument names, with its parents, when missing. A file where
/// the directory or one of its parents should be is a bad argument (exit 2); other
/// failures (permissions, a full disk) are exit 1. Either names the argument once.
pub fn create_dir(what: &str, path: &Path) -> anyhow::Result<()> {
    let shown = path.display();
    match std::fs::create_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            Err(usage(format!("{what} {shown}: is a file, not a directory")))
        }
        Err(e) if e.kind() == ErrorKind::NotADirectory => Err(usage(format!(
            "{what} {shown}: a file stands where one of its parent directories should be"
        ))),
        Err(e) => Err(anyhow::Error::new(e).context(format!("{what} {shown}"))),
    }
}
