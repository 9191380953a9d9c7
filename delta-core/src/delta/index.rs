//! The lookup structure built from a [`Signature`]: which blocks have a given weak sum.
//!
//! The match loop asks "could this window match anything?" once per byte of unmatched data,
//! so that question is answered by a bitmap test (one load, no hashing beyond a multiply);
//! only on a bitmap hit does it look in the bucket table. Buckets are a counting-sorted array
//! (no per-bucket allocation) and entries with the same weak sum and strong hash are stored
//! once, keeping the first block, so repeated content costs one comparison.

use crate::signature::Signature;

/// Fibonacci hashing spreads the weak sum's bits (rollsum's low half is weak on its own).
#[inline(always)]
fn mix(weak: u32) -> u32 {
    weak.wrapping_mul(0x9E37_79B1)
}

/// Blocks of a signature, indexed by weak sum.
#[derive(Debug, Clone)]
pub struct BlockIndex {
    /// `2^filter_bits` presence bits indexed by the top bits of `mix(weak)`.
    filter: Vec<u64>,
    filter_shift: u32,
    /// `starts[b]..starts[b + 1]` are bucket `b`'s entries.
    starts: Vec<u32>,
    bucket_shift: u32,
    /// Weak sum of each entry, beside its block number for locality.
    entries: Vec<(u32, u32)>,
}

impl BlockIndex {
    /// Indexes every block of `sig`.
    pub fn new(sig: &Signature) -> Self {
        let n = sig.block_count();
        let log = usize::BITS - n.max(1).leading_zeros();
        let bucket_bits = (log + 1).clamp(4, 28);
        let filter_bits = (log + 5).clamp(12, 31);
        let bucket_shift = 32 - bucket_bits;
        let filter_shift = 32 - filter_bits;
        let mut filter = vec![0u64; (1usize << filter_bits) / 64];
        let mut starts = vec![0u32; (1usize << bucket_bits) + 1];
        for &w in sig.weak_sums() {
            let m = mix(w);
            let f = (m >> filter_shift) as usize;
            filter[f / 64] |= 1 << (f % 64);
            starts[(m >> bucket_shift) as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut fill = starts.clone();
        let mut entries = vec![(0u32, 0u32); n];
        for (i, &w) in sig.weak_sums().iter().enumerate() {
            let b = (mix(w) >> bucket_shift) as usize;
            entries[fill[b] as usize] = (w, i as u32);
            fill[b] += 1;
        }
        // Within each bucket: order by weak sum, then drop later blocks whose weak and strong
        // sums repeat an earlier block's (they can never be the better match).
        let mut out = Vec::with_capacity(n);
        let mut new_starts = vec![0u32; starts.len()];
        for b in 0..starts.len() - 1 {
            let bucket = &mut entries[starts[b] as usize..starts[b + 1] as usize];
            bucket.sort_unstable();
            let first = out.len();
            for &(w, i) in bucket.iter() {
                let dup = out[first..]
                    .iter()
                    .rev()
                    .take_while(|&&(w2, _)| w2 == w)
                    .any(|&(_, j): &(u32, u32)| {
                        sig.strong_sum(j as usize) == sig.strong_sum(i as usize)
                    });
                if !dup {
                    out.push((w, i));
                }
            }
            new_starts[b + 1] = out.len() as u32;
        }
        Self {
            filter,
            filter_shift,
            starts: new_starts,
            bucket_shift,
            entries: out,
        }
    }

    /// Whether any block might have weak sum `weak` (false positives possible, no false
    /// negatives).
    #[inline(always)]
    pub fn maybe(&self, weak: u32) -> bool {
        let f = (mix(weak) >> self.filter_shift) as usize;
        // SAFETY-free bounds: `f < 2^filter_bits`, and the filter holds exactly that many bits.
        self.filter[f / 64] & (1 << (f % 64)) != 0
    }

    /// Blocks whose weak sum is exactly `weak`, lowest block number first.
    #[inline]
    pub fn candidates(&self, weak: u32) -> impl Iterator<Item = usize> + '_ {
        let b = (mix(weak) >> self.bucket_shift) as usize;
        self.entries[self.starts[b] as usize..self.starts[b + 1] as usize]
            .iter()
            .skip_while(move |&&(w, _)| w < weak)
            .take_while(move |&&(w, _)| w == weak)
            .map(|&(_, i)| i as usize)
    }

    /// Distinct (weak, strong) entries indexed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the signature had no blocks.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::{SignatureFormat, SignatureOptions};

    #[test]
    fn finds_every_block_and_dedups_repeats() {
        let mut data: Vec<u8> = (0..64 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
            .collect();
        data.extend(std::iter::repeat_n(0u8, 8 * 1024));
        let opts = SignatureOptions {
            block_len: Some(1024),
            ..SignatureOptions::new(SignatureFormat::Rdiff)
        };
        let sig = Signature::from_slice(&data, &opts).unwrap();
        let idx = BlockIndex::new(&sig);
        assert_eq!(
            idx.len(),
            64 + 1,
            "eight zero blocks collapse into one entry"
        );
        for (i, &w) in sig.weak_sums().iter().enumerate() {
            assert!(idx.maybe(w));
            let first = idx
                .candidates(w)
                .find(|&j| sig.strong_sum(j) == sig.strong_sum(i))
                .unwrap();
            assert!(first <= i);
        }
    }
}
