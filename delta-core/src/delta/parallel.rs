//! Splitting the new file into ranges, searching them on all cores, and stitching the results.
//!
//! Ranges ("segments") have a fixed length that depends only on the options and the block
//! length, never on the thread count, so the delta is byte-identical whatever the
//! parallelism. Each segment's search may overshoot its end by up to one block inside a match;
//! the next segment's operations are then trimmed to start where the previous one stopped
//! (copies can be cut anywhere, since librsync copies are byte ranges). Matches at a boundary
//! are therefore kept, and the delta differs from an unsegmented scan only where the
//! unsegmented scan would have been in a different phase after a boundary.
//!
//! Input is taken in batches of a few segments per thread, so memory is bounded by the batch
//! whatever the file size: slices are used in place, files and streams are read into reused
//! buffers.

use std::io::{Read, Write};

use rayon::prelude::*;

use crate::checksum::strong::{combine_segments, segment_digest};
use crate::checksum::{RabinKarp, Rollsum, WeakKind, FILE_HASH_SEGMENT};
use crate::error::DeltaError;
use crate::input::InputFile;
use crate::signature::Signature;

use super::encode::{CommandWriter, NATIVE_DELTA_MAGIC, NATIVE_DELTA_VERSION, RS_DELTA_MAGIC};
use super::index::BlockIndex;
use super::search::{search_range, Op, SearchParams};
use super::{DeltaOptions, DeltaStats};

/// Where the new file's bytes come from.
pub(crate) enum Source<'a> {
    Slice(&'a [u8]),
    File(&'a InputFile),
    Reader(&'a mut dyn Read),
}

pub(crate) fn run(
    sig: &Signature,
    index: &BlockIndex,
    mut source: Source<'_>,
    out: &mut dyn Write,
    opts: &DeltaOptions,
    buf: &mut Vec<u8>,
) -> Result<DeltaStats, DeltaError> {
    let bl = sig.block_len() as usize;
    let native = sig.format().is_native();
    let seg = segment_len(opts, bl, native);
    let full_blocks = match sig.basis_len() {
        Some(len) => (len / bl as u64) as usize,
        // librsync signatures don't record the basis length: treat every block as full and let
        // the strong hash reject a short last block.
        None => sig.block_count(),
    };
    let last_block = sig.basis_len().and_then(|len| {
        let rem = (len % bl as u64) as usize;
        (rem > 0 && sig.block_count() > 0).then(|| (sig.block_count() - 1, rem))
    });
    let params = SearchParams {
        sig,
        index,
        strong: sig.format().strong(),
        seed: sig.seed(),
        block_len: bl,
        strong_len: sig.strong_len() as usize,
        last_block,
        full_blocks: full_blocks.min(sig.block_count()),
        max_candidates: opts.max_candidates.max(1),
    };
    let expected_len = match &source {
        Source::Slice(s) => Some(s.len() as u64),
        Source::File(f) => Some(f.len()),
        Source::Reader(_) => None,
    };
    // The native header carries the new length, so a stream must be measured first: it is
    // read into memory only in batches, hence native deltas from streams need the length
    // up front and we refuse otherwise.
    if native && expected_len.is_none() {
        return Err(DeltaError::BadOptions {
            reason: "a native delta needs the new file's length; read it from a file".into(),
        });
    }

    let mut w = CommandWriter::new(out, opts.checkpoint_len);
    if native {
        let mut head = Vec::with_capacity(24);
        head.extend_from_slice(&NATIVE_DELTA_MAGIC.to_be_bytes());
        head.extend_from_slice(&[NATIVE_DELTA_VERSION, 0, 0, 0]);
        head.extend_from_slice(&sig.seed().to_be_bytes());
        head.extend_from_slice(&expected_len.unwrap_or(0).to_be_bytes());
        w.raw(&head)?;
    } else {
        w.raw(&RS_DELTA_MAGIC.to_be_bytes())?;
    }

    let threads = opts
        .threads
        .unwrap_or_else(rayon::current_num_threads)
        .max(1);
    let pool = opts.threads.map(crate::signature::pool).transpose()?;
    // One segment per thread per batch: an unmapped file is read into a buffer of one batch,
    // so a smaller batch touches fewer fresh pages (a first delta's page faults cost as much
    // as its search) and keeps less memory.
    let batch_segments = threads;
    let mut cursor = 0u64; // everything before `cursor` is covered by written commands
    let mut digests: Vec<u128> = Vec::new();
    // A file's batches are read into `buf` (only ever grown: a reused buffer is not zeroed
    // again); a stream's start empty.
    if let Source::Reader(_) = source {
        buf.clear();
    }
    let mut base = 0u64; // absolute offset of the batch's first byte
    let mut carry = 0usize; // bytes at the front of `buf` already read (stream overshoot)
    loop {
        // One batch: `data` starts at `base` and holds the batch's segments plus up to one block
        // of overshoot; `eof` when the file ends inside it.
        let want = batch_segments * seg + bl;
        let (data, eof): (&[u8], bool) = match &mut source {
            Source::Slice(s) => {
                let start = base as usize;
                let end = (start + want).min(s.len());
                (&s[start..end], end == s.len())
            }
            Source::File(f) => {
                let len = f.len();
                let n = (want as u64).min(len - base) as usize;
                crate::memory::grow_zeroed(buf, n);
                let batch = &mut buf[..n];
                // Read the batch on all threads: positioned reads of disjoint pieces.
                let f = &**f;
                let read =
                    |(i, piece): (usize, &mut [u8])| f.read_full_at(piece, base + (i * seg) as u64);
                let pieces: Vec<std::io::Result<usize>> = match &pool {
                    Some(p) => {
                        p.install(|| batch.par_chunks_mut(seg).enumerate().map(read).collect())
                    }
                    None => batch.par_chunks_mut(seg).enumerate().map(read).collect(),
                };
                let mut got = 0;
                for r in pieces {
                    got += r?;
                }
                if got < n {
                    return Err(DeltaError::SourceTruncated {
                        expected: len,
                        got: base + got as u64,
                    });
                }
                (&buf[..n], base + n as u64 == len)
            }
            Source::Reader(r) => {
                // Grow the buffer only as data arrives: a small stream costs a small buffer.
                buf.truncate(carry);
                let got = read_to_end_limited(&mut **r, buf, want - carry)?;
                let eof = carry + got < want;
                (&buf[..], eof)
            }
        };
        let body = if eof { data.len() } else { data.len() - bl };
        let ranges: Vec<(usize, usize)> = (0..body.div_ceil(seg))
            .map(|i| (i * seg, ((i + 1) * seg).min(body)))
            .collect();
        let work = |&(s, e): &(usize, usize)| -> (Vec<Op>, Vec<u128>) {
            let last = eof && e == body;
            let window = &data[..(e + bl).min(data.len())];
            let ops = match params.sig.format().weak() {
                WeakKind::RabinKarp => search_range::<RabinKarp>(&params, window, base, s, e, last),
                WeakKind::Rollsum => search_range::<Rollsum>(&params, window, base, s, e, last),
            };
            let hashes = if native {
                data[s..e]
                    .chunks(FILE_HASH_SEGMENT)
                    .map(|c| segment_digest(params.seed, c))
                    .collect()
            } else {
                Vec::new()
            };
            (ops, hashes)
        };
        let results: Vec<(Vec<Op>, Vec<u128>)> = match &pool {
            Some(p) => p.install(|| ranges.par_iter().map(work).collect()),
            None => ranges.par_iter().map(work).collect(),
        };
        for (ops, hashes) in results {
            digests.extend(hashes);
            for op in ops {
                emit_trimmed(&mut w, op, &mut cursor, data, base)?;
            }
        }
        base += body as u64;
        if eof {
            break;
        }
        if let Source::Reader(_) = source {
            buf.copy_within(body.., 0);
            carry = buf.len() - body;
        }
    }
    let new_len = base;
    if let Some(expected) = expected_len {
        debug_assert_eq!(expected, new_len);
    }
    let file_hash = native.then(|| combine_segments(sig.seed(), digests, new_len));
    let (literal_bytes, copied_bytes, commands) = (w.literal_bytes, w.copied_bytes, w.commands);
    let delta_len = w.finish(file_hash.as_ref().map_or(&[][..], |h| &h[..]))?;
    Ok(DeltaStats {
        new_len,
        literal_bytes,
        copied_bytes,
        commands,
        delta_len,
        file_hash,
    })
}

/// Appends up to `limit` bytes of `r` to `buf` (until end of input); returns how many.
fn read_to_end_limited(
    r: &mut dyn Read,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<usize> {
    let before = buf.len();
    r.take(limit as u64).read_to_end(buf)?;
    Ok(buf.len() - before)
}

/// Writes the part of `op` at or after `cursor` and advances `cursor` past it. `data` holds the
/// new file from absolute offset `base`.
fn emit_trimmed(
    w: &mut CommandWriter<'_>,
    op: Op,
    cursor: &mut u64,
    data: &[u8],
    base: u64,
) -> Result<(), DeltaError> {
    let end = op.at() + op.len();
    if end <= *cursor {
        return Ok(());
    }
    let op = if op.at() < *cursor {
        op.skip(*cursor - op.at())
    } else {
        op
    };
    debug_assert_eq!(
        op.at(),
        *cursor,
        "segments must cover the file without gaps"
    );
    match op {
        Op::Copy { start, len, .. } => w.copy(start, len)?,
        Op::Literal { start, len } => {
            let rel = (start - base) as usize;
            w.literal(&data[rel..rel + len as usize])?;
        }
    }
    *cursor = end;
    Ok(())
}

/// Largest segment: batches of segments are held in memory when reading files and streams.
const MAX_SEGMENT: usize = 256 << 20;

/// Segment length: at least four blocks, so overshoot never crosses a whole segment, and for
/// native deltas a multiple of the whole-file hash's segment so each range hashes on its own.
fn segment_len(opts: &DeltaOptions, block_len: usize, native: bool) -> usize {
    let want = opts
        .segment_len
        .clamp(block_len * 4, MAX_SEGMENT.max(block_len * 4));
    let align = if native { FILE_HASH_SEGMENT } else { block_len };
    want.div_ceil(align) * align
}
