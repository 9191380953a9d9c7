//! Checksums: the weak rolling sums that find candidate blocks, the strong hashes that confirm
//! them, and the whole-file hash that verifies a reconstruction.
//!
//! Uses nothing else in the crate. Vectorised block kernels live in [`simd`] behind safe
//! functions; the scalar versions in [`rolling`] and [`md4`] are their references.

pub mod md4;
pub mod rolling;
pub mod simd;
pub mod strong;

pub use rolling::{RabinKarp, RollingHash, Rollsum, WeakKind};
pub use strong::{
    FileHasher, StrongKind, FILE_HASH_LEN, FILE_HASH_SEGMENT, MAX_STRONG_LEN, MAX_STRONG_LEN_USIZE,
};
