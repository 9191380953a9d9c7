//! Deltas: finding the new file's blocks in the basis, writing the copy/literal commands, and
//! rebuilding the new file from a basis and a delta.
//!
//! - [`index`]: the weak-sum lookup built from a signature;
//! - `search`: the match loop over one range;
//! - `parallel`: ranges on all cores, stitched into one command stream;
//! - [`encode`]: the librsync and native formats, written with a checkpoint every
//!   [`DeltaOptions::checkpoint_len`] bytes of new file (the writer is flushed there, so a
//!   patcher at the other end of a stream rebuilds while the rest is searched);
//! - [`mod@apply`]: streaming, bounded patching.
//!
//! Uses [`crate::checksum`], [`crate::signature`] and [`crate::input`]; does no I/O of its own
//! beyond the readers and writers it is given.

pub mod apply;
pub mod encode;
pub mod index;
mod parallel;
mod search;
#[cfg(test)]
mod tester;

use std::io::{Read, Write};
use std::path::Path;

pub use apply::{apply, ApplyOptions, ApplyStats, Basis};
pub use index::BlockIndex;

use crate::error::DeltaError;
use crate::input::{Access, InputFile};
use crate::signature::Signature;
use parallel::Source;

/// How to compute a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaOptions {
    /// Worker threads; `None` uses the current rayon pool.
    pub threads: Option<usize>,
    /// Bytes of new file searched per task. The delta depends on this (not on `threads`);
    /// it is raised to at least four blocks and rounded up to a multiple of the block length
    /// (of 8 MiB for native deltas, whose whole-file hash is built per 8 MiB).
    pub segment_len: usize,
    /// Most candidate blocks compared per weak-sum hit.
    pub max_candidates: usize,
    /// New-file bytes between checkpoints: at each, the delta so far goes to the writer and
    /// the writer is flushed (a copy crossing one is split there), so a patcher reading the
    /// stream rebuilds the new file while the rest is still searched. Like `segment_len`, the
    /// delta depends on it but not on `threads`. At least 1.
    pub checkpoint_len: u64,
}

impl Default for DeltaOptions {
    fn default() -> Self {
        Self {
            threads: None,
            segment_len: 8 << 20,
            max_candidates: 64,
            checkpoint_len: encode::CHECKPOINT,
        }
    }
}

/// What a delta computation produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaStats {
    /// Length of the new file.
    pub new_len: u64,
    /// New-file bytes sent as literals.
    pub literal_bytes: u64,
    /// New-file bytes found in the basis.
    pub copied_bytes: u64,
    /// Commands written (after merging adjacent copies).
    pub commands: u64,
    /// Bytes of delta written.
    pub delta_len: u64,
    /// The whole-file hash sent in a native delta.
    pub file_hash: Option<[u8; crate::checksum::FILE_HASH_LEN]>,
}

/// Delta of an in-memory new file against `sig`, written to `out`.
pub fn delta_slice(
    sig: &Signature,
    index: &BlockIndex,
    new: &[u8],
    out: &mut dyn Write,
    opts: &DeltaOptions,
) -> Result<DeltaStats, DeltaError> {
    let st = parallel::run(sig, index, Source::Slice(new), out, opts, &mut Vec::new())?;
    out.flush()?;
    Ok(st)
}

/// Delta of an open file. A live file is read with positioned reads in bounded batches; if it
/// shrinks while being read the result is [`DeltaError::SourceTruncated`].
pub fn delta_file(
    sig: &Signature,
    index: &BlockIndex,
    new: &InputFile,
    out: &mut dyn Write,
    opts: &DeltaOptions,
) -> Result<DeltaStats, DeltaError> {
    delta_file_reusing(sig, index, new, out, opts, &mut Vec::new())
}

/// [`delta_file`], reading an unmapped file into `buf` (grown as needed, kept for the next
/// call): a fresh read buffer of a batch's size (tens of MiB) per file costs page faults and
/// zeroing comparable to the search itself, so callers doing many deltas keep one.
pub fn delta_file_reusing(
    sig: &Signature,
    index: &BlockIndex,
    new: &InputFile,
    out: &mut dyn Write,
    opts: &DeltaOptions,
    buf: &mut Vec<u8>,
) -> Result<DeltaStats, DeltaError> {
    let st = delta_file_streamed(sig, index, new, out, opts, buf)?;
    out.flush()?;
    Ok(st)
}

/// [`delta_file_reusing`] without the final flush: `out` is flushed at each checkpoint only
/// (see [`encode`]), so a framing sink can send the delta's tail with the end of its reply.
pub(crate) fn delta_file_streamed(
    sig: &Signature,
    index: &BlockIndex,
    new: &InputFile,
    out: &mut dyn Write,
    opts: &DeltaOptions,
    buf: &mut Vec<u8>,
) -> Result<DeltaStats, DeltaError> {
    match new.as_slice() {
        Some(s) => parallel::run(sig, index, Source::Slice(s), out, opts, buf),
        None => parallel::run(sig, index, Source::File(new), out, opts, buf),
    }
}

/// Delta of the file at `path`, opened as `access` says.
pub fn delta_path(
    sig: &Signature,
    index: &BlockIndex,
    path: &Path,
    access: Access,
    out: &mut dyn Write,
    opts: &DeltaOptions,
) -> Result<DeltaStats, DeltaError> {
    let input = InputFile::open(path, access)?;
    delta_file(sig, index, &input, out, opts)
}

/// Delta of a stream of unknown length (librsync formats only: the native header needs the
/// length first).
pub fn delta_reader(
    sig: &Signature,
    index: &BlockIndex,
    new: &mut dyn Read,
    out: &mut dyn Write,
    opts: &DeltaOptions,
) -> Result<DeltaStats, DeltaError> {
    let st = parallel::run(sig, index, Source::Reader(new), out, opts, &mut Vec::new())?;
    out.flush()?;
    Ok(st)
}
