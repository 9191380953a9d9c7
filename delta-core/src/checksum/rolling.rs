//! Weak rolling checksums: librsync's `RabinKarp` (the current default, also used by the
//! native format) and its legacy `rollsum` (an Adler-style sum, used with MD4).
//!
//! Each sum can be computed over a whole block ([`RollingHash::of_block`]) and slid one byte at
//! a time ([`RollingHash::rotate`]). The block functions are the scalar references for the
//! vectorised versions in [`super::simd`]; the sliding functions are what the delta search
//! runs once per byte of unmatched data, so they are kept branch-free and `#[inline]`.

/// librsync's RabinKarp multiplier (`RABINKARP_MULT`).
pub const RABINKARP_MULT: u32 = 0x0810_4225;
/// Multiplicative inverse of [`RABINKARP_MULT`] modulo 2^32.
pub const RABINKARP_INV: u32 = 0x98f0_09ad;
/// `RABINKARP_MULT - 1`: folds the seed's contribution into each outgoing byte.
const RABINKARP_ADJ: u32 = 0x0810_4224;
/// librsync's rollsum adds this to every byte.
pub const ROLLSUM_CHAR_OFFSET: u32 = 31;

/// Which weak sum a signature uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeakKind {
    /// librsync's RabinKarp polynomial hash (magic `0x7273014x` and native).
    RabinKarp,
    /// librsync's legacy Adler-like rollsum (magic `0x7273013x`).
    Rollsum,
}

/// A weak checksum over a sliding window of fixed length.
pub trait RollingHash: Copy + Send + Sync {
    /// Prepares the constants for windows of `window` bytes.
    fn new(window: usize) -> Self;
    /// The sum of `block` (any length, used for the short last block too).
    fn of_block(&self, block: &[u8]) -> u32;
    /// Slides the window one byte: `out` leaves at the front, `inn` enters at the back.
    fn rotate(&self, sum: u32, out: u8, inn: u8) -> u32;
    /// Shrinks a window of `len` bytes by dropping its first byte `out` (used at end of file,
    /// where librsync matches a short last block).
    fn rollout(sum: u32, out: u8, len: usize) -> u32;
}

/// RabinKarp over a window: `hash = MULT^n + Σ b[i]·MULT^(n-1-i)` (mod 2^32).
#[derive(Debug, Clone, Copy)]
pub struct RabinKarp {
    /// `MULT^n` for the window length `n`.
    mult_n: u32,
}

impl RollingHash for RabinKarp {
    #[inline]
    fn new(window: usize) -> Self {
        Self {
            mult_n: pow32(RABINKARP_MULT, window as u64),
        }
    }

    fn of_block(&self, block: &[u8]) -> u32 {
        rabinkarp_scalar(block)
    }

    #[inline(always)]
    fn rotate(&self, sum: u32, out: u8, inn: u8) -> u32 {
        sum.wrapping_mul(RABINKARP_MULT)
            .wrapping_add(u32::from(inn))
            .wrapping_sub(
                self.mult_n
                    .wrapping_mul(u32::from(out).wrapping_add(RABINKARP_ADJ)),
            )
    }

    fn rollout(sum: u32, out: u8, len: usize) -> u32 {
        let m = pow32(RABINKARP_MULT, len as u64 - 1);
        sum.wrapping_sub(m.wrapping_mul(u32::from(out).wrapping_add(RABINKARP_ADJ)))
    }
}

/// Scalar reference: RabinKarp of a block, starting from librsync's seed of 1.
pub fn rabinkarp_scalar(block: &[u8]) -> u32 {
    let mut h: u32 = 1;
    for &b in block {
        h = h.wrapping_mul(RABINKARP_MULT).wrapping_add(u32::from(b));
    }
    h
}

/// librsync's rollsum: `s1 = Σ(b+31)`, `s2 = Σ s1`, digest `s2 << 16 | s1` (both mod 2^16).
#[derive(Debug, Clone, Copy)]
pub struct Rollsum {
    /// `n · CHAR_OFFSET`-adjusted window length, as librsync's `count`.
    count: u32,
}

impl RollingHash for Rollsum {
    #[inline]
    fn new(window: usize) -> Self {
        Self {
            count: window as u32,
        }
    }

    fn of_block(&self, block: &[u8]) -> u32 {
        rollsum_scalar(block)
    }

    #[inline(always)]
    fn rotate(&self, sum: u32, out: u8, inn: u8) -> u32 {
        let (out, inn) = (u32::from(out), u32::from(inn));
        let s1 = (sum & 0xffff).wrapping_add(inn).wrapping_sub(out);
        let s2 = (sum >> 16).wrapping_add(s1).wrapping_sub(
            self.count
                .wrapping_mul(out.wrapping_add(ROLLSUM_CHAR_OFFSET)),
        );
        (s2 << 16) | (s1 & 0xffff)
    }

    fn rollout(sum: u32, out: u8, len: usize) -> u32 {
        let o = u32::from(out) + ROLLSUM_CHAR_OFFSET;
        let s1 = (sum & 0xffff).wrapping_sub(o);
        let s2 = (sum >> 16).wrapping_sub((len as u32).wrapping_mul(o));
        (s2 << 16) | (s1 & 0xffff)
    }
}

/// Scalar reference: librsync's rollsum of a block.
pub fn rollsum_scalar(block: &[u8]) -> u32 {
    let (mut s1, mut s2) = (0u32, 0u32);
    for &b in block {
        s1 = s1.wrapping_add(u32::from(b) + ROLLSUM_CHAR_OFFSET);
        s2 = s2.wrapping_add(s1);
    }
    (s2 << 16) | (s1 & 0xffff)
}

/// `base^exp` modulo 2^32.
pub(crate) fn pow32(mut base: u32, mut exp: u64) -> u32 {
    let mut acc = 1u32;
    while exp > 0 {
        if exp & 1 == 1 {
            acc = acc.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        exp >>= 1;
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_rolls<H: RollingHash>(data: &[u8], n: usize) {
        let h = H::new(n);
        let mut sum = h.of_block(&data[..n]);
        for i in 0..data.len() - n {
            sum = h.rotate(sum, data[i], data[i + n]);
            assert_eq!(sum, h.of_block(&data[i + 1..i + 1 + n]), "offset {}", i + 1);
        }
    }

    #[test]
    fn rotate_equals_recompute() {
        let data: Vec<u8> = (0..3000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for n in [1, 2, 7, 64, 700] {
            check_rolls::<RabinKarp>(&data, n);
            check_rolls::<Rollsum>(&data, n);
        }
    }

    fn check_rollout<H: RollingHash>(data: &[u8]) {
        let mut sum = H::new(data.len()).of_block(data);
        for i in 0..data.len() {
            sum = H::rollout(sum, data[i], data.len() - i);
            assert_eq!(
                sum,
                H::new(1).of_block(&data[i + 1..]),
                "after dropping {} bytes",
                i + 1
            );
        }
    }

    #[test]
    fn rollout_equals_recompute() {
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        check_rollout::<RabinKarp>(&data);
        check_rollout::<Rollsum>(&data);
    }

    #[test]
    fn inverse_is_inverse() {
        assert_eq!(RABINKARP_MULT.wrapping_mul(RABINKARP_INV), 1);
    }

    #[test]
    fn known_values() {
        // Empty block: the seeds.
        assert_eq!(rabinkarp_scalar(b""), 1);
        assert_eq!(rollsum_scalar(b""), 0);
        // "a": s1 = 97+31 = 128, s2 = 128.
        assert_eq!(rollsum_scalar(b"a"), (128 << 16) | 128);
        assert_eq!(rabinkarp_scalar(b"a"), RABINKARP_MULT.wrapping_add(97));
    }
}
