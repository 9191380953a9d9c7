//! Rebuilding a new file from a basis and a delta, streaming, with bounded memory.
//!
//! # Security
//! The delta is untrusted. Every command's parameters are read in full before use; a copy's
//! `offset + length` is checked against the basis length (with overflow checks) and every
//! command's length against the output limit before any byte is read or written; data moves
//! in pieces of at most [`PIECE`] bytes, so memory does not depend on the lengths the delta
//! claims. A native delta's declared length and whole-file hash are verified at the end. The
//! caller writes the output to a temporary and keeps it only when this returns `Ok`.

use std::io::{self, Read, Write};

use crate::checksum::{FileHasher, FILE_HASH_LEN};
use crate::error::ApplyError;
use crate::input::InputFile;

use super::encode::{
    width_of, NATIVE_DELTA_MAGIC, NATIVE_DELTA_VERSION, NATIVE_HEADER_REST, OP_COPY_N1_N1, OP_END,
    OP_LITERAL_N1, OP_RESERVED, RS_DELTA_MAGIC,
};

/// Largest piece of data moved at once.
pub const PIECE: usize = 1 << 20;

/// The old file a delta refers to.
#[derive(Debug, Clone, Copy)]
pub enum Basis<'a> {
    /// In memory (or mapped).
    Slice(&'a [u8]),
    /// An open file, read with positioned reads.
    File(&'a InputFile),
}

impl Basis<'_> {
    fn len(&self) -> u64 {
        match self {
            Basis::Slice(s) => s.len() as u64,
            Basis::File(f) => f.len(),
        }
    }
}

/// Limits for patching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Refuse to produce more than this many bytes.
    pub max_output: u64,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            max_output: u64::MAX,
        }
    }
}

/// What patching produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyStats {
    /// Bytes written.
    pub output_len: u64,
    /// Of which copied from the basis.
    pub copied_bytes: u64,
    /// Of which literal.
    pub literal_bytes: u64,
    /// Whether a whole-file hash was verified (native deltas).
    pub verified: bool,
}

/// A reader that counts consumed bytes, for error offsets.
struct Counting<'a> {
    inner: &'a mut dyn Read,
    offset: u64,
}

impl Counting<'_> {
    fn exact(&mut self, buf: &mut [u8], context: &'static str) -> Result<(), ApplyError> {
        let n = crate::signature::read_full(self.inner, buf)?;
        self.offset += n as u64;
        if n < buf.len() {
            return Err(ApplyError::Truncated {
                offset: self.offset,
                context,
            });
        }
        Ok(())
    }

    fn uint(&mut self, width: usize, context: &'static str) -> Result<u64, ApplyError> {
        let mut b = [0u8; 8];
        self.exact(&mut b[8 - width..], context)?;
        Ok(u64::from_be_bytes(b))
    }
}

/// Applies `delta` to `basis`, writing the new file to `out`.
pub fn apply(
    basis: Basis<'_>,
    delta: &mut dyn Read,
    out: &mut dyn Write,
    opts: &ApplyOptions,
) -> Result<ApplyStats, ApplyError> {
    let mut r = Counting {
        inner: delta,
        offset: 0,
    };
    let magic = r.uint(4, "magic")? as u32;
    let mut native: Option<(u64, FileHasher)> = None;
    let mut limit = opts.max_output;
    match magic {
        RS_DELTA_MAGIC => {}
        NATIVE_DELTA_MAGIC => {
            let mut h = [0u8; NATIVE_HEADER_REST];
            r.exact(&mut h, "header")?;
            if h[0] != NATIVE_DELTA_VERSION || h[1..4] != [0, 0, 0] {
                return Err(ApplyError::BadHeader {
                    reason: format!("unsupported version {} flags {:?}", h[0], &h[1..4]),
                });
            }
            let seed = u64::from_be_bytes(h[4..12].try_into().expect("8 bytes"));
            let declared = u64::from_be_bytes(h[12..20].try_into().expect("8 bytes"));
            if declared > limit {
                return Err(ApplyError::OutputTooLarge { limit });
            }
            limit = declared;
            native = Some((declared, FileHasher::new(seed)));
        }
        found => return Err(ApplyError::BadMagic { found }),
    }
    let basis_len = basis.len();
    let mut stats = ApplyStats {
        output_len: 0,
        copied_bytes: 0,
        literal_bytes: 0,
        verified: false,
    };
    let mut piece = Vec::new();
    let mut emit = |data: &[u8], native: &mut Option<(u64, FileHasher)>| -> io::Result<()> {
        if let Some((_, h)) = native {
            h.update(data);
        }
        out.write_all(data)
    };
    loop {
        let at = r.offset;
        let mut op = [0u8; 1];
        r.exact(&mut op, "command")?;
        let op = op[0];
        match op {
            OP_END => break,
            1..=0x40 | OP_LITERAL_N1..=0x44 => {
                let len = if op <= 0x40 {
                    u64::from(op)
                } else {
                    r.uint(width_of(op - OP_LITERAL_N1), "literal length")?
                };
                check_room(&stats, len, limit)?;
                let mut left = len;
                while left > 0 {
                    let n = left.min(PIECE as u64) as usize;
                    piece.resize(n, 0);
                    r.exact(&mut piece, "literal data")?;
                    emit(&piece, &mut native)?;
                    left -= n as u64;
                }
                stats.literal_bytes += len;
                stats.output_len += len;
            }
            OP_COPY_N1_N1..OP_RESERVED => {
                let code = op - OP_COPY_N1_N1;
                let start = r.uint(width_of(code / 4), "copy offset")?;
                let len = r.uint(width_of(code % 4), "copy length")?;
                if start.checked_add(len).is_none_or(|end| end > basis_len) {
                    return Err(ApplyError::CopyOutOfBounds {
                        start,
                        len,
                        basis_len,
                    });
                }
                check_room(&stats, len, limit)?;
                match basis {
                    Basis::Slice(s) => {
                        // Whole slices go straight to the writer: no intermediate copy.
                        for chunk in s[start as usize..(start + len) as usize].chunks(8 * PIECE) {
                            emit(chunk, &mut native)?;
                        }
                    }
                    Basis::File(f) => {
                        let mut pos = start;
                        while pos < start + len {
                            let n = (start + len - pos).min(PIECE as u64) as usize;
                            piece.resize(n, 0);
                            if f.read_full_at(&mut piece, pos)? < n {
                                return Err(ApplyError::Io(io::Error::new(
                                    io::ErrorKind::UnexpectedEof,
                                    "basis shrank while patching",
                                )));
                            }
                            emit(&piece, &mut native)?;
                            pos += n as u64;
                        }
                    }
                }
                stats.copied_bytes += len;
                stats.output_len += len;
            }
            opcode => return Err(ApplyError::UnknownCommand { opcode, offset: at }),
        }
    }
    if let Some((declared, hasher)) = native {
        let mut want = [0u8; FILE_HASH_LEN];
        r.exact(&mut want, "whole-file hash")?;
        if stats.output_len != declared {
            return Err(ApplyError::LengthMismatch {
                declared,
                got: stats.output_len,
            });
        }
        if hasher.finish() != want {
            return Err(ApplyError::HashMismatch);
        }
        stats.verified = true;
    }
    let mut extra = [0u8; 1];
    if crate::signature::read_full(r.inner, &mut extra)? > 0 {
        return Err(ApplyError::TrailingData { extra: 1 });
    }
    out.flush()?;
    Ok(stats)
}

fn check_room(stats: &ApplyStats, len: u64, limit: u64) -> Result<(), ApplyError> {
    if stats
        .output_len
        .checked_add(len)
        .is_none_or(|end| end > limit)
    {
        return Err(ApplyError::OutputTooLarge { limit });
    }
    Ok(())
}
