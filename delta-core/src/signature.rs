//! Block signatures: the block-size rule, parallel building, and the three on-disk formats.
//!
//! A signature lists, for each `block_len`-byte block of a basis file (the last block may be
//! short), a weak rolling sum and a truncated strong hash. Formats:
//!
//! | format | magic | weak | strong | use |
//! |---|---|---|---|---|
//! | [`SignatureFormat::Rdiff`] | `0x72730147` | RabinKarp | BLAKE2b | librsync ≥ 2.2 default |
//! | [`SignatureFormat::RdiffMd4`] | `0x72730136` | rollsum | MD4 | legacy librsync, fast_rsync |
//! | [`SignatureFormat::Native`] | `DSsg` | RabinKarp | XXH3-128, seeded | deltasync to deltasync |
//!
//! librsync's two other combinations (`0x72730137` rollsum+BLAKE2b, `0x72730146` RabinKarp+MD4)
//! are read and written too, as [`SignatureFormat::Librsync`].
//!
//! librsync layout: magic, block length and strong length (all u32 big-endian), then per block
//! the weak sum (u32 BE) and the strong hash. Native layout: `DSsg`, version 1, weak kind,
//! strong kind, a zero byte, block length and strong length (u32 BE), seed, basis length and
//! block count (u64 BE), then the same per-block entries.
//!
//! The serialised signature is kept apart from the lookup index built from it
//! ([`crate::delta::BlockIndex`]). Uses [`crate::checksum`] only.
//!
//! # Security
//! Parsing checks the block length (`1..=`[`MAX_BLOCK_LEN`]), the strong length (`1..=` the
//! hash's length) and the block count (`SignatureLimits::max_blocks`) before storing anything,
//! and grows its tables only as entries actually arrive, so a hostile header cannot make it
//! allocate more than the bytes it sends.

use std::io::{self, Read, Write};
use std::path::Path;

use rayon::prelude::*;

use crate::checksum::{simd, StrongKind, WeakKind};
use crate::error::SignatureError;
use crate::input::{Access, InputFile};

/// librsync: RabinKarp + BLAKE2b.
pub const RS_RK_BLAKE2_SIG_MAGIC: u32 = 0x7273_0147;
/// librsync: rollsum + BLAKE2b.
pub const RS_BLAKE2_SIG_MAGIC: u32 = 0x7273_0137;
/// librsync: rollsum + MD4.
pub const RS_MD4_SIG_MAGIC: u32 = 0x7273_0136;
/// librsync: RabinKarp + MD4.
pub const RS_RK_MD4_SIG_MAGIC: u32 = 0x7273_0146;
/// Native signature magic, `DSsg`.
pub const NATIVE_SIG_MAGIC: u32 = u32::from_be_bytes(*b"DSsg");
/// Native signature version written and accepted.
pub const NATIVE_SIG_VERSION: u8 = 1;
/// Largest block length accepted anywhere.
pub const MAX_BLOCK_LEN: u32 = 1 << 26;

/// A signature format: which weak sum, which strong hash, which layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureFormat {
    /// librsync's current default: RabinKarp + BLAKE2b (`rdiff signature`).
    Rdiff,
    /// librsync's legacy format: rollsum + MD4 (`rdiff -H md4 -R rollsum`, fast_rsync).
    RdiffMd4,
    /// Any librsync combination of weak sum and strong hash.
    Librsync {
        /// The rolling sum.
        weak: WeakKind,
        /// The strong hash (MD4 or BLAKE2b).
        strong: StrongKind,
    },
    /// deltasync's own: RabinKarp + seeded XXH3, with a versioned header.
    Native,
}

impl SignatureFormat {
    /// The weak sum this format uses.
    pub fn weak(self) -> WeakKind {
        match self {
            SignatureFormat::Rdiff | SignatureFormat::Native => WeakKind::RabinKarp,
            SignatureFormat::RdiffMd4 => WeakKind::Rollsum,
            SignatureFormat::Librsync { weak, .. } => weak,
        }
    }

    /// The strong hash this format uses.
    pub fn strong(self) -> StrongKind {
        match self {
            SignatureFormat::Rdiff => StrongKind::Blake2b,
            SignatureFormat::RdiffMd4 => StrongKind::Md4,
            SignatureFormat::Native => StrongKind::Xxh3,
            SignatureFormat::Librsync { strong, .. } => strong,
        }
    }

    /// Whether deltas against this signature use the native delta format.
    pub fn is_native(self) -> bool {
        self == SignatureFormat::Native
    }

    /// Canonical form: librsync combinations that have a name get it.
    fn normalize(self) -> Self {
        match self {
            SignatureFormat::Librsync {
                weak: WeakKind::RabinKarp,
                strong: StrongKind::Blake2b,
            } => Self::Rdiff,
            SignatureFormat::Librsync {
                weak: WeakKind::Rollsum,
                strong: StrongKind::Md4,
            } => Self::RdiffMd4,
            other => other,
        }
    }

    /// The librsync magic, or the native one.
    pub fn magic(self) -> u32 {
        match (self.is_native(), self.weak(), self.strong()) {
            (true, _, _) => NATIVE_SIG_MAGIC,
            (_, WeakKind::RabinKarp, StrongKind::Blake2b) => RS_RK_BLAKE2_SIG_MAGIC,
            (_, WeakKind::Rollsum, StrongKind::Blake2b) => RS_BLAKE2_SIG_MAGIC,
            (_, WeakKind::Rollsum, _) => RS_MD4_SIG_MAGIC,
            (_, WeakKind::RabinKarp, _) => RS_RK_MD4_SIG_MAGIC,
        }
    }

    /// The format a magic number names.
    pub fn from_magic(magic: u32) -> Option<Self> {
        let (weak, strong) = match magic {
            NATIVE_SIG_MAGIC => return Some(Self::Native),
            RS_RK_BLAKE2_SIG_MAGIC => (WeakKind::RabinKarp, StrongKind::Blake2b),
            RS_BLAKE2_SIG_MAGIC => (WeakKind::Rollsum, StrongKind::Blake2b),
            RS_MD4_SIG_MAGIC => (WeakKind::Rollsum, StrongKind::Md4),
            RS_RK_MD4_SIG_MAGIC => (WeakKind::RabinKarp, StrongKind::Md4),
            _ => return None,
        };
        Some(Self::Librsync { weak, strong }.normalize())
    }

    /// The block length used when none is given, for a basis of `len` bytes (`None` when the
    /// length is unknown, as on a pipe).
    ///
    /// librsync formats follow rdiff 2.3: 256 up to 64 KiB, else √len rounded down to a multiple
    /// of 128, and 2048 for unknown lengths, so `deltasync signature` writes the bytes `rdiff
    /// signature` does. Native uses √len rounded up to a power of two within 1 KiB..=256 KiB:
    /// large blocks keep the index small and the match loop in the fast path on big files.
    pub fn default_block_len(self, len: Option<u64>) -> u32 {
        let Some(len) = len else { return 2048 };
        if self.is_native() {
            let root = isqrt(len).max(1);
            return root.next_power_of_two().clamp(1024, 256 * 1024) as u32;
        }
        if len <= 256 * 256 {
            256
        } else {
            (isqrt(len) & !127).min(u64::from(MAX_BLOCK_LEN)) as u32
        }
    }
}

/// rdiff's `-S -1`: the fewest strong-hash bytes that keep collisions unlikely for a basis of
/// `len` bytes (librsync's rule: 2 bytes of margin over log2 of the comparisons expected).
pub fn min_strong_len(format: SignatureFormat, len: Option<u64>, block_len: u32) -> u32 {
    let max = format.strong().max_len() as u32;
    let Some(len) = len else { return max };
    let ln2 = |x: u64| 63 - x.max(1).leading_zeros() as u64;
    let bits = ln2(len + (1 << 24)) + ln2(len / u64::from(block_len) + 1);
    (2 + bits.div_ceil(8)).min(u64::from(max)) as u32
}

fn isqrt(n: u64) -> u64 {
    let mut r = (n as f64).sqrt() as u64;
    while r * r > n {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= n {
        r += 1;
    }
    r
}

/// How to build a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureOptions {
    /// The format.
    pub format: SignatureFormat,
    /// Block length; `None` applies [`SignatureFormat::default_block_len`].
    pub block_len: Option<u32>,
    /// Strong hash bytes kept per block; `None` keeps the whole hash (as rdiff does).
    pub strong_len: Option<u32>,
    /// Seed for the native strong hash; `None` draws a random one. Ignored by librsync formats.
    pub seed: Option<u64>,
    /// Worker threads; `None` uses the current rayon pool.
    pub threads: Option<usize>,
}

impl Default for SignatureOptions {
    fn default() -> Self {
        Self {
            format: SignatureFormat::Native,
            block_len: None,
            strong_len: None,
            seed: None,
            threads: None,
        }
    }
}

impl SignatureOptions {
    /// Options for `format`, everything else default.
    pub fn new(format: SignatureFormat) -> Self {
        Self {
            format,
            ..Self::default()
        }
    }
}

/// Limits applied when reading a signature from untrusted bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureLimits {
    /// Most blocks accepted (default 2^26, a 4 TiB basis at 64 KiB blocks).
    pub max_blocks: u64,
}

impl Default for SignatureLimits {
    fn default() -> Self {
        Self {
            max_blocks: 1 << 26,
        }
    }
}

/// A block signature of one basis file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    format: SignatureFormat,
    block_len: u32,
    strong_len: u32,
    seed: u64,
    basis_len: Option<u64>,
    weak: Vec<u32>,
    strong: Vec<u8>,
}

impl Signature {
    /// The format.
    pub fn format(&self) -> SignatureFormat {
        self.format
    }
    /// Bytes per block.
    pub fn block_len(&self) -> u32 {
        self.block_len
    }
    /// Strong hash bytes stored per block.
    pub fn strong_len(&self) -> u32 {
        self.strong_len
    }
    /// The native strong-hash seed (0 for librsync formats).
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// The basis length, when known (native signatures record it).
    pub fn basis_len(&self) -> Option<u64> {
        self.basis_len
    }
    /// Number of blocks.
    pub fn block_count(&self) -> usize {
        self.weak.len()
    }
    /// Weak sums, one per block.
    pub fn weak_sums(&self) -> &[u32] {
        &self.weak
    }
    /// The strong hash of block `i`.
    pub fn strong_sum(&self, i: usize) -> &[u8] {
        let n = self.strong_len as usize;
        &self.strong[i * n..(i + 1) * n]
    }

    /// Signature of an in-memory basis.
    pub fn from_slice(data: &[u8], opts: &SignatureOptions) -> Result<Self, SignatureError> {
        let mut sig = Self::empty(opts, Some(data.len() as u64))?;
        match opts.threads {
            Some(n) => pool(n)?.install(|| sig.push_blocks(data)),
            None => sig.push_blocks(data),
        }
        Ok(sig)
    }

    /// Signature of a file, mapped when `access` allows it, read in large pieces otherwise.
    pub fn from_path(
        path: &Path,
        access: Access,
        opts: &SignatureOptions,
    ) -> Result<Self, SignatureError> {
        Self::from_input(&InputFile::open(path, access)?, opts)
    }

    /// Signature of an open file: from its mapping when it has one, by positioned reads
    /// otherwise.
    pub fn from_input(input: &InputFile, opts: &SignatureOptions) -> Result<Self, SignatureError> {
        if let Some(data) = input.as_slice() {
            return Self::from_slice(data, opts);
        }
        let mut sig = Self::empty(opts, Some(input.len()))?;
        let mut reader = PositionedReader { input, pos: 0 };
        sig.read_basis(&mut reader, opts)?;
        Ok(sig)
    }

    /// Signature of a stream whose length is unknown (a pipe).
    pub fn from_reader(
        reader: &mut dyn Read,
        opts: &SignatureOptions,
    ) -> Result<Self, SignatureError> {
        let mut sig = Self::empty(opts, None)?;
        sig.read_basis(reader, opts)?;
        Ok(sig)
    }

    fn empty(opts: &SignatureOptions, len: Option<u64>) -> Result<Self, SignatureError> {
        let format = opts.format.normalize();
        let block_len = opts
            .block_len
            .unwrap_or_else(|| format.default_block_len(len));
        check_block_len(u64::from(block_len))?;
        let max = format.strong().max_len() as u32;
        let strong_len = opts.strong_len.unwrap_or(max);
        if strong_len == 0 || strong_len > max {
            return Err(SignatureError::BadStrongLen {
                len: strong_len.into(),
                max: max.into(),
            });
        }
        let seed = if format.is_native() {
            opts.seed.unwrap_or_else(random_seed)
        } else {
            0
        };
        let blocks = len.map_or(0, |l| l.div_ceil(u64::from(block_len)) as usize);
        Ok(Self {
            format,
            block_len,
            strong_len,
            seed,
            basis_len: len,
            weak: Vec::with_capacity(blocks),
            strong: Vec::with_capacity(blocks * strong_len as usize),
        })
    }

    /// Reads the basis in pieces of whole blocks and hashes each piece in parallel.
    fn read_basis(
        &mut self,
        reader: &mut dyn Read,
        opts: &SignatureOptions,
    ) -> Result<(), SignatureError> {
        let bl = self.block_len as usize;
        let piece = bl * (16usize << 20).div_ceil(bl).max(1);
        let mut buf = vec![0u8; piece];
        let mut total = 0u64;
        let pool = opts.threads.map(pool).transpose()?;
        loop {
            let n = read_full(reader, &mut buf)?;
            total += n as u64;
            match &pool {
                Some(p) => p.install(|| self.push_blocks(&buf[..n])),
                None => self.push_blocks(&buf[..n]),
            }
            if n < buf.len() {
                break;
            }
        }
        self.basis_len = Some(total);
        Ok(())
    }

    /// Appends the entries for `data`, which starts on a block boundary (all of its blocks but
    /// the last are full).
    fn push_blocks(&mut self, data: &[u8]) {
        let bl = self.block_len as usize;
        let sl = self.strong_len as usize;
        let n = data.len().div_ceil(bl);
        let (w0, s0) = (self.weak.len(), self.strong.len());
        self.weak.resize(w0 + n, 0);
        self.strong.resize(s0 + n * sl, 0);
        // Tasks of ~1 MiB of basis each (at least 16 blocks, so the multi-lane MD4 kernel keeps
        // all its lanes busy): enough to amortise scheduling, small enough to balance.
        let per_task = (1usize << 20).div_ceil(bl).max(16);
        let (format, seed) = (self.format, self.seed);
        self.weak[w0..]
            .par_chunks_mut(per_task)
            .zip(self.strong[s0..].par_chunks_mut(per_task * sl))
            .zip(data.par_chunks(per_task * bl))
            .for_each(|((weak, strong), chunk)| {
                hash_blocks(format, seed, chunk, bl, sl, weak, strong)
            });
    }

    /// Writes the signature in its format.
    pub fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        let mut head = Vec::with_capacity(48);
        head.extend_from_slice(&self.format.magic().to_be_bytes());
        if self.format.is_native() {
            head.extend_from_slice(&[
                NATIVE_SIG_VERSION,
                weak_code(self.format.weak()),
                strong_code(self.format.strong()),
                0,
            ]);
        }
        head.extend_from_slice(&self.block_len.to_be_bytes());
        head.extend_from_slice(&self.strong_len.to_be_bytes());
        if self.format.is_native() {
            head.extend_from_slice(&self.seed.to_be_bytes());
            head.extend_from_slice(&self.basis_len.unwrap_or(0).to_be_bytes());
            head.extend_from_slice(&(self.weak.len() as u64).to_be_bytes());
        }
        w.write_all(&head)?;
        let sl = self.strong_len as usize;
        let mut buf = Vec::with_capacity(64 << 10);
        for (i, weak) in self.weak.iter().enumerate() {
            buf.extend_from_slice(&weak.to_be_bytes());
            buf.extend_from_slice(&self.strong[i * sl..(i + 1) * sl]);
            if buf.len() >= 60 << 10 {
                w.write_all(&buf)?;
                buf.clear();
            }
        }
        w.write_all(&buf)
    }

    /// The serialised signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v).expect("writing to a Vec cannot fail");
        v
    }

    /// Reads a signature of any known format from untrusted bytes.
    pub fn read_from(r: &mut dyn Read, limits: &SignatureLimits) -> Result<Self, SignatureError> {
        let magic = read_u32(r, "magic")?;
        let format =
            SignatureFormat::from_magic(magic).ok_or(SignatureError::BadMagic { found: magic })?;
        if format.is_native() {
            let mut v = [0u8; 4];
            read_exact(r, &mut v, "header")?;
            if v[0] != NATIVE_SIG_VERSION {
                return Err(SignatureError::BadHeader {
                    reason: format!("unsupported version {}", v[0]),
                });
            }
            if v[1] != weak_code(WeakKind::RabinKarp)
                || v[2] != strong_code(StrongKind::Xxh3)
                || v[3] != 0
            {
                return Err(SignatureError::BadHeader {
                    reason: format!("unsupported hash kinds {}/{}/{}", v[1], v[2], v[3]),
                });
            }
        }
        let block_len = read_u32(r, "header")?;
        check_block_len(block_len.into())?;
        let strong_len = read_u32(r, "header")?;
        let max = format.strong().max_len() as u32;
        if strong_len == 0 || strong_len > max {
            return Err(SignatureError::BadStrongLen {
                len: strong_len.into(),
                max: max.into(),
            });
        }
        let (mut seed, mut basis_len, mut declared) = (0, None, None);
        if format.is_native() {
            seed = read_u64(r, "header")?;
            let len = read_u64(r, "header")?;
            let count = read_u64(r, "header")?;
            if count != len.div_ceil(u64::from(block_len)) {
                return Err(SignatureError::BadHeader {
                    reason: format!(
                        "{count} blocks cannot cover {len} bytes at {block_len} per block"
                    ),
                });
            }
            if count > limits.max_blocks {
                return Err(SignatureError::TooManyBlocks {
                    max: limits.max_blocks,
                });
            }
            basis_len = Some(len);
            declared = Some(count);
        }
        let mut sig = Signature {
            format,
            block_len,
            strong_len,
            seed,
            basis_len,
            weak: Vec::new(),
            strong: Vec::new(),
        };
        let entry = 4 + strong_len as usize;
        let mut buf = vec![0u8; entry * 4096];
        loop {
            let want = match declared {
                Some(c) => ((c - sig.weak.len() as u64) as usize * entry).min(buf.len()),
                None => buf.len(),
            };
            let n = read_full(r, &mut buf[..want])?;
            if n % entry != 0 {
                return Err(SignatureError::Truncated {
                    context: "block entry",
                });
            }
            if sig.weak.len() as u64 + (n / entry) as u64 > limits.max_blocks {
                return Err(SignatureError::TooManyBlocks {
                    max: limits.max_blocks,
                });
            }
            for e in buf[..n].chunks_exact(entry) {
                sig.weak.push(u32::from_be_bytes([e[0], e[1], e[2], e[3]]));
                sig.strong.extend_from_slice(&e[4..]);
            }
            if n < want || want == 0 {
                if declared.is_some_and(|c| c != sig.weak.len() as u64) {
                    return Err(SignatureError::Truncated {
                        context: "block entry",
                    });
                }
                // A native signature ends after its declared blocks; anything more is damage.
                if declared.is_some() && read_full(r, &mut [0u8; 1])? > 0 {
                    return Err(SignatureError::BadHeader {
                        reason: "bytes follow the last declared block".into(),
                    });
                }
                break;
            }
        }
        Ok(sig)
    }

    /// Parses a signature from a byte slice.
    pub fn from_bytes(mut bytes: &[u8], limits: &SignatureLimits) -> Result<Self, SignatureError> {
        Self::read_from(&mut bytes, limits)
    }
}

/// Fills one task's share of the tables.
fn hash_blocks(
    format: SignatureFormat,
    seed: u64,
    data: &[u8],
    bl: usize,
    sl: usize,
    weak: &mut [u32],
    strong: &mut [u8],
) {
    let n = weak.len();
    simd::weak_blocks(format.weak(), data, bl, weak);
    match format.strong() {
        StrongKind::Md4 => {
            let mut digests = vec![[0u8; 16]; n];
            simd::md4_blocks(data, bl, &mut digests);
            for (out, d) in strong.chunks_exact_mut(sl).zip(&digests) {
                out.copy_from_slice(&d[..sl]);
            }
        }
        kind => {
            for (out, block) in strong.chunks_exact_mut(sl).zip(data.chunks(bl)) {
                kind.hash_into(seed, block, out);
            }
        }
    }
}

fn weak_code(w: WeakKind) -> u8 {
    match w {
        WeakKind::RabinKarp => 1,
        WeakKind::Rollsum => 2,
    }
}

fn strong_code(s: StrongKind) -> u8 {
    match s {
        StrongKind::Md4 => 1,
        StrongKind::Blake2b => 2,
        StrongKind::Xxh3 => 3,
    }
}

fn check_block_len(len: u64) -> Result<(), SignatureError> {
    if len == 0 || len > u64::from(MAX_BLOCK_LEN) {
        return Err(SignatureError::BadBlockLen {
            len,
            max: MAX_BLOCK_LEN.into(),
        });
    }
    Ok(())
}

/// A random per-session seed.
pub fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    // A failure of the OS generator leaves a time-derived seed: still unpredictable enough to
    // stop precomputed collisions, and never a panic.
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_le_bytes(b)
}

pub(crate) fn pool(threads: usize) -> io::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(io::Error::other)
}

/// Reads until `buf` is full or end of input; returns the bytes read.
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn read_exact(
    r: &mut dyn Read,
    buf: &mut [u8],
    context: &'static str,
) -> Result<(), SignatureError> {
    if read_full(r, buf)? < buf.len() {
        return Err(SignatureError::Truncated { context });
    }
    Ok(())
}

fn read_u32(r: &mut dyn Read, context: &'static str) -> Result<u32, SignatureError> {
    let mut b = [0u8; 4];
    read_exact(r, &mut b, context)?;
    Ok(u32::from_be_bytes(b))
}

fn read_u64(r: &mut dyn Read, context: &'static str) -> Result<u64, SignatureError> {
    let mut b = [0u8; 8];
    read_exact(r, &mut b, context)?;
    Ok(u64::from_be_bytes(b))
}

/// Sequential reads over positioned reads of a live file.
struct PositionedReader<'a> {
    input: &'a InputFile,
    pos: u64,
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read_full_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect()
    }

    #[test]
    fn round_trips_every_format() {
        let d = data(100_000);
        for format in [
            SignatureFormat::Rdiff,
            SignatureFormat::RdiffMd4,
            SignatureFormat::Native,
        ] {
            let sig = Signature::from_slice(
                &d,
                &SignatureOptions {
                    block_len: Some(999),
                    ..SignatureOptions::new(format)
                },
            )
            .unwrap();
            assert_eq!(sig.block_count(), 101);
            let back = Signature::from_bytes(&sig.to_bytes(), &SignatureLimits::default()).unwrap();
            if format.is_native() {
                assert_eq!(back, sig);
            } else {
                assert_eq!(
                    (back.weak_sums(), back.strong_len()),
                    (sig.weak_sums(), sig.strong_len())
                );
            }
        }
    }

    #[test]
    fn reader_and_slice_agree_and_threads_do_not_matter() {
        let d = data(3 << 20);
        let opts = SignatureOptions {
            seed: Some(5),
            block_len: Some(4096),
            ..SignatureOptions::new(SignatureFormat::Native)
        };
        let a = Signature::from_slice(&d, &opts).unwrap();
        let b = Signature::from_reader(&mut &d[..], &opts).unwrap();
        let c = Signature::from_slice(
            &d,
            &SignatureOptions {
                threads: Some(3),
                ..opts
            },
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn rdiff_block_rule() {
        let f = SignatureFormat::Rdiff;
        assert_eq!(f.default_block_len(Some(300_000)), 512);
        assert_eq!(f.default_block_len(Some(1000)), 256);
        assert_eq!(f.default_block_len(None), 2048);
        assert_eq!(
            SignatureFormat::Native.default_block_len(Some(1 << 30)),
            32 << 10
        );
        assert_eq!(SignatureFormat::Native.default_block_len(Some(10)), 1024);
    }

    #[test]
    fn hostile_headers_are_refused() {
        let lim = SignatureLimits::default();
        let err = |b: &[u8]| Signature::from_bytes(b, &lim).unwrap_err().to_string();
        assert_eq!(err(b"\x72\x73\x01"), "signature truncated in magic");
        assert_eq!(err(b"abcd"), "bad signature magic 0x61626364");
        assert!(err(b"\x72\x73\x01\x47\0\0\0\0\0\0\0\x20").contains("block length 0"));
        assert!(err(b"\x72\x73\x01\x47\0\0\x08\0\0\0\0\x21").contains("strong hash length 33"));
        assert!(
            err(b"\x72\x73\x01\x47\0\0\x08\0\0\0\0\x20\0\0").contains("truncated in block entry")
        );
        // A native header claiming 2^60 blocks is refused before any allocation.
        let mut n = b"DSsg\x01\x01\x03\x00".to_vec();
        n.extend_from_slice(&1024u32.to_be_bytes());
        n.extend_from_slice(&16u32.to_be_bytes());
        n.extend_from_slice(&0u64.to_be_bytes());
        n.extend_from_slice(&(1u64 << 60).to_be_bytes());
        n.extend_from_slice(&(1u64 << 50).to_be_bytes());
        assert!(err(&n).contains("more than"));
        // Bytes after a native signature's declared blocks are refused.
        let sig =
            Signature::from_slice(b"abc", &SignatureOptions::new(SignatureFormat::Native)).unwrap();
        let mut bytes = sig.to_bytes();
        bytes.push(0);
        assert!(err(&bytes).contains("bytes follow the last declared block"));
    }
}
