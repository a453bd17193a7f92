//! The volatile image of one file: what the OS page cache holds over the durable bytes on
//! disk. Pure Rust, no FFI; the durable file is reached through [`Disk`].
//!
//! Invariants (checked by `debug_assert`s and the unit tests below):
//! - `low <= durable_len` and `low <= size`;
//! - the durable bytes at offsets `>= low` are not visible (a truncation not yet synced cut
//!   them off; what is visible there is a chunk or zeros);
//! - every chunk starts below `size`, and a chunk's bytes at offsets `>= size` are zero (so
//!   a later extension reads zeros there, as it would on a real file).

use std::collections::BTreeMap;
use std::ffi::c_int;

/// The unit in which unsynced data is kept (and, in [`Overlay::unsynced_bytes`], counted).
pub(crate) const CHUNK: u64 = 4096;
const CHUNK_BYTES: usize = CHUNK as usize;

/// The durable file under an overlay. Errors are SQLite result codes.
pub(crate) trait Disk {
    /// Reads `buf.len()` bytes at `offset`; bytes past the end of the file read as zeros.
    fn read(&mut self, buf: &mut [u8], offset: u64) -> Result<(), c_int>;
    fn write(&mut self, buf: &[u8], offset: u64) -> Result<(), c_int>;
    /// Sets the file's length (shorter or longer; a longer file reads zeros at its end).
    fn set_len(&mut self, len: u64) -> Result<(), c_int>;
}

#[derive(Debug)]
pub(crate) struct Overlay {
    /// The durable (real) file's length.
    durable_len: u64,
    /// The lowest volatile length since the last sync: durable bytes from here on are gone.
    low: u64,
    /// The volatile length (what `xFileSize` reports).
    size: u64,
    /// Chunks written since the last sync, by index (offset / CHUNK), whole.
    chunks: BTreeMap<u64, Box<[u8]>>,
}

impl Overlay {
    /// A clean overlay over a durable file of `durable_len` bytes.
    pub(crate) fn new(durable_len: u64) -> Self {
        Self {
            durable_len,
            low: durable_len,
            size: durable_len,
            chunks: BTreeMap::new(),
        }
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Nothing to sync: the volatile image is the durable one.
    pub(crate) fn is_clean(&self) -> bool {
        self.chunks.is_empty() && self.low == self.size && self.size == self.durable_len
    }

    /// Bytes a power cut would lose: those of the chunks written since the last sync (up
    /// to the volatile end) plus the durable bytes a pending truncation cut off.
    pub(crate) fn unsynced_bytes(&self) -> u64 {
        let chunked: u64 = self
            .chunks
            .keys()
            .map(|&i| self.size.saturating_sub(i * CHUNK).min(CHUNK))
            .sum();
        chunked + (self.durable_len - self.low)
    }

    /// Reads `buf.len()` bytes at `offset` from the volatile image. Returns `Ok(true)` for a
    /// short read (the part past the volatile end is zero-filled).
    pub(crate) fn read(
        &self,
        disk: &mut dyn Disk,
        buf: &mut [u8],
        offset: u64,
    ) -> Result<bool, c_int> {
        let mut done = 0;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (index, within) = (pos / CHUNK, (pos % CHUNK) as usize);
            let n = (CHUNK_BYTES - within).min(buf.len() - done);
            let out = &mut buf[done..done + n];
            match self.chunks.get(&index) {
                Some(chunk) => out.copy_from_slice(&chunk[within..within + n]),
                None => self.read_durable(disk, out, pos)?,
            }
            done += n;
        }
        let end = offset + buf.len() as u64;
        if end <= self.size {
            return Ok(false);
        }
        let valid = self.size.saturating_sub(offset) as usize;
        buf[valid..].fill(0);
        Ok(true)
    }

    /// Writes `data` at `offset` into the volatile image (the durable file is untouched).
    pub(crate) fn write(
        &mut self,
        disk: &mut dyn Disk,
        data: &[u8],
        offset: u64,
    ) -> Result<(), c_int> {
        let mut done = 0;
        while done < data.len() {
            let pos = offset + done as u64;
            let (index, within) = (pos / CHUNK, (pos % CHUNK) as usize);
            let n = (CHUNK_BYTES - within).min(data.len() - done);
            if !self.chunks.contains_key(&index) {
                let chunk = self.load_chunk(disk, index)?;
                self.chunks.insert(index, chunk);
            }
            if let Some(chunk) = self.chunks.get_mut(&index) {
                chunk[within..within + n].copy_from_slice(&data[done..done + n]);
            }
            done += n;
        }
        self.size = self.size.max(offset + data.len() as u64);
        self.check();
        Ok(())
    }

    /// Sets the volatile length (the durable file is untouched).
    pub(crate) fn truncate(&mut self, len: u64) {
        if len < self.size {
            // Drop the chunks wholly past the end, zero the tail of the one across it.
            drop(self.chunks.split_off(&len.div_ceil(CHUNK)));
            let within = (len % CHUNK) as usize;
            if within != 0
                && let Some(chunk) = self.chunks.get_mut(&(len / CHUNK))
            {
                chunk[within..].fill(0);
            }
            self.low = self.low.min(len);
        }
        self.size = len;
        self.check();
    }

    /// Makes the volatile image durable: applies a pending truncation, writes the chunks,
    /// sets the length, and forgets the chunks. On an error the chunks are kept (the
    /// durable file may then hold part of them, as after a failed fsync).
    pub(crate) fn sync(&mut self, disk: &mut dyn Disk) -> Result<(), c_int> {
        if self.is_clean() {
            return Ok(());
        }
        if self.low < self.durable_len {
            disk.set_len(self.low)?;
            self.durable_len = self.low;
        }
        for (&index, chunk) in &self.chunks {
            let start = index * CHUNK;
            let n = self.size.saturating_sub(start).min(CHUNK) as usize;
            disk.write(&chunk[..n], start)?;
        }
        disk.set_len(self.size)?;
        self.durable_len = self.size;
        self.low = self.size;
        self.chunks.clear();
        self.check();
        Ok(())
    }

    /// A whole chunk as the volatile image shows it before any chunk of it was written:
    /// durable bytes below `low`, zeros from there on.
    fn load_chunk(&self, disk: &mut dyn Disk, index: u64) -> Result<Box<[u8]>, c_int> {
        let mut chunk = vec![0u8; CHUNK_BYTES].into_boxed_slice();
        self.read_durable(disk, &mut chunk, index * CHUNK)?;
        Ok(chunk)
    }

    /// The durable bytes still visible at `pos` (those below `low`), zeros past them.
    fn read_durable(&self, disk: &mut dyn Disk, out: &mut [u8], pos: u64) -> Result<(), c_int> {
        let visible = (self.low.saturating_sub(pos)).min(out.len() as u64) as usize;
        if visible > 0 {
            disk.read(&mut out[..visible], pos)?;
        }
        out[visible..].fill(0);
        Ok(())
    }

    fn check(&self) {
        debug_assert!(self.low <= self.durable_len && self.low <= self.size);
        debug_assert!(
            self.chunks
                .keys()
                .next_back()
                .is_none_or(|&i| i * CHUNK < self.size)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A durable file in memory.
    #[derive(Default)]
    struct Mem(Vec<u8>);

    impl Disk for Mem {
        fn read(&mut self, buf: &mut [u8], offset: u64) -> Result<(), c_int> {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = self.0.get(offset as usize + i).copied().unwrap_or(0);
            }
            Ok(())
        }
        fn write(&mut self, buf: &[u8], offset: u64) -> Result<(), c_int> {
            let end = offset as usize + buf.len();
            if self.0.len() < end {
                self.0.resize(end, 0);
            }
            self.0[offset as usize..end].copy_from_slice(buf);
            Ok(())
        }
        fn set_len(&mut self, len: u64) -> Result<(), c_int> {
            self.0.resize(len as usize, 0);
            Ok(())
        }
    }

    fn image(o: &Overlay, disk: &mut Mem) -> Vec<u8> {
        let mut buf = vec![0xAA; o.size() as usize];
        assert!(!o.read(disk, &mut buf, 0).unwrap());
        buf
    }

    /// A model file (a Vec) and the overlay agree after every step, and after a sync the
    /// durable file equals the model.
    #[test]
    fn overlay_matches_a_plain_file() {
        let mut disk = Mem((0..10_000u32).map(|i| i as u8).collect());
        let mut model = disk.0.clone();
        let mut o = Overlay::new(disk.0.len() as u64);
        let mut seed = 7u64;
        for step in 0..2000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = seed >> 33;
            match r % 7 {
                0 => {
                    let len = (r / 7) % 20_000;
                    o.truncate(len);
                    model.resize(len as usize, 0);
                }
                1 => {
                    o.sync(&mut disk).unwrap();
                    assert_eq!(disk.0, model);
                    assert!(o.is_clean());
                }
                _ => {
                    let off = (r / 7) % 20_000;
                    let len = (r / 7 / 20_000) % 9000;
                    let data: Vec<u8> = (0..len).map(|i| (i as u8) ^ (step as u8)).collect();
                    o.write(&mut disk, &data, off).unwrap();
                    let end = (off + len) as usize;
                    if model.len() < end {
                        model.resize(end, 0);
                    }
                    model[off as usize..end].copy_from_slice(&data);
                }
            }
            assert_eq!(o.size(), model.len() as u64);
            assert_eq!(image(&o, &mut disk), model, "step {step}");
        }
    }

    #[test]
    fn a_read_past_the_end_is_short_and_zero_filled() {
        let mut disk = Mem(vec![1; 100]);
        let mut o = Overlay::new(100);
        o.truncate(50);
        let mut buf = [9u8; 80];
        assert!(o.read(&mut disk, &mut buf, 20).unwrap());
        assert!(buf[..30].iter().all(|&b| b == 1));
        assert!(buf[30..].iter().all(|&b| b == 0));
        assert_eq!(o.unsynced_bytes(), 50);
        // Until synced, the durable file keeps its bytes.
        assert_eq!(disk.0, vec![1; 100]);
    }
}
