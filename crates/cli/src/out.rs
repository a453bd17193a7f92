//! Standard output for commands. `println!` panics when standard output is closed or
//! full; `outln!` and `out!` take the same arguments and return the error instead, so that
//! a command ends on it (`?`) and `fail::report` says what happened: nothing on a closed
//! pipe, one line and exit 1 on any other write error.

use std::fmt;
use std::io::{self, Write};

/// Writing to standard output failed: the reader closed the pipe, the disk is full, ...
#[derive(Debug)]
pub struct StdoutError(pub io::Error);

impl StdoutError {
    /// The reader went away (`poskit ... | head`): what it wanted, it has.
    pub fn is_closed_pipe(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write to standard output: {}", self.0)
    }
}

impl std::error::Error for StdoutError {}

/// Writes to standard output (line-buffered, as `print!`), returning any error.
pub fn write_fmt(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    io::stdout()
        .lock()
        .write_fmt(args)
        .map_err(|e| anyhow::Error::new(StdoutError(e)))
}

/// Writes out what standard output still holds (text after the last line break).
pub fn flush() -> anyhow::Result<()> {
    io::stdout()
        .lock()
        .flush()
        .map_err(|e| anyhow::Error::new(StdoutError(e)))
}

/// `println!` that returns `anyhow::Result<()>`: use it with `?`.
macro_rules! outln {
    () => {
        $crate::out::write_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that returns `anyhow::Result<()>`: use it with `?`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write_fmt(format_args!($($arg)*))
    };
}
