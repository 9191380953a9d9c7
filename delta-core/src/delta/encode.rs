//! The delta formats on the wire and on disk.
//!
//! **librsync** (`rdiff delta`): magic `0x72730236` (u32 BE), then commands, then `END`.
//! A command is one byte, followed by big-endian parameters:
//!
//! | byte | command | parameters |
//! |---|---|---|
//! | `0x00` | END | – |
//! | `0x01..=0x40` | LITERAL of 1..=64 bytes | the bytes |
//! | `0x41..=0x44` | LITERAL | length in 1, 2, 4 or 8 bytes, then the bytes |
//! | `0x45..=0x54` | COPY | basis offset in 1/2/4/8 bytes, length in 1/2/4/8 bytes: `0x45 + 4·w(offset) + w(length)` |
//! | `0x55..=0xff` | reserved | – |
//!
//! **native** (`deltasync delta` against a native signature): magic `DSdl`, version `1`, a flags
//! byte (0), two zero bytes, the seed (u64 BE), the new file's length (u64 BE), then librsync
//! commands, `END`, and the 16-byte whole-file hash of the new file
//! ([`crate::checksum::strong::FileHasher`]). Patching checks both the length and the hash.

use std::io::{self, Write};

/// librsync delta magic.
pub const RS_DELTA_MAGIC: u32 = 0x7273_0236;
/// Native delta magic, `DSdl`.
pub const NATIVE_DELTA_MAGIC: u32 = u32::from_be_bytes(*b"DSdl");
/// Native delta version written and accepted.
pub const NATIVE_DELTA_VERSION: u8 = 1;
/// Bytes of the native header after the magic.
pub const NATIVE_HEADER_REST: usize = 4 + 8 + 8;

pub(crate) const OP_END: u8 = 0x00;
pub(crate) const OP_LITERAL_N1: u8 = 0x41;
pub(crate) const OP_COPY_N1_N1: u8 = 0x45;
pub(crate) const OP_RESERVED: u8 = 0x55;

/// Index (0..4) of the narrowest of 1, 2, 4, 8 bytes that holds `v`.
fn width_index(v: u64) -> u8 {
    match v {
        0..=0xff => 0,
        0x100..=0xffff => 1,
        0x1_0000..=0xffff_ffff => 2,
        _ => 3,
    }
}

/// Byte width for a width index.
pub(crate) fn width_of(index: u8) -> usize {
    1 << index
}

fn put_be(out: &mut Vec<u8>, v: u64, index: u8) {
    out.extend_from_slice(&v.to_be_bytes()[8 - width_of(index)..]);
}

/// Appends the header of a literal of `len` bytes (the bytes themselves follow).
pub(crate) fn literal_header(out: &mut Vec<u8>, len: u64) {
    debug_assert!(len > 0);
    if len <= 64 {
        out.push(len as u8);
    } else {
        let w = width_index(len);
        out.push(OP_LITERAL_N1 + w);
        put_be(out, len, w);
    }
}

/// Appends a copy command.
pub(crate) fn copy_command(out: &mut Vec<u8>, start: u64, len: u64) {
    let (ws, wl) = (width_index(start), width_index(len));
    out.push(OP_COPY_N1_N1 + 4 * ws + wl);
    put_be(out, start, ws);
    put_be(out, len, wl);
}

/// Default new-file bytes between checkpoints ([`super::DeltaOptions::checkpoint_len`]):
/// whenever the commands written cover another checkpoint's worth of the new file,
/// everything so far goes to the sink and the sink is flushed, so a patcher reading the stream
/// can rebuild those bytes while the rest is still being searched. A copy crossing a checkpoint
/// is split there. The split depends only on the command stream, never on thread counts or
/// batch sizes, so deltas stay reproducible.
pub const CHECKPOINT: u64 = 16 << 20;

/// Writes commands to a sink, merging adjacent copies, and counts what went out.
pub(crate) struct CommandWriter<'w> {
    out: &'w mut dyn Write,
    buf: Vec<u8>,
    pending_copy: Option<(u64, u64)>,
    /// New-file bytes covered by the commands so far, the pending copy included.
    covered: u64,
    /// New-file bytes between checkpoints.
    every: u64,
    pub(crate) written: u64,
    pub(crate) literal_bytes: u64,
    pub(crate) copied_bytes: u64,
    pub(crate) commands: u64,
}

impl<'w> CommandWriter<'w> {
    /// A writer to `out` with a checkpoint every `every` new-file bytes (at least 1).
    pub(crate) fn new(out: &'w mut dyn Write, every: u64) -> Self {
        Self {
            out,
            buf: Vec::with_capacity(256 << 10),
            pending_copy: None,
            covered: 0,
            every: every.max(1),
            written: 0,
            literal_bytes: 0,
            copied_bytes: 0,
            commands: 0,
        }
    }

    /// Raw header bytes.
    pub(crate) fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(bytes);
        self.spill()
    }

    pub(crate) fn copy(&mut self, mut start: u64, mut len: u64) -> io::Result<()> {
        self.copied_bytes += len;
        while len > 0 {
            let take = len.min(self.every - self.covered % self.every);
            match &mut self.pending_copy {
                Some((s, l)) if *s + *l == start => *l += take,
                _ => {
                    self.flush_copy();
                    self.pending_copy = Some((start, take));
                }
            }
            self.covered += take;
            if self.covered.is_multiple_of(self.every) {
                self.flush_copy();
                self.checkpoint()?;
            }
            start += take;
            len -= take;
        }
        Ok(())
    }

    pub(crate) fn literal(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.flush_copy();
        self.literal_bytes += data.len() as u64;
        self.commands += 1;
        literal_header(&mut self.buf, data.len() as u64);
        if data.len() > 64 << 10 {
            self.drain()?;
            self.out.write_all(data)?;
            self.written += data.len() as u64;
        } else {
            self.buf.extend_from_slice(data);
            self.spill()?;
        }
        let before = self.covered;
        self.covered += data.len() as u64;
        if self.covered / self.every != before / self.every {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Ends the command stream and writes `trailer` after `END`, leaving the sink unflushed
    /// (its caller decides: see [`super::delta_file_reusing`]).
    pub(crate) fn finish(mut self, trailer: &[u8]) -> io::Result<u64> {
        self.flush_copy();
        self.buf.push(OP_END);
        self.buf.extend_from_slice(trailer);
        self.drain()?;
        Ok(self.written)
    }

    fn flush_copy(&mut self) {
        if let Some((s, l)) = self.pending_copy.take() {
            self.commands += 1;
            copy_command(&mut self.buf, s, l);
        }
    }

    /// Hands everything written so far to the sink and flushes it.
    fn checkpoint(&mut self) -> io::Result<()> {
        self.drain()?;
        self.out.flush()
    }

    fn spill(&mut self) -> io::Result<()> {
        if self.buf.len() >= 192 << 10 {
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_bytes_follow_librsync() {
        let mut v = Vec::new();
        literal_header(&mut v, 1);
        literal_header(&mut v, 64);
        literal_header(&mut v, 65);
        literal_header(&mut v, 0x1_0000);
        copy_command(&mut v, 0, 1);
        copy_command(&mut v, 0x100, 0x1_0000_0000);
        assert_eq!(
            v,
            [
                0x01,
                0x40,
                0x41,
                65,
                0x43,
                0,
                1,
                0,
                0, //
                0x45,
                0,
                1, //
                0x45 + 4 + 3,
                1,
                0,
                0,
                0,
                0,
                1,
                0,
                0,
                0,
                0
            ]
        );
    }

    /// Records each write, and marks each flush with an empty entry.
    #[derive(Default)]
    struct Flushes(Vec<Vec<u8>>);

    impl Write for Flushes {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.0.push(Vec::new());
            Ok(())
        }
    }

    impl Flushes {
        /// The bytes written before each flush, in order.
        fn flushed(&self) -> Vec<Vec<u8>> {
            let mut all = Vec::new();
            let mut cur = Vec::new();
            for w in &self.0 {
                if w.is_empty() {
                    all.push(std::mem::take(&mut cur));
                } else {
                    cur.extend_from_slice(w);
                }
            }
            all
        }
    }

    #[test]
    fn a_copy_across_a_checkpoint_is_split_there_and_flushed() {
        let mut sink = Flushes::default();
        let mut w = CommandWriter::new(&mut sink, 100);
        w.copy(1000, 60).unwrap();
        w.copy(1060, 90).unwrap(); // merges, then reaches 100 after 40 bytes
        w.copy(5000, 70).unwrap(); // 150..220: crosses 200
        w.finish(&[]).unwrap();
        assert_eq!(
            sink.flushed(),
            [
                // 1000 for 100 bytes reaches 100.
                vec![0x45 + 4, 0x03, 0xe8, 100],
                // 1100 for 50 bytes, then 5000 for 50 bytes reaches 200.
                vec![0x45 + 4, 0x04, 0x4c, 50, 0x45 + 4, 0x13, 0x88, 50],
            ]
        );
        // The rest (5050 for 20 bytes, END) is written but left for the caller to flush.
        assert_eq!(sink.0.concat()[12..], [0x45 + 4, 0x13, 0xba, 20, 0x00]);
    }

    #[test]
    fn literals_reaching_a_checkpoint_flush_without_changing_the_bytes() {
        let mut sink = Flushes::default();
        let mut w = CommandWriter::new(&mut sink, 100);
        w.literal(&[7; 60]).unwrap();
        w.literal(&[8; 60]).unwrap(); // 60..120 passes 100: flush after it
        w.literal(&[9; 10]).unwrap();
        w.finish(&[]).unwrap();
        let mut first = vec![60];
        first.extend([7; 60]);
        first.push(60);
        first.extend([8; 60]);
        assert_eq!(sink.flushed(), [first.clone()]);
        let mut all = first;
        all.push(10);
        all.extend([9; 10]);
        all.push(0x00);
        assert_eq!(sink.0.concat(), all);
    }

    #[test]
    fn adjacent_copies_merge() {
        let mut out = Vec::new();
        let mut w = CommandWriter::new(&mut out, CHECKPOINT);
        w.copy(10, 5).unwrap();
        w.copy(15, 5).unwrap();
        w.copy(40, 1).unwrap();
        w.literal(b"x").unwrap();
        w.finish(&[]).unwrap();
        assert_eq!(out, [0x45, 10, 10, 0x45, 40, 1, 0x01, b'x', 0x00]);
    }
}
