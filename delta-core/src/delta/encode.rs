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

/// Writes commands to a sink, merging adjacent copies, and counts what went out.
pub(crate) struct CommandWriter<'w> {
    out: &'w mut dyn Write,
    buf: Vec<u8>,
    pending_copy: Option<(u64, u64)>,
    pub(crate) written: u64,
    pub(crate) literal_bytes: u64,
    pub(crate) copied_bytes: u64,
    pub(crate) commands: u64,
}

impl<'w> CommandWriter<'w> {
    pub(crate) fn new(out: &'w mut dyn Write) -> Self {
        Self {
            out,
            buf: Vec::with_capacity(256 << 10),
            pending_copy: None,
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

    pub(crate) fn copy(&mut self, start: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.copied_bytes += len;
        match &mut self.pending_copy {
            Some((s, l)) if *s + *l == start => *l += len,
            _ => {
                self.flush_copy();
                self.pending_copy = Some((start, len));
            }
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
            Ok(())
        } else {
            self.buf.extend_from_slice(data);
            self.spill()
        }
    }

    /// Ends the command stream and writes `trailer` after `END`.
    pub(crate) fn finish(mut self, trailer: &[u8]) -> io::Result<u64> {
        self.flush_copy();
        self.buf.push(OP_END);
        self.buf.extend_from_slice(trailer);
        self.drain()?;
        self.out.flush()?;
        Ok(self.written)
    }

    fn flush_copy(&mut self) {
        if let Some((s, l)) = self.pending_copy.take() {
            self.commands += 1;
            copy_command(&mut self.buf, s, l);
        }
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

    #[test]
    fn adjacent_copies_merge() {
        let mut out = Vec::new();
        let mut w = CommandWriter::new(&mut out);
        w.copy(10, 5).unwrap();
        w.copy(15, 5).unwrap();
        w.copy(40, 1).unwrap();
        w.literal(b"x").unwrap();
        w.finish(&[]).unwrap();
        assert_eq!(out, [0x45, 10, 10, 0x45, 40, 1, 0x01, b'x', 0x00]);
    }
}
