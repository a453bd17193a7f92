//! The fast path for reconciliation: the matching keys of every transaction of an ACOMN
//! or ACOMA file, read in place (no allocation per record), after the same whole-record
//! checks as the typed parser, and in parallel over chunks cut at line ends.

use std::io::Read;
use std::path::Path;

use crate::error::ParseError;
use crate::kind::ClearingDate;
use crate::profile::{Key, Profile};
use crate::reader::{RawRecord, RecordReader, split_at_lines};

/// The fields reconciliation matches and classifies on, borrowed from the input. Strings
/// are without their padding; `raw` gives any other field.
#[derive(Debug, Clone, Copy)]
pub struct KeyView<'a> {
    /// Acquiring institution id (the first part of the CUP key).
    pub acquirer_inst: &'a str,
    pub stan: u32,
    /// `MMDDhhmmss`.
    pub transmission_time: &'a str,
    pub amount_fen: u64,
    pub pan_masked: &'a str,
    pub mti: &'a str,
    pub processing_code: &'a str,
    pub tid: &'a str,
    pub mid: &'a str,
    pub rrn: &'a str,
    pub auth_code: &'a str,
    pub response_code: &'a str,
    /// ACOMA 37 (false in ACOMN).
    pub reversal: bool,
    /// ACOMA 38 (false in ACOMN).
    pub voided: bool,
    pub original_stan: Option<u32>,
    /// `MMDDhhmmss`, `None` when zeros.
    pub original_time: Option<&'a str>,
    pub raw: RawRecord<'a>,
}

impl<'a> KeyView<'a> {
    /// The keys of a checked transaction record.
    pub fn of(raw: RawRecord<'a>) -> KeyView<'a> {
        let original_time = raw.key_str(Key::OriginalTime);
        let original_stan = raw.key_u64(Key::OriginalStan);
        KeyView {
            acquirer_inst: raw.key_str(Key::AcquirerInst),
            stan: raw.key_u64(Key::Stan) as u32,
            transmission_time: raw.key_str(Key::TransmissionTime),
            amount_fen: raw.key_u64(Key::AmountFen),
            pan_masked: raw.key_str(Key::PanMasked),
            mti: raw.key_str(Key::Mti),
            processing_code: raw.key_str(Key::ProcessingCode),
            tid: raw.key_str(Key::Tid),
            mid: raw.key_str(Key::Mid),
            rrn: raw.key_str(Key::Rrn),
            auth_code: raw.key_str(Key::AuthCode),
            response_code: raw.key_str(Key::ResponseCode),
            reversal: raw.key_flag(Key::ReversalFlag),
            voided: raw.key_flag(Key::VoidFlag),
            original_stan: (original_stan != 0).then_some(original_stan as u32),
            original_time: (!original_time.bytes().all(|b| b == b'0')).then_some(original_time),
            raw,
        }
    }

    /// The record's line (in its chunk, from the chunk's first line).
    pub fn line(&self) -> u64 {
        self.raw.line()
    }
}

/// Calls `each` with the keys of every record of `bytes` (a whole file or a chunk starting
/// at a line start, its lines numbered from `first_line`); returns the number of records.
/// The first bad line stops it with its error; records before it have been seen, so a
/// caller that needs all or nothing discards what it gathered on an error.
pub fn for_each_txn_key_in_chunk<'a>(
    bytes: &'a [u8],
    profile: &'a Profile,
    date: Option<ClearingDate>,
    first_line: u64,
    mut each: impl FnMut(&KeyView<'a>),
) -> Result<u64, ParseError> {
    for_each_txn_record_in_chunk(bytes, profile, date, first_line, |raw| {
        each(&KeyView::of(raw));
    })
}

/// [`for_each_txn_key_in_chunk`] with the checked records themselves, for a reader that
/// takes a few fields by [`RawRecord::key`] rather than all of [`KeyView`]'s.
pub fn for_each_txn_record_in_chunk<'a>(
    bytes: &'a [u8],
    profile: &'a Profile,
    date: Option<ClearingDate>,
    first_line: u64,
    mut each: impl FnMut(RawRecord<'a>),
) -> Result<u64, ParseError> {
    if !profile.kind().holds_transactions() {
        return Err(ParseError::wrong_records(profile.kind(), "transactions"));
    }
    let mut count = 0;
    for raw in RecordReader::new(bytes, profile, first_line, date) {
        each(raw?);
        count += 1;
    }
    Ok(count)
}

/// [`for_each_txn_key_in_chunk`] over a whole file's bytes.
pub fn for_each_txn_key<'a>(
    bytes: &'a [u8],
    profile: &'a Profile,
    date: Option<ClearingDate>,
    each: impl FnMut(&KeyView<'a>),
) -> Result<u64, ParseError> {
    for_each_txn_key_in_chunk(bytes, profile, date, 1, each)
}

/// Folds the keys of a whole file's records on `threads` threads: the bytes are cut into
/// chunks at line ends, each chunk folded into its own accumulator from `init`, and the
/// accumulators returned in file order. All or nothing: an error is that of the first
/// bad line of the file, with its line number in the file.
pub fn par_fold_txn_keys<'a, A: Send>(
    bytes: &'a [u8],
    profile: &'a Profile,
    date: Option<ClearingDate>,
    threads: usize,
    init: impl Fn() -> A + Sync,
    fold: impl Fn(&mut A, &KeyView<'a>) + Sync,
) -> Result<Vec<A>, ParseError> {
    let chunks = split_at_lines(bytes, threads);
    let results: Vec<Result<(A, u64), ParseError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|&chunk| {
                let (init, fold) = (&init, &fold);
                scope.spawn(move || {
                    let mut acc = init();
                    let count = for_each_txn_key_in_chunk(chunk, profile, date, 1, |key| {
                        fold(&mut acc, key)
                    })?;
                    Ok((acc, count))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut lines_before = 0;
    let mut accs = Vec::with_capacity(results.len());
    for result in results {
        let (acc, count) = result.map_err(|err| err.shift_lines(lines_before))?;
        lines_before += count;
        accs.push(acc);
    }
    Ok(accs)
}

/// What [`for_each_txn_key_in_file`] reads at a time by default: large enough that a read
/// costs little per record (a thousand ACOMA records), small enough that a file of any
/// size is read in bounded memory and that the chunk is still in the processor's cache
/// when the records are checked after the read's copy (a tenth less CPU than 8 MiB).
pub const FILE_CHUNK_BYTES: usize = 1 << 20;

/// [`for_each_txn_key_in_chunk`] over the file at `path`, read in chunks of about
/// `chunk_bytes` cut at line ends (memory stays at one chunk whatever the file's size; a
/// line longer than a chunk grows it). Records and errors carry their line in the file.
/// As for a chunk, the first bad line stops it with its error and the records before it
/// have been seen: a caller that needs all or nothing discards what it gathered.
pub fn for_each_txn_key_in_file(
    path: &Path,
    profile: &Profile,
    date: Option<ClearingDate>,
    chunk_bytes: usize,
    mut each: impl FnMut(&KeyView<'_>),
) -> Result<u64, ParseError> {
    for_each_txn_record_in_file(path, profile, date, chunk_bytes, |raw| {
        each(&KeyView::of(raw));
    })
}

/// [`for_each_txn_key_in_file`] with the checked records themselves (see
/// [`for_each_txn_record_in_chunk`]).
pub fn for_each_txn_record_in_file(
    path: &Path,
    profile: &Profile,
    date: Option<ClearingDate>,
    chunk_bytes: usize,
    mut each: impl FnMut(RawRecord<'_>),
) -> Result<u64, ParseError> {
    let read_error = |source| ParseError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let mut buf = vec![0u8; chunk_bytes.max(profile.record_len() + 2)];
    let (mut filled, mut lines_before) = (0, 0u64);
    loop {
        filled += read_full(&mut file, &mut buf[filled..]).map_err(read_error)?;
        let at_end = filled < buf.len();
        let end = if at_end {
            filled
        } else if let Some(last) = buf.iter().rposition(|&b| b == b'\n') {
            last + 1
        } else {
            // No line end in a full buffer: one line longer than it.
            buf.resize(buf.len() * 2, 0);
            continue;
        };
        lines_before +=
            for_each_txn_record_in_chunk(&buf[..end], profile, date, lines_before + 1, &mut each)?;
        buf.copy_within(end..filled, 0);
        filled -= end;
        if at_end {
            return Ok(lines_before);
        }
    }
}

/// Reads until `buf` is full or the file ends; the bytes read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
