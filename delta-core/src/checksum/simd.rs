//! Block kernels: the weak sum and strong hash of every block of a buffer at once.
//!
//! Signatures hash every block of the basis, so these are the signature's whole cost. Each
//! public function here is safe, picks the fastest implementation the CPU supports at run time
//! (`is_x86_feature_detected!`, cached by std), and is tested against the scalar reference it
//! replaces ([`super::rolling`] and [`super::md4`]).
//!
//! On x86_64 with AVX2:
//! - **MD4** runs 16 blocks at once, one block per 32-bit lane of two interleaved `u32x8`
//!   groups (two groups so that one group's dependency chain hides the other's latency). The
//!   message words of eight lanes are transposed with unpack/permute shuffles rather than
//!   gathers, which are slow on the AMD parts we target. All full blocks share one length, so
//!   padding is the same for every lane; the short last block is hashed by the scalar code. With
//!   AVX-512F+VL the same kernel uses `vprold` for rotations and `vpternlogd` for the round
//!   functions, on 256-bit vectors (512-bit ones are no faster on Zen 4 and would need a wider
//!   transpose).
//! - **RabinKarp** is a dot product of the bytes with the powers of the multiplier. Each weight
//!   `M^k mod 2^32` is split into two signed 16-bit digits, so `vpmaddwd` on zero-extended bytes
//!   gives exact 32-bit partial sums; 256-byte windows are then combined by Horner's rule with
//!   `M^256` (`vpmulld`), lane-wise, and the lanes summed once per block.
//! - **rollsum** is Adler-32 without the modulus: `s1` from `vpsadbw`, `s2` as descending
//!   weights 32..1 per 32-byte piece (`vpmaddubsw` + `vpmaddwd`) plus 32 times the running `s1`.
//!   Everything is exact modulo 2^32 before the final 16-bit masking.
//!
//! A block's leftover bytes past the last whole vector step continue in scalar code from the
//! exact state reached, so any length is handled.
//!
//! Measured on the target (AMD EPYC with AVX-512, 2.6 GHz), one core, 1 MiB of L2-resident
//! input per call, blocks of 1–128 KiB: MD4 ≈ 12 GiB/s with AVX-512VL, ≈ 8 GiB/s with AVX2
//! (scalar ≈ 0.95); RabinKarp ≈ 30 GiB/s (scalar ≈ 0.9); rollsum ≈ 45 GiB/s (scalar ≈ 1.9).
//! 256-byte blocks: MD4 ≈ 9, RabinKarp ≈ 27, rollsum ≈ 35. MD4 is per block, so a call with
//! few blocks leaves lanes idle: 4 blocks run at about a third of the full rate, and a single
//! block at the scalar rate.

use super::md4::{md4, MD4_LEN};
use super::rolling::{rabinkarp_scalar, rollsum_scalar, WeakKind};

/// Which implementation a kernel runs; [`Isa::best`] picks it, tests force each in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    Scalar,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx2,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx512,
}

impl Isa {
    /// The fastest implementation this CPU supports.
    fn best() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if x86::has_avx512() {
                return Isa::Avx512;
            }
            if x86::has_avx2() {
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    }
}

/// Writes the weak sum of each consecutive `block_len`-byte block of `data` (the last one may be
/// short) into `out`, which must hold exactly `data.len().div_ceil(block_len)` entries. A
/// `block_len` of 0 writes nothing.
pub fn weak_blocks(kind: WeakKind, data: &[u8], block_len: usize, out: &mut [u32]) {
    weak_blocks_on(Isa::best(), kind, data, block_len, out);
}

fn weak_blocks_on(isa: Isa, kind: WeakKind, data: &[u8], block_len: usize, out: &mut [u32]) {
    if block_len == 0 {
        return;
    }
    debug_assert_eq!(out.len(), data.len().div_ceil(block_len));
    #[cfg(target_arch = "x86_64")]
    if x86::weak_blocks(isa, kind, data, block_len, out) {
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = isa;
    let f = match kind {
        WeakKind::RabinKarp => rabinkarp_scalar,
        WeakKind::Rollsum => rollsum_scalar,
    };
    for (o, block) in out.iter_mut().zip(data.chunks(block_len)) {
        *o = f(block);
    }
}

/// Writes the MD4 of each consecutive `block_len`-byte block of `data` into `out`, sized as for
/// [`weak_blocks`].
pub fn md4_blocks(data: &[u8], block_len: usize, out: &mut [[u8; MD4_LEN]]) {
    md4_blocks_on(Isa::best(), data, block_len, out);
}

fn md4_blocks_on(isa: Isa, data: &[u8], block_len: usize, out: &mut [[u8; MD4_LEN]]) {
    if block_len == 0 {
        return;
    }
    debug_assert_eq!(out.len(), data.len().div_ceil(block_len));
    #[cfg(target_arch = "x86_64")]
    let done = x86::md4_blocks(isa, data, block_len, out);
    #[cfg(not(target_arch = "x86_64"))]
    let done = {
        let _ = isa;
        0
    };
    let rest = data.get(done * block_len..).unwrap_or_default();
    for (o, block) in out[done..].iter_mut().zip(rest.chunks(block_len)) {
        *o = md4(block);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The AVX2 and AVX-512VL kernels. Every `unsafe fn` here requires the CPU features its
    //! `#[target_feature]` names (or, for the `#[inline(always)]` helpers, those of the kernel
    //! they are inlined into); the safe functions at the top check them first.

    use core::arch::x86_64::*;

    use super::super::md4::{MD4_INIT, MD4_LEN};
    use super::super::rolling::{pow32, rollsum_scalar, RABINKARP_MULT, ROLLSUM_CHAR_OFFSET};
    use super::{Isa, WeakKind};

    pub(super) fn has_avx2() -> bool {
        is_x86_feature_detected!("avx2")
    }

    pub(super) fn has_avx512() -> bool {
        has_avx2() && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl")
    }

    /// Fills `out` with the weak sums using `isa`; false (nothing written) if `isa` is scalar or
    /// the CPU lacks AVX2. Both vector levels use the AVX2 weak kernels: AVX-512 adds nothing
    /// they are short of.
    pub(super) fn weak_blocks(
        isa: Isa,
        kind: WeakKind,
        data: &[u8],
        bl: usize,
        out: &mut [u32],
    ) -> bool {
        if isa == Isa::Scalar || !has_avx2() {
            return false;
        }
        // SAFETY: AVX2 is present (checked just above); the kernels read only inside `data`.
        unsafe {
            match kind {
                WeakKind::RabinKarp => rabinkarp_blocks_avx2(data, bl, out),
                WeakKind::Rollsum => rollsum_blocks_avx2(data, bl, out),
            }
        }
        true
    }

    /// Writes the MD4 of a prefix of the full blocks of `data` into `out` using `isa` and
    /// returns how many it wrote; the caller hashes the rest (the short last block, a few
    /// leftovers too few to fill the lanes, or everything when the CPU lacks the features).
    pub(super) fn md4_blocks(isa: Isa, data: &[u8], bl: usize, out: &mut [[u8; MD4_LEN]]) -> usize {
        match isa {
            Isa::Avx512 if has_avx512() => {
                // SAFETY: AVX2, AVX-512F and AVX-512VL are present (checked in this arm).
                unsafe { md4_blocks_avx512(data, bl, out) }
            }
            Isa::Avx2 | Isa::Avx512 if has_avx2() => {
                // SAFETY: AVX2 is present (checked in this arm).
                unsafe { md4_blocks_avx2(data, bl, out) }
            }
            _ => 0,
        }
    }

    // ---------------------------------------------------------------------------------------
    // RabinKarp
    // ---------------------------------------------------------------------------------------

    /// Bytes per Horner step of the vector RabinKarp.
    const RK_WIN: usize = 256;

    /// Splits `M^k` into `lo + hi·2^16` (mod 2^32) with both digits signed 16-bit, so that
    /// `b·lo` and `b·hi` for a byte `b` and their pairwise sums fit in an i32 exactly.
    const fn rk_digits(w: u32) -> (i16, i16) {
        let lo = w as u16 as i16;
        let hi = (w.wrapping_sub(lo as i32 as u32) >> 16) as u16 as i16;
        (lo, hi)
    }

    /// The digits of the window weights: entry `i` is for `M^(RK_WIN-1-i)`, so a suffix of
    /// length `k` holds the weights of a `k`-byte window.
    const fn rk_table(high: bool) -> [i16; RK_WIN] {
        let mut t = [0i16; RK_WIN];
        let mut w: u32 = 1;
        let mut i = RK_WIN;
        while i > 0 {
            i -= 1;
            let (lo, hi) = rk_digits(w);
            t[i] = if high { hi } else { lo };
            w = w.wrapping_mul(RABINKARP_MULT);
        }
        t
    }

    /// `M^(16k)` for `k` in `0..=16`.
    const fn rk_pow16() -> [u32; 17] {
        let mut t = [1u32; 17];
        let mut k = 1;
        while k < 17 {
            let mut w = t[k - 1];
            let mut j = 0;
            while j < 16 {
                w = w.wrapping_mul(RABINKARP_MULT);
                j += 1;
            }
            t[k] = w;
            k += 1;
        }
        t
    }

    static RK_LO: [i16; RK_WIN] = rk_table(false);
    static RK_HI: [i16; RK_WIN] = rk_table(true);
    static RK_POW16: [u32; 17] = rk_pow16();

    /// Sum of the eight 32-bit lanes.
    #[inline(always)]
    unsafe fn hsum32(v: __m256i) -> u32 {
        // SAFETY: caller's AVX2 contract.
        unsafe {
            let x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            let x = _mm_add_epi32(x, _mm_shuffle_epi32::<0b01_00_11_10>(x));
            let x = _mm_add_epi32(x, _mm_shuffle_epi32::<0b10_11_00_01>(x));
            _mm_cvtsi128_si32(x) as u32
        }
    }

    /// Zero-extends 16 bytes at `p` to 16-bit lanes.
    #[inline(always)]
    unsafe fn load_u8x16_as_u16(p: *const u8) -> __m256i {
        // SAFETY: caller's AVX2 contract, and `p..p+16` is readable.
        unsafe { _mm256_cvtepu8_epi16(_mm_loadu_si128(p.cast())) }
    }

    /// Adds to `(lo, hi)` the digit products of the 16 bytes at `p` with table entry `j`.
    #[inline(always)]
    unsafe fn rk_piece(p: *const u8, j: usize, lo: &mut __m256i, hi: &mut __m256i) {
        // SAFETY: caller's AVX2 contract; `p..p+16` is readable and `j < RK_WIN / 16`.
        unsafe {
            let x = load_u8x16_as_u16(p);
            let wl = _mm256_loadu_si256(RK_LO.as_ptr().add(16 * j).cast());
            let wh = _mm256_loadu_si256(RK_HI.as_ptr().add(16 * j).cast());
            *lo = _mm256_add_epi32(*lo, _mm256_madd_epi16(x, wl));
            *hi = _mm256_add_epi32(*hi, _mm256_madd_epi16(x, wh));
        }
    }

    /// RabinKarp of `block`; `seed_pow` must be `M^(block.len() & !15)`, the weight of the
    /// seed after the vectorised prefix.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn rabinkarp_block_avx2(block: &[u8], seed_pow: u32) -> u32 {
        let p = block.len() & !15;
        // SAFETY: AVX2 per this fn's contract; every 16-byte load below lies in `block[..p]`.
        let sum = unsafe {
            let mut ptr = block.as_ptr();
            let mut left = p;
            let mut acc = _mm256_setzero_si256();
            let m_win = _mm256_set1_epi32(RK_POW16[16] as i32);
            while left >= RK_WIN {
                let z = _mm256_setzero_si256();
                let (mut lo0, mut hi0, mut lo1, mut hi1) = (z, z, z, z);
                let mut j = 0;
                while j < RK_WIN / 16 {
                    rk_piece(ptr.add(16 * j), j, &mut lo0, &mut hi0);
                    rk_piece(ptr.add(16 * j + 16), j + 1, &mut lo1, &mut hi1);
                    j += 2;
                }
                let lo = _mm256_add_epi32(lo0, lo1);
                let hi = _mm256_slli_epi32::<16>(_mm256_add_epi32(hi0, hi1));
                acc = _mm256_add_epi32(_mm256_mullo_epi32(acc, m_win), _mm256_add_epi32(lo, hi));
                ptr = ptr.add(RK_WIN);
                left -= RK_WIN;
            }
            if left > 0 {
                // A shorter window of `k` 16-byte pieces uses the table's last `k` entries.
                let k = left / 16;
                let first = RK_WIN / 16 - k;
                let (mut lo, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                for j in 0..k {
                    rk_piece(ptr.add(16 * j), first + j, &mut lo, &mut hi);
                }
                let m = _mm256_set1_epi32(RK_POW16[k] as i32);
                acc = _mm256_add_epi32(
                    _mm256_mullo_epi32(acc, m),
                    _mm256_add_epi32(lo, _mm256_slli_epi32::<16>(hi)),
                );
            }
            hsum32(acc)
        };
        let mut h = sum.wrapping_add(seed_pow);
        for &b in &block[p..] {
            h = h.wrapping_mul(RABINKARP_MULT).wrapping_add(u32::from(b));
        }
        h
    }

    #[target_feature(enable = "avx2")]
    unsafe fn rabinkarp_blocks_avx2(data: &[u8], bl: usize, out: &mut [u32]) {
        let full_pow = pow32(RABINKARP_MULT, (bl & !15) as u64);
        for (o, block) in out.iter_mut().zip(data.chunks(bl)) {
            let seed_pow = if block.len() == bl {
                full_pow
            } else {
                pow32(RABINKARP_MULT, (block.len() & !15) as u64)
            };
            // SAFETY: AVX2 per this fn's contract.
            *o = unsafe { rabinkarp_block_avx2(block, seed_pow) };
        }
    }

    // ---------------------------------------------------------------------------------------
    // rollsum
    // ---------------------------------------------------------------------------------------

    /// `n(n+1)/2 mod 2^32` without overflow for any `n`.
    fn triangle(n: usize) -> u32 {
        let n = n as u64;
        let (a, b) = if n & 1 == 0 {
            (n / 2, n.wrapping_add(1))
        } else {
            (n, n.wrapping_add(1) / 2)
        };
        (a as u32).wrapping_mul(b as u32)
    }

    /// librsync's rollsum of `block`.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn rollsum_block_avx2(block: &[u8]) -> u32 {
        let p = block.len() & !31;
        if p == 0 {
            return rollsum_scalar(block);
        }
        // SAFETY: AVX2 per this fn's contract; every 32-byte load below lies in `block[..p]`.
        let (bytes, before, weighted) = unsafe {
            let weights = _mm256_setr_epi8(
                32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12,
                11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1,
            );
            let ones = _mm256_set1_epi16(1);
            let z = _mm256_setzero_si256();
            // `s1` so far, the sum of `s1` before each 32-byte piece, and the in-piece weights.
            let (mut s1, mut s1_before, mut s2) = (z, z, z);
            let mut ptr = block.as_ptr();
            let end = ptr.add(p);
            while ptr < end {
                let x = _mm256_loadu_si256(ptr.cast());
                s1_before = _mm256_add_epi32(s1_before, s1);
                s1 = _mm256_add_epi32(s1, _mm256_sad_epu8(x, z));
                s2 = _mm256_add_epi32(
                    s2,
                    _mm256_madd_epi16(_mm256_maddubs_epi16(x, weights), ones),
                );
                ptr = ptr.add(32);
            }
            (hsum32(s1), hsum32(s1_before), hsum32(s2))
        };
        let mut s1 = bytes.wrapping_add((p as u32).wrapping_mul(ROLLSUM_CHAR_OFFSET));
        let mut s2 = before
            .wrapping_mul(32)
            .wrapping_add(weighted)
            .wrapping_add(triangle(p).wrapping_mul(ROLLSUM_CHAR_OFFSET));
        for &b in &block[p..] {
            s1 = s1.wrapping_add(u32::from(b) + ROLLSUM_CHAR_OFFSET);
            s2 = s2.wrapping_add(s1);
        }
        (s2 << 16) | (s1 & 0xffff)
    }

    #[target_feature(enable = "avx2")]
    unsafe fn rollsum_blocks_avx2(data: &[u8], bl: usize, out: &mut [u32]) {
        for (o, block) in out.iter_mut().zip(data.chunks(bl)) {
            // SAFETY: AVX2 per this fn's contract.
            *o = unsafe { rollsum_block_avx2(block) };
        }
    }

    // ---------------------------------------------------------------------------------------
    // MD4, 8 or 16 blocks at once
    // ---------------------------------------------------------------------------------------

    /// The operations that differ between the AVX2 and AVX-512VL MD4 kernels.
    trait Md4Ops {
        /// `x ? y : z`, bitwise.
        unsafe fn f(x: __m256i, y: __m256i, z: __m256i) -> __m256i;
        /// Bitwise majority.
        unsafe fn g(x: __m256i, y: __m256i, z: __m256i) -> __m256i;
        /// `x ^ y ^ z`.
        unsafe fn h(x: __m256i, y: __m256i, z: __m256i) -> __m256i;
        /// Rotate each lane left by `L`; `R` must be `32 - L`.
        unsafe fn rotl<const L: i32, const R: i32>(x: __m256i) -> __m256i;
    }

    /// AVX2 only: three-instruction rotations and two- or three-instruction round functions.
    enum Avx2Ops {}

    impl Md4Ops for Avx2Ops {
        #[inline(always)]
        unsafe fn f(x: __m256i, y: __m256i, z: __m256i) -> __m256i {
            // SAFETY: the AVX2 kernel this is inlined into.
            unsafe { _mm256_xor_si256(z, _mm256_and_si256(x, _mm256_xor_si256(y, z))) }
        }
        #[inline(always)]
        unsafe fn g(x: __m256i, y: __m256i, z: __m256i) -> __m256i {
            // `x` is the newest value: keep it two operations from the result.
            // SAFETY: the AVX2 kernel this is inlined into.
            unsafe {
                _mm256_or_si256(
                    _mm256_and_si256(x, _mm256_or_si256(y, z)),
                    _mm256_and_si256(y, z),
                )
            }
        }
        #[inline(always)]
        unsafe fn h(x: __m256i, y: __m256i, z: __m256i) -> __m256i {
            // SAFETY: the AVX2 kernel this is inlined into.
            unsafe { _mm256_xor_si256(x, _mm256_xor_si256(y, z)) }
        }
        #[inline(always)]
        unsafe fn rotl<const L: i32, const R: i32>(x: __m256i) -> __m256i {
            // SAFETY: the AVX2 kernel this is inlined into.
            unsafe { _mm256_or_si256(_mm256_slli_epi32::<L>(x), _mm256_srli_epi32::<R>(x)) }
        }
    }

    /// AVX-512F+VL on 256-bit vectors: `vprold` and `vpternlogd`.
    enum Avx512Ops {}

    // These intrinsics are stable since Rust 1.89; the workspace's `rust-version` (1.80)
    // predates them and needs raising to match.
    #[allow(clippy::incompatible_msrv)]
    impl Md4Ops for Avx512Ops {
        #[inline(always)]
        unsafe fn f(x: __m256i, y: __m256i, z: __m256i) -> __m256i {
            // SAFETY: the AVX-512VL kernel this is inlined into.
            unsafe { _mm256_ternarylogic_epi32::<0xca>(x, y, z) }
        }
        #[inline(always)]
        unsafe fn g(x: __m256i, y: __m256i, z: __m256i) -> __m256i {
            // SAFETY: the AVX-512VL kernel this is inlined into.
            unsafe { _mm256_ternarylogic_epi32::<0xe8>(x, y, z) }
        }
        #[inline(always)]
        unsafe fn h(x: __m256i, y: __m256i, z: __m256i) -> __m256i {
            // SAFETY: the AVX-512VL kernel this is inlined into.
            unsafe { _mm256_ternarylogic_epi32::<0x96>(x, y, z) }
        }
        #[inline(always)]
        unsafe fn rotl<const L: i32, const R: i32>(x: __m256i) -> __m256i {
            // SAFETY: the AVX-512VL kernel this is inlined into.
            unsafe { _mm256_rol_epi32::<L>(x) }
        }
    }

    /// Lanes per vector.
    const W: usize = 8;

    /// Loads 32 bytes at each of `p[0..8]` (plus `off`) and transposes them, so that vector
    /// `k` holds little-endian word `k` of every lane.
    #[inline(always)]
    unsafe fn load_transpose(p: &[*const u8; W], off: usize) -> [__m256i; 8] {
        // SAFETY: caller's AVX2 contract, and each `p[l] + off .. + 32` is readable.
        unsafe {
            let r = |l: usize| _mm256_loadu_si256(p[l].add(off).cast());
            let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
            let (r4, r5, r6, r7) = (r(4), r(5), r(6), r(7));
            let t0 = _mm256_unpacklo_epi32(r0, r1);
            let t1 = _mm256_unpackhi_epi32(r0, r1);
            let t2 = _mm256_unpacklo_epi32(r2, r3);
            let t3 = _mm256_unpackhi_epi32(r2, r3);
            let t4 = _mm256_unpacklo_epi32(r4, r5);
            let t5 = _mm256_unpackhi_epi32(r4, r5);
            let t6 = _mm256_unpacklo_epi32(r6, r7);
            let t7 = _mm256_unpackhi_epi32(r6, r7);
            let u0 = _mm256_unpacklo_epi64(t0, t2);
            let u1 = _mm256_unpackhi_epi64(t0, t2);
            let u2 = _mm256_unpacklo_epi64(t1, t3);
            let u3 = _mm256_unpackhi_epi64(t1, t3);
            let u4 = _mm256_unpacklo_epi64(t4, t6);
            let u5 = _mm256_unpackhi_epi64(t4, t6);
            let u6 = _mm256_unpacklo_epi64(t5, t7);
            let u7 = _mm256_unpackhi_epi64(t5, t7);
            [
                _mm256_permute2x128_si256::<0x20>(u0, u4),
                _mm256_permute2x128_si256::<0x20>(u1, u5),
                _mm256_permute2x128_si256::<0x20>(u2, u6),
                _mm256_permute2x128_si256::<0x20>(u3, u7),
                _mm256_permute2x128_si256::<0x31>(u0, u4),
                _mm256_permute2x128_si256::<0x31>(u1, u5),
                _mm256_permute2x128_si256::<0x31>(u2, u6),
                _mm256_permute2x128_si256::<0x31>(u3, u7),
            ]
        }
    }

    /// One MD4 compression for `G` groups of eight lanes. `x[g][k]` is message word `k` of
    /// group `g`; the groups are independent, interleaved step by step for parallelism.
    #[inline(always)]
    unsafe fn compress<O: Md4Ops, const G: usize>(
        state: &mut [[__m256i; 4]; G],
        x: &[[__m256i; 16]; G],
    ) {
        // SAFETY: caller's AVX2 (and, for `Avx512Ops`, AVX-512VL) contract.
        unsafe {
            let add = |a, b| _mm256_add_epi32(a, b);
            let k2 = _mm256_set1_epi32(0x5a82_7999);
            let k3 = _mm256_set1_epi32(0x6ed9_eba1);
            let mut a = [_mm256_setzero_si256(); G];
            let (mut b, mut c, mut d) = (a, a, a);
            for g in 0..G {
                [a[g], b[g], c[g], d[g]] = state[g];
            }
            // One step for every group: `$a = rotl($a + fun($b, $c, $d) + x[$k] (+ $kc), $s)`.
            macro_rules! step {
                ($fun:ident, $a:ident, $b:ident, $c:ident, $d:ident, $k:expr, $s:literal) => {
                    for g in 0..G {
                        let t = add(add($a[g], x[g][$k]), O::$fun($b[g], $c[g], $d[g]));
                        $a[g] = O::rotl::<$s, { 32 - $s }>(t);
                    }
                };
                ($fun:ident, $a:ident, $b:ident, $c:ident, $d:ident, $k:expr, $s:literal, $kc:ident) => {
                    for g in 0..G {
                        let t = add(add($a[g], add(x[g][$k], $kc)), O::$fun($b[g], $c[g], $d[g]));
                        $a[g] = O::rotl::<$s, { 32 - $s }>(t);
                    }
                };
            }
            for i in [0, 4, 8, 12] {
                step!(f, a, b, c, d, i, 3);
                step!(f, d, a, b, c, i + 1, 7);
                step!(f, c, d, a, b, i + 2, 11);
                step!(f, b, c, d, a, i + 3, 19);
            }
            for i in [0, 1, 2, 3] {
                step!(g, a, b, c, d, i, 3, k2);
                step!(g, d, a, b, c, i + 4, 5, k2);
                step!(g, c, d, a, b, i + 8, 9, k2);
                step!(g, b, c, d, a, i + 12, 13, k2);
            }
            for i in [0, 2, 1, 3] {
                step!(h, a, b, c, d, i, 3, k3);
                step!(h, d, a, b, c, i + 8, 9, k3);
                step!(h, c, d, a, b, i + 4, 11, k3);
                step!(h, b, c, d, a, i + 12, 15, k3);
            }
            for g in 0..G {
                let s = &mut state[g];
                s[0] = add(s[0], a[g]);
                s[1] = add(s[1], b[g]);
                s[2] = add(s[2], c[g]);
                s[3] = add(s[3], d[g]);
            }
        }
    }

    /// The padded final chunk(s) of every lane: the first `rem` bytes are the lane's own, the
    /// rest (`0x80`, zeros, bit length) is the same for all lanes of a call and written once.
    struct Tails {
        buf: [[u8; 128]; 2 * W],
        rem: usize,
        chunks: usize,
    }

    impl Tails {
        fn new(bl: usize) -> Tails {
            let rem = bl % 64;
            let chunks = if rem < 56 { 1 } else { 2 };
            let mut lane = [0u8; 128];
            lane[rem] = 0x80;
            let bits = (bl as u64).wrapping_mul(8).to_le_bytes();
            lane[64 * chunks - 8..64 * chunks].copy_from_slice(&bits);
            Tails {
                buf: [lane; 2 * W],
                rem,
                chunks,
            }
        }
    }

    /// Hashes `count` (`1..=8·G`) consecutive full blocks starting at block `first` of `data`
    /// into `out[..count]`. Spare lanes repeat the first block and are discarded.
    ///
    /// With `skew == 1` (and `G == 2`) the second group runs one chunk behind the first, at the
    /// cost of one extra compression: when `bl` is a multiple of 4 KiB every lane's current
    /// line falls in the same L1 set, and 16 of them thrash its 8 ways (about 25% slower).
    #[inline(always)]
    unsafe fn md4_group<O: Md4Ops, const G: usize>(
        data: &[u8],
        bl: usize,
        first: usize,
        count: usize,
        skew: usize,
        tails: &mut Tails,
        out: &mut [[u8; MD4_LEN]],
    ) {
        debug_assert!((1..=W * G).contains(&count) && (first + count) * bl <= data.len());
        debug_assert!(G <= 2 && out.len() >= count && (skew == 0 || G == 2));
        let full = bl / 64;
        let mut base = [[data.as_ptr(); W]; G];
        for (l, p) in base.iter_mut().flatten().enumerate() {
            // SAFETY: block `first + min(l, count - 1)` is a full block inside `data`.
            *p = unsafe { data.as_ptr().add((first + l.min(count - 1)) * bl) };
            if l < count {
                // SAFETY: the block's last `rem` bytes start `64·full` into it.
                let own = unsafe { core::slice::from_raw_parts(p.add(64 * full), tails.rem) };
                tails.buf[l][..tails.rem].copy_from_slice(own);
            }
        }
        // SAFETY: caller's feature contract; loads stay inside each lane's block (the first
        // `64·full` bytes) or its tail buffer.
        unsafe {
            let mut x = [[_mm256_setzero_si256(); 16]; G];
            let init = MD4_INIT.map(|w| _mm256_set1_epi32(w as i32));
            let mut state = [init; G];
            let total = full + tails.chunks;
            for t in 0..total + skew {
                let prev = state;
                for g in 0..G {
                    // Out of range (before group 1 starts, after group 0 ends): any valid
                    // chunk, and the state change is undone below.
                    let j = t.wrapping_sub(g * skew).min(total - 1);
                    let mut p = base[g];
                    for (l, p) in p.iter_mut().enumerate() {
                        *p = if j < full {
                            p.add(64 * j)
                        } else {
                            tails.buf[g * W + l].as_ptr().add(64 * (j - full))
                        };
                    }
                    let lo = load_transpose(&p, 0);
                    let hi = load_transpose(&p, 32);
                    x[g][..8].copy_from_slice(&lo);
                    x[g][8..].copy_from_slice(&hi);
                }
                compress::<O, G>(&mut state, &x);
                if skew == 1 {
                    if t == 0 {
                        state[G - 1] = prev[G - 1];
                    } else if t == total {
                        state[0] = prev[0];
                    }
                }
            }
            let mut words = [[0u32; W]; 4];
            for g in 0..G {
                for (w, v) in words.iter_mut().zip(state[g]) {
                    _mm256_storeu_si256(w.as_mut_ptr().cast(), v);
                }
                for l in 0..W.min(count.saturating_sub(g * W)) {
                    let o = &mut out[g * W + l];
                    for (o4, w) in o.chunks_exact_mut(4).zip(&words) {
                        o4.copy_from_slice(&w[l].to_le_bytes());
                    }
                }
            }
        }
    }

    /// Fewest blocks worth a vector pass of eight lanes: even two of eight lanes beat the
    /// scalar code, one does not.
    const MIN_LANES: usize = 2;

    /// Hashes the full blocks of `data` with the lanes; returns how many it hashed.
    #[inline(always)]
    unsafe fn md4_driver<O: Md4Ops>(data: &[u8], bl: usize, out: &mut [[u8; MD4_LEN]]) -> usize {
        let full = (data.len() / bl).min(out.len());
        let mut tails = Tails::new(bl);
        let mut i = 0;
        // SAFETY (both calls): caller's feature contract; `i + n <= full` blocks are in `data`.
        let skew = usize::from(bl & 4095 == 0);
        while full - i > W {
            let n = (full - i).min(2 * W);
            unsafe { md4_group::<O, 2>(data, bl, i, n, skew, &mut tails, &mut out[i..]) };
            i += n;
        }
        if full - i >= MIN_LANES {
            let n = full - i;
            unsafe { md4_group::<O, 1>(data, bl, i, n, 0, &mut tails, &mut out[i..]) };
            i += n;
        }
        i
    }

    #[target_feature(enable = "avx2")]
    unsafe fn md4_blocks_avx2(data: &[u8], bl: usize, out: &mut [[u8; MD4_LEN]]) -> usize {
        // SAFETY: AVX2 per this fn's contract.
        unsafe { md4_driver::<Avx2Ops>(data, bl, out) }
    }

    #[target_feature(enable = "avx2,avx512f,avx512vl")]
    unsafe fn md4_blocks_avx512(data: &[u8], bl: usize, out: &mut [[u8; MD4_LEN]]) -> usize {
        // SAFETY: AVX2, AVX-512F and AVX-512VL per this fn's contract.
        unsafe { md4_driver::<Avx512Ops>(data, bl, out) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every implementation this CPU can run, scalar first.
    fn isas() -> Vec<Isa> {
        let mut v = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if x86::has_avx2() {
                v.push(Isa::Avx2);
            }
            if x86::has_avx512() {
                v.push(Isa::Avx512);
            }
        }
        v
    }

    fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
        let mut s = seed.wrapping_mul(2_654_435_761) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 24) as u8
            })
            .collect()
    }

    /// Runs every kernel on every implementation and compares with the scalar references.
    fn check_all(data: &[u8], bl: usize) {
        let n = data.len().div_ceil(bl);
        let want_rk: Vec<u32> = data.chunks(bl).map(rabinkarp_scalar).collect();
        let want_rs: Vec<u32> = data.chunks(bl).map(rollsum_scalar).collect();
        let want_md4: Vec<[u8; MD4_LEN]> = data.chunks(bl).map(md4).collect();
        for isa in isas() {
            let mut w = vec![0u32; n];
            weak_blocks_on(isa, WeakKind::RabinKarp, data, bl, &mut w);
            assert_eq!(w, want_rk, "{isa:?} rabinkarp len {} bl {bl}", data.len());
            weak_blocks_on(isa, WeakKind::Rollsum, data, bl, &mut w);
            assert_eq!(w, want_rs, "{isa:?} rollsum len {} bl {bl}", data.len());
            let mut d = vec![[0u8; MD4_LEN]; n];
            md4_blocks_on(isa, data, bl, &mut d);
            assert_eq!(d, want_md4, "{isa:?} md4 len {} bl {bl}", data.len());
        }
    }

    #[test]
    fn public_entry_points_match_references() {
        let data = pseudo_random(10_000, 1);
        let bl = 700;
        let n = data.len().div_ceil(bl);
        let mut w = vec![0u32; n];
        weak_blocks(WeakKind::RabinKarp, &data, bl, &mut w);
        assert_eq!(w, data.chunks(bl).map(rabinkarp_scalar).collect::<Vec<_>>());
        weak_blocks(WeakKind::Rollsum, &data, bl, &mut w);
        assert_eq!(w, data.chunks(bl).map(rollsum_scalar).collect::<Vec<_>>());
        let mut d = vec![[0u8; MD4_LEN]; n];
        md4_blocks(&data, bl, &mut d);
        assert_eq!(d, data.chunks(bl).map(md4).collect::<Vec<_>>());
    }

    #[test]
    fn forced_scalar_path_matches_references() {
        let data = pseudo_random(5_000, 2);
        for bl in [1, 63, 64, 1000, 5_000, 6_000] {
            let n = data.len().div_ceil(bl);
            let mut w = vec![0u32; n];
            weak_blocks_on(Isa::Scalar, WeakKind::RabinKarp, &data, bl, &mut w);
            assert_eq!(w, data.chunks(bl).map(rabinkarp_scalar).collect::<Vec<_>>());
            weak_blocks_on(Isa::Scalar, WeakKind::Rollsum, &data, bl, &mut w);
            assert_eq!(w, data.chunks(bl).map(rollsum_scalar).collect::<Vec<_>>());
            let mut d = vec![[0u8; MD4_LEN]; n];
            md4_blocks_on(Isa::Scalar, &data, bl, &mut d);
            assert_eq!(d, data.chunks(bl).map(md4).collect::<Vec<_>>());
        }
    }

    #[test]
    fn md4_lanes_match_rustcrypto() {
        use md4::Digest;
        let data = pseudo_random(64 * 40, 3);
        let bl = 64;
        let mut d = vec![[0u8; MD4_LEN]; 40];
        md4_blocks(&data, bl, &mut d);
        for (got, block) in d.iter().zip(data.chunks(bl)) {
            let want: [u8; 16] = md4::Md4::digest(block).into();
            assert_eq!(*got, want);
        }
    }

    /// Every block count around the lane widths, every padding case of the MD4 tail, and the
    /// vector step boundaries of the weak sums (16, 32 and 256 bytes).
    #[test]
    fn block_counts_and_lengths_around_lane_boundaries() {
        let data = pseudo_random(40 * 300 + 17, 4);
        for bl in [
            1, 15, 16, 31, 32, 55, 56, 63, 64, 65, 119, 120, 255, 256, 257, 300,
        ] {
            for count in (0..=34).chain([40]) {
                for short in [0, 1, bl / 2] {
                    let len = (count * bl + short).min(data.len());
                    check_all(&data[..len], bl);
                }
            }
        }
    }

    /// Block lengths that are multiples of 4 KiB run the two lane groups one chunk apart.
    #[test]
    fn skewed_groups_at_4k_multiples() {
        let data = pseudo_random(8192 * 34 + 100, 5);
        for bl in [4096, 8192] {
            for count in [9, 15, 16, 17, 31, 33] {
                check_all(&data[..count * bl + 100], bl);
            }
        }
    }

    #[test]
    fn extreme_bytes() {
        for byte in [0u8, 0xff] {
            let data = vec![byte; 70_000];
            for bl in [64, 4096, 65_536] {
                check_all(&data, bl);
            }
        }
    }

    #[test]
    fn zero_block_len_writes_nothing() {
        let mut w = [7u32; 2];
        weak_blocks(WeakKind::Rollsum, b"abc", 0, &mut w);
        assert_eq!(w, [7, 7]);
        let mut d = [[7u8; MD4_LEN]; 2];
        md4_blocks(b"abc", 0, &mut d);
        assert_eq!(d, [[7u8; MD4_LEN]; 2]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn kernels_match_scalar(
            data in proptest::collection::vec(any::<u8>(), 0..20_000),
            bl in 1usize..5_000,
            skip in 0usize..64,
        ) {
            // `skip` misaligns the buffer as the signature's chunks may be.
            let data = &data[skip.min(data.len())..];
            check_all(data, bl);
        }

        #[test]
        fn kernels_match_scalar_small_blocks(
            data in proptest::collection::vec(any::<u8>(), 0..3_000),
            bl in 1usize..300,
        ) {
            check_all(&data, bl);
        }
    }
}
