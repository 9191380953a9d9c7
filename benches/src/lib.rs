//! Benchmark support: the data sets every engine benchmark runs on, built once and shared.
//!
//! A basis of random bytes and three new files derived from it:
//! - **(a) scattered**: 1% of the 4 KiB blocks overwritten with fresh random bytes, spread
//!   evenly over the file (one per hundred blocks, at a random place in each hundred);
//! - **(b) appended**: the basis unchanged, plus a random tail of 1% of its length;
//! - **(c) unrelated**: random bytes of the basis's length sharing nothing with it.
//!
//! The size is `DELTASYNC_BENCH_MIB` MiB (default 256). Data comes from a fixed-seed
//! xoshiro256** generator, so every run and every tool sees the same bytes.

use std::sync::OnceLock;

/// Bytes per changed block in data set (a).
pub const CHANGE_BLOCK: usize = 4096;
/// Default data set size in MiB.
pub const DEFAULT_MIB: usize = 256;

/// The data set size in bytes: `DELTASYNC_BENCH_MIB` MiB, or [`DEFAULT_MIB`].
pub fn bench_len() -> usize {
    let mib = std::env::var("DELTASYNC_BENCH_MIB")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&m| m > 0)
        .unwrap_or(DEFAULT_MIB);
    mib << 20
}

/// xoshiro256** (Blackman and Vigna), seeded through splitmix64: fast, and good enough that
/// neither rolling sum finds structure in its output.
#[derive(Debug, Clone)]
pub struct Rng([u64; 4]);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self([next(), next(), next(), next()])
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// A number in `0..n` (`n > 0`); the tiny modulo bias does not matter here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// `len` random bytes from `seed`.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng::new(seed).fill(&mut v);
    v
}

/// Data set (a): `basis` with one [`CHANGE_BLOCK`]-byte block in every hundred overwritten.
/// Returns the new file and the number of blocks changed.
pub fn scattered_changes(basis: &[u8], seed: u64) -> (Vec<u8>, usize) {
    let mut new = basis.to_vec();
    let mut rng = Rng::new(seed);
    let blocks = basis.len() / CHANGE_BLOCK;
    let mut changed = 0;
    for group in (0..blocks).step_by(100) {
        let span = (blocks - group).min(100) as u64;
        if span < 100 && changed > 0 {
            break; // a short final group would push the rate above 1%
        }
        let b = group + rng.below(span) as usize;
        rng.fill(&mut new[b * CHANGE_BLOCK..(b + 1) * CHANGE_BLOCK]);
        changed += 1;
    }
    (new, changed)
}

/// Data set (b): `basis` followed by a random tail of 1% of its length.
pub fn appended_tail(basis: &[u8], seed: u64) -> Vec<u8> {
    let tail = basis.len() / 100;
    let mut new = Vec::with_capacity(basis.len() + tail);
    new.extend_from_slice(basis);
    new.resize(basis.len() + tail, 0);
    Rng::new(seed).fill(&mut new[basis.len()..]);
    new
}

/// The shared basis and the three new files, each built on first use.
#[derive(Debug)]
pub struct DataSets {
    len: usize,
    basis: OnceLock<Vec<u8>>,
    scattered: OnceLock<Vec<u8>>,
    appended: OnceLock<Vec<u8>>,
    unrelated: OnceLock<Vec<u8>>,
}

impl DataSets {
    /// Data sets of `len` bytes (the appended set is 1% longer).
    pub fn new(len: usize) -> Self {
        Self {
            len,
            basis: OnceLock::new(),
            scattered: OnceLock::new(),
            appended: OnceLock::new(),
            unrelated: OnceLock::new(),
        }
    }

    /// Data sets of [`bench_len`] bytes.
    pub fn from_env() -> Self {
        Self::new(bench_len())
    }

    /// Basis length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the data sets are empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The old file.
    pub fn basis(&self) -> &[u8] {
        self.basis.get_or_init(|| random_bytes(self.len, 1))
    }

    /// (a): 1% of the 4 KiB blocks changed, scattered.
    pub fn scattered(&self) -> &[u8] {
        self.scattered
            .get_or_init(|| scattered_changes(self.basis(), 2).0)
    }

    /// (b): the basis plus a 1% tail.
    pub fn appended(&self) -> &[u8] {
        self.appended.get_or_init(|| appended_tail(self.basis(), 3))
    }

    /// (c): unrelated random bytes.
    pub fn unrelated(&self) -> &[u8] {
        self.unrelated.get_or_init(|| random_bytes(self.len, 4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scattered_changes_one_block_in_a_hundred() {
        let basis = random_bytes(1000 * CHANGE_BLOCK + 100, 7);
        let (new, changed) = scattered_changes(&basis, 8);
        assert_eq!(changed, 10);
        assert_eq!(new.len(), basis.len());
        let differing = basis
            .chunks(CHANGE_BLOCK)
            .zip(new.chunks(CHANGE_BLOCK))
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differing, 10);
    }

    #[test]
    fn appended_keeps_the_basis_as_prefix() {
        let basis = random_bytes(10_000, 1);
        let new = appended_tail(&basis, 2);
        assert_eq!(new.len(), 10_100);
        assert_eq!(&new[..10_000], &basis[..]);
        assert_ne!(&new[10_000..], &[0u8; 100][..]);
    }

    #[test]
    fn generator_is_deterministic_and_not_constant() {
        assert_eq!(random_bytes(33, 5), random_bytes(33, 5));
        assert_ne!(random_bytes(33, 5), random_bytes(33, 6));
    }
}
