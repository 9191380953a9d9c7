//! Strong hashes: per-block confirmation hashes (MD4, BLAKE2b, seeded XXH3) and the
//! whole-file hash that every reconstructed native file is checked against.

use xxhash_rust::xxh3::{xxh3_128_with_seed, Xxh3};

use super::md4::md4;

/// Longest strong block hash any format stores (BLAKE2b-256).
pub const MAX_STRONG_LEN: usize = 32;
/// Same as [`MAX_STRONG_LEN`], for array lengths.
pub const MAX_STRONG_LEN_USIZE: usize = MAX_STRONG_LEN;

/// Which strong block hash a signature uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrongKind {
    /// MD4, 16 bytes (librsync legacy).
    Md4,
    /// BLAKE2b-256, unkeyed (librsync default).
    Blake2b,
    /// XXH3-128 with the session seed (native).
    Xxh3,
}

impl StrongKind {
    /// The full digest length before truncation.
    pub const fn max_len(self) -> usize {
        match self {
            StrongKind::Md4 | StrongKind::Xxh3 => 16,
            StrongKind::Blake2b => 32,
        }
    }

    /// Hashes `block`, writing the first `out.len()` digest bytes into `out`.
    ///
    /// `out.len()` must be at most [`Self::max_len`].
    #[inline]
    pub fn hash_into(self, seed: u64, block: &[u8], out: &mut [u8]) {
        match self {
            StrongKind::Md4 => out.copy_from_slice(&md4(block)[..out.len()]),
            StrongKind::Blake2b => {
                let h = blake2b_simd::Params::new().hash_length(32).hash(block);
                out.copy_from_slice(&h.as_bytes()[..out.len()]);
            }
            StrongKind::Xxh3 => {
                out.copy_from_slice(&xxh3_128_with_seed(block, seed).to_le_bytes()[..out.len()])
            }
        }
    }
}

impl StrongKind {
    /// Hashes each consecutive `block_len`-byte block of `data` (all of them full), writing
    /// `strong_len` digest bytes per block into `out`. MD4 and BLAKE2b use their multi-lane
    /// kernels, so a run of blocks costs far less than hashing them one by one.
    pub fn hash_blocks(
        self,
        seed: u64,
        data: &[u8],
        block_len: usize,
        strong_len: usize,
        out: &mut [u8],
    ) {
        debug_assert_eq!(data.len() % block_len, 0);
        debug_assert_eq!(out.len(), data.len() / block_len * strong_len);
        match self {
            StrongKind::Md4 => {
                let mut d = [[0u8; 16]; 16];
                for (chunk, o) in data
                    .chunks(16 * block_len)
                    .zip(out.chunks_mut(16 * strong_len))
                {
                    let n = chunk.len() / block_len;
                    super::simd::md4_blocks(chunk, block_len, &mut d[..n]);
                    for (dst, h) in o.chunks_exact_mut(strong_len).zip(&d[..n]) {
                        dst.copy_from_slice(&h[..strong_len]);
                    }
                }
            }
            StrongKind::Blake2b => {
                let params = blake2b_simd::Params::new().hash_length(32).clone();
                let mut jobs: Vec<blake2b_simd::many::HashManyJob<'_>> = data
                    .chunks(block_len)
                    .map(|b| blake2b_simd::many::HashManyJob::new(&params, b))
                    .collect();
                blake2b_simd::many::hash_many(jobs.iter_mut());
                for (dst, job) in out.chunks_exact_mut(strong_len).zip(&jobs) {
                    dst.copy_from_slice(&job.to_hash().as_bytes()[..strong_len]);
                }
            }
            StrongKind::Xxh3 => {
                for (dst, b) in out.chunks_exact_mut(strong_len).zip(data.chunks(block_len)) {
                    self.hash_into(seed, b, dst);
                }
            }
        }
    }
}

/// Length of the pieces the whole-file hash is built from.
///
/// The whole-file hash is a hash of per-segment hashes so that the parallel delta search can
/// hash its ranges independently and still produce a value that does not depend on how many
/// threads ran; ranges are always a multiple of this length.
pub const FILE_HASH_SEGMENT: usize = 8 << 20;

/// Whole-file hash length in bytes.
pub const FILE_HASH_LEN: usize = 16;

/// Hash of one whole-file segment.
pub fn segment_digest(seed: u64, segment: &[u8]) -> u128 {
    xxh3_128_with_seed(segment, seed)
}

/// Combines the digests of consecutive segments and the total length into the file hash.
pub fn combine_segments(
    seed: u64,
    digests: impl IntoIterator<Item = u128>,
    len: u64,
) -> [u8; FILE_HASH_LEN] {
    let mut outer = Xxh3::with_seed(seed);
    for d in digests {
        outer.update(&d.to_le_bytes());
    }
    outer.update(&len.to_le_bytes());
    outer.digest128().to_le_bytes()
}

/// Streaming whole-file hash: XXH3-128 (seeded) over the XXH3-128 of each
/// [`FILE_HASH_SEGMENT`]-byte segment, followed by the length.
#[derive(Clone)]
pub struct FileHasher {
    seed: u64,
    segment: Xxh3,
    filled: usize,
    outer: Xxh3,
    len: u64,
}

impl std::fmt::Debug for FileHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileHasher")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl FileHasher {
    /// A hasher for a session `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            segment: Xxh3::with_seed(seed),
            filled: 0,
            outer: Xxh3::with_seed(seed),
            len: 0,
        }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        while !data.is_empty() {
            let take = (FILE_HASH_SEGMENT - self.filled).min(data.len());
            self.segment.update(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled == FILE_HASH_SEGMENT {
                self.outer.update(&self.segment.digest128().to_le_bytes());
                self.segment = Xxh3::with_seed(self.seed);
                self.filled = 0;
            }
        }
    }

    /// The whole-file hash of everything fed so far.
    pub fn finish(mut self) -> [u8; FILE_HASH_LEN] {
        if self.filled > 0 {
            self.outer.update(&self.segment.digest128().to_le_bytes());
        }
        self.outer.update(&self.len.to_le_bytes());
        self.outer.digest128().to_le_bytes()
    }
}

/// Whole-file hash of an in-memory buffer (the reference the streaming hasher must equal).
pub fn file_hash(seed: u64, data: &[u8]) -> [u8; FILE_HASH_LEN] {
    combine_segments(
        seed,
        data.chunks(FILE_HASH_SEGMENT)
            .map(|s| segment_digest(seed, s)),
        data.len() as u64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_file_hash_equals_reference() {
        let data: Vec<u8> = (0..FILE_HASH_SEGMENT * 2 + 1234)
            .map(|i| ((i * 31) >> 7) as u8)
            .collect();
        for split in [
            0,
            1,
            FILE_HASH_SEGMENT - 1,
            FILE_HASH_SEGMENT,
            FILE_HASH_SEGMENT * 2 + 5,
        ] {
            let mut h = FileHasher::new(7);
            h.update(&data[..split]);
            h.update(&data[split..]);
            assert_eq!(h.finish(), file_hash(7, &data));
        }
        assert_ne!(file_hash(7, &data), file_hash(8, &data), "seed must matter");
        assert_ne!(file_hash(7, b""), file_hash(7, b"\0"), "length must matter");
    }

    #[test]
    fn block_runs_hash_like_single_blocks() {
        let data: Vec<u8> = (0..37 * 300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
            .collect();
        for kind in [StrongKind::Md4, StrongKind::Blake2b, StrongKind::Xxh3] {
            for sl in [1, 8, kind.max_len()] {
                let mut run = vec![0u8; 37 * sl];
                kind.hash_blocks(9, &data, 300, sl, &mut run);
                for (i, b) in data.chunks(300).enumerate() {
                    let mut one = vec![0u8; sl];
                    kind.hash_into(9, b, &mut one);
                    assert_eq!(&run[i * sl..(i + 1) * sl], &one[..], "{kind:?} block {i}");
                }
            }
        }
    }

    #[test]
    fn blake2b_is_librsyncs() {
        // BLAKE2b-256 of the empty string.
        let mut out = [0u8; 32];
        StrongKind::Blake2b.hash_into(0, b"", &mut out);
        assert_eq!(out[..4], [0x0e, 0x57, 0x51, 0xc0]);
    }
}
