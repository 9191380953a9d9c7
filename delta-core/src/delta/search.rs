//! The match loop over one range of the new file.
//!
//! For each position the loop asks whether the `block_len` bytes starting there equal some
//! basis block. Three paths, cheapest first:
//! 1. *prediction*: after a match, the next window most likely equals the next basis block, so
//!    its strong hash is compared with that block's directly, with no weak sum at all (the
//!    common case on a mostly unchanged file, and why matched data goes at hash speed);
//! 2. *rolling*: the weak sum slides one byte at a time and a bitmap test rejects almost every
//!    position without touching the bucket table;
//! 3. *lookup*: on a bitmap hit, the candidates with an equal weak sum are compared by strong
//!    hash, computed once per position, and at most [`SearchParams::max_candidates`] of them.
//!
//! A range is searched on its own; [`super::parallel`] stitches neighbouring ranges. The loop
//! may run past the range's end inside a match (the buffer holds `block_len` bytes of
//! overshoot) but never starts a window at or after the end.

use crate::checksum::{RollingHash, StrongKind, MAX_STRONG_LEN_USIZE};
use crate::signature::Signature;

use super::index::BlockIndex;

/// Most predicted windows hashed at once (the MD4 kernel's lane count).
const MAX_RUN: usize = 16;

/// One delta operation; offsets are absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// At `at` in the new file, copy `len` bytes at `start` of the basis.
    Copy { at: u64, start: u64, len: u64 },
    /// Send `len` bytes at `start` of the new file.
    Literal { start: u64, len: u64 },
}

impl Op {
    /// Where the operation starts in the new file.
    pub(crate) fn at(self) -> u64 {
        match self {
            Op::Copy { at, .. } => at,
            Op::Literal { start, .. } => start,
        }
    }

    pub(crate) fn len(self) -> u64 {
        match self {
            Op::Copy { len, .. } | Op::Literal { len, .. } => len,
        }
    }

    /// The operation without its first `d` bytes.
    pub(crate) fn skip(self, d: u64) -> Op {
        match self {
            Op::Copy { at, start, len } => Op::Copy {
                at: at + d,
                start: start + d,
                len: len - d,
            },
            Op::Literal { start, len } => Op::Literal {
                start: start + d,
                len: len - d,
            },
        }
    }
}

/// What the loop needs from the signature, gathered once per delta.
pub(crate) struct SearchParams<'a> {
    pub sig: &'a Signature,
    pub index: &'a BlockIndex,
    pub strong: StrongKind,
    pub seed: u64,
    pub block_len: usize,
    pub strong_len: usize,
    /// Length of the last basis block when the signature records the basis length.
    pub last_block: Option<(usize, usize)>,
    /// Blocks of full length (all but a short last one).
    pub full_blocks: usize,
    pub max_candidates: usize,
}

impl SearchParams<'_> {
    #[inline]
    fn strong_of(&self, window: &[u8], out: &mut [u8; MAX_STRONG_LEN_USIZE]) {
        self.strong
            .hash_into(self.seed, window, &mut out[..self.strong_len]);
    }

    fn push_copy(&self, ops: &mut Vec<Op>, at: u64, block: usize, len: usize) {
        let start = block as u64 * self.block_len as u64;
        if let Some(Op::Copy {
            start: s, len: l, ..
        }) = ops.last_mut()
        {
            if *s + *l == start {
                *l += len as u64;
                return;
            }
        }
        ops.push(Op::Copy {
            at,
            start,
            len: len as u64,
        });
    }
}

fn push_literal(ops: &mut Vec<Op>, start: u64, end: u64) {
    if end > start {
        ops.push(Op::Literal {
            start,
            len: end - start,
        });
    }
}

/// Searches windows starting in `buf[start..end]`. `buf` begins at absolute offset `base`;
/// it holds `block_len` bytes past `end` unless the file ends sooner, in which case `at_eof`.
/// Returns the operations covering `start..` up to at least `end`.
pub(crate) fn search_range<H: RollingHash>(
    p: &SearchParams<'_>,
    buf: &[u8],
    base: u64,
    start: usize,
    end: usize,
    at_eof: bool,
) -> Vec<Op> {
    let bl = p.block_len;
    let h = H::new(bl);
    let mut ops = Vec::new();
    let mut pos = start;
    let mut lit = start;
    let mut expect: Option<usize> = None;
    let mut strong = [0u8; MAX_STRONG_LEN_USIZE];
    // Weak-sum confirmation is skipped on the prediction path only when the strong hash is long
    // enough to stand alone.
    let predict_needs_weak = p.strong_len < 8;
    let mut run = 1usize;
    let mut hashes = vec![0u8; MAX_RUN * p.strong_len];

    'outer: while pos < end {
        if pos + bl > buf.len() {
            break;
        }
        let window = &buf[pos..pos + bl];
        if let Some(x) = expect.take() {
            if predict_needs_weak {
                if x < p.full_blocks {
                    p.strong_of(window, &mut strong);
                    if strong[..p.strong_len] == *p.sig.strong_sum(x)
                        && h.of_block(window) == p.sig.weak_sums()[x]
                    {
                        push_literal(&mut ops, base + lit as u64, base + pos as u64);
                        p.push_copy(&mut ops, base + pos as u64, x, bl);
                        pos += bl;
                        lit = pos;
                        expect = Some(x + 1);
                        continue;
                    }
                }
            } else {
                // Hash the next `run` predicted windows at once (multi-lane kernels), as many as
                // the signature, the buffer and the range allow; the run doubles while
                // predictions hold and falls back to one after a miss.
                let k = run
                    .min(p.full_blocks.saturating_sub(x))
                    .min((buf.len() - pos) / bl)
                    .min((end - pos).div_ceil(bl));
                if k > 0 {
                    let sl = p.strong_len;
                    p.strong.hash_blocks(
                        p.seed,
                        &buf[pos..pos + k * bl],
                        bl,
                        sl,
                        &mut hashes[..k * sl],
                    );
                    let matched = (0..k)
                        .take_while(|&i| hashes[i * sl..(i + 1) * sl] == *p.sig.strong_sum(x + i))
                        .count();
                    if matched > 0 {
                        push_literal(&mut ops, base + lit as u64, base + pos as u64);
                        p.push_copy(&mut ops, base + pos as u64, x, matched * bl);
                        pos += matched * bl;
                        lit = pos;
                        if matched == k {
                            run = (run * 2).min(MAX_RUN);
                            expect = Some(x + matched);
                        } else {
                            run = 1;
                        }
                        continue;
                    }
                }
                run = 1;
            }
        }
        let mut weak = h.of_block(window);
        loop {
            if p.index.maybe(weak) {
                let window = &buf[pos..pos + bl];
                let mut hashed = false;
                for x in p.index.candidates(weak).take(p.max_candidates) {
                    if x >= p.full_blocks {
                        continue;
                    }
                    if !hashed {
                        p.strong_of(window, &mut strong);
                        hashed = true;
                    }
                    if strong[..p.strong_len] == *p.sig.strong_sum(x) {
                        push_literal(&mut ops, base + lit as u64, base + pos as u64);
                        p.push_copy(&mut ops, base + pos as u64, x, bl);
                        pos += bl;
                        lit = pos;
                        expect = Some(x + 1);
                        continue 'outer;
                    }
                }
            }
            if pos + 1 >= end || pos + bl >= buf.len() {
                pos += 1;
                continue 'outer;
            }
            weak = h.rotate(weak, buf[pos], buf[pos + bl]);
            pos += 1;
        }
    }
    // Fewer than `block_len` bytes remain before the end of the file: they can still equal the
    // basis's short last block.
    if at_eof && pos < end && buf.len() == end && p.sig.block_count() > 0 {
        let last = p.sig.block_count() - 1;
        let hit = |at: usize, strong: &mut [u8; MAX_STRONG_LEN_USIZE]| {
            p.strong_of(&buf[at..], strong);
            strong[..p.strong_len] == *p.sig.strong_sum(last)
        };
        let found = match p.last_block {
            // Native signatures record the basis length: one window to try.
            Some((_, last_len)) => {
                let at = end.checked_sub(last_len).filter(|&at| at >= pos);
                at.filter(|&at| {
                    h.of_block(&buf[at..]) == p.sig.weak_sums()[last] && hit(at, &mut strong)
                })
            }
            // librsync signatures don't: shrink the window to the end, as librsync does.
            None => {
                let mut at = pos;
                let mut weak = h.of_block(&buf[at..]);
                loop {
                    if at == end {
                        break None;
                    }
                    if weak == p.sig.weak_sums()[last] && hit(at, &mut strong) {
                        break Some(at);
                    }
                    weak = H::rollout(weak, buf[at], end - at);
                    at += 1;
                }
            }
        };
        if let Some(at) = found {
            push_literal(&mut ops, base + lit as u64, base + at as u64);
            p.push_copy(&mut ops, base + at as u64, last, end - at);
            lit = end;
        }
    }
    push_literal(&mut ops, base + lit as u64, base + end.max(lit) as u64);
    ops
}
